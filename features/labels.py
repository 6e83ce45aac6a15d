"""Labels: which adverse outcomes the ledgers RECORD for a child in the window after a date.

For each ``(child_id, as_of)`` of a spine, an outcome counts when a record of it has an event
date in ``(as_of, as_of + horizon_days]``: strictly after ``as_of`` (features see up to and
including ``as_of``; a label never does) and at most ``horizon_days`` later. Labels look
forward, features look back; the two never share a row.

The outcomes follow the tier policy's "adverse event in the next 90 days" (tier-policy.md):

``serious_harm``            incidents of harm and mandatory-report types
``dropout``                 suspected dropout or dropout records; enrolment status dropped out
``guardianship_breakdown``  a guardianship record that newly shows a breakdown (assessed
                            absent, no caregiver, or living alone) where the child's previous
                            record did not; incidents of living alone or no de facto guardian
``mental_health``           suicide attempts, self-harm, severe crises; a positive screening
                            that found suicidal ideation
``any``                     any of the above

A guardianship state is re-recorded at every quarterly review of the file: a child whose
guardian was already absent is absent again on the next record, and that is no new
breakdown. So a guardianship record counts only when it is the child's first record in a
breakdown state after one that was not (or the child's first record at all), comparing with
the record before it in event-date order among the versions known by ``known_by``.

Each outcome also reports the source systems that recorded it (police, health, school,
village) and the frame says whether the child was visited in the window at all: outcomes
that caseworkers record themselves (guardianship, visits) are only seen where someone looked,
so a model trained on them learns whom we visit as much as who is at risk.

Label maturity
--------------
A record entered late (``recorded_at`` after ``as_of + horizon_days``) still counts: the label
is about when the outcome happened, not when it was typed in. ``known_by`` fixes what "the
ledgers" means: only rows recorded on or before ``known_by`` count, each record in its
version known on that date (corrections after it are ignored). Pass the date the training
data were cut, so a re-run months later reproduces the same labels; without it every row in
the store counts. ``label_mature`` says whether the whole window had ended by ``known_by``
(or, without it, by the newest ``recorded_at`` in the store): an immature window can only
under-count, so training should drop or down-weight those rows. Labels never read the
synthetic truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from features.assembly import arrow_to_pandas, normalise_spine
from features.definitions import (
    DROPOUT_EVENTS,
    GUARDIANSHIP_INCIDENTS,
    HARM_INCIDENTS,
    MENTAL_HEALTH_INCIDENTS,
    MISSING_INCIDENTS,
    Filter,
)
from features.rawstore import raw_table
from features.schema import TABLES, TABLES_BY_NAME
from features.sql import filter_sql, literal
from features.store import FeatureStore

#: Outcome domains, in column order (``any`` is added after them).
OUTCOMES: tuple[str, ...] = ("serious_harm", "dropout", "guardianship_breakdown", "mental_health")

#: Incident types that make a serious-harm outcome: harm and the mandatory-report situations.
SERIOUS_HARM_INCIDENTS: tuple[str, ...] = (
    *HARM_INCIDENTS,
    "serious_injury",
    "drowning",
    *MISSING_INCIDENTS,
)


@dataclass(frozen=True)
class OutcomeRecord:
    """One kind of ledger row that records an outcome (the filters are ANDed).

    The source system is ``source`` when fixed, else the value of ``source_column`` (whose
    codes are source-system codes: ``incidents.source_system``, ``screenings.screener``).

    ``any_of`` (when given) adds the condition that at least one of its filters holds.
    ``onset_only`` makes the record count only when that condition (``where`` and
    ``any_of``) did not already hold on the child's previous row of the table (in event-date,
    then recorded-date, then ``_seq`` order): a state re-recorded unchanged is no new event.
    """

    outcome: str
    table: str
    where: tuple[Filter, ...]
    source: str | None = None
    source_column: str | None = None
    any_of: tuple[Filter, ...] = ()
    onset_only: bool = False


OUTCOME_RECORDS: tuple[OutcomeRecord, ...] = (
    OutcomeRecord(
        "serious_harm",
        "incidents",
        (Filter("incident_type", "in", SERIOUS_HARM_INCIDENTS),),
        source_column="source_system",
    ),
    OutcomeRecord(
        "dropout", "school_events", (Filter("kind", "in", DROPOUT_EVENTS),), source="school"
    ),
    OutcomeRecord(
        "dropout", "enrolments", (Filter("enrol_status", "eq", ("dropped_out",)),), source="school"
    ),
    # Assessed absent, nobody caring, or living alone: a breakdown only where it is new.
    OutcomeRecord(
        "guardianship_breakdown",
        "guardianship",
        (),
        source="village",
        any_of=(
            Filter("capacity", "eq", ("absent",)),
            Filter("caregiver_relation", "eq", ("none",)),
            Filter("living_arrangement", "eq", ("alone",)),
        ),
        onset_only=True,
    ),
    OutcomeRecord(
        "guardianship_breakdown",
        "incidents",
        (Filter("incident_type", "in", GUARDIANSHIP_INCIDENTS),),
        source_column="source_system",
    ),
    OutcomeRecord(
        "mental_health",
        "incidents",
        (Filter("incident_type", "in", MENTAL_HEALTH_INCIDENTS),),
        source_column="source_system",
    ),
    # Ideation alone is a floor rule's business; a severe event is a positive screen with it.
    OutcomeRecord(
        "mental_health",
        "screenings",
        (Filter("suicidal_ideation", "is_true"), Filter("positive", "is_true")),
        source_column="screener",
    ),
)

_SPINE = "_label_spine"


def _version_key(table: str) -> tuple[str, ...]:
    return tuple("child_id" if k == "id_number" else k for k in TABLES_BY_NAME[table].key)


def _known(known_by: date | None) -> str:
    if known_by is None:
        return "x.superseded_at IS NULL"
    return (
        f"r.recorded_at <= {literal(known_by)} AND "
        f"(x.superseded_at IS NULL OR x.superseded_at > {literal(known_by)})"
    )


def _state_sql(rec: OutcomeRecord) -> str:
    """The record's own condition (``where`` AND any of ``any_of``), never NULL."""
    conds = [filter_sql(Filter(f"r.{f.column}", f.op, f.values)) for f in rec.where]
    if rec.any_of:
        alternatives = (filter_sql(Filter(f"r.{f.column}", f.op, f.values)) for f in rec.any_of)
        conds.append("(" + " OR ".join(alternatives) + ")")
    return f"COALESCE({' AND '.join(conds)}, FALSE)" if conds else "TRUE"


