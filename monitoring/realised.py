"""Realised performance: how the stored scoring runs did once their 90-day outcomes matured.

A scoring run on date ``d`` makes a claim about the next 90 days. Once the ledgers reach
``d + 90`` days, the outcomes they recorded in that window (``features.labels.label_frame``,
the very labels training uses, with ``known_by`` = the newest record in the store; never the
synthetic truth) say how the run did. This module joins every matured run (the newest run of
each scored date, as in ``models.scoring.ScoreStore``) with its outcomes and reports, per
quarter and per township (the capacity area) and per run:

``auc``                       ranking of ``p_any`` against "any adverse event" (model rows)
``precision_at_capacity``     as training measures it (``models.capacity``): per township and
``recall_at_capacity``        date, the top ``k`` by ``p_any`` among the children no rule puts
                              in T1, ``k`` the township's T2 visits in the tier policy
``precision_t1_t2``           the tiers actually given: share of T1-T2 children with an event
``recall_t1_t2``              share of all events that happened to T1-T2 children
``missed``                    adverse events that happened to children **not** in T1-T2
                              (``missed_by_tier``: in T3 and T4; ``missed_by_outcome``: per
                              domain): the cases the policy asks us to account for
``brier``, ``ece``            calibration of ``p_any``
``calibration_ratio``         observed events / expected events (sum of ``p_any``): above 1
                              the model under-predicts
``mean_predicted``,           predicted and observed event rates
``event_rate``

A group (a township in a quarter, say) with fewer than ``min_events`` events or fewer than
``min_children`` rows gets its counts but no rates (``status`` is ``insufficient_data``): a
rate over three events says little and can point at individual children.

The trend is the quarter series of every rate, with the change from the previous quarter and,
from three quarters on, the least-squares slope per quarter.

Outcomes are what the ledgers **recorded**. A child whom nobody visited may have had an
adverse event that no ledger shows; ``visited_share`` (children visited at least once in the
window) is reported beside the figures so that a fall in recorded events is not mistaken for
a fall in harm.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd

from features.labels import OUTCOMES as DOMAINS
from features.labels import label_frame
from models.metrics import (
    brier,
    expected_calibration_error,
    precision_at_capacity,
    recall_at_capacity,
    roc_auc,
)
from models.policy import TierPolicy
from monitoring.quarters import Quarter

if TYPE_CHECKING:
    from shouhu.settings import Settings

logger = logging.getLogger(__name__)

#: Days a scoring run's claim looks ahead (the label horizon of training).
HORIZON_DAYS = 90
#: Fewer events than this in a group and its rates are withheld.
MIN_EVENTS = 5
#: Fewer children (rows) than this in a group and its rates are withheld.
MIN_CHILDREN = 30

#: The tiers the policy visits at least fortnightly: a child outside them with an event is missed.
VISITED_TIERS: tuple[str, ...] = ("T1", "T2")

#: Rates of a group, with whether higher is better (None: closeness to 1 is better).
RATES: dict[str, bool | None] = {
    "auc": True,
    "precision_at_capacity": True,
    "recall_at_capacity": True,
    "precision_t1_t2": True,
    "recall_t1_t2": True,
    "missed_share": False,
    "brier": False,
    "ece": False,
    "calibration_ratio": None,
    "mean_predicted": None,
    "event_rate": None,
    "visited_share": None,
}

_SCORE_COLUMNS = (
    "child_id",
    "as_of",
    "p_any",
    "tier",
    "rules_fired",
    "township_code",
    "household_pid",
    "model_version",
    "run_id",
    "policy_version",
)


# --------------------------------------------------------------------------------------------
# Reading the stored runs
# --------------------------------------------------------------------------------------------


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute(
        "SELECT COUNT(*) FROM duckdb_tables() WHERE table_name = ?", [name]
    ).fetchall()
    return bool(rows[0][0])


def stored_runs(scores_db: Path) -> pd.DataFrame:
    """The run in force for every scored date: the newest run of each date, oldest date first.

    Parameters
    ----------
    scores_db : Path
        ``$SHOUHU_HOME/scores.duckdb`` (``models.scoring.ScoreStore``).

    Returns
    -------
    DataFrame
        ``run_id``, ``as_of`` (date), ``scored_at``, ``children``, ``model_version``,
        ``policy_version``; empty when nothing was scored.
    """
    columns = ["run_id", "as_of", "scored_at", "children", "model_version", "policy_version"]
    if not Path(scores_db).is_file():
        return pd.DataFrame(columns=columns)
    con = duckdb.connect(str(scores_db), read_only=True)
    try:
        if not _has_table(con, "scoring_runs"):
            return pd.DataFrame(columns=columns)
        runs: pd.DataFrame = con.sql(
            f"SELECT {', '.join(columns)} FROM scoring_runs "
            "QUALIFY row_number() OVER (PARTITION BY as_of ORDER BY scored_at DESC, run_id) = 1 "
            "ORDER BY as_of"
        ).df()
    finally:
        con.close()
    runs["as_of"] = pd.to_datetime(runs["as_of"]).dt.date
    return runs


def stored_scores(scores_db: Path, run_ids: Sequence[str]) -> pd.DataFrame:
    """The stored rows of the given runs, in date then child order.

    Parameters
    ----------
    scores_db : Path
        ``$SHOUHU_HOME/scores.duckdb``.
    run_ids : sequence of str
        Runs to read.

    Returns
    -------
    DataFrame
        The columns realised performance needs (pseudonymous ids only).
    """
    if not run_ids:
        return pd.DataFrame(columns=list(_SCORE_COLUMNS))
    con = duckdb.connect(str(scores_db), read_only=True)
    try:
        con.register("_runs", pd.DataFrame({"run_id": list(run_ids)}))
        table = con.sql(
            f"SELECT {', '.join('s.' + c for c in _SCORE_COLUMNS)} FROM scores s "
            "JOIN _runs r ON s.run_id = r.run_id ORDER BY s.as_of, s.child_id"
        ).to_arrow_table()
    finally:
        con.close()
    scores: pd.DataFrame = table.to_pandas()
    scores["as_of"] = pd.to_datetime(scores["as_of"])
    return scores.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Joining the outcomes
# --------------------------------------------------------------------------------------------


def _rule_forced_t1(rules_fired: pd.Series) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Rows a hard rule or a T1 floor put in T1 (outside the T2 band population)."""

    def forced(labels: Any) -> bool:
        if labels is None or (isinstance(labels, float) and math.isnan(labels)):
            return False
        return any(str(x).startswith(("hard:", "floor:T1:")) for x in labels)

    return np.asarray([forced(v) for v in rules_fired], dtype=bool)


