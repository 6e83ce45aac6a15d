"""Behavioural tests of the trained model on real feature frames (style rule 21 b and c).

Invariance: identifiers are not evidence. Direction: more unexcused absence never makes a child
safer. Rules: a hard rule gives T1 whatever the model says. Protected attributes: audited, never
used. Calibration: the calibrated probabilities beat the raw ones on the held-out window.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest

from features import transforms as tf
from features.assembly import as_of_calendar
from features.definitions import model_feature_names, protected_feature_names
from features.rawstore import connect
from features.store import FeatureStore
from models.policy import load_policy
from models.scoring import score
from tests._trained_model import Prepared, frame_on


@pytest.fixture(scope="module")
def as_of(trained: Prepared) -> date:
    return trained.data.known_by


@pytest.fixture(scope="module")
def frame(trained: Prepared, as_of: date) -> pd.DataFrame:
    return frame_on(trained, as_of)


@pytest.fixture(scope="module")
def plain(trained: Prepared, as_of: date) -> pd.DataFrame:
    """A scoring run of the real store with the trained model."""
    con = connect(trained.store_path, read_only=True)
    try:
        return score(
            as_of, trained.result.bundle, load_policy(), FeatureStore(con), with_reasons=False
        )
    finally:
        con.close()


class _Altered(FeatureStore):
    def __init__(
        self, con: duckdb.DuckDBPyConnection, change: Callable[[pd.DataFrame], pd.DataFrame]
    ) -> None:
        super().__init__(con)
        self.change = change

    def build(self, as_of: date) -> pd.DataFrame:
        return self.change(super().build(as_of))


def test_changing_ids_township_or_ethnicity_leaves_every_score_unchanged(
    trained: Prepared, frame: pd.DataFrame
) -> None:
    bundle = trained.result.bundle
    before = bundle.predict(frame)
    rng = np.random.default_rng(0)
    renamed = frame.assign(
        child_id=[f"c-{i:016x}" for i in rng.permutation(len(frame))],
        household_pid=[f"h-{i:016x}" for i in rng.permutation(len(frame))],
        township_code="990199999",
        county_code="990199",
        ethnicity=pd.Categorical(
            rng.permutation(frame["ethnicity"].to_numpy()),
            categories=frame["ethnicity"].cat.categories,
        ),
    )
    pd.testing.assert_frame_equal(bundle.predict(renamed), before)


def test_renaming_townships_in_a_scoring_run_changes_no_probability(
    trained: Prepared, as_of: date, plain: pd.DataFrame
) -> None:
    policy = load_policy()
    con = connect(trained.store_path, read_only=True)
    try:

        def rename(frame: pd.DataFrame) -> pd.DataFrame:
            codes = frame["township_code"].astype("object")
            return frame.assign(township_code=codes.map(lambda c: None if c is None else f"{c}9"))

        renamed = score(
            as_of, trained.result.bundle, policy, _Altered(con, rename), with_reasons=False
        )
    finally:
        con.close()
    a, b = plain.set_index("child_id"), renamed.set_index("child_id")
    pd.testing.assert_series_equal(a["p_any"], b.loc[a.index, "p_any"])
    # Capacity is per township whatever its code, so the tiers do not move either.
    pd.testing.assert_series_equal(a["tier"], b.loc[a.index, "tier"])


def test_ten_more_unexcused_absence_days_never_lower_dropout_or_any_risk(
    trained: Prepared, frame: pd.DataFrame, as_of: date
) -> None:
    bundle = trained.result.bundle
    calendar = as_of_calendar([as_of]).iloc[0]
    more = frame.copy()
    # Ten more school days missed in the last 30 days: every window that holds them counts
    # them, the rates over the calendar's school days rise, and so does this term's trend.
    for window in ("30d", "90d", "180d", "365d", "current_term"):
        more[f"unexcused_absence_days_{window}"] += 10
    for window in ("30d", "90d", "365d", "current_term"):
        days = more[f"unexcused_absence_days_{window}"]
        school_days = pd.Series(int(calendar[f"school_days_{window}"]), index=more.index)
        more[f"unexcused_absence_rate_{window}"] = tf.absence_rate(days, school_days)
    more["unexcused_absence_trend"] = tf.rate_change(
        more["unexcused_absence_rate_current_term"], more["unexcused_absence_rate_previous_term"]
    )
    more["absence_weeks_90d"] += 2
    more["absence_weeks_365d"] += 2
    before, after = bundle.predict(frame), bundle.predict(more)
    for column in ("p_dropout", "p_any"):
        assert (after[column] >= before[column] - 1e-12).all(), column
    # And the change matters: absence is evidence of dropout risk, not ignored.
    assert (after["p_dropout"] > before["p_dropout"]).mean() > 0.2


def test_a_hard_rule_gives_t1_whatever_the_model_says(
    trained: Prepared, as_of: date, plain: pd.DataFrame
) -> None:
    policy = load_policy()
    con = connect(trained.store_path, read_only=True)
    try:
        calm = plain.loc[(plain["tier"] == "T4") & (plain["p_any"] < plain["p_any"].median())]
        chosen = set(calm["child_id"].head(25))
        assert len(chosen) == 25

        def living_alone(frame: pd.DataFrame) -> pd.DataFrame:
            # The newest record or visit says the child lives alone (the derived feature the
            # hard rule reads), whatever the model makes of the rest of the frame.
            out = frame.copy()
            rows = out["child_id"].isin(chosen) & (out["age_years"] < 16)
            out["lives_alone"] = out["lives_alone"].mask(rows, True)
            arrangement = out["living_arrangement"].astype("object")
            arrangement[rows] = "alone"
            out["living_arrangement"] = pd.Categorical(
                arrangement, categories=frame["living_arrangement"].cat.categories
            )
            return out

        altered = score(
            as_of, trained.result.bundle, policy, _Altered(con, living_alone), with_reasons=False
        )
    finally:
        con.close()
    hit = altered.loc[altered["child_id"].isin(chosen)]
    assert (hit["tier"] == "T1").all()
    assert hit["rules_fired"].map(lambda r: "hard:living_alone_unsupervised" in r).all()
    assert (hit["tier_source"] == "hard_rule").all()


def test_protected_attributes_are_audited_never_features(trained: Prepared) -> None:
    protected = set(protected_feature_names())
    assert protected == {"ethnicity"}
    assert not protected & set(model_feature_names())
    assert not protected & set(trained.result.bundle.feature_names)
    audited = set(trained.result.fairness.to_frame()["attribute"])
    assert {"ethnicity", "sex", "age_band", "township"} <= audited


def test_calibrated_probabilities_beat_the_raw_ones_on_the_test_window(
    trained: Prepared,
) -> None:
    calibrated = trained.result.test["any"].values()
    raw = trained.result.uncalibrated.values()
    assert calibrated["brier"] < raw["brier"]
    assert calibrated["ece"] < raw["ece"]
    # Calibration is a monotone map: it cannot change the ranking much (ties aside).
    assert calibrated["roc_auc"] == pytest.approx(raw["roc_auc"], abs=0.01)


def test_the_model_ranks_well_above_chance_and_flags_borderline_children(
    trained: Prepared,
) -> None:
    result = trained.result
    auc = result.test["any"].values()["roc_auc"]
    # A 3,000-child test window holds about 170 events (interval about ±0.04); published
    # models of these children reach 0.72-0.83 and this population's oracle about 0.78 on the
    # same rows. Well above chance, and above every baseline on the same window.
    assert auc > 0.65
    assert auc > max(b.values()["roc_auc"] for b in result.baselines.values())
    logged = result.test_predictions
    # Children whose interval straddles a tier threshold are flagged for review, and only they.
    assert logged["borderline"].any()
    assert (logged["p_low"] <= logged["p_any"]).all() and (
        logged["p_any"] <= logged["p_high"]
    ).all()