def _record_sql(rec: OutcomeRecord, superseded: str, known_by: date | None) -> str:
    event = TABLES_BY_NAME[rec.table].event_time
    source = literal(rec.source) if rec.source else f"r.{rec.source_column}"
    head = (
        f"SELECT r.child_id, r.{event} AS event_date, {literal(rec.outcome)} AS outcome, "
        f"{source} AS source"
    )
    frm = f"FROM {raw_table(rec.table)} AS r\n  LEFT JOIN {superseded} AS x ON x._seq = r._seq"
    if not rec.onset_only:
        return f"  {head}\n  {frm}\n  WHERE {_state_sql(rec)} AND {_known(known_by)}"
    # Every known row of the child, with the state on it and on the row before it; only rows
    # where the state begins count (a child's first row has no row before it).
    state = _state_sql(rec)
    order = f"r.{event}, r.recorded_at, r._seq"
    return (
        "  SELECT child_id, event_date, outcome, source FROM (\n"
        f"    {head},\n      {state} AS _state,\n"
        f"      LAG({state}) OVER (PARTITION BY r.child_id ORDER BY {order}) AS _before\n"
        f"    {frm}\n    WHERE {_known(known_by)}\n"
        "  ) AS onsets\n  WHERE _state AND NOT COALESCE(_before, FALSE)"
    )


def outcome_sql(superseded: dict[str, str], known_by: date | None) -> str:
    """Outcome records matched to spine rows: ``_spine_row, outcome, source, n``.

    ``superseded`` maps each table to its superseded-versions table (see
    ``FeatureStore.ensure_superseded``).
    """
    parts = [_record_sql(rec, superseded[rec.table], known_by) for rec in OUTCOME_RECORDS]
    events = "\n  UNION ALL\n".join(parts)
    return (
        f"WITH events AS (\n{events}\n)\n"
        "SELECT s._spine_row, e.outcome, e.source, COUNT(*) AS n\n"
        f"FROM {_SPINE} AS s\nJOIN events AS e ON e.child_id = s.child_id\n"
        "WHERE e.event_date > s.as_of AND e.event_date <= s.window_end\n"
        "GROUP BY s._spine_row, e.outcome, e.source"
    )


def visits_sql(superseded: str, known_by: date | None) -> str:
    """Visits in each spine row's window: ``_spine_row, n``."""
    return (
        "SELECT s._spine_row, COUNT(*) AS n\n"
        f"FROM {_SPINE} AS s\nJOIN {raw_table('visits')} AS r ON r.child_id = s.child_id\n"
        f"LEFT JOIN {superseded} AS x ON x._seq = r._seq\n"
        f"WHERE r.visit_date > s.as_of AND r.visit_date <= s.window_end AND {_known(known_by)}\n"
        "GROUP BY s._spine_row"
    )


