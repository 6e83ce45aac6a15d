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
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
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


def _stored_frame(
    con: duckdb.DuckDBPyConnection, typed: pd.DataFrame, spec: TableSpec, key: str
) -> pd.DataFrame:
    """Typed canonical rows under the store's names, identity numbers already pseudonymised."""
    out: dict[str, pd.Series] = {}
    for col in spec.columns:
        name = stored_name(col)
        if name is None:
            continue  # names never leave this function
        if col.pii is not None:
            out[name] = pseudonymise_column(con, typed[col.name], key, _PID_KIND[col.pii])
        else:
            out[name] = typed[col.name]
    return pd.DataFrame(out, index=typed.index)


def _cross_table_errors(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    stored: pd.DataFrame,
    field_errors: pd.DataFrame,
) -> pd.DataFrame:
    """Errors that need the store: unknown village, unknown child, record before birth."""
    parts: list[pd.DataFrame] = []

    def failed(field: str) -> np.ndarray[Any, np.dtype[np.bool_]]:
        mask = np.zeros(len(stored), dtype=bool)
        mask[field_errors.loc[field_errors["field"] == field, "position"].to_numpy(np.int64)] = True
        return mask

    if spec.name == "children":
        codes = stored["village_code"]
        check = codes.notna().to_numpy(dtype=bool) & ~failed("village_code")
        if check.any():
            known = [
                row[0]
                for row in con.execute(
                    "SELECT DISTINCT area_code FROM raw_areas WHERE level = 'village'"
                ).fetchall()
            ]
            unknown = check & ~codes.isin(known).to_numpy(dtype=bool)
            if unknown.any():
                col = spec.column("village_code")
                positions = stored.index.to_numpy()[unknown]
                reasons = [
                    f"{label(col)} {shown(col, v)} is not a known village: load the "
                    "行政区划 (areas) ledger that lists it first"
                    for v in codes.to_numpy()[unknown]
                ]
                parts.append(errors_frame(positions, "village_code", "unknown_village", reasons))
    elif "child_id" in stored.columns:
        check = stored["child_id"].notna().to_numpy(dtype=bool) & ~failed("id_number")
        if check.any():
            probe = pd.DataFrame(
                {
                    "position": stored.index.to_numpy()[check],
                    "child_id": stored["child_id"].to_numpy()[check],
                    "event": stored[spec.event_time].to_numpy()[check],
                }
            )
            con.register("_ingest_probe", probe)
            try:
                found = con.sql(
                    """
                    WITH births AS (
                        SELECT child_id, arg_max(birth_date, _seq) AS birth_date
                        FROM raw_children
                        WHERE child_id IN (SELECT DISTINCT child_id FROM _ingest_probe)
                        GROUP BY child_id)
                    SELECT p.position, b.child_id IS NOT NULL AS known,
                           coalesce(CAST(p.event AS DATE) < b.birth_date, false) AS before_birth
                    FROM _ingest_probe p LEFT JOIN births b USING (child_id)
                    ORDER BY p.position
                    """
                ).df()
            finally:
                con.unregister("_ingest_probe")
            id_col = spec.column("id_number")
            unknown = found.loc[~found["known"], "position"].to_numpy()
            if len(unknown):
                parts.append(
                    errors_frame(
                        unknown,
                        "id_number",
                        "unknown_child",
                        f"{label(id_col)}: no child with this identity number in the registry "
                        "(留守儿童基本信息); load the registry first",
                    )
                )
            early = found.loc[found["before_birth"], "position"].to_numpy()
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
    first = int(_scalar(con, "SELECT nextval('raw_seq')"))
    if n > 1:
        last = int(_scalar(con, "SELECT max(nextval('raw_seq')) FROM range(?)", [n - 1]))
        if last != first + n - 1:
            raise RuntimeError("raw_seq values were not consecutive (another writer?)")
    return first