def realised_rows(
    con: duckdb.DuckDBPyConnection,
    scores: pd.DataFrame,
    *,
    known_by: date,
    horizon_days: int = HORIZON_DAYS,
) -> pd.DataFrame:
    """Stored score rows with the outcomes the ledgers recorded in their 90-day windows.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The feature store (read-only is fine).
    scores : DataFrame
        Rows of matured runs (:func:`stored_scores`).
    known_by : date
        Labels count records entered on or before this date.
    horizon_days : int, default=90
        Length of each window.

    Returns
    -------
    DataFrame
        ``scores`` plus ``y_any``, ``y_<domain>`` (0/1), ``visited_in_window``, ``quarter``,
        ``t1_t2`` (tier T1 or T2), ``t2_band`` (no rule put the child in T1) and
        ``capacity_key`` (``<township>|<date>``).

    Raises
    ------
    ValueError
        If a row's window had not ended by ``known_by``.
    """
    if scores.empty:
        return scores.assign(y_any=pd.Series(dtype="int8"))
    ends = pd.to_datetime(scores["as_of"]) + pd.Timedelta(days=horizon_days)
    if (ends > pd.Timestamp(known_by)).any():
        raise ValueError("every row's outcome window must have ended by known_by")
    labels = label_frame(
        con, scores[["child_id", "as_of"]], horizon_days=horizon_days, known_by=known_by
    )
    same = (labels["child_id"].to_numpy() == scores["child_id"].to_numpy()).all()
    if not same:  # label_frame keeps spine order; anything else is a store bug
        raise RuntimeError("outcomes are not aligned with the stored scores")
    out = scores.copy()
    out["y_any"] = labels["any"].to_numpy(dtype=np.int8)
    for outcome in DOMAINS:
        out[f"y_{outcome}"] = labels[outcome].to_numpy(dtype=np.int8)
    out["visited_in_window"] = labels["visited_in_window"].to_numpy(dtype=bool)
    as_of = pd.to_datetime(out["as_of"])
    out["quarter"] = [str(Quarter.of(d.date())) for d in as_of]
    out["t1_t2"] = out["tier"].astype(str).isin(VISITED_TIERS).to_numpy()
    out["t2_band"] = ~_rule_forced_t1(out["rules_fired"])
    area = out["township_code"].astype("object").fillna("unresolved").astype(str)
    out["township_code"] = area
    out["capacity_key"] = (area + "|" + as_of.dt.strftime("%Y-%m-%d")).to_numpy()
    return out


