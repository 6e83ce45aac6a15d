"""Evaluation metrics: hand-computed values, tie rules, ECE binning and cluster bootstraps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from models.metrics import (
    EvaluationReport,
    brier,
    cluster_bootstrap_indices,
    compare_to_oracle,
    evaluate,
    expected_calibration_error,
    pr_auc,
    precision_at_capacity,
    recall_at_capacity,
    roc_auc,
    select_at_capacity,
)

from ._simulated import simulate_children

# Area A: scores .9 .8 .7 .1 with outcomes 1 0 1 0; area B: .6 .5 .4 with outcomes 0 1 1.
AREAS = np.array(["A", "A", "A", "A", "B", "B", "B"])
SCORES = np.array([0.9, 0.8, 0.7, 0.1, 0.6, 0.5, 0.4])
OUTCOMES = np.array([1, 0, 1, 0, 0, 1, 1])


def test_precision_and_recall_at_capacity_match_a_hand_count() -> None:
    # Capacity A=2, B=1 visits: A's .9 (event) and .8 (none), B's .6 (none) -> 1 of 3 selected
    # had the event, and 1 of the 4 events was selected.
    capacity = {"A": 2, "B": 1}
    assert precision_at_capacity(OUTCOMES, SCORES, AREAS, capacity) == pytest.approx(1 / 3)
    assert recall_at_capacity(OUTCOMES, SCORES, AREAS, capacity) == pytest.approx(1 / 4)
    # Capacity A=3, B=2: A's .9 .8 .7 (2 events), B's .6 .5 (1 event) -> 3/5 and 3/4.
    capacity = {"A": 3, "B": 2}
    assert precision_at_capacity(OUTCOMES, SCORES, AREAS, capacity) == pytest.approx(3 / 5)
    assert recall_at_capacity(OUTCOMES, SCORES, AREAS, capacity) == pytest.approx(3 / 4)


def test_selection_is_per_area_not_global() -> None:
    chosen = select_at_capacity(SCORES, AREAS, {"A": 1, "B": 2}, y=OUTCOMES)
    # Globally .8 outranks .6 and .5, but A can only visit one child.
    assert chosen.tolist() == [True, False, False, False, True, True, False]


def test_capacity_larger_than_the_area_selects_everyone_in_it() -> None:
    chosen = select_at_capacity(SCORES, AREAS, {"A": 10, "B": 0}, y=OUTCOMES)
    assert chosen.tolist() == [True] * 4 + [False] * 3


@pytest.mark.parametrize(
    ("tie_break", "expected"), [("worst", 0.0), ("best", 1.0), ("stable", 0.5)]
)
def test_ties_at_the_cut_are_broken_by_the_chosen_rule(tie_break: str, expected: float) -> None:
    y = np.array([0, 1, 1, 0])
    scores = np.full(4, 0.5)
    areas = np.array(["A"] * 4)
    value = precision_at_capacity(y, scores, areas, {"A": 2}, tie_break=tie_break)  # type: ignore[arg-type]
    assert value == expected


@settings(max_examples=50, deadline=None)
@given(st.permutations(list(range(7))))
def test_worst_case_ties_do_not_depend_on_row_order(order: list[int]) -> None:
    scores = np.array([0.5, 0.5, 0.5, 0.5, 0.3, 0.3, 0.9])
    y = np.array([1, 0, 1, 0, 1, 0, 0])
    areas = np.array(["A", "A", "A", "B", "B", "B", "A"])
    capacity = {"A": 2, "B": 1}
    idx = np.array(order)
    assert precision_at_capacity(
        y[idx], scores[idx], areas[idx], capacity
    ) == precision_at_capacity(y, scores, areas, capacity)


def test_an_area_without_capacity_is_an_error() -> None:
    with pytest.raises(ValueError, match="no capacity given for areas"):
        precision_at_capacity(OUTCOMES, SCORES, AREAS, {"A": 2})


def test_worst_case_ties_need_outcomes() -> None:
    with pytest.raises(ValueError, match="needs the outcomes"):
        select_at_capacity(SCORES, AREAS, {"A": 1, "B": 1})


def test_point_metrics_agree_with_sklearn() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(500)
    y = (rng.random(500) < p).astype(int)
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p))
    assert pr_auc(y, p) == pytest.approx(average_precision_score(y, p))
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p))


def test_undefined_metrics_are_nan_not_errors() -> None:
    assert np.isnan(roc_auc([0, 0, 0], [0.1, 0.2, 0.3]))
    assert np.isnan(pr_auc([0, 0, 0], [0.1, 0.2, 0.3]))
    assert np.isnan(recall_at_capacity([0, 0], [0.1, 0.2], ["A", "A"], {"A": 1}))
    assert np.isnan(precision_at_capacity([0, 1], [0.1, 0.2], ["A", "A"], {"A": 0}))


def test_ece_of_true_probabilities_is_small() -> None:
    rng = np.random.default_rng(1)
    p = rng.beta(1, 8, 50_000)
    y = (rng.random(len(p)) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.005


def test_ece_measures_a_constant_overestimate() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(0.05, 0.5, 50_000)
    y = (rng.random(len(p)) < p).astype(int)
    assert expected_calibration_error(y, p + 0.05) == pytest.approx(0.05, abs=0.005)


def test_ece_uses_equal_mass_bins_and_keeps_ties_together() -> None:
    # Two bins of two rows: |1 - 0.2| and |1 - 1.6| over 4 rows = 0.35.
    assert expected_calibration_error(
        [0, 1, 0, 1], [0.1, 0.1, 0.8, 0.8], n_bins=2
    ) == pytest.approx(0.35)
    # One bin is the difference of the means.
    assert expected_calibration_error(
        [0, 1, 1, 1], [0.5, 0.5, 0.5, 0.5], n_bins=1
    ) == pytest.approx(0.25)
    # Three tied rows cannot be split by a bin edge: they form one bin with the 4th row apart.
    assert expected_calibration_error([1, 0, 0, 1], [0.2, 0.2, 0.2, 0.9], n_bins=2) == (
        pytest.approx((abs(1 - 0.6) + abs(1 - 0.9)) / 4)
    )


@settings(max_examples=40, deadline=None)
@given(st.permutations(list(range(35))))
def test_ece_does_not_depend_on_row_order(order: list[int]) -> None:
    p = np.repeat([0.1, 0.2, 0.2, 0.4, 0.7], 7)
    y = np.tile([0, 1, 0, 0, 1, 1, 0], 5)
    idx = np.array(order)
    assert expected_calibration_error(y[idx], p[idx], n_bins=4) == pytest.approx(
        expected_calibration_error(y, p, n_bins=4)
    )


def test_cluster_bootstrap_takes_whole_clusters() -> None:
    clusters = np.array(["h1", "h1", "h1", "h2", "h3", "h3"])
    for rows in cluster_bootstrap_indices(clusters, n_resamples=20, seed=0):
        drawn = clusters[rows]
        # Every drawn cluster appears with all its rows, as many times as it was drawn.
        for household, size in (("h1", 3), ("h2", 1), ("h3", 2)):
            assert np.sum(drawn == household) % size == 0
        assert len(np.unique(rows)) <= len(rows)


@pytest.fixture(scope="module")
def evaluation_data() -> dict[str, np.ndarray]:
    frame = simulate_children(1500, seed=21)
    rng = np.random.default_rng(0)
    noisy = np.clip(frame["true_p"].to_numpy() + rng.normal(0, 0.05, len(frame)), 0.001, 0.999)
    return {
        "y": frame["y"].to_numpy(),
        "p": noisy,
        "true_p": frame["true_p"].to_numpy(),
        "household": frame["household_pid"].to_numpy(),
        "village": frame["village_code"].to_numpy(),
    }


def test_evaluate_reports_every_metric_with_an_interval_around_its_value(
    evaluation_data: dict[str, np.ndarray],
) -> None:
    d = evaluation_data
    capacity = dict.fromkeys(np.unique(d["village"]), 5)
    report = evaluate(
        d["y"],
        d["p"],
        clusters=d["household"],
        areas=d["village"],
        capacity=capacity,
        n_resamples=100,
    )
    assert set(report.metrics) == {
        "roc_auc",
        "pr_auc",
        "brier",
        "ece",
        "precision_at_capacity",
        "recall_at_capacity",
    }
    for name, estimate in report.metrics.items():
        assert estimate.low <= estimate.value <= estimate.high, name
        assert estimate.n_resamples == 100
    assert report.metrics["roc_auc"].value == pytest.approx(roc_auc_score(d["y"], d["p"]))
    assert report.n_clusters == len(np.unique(d["household"]))
    assert report.n_positive == int(d["y"].sum())


def test_evaluate_is_reproducible_for_a_seed(evaluation_data: dict[str, np.ndarray]) -> None:
    d = evaluation_data
    first = evaluate(d["y"], d["p"], clusters=d["household"], n_resamples=50, seed=4)
    second = evaluate(d["y"], d["p"], clusters=d["household"], n_resamples=50, seed=4)
    assert first.to_dict() == second.to_dict()


def test_cluster_intervals_are_wider_than_row_intervals_for_repeated_rows() -> None:
    # Each child appears at five as-of dates with the same score and outcome: resampling rows
    # would treat five copies as five children.
    rng = np.random.default_rng(3)
    p = rng.beta(1, 6, 400)
    y = (rng.random(400) < p).astype(int)
    child = np.repeat(np.arange(400), 5)
    by_child = evaluate(np.repeat(y, 5), np.repeat(p, 5), clusters=child, n_resamples=150)
    by_row = evaluate(np.repeat(y, 5), np.repeat(p, 5), clusters=np.arange(2000), n_resamples=150)
    for name in ("roc_auc", "brier"):
        child_width = by_child.metrics[name].high - by_child.metrics[name].low
        row_width = by_row.metrics[name].high - by_row.metrics[name].low
        assert child_width > 1.6 * row_width, name


def test_report_serialises_to_strict_json() -> None:
    report = evaluate(
        [0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], clusters=["a", "a", "b", "c"], n_resamples=5
    )
    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert payload["metrics"]["roc_auc"] == {
        "value": None,
        "low": None,
        "high": None,
        "level": 0.95,
        "n_resamples": 0,
    }
    assert payload["metrics"]["brier"]["value"] == pytest.approx(0.075)
    assert payload["settings"]["resampling_unit"] == "cluster"


def test_areas_and_capacity_go_together() -> None:
    with pytest.raises(ValueError, match="both or neither"):
        evaluate([0, 1], [0.1, 0.9], clusters=[1, 2], areas=["A", "A"])


def test_compare_to_oracle_gives_ratios(evaluation_data: dict[str, np.ndarray]) -> None:
    d = evaluation_data
    model = evaluate(d["y"], d["p"], clusters=d["household"], n_resamples=10)
    oracle = evaluate(d["y"], d["true_p"], clusters=d["household"], n_resamples=10)
    ratios = compare_to_oracle(model, oracle)
    assert set(ratios) == {"roc_auc", "pr_auc", "brier", "ece", "roc_auc_lift"}
    assert ratios["roc_auc"] == pytest.approx(
        model.metrics["roc_auc"].value / oracle.metrics["roc_auc"].value
    )
    assert ratios["roc_auc"] < 1.0  # noise on the true probability can only lose ranking
    assert ratios["brier"] > 1.0
    assert ratios["roc_auc_lift"] < ratios["roc_auc"]


def test_compare_to_oracle_accepts_serialised_reports() -> None:
    model: EvaluationReport | dict[str, object] = {"roc_auc": {"value": 0.7}, "ece": 0.02}
    oracle = {"roc_auc": {"value": 0.8}, "ece": 0.0, "brier": 0.1}
    ratios = compare_to_oracle(model, oracle)
    assert ratios["roc_auc"] == pytest.approx(0.875)
    assert ratios["roc_auc_lift"] == pytest.approx(2 / 3)
    assert np.isnan(ratios["ece"])  # a perfect oracle ECE has no meaningful ratio
    assert "brier" not in ratios
