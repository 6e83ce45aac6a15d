"""The DuckDB file that holds the raw ledger rows: table layout and connections.

Raw rows are immutable: loads append, a correction is a new row with a later ``recorded_at``,
and nothing is updated in place. Each raw table ``raw_<table>`` has the canonical columns of
its ``TableSpec`` with identity fields replaced by pseudonyms (``id_number`` → ``child_id``,
``household_no`` → ``household_pid``; names are dropped) and four bookkeeping columns:

``_seq``       global load order, the last tie-breaker of point-in-time retrieval
``_file_id``   the ``ingested_files`` row the record came from
``_row``       its row number in that file as a spreadsheet shows it (header = row 1)
``_row_hash``  hash of the canonical values: a row delivered twice is stored once
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from features.schema import TABLES, Column, TableSpec
from shouhu.errors import StoreError

SCHEMA_VERSION = 1

_SQL_TYPES = {
    "str": "VARCHAR",
    "text": "VARCHAR",
    "category": "VARCHAR",
    "int": "INTEGER",
    "float": "DOUBLE",
    "date": "DATE",
    "bool": "BOOLEAN",
}
_PII_RENAME = {"id_number": "child_id", "household": "household_pid"}


def stored_name(column: Column) -> str | None:
    """The store's name for a ledger column: a pseudonym column, itself, or None if dropped."""
    if column.pii is None:
        return column.name
    return _PII_RENAME.get(column.pii)


def stored_columns(spec: TableSpec) -> list[tuple[str, str]]:
    """``(name, SQL type)`` of the canonical columns a raw table stores, in ledger order."""
    out: list[tuple[str, str]] = []
    for col in spec.columns:
        name = stored_name(col)
        if name is not None:
            out.append((name, "VARCHAR" if col.pii else _SQL_TYPES[col.dtype]))
    return out


def raw_table(spec: TableSpec | str) -> str:
    """Name of the raw table for a ledger table."""
    return f"raw_{spec if isinstance(spec, str) else spec.name}"


def _ddl() -> list[str]:
    statements = [
        "CREATE SEQUENCE IF NOT EXISTS raw_seq START 1",
        """CREATE TABLE IF NOT EXISTS store_meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
        """CREATE TABLE IF NOT EXISTS ingested_files (
            file_id INTEGER PRIMARY KEY,
            file_name VARCHAR NOT NULL,
            path VARCHAR NOT NULL,
            sha256 VARCHAR NOT NULL UNIQUE,
            table_name VARCHAR NOT NULL,
            encoding VARCHAR,
            loaded_at TIMESTAMP NOT NULL,
            rows_read INTEGER NOT NULL,
            rows_accepted INTEGER NOT NULL,
            rows_rejected INTEGER NOT NULL,
            duplicates_skipped INTEGER NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS rejected_rows (
            file_id INTEGER NOT NULL,
            file_name VARCHAR NOT NULL,
            table_name VARCHAR NOT NULL,
            "row" INTEGER NOT NULL,
            field VARCHAR NOT NULL,
            reason_code VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            raw_values VARCHAR
        )""",
    ]
    for spec in TABLES:
        cols = ",\n            ".join(f'"{n}" {t}' for n, t in stored_columns(spec))
        statements.append(
            f"""CREATE TABLE IF NOT EXISTS {raw_table(spec)} (
            {cols},
            _seq BIGINT NOT NULL,
            _file_id INTEGER NOT NULL,
            _row INTEGER NOT NULL,
            _row_hash VARCHAR NOT NULL
        )"""
        )
    return statements


def connect(
    path: Path, *, read_only: bool = False, threads: int = 0, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """Open the store file (creating its tables unless ``read_only``).

    Raises
    ------
    StoreError
        If a read-only store does not exist, or the file is locked by another writer.
    """
    if read_only and not path.exists():
        raise StoreError(f"no feature store at {path}: run `shouhu features ingest` first")
    path.parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | bool | int | float | list[str]] = {}
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    try:
        con = duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        raise StoreError(f"cannot open the feature store {path}: {exc}") from exc
    if not read_only:
        ensure_schema(con)
    return con


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw tables and bookkeeping tables if they are missing (idempotent)."""
    for statement in _ddl():
        con.execute(statement)
    con.execute(
        "INSERT OR IGNORE INTO store_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
    )


__all__ = [
    "SCHEMA_VERSION",
    "connect",
    "ensure_schema",
    "raw_table",
    "stored_columns",
    "stored_name",
]
