"""Group fairness audit of a scoring run: who the tiers miss, who they select, whom they mis-score.

Shouhu's visits *help* the child, so the harm that matters most is being missed: a girl with a
coming adverse event left in routine care. Following the aequitas guidance for assistive
interventions (``anchors-international.md`` §2.2), the audit puts **false-negative rate** and
**false-omission rate** parity first, then selection-rate parity and calibration, then precision
and false-positive rate (more visits to children who turn out fine cost staff time, not children).

For every group attribute (sex, for left-behind girls; age band; disability; ethnicity, which is
audited and never a model feature; township) and every priority cut ("selected" means a tier in
T1, T1-T2 or T1-T3) the audit reports, per group and overall:

==========================  ===================================================  ==========
metric                      meaning                                              priority
==========================  ===================================================  ==========
``false_negative_rate``     of the children with the event, share not selected   1 (blocks)
``false_omission_rate``     of the children not selected, share with the event   1 (blocks)
``selection_rate``          share of children selected                           2
``calibration_ratio``       observed events / expected events (sum of p)         2
``precision``               of the children selected, share with the event       3
``false_positive_rate``     of the children without the event, share selected    3
``mean_predicted``          mean calibrated probability                          descriptive
``base_rate``               observed event rate                                  descriptive
``ece``                     expected calibration error within the group          descriptive
==========================  ===================================================  ==========

Every figure is computed by fairlearn's :class:`~fairlearn.metrics.MetricFrame`, which splits the
rows by group; this module supplies the metric functions (so that a rate with an empty
denominator is undefined rather than 0, see :func:`_share`), collapses identical rows into
frequency weights so fairlearn stays fast (see :func:`_metric_frames`), and reads the frames.

**Disparity.** A group's *ratio* is its value divided by the reference value: by default the
overall figure of the whole population (``reference="overall"``), which every group can be held
to and which does not change when a group is split; alternatively the largest group of the same
attribute (``reference="largest"``, the aequitas "majority" reference), which reads as "compared
with most children". When both the value and the reference are 0 the ratio is 1 (equal, e.g. no
child of either is ever missed); a positive value over a reference of 0 gives an infinite ratio.

**Flags.** A checked metric is *flagged* when its ratio lies outside the policy's disparity
band (``policy.fairness.disparity_band``, 0.8-1.25 by default). The band is closed, as in
:meth:`models.policy.Range.contains` and in aequitas (``0.8 <= ratio <= 1.25`` is fair): a ratio
of exactly 0.8 or 1.25 passes. Ratios are rounded to 9 decimals before the comparison, so a ratio
that is exactly 4/5 in arithmetic is not flagged because of floating-point noise. Both directions
are flagged (``direction`` says which), since the band is two-sided.

**Insufficient data.** A row whose group (or reference population) has fewer than
``min_group_size`` children or fewer than ``min_events`` events, or whose metric rests on fewer
than ``min_events`` children (e.g. precision among 3 selected children), is marked
``insufficient_data``: never flagged, never silently passed. A metric that is undefined (no
denominator at all) is ``undefined``. Rows of descriptive metrics are ``descriptive``.

**Intervals.** With ``clusters`` (household ids), every metric except ECE gets a cluster-bootstrap
percentile interval for its value and its ratio, resampling households as
:mod:`models.metrics` does, because siblings and repeated as-of rows are correlated. The
resamples evaluate the same metric functions with each resample's row weights, all resamples at
once; one MetricFrame per resample would take minutes. Flags use the point ratio, as aequitas
does; the interval tells a reviewer how far to trust it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from fairlearn.metrics import MetricFrame  # type: ignore[import-untyped]

from models.metrics import expected_calibration_error
from models.policy import Fairness, Range, Tier

logger = logging.getLogger(__name__)

FloatArray: TypeAlias = npt.NDArray[np.float64]
Reference: TypeAlias = Literal["overall", "largest"]
Denominator: TypeAlias = Literal["n", "events", "non_events", "selected", "not_selected"]
GroupColumn: TypeAlias = "str | pd.Series | npt.NDArray[Any]"

#: Label of rows whose group value is missing; they are audited as a group, never dropped,
#: because missing data on (say) disability may itself be unevenly spread.
MISSING_GROUP = "missing"

#: Age bands of the audit, in completed years: (lowest age, age the band stops before, label).
AGE_BANDS: tuple[tuple[int, int, str], ...] = ((0, 6, "0-5"), (6, 12, "6-11"), (12, 16, "12-15"))
#: Label for children aged 16 or more (above the left-behind age range, kept visible).
AGE_ABOVE_BANDS = "16+"

#: Statuses of a report row.
FLAGGED = "flagged"
WITHIN_BAND = "within_band"
INSUFFICIENT = "insufficient_data"
UNDEFINED = "undefined"
DESCRIPTIVE = "descriptive"

#: Decimals kept before a ratio is compared with the band (see the module docstring).
_RATIO_DECIMALS = 9


# ---------------------------------------------------------------------------------------------
# Metric functions (fairlearn calling convention: y_true, y_pred, sample parameters)


def _weights(sample_weight: npt.ArrayLike | None, n_rows: int) -> FloatArray:
    if sample_weight is None:
        return np.ones(n_rows, dtype=np.float64)
    return np.asarray(sample_weight, dtype=np.float64)


def _wsum(weights: FloatArray, indicator: FloatArray) -> FloatArray:
    # A matrix-vector product: with one weight row (MetricFrame) a 0-d sum, with one row per
    # bootstrap resample a vector of sums, so the same function serves both.
    return np.asarray(weights @ indicator, dtype=np.float64)


def _share(numerator: FloatArray, denominator: FloatArray) -> float | FloatArray:
    """``numerator / denominator``, NaN where the denominator is 0.

    fairlearn's own rates (through scikit-learn's normalised confusion matrix) return 0 when a
    group has, say, no events: a false-negative rate of 0 would then read as "never misses
    anyone" for a group the data say nothing about.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(
            denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan
        )
    return float(out) if out.ndim == 0 else np.asarray(out, dtype=np.float64)


