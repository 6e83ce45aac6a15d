"""Every child's ledger records and score history, held in memory for the child file.

Opening the two DuckDB files and scanning nine raw tables for one child took a quarter of a
second (a tenth of a second of CPU) per child file; the rest of the API answers in about a
millisecond. The service cannot keep the files open (a writer would be locked out; see
``service.snapshot``), so :func:`build_child_records` reads them once, when the snapshot is
built, into Arrow tables sorted by child, and a child's rows are a slice:

- each timeline table and the registry, every record in its newest version (the same
  ``QUALIFY`` as the per-request queries of ``service.repository.children``), newest first;
- the score history (the newest run of every scored date), with the five reasons a child file
  shows of each score.

Strings that repeat (codes, reason sentences, run ids) are dictionary-encoded and the child id
column is replaced by each child's row span, so the ledgers of 20,000 children over two
years take under 40 MB. The child file falls back to the stores when a file changed after the
snapshot was built (``ServiceState.stores_changed``), so it never shows less than the stores
hold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from features.rawstore import raw_table, stored_columns, stored_name
from features.schema import TABLES_BY_NAME, TableSpec

logger = logging.getLogger(__name__)

#: Tables on the timeline, with the field that names what happened; attendance weeks only
#: when a day was missed without reason.
TIMELINE_TABLES: dict[str, str] = {
    "guardianship": "caregiver_relation",
    "visits": "visitor_role",
    "enrolments": "enrol_status",
    "attendance": "unexcused_days",
    "results": "average_score",
    "school_events": "kind",
    "screenings": "positive",
    "incidents": "incident_type",
}
#: Tables a child file reads: the registry (profile) and the timeline.
FILE_TABLES: tuple[str, ...] = ("children", *TIMELINE_TABLES)
#: Reasons of each past score a child file shows.
HISTORY_REASONS = 5


def table_keys(spec: TableSpec) -> list[str]:
    """The stored names of a table's natural key (what a correction shares with the row)."""
    names = (stored_name(spec.column(k)) for k in spec.key)
    return [n for n in names if n]


def latest_rows_sql(spec: TableSpec, where: Iterable[str] = ()) -> str:
    """A query for a table's rows, each natural key of each child in its newest version.

    Partitioned by child as well as by the key, so the answer for one child equals the
    per-request query with ``child_id = $child`` in its ``WHERE``; ordered by child, then
    newest event first (ties: newest recorded, then newest loaded).
    """
    columns = [name for name, _ in stored_columns(spec)]
    partition = ", ".join(["child_id", *table_keys(spec)]) or "_seq"
    conditions = list(where)
    if spec.name == "attendance":
        conditions.append("unexcused_days > 0")
    filters = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    return (
        f"SELECT {', '.join(columns)} FROM {raw_table(spec)} {filters}"
        f"QUALIFY row_number() OVER (PARTITION BY {partition} "
        "ORDER BY recorded_at DESC, _seq DESC) = 1 "
        f"ORDER BY child_id, {spec.event_time} DESC, recorded_at DESC, _seq DESC"
    )


def history_sql(where: str = "") -> str:
    """The score history: every child's score in the newest run of each scored date."""
    reasons = (
        f"list_transform(s.reasons[1:{HISTORY_REASONS}], "
        "lambda r: {'zh': r.zh, 'en': r.en, 'feature': r.feature}) AS reasons"
    )
    return (
        "SELECT s.child_id, s.as_of, s.run_id, s.scored_at, s.tier, s.tier_source, s.p_any, "
        f"s.p_low, s.p_high, s.rules_fired, {reasons}, s.model_name, s.model_version, "
        "s.policy_version FROM scores s JOIN (SELECT run_id FROM scoring_runs QUALIFY "
        "row_number() OVER (PARTITION BY as_of ORDER BY scored_at DESC) = 1) r "
        f"USING (run_id) {where} ORDER BY s.child_id, s.as_of DESC"
    )


