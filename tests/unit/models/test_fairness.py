"""Fairness audit: hand-counted figures, bias detection, small groups, band edges, JSON, order."""

from __future__ import annotations

import json
import math
from functools import cache

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from models.fairness import (
    BLOCKING_METRICS,
    CHECKED_METRICS,
    COLUMNS,
    METRICS,
    MISSING_GROUP,
    FairnessReport,
    age_band,
    blocking_flags,
    calibration_ratio,
    fairness_audit,
    false_negative_rate,
    false_omission_rate,
    precision,
    selection_label,
)
from models.metrics import expected_calibration_error
from models.policy import Range, load_policy

from ._simulated import sigmoid

CUTS = ("T1", "T2", "T3")


@cache
def policy_band() -> Range:
    """The disparity band of the shipped default policy (0.8-1.25)."""
    return load_policy().fairness.disparity_band


def rows_frame(rows: list[tuple[str, int, float, str]]) -> pd.DataFrame:
    """A scoring frame from (sex, outcome, probability, tier) tuples."""
    return pd.DataFrame(rows, columns=["sex", "y", "p", "tier"])


def pick(table: pd.DataFrame, metric: str, group: str, threshold: str | None = None) -> pd.Series:
    """The one row of ``table`` for (metric, group, threshold)."""
    at = (table["metric"] == metric) & (table["group"] == group)
    at &= table["threshold"].isna() if threshold is None else table["threshold"] == threshold
    found = table.loc[at]
    assert len(found) == 1, (metric, group, threshold)
    return found.iloc[0]


# Girls: 3 events (one selected at T1-T2), 1 false alarm; boys: 2 events, both selected.
HAND = rows_frame(
    [
        ("female", 1, 0.6, "T1"),
        ("female", 1, 0.3, "T3"),
        ("female", 1, 0.2, "T4"),
        ("female", 0, 0.5, "T2"),
        ("female", 0, 0.1, "T4"),
        ("female", 0, 0.1, "T4"),
        ("male", 1, 0.7, "T1"),
        ("male", 1, 0.4, "T2"),
        ("male", 0, 0.3, "T3"),
        ("male", 0, 0.2, "T4"),
        ("male", 0, 0.1, "T4"),
        ("male", 0, 0.1, "T4"),
    ]
)


def hand_audit(**kwargs: object) -> FairnessReport:
    options: dict[str, object] = {"min_group_size": 1, "min_events": 1} | kwargs
    return fairness_audit(
        HAND,
        y_true="y",
        score="p",
        tier="tier",
        groups={"sex": "sex"},
        thresholds=CUTS,
        band=policy_band(),
        **options,  # type: ignore[arg-type]
    )