def _load_rows(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    accepted: pd.DataFrame,
    file_id: int,
) -> tuple[int, int, np.ndarray[Any, np.dtype[np.int64]]]:
    """Append accepted rows; return (inserted, duplicates, rows in conflict with the store).

    Runs inside the file's transaction. ``accepted`` holds the stored columns and ``_row``.
    """
    if accepted.empty:
        return 0, 0, np.zeros(0, dtype=np.int64)
    table = raw_table(spec)
    casts, row_hash = _hash_sql(spec)
    keys = [stored_name(spec.column(k)) or k for k in spec.key] + [spec.recorded_time]
    # Sequence values for every candidate row, in file order; duplicates leave gaps, which
    # cost nothing and spare a sort.
    first = _reserve_seq(con, len(accepted))
    frame = accepted.assign(_seq=np.arange(first, first + len(accepted), dtype=np.int64))
    con.register("_ingest_frame", frame)
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _ingest_new AS
                SELECT *, {row_hash} AS _row_hash
                FROM (SELECT {casts}, CAST(_row AS INTEGER) AS _row, _seq FROM _ingest_frame)"""
        )
    finally:
        con.unregister("_ingest_frame")
    join = " AND ".join(f'r."{k}" = n."{k}"' for k in keys)
    # One join on the record key answers both questions: a stored row with the same hash
    # makes this a duplicate; stored rows with the same key and entry date but only other
    # hashes make it a conflict.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _ingest_match AS
            SELECT n._row, bool_or(r._row_hash = n._row_hash) AS same
            FROM _ingest_new n JOIN {table} r ON {join}
            GROUP BY n._row"""
    )
    conflicts = con.sql("SELECT _row FROM _ingest_match WHERE NOT same ORDER BY _row").fetchnumpy()
    conflict_rows = np.asarray(conflicts["_row"], dtype=np.int64)
    names = ", ".join(f'"{n}"' for n, _ in stored_columns(spec))
    # the first of identical rows in the file wins; rows matching the store are left out
    kept = int(
        _scalar(
            con,
            f"""INSERT INTO {table} ({names}, _seq, _file_id, _row, _row_hash)
                SELECT {names}, _seq, ?, _row, _row_hash FROM _ingest_new
                WHERE _row IN (SELECT min(_row) FROM _ingest_new GROUP BY _row_hash)
                  AND _row NOT IN (SELECT _row FROM _ingest_match)""",
            [file_id],
        )
    )
    duplicates = len(accepted) - kept - len(conflict_rows)
    con.execute("DROP TABLE IF EXISTS _ingest_new")
    con.execute("DROP TABLE IF EXISTS _ingest_match")
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
    started = time.perf_counter()
    load_date = today or date.today()
    try:
        data = path.read_bytes()
    except OSError as exc:
        return FileResult(path.name, "failed", error=f"cannot read the file ({exc.strerror})")
    sha = file_sha256(data)
    if _already_loaded(con, sha):
        logger.info("file already loaded, skipped", extra={"file": path.name})
        return FileResult(path.name, "skipped")
    try:
        source = read_source(path, mapping, data=data)
    except SourceFileError as exc:
        logger.error("file refused: %s", exc.message, extra={"file": path.name})
        return FileResult(path.name, "failed", error=exc.reason)
    spec = source.table
    checked: Validated = validate_frame(
        source.frame, spec, mapping, load_date=load_date, max_future_days=max_future_days
    )
    con.execute("BEGIN TRANSACTION")
    try:
        stored = _stored_frame(con, checked.typed, spec, key)
        errors = pd.concat(
            [checked.errors, _cross_table_errors(con, spec, stored, checked.errors)],
            ignore_index=True,
        )
        bad = np.zeros(len(stored), dtype=bool)
        bad[errors["position"].to_numpy(dtype=np.int64)] = True
        accepted = stored.loc[~bad].assign(_row=source.rows[~bad])
        file_id = int(_scalar(con, "SELECT coalesce(max(file_id), 0) + 1 FROM ingested_files"))
        inserted, duplicates, conflict_rows = _load_rows(con, spec, accepted, file_id)
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
                sha,
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
            "seconds": round(time.perf_counter() - started, 3),
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
    rows = pd.DataFrame(
        {
            "file_id": file_id,
            "file_name": source.path.name,
            "table_name": source.table.name,
            "row": source.rows[errors["position"].to_numpy(dtype=np.int64)].astype(np.int32),
            "field": errors["field"].astype(str).to_numpy(),
            "reason_code": errors["reason_code"].astype(str).to_numpy(),
            "reason": errors["reason"].astype(str).to_numpy(),
            "raw_values": raw.reindex(errors["position"].to_numpy()).to_numpy(),
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


def ingest_paths(
    con: duckdb.DuckDBPyConnection,
    paths: list[Path],
    *,
    mapping: Mapping,
    key: str,
    max_future_days: int,
    progress: bool,
    today: date | None = None,
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
    bar = tqdm(files, desc="ingest", unit="file", file=sys.stderr, disable=not progress)
    for path in bar:
        bar.set_postfix_str(path.name, refresh=False)
        summary.add(
            ingest_file(
                con,
                path,
                mapping=mapping,
                key=key,
                max_future_days=max_future_days,
                today=today,
            )
        )
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
