"""The point-in-time feature store: one as-of retrieval for training, scoring and monitoring.

``FeatureStore(con)`` compiles the declarations of ``features.definitions`` to SQL
(``features.sql``) and runs them on the raw tables of the DuckDB store. The same call serves
a weekly scoring run (``build(as_of)``) and a training spine of thousands of children times
dozens of dates (``as_of_frame(spine)``): as of D, a feature sees only rows recorded on or
before D whose event happened on or before D, each record in the version known on D.

Output columns
--------------
Keys (``features.definitions.IDENTIFYING_COLUMNS``): ``child_id``, ``as_of``,
``household_pid``, ``village_code``, ``township_code``, ``county_code``, ``school_code``.
They identify and route a row (area access, siblings) and are never model inputs. Every other
column is a feature named in ``feature_names()``; a model uses ``model_feature_names()``,
which leaves out protected attributes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date
from typing import Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from features import assembly
from features.assembly import ROW, arrow_to_pandas, as_of_calendar
from features.definitions import VIEWS, FeatureView
from features.rawstore import raw_table
from features.sql import (
    DATES_TABLE,
    SPINE_TABLE,
    SUPERSEDED_TABLE,
    Calendar,
    areas_sql,
    calendar_columns,
    registry_children_sql,
    superseded_sql,
    view_sql,
)

logger = logging.getLogger(__name__)

#: Superseded versions kept in the store file, per raw table, and their freshness stamps.
PERSISTED_SUPERSEDED = "pit_superseded_{source}"
_STAMPS = "pit_superseded_stamps"

#: Where an entity's keys are listed, to tell how much of it a spine covers: raw table, column.
_ENTITY_KEYS = {"child": ("children", "child_id"), "school": ("attendance", "school_code")}
#: A one-date spine covering at least this share of an entity's keys is aggregated first.
AGGREGATE_FIRST_SHARE = 0.5

Plan = Literal["auto", "join", "aggregate"]


class FeatureStore:
    """Point-in-time features from the raw tables of one DuckDB connection.

    Parameters
    ----------
    con
        A connection to the store (read-only is fine: helper tables are then temporary).
    plan
        How view queries meet the spine (``features.sql``): ``"join"`` joins raw rows to the
        spine first (any spine); ``"aggregate"`` aggregates per entity first whenever the
        spine has a single as-of date; ``"auto"`` (default) does the latter only when that
        one-date spine also covers at least ``AGGREGATE_FIRST_SHARE`` of the entity's keys
        (a whole county's weekly build), where it is cheaper. Every plan gives the same
        frame.

    Notes
    -----
    The store keeps, per raw table, a small table of superseded versions (rows replaced by a
    later-recorded correction, and from when); see ``ensure_superseded`` and ``refresh``. It
    is rebuilt whenever the raw table's row count or highest ``_seq`` changes.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, *, plan: Plan = "auto") -> None:
        if plan not in ("auto", "join", "aggregate"):
            raise ValueError(f"unknown plan {plan!r}")
        self.con = con
        self.plan = plan
        self._superseded: dict[str, tuple[tuple[int, int], str]] = {}
        self._spines: dict[str, tuple[pd.DataFrame, int]] = {}
        self._key_counts: dict[str, tuple[int, int]] = {}

    # -- public API ------------------------------------------------------------------------
    def registered_children(self, as_of: date) -> pd.DataFrame:
        """Children registered on ``as_of``: latest registry version known then is open, and
        the child is under 16.

        Returns
        -------
        pandas.DataFrame
            ``child_id``, ``as_of``, ``household_pid``, ``village_code``, ``township_code``,
            ``county_code``, ``school_code``; sorted by ``child_id``.
        """
        return assembly.registered_children(self, as_of)

    def build(self, as_of: date) -> pd.DataFrame:
        """Every feature for every child registered on ``as_of``.

        Returns
        -------
        pandas.DataFrame
            One row per registered child, sorted by ``child_id``: the identifying columns
            (``child_id`` first) then the features in registry order.
        """
        frame = assembly.build(self, as_of)
        logger.info("built features", extra={"as_of": str(as_of), "children": len(frame)})
        return frame

    def as_of_frame(self, spine: pd.DataFrame) -> pd.DataFrame:
        """Features for each ``(child_id, as_of)`` of a spine, for any number of dates.

        Parameters
        ----------
        spine
            Columns ``child_id`` and ``as_of`` (dates); pairs must be unique. Children need
            not be registered on the date: rows with no records get missing values and zero
            counts.

        Returns
        -------
        pandas.DataFrame
            Same columns as ``build``, one row per spine row, in spine order.
        """
        return assembly.compute_frame(self, spine)

    def queries(self) -> dict[str, str]:
        """Every query the store generates, by name (for portability checks and review).

        ``view:<name>`` is a view's join-first plan; ``view_one_date:<name>`` its
        aggregate-first plan, shown for an example date.
        """
        out = {f"view:{v.name}": view_sql(v) for v in VIEWS}
        example = _calendar_row(as_of_calendar([date(2025, 6, 30)]), 0)
        out.update({f"view_one_date:{v.name}": view_sql(v, at=example) for v in VIEWS})
        for view in VIEWS:
            if view.version_key:
                out[f"superseded:{view.source}"] = superseded_sql(view.source, view.version_key)
        out["areas"] = areas_sql()
        out["registry_children"] = registry_children_sql(date(2000, 1, 1))
        return out

    # -- engine protocol (features.assembly.Engine) ----------------------------------------
    def view(self, view: FeatureView, spine: pd.DataFrame) -> pd.DataFrame:
        """Run the compiled query of one view over ``spine`` (see ``features.assembly``)."""
        self._load_spine(view.entity.name, spine)
        superseded = None
        if view.version_key:
            superseded = self.ensure_superseded(view.source, view.version_key)
        at = self._one_date(view, spine)
        table = self.con.sql(view_sql(view, superseded, at)).to_arrow_table()
        table = _whole_numbers(_in_spine_order(table, len(spine)).drop_columns([ROW]))
        return arrow_to_pandas(table)

    def areas(self, as_of: Sequence[date]) -> pd.DataFrame:
        """Each area's parent code as known on each date."""
        dates = pa.table({"as_of": pa.array(list(as_of), type=pa.date32())})
        self.con.register(DATES_TABLE, dates)
        try:
            frame = arrow_to_pandas(self.con.sql(areas_sql()).to_arrow_table())
        finally:
            self.con.unregister(DATES_TABLE)
        frame["as_of"] = frame["as_of"].astype(assembly.DATE_DTYPE)
        return frame

    def registry_children(self, as_of: date) -> pd.Series:
        """Children with a registry row recorded on or before ``as_of``."""
        table = self.con.sql(registry_children_sql(as_of)).to_arrow_table()
        return arrow_to_pandas(table)["child_id"]

    # -- helpers ---------------------------------------------------------------------------
    def refresh(self) -> dict[str, int]:
        """Bring every superseded-versions table up to date and keep it in the store file.

        Call it after an ingest, on a writable connection: a later read-only ``build`` then
        reuses the tables instead of re-ranking every record of every raw table.

        Returns
        -------
        dict
            Superseded rows per raw table.
        """
        counts: dict[str, int] = {}
        for view in VIEWS:
            if view.version_key and view.source not in counts:
                name = self.ensure_superseded(view.source, view.version_key)
                rows = self.con.sql(f"SELECT COUNT(*) FROM {name}").fetchall()
                counts[view.source] = int(rows[0][0])
        return counts

    def ensure_superseded(self, source: str, version_key: tuple[str, ...]) -> str:
        """The table of superseded versions of ``raw_<source>``, built if stale.

        The table is kept in the store (``pit_superseded_<source>``, stamped in
        ``pit_superseded_stamps`` with the raw table's row count and highest ``_seq``) when
        the connection can write, else as a temporary table for this connection. Raw tables
        only ever grow, so an unchanged stamp means unchanged versions.

        Returns
        -------
        str
            The table's name, with columns ``_seq`` and ``superseded_at``.
        """
        rows = self.con.sql(
            f"SELECT COUNT(*), COALESCE(MAX(_seq), 0) FROM {raw_table(source)}"
        ).fetchall()
        stamp = (int(rows[0][0]), int(rows[0][1]))
        cached = self._superseded.get(source)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        kept = PERSISTED_SUPERSEDED.format(source=source)
        if self._persisted_stamp(source) == stamp:
            self._superseded[source] = (stamp, kept)
            return kept
        query = superseded_sql(source, version_key)
        try:
            self.con.execute(f"CREATE OR REPLACE TABLE {kept} AS {query}")
            self.con.execute(
                f"CREATE TABLE IF NOT EXISTS {_STAMPS} "
                "(source VARCHAR PRIMARY KEY, row_count BIGINT, max_seq BIGINT)"
            )
            self.con.execute(f"INSERT OR REPLACE INTO {_STAMPS} VALUES (?, ?, ?)", [source, *stamp])
            name = kept
        except duckdb.Error:
            # A read-only connection (``shouhu features build``): keep it for this session.
            name = SUPERSEDED_TABLE.format(source=source)
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {query}")
        self._superseded[source] = (stamp, name)
        return name

    def _persisted_stamp(self, source: str) -> tuple[int, int] | None:
        try:
            rows = self.con.execute(
                f"SELECT row_count, max_seq FROM {_STAMPS} WHERE source = ?", [source]
            ).fetchall()
        except duckdb.CatalogException:
            return None
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def plan_for(self, view: FeatureView, spine: pd.DataFrame) -> Literal["join", "aggregate"]:
        """The plan ``view`` runs with over ``spine`` (see ``plan`` and ``features.sql``).

        Parameters
        ----------
        view
            A feature view.
        spine
            Its entity's spine: the entity key and ``as_of`` (dates), one row per pair.

        Returns
        -------
        str
            ``"aggregate"`` (aggregate first; only for a spine of a single date) or
            ``"join"`` (join the spine first).
        """
        if self.plan == "join" or spine.empty or spine["as_of"].nunique() != 1:
            return "join"
        if self.plan == "auto" and len(spine) < AGGREGATE_FIRST_SHARE * self._key_count(view):
            return "join"
        return "aggregate"

    def _one_date(self, view: FeatureView, spine: pd.DataFrame) -> Calendar | None:
        """The spine's calendar if ``view`` is to be aggregated first, else None."""
        if self.plan_for(view, spine) == "join":
            return None
        wanted = ("as_of", *calendar_columns(view))
        return {k: v for k, v in _calendar_row(spine, 0).items() if k in wanted}

    def _key_count(self, view: FeatureView) -> int:
        """About how many keys the view's entity has (HyperLogLog; cached per table size)."""
        source, column = _ENTITY_KEYS.get(view.entity.name, (view.source, view.entity.key))
        rows = self.con.sql(f"SELECT COUNT(*) FROM {raw_table(source)}").fetchall()
        size = int(rows[0][0])
        cached = self._key_counts.get(source)
        if cached is None or cached[0] != size:
            distinct = self.con.sql(
                f"SELECT APPROX_COUNT_DISTINCT({column}) FROM {raw_table(source)}"
            ).fetchall()
            cached = (size, int(distinct[0][0] or 0))
            self._key_counts[source] = cached
        return cached[1]

    def _load_spine(self, entity: str, spine: pd.DataFrame) -> None:
        # Every view of one frame reads the same spine: copy it into DuckDB once, not per view.
        cached = self._spines.get(entity)
        if cached is not None and cached[0] is spine and cached[1] == len(spine):
            return
        name = SPINE_TABLE.format(entity=entity)
        table = pa.Table.from_pandas(spine, preserve_index=False)
        table = table.cast(
            pa.schema(
                [
                    pa.field(f.name, pa.date32()) if pa.types.is_timestamp(f.type) else f
                    for f in table.schema
                ]
            )
        )
        self.con.register("_pit_spine_arrow", table)
        try:
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _pit_spine_arrow"
            )
        finally:
            self.con.unregister("_pit_spine_arrow")
        self._spines[entity] = (spine, len(spine))