def _outcome(y_true: npt.ArrayLike) -> FloatArray:
    return np.asarray(y_true, dtype=np.float64)


def _selected(y_pred: npt.ArrayLike) -> FloatArray:
    return (np.asarray(y_pred, dtype=np.float64) > 0.5).astype(np.float64)


def selection_rate(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
) -> float | FloatArray:
    """Share of children selected (``y_pred`` 1).

    Parameters
    ----------
    y_true : array-like of shape (n_rows,)
        0/1 outcomes (unused; fairlearn passes them to every metric).
    y_pred : array-like of shape (n_rows,)
        1 for a child selected at the cut, 0 otherwise.
    sample_weight : array-like of shape (n_rows,) or (n_resamples, n_rows), optional
        Row weights; a 2-D array evaluates one weighting per row of it.

    Returns
    -------
    float or ndarray
        The rate (NaN without rows), one per weighting for 2-D weights.
    """
    sel = _selected(y_pred)
    w = _weights(sample_weight, len(sel))
    return _share(_wsum(w, sel), _wsum(w, np.ones_like(sel)))


def precision(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
) -> float | FloatArray:
    """Positive predictive value: share of the selected children who had the event.

    Parameters and return as in :func:`selection_rate`; NaN when nobody is selected.
    """
    y, sel = _outcome(y_true), _selected(y_pred)
    w = _weights(sample_weight, len(y))
    return _share(_wsum(w, y * sel), _wsum(w, sel))


def false_negative_rate(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
) -> float | FloatArray:
    """Share of the children with the event who were not selected (missed).

    Parameters and return as in :func:`selection_rate`; NaN without events.
    """
    y, sel = _outcome(y_true), _selected(y_pred)
    w = _weights(sample_weight, len(y))
    return _share(_wsum(w, y * (1.0 - sel)), _wsum(w, y))


def false_positive_rate(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
) -> float | FloatArray:
    """Share of the children without the event who were selected.

    Parameters and return as in :func:`selection_rate`; NaN when every child had the event.
    """
    y, sel = _outcome(y_true), _selected(y_pred)
    w = _weights(sample_weight, len(y))
    return _share(_wsum(w, (1.0 - y) * sel), _wsum(w, 1.0 - y))


def false_omission_rate(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
) -> float | FloatArray:
    """Share of the children not selected who had the event.

    Parameters and return as in :func:`selection_rate`; NaN when every child is selected.
    """
    y, sel = _outcome(y_true), _selected(y_pred)
    w = _weights(sample_weight, len(y))
    return _share(_wsum(w, y * (1.0 - sel)), _wsum(w, 1.0 - sel))


def group_size(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
) -> float | FloatArray:
    """Number of children (the sum of the weights)."""
    out = np.asarray(_weights(sample_weight, len(np.asarray(y_true))).sum(axis=-1))
    return float(out) if out.ndim == 0 else np.asarray(out, dtype=np.float64)


def selected_count(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
) -> float | FloatArray:
    """Number of children selected (the denominator of precision)."""
    sel = _selected(y_pred)
    out = _wsum(_weights(sample_weight, len(sel)), sel)
    return float(out) if out.ndim == 0 else out


def event_count(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
) -> float | FloatArray:
    """Number of children with the event."""
    y = _outcome(y_true)
    out = _wsum(_weights(sample_weight, len(y)), y)
    return float(out) if out.ndim == 0 else out


def mean_predicted(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
) -> float | FloatArray:
    """Mean calibrated probability (``y_pred`` holds probabilities here)."""
    p = np.asarray(y_pred, dtype=np.float64)
    w = _weights(sample_weight, len(p))
    return _share(_wsum(w, p), _wsum(w, np.ones_like(p)))


def base_rate(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
) -> float | FloatArray:
    """Observed event rate."""
    y = _outcome(y_true)
    w = _weights(sample_weight, len(y))
    return _share(_wsum(w, y), _wsum(w, np.ones_like(y)))


def calibration_ratio(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
) -> float | FloatArray:
    """Observed over expected events, ``sum(y) / sum(p)``: above 1, the model under-predicts.

    A group whose risk is under-predicted is ranked too low and visited too late, which is why
    this ratio, not the mean probability alone, is the calibration check.
    """
    y, p = _outcome(y_true), np.asarray(y_pred, dtype=np.float64)
    w = _weights(sample_weight, len(y))
    return _share(_wsum(w, y), _wsum(w, p))