def _newest_record(con: duckdb.DuckDBPyConnection) -> date | None:
    union = " UNION ALL ".join(f"SELECT MAX(recorded_at) AS d FROM {raw_table(t)}" for t in TABLES)
    rows = con.sql(f"SELECT MAX(d) FROM ({union}) AS t").fetchall()
    value = rows[0][0]
    return value if isinstance(value, date) else None


def label_frame(
    con: duckdb.DuckDBPyConnection,
    spine: pd.DataFrame,
    horizon_days: int = 90,
    known_by: date | None = None,
) -> pd.DataFrame:
    """Outcomes recorded in ``(as_of, as_of + horizon_days]`` for each spine row.

    Parameters
    ----------
    con
        The store (read-only is fine).
    spine
        ``child_id`` and ``as_of``; pairs must be unique.
    horizon_days
        Length of the look-ahead window.
    known_by
        Only rows recorded on or before this date count, each in its version known then
        (see the module docstring). ``None``: every row in the store.

    Returns
    -------
    pandas.DataFrame
        One row per spine row, in spine order: ``child_id``, ``as_of``, then for each
        outcome and ``any``: ``<outcome>`` (bool) and ``source_<outcome>`` (the source
        systems that recorded it, sorted and ``;``-joined; missing when none); then
        ``visits_in_window``, ``visited_in_window``, ``window_end``, ``known_by`` and
        ``label_mature``.
    """
    if horizon_days < 1:
        raise ValueError("horizon_days must be at least 1")
    keys = normalise_spine(spine)
    window_end = keys["as_of"] + pd.Timedelta(days=horizon_days)
    table = pa.table(
        {
            "_spine_row": pa.array(np.arange(len(keys), dtype=np.int64)),
            "child_id": pa.array(keys["child_id"].to_numpy(dtype=object), type=pa.string()),
            "as_of": pa.array(keys["as_of"].dt.date.to_numpy(), type=pa.date32()),
            "window_end": pa.array(window_end.dt.date.to_numpy(), type=pa.date32()),
        }
    )
    store = FeatureStore(con)
    superseded = {
        t: store.ensure_superseded(t, _version_key(t))
        for t in {r.table for r in OUTCOME_RECORDS} | {"visits"}
    }
    con.register("_label_spine_arrow", table)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_SPINE} AS SELECT * FROM _label_spine_arrow")
    finally:
        con.unregister("_label_spine_arrow")
    events = arrow_to_pandas(con.sql(outcome_sql(superseded, known_by)).to_arrow_table())
    visits = arrow_to_pandas(con.sql(visits_sql(superseded["visits"], known_by)).to_arrow_table())

    out = keys.copy()
    rows = pd.RangeIndex(len(keys))
    for outcome in (*OUTCOMES, "any"):
        hits = events if outcome == "any" else events[events["outcome"] == outcome]
        sources = (
            hits.groupby("_spine_row")["source"]
            .agg(lambda s: ";".join(sorted(set(s.dropna()))))
            .reindex(rows)
        )
        out[outcome] = rows.isin(hits["_spine_row"])
        out[f"source_{outcome}"] = sources.astype("str").where(sources.notna()).to_numpy()
    counts = visits.set_index("_spine_row")["n"].reindex(rows).fillna(0).astype("int32")
    out["visits_in_window"] = counts.to_numpy()
    out["visited_in_window"] = out["visits_in_window"] > 0
    out["window_end"] = window_end.to_numpy()
    cutoff = known_by or _newest_record(con)
    out["known_by"] = pd.Timestamp(cutoff) if cutoff else pd.NaT
    out["known_by"] = out["known_by"].astype("datetime64[us]")
    out["label_mature"] = (
        (out["window_end"] <= pd.Timestamp(cutoff)).to_numpy()
        if cutoff
        else np.zeros(len(out), dtype=bool)
    )
    return out


def horizon_end(as_of: date, horizon_days: int = 90) -> date:
    """Last day of the label window of ``as_of``."""
    return as_of + timedelta(days=horizon_days)


__all__ = [
    "OUTCOMES",
    "OUTCOME_RECORDS",
    "SERIOUS_HARM_INCIDENTS",
    "OutcomeRecord",
    "horizon_end",
    "label_frame",
    "outcome_sql",
    "visits_sql",
]
