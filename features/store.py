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

import duckdb
import pandas as pd
import pyarrow as pa

from features import assembly
from features.assembly import ROW, arrow_to_pandas
from features.definitions import VIEWS, FeatureView
from features.rawstore import raw_table
from features.sql import (
    DATES_TABLE,
    SPINE_TABLE,
    SUPERSEDED_TABLE,
    areas_sql,
    registry_children_sql,
    superseded_sql,
    view_sql,
)

logger = logging.getLogger(__name__)

#: Superseded versions kept in the store file, per raw table, and their freshness stamps.
PERSISTED_SUPERSEDED = "pit_superseded_{source}"
_STAMPS = "pit_superseded_stamps"


class FeatureStore:
    """Point-in-time features from the raw tables of one DuckDB connection.

    Parameters
    ----------
    con
        A connection to the store (read-only is fine: helper tables are then temporary).

    Notes
    -----
    The store keeps, per raw table, a small table of superseded versions (rows replaced by a
    later-recorded correction, and from when); see ``ensure_superseded`` and ``refresh``. It
    is rebuilt whenever the raw table's row count or highest ``_seq`` changes.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._superseded: dict[str, tuple[tuple[int, int], str]] = {}
        self._spines: dict[str, tuple[pd.DataFrame, int]] = {}

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
        """Every query the store generates, by name (for portability checks and review)."""
        out = {f"view:{v.name}": view_sql(v) for v in VIEWS}
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
        frame = arrow_to_pandas(self.con.sql(view_sql(view, superseded)).to_arrow_table())
        return frame.drop(columns=[ROW])

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


__all__ = ["FeatureStore"]
