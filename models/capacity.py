"""Precision at capacity the way the tier policy spends visits.

The policy fills each township's T2 band with the ``k`` highest calibrated ``p_any`` among the
children **no rule already puts in T1** (``models/policies/default.yaml``, ``thresholds``), and
pre-registers the promotion minimum as "the share of adverse outcomes among the children the T2
band would visit". So the capacity metrics of an evaluation rank, per township and as-of date,
only the children of the *T2 band population*: those whom no hard rule (and no T1 floor) sends
to T1. Those children are visited anyway, whatever a model says; counting them would reward a
model for finding children the rules have already found.

An evaluation window holds a sample of the households (a quarter, for the test window), so each
township's ``k`` is scaled to the share of its registered children in the sample
(:func:`scaled_slots`).

Every score (the model, the scorecard, the simple baselines, the oracle) goes through the same
:func:`capacity_report`, so their figures compare on identical rows, selections and resamples.
The ranking metrics of the whole window (ROC-AUC, PR-AUC, Brier, ECE) are kept beside them, and
``precision_at_capacity_all_children`` ranks every child, for reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.dataset import AREA_COLUMN
from models.metrics import (
    EvaluationReport,
    TieBreak,
    bootstrap_metric,
    cluster_bootstrap_indices,
    evaluate,
    precision_at_capacity,
    recall_at_capacity,
    roc_auc,
)
from models.policy import Tier, TierPolicy, rule_hits

#: The population the capacity metrics rank, as recorded in a report's settings.
T2_BAND = "t2_band: children no rule puts in T1"


def scaled_slots(policy: TierPolicy, area: str, n_registered: int, n_rows: int) -> tuple[int, int]:
    """The T2 and T3 capacity of ``area`` scaled to the share of its children in a sample.

    Parameters
    ----------
    policy : TierPolicy
        Capacity per area.
    area : str
        Township code.
    n_registered : int
        Children registered in the area on the date.
    n_rows : int
        Of them, the children in the evaluated sample.

    Returns
    -------
    (int, int)
        Visits of the T2 and T3 bands that fall to the sample (rounded to whole children).

    Examples
    --------
    >>> from models.policy import load_policy
    >>> scaled_slots(load_policy(), "990101001", 800, 200)
    (8, 23)
    """
    k2, k3 = policy.capacity.for_area(area).slots(n_registered)
    share = n_rows / n_registered if n_registered else 0.0
    return math.floor(k2 * share + 0.5), math.floor(k3 * share + 0.5)


def area_counts(frame: pd.DataFrame) -> pd.Series:
    """Registered children per (capacity area, as-of date): the denominators of capacity.

    Parameters
    ----------
    frame : DataFrame
        Every registered child of every as-of date (all households), with
        :data:`~models.dataset.AREA_COLUMN` and ``as_of``.

    Returns
    -------
    Series
        Counts indexed by (area, as-of date).
    """
    return frame.groupby([AREA_COLUMN, "as_of"], sort=True, observed=True).size()


def area_keys(rows: pd.DataFrame) -> npt.NDArray[np.object_]:
    """``<township>|<YYYY-MM-DD>`` of each row: capacity is per township and scoring date."""
    dates = pd.to_datetime(rows["as_of"]).dt.strftime("%Y-%m-%d")
    return np.asarray(rows[AREA_COLUMN].astype(str) + "|" + dates, dtype=object)


def capacity(
    rows: pd.DataFrame, counts: pd.Series, policy: TierPolicy
) -> tuple[npt.NDArray[np.object_], dict[str, int]]:
    """Area key of each row and the T2 visits of each key, scaled to the rows' share.

    Parameters
    ----------
    rows : DataFrame
        The evaluated rows (a sample of households).
    counts : Series
        :func:`area_counts` of the whole population.
    policy : TierPolicy
        Capacity per area.

    Returns
    -------
    keys : ndarray of str
        Area key of each row.
    slots : dict of str to int
        T2 visits per key.
    """
    keys = area_keys(rows)
    sizes = rows.groupby([AREA_COLUMN, "as_of"], sort=True, observed=True).size()
    slots: dict[str, int] = {}
    for (area, as_of), n_rows in zip(sizes.index.tolist(), sizes.tolist(), strict=True):
        key = f"{area}|{pd.Timestamp(as_of):%Y-%m-%d}"
        n_all = int(counts[(area, as_of)])
        slots[key] = scaled_slots(policy, str(area), n_all, int(n_rows))[0]
    return keys, slots


def t2_band(rows: pd.DataFrame, policy: TierPolicy) -> npt.NDArray[np.bool_]:
    """Whether each row is in the T2 band population: no hard rule and no T1 floor fires.

    Parameters
    ----------
    rows : DataFrame
        Rows with every feature the policy's rules read.
    policy : TierPolicy
        The rules.

    Returns
    -------
    ndarray of bool
        True for children the model's ranking decides about.
    """
    hits = rule_hits(policy, rows)
    t1 = [policy.fired(r).label for r in policy.rules if policy.fired(r).tier is Tier.T1]
    forced = hits[t1].to_numpy(dtype=bool).any(axis=1) if t1 else np.zeros(len(rows), bool)
    return np.asarray(~forced, dtype=np.bool_)


def capacity_report(
    y: Any,
    p: Any,
    *,
    clusters: Any,
    keys: Any,
    slots: Mapping[str, int],
    band: Any,
    n_resamples: int,
    seed: int,
    tie_break: TieBreak,
) -> EvaluationReport:
    """Every test metric of one score, with household-bootstrap intervals.

    ROC-AUC, PR-AUC, Brier and ECE are those of all rows. ``precision_at_capacity`` and
    ``recall_at_capacity`` rank, per area key, the T2 band population only (``band``), as the
    tiers do; ``roc_auc_t2_band`` is the ranking quality there, and
    ``precision_at_capacity_all_children`` ranks everyone for reference.

    Parameters
    ----------
    y, p : array-like of shape (n_rows,)
        Outcomes and scores.
    clusters : array-like of shape (n_rows,)
        Household of each row.
    keys : array-like of shape (n_rows,)
        Area key of each row.
    slots : mapping of str to int
        T2 visits per area key.
    band : array-like of bool, shape (n_rows,)
        Rows of the T2 band population.
    n_resamples : int
        Bootstrap resamples.
    seed : int
        Seed of the resamples.
    tie_break : {"stable", "worst", "best"}
        Order of equal scores at the capacity cut.

    Returns
    -------
    EvaluationReport
        One report; its settings record the band and its size.
    """
    target = np.asarray(y, dtype=np.float64)
    score = np.asarray(p, dtype=np.float64)
    houses = np.asarray(clusters, dtype=object)
    areas = np.asarray(keys, dtype=object)
    inside = np.asarray(band, dtype=bool)
    whole = evaluate(
        target,
        score,
        clusters=houses,
        areas=areas,
        capacity=slots,
        n_resamples=n_resamples,
        seed=seed,
        tie_break=tie_break,
    )
    yb, pb, kb = target[inside], score[inside], areas[inside]
    resamples = cluster_bootstrap_indices(houses[inside], n_resamples=n_resamples, seed=seed)
    band_metrics: dict[str, Callable[[npt.NDArray[np.intp]], float]] = {
        "precision_at_capacity": lambda i: precision_at_capacity(
            yb[i], pb[i], kb[i], slots, tie_break=tie_break
        ),
        "recall_at_capacity": lambda i: recall_at_capacity(
            yb[i], pb[i], kb[i], slots, tie_break=tie_break
        ),
        "roc_auc_t2_band": lambda i: roc_auc(yb[i], pb[i]),
    }
    metrics = {name: whole.metrics[name] for name in ("roc_auc", "pr_auc", "brier", "ece")}
    for name, fn in band_metrics.items():
        metrics[name] = bootstrap_metric(fn, resamples, len(yb), level=0.95)
    metrics["precision_at_capacity_all_children"] = whole.metrics["precision_at_capacity"]
    return EvaluationReport(
        n_rows=whole.n_rows,
        n_positive=whole.n_positive,
        n_clusters=whole.n_clusters,
        metrics=metrics,
        settings={
            **whole.settings,
            "capacity_population": T2_BAND,
            "t2_band_rows": int(inside.sum()),
            "t2_band_positive": int(yb.sum()),
        },
    )


def band_precision(
    y: Any, p: Any, *, keys: Any, slots: Mapping[str, int], band: Any, tie_break: TieBreak
) -> float:
    """Precision at capacity in the T2 band population (no interval), as the gate uses it.

    Parameters
    ----------
    y, p : array-like of shape (n_rows,)
        Outcomes and scores.
    keys : array-like of shape (n_rows,)
        Area key of each row.
    slots : mapping of str to int
        T2 visits per area key.
    band : array-like of bool, shape (n_rows,)
        Rows of the T2 band population.
    tie_break : {"stable", "worst", "best"}
        Order of equal scores at the capacity cut.

    Returns
    -------
    float
        Share of the selected children with the event.
    """
    inside = np.asarray(band, dtype=bool)
    return precision_at_capacity(
        np.asarray(y, dtype=np.float64)[inside],
        np.asarray(p, dtype=np.float64)[inside],
        np.asarray(keys, dtype=object)[inside],
        slots,
        tie_break=tie_break,
    )


__all__ = [
    "T2_BAND",
    "area_counts",
    "area_keys",
    "band_precision",
    "capacity",
    "capacity_report",
    "scaled_slots",
    "t2_band",
]
