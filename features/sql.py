"""Compile feature declarations to SQL: one query per view, plain enough for SQLGlot.

The queries are written in DuckDB's dialect but use only constructs SQLGlot transpiles to
Spark and Trino (conditional aggregation with ``FILTER (WHERE …)``, ``ROW_NUMBER`` with ``QUALIFY``,
``DATE_DIFF``, ``||``, ``LIKE``); a test transpiles every one of them. Nothing here touches a
connection: ``features.store`` runs the text.

Every view query reads a *spine* table (``_spine_row``, the entity key, ``as_of`` and the calendar
columns of ``features.assembly.as_of_calendar``) and, for views with a version key, a
*superseded* table (``_seq``, ``superseded_at``: when a later version of the same record was
recorded). One spine row is one ``(key, as_of)`` pair, so ``_spine_row`` stands for that pair in
``GROUP BY`` and ``PARTITION BY``.
"""

from __future__ import annotations

from datetime import date

from features.assembly import ROW, window_bounds
from features.definitions import FeatureView, Field, Filter, Window
from features.rawstore import raw_table

#: Name of the spine table of an entity (``_pit_spine_child``, ``_pit_spine_school``).
SPINE_TABLE = "_pit_spine_{entity}"
#: Name of the table of superseded versions of a raw table.
SUPERSEDED_TABLE = "_pit_superseded_{source}"
#: Name of the table of distinct as-of dates (area lookup).
DATES_TABLE = "_pit_dates"


def literal(value: str | int | bool | date) -> str:
    """A SQL literal for a filter value or a date."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def filter_sql(flt: Filter) -> str:
    """One declarative filter as a SQL condition (a missing value never matches)."""
    col = flt.column
    if flt.op == "eq":
        return f"{col} = {literal(flt.values[0])}"
    if flt.op == "in":
        return f"{col} IN ({', '.join(literal(v) for v in flt.values)})"
    if flt.op == "is_true":
        return f"{col} = TRUE"
    if flt.op == "is_false":
        return f"{col} = FALSE"
    if flt.op == "gt":
        return f"{col} > {literal(flt.values[0])}"
    if flt.op == "contains_any":
        # Multi-code cells are ';'-joined codes; wrapping in ';' makes each code a whole token.
        tests = [f"(';' || {col} || ';') LIKE {literal(f'%;{v};%')}" for v in flt.values]
        return "(" + " OR ".join(tests) + ")"
    raise ValueError(f"unknown filter op {flt.op!r}")


def window_sql(window: Window | None, event_time: str) -> list[str]:
    """Conditions that put a row's event date inside a window (event <= as_of is implied)."""
    if window is None:
        return []
    start, end = window_bounds(window)
    conds = [f"{event_time} >= {start}"]
    if end is not None:
        conds.append(f"{event_time} <= {end}")
    return conds


def _condition(fld: Field, view: FeatureView, extra: tuple[str, ...] = ()) -> str:
    conds = [*window_sql(fld.window, view.event_time), *(filter_sql(f) for f in fld.where), *extra]
    return " AND ".join(conds) if conds else "TRUE"


