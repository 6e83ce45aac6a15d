"""Evidence: the raw ledger records behind a feature value, so a supervisor can check it.

For a child, a feature and an as-of date D, :func:`evidence_for` returns the very records the
feature counted, read with the same declarations as the store (``features.definitions``): the
view's source table, window, filters and aggregation, and the same point-in-time rule (a record
counts in the version known on D, i.e. the latest recorded on or before D, and only if its event
happened on or before D). A record entered after D is never cited, even if its event lies in
the window: the feature could not see it on D either.

What is cited, per aggregation:

``count``          every record that matched (window and filters)
``sum``            the matched records whose summed column is not zero (the absence weeks that
                   add up to the unexcused-day count)
``max``            the record holding the largest value
``days_since``     the newest matching record (by the dated column)
``latest``         the newest record (event date, then recorded date, then load order)
``previous``       the record before it
``empty_periods``  the records that did occur in the window (the months without one are the
                   gaps between them)

A derived feature cites the records of the aggregated fields it is computed from (an absence
rate cites the absence weeks; ``days_since_any_record`` the newest record of each table).

Each record is named by its table, natural key (``visit_id``, ``event_id``, ``incident_id``, or
the child's date key such as ``week_start``), event and recorded dates, and the delivered file
and spreadsheet row it came from. Records never carry identity numbers, names or free text; the
child's pseudonymous id is left out of the key (it is the child being explained), and a
school-level record (``scope`` ``"school"``: the school's latest absence report) names the
school and week only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from features.assembly import arrow_to_pandas, as_of_calendar, window_bounds
from features.definitions import CHILD, DERIVED, ENROLMENT, REGISTRY, VIEWS, FeatureView, Field
from features.rawstore import raw_table
from features.reference import filter_mask
from features.schema import TABLES_BY_NAME
from features.sql import literal

#: Keys of every evidence record, in display order.
EVIDENCE_KEYS: tuple[str, ...] = (
    "table",
    "record_id",
    "key",
    "event_date",
    "recorded_at",
    "file",
    "row",
    "field",
    "value",
    "scope",
)

_CHILDREN_TABLE = "_evidence_children"
_SCHOOLS_TABLE = "_evidence_schools"
_ORDER = ("event", "recorded", "_seq")  # newest first, the store's tie-break order


@dataclass(frozen=True)
class FieldSource:
    """One aggregated field of a view that a feature reads."""

    view: FeatureView
    field: Field


@lru_cache(maxsize=1)
def _fields_by_name() -> dict[str, FieldSource]:
    return {f.name: FieldSource(v, f) for v in VIEWS for f in v.fields}


@cache
def feature_sources(feature: str) -> tuple[FieldSource, ...]:
    """The aggregated fields behind a feature (derived features expanded to their inputs).

    Parameters
    ----------
    feature : str
        A feature (or internal field) name.

    Returns
    -------
    tuple of FieldSource
        In declaration order, without repeats; calendar inputs (``as_of``,
        ``school_days_<window>``) have no records and are left out.

    Raises
    ------
    KeyError
        If no view field or derived feature has that name.

    Examples
    --------
    >>> [s.field.name for s in feature_sources("unexcused_absence_rate_90d")]
    ['unexcused_absence_days_90d']
    """
    fields = _fields_by_name()
    if feature in fields:
        return (fields[feature],)
    derived = {d.name: d for d in DERIVED}
    if feature not in derived:
        raise KeyError(f"unknown feature {feature!r}")
    out: dict[str, FieldSource] = {}
    for name in derived[feature].inputs:
        if name == "as_of" or name.startswith("school_days_"):
            continue
        for source in feature_sources(name):
            out.setdefault(source.field.name, source)
    return tuple(out.values())


def _record_key(view: FeatureView) -> tuple[str, ...]:
    """Stored columns naming one record, without the child's pseudonymous id."""
    if view.version_key:
        return tuple(k for k in view.version_key if k != CHILD.key)
    spec = TABLES_BY_NAME[view.source]
    natural = tuple(k for k in spec.key if k != "id_number")
    return (view.entity.key, *natural)