def capacity_slots(rows: pd.DataFrame, policy: TierPolicy) -> dict[str, int]:
    """T2 visits of every township and date: the ``k`` of precision at capacity.

    A stored run holds every registered child, so the township's capacity applies whole
    (no scaling, unlike a test window that holds a sample of the households).

    Parameters
    ----------
    rows : DataFrame
        Whole runs, with ``capacity_key`` and ``township_code``.
    policy : TierPolicy
        Capacity per area.

    Returns
    -------
    dict of str to int
        ``capacity_key`` to T2 visits.
    """
    sizes = rows.groupby(["capacity_key", "township_code"], sort=True).size()
    keys = sizes.index.get_level_values(0).astype(str)
    areas = sizes.index.get_level_values(1).astype(str)
    return {
        key: policy.capacity.for_area(area).slots(int(n))[0]
        for key, area, n in zip(keys, areas, sizes.to_numpy(), strict=True)
    }


# --------------------------------------------------------------------------------------------
# Metrics of one group
# --------------------------------------------------------------------------------------------


def _rate(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")


def group_metrics(
    rows: pd.DataFrame,
    slots: Mapping[str, int],
    *,
    min_events: int = MIN_EVENTS,
    min_children: int = MIN_CHILDREN,
) -> dict[str, Any]:
    """Every realised figure of one group of rows (a quarter, a township, a run).

    Parameters
    ----------
    rows : DataFrame
        Rows of :func:`realised_rows`.
    slots : mapping of str to int
        :func:`capacity_slots` of the whole runs the rows come from.
    min_events, min_children : int
        Below either, the rates are withheld (``None``) and ``status`` says why.

    Returns
    -------
    dict
        Counts (``children``, ``events``, ``t1_t2``, ``missed``, ``missed_by_tier``,
        ``missed_by_outcome``, ``model_rows``), the rates of :data:`RATES` (``None`` when
        undefined or withheld) and ``status`` (``ok`` or ``insufficient_data``).
    """
    y = rows["y_any"].to_numpy(dtype=np.float64)
    n, events = len(y), float(y.sum())
    visited = rows["t1_t2"].to_numpy(dtype=bool)
    missed_mask = (~visited) & (y > 0)
    tiers = rows["tier"].astype(str).to_numpy()
    p = rows["p_any"].to_numpy(dtype=np.float64)
    model = ~np.isnan(p)
    band = rows["t2_band"].to_numpy(dtype=bool) & model
    keys = rows["capacity_key"].to_numpy(dtype=object)
    ym, pm = y[model], p[model]

    rates: dict[str, float] = {
        "event_rate": _rate(events, n),
        "precision_t1_t2": _rate(float(y[visited].sum()), float(visited.sum())),
        "recall_t1_t2": _rate(float(y[visited].sum()), events),
        "missed_share": _rate(float(missed_mask.sum()), events),
        "visited_share": _rate(float(rows["visited_in_window"].sum()), n),
        "auc": roc_auc(ym, pm) if len(ym) else float("nan"),
        "brier": brier(ym, pm) if len(ym) else float("nan"),
        "ece": expected_calibration_error(ym, pm) if len(ym) else float("nan"),
        "calibration_ratio": _rate(float(ym.sum()), float(pm.sum())),
        "mean_predicted": float(pm.mean()) if len(pm) else float("nan"),
        "precision_at_capacity": float("nan"),
        "recall_at_capacity": float("nan"),
    }
    if band.any():
        rates["precision_at_capacity"] = precision_at_capacity(
            y[band], p[band], keys[band], slots, tie_break="stable"
        )
        rates["recall_at_capacity"] = recall_at_capacity(
            y[band], p[band], keys[band], slots, tie_break="stable"
        )
    enough = n >= min_children and events >= min_events
    out: dict[str, Any] = {
        "children": n,
        "events": int(events),
        "t1_t2": int(visited.sum()),
        "missed": int(missed_mask.sum()),
        "missed_by_tier": {t: int(((tiers == t) & (y > 0)).sum()) for t in ("T3", "T4")},
        "missed_by_outcome": {
            o: int(((~visited) & (rows[f"y_{o}"].to_numpy() > 0)).sum()) for o in DOMAINS
        },
        "model_rows": int(model.sum()),
        "status": "ok" if enough else "insufficient_data",
    }
    for name in RATES:
        value = rates[name]
        out[name] = None if not enough or not math.isfinite(value) else round(value, 6)
    return out


def _table(
    rows: pd.DataFrame,
    slots: Mapping[str, int],
    by: Sequence[str],
    *,
    min_events: int,
    min_children: int,
) -> list[dict[str, Any]]:
    records = []
    for key, part in rows.groupby(list(by), sort=True):
        values = key if isinstance(key, tuple) else (key,)
        labels = {name: str(v) for name, v in zip(by, values, strict=True)}
        metrics = group_metrics(part, slots, min_events=min_events, min_children=min_children)
        records.append({**labels, **metrics})
    return records


def trend(quarters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each rate over the quarters: values, change from the previous quarter, slope.

    Parameters
    ----------
    quarters : sequence of mapping
        Quarter rows (``quarter`` and the rates), oldest first.

    Returns
    -------
    dict
        ``quarters`` (labels) and, per rate, ``values``, ``change`` (last minus the one
        before, when both exist), ``slope_per_quarter`` (least squares, from three values)
        and ``higher_is_better`` (``None`` for rates judged by closeness to 1 or descriptive).

    Examples
    --------
    >>> t = trend([{"quarter": "2025Q1", "auc": 0.70}, {"quarter": "2025Q2", "auc": 0.74}])
    >>> t["auc"]["change"], t["auc"]["slope_per_quarter"]
    (0.04, None)
    """
    labels = [str(q["quarter"]) for q in quarters]
    out: dict[str, Any] = {"quarters": labels}
    for name, higher in RATES.items():
        values = [q.get(name) for q in quarters]
        change = None
        if len(values) >= 2 and values[-1] is not None and values[-2] is not None:
            change = round(float(values[-1]) - float(values[-2]), 6)
        points = [(i, float(v)) for i, v in enumerate(values) if v is not None]
        slope = None
        if len(points) >= 3:
            xs, ys = zip(*points, strict=True)
            slope = round(float(np.polyfit(xs, ys, 1)[0]), 6)
        out[name] = {
            "values": values,
            "change": change,
            "slope_per_quarter": slope,
            "higher_is_better": higher,
        }
    return out


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealisedReport:
    """Realised performance of the stored scoring runs.

    Parameters
    ----------
    known_by : date or None
        Outcomes count records entered up to this date (the newest in the store).
    horizon_days : int
        Days each run's window looks ahead.
    runs : list of dict
        Every run in force (one per scored date): date, version, ``matured`` and, for a
        matured run, its figures; for a pending one ``matures_on``.
    quarters : list of dict
        One row per quarter with matured runs.
    areas : list of dict
        One row per quarter and township.
    trend : dict
        :func:`trend` of the quarters.
    policy_version : str
        The policy whose capacity sized precision at capacity.
    min_events, min_children : int
        The thresholds below which rates are withheld.
    created_at : datetime
        When the report was computed (UTC).
    """

    known_by: date | None
    horizon_days: int
    runs: list[dict[str, Any]]
    quarters: list[dict[str, Any]]
    areas: list[dict[str, Any]]
    trend: dict[str, Any]
    policy_version: str
    min_events: int = MIN_EVENTS
    min_children: int = MIN_CHILDREN
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def matured_runs(self) -> int:
        """How many runs have matured outcomes."""
        return sum(1 for r in self.runs if r["matured"])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the ``shouhu monitoring performance --json`` object).

        Returns
        -------
        dict
            ``known_by``, ``horizon_days``, ``runs`` counts, ``quarters``, ``areas``,
            ``trend``, the per-run rows as ``run_rows``, settings and the creation time.
        """
        return {
            "known_by": None if self.known_by is None else self.known_by.isoformat(),
            "horizon_days": self.horizon_days,
            "runs": {
                "stored": len(self.runs),
                "matured": self.matured_runs,
                "pending": len(self.runs) - self.matured_runs,
            },
            "quarters": self.quarters,
            "areas": self.areas,
            "trend": self.trend,
            "run_rows": self.runs,
            "policy_version": self.policy_version,
            "min_events": self.min_events,
            "min_children": self.min_children,
            "created_at": self.created_at.isoformat(),
        }


def realised_performance(
    con: duckdb.DuckDBPyConnection,
    scores_db: Path,
    policy: TierPolicy,
    *,
    known_by: date,
    horizon_days: int = HORIZON_DAYS,
    min_events: int = MIN_EVENTS,
    min_children: int = MIN_CHILDREN,
) -> RealisedReport:
    """Realised performance of every stored scoring run whose window has matured.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The feature store (outcomes come from its ledgers).
    scores_db : Path
        The scoring-run database.
    policy : TierPolicy
        The tier policy (capacity per township).
    known_by : date
        The date the ledgers are known to (normally the newest record in the store).
    horizon_days : int, default=90
        Days each run looks ahead.
    min_events, min_children : int
        Rates of smaller groups are withheld.

    Returns
    -------
    RealisedReport
        Per run, per quarter and per quarter and township, with the trend.
    """
    runs = stored_runs(scores_db)
    run_rows: list[dict[str, Any]] = []
    matured_ids: list[str] = []
    for run_id, as_of, model_version, policy_version in zip(
        runs["run_id"].astype(str),
        pd.to_datetime(runs["as_of"]).dt.date,
        runs["model_version"].astype("Int64"),
        runs["policy_version"].astype(str),
        strict=True,
    ):
        day: date = as_of
        ends = day + timedelta(days=horizon_days)
        entry: dict[str, Any] = {
            "as_of": day.isoformat(),
            "run_id": run_id,
            "model_version": None if pd.isna(model_version) else int(model_version),
            "policy_version": policy_version,
            "matured": ends <= known_by,
        }
        if ends <= known_by:
            matured_ids.append(run_id)
        else:
            entry["matures_on"] = ends.isoformat()
        run_rows.append(entry)
    quarters: list[dict[str, Any]] = []
    areas: list[dict[str, Any]] = []
    if matured_ids:
        scores = stored_scores(scores_db, matured_ids)
        rows = realised_rows(con, scores, known_by=known_by, horizon_days=horizon_days)
        slots = capacity_slots(rows, policy)
        limits = {"min_events": min_events, "min_children": min_children}
        per_run = {r["run_id"]: r for r in _table(rows, slots, ["run_id"], **limits)}
        for entry in run_rows:
            if entry["run_id"] in per_run:
                figures = dict(per_run[entry["run_id"]])
                figures.pop("run_id")
                entry.update(figures)
        quarters = _table(rows, slots, ["quarter"], **limits)
        areas = _table(rows, slots, ["quarter", "township_code"], **limits)
        logger.info(
            "realised performance",
            extra={"runs": len(matured_ids), "rows": len(rows), "quarters": len(quarters)},
        )
    return RealisedReport(
        known_by=known_by,
        horizon_days=horizon_days,
        runs=run_rows,
        quarters=quarters,
        areas=areas,
        trend=trend(quarters),
        policy_version=policy.version,
        min_events=min_events,
        min_children=min_children,
    )


def write_performance_report(report: RealisedReport, folder: Path) -> dict[str, Path]:
    """Write the report as JSON, Markdown and HTML into ``folder``.

    Parameters
    ----------
    report : RealisedReport
        The report.
    folder : Path
        ``$SHOUHU_HOME/monitoring/performance`` normally; created if missing.

    Returns
    -------
    dict of str to Path
        ``json``, ``markdown`` and ``html`` files written.
    """
    from monitoring.rendering import render

    folder.mkdir(parents=True, exist_ok=True)
    payload = report.to_dict()
    paths = {
        "json": folder / "performance.json",
        "markdown": folder / "performance.md",
        "html": folder / "performance.html",
    }
    paths["json"].write_text(json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8")
    context = {"report": payload, "rates": list(RATES)}
    paths["markdown"].write_text(render("performance.md.j2", context), encoding="utf-8")
    paths["html"].write_text(render("performance.html.j2", context), encoding="utf-8")
    return paths


def performance_from_settings(
    settings: Settings, *, horizon_days: int | None = None
) -> dict[str, Any]:
    """Compute and store realised performance as ``shouhu monitoring performance`` does.

    Parameters
    ----------
    settings : Settings
        Data home, store and policy.
    horizon_days : int, optional
        Days each run looks ahead (default: the training horizon).

    Returns
    -------
    dict
        :meth:`RealisedReport.to_dict` with ``report`` (the HTML file) and ``files``.
    """
    from features.rawstore import connect
    from models.dataset import newest_record
    from models.policy import load_policy

    policy = load_policy(settings.policy.file)
    horizon = horizon_days or settings.train.horizon_days
    con = connect(
        settings.store_path,
        read_only=True,
        threads=settings.store.threads,
        memory_limit=settings.store.memory_limit,
    )
    try:
        known_by = newest_record(con)
        report = realised_performance(
            con, settings.scores_db_path, policy, known_by=known_by, horizon_days=horizon
        )
    finally:
        con.close()
    paths = write_performance_report(report, settings.monitoring_dir / "performance")
    payload = report.to_dict()
    payload["report"] = str(paths["html"])
    payload["files"] = {k: str(v) for k, v in paths.items()}
    return payload


__all__ = [
    "HORIZON_DAYS",
    "MIN_CHILDREN",
    "MIN_EVENTS",
    "RATES",
    "VISITED_TIERS",
    "RealisedReport",
    "capacity_slots",
    "group_metrics",
    "performance_from_settings",
    "realised_performance",
    "realised_rows",
    "stored_runs",
    "stored_scores",
    "trend",
    "write_performance_report",
]
