"""Prediction drift and tier mix, and the policy's monitoring section they are held against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from models.policy import DEFAULT_POLICY_RESOURCE, TierPolicy, load_policy
from monitoring.drift import Side, compare, load_scores, prediction_drift, tier_shares, tier_shift
from shouhu.errors import PolicyError


def _scores(tiers: dict[str, int], p_mean: float = 0.08, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = [t for t, n in tiers.items() for _ in range(n)]
    return pd.DataFrame(
        {
            "tier": labels,
            "p_any": np.clip(rng.beta(2, 2 / p_mean - 2, len(labels)), 0, 1),
        }
    )


def _policy_with(**monitoring: object) -> TierPolicy:
    default = Path(__file__).resolve().parents[3] / "models" / DEFAULT_POLICY_RESOURCE
    data = yaml.safe_load(default.read_text(encoding="utf-8"))
    data["monitoring"]["tier_shift"].update(monitoring)
    return TierPolicy.model_validate(data)


def test_tier_shares_cover_every_tier_and_sum_to_one() -> None:
    shares = tier_shares(_scores({"T1": 5, "T3": 15}))
    assert shares == {"T1": 0.25, "T2": 0.0, "T3": 0.75, "T4": 0.0}


def test_a_tier_share_moving_beyond_the_limit_is_an_alarm() -> None:
    policy = load_policy()
    within = {"T1": 40, "T2": 80, "T3": 170, "T4": 710}
    ref = _scores(within)
    steady, found = tier_shift(ref, _scores({"T1": 42, "T2": 78, "T3": 172, "T4": 708}), policy)
    assert steady["max_change"] == pytest.approx(0.002)
    assert not [f for f in found if f.alarm]
    moved, found = tier_shift(ref, _scores({"T1": 140, "T2": 80, "T3": 170, "T4": 610}), policy)
    assert moved["change"]["T1"] == pytest.approx(0.1)
    assert [(f.check, f.subject) for f in found if f.alarm] == [
        ("tier_shift", "T1"),
        ("outside_expected_mix", "T1"),
        ("outside_expected_mix", "T4"),
    ]
    assert moved["outside_expected_mix"] == ["T1", "T4"]


def test_without_reference_scores_only_the_current_mix_is_checked() -> None:
    summary, found = tier_shift(
        None, _scores({"T1": 300, "T2": 100, "T3": 500, "T4": 100}), load_policy()
    )
    assert summary["available"] is False and "change" not in summary
    assert summary["current"]["T1"] == pytest.approx(0.3)
    assert {f.check for f in found} == {"outside_expected_mix"}


def test_an_area_is_held_to_its_own_looser_tier_shift_limit() -> None:
    policy = load_policy()
    assert policy.monitoring is not None
    ref = _scores({"T1": 40, "T2": 80, "T3": 170, "T4": 710})
    cur = _scores({"T1": 40, "T2": 80, "T3": 250, "T4": 630})  # 8 points from T4 to T3
    _, overall = tier_shift(ref, cur, policy)
    _, area = tier_shift(ref, cur, policy, scope="990101001")
    assert [f.alarm for f in overall if f.check == "tier_shift"] == [True]
    assert [(f.alarm, f.threshold) for f in area] == [
        (False, policy.monitoring.tier_shift.max_area_share_change)
    ]


def test_the_expected_mix_alarm_follows_the_policy_switch() -> None:
    quiet = _policy_with(alarm_outside_expected_mix=False)
    skewed = _scores({"T1": 300, "T2": 100, "T3": 500, "T4": 100})
    summary, found = tier_shift(skewed, skewed, quiet)
    assert summary["outside_expected_mix"] and not [f for f in found if f.alarm]


def test_prediction_drift_reads_evidently_and_is_absent_without_model_scores() -> None:
    ref = _scores({"T4": 1500}, p_mean=0.08, seed=1)
    same, snapshot = prediction_drift(
        ref, _scores({"T4": 1500}, seed=2), sample_rows=20_000, seed=0, threshold=0.2
    )
    assert same["available"] and same["drift"] is False and snapshot is not None
    higher, _ = prediction_drift(
        ref, _scores({"T4": 1500}, p_mean=0.2, seed=3), sample_rows=20_000, seed=0, threshold=0.2
    )
    assert higher["drift"] is True and higher["mean_current"] > higher["mean_reference"]
    assert "wasserstein" in str(higher["method"]).lower() and higher["threshold"] == 0.2
    # The policy's threshold is the test's: a small move passes a loose threshold.
    slightly, _ = prediction_drift(
        ref, _scores({"T4": 1500}, p_mean=0.09, seed=4), sample_rows=20_000, seed=0, threshold=5.0
    )
    assert slightly["drift"] is False
    rules_only = ref.assign(p_any=np.nan)
    absent, snapshot = prediction_drift(ref, rules_only, sample_rows=20_000, seed=0, threshold=0.2)
    assert absent == {"available": False, "reason": "a scoring run had no model scores"}
    assert snapshot is None


def test_an_empty_score_store_is_reported_as_absent(tmp_path: Path) -> None:
    scores, run, note = load_scores(tmp_path / "scores.duckdb", pd.Timestamp("2025-12-31").date())
    assert (scores, run) == (None, None) and note is not None and "no scoring run" in note


def test_a_policy_without_a_monitoring_section_is_refused_by_name() -> None:
    default = Path(__file__).resolve().parents[3] / "models" / DEFAULT_POLICY_RESOURCE
    data = yaml.safe_load(default.read_text(encoding="utf-8"))
    del data["monitoring"]
    policy = TierPolicy.model_validate(data)
    frame = pd.DataFrame({"child_id": ["a"]})
    side = Side(as_of=pd.Timestamp("2025-12-31").date(), frame=frame)
    with pytest.raises(PolicyError, match="no `monitoring:` section"):
        compare(side, side, policy, sample_rows=100)


def test_the_default_policy_holds_every_monitoring_threshold() -> None:
    limits = load_policy().monitoring
    assert limits is not None
    assert limits.reference_months_back == 12
    assert 0 < limits.volume.min_visit_ratio < 1 < limits.volume.max_entrant_ratio
    assert 0 < limits.feature_drift.drift_share <= 1