def aggregate_sql(fld: Field, view: FeatureView) -> str:
    """The conditional aggregate of one non-'latest' field.

    ``FILTER (WHERE …)`` rather than ``CASE WHEN`` inside the aggregate: the same meaning,
    and DuckDB evaluates it markedly faster over tens of millions of rows.
    """
    column = fld.column or view.event_time
    if fld.agg == "count":
        return f"COUNT(*) FILTER (WHERE {_condition(fld, view)})"
    if fld.agg == "sum":
        return f"SUM({column}) FILTER (WHERE {_condition(fld, view)})"
    if fld.agg == "max":
        return f"MAX({column}) FILTER (WHERE {_condition(fld, view)})"
    if fld.agg == "days_since":
        cond = _condition(fld, view, (f"{column} <= as_of",))
        return f"DATE_DIFF('day', MAX({column}) FILTER (WHERE {cond}), as_of)"
    if fld.agg == "empty_periods":
        if fld.window is None or fld.window.days is None or not fld.bucket_days:
            raise ValueError(f"{fld.name}: empty_periods needs a day window and bucket_days")
        periods = -(-fld.window.days // fld.bucket_days)
        period = (
            f"CAST(FLOOR(DATE_DIFF('day', {view.event_time}, as_of) / {fld.bucket_days}) "
            "AS INTEGER)"
        )
        # Periods with a record, as bits of one integer: a single cheap aggregate, where
        # COUNT(DISTINCT period) would make DuckDB split the grouping into separate passes.
        used = f"BIT_OR(CAST(1 AS BIGINT) << {period}) FILTER (WHERE {_condition(fld, view)})"
        return f"{periods} - BIT_COUNT({used})"
    raise ValueError(f"{fld.name}: {fld.agg!r} is not a conditional aggregate")


def needed_columns(view: FeatureView) -> list[str]:
    """Raw columns a view reads: event and recorded dates, aggregated and filtered columns."""
    cols: list[str] = [view.event_time, view.available_time]
    for fld in view.fields:
        if fld.column:
            cols.append(fld.column)
        cols.extend(f.column for f in fld.where)
    return list(dict.fromkeys(cols))


def calendar_columns(view: FeatureView) -> list[str]:
    """Calendar columns of the spine a view's windows read."""
    cols: list[str] = []
    for fld in view.fields:
        if fld.window is not None:
            start, end = window_bounds(fld.window)
            cols.extend([start] if end is None else [start, end])
    return list(dict.fromkeys(cols))


def _latest_groups(view: FeatureView) -> list[tuple[Field, ...]]:
    groups: dict[tuple[Window | None, tuple[Filter, ...]], list[Field]] = {}
    for fld in view.fields:
        if fld.agg in ("latest", "previous"):
            groups.setdefault((fld.window, fld.where), []).append(fld)
    return [tuple(g) for g in groups.values()]


def view_sql(view: FeatureView, superseded: str | None = None) -> str:
    """The query computing every field of ``view`` for each row of its entity's spine.

    Parameters
    ----------
    view
        The declaration to compile.
    superseded
        Table of superseded versions of the view's source (default: the temporary one,
        ``_pit_superseded_<source>``).

    Returns
    -------
    str
        One row per spine row, ordered by ``_spine_row``, with it and one column per field
        (``NULL`` where the entity has no qualifying record; the caller fills counts).
    """
    spine = SPINE_TABLE.format(entity=view.entity.name)
    key = view.entity.key
    raw_cols = ", ".join(f"r.{c}" for c in needed_columns(view))
    cal_cols = "".join(f", s.{c}" for c in calendar_columns(view))
    where = [f"r.{view.available_time} <= s.as_of", f"r.{view.event_time} <= s.as_of"]
    join_superseded = ""
    if view.version_key:
        superseded = superseded or SUPERSEDED_TABLE.format(source=view.source)
        join_superseded = f"\n  LEFT JOIN {superseded} AS x ON x._seq = r._seq"
        # The version known on D: recorded by D, and no later version recorded by D.
        where.append("(x.superseded_at IS NULL OR x.superseded_at > s.as_of)")
    source = (
        f"  SELECT s.{ROW}, s.as_of{cal_cols}, {raw_cols}, r._seq\n"
        f"  FROM {spine} AS s\n  JOIN {raw_table(view.source)} AS r ON r.{key} = s.{key}"
    )
    ctes = [f"cur AS (\n{source}{join_superseded}\n  WHERE " + "\n    AND ".join(where) + "\n)"]
    selects: list[str] = []
    joins: list[str] = []
    plain = [f for f in view.fields if f.agg not in ("latest", "previous")]
    if plain:
        aggs = ",\n    ".join(f"{aggregate_sql(f, view)} AS {f.name}" for f in plain)
        ctes.append(
            f"agg AS (\n  SELECT {ROW},\n    {aggs}\n  FROM cur\n  GROUP BY {ROW}, as_of\n)"
        )
        joins.append(f"LEFT JOIN agg ON agg.{ROW} = s.{ROW}")
        selects.extend(f"agg.{f.name}" for f in plain)
    order = f"{view.event_time} DESC, {view.available_time} DESC, _seq DESC"
    for i, group in enumerate(_latest_groups(view)):
        name = f"latest_{i}"
        cond = _condition(group[0], view)
        cols = list(dict.fromkeys(f.column for f in group if f.column))
        rank = f"ROW_NUMBER() OVER (PARTITION BY {ROW} ORDER BY {order})"
        if all(f.agg == "latest" for f in group):
            picked = ", ".join(f"{f.column} AS {f.name}" for f in group)
            ctes.append(
                f"{name} AS (\n  SELECT {ROW}, {picked}\n  FROM cur\n  WHERE {cond}\n"
                f"  QUALIFY {rank} = 1\n)"
            )
        else:
            ctes.append(
                f"ranked_{i} AS (\n  SELECT {ROW}, {', '.join(cols)}, {rank} AS _rn\n"
                f"  FROM cur\n  WHERE {cond}\n  QUALIFY {rank} <= 2\n)"
            )
            pivots = ",\n    ".join(
                f"MAX(CASE WHEN _rn = {1 if f.agg == 'latest' else 2} THEN {f.column} END)"
                f" AS {f.name}"
                for f in group
            )
            ctes.append(
                f"{name} AS (\n  SELECT {ROW},\n    {pivots}\n  FROM ranked_{i}\n"
                f"  GROUP BY {ROW}\n)"
            )
        joins.append(f"LEFT JOIN {name} ON {name}.{ROW} = s.{ROW}")
        selects.extend(f"{name}.{f.name}" for f in group)
    return (
        "WITH "
        + ",\n".join(ctes)
        + f"\nSELECT s.{ROW}, "
        + ", ".join(selects)
        + f"\nFROM {spine} AS s\n"
        + "\n".join(joins)
        + f"\nORDER BY s.{ROW}"
    )


def superseded_sql(source: str, version_key: tuple[str, ...]) -> str:
    """Rows of ``raw_<source>`` that a later version of the same record replaces, and when.

    A record's versions are ordered by ``recorded_at`` then ``_seq``; a version is superseded
    from the ``recorded_at`` of the next one. Only keys with several versions are ranked,
    because corrections are rare and ranking every row would cost a full sort.
    """
    raw = raw_table(source)
    keys = ", ".join(version_key)
    on = " AND ".join(f"r.{k} = m.{k}" for k in version_key)
    partition = ", ".join(f"r.{k}" for k in version_key)
    return (
        f"WITH multi AS (\n  SELECT {keys} FROM {raw} GROUP BY {keys} HAVING COUNT(*) > 1\n)\n"
        "SELECT _seq, superseded_at FROM (\n"
        f"  SELECT r._seq, LEAD(r.recorded_at) OVER (PARTITION BY {partition} "
        "ORDER BY r.recorded_at, r._seq) AS superseded_at\n"
        f"  FROM {raw} AS r JOIN multi AS m ON {on}\n"
        ") AS v\nWHERE superseded_at IS NOT NULL"
    )


def areas_sql() -> str:
    """Each area's version known on each date of ``_pit_dates``: code and parent code."""
    return (
        "SELECT as_of, area_code, parent_code FROM (\n"
        "  SELECT d.as_of, r.area_code, r.parent_code, r.effective_date\n"
        f"  FROM {DATES_TABLE} AS d JOIN {raw_table('areas')} AS r ON r.recorded_at <= d.as_of\n"
        "  QUALIFY ROW_NUMBER() OVER (PARTITION BY d.as_of, r.area_code "
        "ORDER BY r.recorded_at DESC, r._seq DESC) = 1\n"
        ") AS a\nWHERE effective_date <= as_of"
    )


def registry_children_sql(as_of: date) -> str:
    """Children with any registry row recorded on or before ``as_of``."""
    return (
        f"SELECT DISTINCT child_id FROM {raw_table('children')} "
        f"WHERE recorded_at <= {literal(as_of)} ORDER BY child_id"
    )


__all__ = [
    "DATES_TABLE",
    "SPINE_TABLE",
    "SUPERSEDED_TABLE",
    "aggregate_sql",
    "areas_sql",
    "calendar_columns",
    "filter_sql",
    "literal",
    "needed_columns",
    "registry_children_sql",
    "superseded_sql",
    "view_sql",
]
