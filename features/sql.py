"""Compile feature declarations to SQL: one query per view, plain enough for SQLGlot.

The queries are written in DuckDB's dialect but use only constructs SQLGlot transpiles to
Spark and Trino (conditional aggregation with ``FILTER (WHERE …)``, ``ROW_NUMBER`` with ``QUALIFY``,
``DATE_DIFF``, ``||``, ``LIKE``); a test transpiles every one of them. Nothing here touches a
connection: ``features.store`` runs the text.

Every view query reads a *spine* table (``_spine_row``, the entity key, ``as_of`` and the calendar
columns of ``features.assembly.as_of_calendar``) and, for views with a version key, a
*superseded* table (``_seq``, ``superseded_at``: when a later version of the same record was
recorded). A view compiles to one of two plans with the same result:

* **join first** (any spine): every raw row is joined to the spine rows of its entity, then
  aggregated per spine row. One spine row is one ``(key, as_of)`` pair, so ``_spine_row``
  stands for that pair in ``GROUP BY`` and ``PARTITION BY``. A training spine of thousands of
  children times dozens of dates reads only those children's rows.
* **aggregate first** (a spine of one as-of date, given as ``at``): the as-of date and window
  bounds are literals, the raw rows are filtered and aggregated per entity key straight away,
  and only the aggregates (one row per key) meet the spine. With a million children this
  skips a join of every raw row against the spine, and lets DuckDB prune row groups by date.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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

#: The calendar of one as-of date, by spine column name: ``as_of`` and the window bounds
#: (``from_90d``, ``to_current_term``…; ``None`` where a window has no bound, e.g. no term yet).
Calendar = Mapping[str, date | None]


def literal(value: str | int | bool | date | None) -> str:
    """A SQL literal for a filter value or a date (``None``: a missing date)."""
    if value is None:
        return "CAST(NULL AS DATE)"
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


def calendar_ref(name: str, at: Calendar | None = None) -> str:
    """A calendar column (``as_of``, ``from_90d``…): the spine's column, or its value in ``at``."""
    return name if at is None else literal(at[name])


def window_sql(window: Window | None, event_time: str, at: Calendar | None = None) -> list[str]:
    """Conditions that put a row's event date inside a window (event <= as_of is implied)."""
    if window is None:
        return []
    start, end = window_bounds(window)
    conds = [f"{event_time} >= {calendar_ref(start, at)}"]
    if end is not None:
        conds.append(f"{event_time} <= {calendar_ref(end, at)}")
    return conds


def _condition(
    fld: Field, view: FeatureView, extra: tuple[str, ...] = (), at: Calendar | None = None
) -> str:
    conds = [
        *window_sql(fld.window, view.event_time, at),
        *(filter_sql(f) for f in fld.where),
        *extra,
    ]
    return " AND ".join(conds) if conds else "TRUE"


