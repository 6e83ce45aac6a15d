"""A plain pandas reading of the feature declarations: the oracle and the benchmark baseline.

``ReferenceEngine`` interprets the same ``features.definitions`` as the DuckDB store, with
ordinary pandas filters, sorts and group-bys and no SQL, one as-of date at a time:

1. keep the rows recorded on or before D;
2. keep each record's version known on D (sort by ``recorded_at``, ``_seq``; last per key);
3. keep the versions whose event happened on or before D;
4. match them to the spine rows of that date and aggregate field by field.

It shares with the store only what must not differ (``features.assembly``: calendar, fills,
dtypes, derived features), so the property test that compares the two engines tests the
point-in-time logic itself. It is written to be obviously right, not fast; it is not slow on
purpose either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from features import assembly
from features.assembly import ROW, arrow_to_pandas, window_bounds
from features.definitions import VIEWS, FeatureView, Field, Filter, Window
from features.rawstore import raw_table
from features.schema import TABLES
from features.sql import calendar_columns, needed_columns


def load_raw_frames(
    con: duckdb.DuckDBPyConnection, *, only_used: bool = False
) -> dict[str, pd.DataFrame]:
    """Read the raw tables of a store into pandas, keyed by ledger table name.

    With ``only_used``, only the columns some view (or the area lookup) reads are loaded,
    which is what the benchmark does with twenty million visits.
    """
    used: dict[str, set[str]] = {
        "areas": {"area_code", "parent_code", "effective_date", "recorded_at", "_seq"}
    }
    for view in VIEWS:
        used.setdefault(view.source, {"_seq"}).update(
            [view.entity.key, *needed_columns(view), *view.version_key]
        )
    frames: dict[str, pd.DataFrame] = {}
    for spec in TABLES:
        columns = ", ".join(sorted(used.get(spec.name, {"_seq"}))) if only_used else "*"
        table = con.sql(f"SELECT {columns} FROM {raw_table(spec)}").to_arrow_table()
        frames[spec.name] = arrow_to_pandas(table)
    return frames


def _mask(values: pd.Series) -> np.ndarray:
    return values.fillna(False).to_numpy(dtype=bool)


def filter_mask(frame: pd.DataFrame, flt: Filter) -> np.ndarray:
    """Rows matching one declarative filter; a missing value never matches."""
    col = frame[flt.column]
    if flt.op == "eq":
        return _mask(col.eq(flt.values[0]))
    if flt.op == "in":
        return _mask(col.isin(list(flt.values)))
    if flt.op == "is_true":
        return _mask(col.eq(True))
    if flt.op == "is_false":
        return _mask(col.eq(False))
    if flt.op == "gt":
        return _mask(col.gt(flt.values[0]))
    if flt.op == "contains_any":
        text = ";" + col.astype("object").where(col.notna(), None).astype("str") + ";"
        hits = np.zeros(len(frame), dtype=bool)
        for value in flt.values:
            hits |= _mask(text.str.contains(f";{value};", regex=False)) & col.notna().to_numpy()
        return hits
    raise ValueError(f"unknown filter op {flt.op!r}")


def window_mask(frame: pd.DataFrame, window: Window | None, event_time: str) -> np.ndarray:
    """Rows whose event date falls inside the window (the as-of bound is already applied)."""
    if window is None:
        return np.ones(len(frame), dtype=bool)
    start, end = window_bounds(window)
    inside = frame[event_time] >= frame[start]
    if end is not None:
        inside &= frame[event_time] <= frame[end]
    return _mask(inside)


class ReferenceEngine:
    """The pandas engine over raw tables already in memory.

    Parameters
    ----------
    raw
        Raw tables by ledger table name (``children``, ``visits``…), with the stored columns
        and ``_seq``, as ``load_raw_frames`` returns them.
    """

    def __init__(self, raw: Mapping[str, pd.DataFrame]) -> None:
        self.raw = raw

    @classmethod
    def from_connection(cls, con: duckdb.DuckDBPyConnection) -> ReferenceEngine:
        """Load the raw tables of a store (DuckDB only reads them; pandas computes)."""
        return cls(load_raw_frames(con))

    def build(self, as_of: date) -> pd.DataFrame:
        """Same contract as ``FeatureStore.build``."""
        return assembly.build(self, as_of)

    def as_of_frame(self, spine: pd.DataFrame) -> pd.DataFrame:
        """Same contract as ``FeatureStore.as_of_frame``."""
        return assembly.compute_frame(self, spine)

    def registered_children(self, as_of: date) -> pd.DataFrame:
        """Same contract as ``FeatureStore.registered_children``."""
        return assembly.registered_children(self, as_of)

    # -- engine protocol -------------------------------------------------------------------
    def known_versions(self, view: FeatureView, as_of: pd.Timestamp) -> pd.DataFrame:
        """The records of ``view``'s table as known on ``as_of`` whose event is on or before it."""
        columns = [view.entity.key, *needed_columns(view), *view.version_key, "_seq"]
        rows = self.raw[view.source][list(dict.fromkeys(columns))]
        rows = rows[rows[view.available_time] <= as_of]
        if view.version_key:
            rows = rows.sort_values([view.available_time, "_seq"], kind="stable")
            rows = rows.drop_duplicates(list(view.version_key), keep="last")
        return rows[rows[view.event_time] <= as_of]

    def view(self, view: FeatureView, spine: pd.DataFrame) -> pd.DataFrame:
        """Aggregate one view for each spine row, date by date."""
        key = view.entity.key
        out = pd.DataFrame(index=pd.Index(spine[ROW].to_numpy(), name=ROW))
        parts: list[pd.DataFrame] = []
        wanted = [ROW, key, "as_of", *calendar_columns(view)]
        for as_of, rows_of_date in spine[wanted].groupby("as_of", sort=True):
            known = self.known_versions(view, pd.Timestamp(str(as_of)))
            matched = rows_of_date.merge(known, on=key, how="inner")
            if len(matched):
                parts.append(self._aggregate(view, matched))
        result = pd.concat(parts) if parts else pd.DataFrame()
        for fld in view.fields:
            column = result[fld.name] if fld.name in result.columns else pd.Series(dtype=object)
            out[fld.name] = column.reindex(out.index)
        return out.reset_index(drop=True)

    def _aggregate(self, view: FeatureView, rows: pd.DataFrame) -> pd.DataFrame:
        values: dict[str, pd.Series] = {}
        for fld in view.fields:
            keep = window_mask(rows, fld.window, view.event_time)
            for flt in fld.where:
                keep = keep & filter_mask(rows, flt)
            # Copy only the columns this field reads: copying every column of millions of
            # matched rows once per field multiplies the memory this engine needs.
            used = [ROW, "as_of", view.event_time, view.available_time, "_seq"]
            used += [fld.column] if fld.column and fld.column not in used else []
            values[fld.name] = self._field(fld, view, rows.loc[keep, used])
        index = pd.Index(rows[ROW].unique(), name=ROW)
        return pd.DataFrame({name: s.reindex(index) for name, s in values.items()}, index=index)

    @staticmethod
    def _field(fld: Field, view: FeatureView, rows: pd.DataFrame) -> pd.Series:
        column = fld.column or view.event_time
        by_row = rows.groupby(ROW)
        if fld.agg == "count":
            return by_row.size()
        if fld.agg == "sum":
            return by_row[column].sum()
        if fld.agg == "max":
            return by_row[column].max()
        if fld.agg == "days_since":
            dated = rows[_mask(rows[column] <= rows["as_of"])]
            days = (dated["as_of"] - dated[column]).dt.days
            return days.groupby(dated[ROW]).min()
        if fld.agg == "empty_periods":
            assert fld.window is not None and fld.window.days is not None and fld.bucket_days
            periods = (rows["as_of"] - rows[view.event_time]).dt.days // fld.bucket_days
            used = periods.groupby(rows[ROW]).nunique()
            return -(-fld.window.days // fld.bucket_days) - used
        if fld.agg in ("latest", "previous"):
            ordered = rows.sort_values(
                [ROW, view.event_time, view.available_time, "_seq"],
                ascending=[True, False, False, False],
                kind="stable",
            )
            nth = ordered.groupby(ROW).nth(0 if fld.agg == "latest" else 1)
            return nth.set_index(ROW)[column]
        raise ValueError(f"{fld.name}: unknown aggregation {fld.agg!r}")

    def areas(self, as_of: Sequence[date]) -> pd.DataFrame:
        """Each area's parent code as known on each date."""
        areas = self.raw["areas"].sort_values(["recorded_at", "_seq"], kind="stable")
        parts = []
        for day in as_of:
            stamp = pd.Timestamp(day)
            known = areas[areas["recorded_at"] <= stamp].drop_duplicates("area_code", keep="last")
            known = known[known["effective_date"] <= stamp]
            parts.append(known[["area_code", "parent_code"]].assign(as_of=stamp))
        frame = (
            pd.concat(parts, ignore_index=True)
            if parts
            else pd.DataFrame(columns=["area_code", "parent_code", "as_of"])
        )
        frame["as_of"] = frame["as_of"].astype(assembly.DATE_DTYPE)
        return frame[["as_of", "area_code", "parent_code"]]

    def registry_children(self, as_of: date) -> pd.Series:
        """Children with a registry row recorded on or before ``as_of``."""
        children = self.raw["children"]
        ids = children.loc[children["recorded_at"] <= pd.Timestamp(as_of), "child_id"]
        return pd.Series(sorted(ids.unique()), name="child_id", dtype="str")


__all__ = ["ReferenceEngine", "filter_mask", "load_raw_frames", "window_mask"]
