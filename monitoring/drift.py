"""Drift between two as-of dates: features (Evidently), predictions, tier mix and data quality.

``shouhu monitoring drift --reference D1 --current D2`` compares the children registered on the
current date with those registered on the reference date, both read with the one point-in-time
retrieval (``FeatureStore.build``), so each side sees only what was known on its date:

1. **Feature drift** with Evidently 0.7 (``Report([DataDriftPreset(...)], include_tests=True)``)
   on the model features, recency features put on a common horizon first
   (``monitoring.season.comparable_frame``). A feature drifted when its Evidently test failed;
   the frame drifted when the drifted-columns test failed (its share is the policy's
   ``feature_drift.drift_share``). Methods follow Evidently's defaults (Wasserstein and
   Jensen-Shannon distances over 1,000 rows, K-S and chi-square p-values below); the statuses
   are read, never the scores compared by hand. Each side is sampled to
   ``settings.monitoring.sample_rows`` rows first: Evidently's plots dominate its run time.
2. **Prediction drift and tier mix** when the score store holds a run for both dates (a run
   up to ``SCORE_TOLERANCE_DAYS`` before each date): Evidently's drift test on ``p_any``
   (normed Wasserstein distance at the policy's ``prediction_drift.threshold``), the tier
   shares and their change. The current mix is held against the policy's ``expected_mix``
   whenever the current date has scores. Without a model or scores they are reported as
   absent, not as errors.
3. **Data quality** (``monitoring.quality``): missing rates, new and vanished categories,
   volume per area, schools that stopped sending absence reports.
4. **Attribution per area**: for every township and county, how far each feature moved
   there (standardised mean difference, or total variation distance for a category), so a
   drifted feature points at the places it drifted in.

``alarm`` is true when any check crossed a threshold of the tier policy's ``monitoring``
section; each crossing is listed in ``reasons`` with its scope (``overall`` or an area code).
Seasonality is handled by comparing like with like: see ``monitoring.season`` and
docs/monitoring.md.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd

from features.definitions import feature_names, model_feature_names
from features.store import FeatureStore
from models.policy import MonitoringLimits, Tier, TierPolicy
from models.scoring import ScoreStore
from monitoring import quality as q
from monitoring.season import (
    comparable_frame,
    comparison_horizon,
    matched_reference,
    season_note,
)
from shouhu.errors import ConfigError, PolicyError

if TYPE_CHECKING:
    from shouhu.settings import Settings

logger = logging.getLogger(__name__)

#: A scoring run up to this many days before a date stands for that date (runs are weekly).
SCORE_TOLERANCE_DAYS = 7
#: Features named per area in its entry, most shifted first.
TOP_SHIFTS = 5
#: Areas named per drifted feature, most shifted first.
TOP_AREAS = 3
#: The longest feature window: the reference needs this much history for like with like.
LONGEST_WINDOW_DAYS = 365
#: Label of a missing category value (Evidently compares it like any other value).
MISSING_LABEL = "(missing)"
_TIERS = tuple(t.value for t in Tier)
_SCORE_COLUMNS = (
    "child_id",
    "p_any",
    "tier",
    "model_name",
    "model_version",
    "model_available",
    "village_code",
    "township_code",
    "county_code",
)


# ---------------------------------------------------------------------------------------------
# The two sides


@dataclass
class Side:
    """Everything one date contributes to the comparison.

    Attributes
    ----------
    as_of : date
        The date.
    frame : DataFrame
        Feature rows of the children registered on it, with ``township`` and the entrant
        flag (``monitoring.quality.with_areas`` and ``ENTRANT``).
    scores : DataFrame or None
        The scoring run standing for the date (``None``: none stored).
    score_run : dict or None
        That run's ``run_id``, ``as_of``, ``model_name``, ``model_version``.
    score_note : str or None
        Why there are no scores, when there are none.
    """

    as_of: date
    frame: pd.DataFrame
    scores: pd.DataFrame | None = None
    score_run: dict[str, Any] | None = None
    score_note: str | None = None


def load_side(store: FeatureStore, as_of: date, scores_db: Path | None = None) -> Side:
    """Read one date's features (and scores, when stored).

    Parameters
    ----------
    store : FeatureStore
        The feature store (a read-only connection is enough).
    as_of : date
        The date.
    scores_db : Path, optional
        ``$SHOUHU_HOME/scores.duckdb``; ``None`` leaves the scores out.

    Returns
    -------
    Side
        The side, its entrant flag computed from the children registered 90 days earlier.
    """
    frame = store.build(as_of)
    before = store.registered_children(as_of - timedelta(days=90))
    entrant = ~frame["child_id"].isin(set(before["child_id"].astype(str)))
    frame = q.with_areas(pd.concat([frame, entrant.rename(q.ENTRANT)], axis=1))
    side = Side(as_of=as_of, frame=frame)
    if scores_db is None:
        side.score_note = "no score store given"
    else:
        side.scores, side.score_run, side.score_note = load_scores(scores_db, as_of)
    return side


def load_scores(
    scores_db: Path, as_of: date, tolerance_days: int = SCORE_TOLERANCE_DAYS
) -> tuple[pd.DataFrame | None, dict[str, Any] | None, str | None]:
    """The newest scoring run dated within ``tolerance_days`` before ``as_of``.

    Parameters
    ----------
    scores_db : Path
        The score store's DuckDB file.
    as_of : date
        The date the run should stand for.
    tolerance_days : int
        How much earlier the run may be.

    Returns
    -------
    tuple
        ``(scores, run, None)`` with the run's rows (``child_id``, ``p_any``, ``tier``, model
        and area columns) and its identity, or ``(None, None, reason)``.
    """
    try:
        return _read_scores(scores_db, as_of, tolerance_days)
    except duckdb.Error as exc:
        # A scoring run writing at this moment holds the file's lock: the report goes on
        # without predictions rather than failing.
        logger.warning("score store unreadable", extra={"error": type(exc).__name__})
        return None, None, f"the score store could not be read ({type(exc).__name__})"


def _read_scores(
    scores_db: Path, as_of: date, tolerance_days: int
) -> tuple[pd.DataFrame | None, dict[str, Any] | None, str | None]:
    runs = ScoreStore(scores_db, scores_db.parent / "scores").runs()
    if runs.empty:
        return None, None, "the score store holds no scoring run"
    dates = pd.to_datetime(runs["as_of"]).dt.date
    window = runs[(dates <= as_of) & (dates >= as_of - timedelta(days=tolerance_days))]
    if window.empty:
        return None, None, f"no scoring run dated {as_of - timedelta(days=tolerance_days)}..{as_of}"
    run = window.sort_values(["as_of", "scored_at"]).iloc[-1]
    con = duckdb.connect(str(scores_db), read_only=True)
    try:
        table = con.sql(
            f"SELECT {', '.join(_SCORE_COLUMNS)} FROM scores WHERE run_id = $run",
            params={"run": str(run["run_id"])},
        ).to_arrow_table()
    finally:
        con.close()
    scores: pd.DataFrame = table.to_pandas()
    version = run.get("model_version")
    info = {
        "run_id": str(run["run_id"]),
        "as_of": pd.Timestamp(run["as_of"]).date().isoformat(),
        "model_name": None if pd.isna(run.get("model_name")) else str(run["model_name"]),
        "model_version": None if version is None or pd.isna(version) else int(version),
        "children": len(scores),
    }
    return q.with_areas(scores), info, None


# ---------------------------------------------------------------------------------------------
# Evidently


def _evidently() -> Any:
    # Evidently takes ~3.4 s to import: load it only when a report runs. Its usage telemetry
    # is only sent by its UI service; DO_NOT_TRACK makes sure nothing leaves this machine.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    import evidently
    import evidently.presets

    return evidently


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= rows:
        return frame
    return frame.sample(n=rows, random_state=seed).sort_index()


def evidently_frame(
    frame: pd.DataFrame, numerical: Sequence[str], categorical: Sequence[str]
) -> pd.DataFrame:
    """Columns in the types Evidently reads: numbers as float, categories as text.

    A missing category is the value ``"(missing)"``: a rise in missing answers is then a
    change in the category's distribution, as a person reading the report would see it.
    """
    out = pd.DataFrame(index=frame.index)
    for name in numerical:
        out[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    for name in categorical:
        values = frame[name].astype("object")
        out[name] = values.where(values.notna(), MISSING_LABEL).astype(str)
    return out


def split_types(frame: pd.DataFrame, features: Sequence[str]) -> tuple[list[str], list[str]]:
    """Numerical and categorical features of ``frame`` (categories and yes/no are categorical)."""
    categorical = [
        f
        for f in features
        if isinstance(frame[f].dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(frame[f].dtype)
        or pd.api.types.is_object_dtype(frame[f].dtype)
        or pd.api.types.is_string_dtype(frame[f].dtype)
    ]
    numerical = [f for f in features if f not in set(categorical)]
    return numerical, categorical


@dataclass
class EvidentlyResult:
    """What one Evidently drift report found.

    Attributes
    ----------
    columns : list of dict
        Per column: ``feature``, ``method``, ``score``, ``threshold``, ``drifted`` (its test
        failed), sorted by drifted first and then by the test's own scale.
    drifted_count, share_drifted : int, float
        From the drifted-columns metric.
    dataset_drift : bool
        The drifted-columns test failed.
    snapshot : Any
        The Evidently snapshot (``save_html``, ``dict``).
    """

    columns: list[dict[str, Any]]
    drifted_count: int
    share_drifted: float
    dataset_drift: bool
    snapshot: Any = field(repr=False)


def run_evidently(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: Sequence[str],
    categorical: Sequence[str],
    drift_share: float,
    *,
    method: str | None = None,
    threshold: float | None = None,
) -> EvidentlyResult:
    """Run ``DataDriftPreset`` with its tests and read the statuses.

    Parameters
    ----------
    reference, current : DataFrame
        Frames from :func:`evidently_frame`.
    numerical, categorical : sequence of str
        Column types (a ``DataDefinition``).
    drift_share : float
        Share of drifted columns at which the dataset test fails.
    method, threshold : str and float, optional
        One stattest and its threshold for every column (Evidently's per-size defaults when
        omitted). Give both: a threshold means a distance for one method, a p-value for another.

    Returns
    -------
    EvidentlyResult
        Per-column and dataset results.
    """
    ev = _evidently()
    definition = ev.DataDefinition(
        numerical_columns=list(numerical), categorical_columns=list(categorical)
    )
    preset = ev.presets.DataDriftPreset(drift_share=drift_share, method=method, threshold=threshold)
    report = ev.Report([preset], include_tests=True)
    snapshot = report.run(
        current_data=ev.Dataset.from_pandas(current, data_definition=definition),
        reference_data=ev.Dataset.from_pandas(reference, data_definition=definition),
    )
    return read_snapshot(snapshot.dict(), snapshot)


def read_snapshot(data: dict[str, Any], snapshot: Any = None) -> EvidentlyResult:
    """Read a ``DataDriftPreset`` snapshot's metrics and test statuses.

    Parameters
    ----------
    data : dict
        ``snapshot.dict()``: ``metrics`` (``id``, ``config``, ``value``) and ``tests``
        (``metric_config.metric_id``, ``status``).
    snapshot : Any
        The snapshot itself, kept for its HTML.

    Returns
    -------
    EvidentlyResult
        A column drifted when its ``ValueDrift`` test's status is ``FAIL``; the dataset when
        the ``DriftedColumnsCount`` test's is.
    """
    status: dict[str, bool] = {}
    for test in data.get("tests", []):
        metric_id = str(test.get("metric_config", {}).get("metric_id"))
        failed = str(getattr(test.get("status"), "value", test.get("status"))) == "FAIL"
        status[metric_id] = status.get(metric_id, False) or failed
    columns: list[dict[str, Any]] = []
    count, share, dataset_drift = 0, 0.0, False
    for metric in data.get("metrics", []):
        config = metric.get("config", {})
        kind = str(config.get("type", ""))
        if kind.endswith("DriftedColumnsCount"):
            value = metric.get("value") or {}
            count = int(value.get("count", 0))
            share = float(value.get("share", 0.0))
            dataset_drift = status.get(str(metric.get("id")), False)
        elif kind.endswith("ValueDrift"):
            score = metric.get("value")
            columns.append(
                {
                    "feature": str(config.get("column")),
                    "method": config.get("method"),
                    "score": None if score is None else _round(float(score)),
                    "threshold": config.get("threshold"),
                    "drifted": status.get(str(metric.get("id")), False),
                }
            )
    columns.sort(key=lambda c: (not c["drifted"], c["feature"]))
    return EvidentlyResult(columns, count, share, dataset_drift, snapshot)


def _round(value: float, digits: int = 6) -> float | None:
    return round(value, digits) if np.isfinite(value) else None


def _mean(values: pd.Series) -> float | None:
    present = pd.to_numeric(values, errors="coerce").dropna()
    return _round(float(present.mean())) if len(present) else None


def strength(column: dict[str, Any]) -> float:
    """How far past its threshold a column's drift score is (1 at the threshold), for ordering.

    Distances (Wasserstein, Jensen-Shannon) grow with drift, p-values (K-S, chi-square) shrink,
    so a p-value is put on the log scale first. Used to order drifted features for display
    only: whether a feature drifted is its Evidently test's status.
    """
    score, threshold = column.get("score"), column.get("threshold")
    if score is None or not threshold:
        return 0.0
    if "p_value" in str(column.get("method")):
        return float(np.log10(max(float(score), 1e-300)) / np.log10(float(threshold)))
    return float(score) / float(threshold)


# ---------------------------------------------------------------------------------------------
# Predictions and tiers


def tier_shares(scores: pd.DataFrame) -> dict[str, float]:
    """Share of children in each tier T1-T4."""
    counts = scores["tier"].astype(str).value_counts()
    n = max(len(scores), 1)
    return {t: round(float(counts.get(t, 0)) / n, 6) for t in _TIERS}


def tier_shift(
    reference: pd.DataFrame | None,
    current: pd.DataFrame,
    policy: TierPolicy,
    scope: str = q.OVERALL,
) -> tuple[dict[str, Any], list[q.Finding]]:
    """Tier shares on both dates, their change, and the current mix against the policy.

    Parameters
    ----------
    reference : DataFrame or None
        The reference date's scores; ``None`` when that date has none (then only the current
        mix is checked against ``expected_mix``).
    current : DataFrame
        The current date's scores (``tier``).
    policy : TierPolicy
        ``expected_mix`` and ``monitoring.tier_shift``.
    scope : str
        ``"overall"`` (which also checks the expected mix) or an area code.

    Returns
    -------
    tuple of (dict, list of Finding)
        ``available`` (both dates scored), ``current``, and with a reference ``reference``,
        ``change`` (per tier) and ``max_change``; overall also ``outside_expected_mix``
        (tiers whose current share is outside the policy's range). Then the checks.
    """
    limits = _limits(policy)
    max_change = (
        limits.tier_shift.max_share_change
        if scope == q.OVERALL
        else limits.tier_shift.max_area_share_change
    )
    cur = tier_shares(current)
    out: dict[str, Any] = {"available": reference is not None, "current": cur}
    findings: list[q.Finding] = []
    if reference is not None:
        ref = tier_shares(reference)
        change = {t: round(cur[t] - ref[t], 6) for t in _TIERS}
        biggest = max(_TIERS, key=lambda t: abs(change[t]))
        out |= {"reference": ref, "change": change, "max_change": abs(change[biggest])}
        findings.append(
            q.Finding(
                check="tier_shift",
                scope=scope,
                subject=biggest,
                value=abs(change[biggest]),
                threshold=max_change,
                alarm=abs(change[biggest]) > max_change,
                message=(
                    f"share of children in {biggest}: {ref[biggest]:.1%} → {cur[biggest]:.1%}"
                ),
            )
        )
    if scope == q.OVERALL:
        outside = []
        for tier in Tier:
            band = policy.expected_mix.range_of(tier)
            if not band.contains(cur[tier.value]):
                outside.append(tier.value)
                findings.append(
                    q.Finding(
                        check="outside_expected_mix",
                        scope=scope,
                        subject=tier.value,
                        value=cur[tier.value],
                        threshold=None,
                        alarm=limits.tier_shift.alarm_outside_expected_mix,
                        message=(
                            f"{tier.value} holds {cur[tier.value]:.1%} of the children; the "
                            f"policy expects {band.low:.0%}-{band.high:.0%}"
                        ),
                    )
                )
        out["outside_expected_mix"] = outside
    return out, findings


def prediction_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    sample_rows: int,
    seed: int,
    threshold: float,
) -> tuple[dict[str, Any], Any]:
    """Evidently's drift test on the calibrated risk ``p_any``.

    The test is the normed Wasserstein distance at every sample size, so the policy's
    ``prediction_drift.threshold`` always means the same thing: the average move of a child's
    risk, in standard deviations of the reference's.

    Returns
    -------
    tuple of (dict, snapshot)
        ``available``, ``drift`` (the test failed), ``method``, ``score``, ``threshold``,
        mean ``p_any`` on both dates; and the Evidently snapshot.
    """
    ref = reference[["p_any"]].dropna()
    cur = current[["p_any"]].dropna()
    if ref.empty or cur.empty:
        return {"available": False, "reason": "a scoring run had no model scores"}, None
    result = run_evidently(
        _sample(ref, sample_rows, seed),
        _sample(cur, sample_rows, seed + 1),
        ["p_any"],
        [],
        1.0,
        method="wasserstein",
        threshold=threshold,
    )
    column = result.columns[0]
    return {
        "available": True,
        "drift": column["drifted"],
        "method": column["method"],
        "score": column["score"],
        "threshold": column["threshold"],
        "mean_reference": round(float(ref["p_any"].mean()), 6),
        "mean_current": round(float(cur["p_any"].mean()), 6),
    }, result.snapshot


# ---------------------------------------------------------------------------------------------
# Attribution per area


def area_shifts(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: Sequence[str],
    categorical: Sequence[str],
    column: str,
) -> pd.DataFrame:
    """How far each feature moved in each area between the two dates.

    Numbers: the area's mean change divided by the whole reference's standard deviation.
    Categories: the total variation distance between the area's shares on both dates. An area
    absent on the reference date is compared with the whole reference.

    Parameters
    ----------
    reference, current : DataFrame
        Comparable frames (:func:`monitoring.season.comparable_frame`) with ``column``.
    numerical, categorical : sequence of str
        Feature types.
    column : str
        The area column.

    Returns
    -------
    DataFrame
        One row per area of the current date, one column per feature.
    """
    numbers_ref = reference[list(numerical)].apply(pd.to_numeric, errors="coerce")
    numbers_cur = current[list(numerical)].apply(pd.to_numeric, errors="coerce")
    scale = numbers_ref.std().replace(0.0, np.nan).fillna(1.0)
    mean_ref = numbers_ref.groupby(reference[column]).mean()
    mean_cur = numbers_cur.groupby(current[column]).mean()
    overall_ref = numbers_ref.mean()
    aligned = mean_ref.reindex(mean_cur.index)
    aligned = aligned.fillna(pd.DataFrame([overall_ref] * len(aligned), index=aligned.index))
    out = (mean_cur - aligned) / scale
    distances: dict[str, pd.Series] = {}
    for name in categorical:
        ref_values = reference[name].astype("object").where(reference[name].notna(), MISSING_LABEL)
        cur_values = current[name].astype("object").where(current[name].notna(), MISSING_LABEL)
        ref_share = pd.crosstab(reference[column], ref_values.astype(str), normalize="index")
        cur_share = pd.crosstab(current[column], cur_values.astype(str), normalize="index")
        overall = ref_values.astype(str).value_counts(normalize=True)
        levels = ref_share.columns.union(cur_share.columns)
        ref_share = ref_share.reindex(index=cur_share.index, columns=levels)
        missing_rows = ref_share.isna().all(axis=1)
        ref_share.loc[missing_rows] = overall.reindex(levels).fillna(0.0).to_numpy()
        cur_share = cur_share.reindex(columns=levels, fill_value=0.0)
        distances[name] = 0.5 * (cur_share - ref_share.fillna(0.0)).abs().sum(axis=1)
    out = pd.concat([out, pd.DataFrame(distances, index=out.index)], axis=1)
    shifts: pd.DataFrame = out.reindex(columns=[*numerical, *categorical]).astype("float64")
    return shifts


# ---------------------------------------------------------------------------------------------
# The comparison


@dataclass
class DriftResult:
    """A finished comparison: the JSON summary and the Evidently snapshots for the HTML."""

    summary: dict[str, Any]
    feature_snapshot: Any = field(repr=False)
    prediction_snapshot: Any = field(default=None, repr=False)


def _limits(policy: TierPolicy) -> MonitoringLimits:
    if policy.monitoring is None:
        raise PolicyError(
            f"policy {policy.version} has no `monitoring:` section; add one (see the default "
            "policy and docs/monitoring.md) before running drift reports"
        )
    return policy.monitoring


def compare(
    reference: Side,
    current: Side,
    policy: TierPolicy,
    *,
    sample_rows: int,
    history_start: date | None = None,
    seed: int = 0,
) -> DriftResult:
    """Compare two sides and decide the alarm.

    Parameters
    ----------
    reference, current : Side
        From :func:`load_side` (possibly of two stores, e.g. two synthetic populations).
    policy : TierPolicy
        Its ``monitoring`` section holds every threshold; ``expected_mix`` the tier bands.
    sample_rows : int
        Rows per side given to Evidently (``settings.monitoring.sample_rows``).
    history_start : date, optional
        First day of the ledgers: caps the recency horizon at the reference's history and
        dates a school that never reported.
    seed : int
        Seed of the sampling.

    Returns
    -------
    DriftResult
        The summary (``shouhu monitoring drift --json`` without the file paths) and snapshots.

    Raises
    ------
    PolicyError
        If the policy has no ``monitoring`` section.
    ConfigError
        If either date has no registered child.
    """
    started = time.perf_counter()
    limits = _limits(policy)
    for side in (reference, current):
        if side.frame.empty:
            raise ConfigError(f"no child is registered on {side.as_of}: nothing to compare")
    history = None if history_start is None else (reference.as_of - history_start).days
    horizon = comparison_horizon(limits.recency_horizon_days, history)

    drift = _feature_drift(reference.frame, current.frame, limits, horizon, sample_rows, seed)
    areas, top_areas = _attribution(drift, reference.frame, current.frame, limits)
    quality, q_findings = _quality(reference, current, limits, history_start, areas)
    prediction, snapshot, tiers, p_findings = _predictions(
        reference, current, policy, areas, sample_rows, seed
    )
    findings = [drift.finding, *p_findings, *q_findings]
    reasons = [f for f in findings if f.alarm]
    summary: dict[str, Any] = {
        "kind": "drift",
        "alarm": bool(reasons),
        "dataset_drift": drift.result.dataset_drift,
        "share_drifted": _round(drift.result.share_drifted),
        "drifted_features": [
            c["feature"]
            for c in sorted(
                (c for c in drift.result.columns if c["drifted"]), key=strength, reverse=True
            )
        ],
        "prediction_drift": prediction.get("drift") if prediction["available"] else None,
        "tier_shift": tiers,
        "quality": quality,
        "areas": _area_list(areas, reasons),
        "reference": reference.as_of.isoformat(),
        "current": current.as_of.isoformat(),
        "reasons": [f.as_dict() for f in reasons],
        "features": [
            c | ({"top_areas": top_areas[c["feature"]]} if c["feature"] in top_areas else {})
            for c in sorted(drift.result.columns, key=lambda c: (not c["drifted"], -strength(c)))
        ],
        "prediction": prediction,
        "season": season_note(reference.as_of, current.as_of)
        | {
            "recency_horizon_days": horizon,
            "reference_history_days": history,
            # A year of ledgers before the reference fills every 365-day window on both sides.
            "history_complete": None if history is None else history >= LONGEST_WINDOW_DAYS,
        },
        "rows": {
            "reference": len(reference.frame),
            "current": len(current.frame),
            "sampled_reference": min(len(reference.frame), sample_rows),
            "sampled_current": min(len(current.frame), sample_rows),
        },
        "policy_version": policy.version,
        "policy_fingerprint": policy.fingerprint(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if not summary["season"]["matched"]:
        logger.warning(
            "drift reference is not in the same season as the current date",
            extra={"reference": summary["reference"], "current": summary["current"]},
        )
    return DriftResult(summary, drift.result.snapshot, snapshot)


@dataclass
class _FeatureDrift:
    """Evidently's result, the comparable frames it ran on and the dataset-drift check."""

    result: EvidentlyResult
    numerical: list[str]
    categorical: list[str]
    reference: pd.DataFrame
    current: pd.DataFrame
    finding: q.Finding


def _feature_drift(
    ref_frame: pd.DataFrame,
    cur_frame: pd.DataFrame,
    limits: MonitoringLimits,
    horizon: int,
    sample_rows: int,
    seed: int,
) -> _FeatureDrift:
    features = model_feature_names()
    numerical, categorical = split_types(ref_frame, features)
    ref_cmp = comparable_frame(ref_frame, features, horizon)
    cur_cmp = comparable_frame(cur_frame, features, horizon)
    result = run_evidently(
        evidently_frame(_sample(ref_cmp, sample_rows, seed), numerical, categorical),
        evidently_frame(_sample(cur_cmp, sample_rows, seed + 1), numerical, categorical),
        numerical,
        categorical,
        limits.feature_drift.drift_share,
    )
    finding = q.Finding(
        check="dataset_drift",
        scope=q.OVERALL,
        subject=None,
        value=result.share_drifted,
        threshold=limits.feature_drift.drift_share,
        alarm=result.dataset_drift,
        message=(
            f"{result.drifted_count} of {len(features)} features drifted "
            f"({result.share_drifted:.0%})"
        ),
    )
    return _FeatureDrift(result, numerical, categorical, ref_cmp, cur_cmp, finding)


_Areas = dict[tuple[str, str], dict[str, Any]]


def _entry(areas: _Areas, level: str, code: str) -> dict[str, Any]:
    return areas.setdefault((level, code), {"area_code": code, "level": level, "top_shifts": []})


def _attribution(
    drift: _FeatureDrift,
    ref_frame: pd.DataFrame,
    cur_frame: pd.DataFrame,
    limits: MonitoringLimits,
) -> tuple[_Areas, dict[str, list[dict[str, Any]]]]:
    """Each area's most moved features, and each drifted feature's most moved townships."""
    drifted = {c["feature"] for c in drift.result.columns if c["drifted"]}
    area_columns = [column for _, column in q.AREA_LEVELS]
    ref_cmp = pd.concat([drift.reference, ref_frame[area_columns]], axis=1)
    cur_cmp = pd.concat([drift.current, cur_frame[area_columns]], axis=1)
    areas: _Areas = {}
    top_areas: dict[str, list[dict[str, Any]]] = {}
    for level, column in q.AREA_LEVELS:
        shifts = area_shifts(ref_cmp, cur_cmp, drift.numerical, drift.categorical, column)
        for code, row in shifts.iterrows():
            ranked = row.abs().sort_values(ascending=False).head(TOP_SHIFTS)
            _entry(areas, level, str(code))["top_shifts"] = [
                {"feature": str(f), "shift": _round(float(row[f])), "drifted": f in drifted}
                for f in ranked.index
                if np.isfinite(row[f]) and row[f] != 0
            ]
        if level != "township":
            continue
        sizes = cur_frame[column].value_counts()
        eligible = shifts.loc[
            [c for c in shifts.index if sizes.get(c, 0) >= limits.min_area_children]
        ]
        for name in drifted:
            ranked = eligible[name].abs().sort_values(ascending=False).head(TOP_AREAS)
            top_areas[name] = [
                {"area_code": str(a), "shift": _round(float(value))}
                for a, value in eligible.loc[ranked.index, name].items()
            ]
    return areas, top_areas


def _quality(
    reference: Side,
    current: Side,
    limits: MonitoringLimits,
    history_start: date | None,
    areas: _Areas,
) -> tuple[dict[str, Any], list[q.Finding]]:
    """Every data-quality check, overall and per area; fills the areas' volume figures."""
    ref_frame, cur_frame = reference.frame, current.frame
    features = feature_names()
    jump = limits.quality.max_missing_rate_jump
    findings = q.missing_rate_findings(ref_frame, cur_frame, features, jump)
    code_columns = [*split_types(ref_frame, features)[1], *q.CODE_COLUMNS]
    findings += q.category_findings(ref_frame, cur_frame, code_columns, limits)
    findings.append(q.unmapped_finding(cur_frame, limits.quality.max_unmapped_area_share))
    overall, checks = q.volume_findings(
        q.volume_table(ref_frame, None).iloc[0],
        q.volume_table(cur_frame, None).iloc[0],
        q.OVERALL,
        limits,
    )
    findings += checks
    schools = q.school_findings(
        q.school_table(ref_frame, reference.as_of, history_start),
        q.school_table(cur_frame, current.as_of, history_start),
        limits,
    )
    findings += schools
    for level, column in q.AREA_LEVELS:
        table_ref = q.volume_table(ref_frame, column)
        table_cur = q.volume_table(cur_frame, column)
        ref_codes = ref_frame[column].astype(str)
        cur_codes = cur_frame[column].astype(str)
        for code in table_cur.index:
            entry = _entry(areas, level, code)
            if code in table_ref.index:
                figures, checks = q.volume_findings(
                    table_ref.loc[code], table_cur.loc[code], code, limits, population_alarm=False
                )
                entry.update(figures)
                findings += checks
                ref_rows = ref_frame[ref_codes == code]
            else:
                entry.update({"new": True, "children_current": int(table_cur["children"][code])})
                ref_rows = ref_frame  # a new area is held against the whole reference
            cur_rows = cur_frame[cur_codes == code]
            if len(cur_rows) >= limits.min_area_children:
                findings += q.missing_rate_findings(ref_rows, cur_rows, features, jump, code)
        for code in table_ref.index.difference(table_cur.index):
            _entry(areas, level, code).update(
                {"vanished": True, "children_reference": int(table_ref["children"][code])}
            )
    summary = {
        "missing_rate_jumps": [f.as_dict() for f in findings if f.check == "missing_rate_jump"],
        "new_categories": [f.as_dict() for f in findings if f.check == "new_category"],
        "vanished_categories": [f.as_dict() for f in findings if f.check == "vanished_category"],
        "unmapped_area_share": _round(float(cur_frame["_area_unmapped"].mean())),
        "volume": overall,
        "schools": [f.as_dict() for f in schools],
    }
    return summary, findings


def _predictions(
    reference: Side,
    current: Side,
    policy: TierPolicy,
    areas: _Areas,
    sample_rows: int,
    seed: int,
) -> tuple[dict[str, Any], Any, dict[str, Any], list[q.Finding]]:
    """Prediction drift and tier mix from the stored scores, when there are any."""
    limits = _limits(policy)
    findings: list[q.Finding] = []
    snapshot = None
    if reference.scores is None or current.scores is None:
        missing = reference if reference.scores is None else current
        prediction: dict[str, Any] = {
            "available": False,
            "reason": f"{missing.as_of}: {missing.score_note}",
        }
    else:
        prediction, snapshot = prediction_drift(
            reference.scores,
            current.scores,
            sample_rows=sample_rows,
            seed=seed,
            threshold=limits.prediction_drift.threshold,
        )
        prediction["runs"] = {"reference": reference.score_run, "current": current.score_run}
        if prediction["available"]:
            findings.append(
                q.Finding(
                    check="prediction_drift",
                    scope=q.OVERALL,
                    subject="p_any",
                    value=prediction["score"],
                    threshold=prediction["threshold"],
                    alarm=bool(prediction["drift"]) and limits.prediction_drift.alarm,
                    message=(
                        f"mean calibrated risk {prediction['mean_reference']:.3f} → "
                        f"{prediction['mean_current']:.3f} ({prediction['method']})"
                    ),
                )
            )
    if current.scores is None:
        return prediction, snapshot, _absent(current), findings
    # The current mix is checked against the policy even when the reference has no scores;
    # the shift needs both.
    tiers, checks = tier_shift(reference.scores, current.scores, policy)
    findings += checks
    if reference.scores is None:
        tiers["reason"] = _absent(reference)["reason"]
    for level, column in q.AREA_LEVELS:
        ref_groups: dict[str, pd.DataFrame] = {}
        if reference.scores is not None:
            ref_groups = {
                str(code): group
                for code, group in reference.scores.groupby(reference.scores[column].astype(str))
            }
        for code, cur_group in current.scores.groupby(current.scores[column].astype(str)):
            entry = _entry(areas, level, str(code))
            ref_group = ref_groups.get(str(code))
            area_tiers, area_checks = tier_shift(ref_group, cur_group, policy, str(code))
            entry["tier_shares_current"] = area_tiers["current"]
            entry["p_any_mean_current"] = _mean(cur_group["p_any"])
            if ref_group is None:
                continue
            entry["tier_shares_reference"] = area_tiers["reference"]
            entry["p_any_mean_reference"] = _mean(ref_group["p_any"])
            if min(len(ref_group), len(cur_group)) >= limits.min_area_children:
                findings += area_checks
    return prediction, snapshot, tiers, findings


def _absent(side: Side) -> dict[str, Any]:
    return {"available": False, "reason": f"{side.as_of}: {side.score_note}"}


def _area_list(areas: _Areas, reasons: Sequence[q.Finding]) -> list[dict[str, Any]]:
    """Area entries, counties first, each with its alarm and the reasons scoped to it."""
    by_scope: dict[str, list[q.Finding]] = {}
    for finding in reasons:
        by_scope.setdefault(finding.scope, []).append(finding)
    out = []
    for (level, code), entry in sorted(
        areas.items(), key=lambda kv: (kv[0][0] != "county", kv[0][1])
    ):
        mine = by_scope.get(code, [])
        rest = {k: v for k, v in entry.items() if k not in {"area_code", "level"}}
        out.append(
            {
                "area_code": code,
                "level": level,
                "alarm": bool(mine),
                "reasons": [f.message for f in mine],
                "children_reference": 0,
                "children_current": 0,
            }
            | rest
        )
    return out


# ---------------------------------------------------------------------------------------------
# Entry point for the CLI and the demo


def drift_from_settings(
    settings: Settings,
    reference: date | None,
    current: date,
    *,
    out: Path | None = None,
    deliver: bool = True,
) -> dict[str, Any]:
    """Write a drift report for the data home of ``settings`` (what the CLI and demo call).

    Parameters
    ----------
    settings : Settings
        Home, store, scoring, policy and ``monitoring.sample_rows``.
    reference : date or None
        The reference date; ``None`` picks the same season a year earlier
        (:func:`monitoring.season.matched_reference`, ``reference_months_back`` of the policy).
    current : date
        The date under review.
    out : Path, optional
        Report folder; by default a new folder under ``$SHOUHU_HOME/monitoring/drift``.
    deliver : bool, default=True
        POST an alarm to the configured webhook (``False``: write the report only).

    Returns
    -------
    dict
        The summary (cli.md's ``--json`` object) with ``report`` (the overview HTML),
        ``files`` and ``webhook``: the alarm's delivery (``monitoring.alarm.send_alarm``) when
        the report is kept under the home, raised the alarm and a webhook is configured, else
        ``None``.

    Raises
    ------
    StoreError
        If the feature store is missing.
    PolicyError
        If the policy has no ``monitoring`` section.
    ConfigError
        If a webhook URL is set without a secret (checked before any work is done).
    """
    from features.rawstore import connect
    from models.dataset import earliest_record
    from models.policy import load_policy
    from monitoring.alarm import send_alarm
    from monitoring.metrics_export import write_metrics
    from monitoring.reports import drift_folder, write_drift_report
    from shouhu.webhook import webhook_config

    # A misconfigured webhook fails now, not after minutes of work whose alarm it would lose.
    webhook = webhook_config(settings) if deliver else None
    policy = load_policy(settings.policy.file)
    limits = _limits(policy)
    if reference is None:
        reference = matched_reference(current, limits.reference_months_back)
    if reference >= current:
        raise ConfigError(f"the reference date {reference} must come before {current}")
    con = connect(
        settings.store_path,
        read_only=True,
        threads=settings.store.threads,
        memory_limit=settings.store.memory_limit,
    )
    try:
        store = FeatureStore(con)
        history_start = earliest_record(con)
        ref_side = load_side(store, reference, settings.scores_db_path)
        cur_side = load_side(store, current, settings.scores_db_path)
    finally:
        con.close()
    result = compare(
        ref_side,
        cur_side,
        policy,
        sample_rows=settings.monitoring.sample_rows,
        history_start=history_start,
    )
    default_place = out is None
    folder = drift_folder(settings.monitoring_dir, reference, current) if out is None else out
    summary = write_drift_report(result, folder)
    if default_place:
        # Only reports kept in the home are the county's current state.
        write_metrics(summary, settings.monitoring_dir)
    summary["webhook"] = None
    if summary["alarm"]:
        logger.warning(
            "drift alarm",
            extra={
                "reference": summary["reference"],
                "current": summary["current"],
                "reasons": len(summary["reasons"]),
                "checks": sorted({r["check"] for r in summary["reasons"]}),
            },
        )
        if default_place and webhook is not None:
            summary["webhook"] = send_alarm(
                summary, webhook, monitoring_dir=settings.monitoring_dir
            )
    return summary


__all__ = [
    "MISSING_LABEL",
    "SCORE_TOLERANCE_DAYS",
    "DriftResult",
    "EvidentlyResult",
    "Side",
    "area_shifts",
    "compare",
    "drift_from_settings",
    "evidently_frame",
    "load_scores",
    "load_side",
    "prediction_drift",
    "read_snapshot",
    "run_evidently",
    "split_types",
    "strength",
    "tier_shares",
    "tier_shift",
]
