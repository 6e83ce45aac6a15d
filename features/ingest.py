"""Ledger ingestion: files → validated, pseudonymised, de-duplicated rows in the raw store.

``ingest_paths`` takes batch folders (``YYYY-MM``), single files, or a folder of batch folders
(loaded in date order); within a batch, tables load in ``features.schema.TABLES`` order, so
areas and the child registry come before the records that refer to them. Each file is one
DuckDB transaction: its ``ingested_files`` row, its accepted rows in ``raw_<table>`` and its
rejects in ``rejected_rows`` are committed together or not at all.

What happens to a row
---------------------
1. read as text (``sources.py``), parsed and validated against the data model
   (``validation.py``);
2. cross-checked against the store: a child's village must be a known village, a record's
   child must be in the registry and the record not dated before the child's birth;
3. identity numbers replaced by keyed pseudonyms, names dropped, before anything is written;
4. a row with any error goes to ``rejected_rows`` (one row per field error, its values as JSON
   with identity fields pseudonymised or ``***``); otherwise it is hashed over its canonical
   values and appended, unless a row with that hash is already stored (a duplicate, counted
   and skipped) or a stored row has the same record key and entry date but other values
   (``duplicate_key_conflict``).

A file whose bytes were loaded before (same SHA-256) is skipped. A file that cannot be read at
all (``SourceFileError``) stores nothing; the run goes on with the other files and the failure
is logged and kept in ``IngestSummary.file_errors``.

Speed (docs/feature-store.md, "Ingestion")
------------------------------------------
Reading and validating a file need no store, so a worker thread does them for the next file
while DuckDB loads this one (``prefetch``). Within a run, pseudonyms and the registry's birth
dates are remembered in memory between files (``_Run``), and DuckDB checkpoints once, at the
end, instead of every 16 MiB of log.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from features.mapping import Mapping
from features.pseudonym import pseudonymise_column
from features.rawstore import raw_table, stored_columns, stored_name
from features.schema import TABLES, Column, TableSpec
from features.sources import (
    LEDGER_SUFFIXES,
    UNSUPPORTED_SUFFIXES,
    SourceFile,
    file_sha256,
    read_source,
    sniff_table,
)
from features.validation import (
    ID_NUMBER_PATTERN,
    Validated,
    empty_errors,
    errors_frame,
    label,
    shown,
    validate_frame,
)
from shouhu.errors import SourceFileError

logger = logging.getLogger(__name__)

_BATCH_FOLDER = re.compile(r"^\d{4}-\d{2}$")
_TABLE_ORDER = {spec.name: i for i, spec in enumerate(TABLES)}
_PID_KIND = {"id_number": "child", "household": "household"}


@dataclass
class IngestSummary:
    """What one ingestion run did.

    Attributes
    ----------
    files : int
        Ledger files found in the given paths (loaded, skipped or failed).
    files_loaded, files_skipped : int
        Files loaded now, and files skipped because the same bytes were loaded before.
    file_errors : list of (str, str)
        ``(file name, reason)`` of files refused whole; nothing of them was stored.
    accepted, rejected : dict
        Rows appended, and rows rejected, per table.
    duplicates_skipped : int
        Rows identical to a row stored before or earlier in the same file.
    rejects_by_reason : dict
        Field errors recorded in ``rejected_rows``, per reason code.
    """

    files: int = 0
    files_loaded: int = 0
    files_skipped: int = 0
    file_errors: list[tuple[str, str]] = field(default_factory=list)
    accepted: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    duplicates_skipped: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, result: FileResult) -> None:
        """Count one file's result."""
        self.files += 1
        if result.status == "skipped":
            self.files_skipped += 1
            return
        if result.status == "failed":
            self.file_errors.append((result.file, result.error or ""))
            return
        self.files_loaded += 1
        self.accepted[result.table] = self.accepted.get(result.table, 0) + result.accepted
        self.rejected[result.table] = self.rejected.get(result.table, 0) + result.rejected
        self.duplicates_skipped += result.duplicates
        for reason, n in result.rejects_by_reason.items():
            self.rejects_by_reason[reason] = self.rejects_by_reason.get(reason, 0) + n

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` shape of ``shouhu features ingest`` (docs: shared/cli.md)."""

        def order(table: str) -> int:
            return _TABLE_ORDER.get(table, len(TABLES))

        return {
            "files": self.files,
            "accepted": {t: self.accepted[t] for t in sorted(self.accepted, key=order)},
            "rejected": {t: self.rejected[t] for t in sorted(self.rejected, key=order)},
            "duplicates_skipped": self.duplicates_skipped,
            "rejects_by_reason": dict(sorted(self.rejects_by_reason.items())),
            "files_loaded": self.files_loaded,
            "files_skipped": self.files_skipped,
            "file_errors": [{"file": f, "reason": r} for f, r in self.file_errors],
        }


@dataclass(frozen=True)
class FileResult:
    """What happened to one file: ``loaded``, ``skipped`` (loaded before) or ``failed``."""

    file: str
    status: str
    table: str = ""
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    error: str | None = None


# --------------------------------------------------------------------------- discovery


def _is_ledger(path: Path) -> bool:
    if path.name.startswith((".", "~$")):  # hidden files and Excel lock files
        return False
    suffix = path.suffix.lower()
    return suffix in LEDGER_SUFFIXES or (suffix in UNSUPPORTED_SUFFIXES and suffix != ".txt")


def _order_batch(files: list[Path], mapping: Mapping) -> list[Path]:
    def key(path: Path) -> tuple[int, str]:
        spec = sniff_table(path, mapping)
        return (_TABLE_ORDER[spec.name] if spec else len(TABLES), path.name)

    return sorted(files, key=key)


def _folder_batches(folder: Path) -> list[list[Path]]:
    entries = sorted(folder.iterdir())
    subfolders = [p for p in entries if p.is_dir() and _BATCH_FOLDER.match(p.name)]
    files = [p for p in entries if p.is_file() and _is_ledger(p)]
    if not subfolders and not files and (folder / "sources").is_dir():
        return _folder_batches(folder / "sources")  # the output folder of `features synth`
    batches = [files] if files else []
    for sub in subfolders:  # YYYY-MM names sort in date order
        batches.append([p for p in sorted(sub.iterdir()) if p.is_file() and _is_ledger(p)])
    return batches


def plan_batches(paths: list[Path], mapping: Mapping) -> list[list[Path]]:
    """Expand the given paths into batches of files, in load order.

    Parameters
    ----------
    paths : list of Path
        Files (consecutive ones form one batch), batch folders, or folders of ``YYYY-MM``
        batch folders (or a ``features synth`` output folder holding ``sources/``).
    mapping : Mapping
        Used to tell each file's table, so that a batch loads in ``TABLES`` order.

    Returns
    -------
    list of list of Path
        Batches in date order, each in table order.

    Raises
    ------
    SourceFileError
        If a path does not exist.
    """
    batches: list[list[Path]] = []
    loose: list[Path] = []
    for path in paths:
        if not path.exists():
            raise SourceFileError(str(path), "no such file or folder")
        if path.is_file():
            loose.append(path)
            continue
        if loose:
            batches.append(loose)
            loose = []
        batches.extend(_folder_batches(path))
    if loose:
        batches.append(loose)
    return [_order_batch(batch, mapping) for batch in batches if batch]


# --------------------------------------------------------------------------- one file


@dataclass(frozen=True)
class _Prepared:
    """One file hashed, read and validated: all the work that needs no store.

    ``source`` and ``checked`` are None when the file was refused (``refused`` says why) or
    when its bytes were known to be loaded already (the store decides: it is asked again).
    """

    path: Path
    sha256: str | None
    source: SourceFile | None = None
    checked: Validated | None = None
    refused: FileResult | None = None
    started: float = 0.0


def _prepare(
    path: Path,
    *,
    mapping: Mapping,
    load_date: date,
    max_future_days: int,
    loaded: Callable[[str], bool],
) -> _Prepared:
    """Hash, read and validate one file; ``loaded(sha256)`` spares the work for known bytes."""
    started = time.perf_counter()
    try:
        data = path.read_bytes()
    except OSError as exc:
        error = f"cannot read the file ({exc.strerror})"
        return _Prepared(path, None, refused=FileResult(path.name, "failed", error=error))
    sha = file_sha256(data)
    if loaded(sha):
        return _Prepared(path, sha, started=started)
    try:
        source = read_source(path, mapping, data=data)
    except SourceFileError as exc:
        logger.error("file refused: %s", exc.message, extra={"file": path.name})
        return _Prepared(
            path, sha, refused=FileResult(path.name, "failed", error=exc.reason), started=started
        )
    del data
    checked = validate_frame(
        source.frame, source.table, mapping, load_date=load_date, max_future_days=max_future_days
    )
    return _Prepared(path, sha, source, checked, started=started)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """The first value of a query's first row, or None (fetches the whole result: DuckDB 2
    refuses further work on a connection with an unfinished result)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def _already_loaded(con: duckdb.DuckDBPyConnection, sha256: str) -> bool:
    found = _scalar(con, "SELECT count(*) FROM ingested_files WHERE sha256 = ?", [sha256])
    return bool(found)


def _pii_columns(spec: TableSpec) -> list[Column]:
    return [c for c in spec.columns if c.pii is not None]


class _Pseudonyms:
    """The keyed pseudonyms of one run, remembered by the value they were computed from.

    A child's identity number comes back in every ledger every month, so for a large file a
    run looks up the numbers it has pseudonymised before and computes the HMAC
    (``pseudonymise_column``) only for the others, once each. A lookup builds a hash table of
    every number remembered, so a small file is hashed directly. The numbers are held in this
    process's memory only, as the files' own frames are, and dropped with the run.
    """

    #: Files with fewer rows, or fewer than a quarter as many rows as numbers remembered,
    #: are pseudonymised directly: the lookup would cost more than it saves.
    LOOKUP_MIN_ROWS = 50_000

    def __init__(self, con: duckdb.DuckDBPyConnection, key: str) -> None:
        self._con = con
        self._key = key
        self._values: dict[str, pa.Array] = {}
        self._pids: dict[str, pa.Array] = {}

    def __call__(self, values: pd.Series, kind: str) -> pd.Series:
        """The pseudonym of each value (missing stays missing), as ``pseudonymise_column``."""
        known = self._values.get(kind)
        remembered = 0 if known is None else len(known)
        if len(values) < self.LOOKUP_MIN_ROWS or 4 * len(values) < remembered:
            return pseudonymise_column(self._con, values, self._key, kind)
        arr = _flat(pa.array(values, type=pa.large_string(), from_pandas=True))
        found = (
            pa.nulls(len(arr), pa.int32()) if known is None else pc.index_in(arr, value_set=known)
        )
        new = pc.and_(pc.is_null(found), pc.is_valid(arr))
        if pc.any(new).as_py():
            fresh = pc.unique(pc.filter(arr, new))
            pids = pseudonymise_column(
                self._con, pd.Series(pd.arrays.ArrowStringArray(fresh)), self._key, kind
            )
            fresh_pids = _flat(pa.array(pids, type=pa.large_string(), from_pandas=True))
            found = pc.if_else(
                pc.is_null(found),
                pc.add(pc.index_in(arr, value_set=fresh), remembered),
                found,
            )
            if known is None:
                self._values[kind], self._pids[kind] = fresh, fresh_pids
            else:
                self._values[kind] = pa.concat_arrays([known, fresh])
                self._pids[kind] = pa.concat_arrays([self._pids[kind], fresh_pids])
        taken = pc.take(self._pids[kind], found) if kind in self._pids else pa.nulls(len(arr))
        return pd.Series(
            pd.arrays.ArrowStringArray(taken.cast(pa.large_string())), index=values.index
        )


def _flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array (large results come back from DuckDB in several chunks)."""
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


@dataclass(frozen=True)
class _Run:
    """What one ingest run keeps between its files, in memory (none of it is stored)."""

    births: _Births
    pseudonyms: _Pseudonyms

    @classmethod
    def start(cls, con: duckdb.DuckDBPyConnection, key: str) -> _Run:
        """A run on ``con`` with pseudonymisation key ``key``."""
        return cls(_Births(), _Pseudonyms(con, key))


def _stored_table(typed: pd.DataFrame, spec: TableSpec, pseudonyms: _Pseudonyms) -> pa.Table:
    """Typed canonical rows under the store's names, identity numbers already pseudonymised,
    as Arrow (DuckDB scans it in parallel, without Python)."""
    out: dict[str, pd.Series] = {}
    for col in spec.columns:
        name = stored_name(col)
        if name is None:
            continue  # names never leave this function
        if col.pii is not None:
            out[name] = pseudonyms(typed[col.name], _PID_KIND[col.pii])
        else:
            out[name] = typed[col.name]
    return pa.Table.from_pandas(pd.DataFrame(out, index=typed.index), preserve_index=False)


def _failed_mask(field_errors: pd.DataFrame, field: str, n: int) -> np.ndarray[Any, Any]:
    mask = np.zeros(n, dtype=bool)
    mask[field_errors.loc[field_errors["field"] == field, "position"].to_numpy(np.int64)] = True
    return mask


class _Births:
    """Each registered child's date of birth (latest registry version), kept between the
    files of one run: the records of a month's eight other ledgers all look children up, and
    the registry changes only when a registry file loads.

    Raw tables only grow, so the registry's row count and highest ``_seq`` tell whether it
    changed since the births were read.
    """

    def __init__(self) -> None:
        self._stamp: tuple[int, int] | None = None
        self._table: pa.Table | None = None

    def table(self, con: duckdb.DuckDBPyConnection) -> pa.Table:
        """``child_id``, ``birth_date`` of every child in ``raw_children``."""
        rows, last = con.execute(
            "SELECT count(*), coalesce(max(_seq), 0) FROM raw_children"
        ).fetchall()[0]
        if self._table is None or self._stamp != (rows, last):
            self._table = con.sql(
                "SELECT child_id, arg_max(birth_date, _seq) AS birth_date "
                "FROM raw_children GROUP BY child_id"
            ).to_arrow_table()
            self._stamp = (rows, last)
        return self._table


def _cross_table_errors(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    stored: pa.Table,
    field_errors: pd.DataFrame,
    births: _Births,
) -> pd.DataFrame:
    """Errors that need the store: unknown village, unknown child, record before birth."""
    parts: list[pd.DataFrame] = []
    n = stored.num_rows
    if spec.name == "children":
        codes = stored.column("village_code")
        check = ~np.asarray(codes.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        check &= ~_failed_mask(field_errors, "village_code", n)
        if check.any():
            known = con.sql(
                "SELECT DISTINCT area_code FROM raw_areas WHERE level = 'village'"
            ).to_arrow_table()
            found = pc.is_in(codes, value_set=known.column("area_code").combine_chunks())
            unknown = check & ~np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)
            if unknown.any():
                col = spec.column("village_code")
                positions = np.flatnonzero(unknown)
                values = pc.take(codes, pa.array(positions)).to_pylist()
                reasons = [
                    f"{label(col)} {shown(col, v)} is not a known village: load the "
                    "行政区划 (areas) ledger that lists it first"
                    for v in values
                ]
                parts.append(errors_frame(positions, "village_code", "unknown_village", reasons))
    elif "child_id" in stored.column_names:
        child = stored.column("child_id")
        check = ~np.asarray(child.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        check &= ~_failed_mask(field_errors, "id_number", n)
        if check.any():
            probe = pa.table(
                {
                    "position": np.arange(n, dtype=np.int64),
                    "child_id": child,
                    "event": stored.column(spec.event_time),
                }
            ).filter(pa.array(check))
            con.register("_ingest_births", births.table(con))
            con.register("_ingest_probe", probe)
            try:
                found = con.sql(
                    """
                    SELECT p.position, b.child_id IS NULL AS unknown,
                           coalesce(CAST(p.event AS DATE) < b.birth_date, false) AS before_birth
                    FROM _ingest_probe p LEFT JOIN _ingest_births b USING (child_id)
                    WHERE b.child_id IS NULL OR CAST(p.event AS DATE) < b.birth_date
                    ORDER BY p.position
                    """
                ).fetchnumpy()
            finally:
                con.unregister("_ingest_probe")
                con.unregister("_ingest_births")
            positions = np.asarray(found["position"], dtype=np.int64)
            unknown = positions[np.asarray(found["unknown"], dtype=bool)]
            if len(unknown):
                id_col = spec.column("id_number")
                parts.append(
                    errors_frame(
                        unknown,
                        "id_number",
                        "unknown_child",
                        f"{label(id_col)}: no child with this identity number in the registry "
                        "(留守儿童基本信息); load the registry first",
                    )
                )
            early = positions[np.asarray(found["before_birth"], dtype=bool)]
            if len(early):
                event = spec.column(spec.event_time)
                parts.append(
                    errors_frame(
                        early,
                        spec.event_time,
                        "event_before_birth",
                        f"{label(event)} is before the child's date of birth in the registry",
                    )
                )
    return pd.concat(parts, ignore_index=True) if parts else empty_errors()


def _raw_values(
    con: duckdb.DuckDBPyConnection,
    source: SourceFile,
    typed: pd.DataFrame,
    positions: np.ndarray[Any, np.dtype[np.int64]],
    key: str,
) -> pd.Series:
    """JSON of each rejected row's cells, identity numbers pseudonymised and names masked."""
    spec = source.table
    rows = source.frame.loc[positions].copy()
    for col in spec.columns:
        if col.pii is None and col.dtype in ("str", "text"):
            rows[col.name] = rows[col.name].str.replace(ID_NUMBER_PATTERN, "***", regex=True)
    for col in _pii_columns(spec):
        name = stored_name(col)
        if name is None:
            rows[col.name] = rows[col.name].where(rows[col.name].isna(), "***")
            continue
        # the normalised value (full-width digits folded) gives the pseudonym the row would get
        value = typed.loc[positions, col.name].fillna(rows[col.name])
        rows[col.name] = pseudonymise_column(con, value, key, _PID_KIND[col.pii or ""])
        rows = rows.rename(columns={col.name: name})
    if rows.empty:
        return pd.Series([], dtype=object)
    lines = rows.to_json(orient="records", lines=True, force_ascii=False).splitlines()
    return pd.Series(lines, index=rows.index, dtype=object)


def _hash_sql(spec: TableSpec) -> tuple[str, str]:
    """SELECT list casting each stored column to its SQL type, and the row-hash expression."""
    columns = stored_columns(spec)
    casts = ", ".join(f'CAST("{n}" AS {t}) AS "{n}"' for n, t in columns)
    parts = ", ".join(f'coalesce(CAST("{n}" AS VARCHAR), chr(0))' for n, _ in columns)
    return casts, f"md5(concat_ws(chr(31), {parts}))"


def _reserve_seq(con: duckdb.DuckDBPyConnection, n: int) -> int:
    """Take ``n`` consecutive values of ``raw_seq``; return the first."""
    first, last = con.execute(
        "SELECT min(v), max(v) FROM (SELECT nextval('raw_seq') AS v FROM range(?))", [n]
    ).fetchall()[0]
    if last - first != n - 1:
        raise RuntimeError("raw_seq values were not consecutive (another writer?)")
    return int(first)


def _load_rows(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    rows: pa.Table,
    accepted: np.ndarray[Any, np.dtype[np.bool_]],
    file_id: int,
) -> tuple[int, int, np.ndarray[Any, np.dtype[np.int64]]]:
    """Append the accepted rows; return (inserted, duplicates, rows in conflict with the store).

    Runs inside the file's transaction. ``rows`` holds the stored columns and ``_row`` of
    every row of the file; ``accepted`` marks the rows without errors (DuckDB skips the others
    while it scans, which costs less than copying the accepted ones out first).
    """
    n = int(accepted.sum())
    if not n:
        return 0, 0, np.zeros(0, dtype=np.int64)
    table = raw_table(spec)
    casts, row_hash = _hash_sql(spec)
    keys = [stored_name(spec.column(k)) or k for k in spec.key] + [spec.recorded_time]
    # Sequence values for every accepted row, in file order; duplicates leave gaps, which
    # cost nothing and spare a sort.
    first = _reserve_seq(con, n)
    seq = np.full(rows.num_rows, -1, dtype=np.int64)
    seq[accepted] = np.arange(first, first + n, dtype=np.int64)
    frame = rows.append_column("_seq", pa.array(seq))
    join = " AND ".join(f'r."{k}" = n."{k}"' for k in keys)
    # One join on the record key answers both questions: a stored row with the same hash
    # makes this a duplicate (_stored true); stored rows with the same key and entry date
    # but only other hashes make it a conflict (_stored false); no such row leaves it null.
    con.register("_ingest_frame", frame)
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _ingest_new AS
                WITH n AS MATERIALIZED (
                    SELECT *, {row_hash} AS _row_hash
                    FROM (SELECT {casts}, CAST(_row AS INTEGER) AS _row, _seq
                          FROM _ingest_frame WHERE _seq >= 0)),
                m AS (
                    SELECT n._row, bool_or(r._row_hash = n._row_hash) AS _stored
                    FROM n JOIN {table} r ON {join}
                    GROUP BY n._row)
                SELECT n.*, m._stored FROM n LEFT JOIN m USING (_row)"""
        )
    finally:
        con.unregister("_ingest_frame")
    try:
        conflicts = con.sql(
            "SELECT _row FROM _ingest_new WHERE NOT _stored ORDER BY _row"
        ).fetchnumpy()
        conflict_rows = np.asarray(conflicts["_row"], dtype=np.int64)
        names = ", ".join(f'"{n}"' for n, _ in stored_columns(spec))
        # rows matching the store are left out; of identical rows in the file the first wins
        kept = int(
            _scalar(
                con,
                f"""INSERT INTO {table} ({names}, _seq, _file_id, _row, _row_hash)
                    SELECT {names}, _seq, ?, _row, _row_hash FROM _ingest_new
                    WHERE _stored IS NULL
                    QUALIFY row_number() OVER (PARTITION BY _row_hash ORDER BY _row) = 1""",
                [file_id],
            )
        )
    finally:
        con.execute("DROP TABLE IF EXISTS _ingest_new")
    duplicates = n - kept - len(conflict_rows)
    return kept, duplicates, conflict_rows


def _conflict_errors(
    spec: TableSpec, rows: np.ndarray[Any, np.dtype[np.int64]], source: SourceFile
) -> pd.DataFrame:
    if not len(rows):
        return empty_errors()
    positions = np.flatnonzero(np.isin(source.rows, rows))
    keys = " + ".join(label(spec.column(k)) for k in (*spec.key, spec.recorded_time))
    return errors_frame(
        positions,
        spec.key[0],
        "duplicate_key_conflict",
        f"a stored row has the same {keys} but different values (a correction needs a later "
        f"{label(spec.column(spec.recorded_time))})",
    )


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    mapping: Mapping,
    key: str,
    max_future_days: int,
    today: date | None = None,
) -> FileResult:
    """Load one ledger file in one transaction.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The raw store (``rawstore.connect``).
    path : Path
        The file.
    mapping : Mapping
        Header, label and boolean spellings.
    key : str
        The pseudonymisation key.
    max_future_days : int
        Days past ``today`` a date may lie.
    today : date, optional
        The load date (default: today).

    Returns
    -------
    FileResult
        ``skipped`` if the same bytes were loaded before, ``failed`` with the reason if the
        file cannot be read (nothing stored), else ``loaded`` with its counts.

    Raises
    ------
    duckdb.Error
        If the store fails; the file's transaction is rolled back first.
    """
    prepare = partial(
        _prepare,
        mapping=mapping,
        load_date=today or date.today(),
        max_future_days=max_future_days,
    )
    prepared = prepare(path, loaded=lambda sha: _already_loaded(con, sha))
    reread = partial(prepare, path, loaded=_never)
    return _load_prepared(con, prepared, key=key, reread=reread, run=_Run.start(con, key))


def _never(sha256: str) -> bool:
    return False


def _load_prepared(
    con: duckdb.DuckDBPyConnection,
    prepared: _Prepared,
    *,
    key: str,
    reread: Callable[[], _Prepared],
    run: _Run,
) -> FileResult:
    """The store's part of loading a file: cross-table checks, pseudonyms, rows, rejects, all
    in one transaction. ``reread`` reads the file again if it was skipped as loaded and the
    store no longer says so."""
    path = prepared.path
    if prepared.refused is not None:
        return prepared.refused
    assert prepared.sha256 is not None
    if _already_loaded(con, prepared.sha256):
        logger.info("file already loaded, skipped", extra={"file": path.name})
        return FileResult(path.name, "skipped")
    if prepared.source is None:
        prepared = reread()
        if prepared.refused is not None:
            return prepared.refused
    source, checked = prepared.source, prepared.checked
    assert source is not None and checked is not None
    spec = source.table
    con.execute("BEGIN TRANSACTION")
    try:
        stored = _stored_table(checked.typed, spec, run.pseudonyms)
        errors = pd.concat(
            [checked.errors, _cross_table_errors(con, spec, stored, checked.errors, run.births)],
            ignore_index=True,
        )
        good = np.ones(stored.num_rows, dtype=bool)
        good[errors["position"].to_numpy(dtype=np.int64)] = False
        file_id = int(_scalar(con, "SELECT coalesce(max(file_id), 0) + 1 FROM ingested_files"))
        inserted, duplicates, conflict_rows = _load_rows(
            con, spec, stored.append_column("_row", pa.array(source.rows)), good, file_id
        )
        if len(conflict_rows):
            errors = pd.concat(
                [errors, _conflict_errors(spec, conflict_rows, source)], ignore_index=True
            )
        rejected_positions = np.unique(errors["position"].to_numpy(dtype=np.int64))
        _store_rejects(con, source, checked.typed, errors, rejected_positions, file_id, key)
        con.execute(
            "INSERT INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                file_id,
                path.name,
                str(path),
                prepared.sha256,
                spec.name,
                source.encoding,
                datetime.now(),
                len(source.frame),
                inserted,
                len(rejected_positions),
                duplicates,
            ],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    by_reason = Counter(errors["reason_code"].tolist())
    logger.info(
        "file loaded",
        extra={
            "file": path.name,
            "table": spec.name,
            "rows": len(source.frame),
            "accepted": inserted,
            "rejected": len(rejected_positions),
            "duplicates": duplicates,
            "seconds": round(time.perf_counter() - prepared.started, 3),
        },
    )
    return FileResult(
        path.name,
        "loaded",
        table=spec.name,
        accepted=inserted,
        rejected=len(rejected_positions),
        duplicates=duplicates,
        rejects_by_reason=dict(by_reason),
    )


def _store_rejects(
    con: duckdb.DuckDBPyConnection,
    source: SourceFile,
    typed: pd.DataFrame,
    errors: pd.DataFrame,
    positions: np.ndarray[Any, np.dtype[np.int64]],
    file_id: int,
    key: str,
) -> None:
    if errors.empty:
        return
    raw = _raw_values(con, source, typed, positions, key)
    errors = errors.sort_values(["position", "field"], kind="stable")
    rows = pa.table(
        {
            "file_id": pa.array(np.full(len(errors), file_id, dtype=np.int32)),
            "file_name": pa.array([source.path.name] * len(errors), type=pa.string()),
            "table_name": pa.array([source.table.name] * len(errors), type=pa.string()),
            "row": pa.array(
                source.rows[errors["position"].to_numpy(dtype=np.int64)].astype(np.int32)
            ),
            "field": pa.array(errors["field"].astype(str).tolist(), type=pa.string()),
            "reason_code": pa.array(errors["reason_code"].astype(str).tolist(), type=pa.string()),
            "reason": pa.array(errors["reason"].astype(str).tolist(), type=pa.string()),
            "raw_values": pa.array(
                raw.reindex(errors["position"].to_numpy()).tolist(), type=pa.string()
            ),
        }
    )
    con.register("_ingest_rejects", rows)
    try:
        con.execute(
            'INSERT INTO rejected_rows (file_id, file_name, table_name, "row", field, '
            "reason_code, reason, raw_values) SELECT * FROM _ingest_rejects"
        )
    finally:
        con.unregister("_ingest_rejects")


# --------------------------------------------------------------------------- many files


def _prepared_in_order(
    files: list[Path], prepare: Callable[[Path], _Prepared], *, prefetch: bool
) -> Iterator[_Prepared]:
    """Prepared files in load order; with ``prefetch``, the next file is read and validated
    in a worker thread while the caller loads this one.

    Reading and validating need no store, and DuckDB releases the GIL while it runs, so on
    two cores the two halves of consecutive files overlap. One file ahead at most: its
    frames are the memory this costs.
    """
    if not prefetch or len(files) < 2:
        for path in files:
            yield prepare(path)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-read") as pool:
        pending = pool.submit(prepare, files[0])
        for path in files[1:]:
            current = pending.result()
            pending = pool.submit(prepare, path)
            yield current
        yield pending.result()


#: DuckDB's write-ahead log size that triggers a checkpoint during an ingest run. At the
#: default (16 MiB) a run of many files checkpointed every few commits, rewriting the growing
#: tables' last row groups each time: a fifth of the run. Each file's commit is still durable
#: in the log; the run checkpoints once when it is done.
INGEST_CHECKPOINT_THRESHOLD = "1GiB"


@contextmanager
def _checkpoint_once(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Defer DuckDB's automatic checkpoints to one at the end of a successful run."""
    (before,) = con.execute("SELECT current_setting('checkpoint_threshold')").fetchall()[0]
    con.execute(f"SET checkpoint_threshold = '{INGEST_CHECKPOINT_THRESHOLD}'")
    try:
        yield
    finally:
        con.execute(f"SET checkpoint_threshold = '{before}'")
    con.execute("CHECKPOINT")


def ingest_paths(
    con: duckdb.DuckDBPyConnection,
    paths: list[Path],
    *,
    mapping: Mapping,
    key: str,
    max_future_days: int,
    progress: bool,
    today: date | None = None,
    prefetch: bool = True,
) -> IngestSummary:
    """Load ledger files, batch by batch, each file in its own transaction.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The raw store (``rawstore.connect``).
    paths : list of Path
        Files, batch folders (``YYYY-MM``) or folders of batch folders.
    mapping : Mapping
        Header, label and boolean spellings (``mapping.load_mapping``).
    key : str
        The pseudonymisation key (``Settings.pseudonym_key``).
    max_future_days : int
        Days past the load date a date may lie.
    progress : bool
        Show a progress bar on stderr.
    today : date, optional
        The load date (default: today); tests pin it.
    prefetch : bool
        Read and validate the next file in a worker thread while this one is loaded. Files
        are loaded in order either way, and the result is the same.

    Returns
    -------
    IngestSummary
        Counts per table and reason; ``as_dict()`` is the ``--json`` shape.

    Raises
    ------
    SourceFileError
        If a path does not exist (before anything is loaded).
    """
    batches = plan_batches(paths, mapping)
    files = [f for batch in batches for f in batch]
    summary = IngestSummary()
    # the bytes loaded before this run are known up front, so the worker hashes such files
    # and reads nothing else of them (a second run over the same folders stays quick)
    known = frozenset(sha for (sha,) in con.execute("SELECT sha256 FROM ingested_files").fetchall())
    load_date = today or date.today()
    prepare = partial(
        _prepare,
        mapping=mapping,
        load_date=load_date,
        max_future_days=max_future_days,
        loaded=known.__contains__,
    )
    bar = tqdm(total=len(files), desc="ingest", unit="file", file=sys.stderr, disable=not progress)
    run = _Run.start(con, key)
    with _checkpoint_once(con):
        for prepared in _prepared_in_order(files, prepare, prefetch=prefetch):
            bar.set_postfix_str(prepared.path.name, refresh=False)
            reread = partial(prepare, prepared.path, loaded=_never)
            summary.add(_load_prepared(con, prepared, key=key, reread=reread, run=run))
            bar.update()
    bar.close()
    logger.info(
        "ingest finished",
        extra={
            "files": summary.files,
            "loaded": summary.files_loaded,
            "skipped": summary.files_skipped,
            "failed": len(summary.file_errors),
            "accepted": sum(summary.accepted.values()),
            "rejected": sum(summary.rejected.values()),
        },
    )
    return summary


__all__ = [
    "FileResult",
    "IngestSummary",
    "ingest_file",
    "ingest_paths",
    "plan_batches",
]