def _columns(view: FeatureView, fields: Iterable[Field]) -> list[str]:
    """Raw columns to read: keys, dates, and what the fields aggregate or filter on."""
    cols = [
        view.entity.key,
        *view.version_key,
        *_record_key(view),
        view.event_time,
        view.available_time,
    ]
    for fld in fields:
        if fld.column:
            cols.append(fld.column)
        cols.extend(f.column for f in fld.where)
    return list(dict.fromkeys(cols))


def _known_sql(view: FeatureView, columns: Sequence[str], keys_table: str, as_of: date) -> str:
    """The records of ``view``'s table as known on ``as_of`` for the entities of a key table.

    Same rule as the store: among rows recorded on or before D, the latest recorded version of
    each record (``version_key``), kept only if its event is on or before D. Versions are ranked
    over the whole table, not only the child's rows, exactly as the store does: when a key
    does not contain the child (``visit_id``), a later row under the same key recorded for
    another child replaces this one.
    """
    key = view.entity.key
    select = ", ".join(f"r.{c}" for c in columns)
    day = literal(as_of)
    mine = f"r.{key} IN (SELECT {key} FROM {keys_table})"
    if not view.version_key:
        body = (
            f"  SELECT {select}, r._seq, r._file_id, r._row\n"
            f"  FROM {raw_table(view.source)} AS r\n"
            f"  WHERE {mine} AND r.{view.available_time} <= {day}\n"
        )
        keep = ""
    else:
        version = ", ".join(view.version_key)
        partition = ", ".join(f"r.{k}" for k in view.version_key)
        body = (
            f"  SELECT {select}, r._seq, r._file_id, r._row, ROW_NUMBER() OVER (\n"
            f"    PARTITION BY {partition} ORDER BY r.{view.available_time} DESC, r._seq DESC\n"
            f"  ) AS _version\n"
            f"  FROM {raw_table(view.source)} AS r\n"
            f"  WHERE r.{view.available_time} <= {day} AND ({version}) IN (\n"
            f"    SELECT ({version}) FROM {raw_table(view.source)} AS r\n"
            f"    WHERE {mine} AND r.{view.available_time} <= {day})\n"
        )
        keep = "_version = 1 AND "
    return (
        f"WITH known AS (\n{body})\n"
        f"SELECT known.*{' EXCLUDE (_version)' if view.version_key else ''}, f.file_name\n"
        f"FROM known LEFT JOIN ingested_files AS f ON f.file_id = known._file_id\n"
        f"WHERE {keep}known.{view.event_time} <= {day}\n"
        f"  AND known.{key} IN (SELECT {key} FROM {keys_table})"
    )


def _known_rows(
    con: duckdb.DuckDBPyConnection,
    view: FeatureView,
    fields: Iterable[Field],
    keys: Sequence[str],
    as_of: date,
) -> pd.DataFrame:
    table_name = _CHILDREN_TABLE if view.entity == CHILD else _SCHOOLS_TABLE
    con.register(table_name, pa.table({view.entity.key: pa.array(list(keys), type=pa.string())}))
    try:
        query = _known_sql(view, _columns(view, fields), table_name, as_of)
        return arrow_to_pandas(con.sql(query).to_arrow_table())
    finally:
        con.unregister(table_name)


def _window_mask(rows: pd.DataFrame, fld: Field, event_time: str, calendar: pd.Series) -> Any:
    if fld.window is None:
        return np.ones(len(rows), dtype=bool)
    start_col, end_col = window_bounds(fld.window)
    start = calendar[start_col]
    if pd.isna(start):  # no such term on the calendar: nothing falls in the window
        return np.zeros(len(rows), dtype=bool)
    inside = rows[event_time] >= start
    if end_col is not None:
        inside &= rows[event_time] <= calendar[end_col]
    return inside.fillna(False).to_numpy(dtype=bool)


def _newest_first(rows: pd.DataFrame, view: FeatureView, first: str | None = None) -> pd.DataFrame:
    by = [view.event_time, view.available_time, "_seq"]
    if first is not None:
        by = [first, *by]
    return rows.sort_values(by, ascending=False, kind="stable", na_position="last")