def has_history(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the score store has its two tables."""
    found = con.execute(
        "SELECT COUNT(*) FROM duckdb_tables() WHERE table_name IN ('scores', 'scoring_runs')"
    ).fetchall()
    return int(found[0][0]) >= 2


def _compact(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Dictionary-encode strings (also inside lists and structs) when they repeat."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        encoded = pc.dictionary_encode(array)
        return encoded if encoded.nbytes < array.nbytes else array
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return type(array).from_arrays(array.offsets, _compact(array.values), mask=array.is_null())
    if pa.types.is_struct(kind):
        fields = [kind.field(i) for i in range(kind.num_fields)]
        children = [_compact(array.field(i)) for i in range(kind.num_fields)]
        return pa.StructArray.from_arrays(
            children,
            fields=[pa.field(f.name, c.type) for f, c in zip(fields, children, strict=True)],
            mask=array.is_null(),
        )
    return array


@dataclass(frozen=True)
class ByChild:
    """One table's rows grouped by child: row ``start[i]`` to ``stop[i]`` belong to child ``i``.

    Attributes
    ----------
    table : pyarrow.Table
        The rows, sorted by child, without the child id column.
    start, stop : ndarray of int
        Each child's span (empty when ``start == stop``), indexed by ``ChildRecords.index``.
    """

    table: pa.Table
    start: npt.NDArray[np.int64]
    stop: npt.NDArray[np.int64]

    def rows(self, position: int | None) -> list[dict[str, Any]]:
        """The rows of the child at ``position`` (``None``: a child without rows)."""
        if position is None:
            return []
        first, last = int(self.start[position]), int(self.stop[position])
        if first == last:
            return []
        rows: list[dict[str, Any]] = self.table.slice(first, last - first).to_pylist()
        return rows


def _group(table: pa.Table, index: dict[str, int]) -> ByChild:
    """Group ``table`` (sorted by ``child_id``) by child; children missing from ``index`` are
    added to it."""
    spans: list[tuple[int, int, int]] = []
    if table.num_rows:
        runs = pc.run_end_encode(table.column("child_id").combine_chunks())
        ends = runs.run_ends.to_numpy().astype(np.int64)
        begins = np.concatenate(([0], ends[:-1]))
        for child, first, last in zip(runs.values.to_pylist(), begins, ends, strict=True):
            if child is None:
                continue
            position = index.setdefault(str(child), len(index))
            spans.append((position, int(first), int(last)))
    start = np.zeros(len(index), dtype=np.int64)
    stop = np.zeros(len(index), dtype=np.int64)
    for position, first, last in spans:
        start[position], stop[position] = first, last
    rest = table.drop_columns(["child_id"])
    compact = (
        pa.table({name: _compact(rest.column(name)) for name in rest.column_names})
        if rest.num_columns
        else rest
    )
    return ByChild(compact, start, stop)


@dataclass
class ChildRecords:
    """The ledger rows and score history of every child, for the child file.

    Attributes
    ----------
    index : dict of str to int
        Position of each child in every table's spans.
    tables : dict of str to ByChild
        ``children`` (the registry) and each of :data:`TIMELINE_TABLES`.
    history : ByChild or None
        The score history (``None`` when nothing was scored).
    nbytes : int
        Memory the Arrow tables take.
    seconds : float
        Build time.
    sizes : dict of str to int
        Memory per table.
    """

    index: dict[str, int]
    tables: dict[str, ByChild]
    history: ByChild | None
    nbytes: int = 0
    seconds: float = 0.0
    sizes: dict[str, int] = field(default_factory=dict)

    def rows(self, table: str, child_id: str, since: date | None = None) -> list[dict[str, Any]]:
        """A child's rows of ``table``, newest first; only events on or after ``since``."""
        rows = self.tables[table].rows(self.index.get(child_id))
        if since is None:
            return rows
        event = TABLES_BY_NAME[table].event_time
        return [r for r in rows if isinstance(r.get(event), date) and r[event] >= since]

    def score_history(self, child_id: str) -> list[dict[str, Any]]:
        """A child's scores, newest scored date first (see :func:`history_sql`)."""
        if self.history is None:
            return []
        return self.history.rows(self.index.get(child_id))


def build_child_records(
    features: duckdb.DuckDBPyConnection, scores: duckdb.DuckDBPyConnection | None
) -> ChildRecords:
    """Read every child's records from the two stores (open, read-only).

    Parameters
    ----------
    features : duckdb.DuckDBPyConnection
        The feature store.
    scores : duckdb.DuckDBPyConnection or None
        The score store (``None`` when nothing was scored).

    Returns
    -------
    ChildRecords
        Ready for ``service.repository.children.child_file``.
    """
    started = time.perf_counter()
    index: dict[str, int] = {}
    tables: dict[str, ByChild] = {}
    for name in FILE_TABLES:
        spec = TABLES_BY_NAME[name]
        tables[name] = _group(features.sql(latest_rows_sql(spec)).to_arrow_table(), index)
    history = None
    if scores is not None and has_history(scores):
        history = _group(scores.sql(history_sql()).to_arrow_table(), index)
    # Children added to the index by a later table get empty spans in the earlier ones.
    size = len(index)
    for name, grouped in list(tables.items()):
        tables[name] = _pad(grouped, size)
    if history is not None:
        history = _pad(history, size)
    sizes = {name: t.table.nbytes for name, t in tables.items()}
    if history is not None:
        sizes["score_history"] = history.table.nbytes
    records = ChildRecords(
        index=index,
        tables=tables,
        history=history,
        nbytes=sum(sizes.values()),
        seconds=round(time.perf_counter() - started, 3),
        sizes=sizes,
    )
    logger.info(
        "child records loaded",
        extra={"children": size, "megabytes": round(records.nbytes / 1e6, 1)},
    )
    return records


def _pad(grouped: ByChild, size: int) -> ByChild:
    missing = size - len(grouped.start)
    if missing <= 0:
        return grouped
    zeros = np.zeros(missing, dtype=np.int64)
    return ByChild(
        grouped.table,
        np.concatenate((grouped.start, zeros)),
        np.concatenate((grouped.stop, zeros)),
    )


__all__ = [
    "FILE_TABLES",
    "HISTORY_REASONS",
    "TIMELINE_TABLES",
    "ByChild",
    "ChildRecords",
    "build_child_records",
    "has_history",
    "history_sql",
    "latest_rows_sql",
    "table_keys",
]
