"""The re-evaluation's decision: gate, minimum, better, no regression, fairness, signed note."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.fairness import COLUMNS, FairnessReport
from models.metrics import EvaluationReport, MetricEstimate
from models.policy import load_policy
from monitoring.quarters import Quarter
from monitoring.reevaluation import (
    DecisionRule,
    EvaluationSettings,
    EvaluationWindow,
    GateStatus,
    ModelEvaluation,
    SignedNote,
    decide,
    load_note,
    paired_differences,
    tier_stability,
)
from shouhu.errors import ConfigError

Q = Quarter.parse("2025Q3")
POLICY = load_policy()
RULE = DecisionRule()
PASSED = GateStatus(True, "champion gate passed", 0.31)


def _estimate(value: float, low: float | None = None, high: float | None = None) -> MetricEstimate:
    return MetricEstimate(
        value, value if low is None else low, value if high is None else high, 0.9, 100
    )


def _report(precision: float, auc: float = 0.75, ece: float = 0.02) -> EvaluationReport:
    return EvaluationReport(
        n_rows=1000,
        n_positive=100,
        n_clusters=600,
        metrics={
            "roc_auc": _estimate(auc),
            "precision_at_capacity": _estimate(precision),
            "ece": _estimate(ece),
        },
    )


def _audit(*flags: tuple[str, str, str, str]) -> FairnessReport:
    """An audit whose only flagged rows are ``(metric, attribute, group, threshold)``."""
    records = []
    for metric, attribute, group, threshold in flags:
        record = dict.fromkeys(COLUMNS)
        record.update(
            attribute=attribute,
            group=group,
            threshold=threshold,
            metric=metric,
            value=0.5,
            overall=0.3,
            ratio=1.67,
            flagged=True,
            n=400,
            events=40,
            status="flagged",
            direction="above",
            priority=1,
            reference="overall",
            reference_value=0.3,
            denominator=40,
            value_low=0.4,
            value_high=0.6,
            ratio_low=1.3,
            ratio_high=2.0,
        )
        records.append(record)
    table = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    table["flagged"] = table["flagged"].astype(bool)
    return FairnessReport(table=table)


def _model(
    role: str,
    version: int,
    precision: float,
    *flags: tuple[str, str, str, str],
    auc: float = 0.75,
    ece: float = 0.02,
) -> ModelEvaluation:
    p = np.full(1000, 0.1)
    return ModelEvaluation(role, version, _report(precision, auc, ece), p, None, _audit(*flags))


def _diffs(
    precision: tuple[float, float, float], auc: tuple[float, float, float] = (0.0, -0.01, 0.01)
) -> dict[str, MetricEstimate]:
    return {"precision_at_capacity": _estimate(*precision), "roc_auc": _estimate(*auc)}


def _note(tmp_path: Path, **fields: object) -> SignedNote:
    content = {
        "quarter": "2025Q3",
        "challenger_version": 4,
        "supervisor": "督导员 王",
        "role": "supervisor",
        "signed_on": (date.today() - timedelta(days=1)).isoformat(),
        "reason": "The flagged township has few events and every child there is visited.",
        **fields,
    }
    lines = [f"{k}: {v!r}" if isinstance(v, list) else f"{k}: {v}" for k, v in content.items()]
    path = tmp_path / "note.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_note(path)


def _decide(
    challenger: ModelEvaluation,
    champion: ModelEvaluation | None,
    diffs: dict | None,
    gate: GateStatus = PASSED,
    note: SignedNote | None = None,
) -> tuple[str, dict]:
    recommendation, checks = decide(
        quarter=Q,
        champion=champion,
        challenger=challenger,
        differences=diffs,
        gate=gate,
        policy=POLICY,
        rule=RULE,
        note=note,
    )
    return recommendation, {c.name: c for c in checks}


def test_a_clearly_better_fair_challenger_is_recommended() -> None:
    recommendation, checks = _decide(
        _model("challenger", 4, 0.40), _model("champion", 3, 0.30), _diffs((0.10, 0.04, 0.16))
    )
    assert recommendation == "promote"
    assert all(c.passed for c in checks.values())
    assert "clearly better" in checks["better"].reason


def test_a_difference_whose_interval_reaches_zero_keeps_the_champion() -> None:
    recommendation, checks = _decide(
        _model("challenger", 4, 0.33), _model("champion", 3, 0.30), _diffs((0.03, -0.01, 0.07))
    )
    assert recommendation == "keep"
    assert not checks["better"].passed
    assert "not clearly better" in checks["better"].reason


def test_a_failed_gate_or_a_precision_below_the_minimum_blocks_promotion() -> None:
    better = _diffs((0.10, 0.04, 0.16))
    failed = GateStatus(False, "champion gate failed: 1 of 2 folds", 0.31)
    recommendation, checks = _decide(
        _model("challenger", 4, 0.40), _model("champion", 3, 0.3), better, gate=failed
    )
    assert recommendation == "keep" and not checks["gate"].passed
    low = GateStatus(True, "passed", 0.15)  # below the policy's pre-registered 0.20
    recommendation, checks = _decide(
        _model("challenger", 4, 0.40), _model("champion", 3, 0.3), better, gate=low
    )
    assert recommendation == "keep" and not checks["minimum_precision"].passed
    assert "0.200" in checks["minimum_precision"].reason


def test_worse_calibration_or_a_clearly_worse_auc_is_a_regression() -> None:
    champion = _model("champion", 3, 0.30, ece=0.02)
    worse_ece = _model("challenger", 4, 0.40, ece=0.05)
    recommendation, checks = _decide(worse_ece, champion, _diffs((0.1, 0.04, 0.16)))
    assert recommendation == "keep" and not checks["no_regression"].passed
    worse_auc = _diffs((0.1, 0.04, 0.16), auc=(-0.03, -0.05, -0.01))
    recommendation, checks = _decide(_model("challenger", 4, 0.40), champion, worse_auc)
    assert recommendation == "keep" and "clearly worse" in checks["no_regression"].reason


def test_without_a_champion_the_challenger_is_judged_on_its_own_figures() -> None:
    recommendation, checks = _decide(_model("challenger", 4, 0.40), None, None)
    assert recommendation == "promote"
    assert "no champion" in checks["better"].reason


def test_fnr_disparity_at_a_model_cut_blocks_without_a_note(tmp_path: Path) -> None:
    flag = ("false_negative_rate", "township", "500229101", "T1-T2")
    challenger = _model("challenger", 4, 0.40, flag)
    champion = _model("champion", 3, 0.30, flag)
    recommendation, checks = _decide(challenger, champion, _diffs((0.1, 0.04, 0.16)))
    assert recommendation == "keep"
    assert "township=500229101" in checks["fairness"].reason
    assert "(the champion too)" in checks["fairness"].reason
    recommendation, checks = _decide(
        challenger, champion, _diffs((0.1, 0.04, 0.16)), note=_note(tmp_path)
    )
    assert recommendation == "promote"
    assert "accepted by the note signed by 督导员 王" in checks["fairness"].reason


def test_a_note_for_another_version_or_other_groups_does_not_unblock(tmp_path: Path) -> None:
    flags = [
        ("false_omission_rate", "sex", "female", "T1-T3"),
        ("false_negative_rate", "township", "500229101", "T1-T2"),
    ]
    challenger = _model("challenger", 4, 0.40, *flags)
    other_version = _note(tmp_path, challenger_version=5)
    recommendation, checks = _decide(challenger, None, None, note=other_version)
    assert recommendation == "keep" and "not 2025Q3 version 4" in checks["fairness"].reason
    township_only = _note(tmp_path, accepts=["township"])
    recommendation, checks = _decide(challenger, None, None, note=township_only)
    assert recommendation == "keep" and "does not accept 1 of them" in checks["fairness"].reason
    both = _note(tmp_path, accepts=["township", "sex=female"])
    assert _decide(challenger, None, None, note=both)[0] == "promote"


def test_flags_at_the_rule_only_t1_cut_and_lower_priority_flags_do_not_block() -> None:
    challenger = _model(
        "challenger",
        4,
        0.40,
        ("false_negative_rate", "sex", "female", "T1"),
        ("selection_rate", "township", "500229101", "T1-T2"),
    )
    recommendation, checks = _decide(challenger, None, None)
    assert recommendation == "promote" and checks["fairness"].passed


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"quarter": "2025-07"}, "YYYYQn"),
        ({"role": "caseworker"}, "supervisor"),
        ({"reason": "ok"}, "at least 20"),
        ({"signed_on": (date.today() + timedelta(days=3)).isoformat()}, "future"),
        ({"approved": True}, "Extra inputs"),
    ],
)
def test_an_invalid_note_is_refused_with_its_file(
    tmp_path: Path, fields: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        _note(tmp_path, **fields)
    assert "note.yaml" in caught.value.message


def test_a_note_is_identified_by_the_sha256_of_its_text(tmp_path: Path) -> None:
    first = _note(tmp_path)
    same = load_note(tmp_path / "note.yaml")
    changed = _note(tmp_path, reason="A different reason, long enough to be accepted.")
    assert first.sha256 == same.sha256 != changed.sha256
    assert len(first.sha256) == 64


def test_tier_stability_counts_moves_on_the_last_date_and_over_the_quarter() -> None:
    rows = pd.DataFrame({"as_of": pd.to_datetime(["2025-08-31"] * 2 + ["2025-09-30"] * 5)})
    champion = pd.Series(["T2", "T3", "T1", "T2", "T3", "T3", "T4"])
    challenger = pd.Series(["T3", "T3", "T1", "T3", "T2", "T3", "T3"])
    out = tier_stability(rows, champion, challenger)
    assert out["as_of"] == "2025-09-30" and out["children"] == 5
    assert (out["changed"], out["up"], out["down"]) == (3, 2, 1)
    assert (out["into_visits"], out["out_of_visits"]) == (1, 1)
    assert out["matrix"]["T2"]["T3"] == 1 and out["matrix"]["T4"]["T3"] == 1
    assert out["all_dates"]["changed"] == 4 and out["all_dates"]["changed_share"] == 0.5714


def test_paired_differences_favour_the_score_that_knows_the_outcome() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    rows = pd.DataFrame(
        {
            "child_id": [f"c{i:05d}" for i in range(n)],
            "household_pid": [f"h{i // 2:05d}" for i in range(n)],
            "as_of": pd.Timestamp("2025-09-30"),
            "capacity_area": rng.choice(["990101001", "990101002"], n),
            "y_any": (rng.random(n) < 0.1).astype(np.int8),
        }
    )
    keys = (rows["capacity_area"] + "|2025-09-30").to_numpy(dtype=object)
    window = EvaluationWindow(
        rows,
        rows.groupby(["capacity_area", "as_of"]).size(),
        keys,
        {"990101001|2025-09-30": 60, "990101002|2025-09-30": 60},
        np.ones(n, dtype=bool),
    )
    informed = np.clip(0.05 + 0.5 * rows["y_any"].to_numpy() + rng.normal(0, 0.1, n), 0.001, 0.999)
    noise = rng.uniform(0.01, 0.3, n)
    diffs = paired_differences(window, informed, noise, EvaluationSettings(n_resamples=50))
    assert diffs["precision_at_capacity"].low > 0.3
    assert diffs["roc_auc"].low > 0.2
    reverse = paired_differences(window, noise, informed, EvaluationSettings(n_resamples=50))
    assert reverse["precision_at_capacity"].value == pytest.approx(
        -diffs["precision_at_capacity"].value
    )