def _cited(
    rows: pd.DataFrame, source: FieldSource, as_of: date, calendar: pd.Series
) -> pd.DataFrame:
    """The rows one field's value was computed from (see the module docstring)."""
    view, fld = source.view, source.field
    keep = _window_mask(rows, fld, view.event_time, calendar)
    for flt in fld.where:
        keep = keep & filter_mask(rows, flt)
    matched = rows[keep]
    key = view.entity.key
    column = fld.column or view.event_time
    if fld.agg in ("count", "empty_periods"):
        return pd.DataFrame(matched)
    if fld.agg == "sum":
        values = matched[column]
        return pd.DataFrame(matched[(values.notna() & values.ne(0)).to_numpy(dtype=bool)])
    if fld.agg == "max":
        present = matched[matched[column].notna().to_numpy(dtype=bool)]
        return pd.DataFrame(_newest_first(present, view, column).groupby(key, sort=False).head(1))
    if fld.agg == "days_since":
        dated = matched[(matched[column] <= pd.Timestamp(as_of)).fillna(False).to_numpy(bool)]
        return pd.DataFrame(_newest_first(dated, view, column).groupby(key, sort=False).head(1))
    if fld.agg in ("latest", "previous"):
        ordered = _newest_first(matched, view).groupby(key, sort=False)
        return pd.DataFrame(ordered.nth(0 if fld.agg == "latest" else 1))
    raise ValueError(f"{fld.name}: unknown aggregation {fld.agg!r}")


def _plain(value: Any) -> Any:
    """A JSON-ready Python value (dates as ISO text, numpy scalars unwrapped, NA as None)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _records(
    rows: pd.DataFrame, source: FieldSource, feature: str, owner: pd.Series | None = None
) -> pd.DataFrame:
    """Cited rows as evidence columns (``child_id``, ``feature`` then ``EVIDENCE_KEYS``)."""
    view, fld = source.view, source.field
    key_cols = _record_key(view)
    keys = [
        {c: _plain(v) for c, v in zip(key_cols, values, strict=True)}
        for values in rows[list(key_cols)].itertuples(index=False, name=None)
    ]
    # A count reads no column: its records are cited for matching, not for a value.
    value = rows[fld.column].map(_plain).to_numpy() if fld.column else [None] * len(rows)
    return pd.DataFrame(
        {
            "child_id": (owner if owner is not None else rows[CHILD.key]).to_numpy(),
            "feature": feature,
            "table": view.source,
            "record_id": ["/".join(str(v) for v in k.values()) for k in keys],
            "key": keys,
            "event_date": rows[view.event_time].map(_plain).to_numpy(),
            "recorded_at": rows[view.available_time].map(_plain).to_numpy(),
            "file": rows["file_name"].map(_plain).to_numpy(),
            "row": rows["_row"].map(_plain).to_numpy(),
            "field": fld.column,
            "value": value,
            "scope": "child" if view.entity == CHILD else view.entity.name,
            "_seq": rows["_seq"].to_numpy(),
        }
    )


def _school_codes(
    con: duckdb.DuckDBPyConnection, children: Sequence[str], as_of: date, calendar: pd.Series
) -> pd.Series:
    """Each child's school on D as the store assigns it: enrolment first, else the registry."""
    codes = pd.Series(pd.NA, index=pd.Index(children, name=CHILD.key), dtype="string")
    for view, name in ((REGISTRY, "registry_school_code"), (ENROLMENT, "enrolled_school_code")):
        source = _fields_by_name()[name]
        rows = _known_rows(con, view, [source.field], children, as_of)
        latest = _cited(rows, source, as_of, calendar)
        values = latest.set_index(CHILD.key)[source.field.column or ""].astype("string")
        present = values[values.notna()]
        codes.loc[present.index] = present  # enrolment (second) overrides the registry
    return codes