def test_audit_figures_equal_a_hand_count() -> None:
    table = hand_audit().to_frame()
    # At T1-T2 (tiers T1 and T2 selected): girls TP 1, FN 2, FP 1, TN 2; boys TP 2, FN 0, FP 0,
    # TN 4; everyone TP 3, FN 2, FP 1, TN 6.
    expected = {
        # metric: (girls, boys, overall)
        "false_negative_rate": (2 / 3, 0.0, 2 / 5),
        "false_omission_rate": (2 / 4, 0 / 4, 2 / 8),
        "selection_rate": (2 / 6, 2 / 6, 4 / 12),
        "precision": (1 / 2, 2 / 2, 3 / 4),
        "false_positive_rate": (1 / 3, 0 / 4, 1 / 7),
    }
    for metric, (girls, boys, overall) in expected.items():
        for group, value in (("female", girls), ("male", boys)):
            row = pick(table, metric, group, "T1-T2")
            assert row["value"] == pytest.approx(value), (metric, group)
            assert row["overall"] == pytest.approx(overall), metric
            assert row["ratio"] == pytest.approx(value / overall), (metric, group)
    girls_fnr = pick(table, "false_negative_rate", "female", "T1-T2")
    assert (girls_fnr["n"], girls_fnr["events"], girls_fnr["denominator"]) == (6, 3, 3)
    assert pick(table, "false_omission_rate", "female", "T1-T2")["denominator"] == 4
    assert pick(table, "precision", "male", "T1-T2")["denominator"] == 2
    assert pick(table, "selection_rate", "female", "T1")["value"] == pytest.approx(1 / 6)
    assert pick(table, "selection_rate", "male", "T1-T3")["value"] == pytest.approx(3 / 6)

    # Calibration: both groups' probabilities sum to 1.8; girls had 3 events, boys 2.
    cal = {g: pick(table, "calibration_ratio", g) for g in ("female", "male")}
    assert cal["female"]["value"] == pytest.approx(3 / 1.8)
    assert cal["male"]["value"] == pytest.approx(2 / 1.8)
    assert cal["female"]["overall"] == pytest.approx(5 / 3.6)
    assert cal["female"]["ratio"] == pytest.approx(1.2)
    assert cal["male"]["ratio"] == pytest.approx(0.8)  # exactly on the band's edge: passes
    assert cal["male"]["status"] == "within_band"
    assert pick(table, "mean_predicted", "female")["value"] == pytest.approx(0.3)
    assert pick(table, "base_rate", "male")["value"] == pytest.approx(1 / 3)
    girl_rows = HAND[HAND["sex"] == "female"]
    assert pick(table, "ece", "female")["value"] == pytest.approx(
        expected_calibration_error(girl_rows["y"], girl_rows["p"])
    )
    assert pick(table, "ece", "female")["status"] == "descriptive"

    # Girls are missed more than everyone (5/3 of the overall FNR): flagged above the band.
    assert bool(girls_fnr["flagged"]) and girls_fnr["direction"] == "above"
    boys_fnr = pick(table, "false_negative_rate", "male", "T1-T2")
    assert boys_fnr["flagged"] and boys_fnr["direction"] == "below"