def aggregate_sql(fld: Field, view: FeatureView, at: Calendar | None = None) -> str:
    """The conditional aggregate of one non-'latest' field.

    ``FILTER (WHERE …)`` rather than ``CASE WHEN`` inside the aggregate: the same meaning,
    and DuckDB evaluates it markedly faster over tens of millions of rows. With ``at`` the
    as-of date and window bounds are literals (the aggregate-first plan).
    """
    column = fld.column or view.event_time
    as_of = calendar_ref("as_of", at)
    if fld.agg == "count":
        return f"COUNT(*) FILTER (WHERE {_condition(fld, view, at=at)})"
    if fld.agg == "sum":
        return f"SUM({column}) FILTER (WHERE {_condition(fld, view, at=at)})"
    largest = _largest(fld, view, at)
    if largest is not None:
        return largest[1](largest[0])
    if fld.agg == "empty_periods":
        if fld.window is None or fld.window.days is None or not fld.bucket_days:
            raise ValueError(f"{fld.name}: empty_periods needs a day window and bucket_days")
        periods = -(-fld.window.days // fld.bucket_days)
        period = (
            f"CAST(FLOOR(DATE_DIFF('day', {view.event_time}, {as_of}) / {fld.bucket_days}) "
            "AS INTEGER)"
        )
        # Periods with a record, as bits of one integer: a single cheap aggregate, where
        # COUNT(DISTINCT period) would make DuckDB split the grouping into separate passes.
        cond = _condition(fld, view, at=at)
        used = f"BIT_OR(CAST(1 AS BIGINT) << {period}) FILTER (WHERE {cond})"
        return f"{periods} - BIT_COUNT({used})"
    raise ValueError(f"{fld.name}: {fld.agg!r} is not a conditional aggregate")


def _largest(
    fld: Field, view: FeatureView, at: Calendar | None = None
) -> tuple[str, Callable[[str], str]] | None:
    """A field that is a function of the largest value over its rows (``max``,
    ``days_since``): that ``MAX`` aggregate and the function; None for other fields.

    The largest value over all rows is the larger of the largest over any two parts of
    them, which lets the aggregate-first plan split rows by date (see ``view_sql``).
    """
    column = fld.column or view.event_time
    if fld.agg == "max":
        return f"MAX({column}) FILTER (WHERE {_condition(fld, view, at=at)})", lambda m: m
    if fld.agg == "days_since":
        as_of = calendar_ref("as_of", at)
        cond = _condition(fld, view, (f"{column} <= {as_of}",), at)
        return (
            f"MAX({column}) FILTER (WHERE {cond})",
            lambda m: f"DATE_DIFF('day', {m}, {as_of})",
        )
    return None


def _later(a: str, b: str) -> str:
    """The larger of two values, either of which may be missing (portable: no GREATEST,
    whose handling of NULL differs between engines)."""
    return f"CASE WHEN {b} IS NULL OR {a} >= {b} THEN {a} ELSE {b} END"


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


def view_sql(view: FeatureView, superseded: str | None = None, at: Calendar | None = None) -> str:
    """The query computing every field of ``view`` for each row of its entity's spine.

    Parameters
    ----------
    view
        The declaration to compile.
    superseded
        Table of superseded versions of the view's source (default: the temporary one,
        ``_pit_superseded_<source>``).
    at
        The calendar of the spine's one as-of date: compile the aggregate-first plan, valid
        only when every spine row has this date (see the module notes). Default: the
        join-first plan, valid for any spine.

    Returns
    -------
    str
        One row per spine row, in no particular order, with ``_spine_row`` and one column
        per field (``NULL`` where the entity has no qualifying record; the caller fills
        counts).

    Notes
    -----
    In the aggregate-first plan, a view whose fields are mostly windowed aggregates the
    rows older than its widest window apart, for the few fields over all history only
    (see ``_split_date``); windowed fields are then missing, not 0, for an entity with
    old rows only, which the caller's fill makes 0 as for any entity without rows.

    A 'latest' value is the first row of its group by event date, recorded date and
    ``_seq``, all descending. Ranking every row with all its values costs a sort of the
    whole table; instead the group's newest event date is one more aggregate of the same
    ``GROUP BY``, only rows on that date (nearly always one per group) are ranked, by their
    keys alone, and the winner's values are read from the raw table by its ``_seq``.
    """
    spine = SPINE_TABLE.format(entity=view.entity.name)
    key = view.entity.key
    as_of = "s.as_of" if at is None else calendar_ref("as_of", at)
    raw_cols = ", ".join(f"r.{c}" for c in needed_columns(view))
    where = [f"r.{view.available_time} <= {as_of}", f"r.{view.event_time} <= {as_of}"]
    join_superseded = ""
    if view.version_key:
        superseded = superseded or SUPERSEDED_TABLE.format(source=view.source)
        join_superseded = f"\n  LEFT JOIN {superseded} AS x ON x._seq = r._seq"
        # The version known on D: recorded by D, and no later version recorded by D.
        where.append(f"(x.superseded_at IS NULL OR x.superseded_at > {as_of})")
    if at is None:
        # Join first: a group is a spine row; as_of and the window bounds are its columns.
        group, group_by = ROW, f"{ROW}, as_of"
        cal_cols = "".join(f", s.{c}" for c in calendar_columns(view))
        source = (
            f"  SELECT s.{ROW}, s.as_of{cal_cols}, {raw_cols}, r._seq\n"
            f"  FROM {spine} AS s\n  JOIN {raw_table(view.source)} AS r ON r.{key} = s.{key}"
        )
    else:
        # Aggregate first: a group is an entity key; the spine is joined to the aggregates.
        group, group_by = key, key
        source = f"  SELECT r.{key}, {raw_cols}, r._seq\n  FROM {raw_table(view.source)} AS r"
    ctes = [f"cur AS (\n{source}{join_superseded}\n  WHERE " + "\n    AND ".join(where) + "\n)"]
    selects: list[str] = []
    joins: list[str] = []
    plain = [f for f in view.fields if f.agg not in ("latest", "previous")]
    selects.extend(f"agg.{f.name}" for f in plain)
    groups = _latest_groups(view)
    # The newest event date of each 'latest' group, as a field of its own (see Notes).
    newest = [
        (f"_newest_{i}", grp[0])
        for i, grp in enumerate(groups)
        if all(f.agg == "latest" for f in grp)
    ]
    split = _split_date(view, at, [*plain, *(fld for _, fld in newest)])
    if split is not None:
        ctes.extend(_split_aggregates(view, at, group, plain, newest, split))
    elif plain or newest:
        aggs = [f"{aggregate_sql(f, view, at)} AS {f.name}" for f in plain]
        for name, fld in newest:
            largest = _history_largest(fld, view, at)
            assert largest is not None  # a 'latest' group always has one
            aggs.append(f"{largest[0]} AS {name}")
        ctes.append(
            f"agg AS (\n  SELECT {group},\n    "
            + ",\n    ".join(aggs)
            + f"\n  FROM cur\n  GROUP BY {group_by}\n)"
        )
    if plain or newest:
        joins.append(f"LEFT JOIN agg ON agg.{group} = s.{group}")
    order = f"{view.event_time} DESC, {view.available_time} DESC, _seq DESC"
    for i, grp in enumerate(groups):
        name = f"latest_{i}"
        cond = _condition(grp[0], view, at=at)
        cols = list(dict.fromkeys(f.column for f in grp if f.column))
        rank = f"ROW_NUMBER() OVER (PARTITION BY c.{group} ORDER BY {order})"
        if all(f.agg == "latest" for f in grp):
            # Rank only the rows on the newest date, and only their keys; the winner's
            # values are then read by its _seq (unique per raw row).
            dated = f"(SELECT {group} AS _g, _newest_{i} AS _newest FROM agg)"
            on = f"n._g = c.{group} AND c.{view.event_time} = n._newest"
            ctes.append(
                f"won_{i} AS (\n  SELECT c.{group}, c._seq\n  FROM cur AS c\n"
                f"  JOIN {dated} AS n\n    ON {on}\n"
                f"  WHERE {cond}\n  QUALIFY {rank} = 1\n)"
            )
            picked = ", ".join(f"r.{f.column} AS {f.name}" for f in grp)
            ctes.append(
                f"{name} AS (\n  SELECT w.{group}, {picked}\n  FROM won_{i} AS w\n"
                f"  JOIN {raw_table(view.source)} AS r ON r._seq = w._seq\n)"
            )
        else:
            picked = ", ".join(f"c.{c}" for c in cols)
            ctes.append(
                f"ranked_{i} AS (\n  SELECT c.{group}, {picked}, {rank} AS _rn\n"
                f"  FROM cur AS c\n  WHERE {cond}\n  QUALIFY {rank} <= 2\n)"
            )
            pivots = ",\n    ".join(
                f"MAX(CASE WHEN _rn = {1 if f.agg == 'latest' else 2} THEN {f.column} END)"
                f" AS {f.name}"
                for f in grp
            )
            ctes.append(
                f"{name} AS (\n  SELECT {group},\n    {pivots}\n  FROM ranked_{i}\n"
                f"  GROUP BY {group}\n)"
            )
        joins.append(f"LEFT JOIN {name} ON {name}.{group} = s.{group}")
        selects.extend(f"{name}.{f.name}" for f in grp)
    return (
        "WITH "
        + ",\n".join(ctes)
        + f"\nSELECT s.{ROW}, "
        + ", ".join(selects)
        + f"\nFROM {spine} AS s\n"
        + "\n".join(joins)
    )


def _split_date(view: FeatureView, at: Calendar | None, fields: list[Field]) -> date | None:
    """The first day of the widest window, if the aggregate-first plan is to split rows there.

    Rows older than every window feed only the fields over all history. When those are
    few and all of them largest values (``max``, ``days_since``, newest dates), the plan
    aggregates the recent rows for every field and the older rows for those few only, and
    takes the larger of the two; most of the conditional aggregates then skip the older
    rows (half of them for two years of visits as of the last day).
    """
    if at is None:
        return None
    windowed = [f for f in fields if f.window is not None]
    history = [f for f in fields if f.window is None]
    if len(windowed) <= len(history) or any(_history_largest(f, view) is None for f in history):
        return None
    starts = [at[window_bounds(f.window)[0]] for f in windowed if f.window is not None]
    known = [d for d in starts if d is not None]
    return min(known) if known else None


def _history_largest(
    fld: Field, view: FeatureView, at: Calendar | None = None
) -> tuple[str, Callable[[str], str]] | None:
    """``_largest`` for a field or a 'latest' group's newest event date (agg 'latest')."""
    if fld.agg == "latest":
        cond = _condition(fld, view, at=at)
        largest = f"MAX({view.event_time})"
        return (largest if cond == "TRUE" else f"{largest} FILTER (WHERE {cond})"), lambda m: m
    return _largest(fld, view, at)


def _split_aggregates(
    view: FeatureView,
    at: Calendar | None,
    group: str,
    plain: list[Field],
    newest: list[tuple[str, Field]],
    split: date,
) -> list[str]:
    """CTEs ``recent``, ``older`` and ``agg`` of the split aggregate-first plan."""
    event, since = view.event_time, literal(split)
    recent: list[str] = []
    older: list[str] = []
    combined: list[str] = []
    for name, fld in [*((f.name, f) for f in plain), *newest]:
        largest = _history_largest(fld, view, at)
        if fld.window is not None:
            windowed = (
                largest[0] if fld.agg == "latest" and largest else aggregate_sql(fld, view, at)
            )
            recent.append(f"{windowed} AS {name}")
            combined.append(f"r.{name}")
            continue
        assert largest is not None  # _split_date checked it
        recent.append(f"{largest[0]} AS {name}")
        older.append(f"{largest[0]} AS {name}")
        combined.append(f"{largest[1](_later(f'r.{name}', f'o.{name}'))} AS {name}")
    sep = ",\n    "
    return [
        f"recent AS (\n  SELECT {group},\n    {sep.join(recent)}\n  FROM cur\n"
        f"  WHERE {event} >= {since}\n  GROUP BY {group}\n)",
        f"older AS (\n  SELECT {group},\n    {sep.join(older)}\n  FROM cur\n"
        f"  WHERE {event} < {since}\n  GROUP BY {group}\n)",
        f"agg AS (\n  SELECT COALESCE(r.{group}, o.{group}) AS {group},\n    "
        f"{sep.join(combined)}\n  FROM recent AS r\n"
        f"  FULL JOIN older AS o ON o.{group} = r.{group}\n)",
    ]


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
    "Calendar",
    "aggregate_sql",
    "areas_sql",
    "calendar_columns",
    "calendar_ref",
    "filter_sql",
    "literal",
    "needed_columns",
    "registry_children_sql",
    "superseded_sql",
    "view_sql",
]