MetricFunction: TypeAlias = Callable[..., "float | FloatArray"]


@dataclass(frozen=True)
class _Spec:
    """How one metric is computed, what its rate is taken over, and how much it matters."""

    fn: MetricFunction
    uses: Literal["selection", "probability"]
    denominator: Denominator
    priority: int | None  # None: descriptive, never flagged
    bootstrap: bool = True


# Report order: the order the checks matter in when the intervention helps the child.
_SPECS: dict[str, _Spec] = {
    "false_negative_rate": _Spec(false_negative_rate, "selection", "events", 1),
    "false_omission_rate": _Spec(false_omission_rate, "selection", "not_selected", 1),
    "selection_rate": _Spec(selection_rate, "selection", "n", 2),
    "calibration_ratio": _Spec(calibration_ratio, "probability", "n", 2),
    "precision": _Spec(precision, "selection", "selected", 3),
    "false_positive_rate": _Spec(false_positive_rate, "selection", "non_events", 3),
    "mean_predicted": _Spec(mean_predicted, "probability", "n", None),
    "base_rate": _Spec(base_rate, "probability", "n", None),
    # ECE's equal-mass bins have no weighted form, and it is descriptive: no interval.
    "ece": _Spec(expected_calibration_error, "probability", "n", None, bootstrap=False),
}

#: Every metric of the report, in report order.
METRICS: tuple[str, ...] = tuple(_SPECS)
#: Metrics whose ratio is checked against the band, most important first.
CHECKED_METRICS: tuple[str, ...] = tuple(m for m, s in _SPECS.items() if s.priority is not None)
#: Metrics whose flags block a "promote" recommendation without a supervisor's signed note.
BLOCKING_METRICS: tuple[str, ...] = tuple(m for m, s in _SPECS.items() if s.priority == 1)

#: Columns of :meth:`FairnessReport.to_frame`, in order.
COLUMNS: tuple[str, ...] = (
    "attribute",
    "group",
    "threshold",
    "metric",
    "value",
    "overall",
    "ratio",
    "flagged",
    "n",
    "events",
    "status",
    "direction",
    "priority",
    "reference",
    "reference_value",
    "denominator",
    "value_low",
    "value_high",
    "ratio_low",
    "ratio_high",
)


# ---------------------------------------------------------------------------------------------
# Helpers


def age_band(
    age_years: pd.Series | npt.ArrayLike, bands: Sequence[tuple[int, int, str]] = AGE_BANDS
) -> pd.Series:
    """The audit's age band of each child, from age in (possibly fractional) years.

    A child is in a band by completed years, so 5.9 years is "0-5". Ages at or above the last
    band get :data:`AGE_ABOVE_BANDS` rather than vanishing into "missing"; a missing age stays
    missing (the audit then reports it as the :data:`MISSING_GROUP` group).

    Parameters
    ----------
    age_years : pandas.Series or array-like
        Age of each child in years.
    bands : sequence of (low, stop, label), default=AGE_BANDS
        Contiguous bands from age 0, ``low <= age < stop``.

    Returns
    -------
    pandas.Series
        Ordered categorical of band labels (index kept from ``age_years`` when it is a Series).

    Raises
    ------
    ValueError
        If an age is negative or the bands are not contiguous from 0.

    Examples
    --------
    >>> age_band([0.5, 5.99, 6.0, 11.5, 12, 15.9, 16, None]).tolist()
    ['0-5', '0-5', '6-11', '6-11', '12-15', '12-15', '16+', nan]
    """
    index = age_years.index if isinstance(age_years, pd.Series) else None
    ages = pd.Series(pd.to_numeric(pd.Series(age_years, index=index), errors="raise"), dtype=float)
    if (ages < 0).any():
        raise ValueError("age_years holds negative ages")
    edges = [0.0]
    for low, stop, _ in bands:
        if low != edges[-1] or stop <= low:
            raise ValueError(f"age bands must be contiguous from 0; got {list(bands)}")
        edges.append(float(stop))
    labels = [label for _, _, label in bands]
    cut = pd.cut(ages, [*edges, math.inf], right=False, labels=[*labels, AGE_ABOVE_BANDS])
    return pd.Series(cut, index=ages.index, name="age_band")


def selection_label(tier: Tier | str) -> str:
    """The name of the cut "selected at ``tier`` or above": ``T1``, ``T1-T2``, ``T1-T3``."""
    level = Tier(tier).level
    return "T1" if level == 1 else f"T1-T{level}"


def _band(band: Range | Fairness | tuple[float, float]) -> Range:
    # Re-validate through the policy's own model, so a hand-written band obeys the same rules
    # (contains parity strictly, positive lower bound) as one from the policy file.
    if isinstance(band, Fairness):
        return band.disparity_band
    if isinstance(band, Range):
        return Fairness(disparity_band=band).disparity_band
    low, high = band
    return Fairness(disparity_band=Range(low=float(low), high=float(high))).disparity_band