def simulated(n: int = 6000, *, girls_scale: float = 1.0, seed: int = 3) -> pd.DataFrame:
    """Children with a known risk, scored by it (girls' scores scaled), tiered by rank.

    Tiers follow the expected mix of the default policy: the top 5% T1, the next 8% T2, the
    next 17% T3, the rest T4.
    """
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n)
    true_p = sigmoid(rng.normal(-2.6, 1.0, n))
    y = (rng.random(n) < true_p).astype(np.int64)
    score = np.where(sex == "female", true_p * girls_scale, true_p)
    rank = pd.Series(score).rank(ascending=False, method="first").to_numpy() / n
    tier = np.select([rank <= 0.05, rank <= 0.13, rank <= 0.30], ["T1", "T2", "T3"], "T4")
    return pd.DataFrame(
        {
            "sex": sex,
            "y": y,
            "p": score,
            "tier": tier,
            "township": rng.choice(["500101", "500102", "500103"], n),
            "household": rng.integers(0, n // 2, n),
        }
    )


def audit_sex(frame: pd.DataFrame, **kwargs: object) -> FairnessReport:
    return fairness_audit(
        frame,
        y_true="y",
        score="p",
        tier="tier",
        groups={"sex": "sex"},
        thresholds=CUTS,
        band=policy_band(),
        **kwargs,  # type: ignore[arg-type]
    )


def test_under_scoring_girls_flags_their_false_negative_rate() -> None:
    report = audit_sex(simulated(girls_scale=0.4))
    blocking = blocking_flags(report)
    girls_missed = blocking[
        (blocking["metric"] == "false_negative_rate") & (blocking["group"] == "female")
    ]
    # At T1 nearly every child with an event is missed, girls or not (FNR about 0.9), so the
    # ratio has no room to leave the band there; the wider cuts show the bias.
    assert set(girls_missed["threshold"]) == {"T1-T2", "T1-T3"}
    assert set(girls_missed["direction"]) == {"above"}
    assert report.summary()["false_negative_rate"] >= 3
    # Scores scaled by 0.4 also show up as under-prediction for girls.
    assert pick(report.to_frame(), "calibration_ratio", "female")["flagged"]


def test_unbiased_score_raises_no_sex_flag_on_fnr_or_for() -> None:
    report = audit_sex(simulated(girls_scale=1.0))
    table = report.to_frame()
    primary = table[table["metric"].isin(BLOCKING_METRICS)]
    assert set(primary["status"]) == {"within_band"}
    assert blocking_flags(report).empty
    summary = report.summary()
    assert list(summary) == list(CHECKED_METRICS)
    assert [summary[m] for m in ("false_negative_rate", "false_omission_rate")] == [0, 0]
    assert summary["selection_rate"] == summary["calibration_ratio"] == 0


def test_figures_agree_with_a_plain_metricframe_on_the_rows() -> None:
    # The audit hands fairlearn collapsed rows with frequency weights; the figures must be
    # those of an ordinary MetricFrame over every child.
    frame = simulated(girls_scale=0.7, n=3000)
    table = audit_sex(frame).to_frame()
    selected = (frame["tier"].isin(["T1", "T2"])).astype(int)
    plain = MetricFrame(
        metrics={
            "false_negative_rate": false_negative_rate,
            "false_omission_rate": false_omission_rate,
            "precision": precision,
        },
        y_true=frame["y"],
        y_pred=selected,
        sensitive_features=frame["sex"],
    )
    for group in ("female", "male"):
        for metric in ("false_negative_rate", "false_omission_rate", "precision"):
            row = pick(table, metric, group, "T1-T2")
            assert row["value"] == pytest.approx(plain.by_group.loc[group, metric], rel=1e-12)
            assert row["overall"] == pytest.approx(plain.overall[metric], rel=1e-12)
    calibration = MetricFrame(
        metrics=calibration_ratio,
        y_true=frame["y"],
        y_pred=frame["p"],
        sensitive_features=frame["sex"],
    )
    girls = pick(table, "calibration_ratio", "female")
    assert girls["value"] == pytest.approx(calibration.by_group.loc["female"], rel=1e-12)


def test_small_groups_are_marked_insufficient_not_flagged_or_passed() -> None:
    frame = simulated(girls_scale=0.4, n=3000)
    # Township 500199 has 12 children; township 500198 has 40 children but only 3 events.
    frame.loc[:11, "township"] = "500199"
    few_events = frame.index[(frame["y"] == 0) & (frame.index >= 12)][:37]
    frame.loc[few_events, "township"] = "500198"
    frame.loc[frame.index[frame["y"] == 1][-3:], "township"] = "500198"
    report = fairness_audit(
        frame,
        y_true="y",
        score="p",
        tier="tier",
        groups={"township": "township"},
        thresholds=CUTS,
        band=policy_band(),
    )
    table = report.to_frame()
    for small in ("500199", "500198"):
        rows = table[table["group"] == small]
        assert len(rows) == 3 * 5 + 4  # every row of the group, none dropped
        assert set(rows["status"]) == {"insufficient_data"}
        assert not rows["flagged"].any()
    assert (table.loc[table["group"] == "500198", "events"] == 3).all()
    assert report.to_dict()["insufficient"] == 2 * (3 * 5 + 4)


def test_precision_resting_on_few_selected_children_is_insufficient() -> None:
    # Enough children and events, but only 2 girls in T1: their T1 precision says little.
    rows = [("female", int(i % 5 == 0), 0.2, "T4") for i in range(60)]
    rows[0], rows[1] = ("female", 1, 0.9, "T1"), ("female", 0, 0.8, "T1")
    rows += [("male", int(i % 4 == 0), 0.3, "T1" if i < 20 else "T4") for i in range(60)]
    table = fairness_audit(
        rows_frame(rows),
        y_true="y",
        score="p",
        tier="tier",
        groups={"sex": "sex"},
        thresholds=["T1"],
        band=policy_band(),
    ).to_frame()
    assert pick(table, "precision", "female", "T1")["status"] == "insufficient_data"
    assert pick(table, "precision", "female", "T1")["denominator"] == 2
    assert pick(table, "false_negative_rate", "female", "T1")["status"] != "insufficient_data"


def edge_frame(missed_a: int, missed_b: int) -> pd.DataFrame:
    """Groups a and b, 40 children each with 10 events, of which ``missed_*`` are in T4."""
    rows = []
    for group, missed in (("a", missed_a), ("b", missed_b)):
        rows += [(group, 1, 0.5, "T4" if i < missed else "T2") for i in range(10)]
        rows += [(group, 0, 0.1, "T4") for _ in range(30)]
    return rows_frame(rows)


@pytest.mark.parametrize(
    ("missed_a", "missed_b", "ratio_a", "status_a", "status_b"),
    [
        (4, 6, 0.8, "within_band", "within_band"),  # a: 0.4 / 0.5, b: 0.6 / 0.5 = 1.2
        (5, 3, 1.25, "within_band", "flagged"),  # a: 0.5 / 0.4, b: 0.3 / 0.4 = 0.75
        (3, 6, 2 / 3, "flagged", "flagged"),  # a: 0.3 / 0.45, b: 0.6 / 0.45 = 4/3
    ],
)
def test_band_edges_are_inside_the_band(
    missed_a: int, missed_b: int, ratio_a: float, status_a: str, status_b: str
) -> None:
    table = fairness_audit(
        edge_frame(missed_a, missed_b),
        y_true="y",
        score="p",
        tier="tier",
        groups={"sex": "sex"},
        thresholds=["T2"],
        band=policy_band(),
    ).to_frame()
    a = pick(table, "false_negative_rate", "a", "T1-T2")
    b = pick(table, "false_negative_rate", "b", "T1-T2")
    assert a["ratio"] == pytest.approx(ratio_a)
    assert (a["status"], b["status"]) == (status_a, status_b)


def test_a_custom_band_is_applied_and_validated() -> None:
    table = fairness_audit(
        edge_frame(4, 6),
        y_true="y",
        score="p",
        tier="tier",
        groups={"sex": "sex"},
        thresholds=["T2"],
        band=(0.9, 1.1),
    ).to_frame()
    assert pick(table, "false_negative_rate", "a", "T1-T2")["status"] == "flagged"
    with pytest.raises(ValueError, match="parity"):
        fairness_audit(
            edge_frame(4, 6),
            y_true="y",
            score="p",
            tier="tier",
            groups={"sex": "sex"},
            thresholds=["T2"],
            band=(1.0, 1.25),
        )


def test_equal_zero_rates_are_parity_and_zero_reference_gives_an_infinite_ratio() -> None:
    # Every event is in T1-T2 for both groups: FNR 0 everywhere, ratio 0/0 read as 1.
    table = fairness_audit(
        edge_frame(0, 0),
        y_true="y",
        score="p",
        tier="tier",
        groups={"sex": "sex"},
        thresholds=["T2"],
        band=policy_band(),
    ).to_frame()
    assert pick(table, "false_negative_rate", "a", "T1-T2")["ratio"] == 1.0
    assert pick(table, "false_negative_rate", "a", "T1-T2")["status"] == "within_band"
    # Against the largest group (a, by the tie rule) with FNR 0, b's FNR 0.2 is infinitely
    # worse: flagged, and its ratio is null in JSON.
    report = fairness_audit(
        edge_frame(0, 2),
        y_true="y",
        score="p",
        tier="tier",
        groups={"sex": "sex"},
        thresholds=["T2"],
        band=policy_band(),
        reference="largest",
    )
    b = pick(report.to_frame(), "false_negative_rate", "b", "T1-T2")
    assert math.isinf(b["ratio"]) and b["flagged"] and b["reference"] == "a"
    record = next(
        r
        for r in report.to_dict()["rows"]
        if r["group"] == "b" and r["metric"] == "false_negative_rate"
    )
    assert record["ratio"] is None and record["flagged"] is True


def test_largest_group_reference_has_ratio_one_for_itself() -> None:
    frame = simulated(n=2000)
    frame.loc[frame.index[:1400], "sex"] = "male"  # boys are the largest group
    table = audit_sex(frame, reference="largest").to_frame()
    boys = table[table["group"] == "male"]
    assert set(boys["reference"]) == {"male"}
    assert np.allclose(boys["ratio"].dropna(), 1.0)
    girls = pick(table, "false_negative_rate", "female", "T1-T3")
    assert girls["ratio"] == pytest.approx(
        girls["value"] / pick(table, "false_negative_rate", "male", "T1-T3")["value"]
    )


def test_to_dict_is_strict_json_with_nan_as_null() -> None:
    report = hand_audit()
    payload = report.to_dict()
    text = json.dumps(payload, allow_nan=False)  # raises on NaN or infinity
    again = json.loads(text)
    assert again["n_rows"] == 12 and again["n_events"] == 5
    assert again["settings"]["band"] == {"low": 0.8, "high": 1.25, "closed": True}
    assert again["summary"] == report.summary()
    first = again["rows"][0]
    assert list(first) == list(COLUMNS)
    assert first["metric"] == "false_negative_rate"
    assert first["value_low"] is None  # no clusters, no interval
    calibration = next(r for r in again["rows"] if r["metric"] == "calibration_ratio")
    assert calibration["threshold"] is None
    assert calibration["priority"] == 2
    descriptive = next(r for r in again["rows"] if r["metric"] == "ece")
    assert descriptive["priority"] is None and descriptive["direction"] is None


def test_rows_follow_the_assistive_priority_order() -> None:
    table = audit_sex(simulated(n=2000)).to_frame()
    order = list(dict.fromkeys(table["metric"]))
    assert order == list(METRICS)
    assert order[:2] == ["false_negative_rate", "false_omission_rate"]
    assert order[2:4] == ["selection_rate", "calibration_ratio"]
    fnr = table[table["metric"] == "false_negative_rate"]
    assert list(dict.fromkeys(fnr["threshold"])) == ["T1", "T1-T2", "T1-T3"]


def test_flags_summary_and_blocking_flags_agree() -> None:
    frame = simulated(girls_scale=0.4, n=3000)
    report = audit_sex(frame)
    flags = report.flags()
    assert flags["flagged"].all() and set(flags["status"]) == {"flagged"}
    assert sum(report.summary().values()) == len(flags)
    blocking = blocking_flags(report)
    assert set(blocking["metric"]) <= set(BLOCKING_METRICS)
    assert len(blocking) == sum(report.summary()[m] for m in BLOCKING_METRICS)


def test_missing_group_values_form_their_own_group() -> None:
    frame = simulated(n=2000)
    disability = pd.Series(np.arange(2000) % 3 == 0, dtype=object)
    disability[np.arange(2000) % 10 == 0] = None
    frame["disability"] = disability
    table = fairness_audit(
        frame,
        y_true="y",
        score="p",
        tier="tier",
        groups={"disability": "disability"},
        thresholds=CUTS,
        band=policy_band(),
    ).to_frame()
    assert list(dict.fromkeys(table["group"])) == ["False", "True", MISSING_GROUP]
    assert pick(table, "base_rate", MISSING_GROUP)["n"] == 200
    assert table.groupby("metric")["n"].sum().loc["base_rate"] == 2000


def test_cluster_bootstrap_intervals_bracket_the_figure_and_repeat_with_the_seed() -> None:
    frame = simulated(girls_scale=0.6, n=2000)
    first = audit_sex(frame, clusters="household", n_resamples=60, seed=4).to_frame()
    again = audit_sex(frame, clusters=frame["household"], n_resamples=60, seed=4).to_frame()
    pd.testing.assert_frame_equal(first, again)
    checked = first[first["metric"] != "ece"]
    assert (checked["value_low"] <= checked["value"] + 1e-12).all()
    assert (checked["value"] <= checked["value_high"] + 1e-12).all()
    assert (checked["ratio_low"] <= checked["ratio_high"]).all()
    assert first.loc[first["metric"] == "ece", "value_low"].isna().all()


PERMUTATION_OPTIONS: dict[str, object] = {
    "y_true": "y",
    "score": "p",
    "tier": "tier",
    "groups": {"sex": "sex", "township": "township"},
    "thresholds": CUTS,
    "band": (0.8, 1.25),
    "clusters": "household",
    "n_resamples": 10,
    "min_group_size": 5,
    "min_events": 2,
}


@cache
def small_population(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """48 children with tied probabilities, a missing township and shared households, and
    their audit (computed once per seed: the audit is the slow part of the property test)."""
    rng = np.random.default_rng(seed)
    n = 48
    frame = pd.DataFrame(
        {
            "y": rng.integers(0, 2, n),
            "p": rng.choice([0.05, 0.1, 0.3, 0.6], n),
            "tier": rng.choice(["T1", "T2", "T3", "T4"], n),
            "sex": rng.choice(["female", "male"], n),
            "township": rng.choice(np.array(["500101", "500102", None], dtype=object), n),
            "household": rng.integers(0, 20, n),
        }
    )
    return frame, fairness_audit(frame, **PERMUTATION_OPTIONS).to_frame()  # type: ignore[arg-type]


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2), order=st.permutations(range(48)))
def test_permuting_rows_leaves_the_report_unchanged(seed: int, order: list[int]) -> None:
    frame, before = small_population(seed)
    shuffled = frame.iloc[order].reset_index(drop=True)
    after = fairness_audit(shuffled, **PERMUTATION_OPTIONS).to_frame()  # type: ignore[arg-type]
    # Exactly equal, floating-point sums and bootstrap draws included.
    pd.testing.assert_frame_equal(before, after, check_exact=True)