def _calendar_row(frame: pd.DataFrame, i: int) -> dict[str, date | None]:
    """``as_of`` and the window bounds of row ``i`` of a spine or calendar, as dates."""
    out: dict[str, date | None] = {}
    for name in frame.columns:
        if name == "as_of" or name.startswith(("from_", "to_")):
            value = frame[name].iloc[i]
            out[name] = None if pd.isna(value) else pd.Timestamp(value).date()
    return out


def _in_spine_order(table: pa.Table, rows: int) -> pa.Table:
    """Put a view's result in spine order: row ``i`` is spine row ``i``.

    The queries end without ``ORDER BY``: DuckDB would sort every column of a million-row
    result, where placing rows by their ``_spine_row`` (a permutation of ``0..rows-1``) is
    one scatter and one gather.

    Raises
    ------
    RuntimeError
        If the result is not exactly one row per spine row.
    """
    spine_row = table.column(ROW).to_numpy()
    if len(spine_row) == rows and np.array_equal(spine_row, np.arange(rows)):
        return table  # often so: the spine is the probe side of the last join
    position = np.full(rows, -1, dtype=np.int64)
    if len(spine_row) == rows:
        position[spine_row] = np.arange(rows, dtype=np.int64)
    if len(spine_row) != rows or (position < 0).any():
        raise RuntimeError(f"a view returned {len(spine_row)} rows, not one per spine row")
    return table.take(pa.array(position))


def _whole_numbers(table: pa.Table) -> pa.Table:
    """Integer sums as 64-bit integers rather than 128-bit decimals.

    DuckDB sums integers into ``HUGEINT``, which reaches pandas as Python ``Decimal``
    objects (slow to convert). The cast is checked: a sum beyond 64 bits raises.
    """
    for i, field in enumerate(table.schema):
        if pa.types.is_decimal(field.type) and field.type.scale == 0:
            column = table.column(i).cast(pa.int64(), safe=True)
            table = table.set_column(i, field.name, column)
    return table


__all__ = ["AGGREGATE_FIRST_SHARE", "FeatureStore", "Plan"]