def _ratio(value: float | FloatArray, reference: float | FloatArray) -> float | FloatArray:
    """``value / reference`` with 0/0 = 1 (equal) and x/0 = inf; NaN if either is undefined."""
    v = np.asarray(value, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(r == 0, np.where(v == 0, 1.0, np.inf), v / np.where(r == 0, 1.0, r))
    out = np.where(np.isnan(v) | np.isnan(r), np.nan, out)
    return float(out) if out.ndim == 0 else np.asarray(out, dtype=np.float64)


def _json(value: Any) -> Any:
    """A JSON-safe scalar: NaN and infinities become None, numpy scalars Python ones."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value if isinstance(value, str) else str(value)


# ---------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True, eq=False)
class FairnessReport:
    """A fairness audit: one row per (attribute, group, threshold, metric).

    Build it with :func:`fairness_audit`.

    Parameters
    ----------
    table : pandas.DataFrame
        The rows, columns :data:`COLUMNS`, in report order: metrics by priority (FNR and FOR
        parity first), then attribute, threshold and group.
    settings : dict
        How the audit was run (band, reference, minimum sizes, cuts, bootstrap).
    n_rows, n_events : int
        Children audited, and how many of them had the event.
    """

    table: pd.DataFrame
    settings: Mapping[str, Any] = field(default_factory=dict)
    n_rows: int = 0
    n_events: int = 0

    def to_frame(self) -> pd.DataFrame:
        """The tidy table (a copy).

        Returns
        -------
        pandas.DataFrame
            Columns ``attribute, group, threshold, metric, value, overall, ratio, flagged, n,
            events``, then ``status`` (``flagged``, ``within_band``, ``insufficient_data``,
            ``undefined`` or ``descriptive``), ``direction`` (``above``/``below`` the band),
            ``priority`` (1 = blocking), ``reference`` (``overall`` or the reference group),
            ``reference_value``, ``denominator`` (children the rate is taken over) and the
            bootstrap interval ends (NaN without clusters). ``threshold`` is missing for
            metrics that do not depend on a cut (calibration, base rate). Figures of
            ``insufficient_data`` rows are kept for analysts; a published document should
            show their status, not their figures, since a small group's rates can point at
            individual children.
        """
        return self.table.copy()

    def flags(self) -> pd.DataFrame:
        """The flagged rows, most important first.

        Returns
        -------
        pandas.DataFrame
            The rows of :meth:`to_frame` with ``flagged`` true.
        """
        return self.table.loc[self.table["flagged"]].reset_index(drop=True)

    def summary(self) -> dict[str, int]:
        """How many rows are flagged, per checked metric (zeros included), in report order.

        Returns
        -------
        dict of str to int
            Metric name to the number of flagged (attribute, group, threshold) rows.
        """
        counts = self.table.loc[self.table["flagged"], "metric"].value_counts()
        return {metric: int(counts.get(metric, 0)) for metric in CHECKED_METRICS}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (NaN and infinite ratios become ``None``).

        Returns
        -------
        dict
            ``n_rows``, ``n_events``, ``settings``, ``summary``, ``blocking`` (the number of
            blocking flags), ``insufficient`` (rows marked insufficient) and ``rows`` (one dict
            per row of :meth:`to_frame`).
        """
        rows = [
            {column: _json(value) for column, value in zip(COLUMNS, record, strict=True)}
            for record in self.table.loc[:, list(COLUMNS)].itertuples(index=False, name=None)
        ]
        return {
            "n_rows": self.n_rows,
            "n_events": self.n_events,
            "settings": {key: _json_tree(value) for key, value in self.settings.items()},
            "summary": self.summary(),
            "blocking": len(blocking_flags(self)),
            "insufficient": int((self.table["status"] == INSUFFICIENT).sum()),
            "rows": rows,
        }


def _json_tree(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_tree(v) for v in value]
    return _json(value)


def blocking_flags(report: FairnessReport) -> pd.DataFrame:
    """The flags that block a "promote" recommendation: FNR and FOR parity outside the band.

    The quarterly re-evaluation recommends promotion only when this is empty, or when a
    supervisor has attached a signed note for these rows.

    Parameters
    ----------
    report : FairnessReport
        An audit.

    Returns
    -------
    pandas.DataFrame
        The flagged rows whose metric is in :data:`BLOCKING_METRICS`.
    """
    flags = report.flags()
    return flags.loc[flags["metric"].isin(BLOCKING_METRICS)].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# The audit


@dataclass(frozen=True)
class _Data:
    """The audited rows in canonical order, with validated columns."""

    y: FloatArray
    p: FloatArray
    level: npt.NDArray[np.int64]
    groups: dict[str, pd.Series]  # attribute -> str labels, canonical row order
    group_order: dict[str, list[str]]
    clusters: npt.NDArray[np.intp] | None


def _column(frame: pd.DataFrame, column: str, what: str) -> pd.Series:
    if column not in frame.columns:
        raise ValueError(f"the frame lacks the {what} column {column!r}")
    return frame[column]


def _group_values(frame: pd.DataFrame, attribute: str, source: GroupColumn) -> pd.Series:
    if isinstance(source, str):
        return _column(frame, source, f"group ({attribute})")
    if isinstance(source, pd.Series):
        if not source.index.equals(frame.index):
            raise ValueError(f"group {attribute!r}: the series' index differs from the frame's")
        return source
    values = np.asarray(source, dtype=object)
    if values.shape != (len(frame),):
        raise ValueError(f"group {attribute!r} must have shape ({len(frame)},)")
    return pd.Series(values, index=frame.index)


def _labels(values: pd.Series) -> tuple[npt.NDArray[np.object_], list[str]]:
    """String labels (missing → :data:`MISSING_GROUP`) and their display order."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        order = [str(c) for c in values.cat.categories]
    else:
        order = sorted({str(v) for v in values.dropna().unique()})
    missing = values.isna().to_numpy()
    labels = np.where(missing, MISSING_GROUP, values.astype("object").astype(str).to_numpy())
    present = set(labels.tolist())
    if MISSING_GROUP in order:
        raise ValueError(f"a group may not be called {MISSING_GROUP!r}: it marks missing values")
    order = [g for g in order if g in present] + ([MISSING_GROUP] if missing.any() else [])
    return labels.astype(object), order


def _prepare(
    frame: pd.DataFrame,
    *,
    y_true: str,
    score: str,
    tier: str,
    groups: Mapping[str, GroupColumn],
    clusters: str | pd.Series | npt.ArrayLike | None,
) -> _Data:
    if not groups:
        raise ValueError("give at least one group attribute to audit")
    if frame.empty:
        raise ValueError("the frame has no rows to audit")
    y = pd.to_numeric(_column(frame, y_true, "outcome"), errors="raise").to_numpy(dtype=float)
    if not np.all(np.isin(y, (0.0, 1.0))):
        raise ValueError(f"{y_true!r} must hold realised 0/1 outcomes (no missing values)")
    p = pd.to_numeric(_column(frame, score, "score"), errors="raise").to_numpy(dtype=float)
    if not np.all(np.isfinite(p)) or ((p < 0) | (p > 1)).any():
        raise ValueError(f"{score!r} must hold probabilities in [0, 1] (no missing values)")
    tiers = _column(frame, tier, "tier")
    bad = sorted({str(t) for t in tiers.unique()} - {str(t) for t in Tier})
    if bad or tiers.isna().any():
        raise ValueError(f"{tier!r} must hold a tier (T1-T4) for every child; found {bad}")
    levels = {str(t): t.level for t in Tier}
    level = tiers.astype(str).map(levels).to_numpy(dtype=np.int64)

    work = pd.DataFrame({"y": y, "p": p, "level": level})
    order: dict[str, list[str]] = {}
    names = {}
    for i, (attribute, source) in enumerate(groups.items()):
        if not isinstance(attribute, str) or not attribute:
            raise ValueError(f"group attribute names must be non-empty strings; got {attribute!r}")
        labels, order[attribute] = _labels(_group_values(frame, attribute, source))
        names[attribute] = f"g{i}"
        work[f"g{i}"] = labels
    if clusters is not None:
        raw = frame[clusters] if isinstance(clusters, str) else clusters
        values = pd.Series(np.asarray(raw, dtype=object))
        if len(values) != len(frame) or values.isna().any():
            raise ValueError("clusters must give every row a cluster (household) id")
        work["cluster"] = values.astype(str).to_numpy()
    # Canonical row order: rows equal in every audited column are interchangeable, so after
    # this sort the report (floating-point sums and bootstrap draws included) is identical
    # however the caller ordered the rows.
    work = work.sort_values(list(work.columns), kind="mergesort", ignore_index=True)
    codes = None
    if clusters is not None:
        codes = np.asarray(pd.factorize(work["cluster"], sort=True)[0], dtype=np.intp)
    return _Data(
        y=work["y"].to_numpy(dtype=np.float64),
        p=work["p"].to_numpy(dtype=np.float64),
        level=work["level"].to_numpy(dtype=np.int64),
        groups={a: work[c].rename(a) for a, c in names.items()},
        group_order=order,
        clusters=codes,
    )


def _cuts(thresholds: Sequence[Tier | str]) -> list[Tier]:
    cuts = sorted({Tier(t) for t in thresholds}, key=lambda t: t.level)
    if not cuts:
        raise ValueError("give at least one threshold tier (T1, T2 or T3)")
    if Tier.T4 in cuts:
        raise ValueError("T1-T4 selects every child; the cuts are T1, T2 and T3")
    return cuts


_Values: TypeAlias = dict[str, float]
_Figures: TypeAlias = tuple[dict[str, _Values], _Values]  # {group: {metric: v}}, {metric: v}


def _figures(frame: Any) -> _Figures:
    """A MetricFrame's per-group and overall values as plain dicts of floats."""
    by_group: dict[Any, dict[str, Any]] = frame.by_group.to_dict(orient="index")
    overall: dict[str, Any] = frame.overall.to_dict()
    return (
        {str(g): {m: float(v) for m, v in row.items()} for g, row in by_group.items()},
        {m: float(v) for m, v in overall.items()},
    )


def _metric_frames(
    data: _Data, attribute: str, cuts: Sequence[Tier], n_bins: int
) -> dict[Tier | None, _Figures]:
    """fairlearn's per-group and overall figures of every metric, for one attribute.

    Key ``None`` holds the cut-free metrics (calibration, base rate) with the counts ``n`` and
    ``events``; each cut holds the selection metrics with ``selected``, the count precision is
    taken over.

    fairlearn re-stacks every row for every metric of every group, which took some 20 s for
    20,000 children and five attributes. Apart from ECE, every metric here depends on a row only
    through its (group, outcome, tier) cell and the sum of its probabilities, so the rows are
    first collapsed into those cells and passed with their sizes as frequency weights
    (``sample_weight``): the same figures, from at most 8 rows per group. ECE bins the
    probabilities themselves, so it gets its own MetricFrame on the rows.
    """
    rows = pd.DataFrame(
        {"group": data.groups[attribute].to_numpy(), "y": data.y, "level": data.level, "p": data.p}
    )
    cells = (
        rows.groupby(["group", "y", "level"], sort=True)
        .agg(weight=("p", "size"), p_sum=("p", "sum"))
        .reset_index()
    )
    weight = cells["weight"].to_numpy(dtype=np.float64)
    mean_p = cells["p_sum"].to_numpy(dtype=np.float64) / weight
    y = cells["y"].to_numpy(dtype=np.float64)
    level = cells["level"].to_numpy(dtype=np.int64)
    # fairlearn puts y_true and y_pred beside the feature in one frame: a neutral name keeps
    # an attribute called "y_true" from clashing with them.
    cell_groups = cells["group"].astype(str).rename("group")

    def weighted(metrics: dict[str, MetricFunction], y_pred: FloatArray) -> _Figures:
        return _figures(
            MetricFrame(
                metrics=metrics,
                y_true=y,
                y_pred=y_pred,
                sensitive_features=cell_groups,
                sample_params={name: {"sample_weight": weight} for name in metrics},
            )
        )

    probability = {m: s.fn for m, s in _SPECS.items() if s.uses == "probability" and m != "ece"}
    by_group, overall = weighted({"n": group_size, "events": event_count, **probability}, mean_p)
    ece_group, ece_overall = _figures(
        MetricFrame(
            metrics={"ece": partial(expected_calibration_error, n_bins=n_bins)},
            y_true=data.y,
            y_pred=data.p,
            sensitive_features=data.groups[attribute].rename("group"),
        )
    )
    for group, values in by_group.items():
        values["ece"] = ece_group[group]["ece"]
    overall["ece"] = ece_overall["ece"]
    figures: dict[Tier | None, _Figures] = {None: (by_group, overall)}
    selection = {m: s.fn for m, s in _SPECS.items() if s.uses == "selection"}
    for cut in cuts:
        selected = (level <= cut.level).astype(np.float64)
        figures[cut] = weighted({"selected": selected_count, **selection}, selected)
    return figures


def _denominator(spec: _Spec, counts: _Values, values: _Values) -> float:
    """How many children the metric's rate is taken over, in one group (or overall).

    ``counts`` holds the group's ``n`` and ``events``; ``values`` its metrics at the cut, with
    ``selected`` (absent for the cut-free metrics, whose denominator is ``n``).
    """
    n, events = counts["n"], counts["events"]
    selected = values.get("selected", 0.0)
    return {
        "n": n,
        "events": events,
        "non_events": n - events,
        "selected": selected,
        "not_selected": n - selected,
    }[spec.denominator]


def _status(ratio: float, enough: bool, spec: _Spec, band: Range) -> tuple[str, str | None]:
    """A row's status and, when flagged, whether its ratio is above or below the band."""
    if not enough:
        return INSUFFICIENT, None
    if math.isnan(ratio):
        return UNDEFINED, None
    if spec.priority is None:
        return DESCRIPTIVE, None
    # Rounded so that a ratio exactly on an edge in arithmetic is not pushed out by float noise.
    rounded = round(ratio, _RATIO_DECIMALS) if math.isfinite(ratio) else ratio
    if band.contains(rounded):
        return WITHIN_BAND, None
    return FLAGGED, "above" if rounded > band.high else "below"


def _bootstrap(
    data: _Data,
    attribute: str,
    cuts: list[Tier],
    reference_group: str | None,
    *,
    n_resamples: int,
    seed: int,
) -> dict[tuple[str, str | None, str], tuple[FloatArray, FloatArray]]:
    """Resampled values and ratios of every bootstrapped metric, keyed (group, cut, metric).

    Households are drawn as :func:`models.metrics.cluster_bootstrap_indices` draws them (as
    many as there are, with replacement), but kept as row weights (how often each row's
    household was drawn) instead of index lists, so the metric functions the MetricFrame used
    evaluate every resample at once.
    """
    assert data.clusters is not None  # only called with clusters
    n_clusters = int(data.clusters.max()) + 1
    rng = np.random.default_rng(seed)
    draws = np.stack(
        [
            np.bincount(rng.integers(0, n_clusters, n_clusters), minlength=n_clusters)
            for _ in range(n_resamples)
        ]
    ).astype(np.float64)
    labels = data.groups[attribute].to_numpy()
    members = {g: np.flatnonzero(labels == g) for g in data.group_order[attribute]}
    # Row weights of every resample: (n_resamples, rows) per group and for everyone.
    weights = {g: draws[:, data.clusters[rows]] for g, rows in members.items()}
    overall_weights = draws[:, data.clusters]
    preds: list[tuple[str | None, FloatArray]] = [(None, data.p)]
    preds += [(selection_label(c), (data.level <= c.level).astype(np.float64)) for c in cuts]
    out: dict[tuple[str, str | None, str], tuple[FloatArray, FloatArray]] = {}
    for cut_label, y_pred in preds:
        uses = "probability" if cut_label is None else "selection"
        specs = {m: s for m, s in _SPECS.items() if s.uses == uses and s.bootstrap}
        overall = {m: s.fn(data.y, y_pred, overall_weights) for m, s in specs.items()}
        values = {
            g: {m: s.fn(data.y[rows], y_pred[rows], weights[g]) for m, s in specs.items()}
            for g, rows in members.items()
        }
        for group, by_metric in values.items():
            for m, v in by_metric.items():
                ref = overall[m] if reference_group is None else values[reference_group][m]
                out[(group, cut_label, m)] = (
                    np.asarray(v, dtype=np.float64),
                    np.asarray(_ratio(v, ref), dtype=np.float64),
                )
    return out


def _interval(draws: FloatArray, level: float) -> tuple[float, float]:
    valid = draws[~np.isnan(draws)]
    if len(valid) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0
    # Interval ends are resample values themselves (no interpolation): a ratio can be
    # infinite in a resample, and interpolating towards infinity is undefined.
    low, high = np.quantile(valid, [tail, 1.0 - tail], method="inverted_cdf")
    return float(low), float(high)


def fairness_audit(
    frame: pd.DataFrame,
    *,
    y_true: str,
    score: str,
    tier: str,
    groups: Mapping[str, GroupColumn],
    thresholds: Sequence[Tier | str],
    band: Range | Fairness | tuple[float, float],
    clusters: str | pd.Series | npt.ArrayLike | None = None,
    reference: Reference = "overall",
    min_group_size: int = 30,
    min_events: int = 5,
    n_bins: int = 10,
    n_resamples: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> FairnessReport:
    """Audit one scoring run for group disparities in who is missed, selected and mis-scored.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per child (or child and as-of date): the realised outcome, the calibrated
        probability, the assigned tier and the group columns.
    y_true : str
        Column of realised 0/1 outcomes (matured labels only; no missing values).
    score : str
        Column of calibrated probabilities.
    tier : str
        Column of assigned tiers, ``"T1"``..``"T4"``.
    groups : mapping of str to column
        Attribute name to its column name in ``frame``, or to values aligned with ``frame``
        (a Series with ``frame``'s index, or an array in row order), e.g.
        ``{"sex": "sex", "age_band": age_band(frame["age_years"]), "disability":
        "has_disability", "ethnicity": "ethnicity", "township": "township_code"}``. Missing
        values form the group :data:`MISSING_GROUP`.
    thresholds : sequence of Tier or str
        The cuts: ``T1`` audits "selected at T1", ``T2`` "at T1-T2", ``T3`` "at T1-T3".
    band : Range, Fairness or (low, high)
        The disparity band, normally ``policy.fairness.disparity_band``; closed at both ends.
    clusters : str, Series or array-like, optional
        Household id per row (column name or values in row order). With it every metric but
        ECE gets a cluster-bootstrap interval; without it the interval columns are NaN.
    reference : {"overall", "largest"}, default="overall"
        Denominator of the ratios: the whole population's figure, or that of the attribute's
        largest group (most rows; ties go to the first group in display order).
    min_group_size : int, default=30
        Fewer children than this in a group (or in the reference population) marks its rows
        ``insufficient_data``.
    min_events : int, default=5
        Fewer events than this in a group or reference, or fewer children than this in the
        metric's own denominator (e.g. children selected, for precision), marks the row
        ``insufficient_data``.
    n_bins : int, default=10
        Equal-mass bins of the per-group ECE.
    n_resamples : int, default=200
        Bootstrap resamples (used only with ``clusters``).
    level : float, default=0.95
        Nominal coverage of the intervals.
    seed : int, default=0
        Seed of the bootstrap.

    Returns
    -------
    FairnessReport
        The audit; see :meth:`FairnessReport.to_frame` for its columns.

    Raises
    ------
    ValueError
        If a column is missing, outcomes are not 0/1, probabilities leave [0, 1], a tier is
        not T1-T4, a cut is T4, the band does not contain 1, or a setting is out of range.
    """
    disparity = _band(band)
    cuts = _cuts(thresholds)
    if reference not in ("overall", "largest"):
        raise ValueError(f"reference must be 'overall' or 'largest', got {reference!r}")
    if min_group_size < 1 or min_events < 1:
        raise ValueError("min_group_size and min_events must be at least 1")
    if n_resamples < 0 or not 0.0 < level < 1.0:
        raise ValueError("n_resamples must be non-negative and level inside (0, 1)")
    data = _prepare(frame, y_true=y_true, score=score, tier=tier, groups=groups, clusters=clusters)
    n_total, events_total = len(data.y), float(data.y.sum())
    bootstrapping = data.clusters is not None and n_resamples > 0 and n_total > 0

    def sufficient(spec: _Spec, counts: _Values, values: _Values) -> bool:
        return (
            counts["n"] >= min_group_size
            and counts["events"] >= min_events
            and _denominator(spec, counts, values) >= min_events
        )

    records: list[dict[str, Any]] = []
    for attribute in data.groups:
        figures = _metric_frames(data, attribute, cuts, n_bins)
        base, base_overall = figures[None]
        order = data.group_order[attribute]
        # The largest group: most rows, ties to the first in display order (stable argmax).
        largest = order[int(np.argmax([base[g]["n"] for g in order]))]
        ref_group = None if reference == "overall" else largest
        draws = (
            _bootstrap(data, attribute, cuts, ref_group, n_resamples=n_resamples, seed=seed)
            if bootstrapping
            else {}
        )
        ref_counts = base_overall if ref_group is None else base[ref_group]
        for metric, spec in _SPECS.items():
            sources: list[tuple[Tier | None, dict[str, _Values], _Values]] = (
                [(None, base, base_overall)]
                if spec.uses == "probability"
                else [(c, *figures[c]) for c in cuts]
            )
            for cut, by_group, overall in sources:
                cut_label = None if cut is None else selection_label(cut)
                ref_values = overall if ref_group is None else by_group[ref_group]
                ref_enough = sufficient(spec, ref_counts, ref_values)
                for group in order:
                    value = by_group[group][metric]
                    ratio = float(_ratio(value, ref_values[metric]))
                    enough = ref_enough and sufficient(spec, base[group], by_group[group])
                    status, direction = _status(ratio, enough, spec, disparity)
                    low_high = [float("nan")] * 4
                    if (group, cut_label, metric) in draws:
                        value_draws, ratio_draws = draws[(group, cut_label, metric)]
                        low_high = [*_interval(value_draws, level), *_interval(ratio_draws, level)]
                    records.append(
                        {
                            "attribute": attribute,
                            "group": group,
                            "threshold": cut_label,
                            "metric": metric,
                            "value": value,
                            "overall": overall[metric],
                            "ratio": ratio,
                            "flagged": status == FLAGGED,
                            "n": int(base[group]["n"]),
                            "events": int(base[group]["events"]),
                            "status": status,
                            "direction": direction,
                            "priority": spec.priority,
                            "reference": "overall" if ref_group is None else ref_group,
                            "reference_value": ref_values[metric],
                            "denominator": int(_denominator(spec, base[group], by_group[group])),
                            **dict(zip(COLUMNS[-4:], low_high, strict=True)),
                        }
                    )
    # Report order: metric (priority), then attribute and cut as given, then group.
    metric_rank = {m: i for i, m in enumerate(METRICS)}
    attribute_rank = {a: i for i, a in enumerate(data.groups)}
    cut_rank = {selection_label(c): i for i, c in enumerate(cuts)}
    records.sort(
        key=lambda r: (
            metric_rank[r["metric"]],
            attribute_rank[r["attribute"]],
            -1 if r["threshold"] is None else cut_rank[r["threshold"]],
            data.group_order[r["attribute"]].index(r["group"]),
        )
    )
    table = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    table = table.astype(
        {
            "attribute": "str",
            "group": "str",
            "threshold": "str",
            "metric": "str",
            "flagged": "bool",
            "n": "int64",
            "events": "int64",
            "status": "str",
            "direction": "str",
            "priority": "Int64",
            "reference": "str",
            "denominator": "int64",
        }
    )
    report = FairnessReport(
        table=table,
        settings={
            "band": {"low": disparity.low, "high": disparity.high, "closed": True},
            "reference": reference,
            "thresholds": [selection_label(c) for c in cuts],
            "attributes": list(data.groups),
            "min_group_size": min_group_size,
            "min_events": min_events,
            "n_bins": n_bins,
            "n_resamples": n_resamples if bootstrapping else 0,
            "level": level,
            "seed": seed,
            "resampling_unit": "cluster" if bootstrapping else None,
        },
        n_rows=n_total,
        n_events=int(events_total),
    )
    logger.info(
        "fairness audit",
        extra={
            "children": n_total,
            "attributes": len(data.groups),
            "flags": int(table["flagged"].sum()),
            "blocking_flags": len(blocking_flags(report)),
            "insufficient": int((table["status"] == INSUFFICIENT).sum()),
        },
    )
    return report


__all__ = [
    "AGE_ABOVE_BANDS",
    "AGE_BANDS",
    "BLOCKING_METRICS",
    "CHECKED_METRICS",
    "COLUMNS",
    "METRICS",
    "MISSING_GROUP",
    "FairnessReport",
    "age_band",
    "base_rate",
    "blocking_flags",
    "calibration_ratio",
    "fairness_audit",
    "false_negative_rate",
    "false_omission_rate",
    "false_positive_rate",
    "mean_predicted",
    "precision",
    "selection_label",
    "selection_rate",
]
