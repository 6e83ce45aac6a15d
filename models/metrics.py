"""Evaluation metrics with household-cluster bootstrap intervals.

Every figure in an evaluation table comes with an interval, and the interval resamples
*clusters* (households, or children), never rows: one child appears at many as-of dates and
siblings share a household, so their rows are correlated, and a row bootstrap would give
intervals that are too narrow (the Allegheny AUC was inflated for a related reason: siblings on
both sides of a split). All resamples are shared across metrics, and a seed makes them
reproducible.

Ranking at capacity follows how the product is used: in each area the ``k`` highest-scoring
children are visited, where ``k`` is that area's visit capacity, not a fixed probability cut.

Results are frozen dataclasses whose ``to_dict()`` is plain JSON (floats, ints, strings).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.intp]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
TieBreak: TypeAlias = Literal["worst", "best", "stable"]

HIGHER_IS_BETTER: frozenset[str] = frozenset(
    {"roc_auc", "pr_auc", "precision_at_capacity", "recall_at_capacity"}
)
LOWER_IS_BETTER: frozenset[str] = frozenset({"brier", "ece"})


# --------------------------------------------------------------------------------------------
# Point metrics
# --------------------------------------------------------------------------------------------


def _labels(y: Any) -> FloatArray:
    values = np.asarray(y, dtype=np.float64)
    if values.ndim != 1 or not np.all(np.isin(values, (0.0, 1.0))):
        raise ValueError("y must be a one-dimensional array of 0/1 outcomes")
    return values


def _probabilities(p: Any, n_rows: int) -> FloatArray:
    values = np.asarray(p, dtype=np.float64)
    if values.shape != (n_rows,):
        raise ValueError(f"scores must have shape ({n_rows},), got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("scores contain NaN or infinite values")
    return values


def roc_auc(y: Any, score: Any) -> float:
    """Area under the ROC curve; NaN when only one outcome is present.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        0/1 outcomes.
    score : array-like of shape (n_rows,)
        Any score where higher means riskier.

    Returns
    -------
    float
        ROC-AUC.
    """
    target = _labels(y)
    s = _probabilities(score, len(target))
    if target.min() == target.max():
        return float("nan")
    return float(roc_auc_score(target, s))


def pr_auc(y: Any, score: Any) -> float:
    """Area under the precision-recall curve (average precision); NaN without positives.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        0/1 outcomes.
    score : array-like of shape (n_rows,)
        Any score where higher means riskier.

    Returns
    -------
    float
        Average precision; its chance level is the event rate.
    """
    target = _labels(y)
    s = _probabilities(score, len(target))
    if target.max() == 0.0:
        return float("nan")
    return float(average_precision_score(target, s))


def brier(y: Any, p: Any) -> float:
    """Mean squared difference between probability and outcome.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        0/1 outcomes.
    p : array-like of shape (n_rows,)
        Probabilities.

    Returns
    -------
    float
        Brier score (lower is better).
    """
    target = _labels(y)
    return float(brier_score_loss(target, _probabilities(p, len(target)), pos_label=1.0))


def expected_calibration_error(y: Any, p: Any, *, n_bins: int = 10) -> float:
    """Expected calibration error over equal-mass bins.

    Rows are sorted by probability and cut into ``n_bins`` bins of (nearly) equal row counts;
    ECE is the row-weighted mean of ``|mean outcome - mean probability|`` over bins. Equal mass
    rather than equal width because risk probabilities crowd near zero: equal-width bins would
    put almost every child in the first bin. Rows with the *same* probability always share a bin
    (a bin boundary inside a run of ties moves to the run's start), so the value does not depend
    on row order; with few distinct probabilities (an isotonic map) bins can be fewer or uneven.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        0/1 outcomes.
    p : array-like of shape (n_rows,)
        Probabilities.
    n_bins : int, default=10
        Number of bins.

    Returns
    -------
    float
        ECE in probability units (0 is perfect).

    Examples
    --------
    >>> round(expected_calibration_error([0, 1, 0, 1], [0.1, 0.1, 0.8, 0.8], n_bins=2), 3)
    0.35
    """
    target = _labels(y)
    prob = _probabilities(p, len(target))
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    n = len(prob)
    ordered = np.sort(prob)
    # Lowest rank of each row's value: ties get one rank, hence one bin.
    first_rank = np.searchsorted(ordered, prob, side="left")
    bins = np.minimum(first_rank * n_bins // n, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    gap = np.abs(
        np.bincount(bins, weights=target, minlength=n_bins)
        - np.bincount(bins, weights=prob, minlength=n_bins)
    )
    used = counts > 0
    # sum_b (n_b / n) * |mean_y_b - mean_p_b| = sum_b |sum_y_b - sum_p_b| / n
    return float(gap[used].sum() / n)


def select_at_capacity(
    score: Any,
    areas: Any,
    capacity: Mapping[Any, int],
    *,
    y: Any = None,
    tie_break: TieBreak = "worst",
) -> BoolArray:
    """Mark the ``capacity[area]`` highest-scoring rows of each area.

    Parameters
    ----------
    score : array-like of shape (n_rows,)
        Higher means riskier.
    areas : array-like of shape (n_rows,)
        Area code of each row (village, township or county: whatever the capacity is set for).
    capacity : mapping of area code to int
        Visits the area's staff can make; every area in ``areas`` must be present.
    y : array-like of shape (n_rows,), optional
        Outcomes, needed for ``tie_break="worst"`` or ``"best"``.
    tie_break : {"worst", "best", "stable"}, default="worst"
        Among rows with equal scores at the cut: ``"worst"`` selects non-events first (the
        pessimistic reading of a tied score, as dssg/triage does), ``"best"`` events first,
        ``"stable"`` the earlier row. All three are deterministic.

    Returns
    -------
    ndarray of bool, shape (n_rows,)
        True for the selected rows.

    Raises
    ------
    ValueError
        If an area has no capacity, a capacity is negative, or ``y`` is missing when the tie
        rule needs it.
    """
    s = np.asarray(score, dtype=np.float64)
    area_values = pd.Series(np.asarray(areas, dtype=object))
    if area_values.shape != s.shape:
        raise ValueError(f"areas must have shape {s.shape}, got {area_values.shape}")
    missing = sorted({str(a) for a in area_values.unique() if a not in capacity})
    if missing:
        raise ValueError(f"no capacity given for areas {missing[:10]}")
    limits = area_values.map(capacity).to_numpy(dtype=np.int64)
    if np.any(limits < 0):
        raise ValueError("capacities must be non-negative")
    codes, _ = pd.factorize(area_values)
    if tie_break == "stable":
        tie_key = np.arange(len(s), dtype=np.float64)
    else:
        if y is None:
            raise ValueError(f"tie_break={tie_break!r} needs the outcomes y")
        target = _labels(y)
        tie_key = target if tie_break == "worst" else -target
    # lexsort sorts by the last key first: area, then score descending, then the tie key;
    # it is stable, so remaining ties keep row order.
    order = np.lexsort((tie_key, -s, codes))
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank_in_area = np.arange(len(order)) - group_start
    selected = np.zeros(len(s), dtype=np.bool_)
    selected[order] = rank_in_area < limits[order]
    return selected


def precision_at_capacity(
    y: Any,
    score: Any,
    areas: Any,
    capacity: Mapping[Any, int],
    *,
    tie_break: TieBreak = "worst",
) -> float:
    """Share of selected children (top ``capacity[area]`` per area) who had the event.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        0/1 outcomes.
    score : array-like of shape (n_rows,)
        Higher means riskier.
    areas : array-like of shape (n_rows,)
        Area code of each row.
    capacity : mapping of area code to int
        Visits per area.
    tie_break : {"worst", "best", "stable"}, default="worst"
        See :func:`select_at_capacity`.

    Returns
    -------
    float
        Precision (positive predictive value); NaN when nobody is selected.
    """
    target = _labels(y)
    chosen = select_at_capacity(score, areas, capacity, y=target, tie_break=tie_break)
    if not chosen.any():
        return float("nan")
    return float(target[chosen].mean())


def recall_at_capacity(
    y: Any,
    score: Any,
    areas: Any,
    capacity: Mapping[Any, int],
    *,
    tie_break: TieBreak = "worst",
) -> float:
    """Share of all children with the event who are selected (top ``capacity[area]`` per area).

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        0/1 outcomes.
    score : array-like of shape (n_rows,)
        Higher means riskier.
    areas : array-like of shape (n_rows,)
        Area code of each row.
    capacity : mapping of area code to int
        Visits per area.
    tie_break : {"worst", "best", "stable"}, default="worst"
        See :func:`select_at_capacity`.

    Returns
    -------
    float
        Recall (sensitivity); NaN when nobody had the event.
    """
    target = _labels(y)
    chosen = select_at_capacity(score, areas, capacity, y=target, tie_break=tie_break)
    if target.sum() == 0:
        return float("nan")
    return float(target[chosen].sum() / target.sum())


# --------------------------------------------------------------------------------------------
# Cluster bootstrap
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricEstimate:
    """A metric on the full data with its cluster-bootstrap percentile interval.

    Parameters
    ----------
    value : float
        The metric on all rows.
    low, high : float
        Interval ends (NaN when no resample gave a value).
    level : float
        Nominal coverage of the interval.
    n_resamples : int
        Resamples on which the metric was defined (e.g. AUC needs both outcomes).
    """

    value: float
    low: float
    high: float
    level: float
    n_resamples: int

    def to_dict(self) -> dict[str, float | int | None]:
        """Plain JSON-ready dict; NaN becomes None (JSON has no NaN).

        Returns
        -------
        dict
            ``value``, ``low``, ``high``, ``level`` and ``n_resamples``.
        """
        return {
            "value": _json_float(self.value),
            "low": _json_float(self.low),
            "high": _json_float(self.high),
            "level": self.level,
            "n_resamples": self.n_resamples,
        }


def _json_float(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _cluster_codes(clusters: Any, n_rows: int) -> IntArray:
    values = np.asarray(clusters, dtype=object)
    if values.shape != (n_rows,):
        raise ValueError(f"clusters must have shape ({n_rows},), got {values.shape}")
    codes, _ = pd.factorize(pd.Series(values), use_na_sentinel=False)
    return np.asarray(codes, dtype=np.intp)


def cluster_bootstrap_indices(clusters: Any, *, n_resamples: int, seed: int) -> list[IntArray]:
    """Row indices of cluster-bootstrap resamples.

    Each resample draws as many clusters as there are, with replacement, and takes every row of
    each drawn cluster (as often as it was drawn).

    Parameters
    ----------
    clusters : array-like of shape (n_rows,)
        Cluster of each row (household or child id).
    n_resamples : int
        Number of resamples.
    seed : int
        Seed of the random draws.

    Returns
    -------
    list of ndarray of int
        One array of row indices per resample.
    """
    codes = _cluster_codes(clusters, len(np.asarray(clusters, dtype=object)))
    n_clusters = int(codes.max()) + 1 if len(codes) else 0
    rng = np.random.default_rng(seed)
    rows = np.arange(len(codes), dtype=np.intp)
    out: list[IntArray] = []
    for _ in range(n_resamples):
        draws = np.bincount(rng.integers(0, n_clusters, n_clusters), minlength=n_clusters)
        out.append(np.repeat(rows, draws[codes]))
    return out


def bootstrap_metric(
    metric: Callable[[IntArray], float],
    resamples: list[IntArray],
    n_rows: int,
    *,
    level: float = 0.95,
) -> MetricEstimate:
    """Evaluate a metric on all rows and on each resample, and take percentiles.

    Parameters
    ----------
    metric : callable
        Takes an array of row indices and returns the metric on those rows (NaN if undefined).
    resamples : list of ndarray of int
        From :func:`cluster_bootstrap_indices`.
    n_rows : int
        Number of rows (the full-data value uses all of them).
    level : float, default=0.95
        Nominal coverage.

    Returns
    -------
    MetricEstimate
        Value and percentile interval.
    """
    value = metric(np.arange(n_rows, dtype=np.intp))
    draws = np.array([metric(idx) for idx in resamples], dtype=np.float64)
    valid = draws[~np.isnan(draws)]
    if len(valid) == 0:
        return MetricEstimate(value, float("nan"), float("nan"), level, 0)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(valid, [tail, 1.0 - tail])
    return MetricEstimate(value, float(low), float(high), level, len(valid))


# --------------------------------------------------------------------------------------------
# Evaluation report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationReport:
    """All metrics of one model on one window, with intervals.

    Parameters
    ----------
    n_rows : int
        Rows evaluated.
    n_positive : int
        Rows with the event.
    n_clusters : int
        Clusters resampled by the bootstrap.
    metrics : dict of str to MetricEstimate
        ``roc_auc``, ``pr_auc``, ``brier``, ``ece`` and, when capacities were given,
        ``precision_at_capacity`` and ``recall_at_capacity``.
    settings : dict
        How the figures were computed (resamples, seed, level, bins, tie rule).
    """

    n_rows: int
    n_positive: int
    n_clusters: int
    metrics: dict[str, MetricEstimate]
    settings: dict[str, Any] = field(default_factory=dict)

    def values(self) -> dict[str, float]:
        """Point values only, keyed by metric name.

        Returns
        -------
        dict of str to float
            Metric name to value.
        """
        return {name: m.value for name, m in self.metrics.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict.

        Returns
        -------
        dict
            Counts, settings and one dict per metric.
        """
        return {
            "n_rows": self.n_rows,
            "n_positive": self.n_positive,
            "n_clusters": self.n_clusters,
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
            "settings": dict(self.settings),
        }


def evaluate(
    y: Any,
    p: Any,
    *,
    clusters: Any,
    areas: Any = None,
    capacity: Mapping[Any, int] | None = None,
    n_resamples: int = 200,
    level: float = 0.95,
    seed: int = 0,
    n_bins: int = 10,
    tie_break: TieBreak = "worst",
) -> EvaluationReport:
    """Compute every evaluation metric with cluster-bootstrap intervals.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        Matured 0/1 outcomes.
    p : array-like of shape (n_rows,)
        Probabilities (calibrated, for Brier and ECE to mean anything).
    clusters : array-like of shape (n_rows,)
        Household (or child) of each row: the unit the bootstrap resamples.
    areas : array-like of shape (n_rows,), optional
        Area code of each row, for the capacity metrics.
    capacity : mapping of area code to int, optional
        Visits per area; with ``areas`` adds precision and recall at capacity.
    n_resamples : int, default=200
        Bootstrap resamples.
    level : float, default=0.95
        Nominal coverage of the intervals.
    seed : int, default=0
        Seed of the resampling.
    n_bins : int, default=10
        Equal-mass bins for ECE.
    tie_break : {"worst", "best", "stable"}, default="worst"
        Tie rule at the capacity cut.

    Returns
    -------
    EvaluationReport
        Values and intervals, JSON-ready through ``to_dict()``.
    """
    target = _labels(y)
    prob = _probabilities(p, len(target))
    codes = _cluster_codes(clusters, len(target))
    resamples = cluster_bootstrap_indices(codes, n_resamples=n_resamples, seed=seed)
    n = len(target)

    metrics: dict[str, Callable[[IntArray], float]] = {
        "roc_auc": lambda i: roc_auc(target[i], prob[i]),
        "pr_auc": lambda i: pr_auc(target[i], prob[i]),
        "brier": lambda i: brier(target[i], prob[i]),
        "ece": lambda i: expected_calibration_error(target[i], prob[i], n_bins=n_bins),
    }
    if (areas is None) != (capacity is None):
        raise ValueError("areas and capacity go together: give both or neither")
    if areas is not None and capacity is not None:
        area_values = np.asarray(areas, dtype=object)
        cap = capacity
        metrics["precision_at_capacity"] = lambda i: precision_at_capacity(
            target[i], prob[i], area_values[i], cap, tie_break=tie_break
        )
        metrics["recall_at_capacity"] = lambda i: recall_at_capacity(
            target[i], prob[i], area_values[i], cap, tie_break=tie_break
        )
    estimates = {
        name: bootstrap_metric(fn, resamples, n, level=level) for name, fn in metrics.items()
    }
    return EvaluationReport(
        n_rows=n,
        n_positive=int(target.sum()),
        n_clusters=int(codes.max()) + 1 if n else 0,
        metrics=estimates,
        settings={
            "n_resamples": n_resamples,
            "level": level,
            "seed": seed,
            "n_bins": n_bins,
            "tie_break": tie_break,
            "resampling_unit": "cluster",
        },
    )


def _metric_values(metrics: EvaluationReport | Mapping[str, Any]) -> dict[str, float]:
    if isinstance(metrics, EvaluationReport):
        return metrics.values()
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if isinstance(value, MetricEstimate):
            out[name] = value.value
        elif isinstance(value, Mapping):
            out[name] = float("nan") if value.get("value") is None else float(value["value"])
        else:
            out[name] = float(value)
    return out


def compare_to_oracle(
    model_metrics: EvaluationReport | Mapping[str, Any],
    oracle_metrics: EvaluationReport | Mapping[str, Any],
) -> dict[str, float]:
    """Ratios of a model's metrics to the oracle's (the synthetic population's true risk).

    For every metric both sides report, the ratio ``model / oracle``: for higher-is-better
    metrics (AUC, PR-AUC, precision and recall at capacity) 1.0 means the model matches the
    best possible and less is worse; for lower-is-better ones (Brier, ECE) more than 1.0 is
    worse. ``roc_auc_lift`` adds the share of the oracle's AUC gain over chance,
    ``(model - 0.5) / (oracle - 0.5)``. A ratio with a zero or NaN denominator is NaN.

    Parameters
    ----------
    model_metrics, oracle_metrics : EvaluationReport or mapping
        Reports, or mappings of metric name to a value, a MetricEstimate or its ``to_dict()``.

    Returns
    -------
    dict of str to float
        Metric name to ratio.

    Examples
    --------
    >>> model, oracle = {"roc_auc": 0.75, "brier": 0.09}, {"roc_auc": 0.8, "brier": 0.08}
    >>> ratios = compare_to_oracle(model, oracle)
    >>> {name: round(value, 3) for name, value in ratios.items()}
    {'brier': 1.125, 'roc_auc': 0.938, 'roc_auc_lift': 0.833}
    """
    model = _metric_values(model_metrics)
    oracle = _metric_values(oracle_metrics)

    def ratio(numerator: float, denominator: float) -> float:
        if np.isnan(numerator) or np.isnan(denominator) or denominator == 0.0:
            return float("nan")
        return float(numerator / denominator)

    out = {name: ratio(model[name], oracle[name]) for name in sorted(model.keys() & oracle)}
    if "roc_auc" in out:
        out["roc_auc_lift"] = ratio(model["roc_auc"] - 0.5, oracle["roc_auc"] - 0.5)
    return out


__all__ = [
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "EvaluationReport",
    "MetricEstimate",
    "bootstrap_metric",
    "brier",
    "cluster_bootstrap_indices",
    "compare_to_oracle",
    "evaluate",
    "expected_calibration_error",
    "pr_auc",
    "precision_at_capacity",
    "recall_at_capacity",
    "roc_auc",
    "select_at_capacity",
]