def evidence_frame(
    con: duckdb.DuckDBPyConnection,
    child_ids: Sequence[str],
    features: Sequence[str],
    as_of: date,
) -> pd.DataFrame:
    """The records behind each feature value of many children as of one date.

    One query per source table, whatever the number of children and features.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The raw store.
    child_ids : sequence of str
        Pseudonymous child ids.
    features : sequence of str
        Feature names (derived features cite their inputs' records).
    as_of : date
        The as-of date D.

    Returns
    -------
    pandas.DataFrame
        Columns ``child_id``, ``feature`` then :data:`EVIDENCE_KEYS`; newest event first within
        each (child, feature). A feature with no records has no rows.

    Raises
    ------
    KeyError
        If a feature name is unknown.
    """
    children = list(dict.fromkeys(str(c) for c in child_ids))
    calendar = as_of_calendar([as_of]).iloc[0]
    wanted: dict[str, list[tuple[str, FieldSource]]] = {}
    for feature in dict.fromkeys(features):
        for source in feature_sources(feature):
            wanted.setdefault(source.view.name, []).append((feature, source))
    parts: list[pd.DataFrame] = []
    schools: pd.Series | None = None
    for view in VIEWS:
        pairs = wanted.get(view.name)
        if not pairs or not children:
            continue
        fields = [source.field for _, source in pairs]
        if view.entity == CHILD:
            rows = _known_rows(con, view, fields, children, as_of)
            for feature, source in pairs:
                cited = _cited(rows, source, as_of, calendar)
                parts.append(_records(cited, source, feature))
            continue
        # A school-level view: the child's school on D, then that school's records.
        if schools is None:
            schools = _school_codes(con, children, as_of, calendar).dropna()
        rows = _known_rows(con, view, fields, sorted(set(schools)), as_of)
        for feature, source in pairs:
            cited = _cited(rows, source, as_of, calendar)
            by_school = schools.rename("school").reset_index()
            joined = by_school.merge(cited, left_on="school", right_on=view.entity.key)
            parts.append(_records(joined, source, feature, owner=joined[CHILD.key]))
    columns = ["child_id", "feature", *EVIDENCE_KEYS]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    frame = pd.concat([p for p in parts if len(p)] or parts[:1], ignore_index=True)
    # A derived feature can cite one record through two of its inputs: cite it once.
    frame = frame.drop_duplicates(["child_id", "feature", "table", "_seq"])
    frame = frame.sort_values(
        ["child_id", "feature", "event_date", "recorded_at", "_seq"],
        ascending=[True, True, False, False, False],
        kind="stable",
        na_position="last",
    )
    return frame[columns].reset_index(drop=True)


def evidence_for(
    con: duckdb.DuckDBPyConnection, child_id: str, feature_name: str, as_of: date
) -> list[dict[str, Any]]:
    """The raw records behind one child's feature value as of D.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The raw store.
    child_id : str
        The child's pseudonymous id.
    feature_name : str
        A feature of the registry (derived features cite their inputs' records).
    as_of : date
        The as-of date D: only records recorded on or before D, with events on or before D,
        each in its version known on D, are cited.

    Returns
    -------
    list of dict
        One dict per record with the keys :data:`EVIDENCE_KEYS`, newest event first; empty
        when the feature saw no record (a zero count, a missing value).

    Raises
    ------
    KeyError
        If the feature name is unknown.
    """
    frame = evidence_frame(con, [child_id], [feature_name], as_of)
    return [{k: row[k] for k in EVIDENCE_KEYS} for row in frame.to_dict(orient="records")]


def known_child(con: duckdb.DuckDBPyConnection, child_id: str, as_of: date) -> bool:
    """Whether the registry held a file for the child on ``as_of`` (any version recorded by D).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The raw store.
    child_id : str
        The child's pseudonymous id.
    as_of : date
        The date.

    Returns
    -------
    bool
        ``False`` for an unknown id, or a child whose first file was entered after D.
    """
    # fetchall, not fetchone: DuckDB 2 refuses further work on a connection with a result
    # left unfinished.
    rows = con.execute(
        f"SELECT COUNT(*) FROM {raw_table('children')} WHERE child_id = ? AND recorded_at <= ?",
        [child_id, as_of],
    ).fetchall()
    return bool(rows[0][0])


__all__ = [
    "EVIDENCE_KEYS",
    "FieldSource",
    "evidence_for",
    "evidence_frame",
    "feature_sources",
    "known_child",
]
