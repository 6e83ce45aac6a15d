"""The engine-independent half of point-in-time retrieval, shared by every engine.

An engine (the DuckDB store, or the pandas reference) only knows how to aggregate one
``FeatureView`` for a spine of ``(key, as_of)`` rows, how to read the area hierarchy as of a
date and which children have a registry row. Everything else happens here, once: calendar
windows, the child's school and area codes, fills for "no rows", dtypes, derived features
and column order. The two engines therefore differ only in the part the oracle test compares.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Literal, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.calendar import school_days_frame, terms
from features.definitions import (
    CHILD,
    DERIVED,
    ENROLMENT,
    IDENTIFYING_COLUMNS,
    REGISTRY,
    VIEWS,
    FeatureView,
    Field,
    Window,
    calendar_windows,
    feature_names,
)
from features.schema import TABLES_BY_NAME
from features.transforms import age_years, is_registered

logger = logging.getLogger(__name__)

#: Dtype of every date column that crosses the engine boundary.
DATE_DTYPE: Literal["datetime64[us]"] = "datetime64[us]"
#: Position of a spine row; engines return view frames in this order.
ROW = "_spine_row"


class Engine(Protocol):
    """What an engine must provide; ``compute_frame`` does the rest."""

    def view(self, view: FeatureView, spine: pd.DataFrame) -> pd.DataFrame:
        """Aggregate ``view`` for each spine row; return its fields, one row per spine row,
        in spine order (the spine holds ``ROW``, the entity key, ``as_of`` and the calendar
        columns of ``as_of_calendar``)."""
        ...

    def areas(self, as_of: Sequence[date]) -> pd.DataFrame:
        """``as_of, area_code, parent_code``: each area's version known on each date."""
        ...

    def registry_children(self, as_of: date) -> pd.Series:
        """Pseudonymous ids of children with a registry row recorded on or before ``as_of``."""
        ...


_NULLABLE = {
    pa.bool_(): pd.BooleanDtype(),
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
}


def arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    """Convert an Arrow result to pandas the same way for every engine.

    Nullable dtypes keep a missing bool or int missing (not object, not float); dates become
    ``datetime64`` rather than Python objects; no block consolidation (several times faster
    than DuckDB's own ``.df()`` on wide results).
    """
    frame: pd.DataFrame = table.to_pandas(
        types_mapper=_NULLABLE.get, date_as_object=False, split_blocks=True, self_destruct=True
    )
    for col in frame.columns:
        if frame[col].dtype.kind == "M" and frame[col].dtype != DATE_DTYPE:
            frame[col] = frame[col].astype(DATE_DTYPE)
    return frame


def window_bounds(window: Window) -> tuple[str, str | None]:
    """Calendar columns bounding a window: (first day, last day or None for D itself)."""
    if window.days is not None:
        return f"from_{window.label}", None
    return f"from_{window.label}", f"to_{window.label}"