def test_age_band_uses_completed_years() -> None:
    ages = pd.Series([0.0, 5.99, 6.0, 11.99, 12.0, 15.5, 16.0, np.nan], index=list("abcdefgh"))
    bands = age_band(ages)
    assert bands.index.equals(ages.index)
    assert bands.tolist()[:7] == ["0-5", "0-5", "6-11", "6-11", "12-15", "12-15", "16+"]
    assert pd.isna(bands.iloc[7])
    assert list(bands.cat.categories) == ["0-5", "6-11", "12-15", "16+"]
    with pytest.raises(ValueError, match="negative"):
        age_band([-1.0])


def test_age_bands_are_audited_in_age_order() -> None:
    frame = simulated(n=2000)
    frame["age_years"] = np.random.default_rng(1).uniform(0, 16, len(frame))
    table = fairness_audit(
        frame,
        y_true="y",
        score="p",
        tier="tier",
        groups={"age_band": age_band(frame["age_years"])},
        thresholds=CUTS,
        band=policy_band(),
    ).to_frame()
    assert list(dict.fromkeys(table["group"])) == ["0-5", "6-11", "12-15"]


def test_selection_labels_name_cumulative_cuts() -> None:
    assert [selection_label(t) for t in CUTS] == ["T1", "T1-T2", "T1-T3"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"thresholds": ["T4"]}, "selects every child"),
        ({"tier": "bad_tier"}, "tier"),
        ({"score": "bad_p"}, "probabilities"),
        ({"y_true": "bad_y"}, "0/1"),
        ({"groups": {}}, "at least one"),
        ({"reference": "smallest"}, "reference"),
        ({"y_true": "nope"}, "lacks"),
        ({"frame": HAND.iloc[:0]}, "no rows"),
    ],
)
def test_invalid_inputs_are_refused_with_a_named_reason(
    change: dict[str, object], message: str
) -> None:
    frame = HAND.assign(bad_tier="T5", bad_p=1.5, bad_y=2)
    options: dict[str, object] = {
        "y_true": "y",
        "score": "p",
        "tier": "tier",
        "groups": {"sex": "sex"},
        "thresholds": CUTS,
        "band": policy_band(),
    } | change
    frame = options.pop("frame", frame)  # type: ignore[assignment]
    with pytest.raises(ValueError, match=message):
        fairness_audit(frame, **options)  # type: ignore[arg-type]