def as_of_calendar(as_of: Iterable[date | pd.Timestamp]) -> pd.DataFrame:
    """Window bounds and school days for each as-of date (one row per distinct date).

    Columns: ``as_of``, then per window ``from_<w>`` (first day included), ``to_<w>`` for
    term windows (last day included; day windows end on ``as_of``) and ``school_days_<w>``
    (school days in the window, from the calendar: absence reports only list absences, so
    the denominator can never come from the reports).
    """
    days = school_days_frame()
    first_day = pd.Timestamp(days["day"].iloc[0])
    cum = np.concatenate([[0], np.cumsum(days["is_school_day"].to_numpy(dtype=np.int64))])
    term_starts = [pd.Timestamp(t.start) for t in terms()]

    def school_days(lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> int:
        if lo is None or hi is None or hi < lo:
            return 0
        a = max((lo - first_day).days, 0)
        b = min((hi - first_day).days + 1, len(cum) - 1)
        return int(cum[b] - cum[a]) if b > a else 0

    dates = sorted({pd.Timestamp(d).normalize() for d in as_of})
    rows: list[dict[str, object]] = []
    for day in dates:
        row: dict[str, object] = {"as_of": day}
        started = [i for i, s in enumerate(term_starts) if s <= day]
        current = terms()[started[-1]] if started else None
        previous = terms()[started[-1] - 1] if started and started[-1] > 0 else None
        for window in calendar_windows():
            lo: pd.Timestamp | None
            hi: pd.Timestamp | None
            if window.days is not None:
                lo, hi = day - timedelta(days=window.days - 1), day
            else:
                term = current if window.term == "current_term" else previous
                lo = pd.Timestamp(term.start) if term else None
                hi = min(pd.Timestamp(term.end), day) if term else None
            start_col, end_col = window_bounds(window)
            row[start_col] = lo
            if end_col is not None:
                row[end_col] = hi
            row[f"school_days_{window.label}"] = school_days(lo, hi)
        rows.append(row)
    columns = ["as_of"]
    for window in calendar_windows():
        start_col, end_col = window_bounds(window)
        columns += [start_col] if end_col is None else [start_col, end_col]
        columns.append(f"school_days_{window.label}")
    frame = pd.DataFrame(rows, columns=columns)
    for col in frame.columns:
        if col == "as_of" or col.startswith(("from_", "to_")):
            frame[col] = pd.to_datetime(frame[col]).astype(DATE_DTYPE)
        else:
            frame[col] = frame[col].astype("int32")
    return frame


def normalise_spine(spine: pd.DataFrame) -> pd.DataFrame:
    """``child_id`` (str) and ``as_of`` (midnight timestamps), checked and in order.

    Raises
    ------
    ValueError
        If a column is missing, a value is missing, or a ``(child_id, as_of)`` pair repeats.
    """
    missing = {"child_id", "as_of"} - set(spine.columns)
    if missing:
        raise ValueError(f"the spine needs columns child_id and as_of; missing {sorted(missing)}")
    out = pd.DataFrame(
        {
            "child_id": spine["child_id"].astype("str"),
            "as_of": pd.to_datetime(spine["as_of"]).dt.normalize().astype(DATE_DTYPE),
        }
    ).reset_index(drop=True)
    if out.isna().any().any():
        raise ValueError("the spine has missing child_id or as_of values")
    one_date = out["as_of"].nunique() <= 1
    if _repeats(out["child_id"]) if one_date else out.duplicated().any():
        raise ValueError("the spine repeats a (child_id, as_of) pair")
    return out


def _repeats(ids: pd.Series) -> bool:
    """Whether an id occurs twice: with one date, a repeated pair is a repeated child.

    A weekly build's spine is a million ids in sorted order, which a single comparison of
    neighbours proves unique (pandas' own hash check takes half a second); other spines
    are counted by Arrow's hash kernel.
    """
    values = pa.array(ids.array)
    if len(values) < 2:
        return False
    if pc.all(pc.less(values.slice(0, len(values) - 1), values.slice(1))).as_py():
        return False
    return bool(pc.count_distinct(values, mode="all").as_py() != len(values))


def _with_calendar(keys: pd.DataFrame) -> pd.DataFrame:
    """``ROW``, the keys and the calendar columns of each row's as-of date."""
    calendar = as_of_calendar(keys["as_of"].unique())
    # A positional lookup of each row's date in the (small) calendar: a merge would hash
    # every row of a million-row spine.
    at = pd.Index(calendar["as_of"]).get_indexer(keys["as_of"])
    columns: dict[str, object] = {ROW: np.arange(len(keys), dtype=np.int64)}
    columns.update({name: keys[name] for name in keys.columns})
    columns.update(
        {name: calendar[name].to_numpy()[at] for name in calendar.columns if name != "as_of"}
    )
    return pd.DataFrame(columns, copy=False)


def _aligned(frame: pd.DataFrame, n: int, view: FeatureView) -> pd.DataFrame:
    if len(frame) != n:
        raise RuntimeError(f"engine returned {len(frame)} rows for view {view.name}, expected {n}")
    return frame.reset_index(drop=True)


def _area_codes(frame: pd.DataFrame, areas: pd.DataFrame) -> pd.DataFrame:
    parents = areas[["as_of", "area_code", "parent_code"]]
    township = frame[["as_of", "village_code"]].merge(
        parents.rename(columns={"area_code": "village_code", "parent_code": "township_code"}),
        on=["as_of", "village_code"],
        how="left",
    )
    county = township.merge(
        parents.rename(columns={"area_code": "township_code", "parent_code": "county_code"}),
        on=["as_of", "township_code"],
        how="left",
    )
    return county[["township_code", "county_code"]]


def _fill_and_type(frame: pd.DataFrame, fld: Field, view: FeatureView) -> pd.Series:
    col = frame[fld.name]
    fill: int | None = None
    if fld.agg in ("count", "sum"):
        fill = 0
    elif fld.agg == "empty_periods":
        assert fld.window is not None and fld.window.days is not None and fld.bucket_days
        fill = -(-fld.window.days // fld.bucket_days)
    if fill is not None and fld.dtype in ("int32", "float64"):
        # Fill and convert in one pass (a hundred such columns of a million rows).
        values = col.to_numpy(dtype=fld.dtype, na_value=fill)
        return pd.Series(values, index=col.index, name=col.name)
    if fill is not None:
        col = col.fillna(fill)
    return coerce(col, fld.dtype, _codes(view, fld))


def _codes(view: FeatureView, fld: Field) -> tuple[str, ...]:
    if fld.dtype != "category" or fld.column is None:
        return ()
    return tuple(c.code for c in TABLES_BY_NAME[view.source].column(fld.column).codes)


def coerce(col: pd.Series, dtype: str, codes: tuple[str, ...] = ()) -> pd.Series:
    """Give a column its declared dtype, whatever the engine produced.

    Category columns get the schema's codes as categories, so every frame (any engine, any
    date, any subset of children) has identical categories.
    """
    if dtype == "int32":
        if col.dtype == "int32":
            return col
        # Callers fill missing counts first; straight to numpy avoids masked-array copies.
        return pd.Series(col.to_numpy(dtype="int32", na_value=0), index=col.index, name=col.name)
    if dtype == "float64":
        if col.dtype == "float64":
            return col
        floats = col.to_numpy(dtype="float64", na_value=np.nan)
        return pd.Series(floats, index=col.index, name=col.name)
    if dtype == "boolean":
        return col.astype("boolean")
    if dtype == "category":
        text = col if col.dtype == "str" else col.astype("str")
        # Position of each value among the codes, by Arrow's hash lookup; pandas' own
        # ``Categorical(values, categories)`` goes through Python objects (ten times slower).
        values = pa.array(text.array)
        found = pc.index_in(values, value_set=pa.array(list(codes), type=values.type))
        positions = pc.fill_null(found, -1).to_numpy(zero_copy_only=False)
        out = pd.Series(
            pd.Categorical.from_codes(positions, categories=pd.Index(list(codes))),
            index=col.index,
        )
        unknown = (len(values) - values.null_count) - (len(found) - found.null_count)
        if unknown:
            # Ingestion validates codes, so this means a schema/store mismatch worth a look.
            logger.warning("%d values outside the schema codes of %s", unknown, col.name)
        return out
    if dtype == "string":
        return col if col.dtype == "str" else col.astype("str")
    if dtype == "date":
        return col if col.dtype == DATE_DTYPE else pd.to_datetime(col).astype(DATE_DTYPE)
    raise ValueError(f"unknown feature dtype {dtype!r}")


def compute_frame(
    engine: Engine,
    spine: pd.DataFrame,
    views: tuple[FeatureView, ...] = VIEWS,
    *,
    keep_internal: bool = False,
    computed: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Point-in-time features for each ``(child_id, as_of)`` of ``spine``.

    Parameters
    ----------
    engine
        Aggregates each view (DuckDB store or pandas reference).
    spine
        ``child_id`` and ``as_of`` columns; pairs must be unique.
    views
        Views to compute; the registry and enrolment views are always included because the
        identifying columns come from them.
    keep_internal
        Keep the internal (undocumented) fields too, e.g. ``birth_date``.
    computed
        Fields of child views already computed for this very spine (same rows, same order),
        by view name; those views are not computed again.

    Returns
    -------
    pandas.DataFrame
        ``IDENTIFYING_COLUMNS`` then the features, one row per spine row, in spine order.
        Features whose inputs were not computed are left out.
    """
    keys = normalise_spine(spine)
    child_spine = _with_calendar(keys)
    wanted = {v.name for v in views} | {REGISTRY.name, ENROLMENT.name}
    selected = [v for v in VIEWS if v.name in wanted]

    cols: dict[str, pd.Series] = {"child_id": keys["child_id"], "as_of": keys["as_of"]}
    for view in (v for v in selected if v.entity == CHILD):
        done = (computed or {}).get(view.name)
        part = done if done is not None else engine.view(view, child_spine)
        part = _aligned(part, len(keys), view)
        for fld in view.fields:
            cols[fld.name] = _fill_and_type(part, fld, view)

    enrolled = cols["enrolled_school_code"]
    cols["school_code"] = enrolled.where(enrolled.notna(), cols["registry_school_code"])
    school_views = [v for v in selected if v.entity != CHILD]
    if school_views:
        pairs = (
            pd.DataFrame({"school_code": cols["school_code"], "as_of": keys["as_of"]})
            .dropna()
            .drop_duplicates()
            .reset_index(drop=True)
        )
        school_spine = _with_calendar(pairs)
        lookup = pd.DataFrame({"school_code": cols["school_code"], "as_of": keys["as_of"]})
        for view in school_views:
            part = _aligned(engine.view(view, school_spine), len(pairs), view)
            values = pairs.assign(**{f.name: part[f.name] for f in view.fields})
            joined = lookup.merge(values, on=["school_code", "as_of"], how="left")
            for fld in view.fields:
                cols[fld.name] = _fill_and_type(joined, fld, view)

    cols["village_code"] = coerce(cols["village_code"], "string")
    areas = engine.areas(sorted(pd.Timestamp(d).date() for d in keys["as_of"].unique()))
    codes = _area_codes(
        pd.DataFrame({"as_of": keys["as_of"], "village_code": cols["village_code"]}), areas
    )
    cols["township_code"], cols["county_code"] = codes["township_code"], codes["county_code"]

    for der in DERIVED:
        sources = [cols.get(name, child_spine.get(name)) for name in der.inputs]
        if all(s is not None for s in sources):
            value = der.function(*sources)
            cols[der.name] = coerce(value, der.dtype).set_axis(keys.index)

    for name in ("household_pid", "school_code", "township_code", "county_code"):
        cols[name] = coerce(cols[name], "string")
    features = [name for name in feature_names() if name in cols]
    internal = (
        [f.name for v in selected for f in v.fields if f.doc is None] if keep_internal else []
    )
    ordered = [*IDENTIFYING_COLUMNS, *features, *internal]
    # copy=False keeps one block per column: consolidating a million rows × a hundred
    # columns into 2-D blocks would copy every value once more, for nothing.
    return pd.DataFrame({name: cols[name].set_axis(keys.index) for name in ordered}, copy=False)


def _registered(engine: Engine, as_of: date) -> pd.DataFrame:
    ids = engine.registry_children(as_of)
    spine = pd.DataFrame({"child_id": ids.astype("str"), "as_of": pd.Timestamp(as_of)})
    frame = compute_frame(engine, spine, (REGISTRY, ENROLMENT), keep_internal=True)
    keep = is_registered(frame["registry_status"], age_years(frame["as_of"], frame["birth_date"]))
    out = frame.loc[keep.to_numpy()]
    return out.sort_values("child_id", kind="stable").reset_index(drop=True)


def registered_children(engine: Engine, as_of: date) -> pd.DataFrame:
    """Children whose latest registry version known on ``as_of`` is open and who are under 16.

    Returns
    -------
    pandas.DataFrame
        ``IDENTIFYING_COLUMNS``, one row per child, sorted by ``child_id``.
    """
    return _registered(engine, as_of)[list(IDENTIFYING_COLUMNS)]


def build(engine: Engine, as_of: date) -> pd.DataFrame:
    """Every feature for every child registered on ``as_of`` (see ``registered_children``)."""
    registered = _registered(engine, as_of)
    # The registry and enrolment views were just computed for these children on this date.
    computed = {
        view.name: registered[[f.name for f in view.fields]] for view in (REGISTRY, ENROLMENT)
    }
    return compute_frame(engine, registered[["child_id", "as_of"]], computed=computed)


__all__ = [
    "DATE_DTYPE",
    "ROW",
    "Engine",
    "arrow_to_pandas",
    "as_of_calendar",
    "build",
    "coerce",
    "compute_frame",
    "normalise_spine",
    "registered_children",
    "window_bounds",
]
