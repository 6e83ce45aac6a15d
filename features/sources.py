"""Reading one ledger file into canonical columns of text, with its spreadsheet row numbers.

A county delivers ledgers as CSV (UTF-8, UTF-8 with a byte-order mark, or GB18030/GBK), XLSX or
Parquet. This module reads the bytes, works out which ledger table the file holds from its
mapped headers, and returns every cell as text (or missing) under canonical column names.
Typing and validation happen later (``validation.py``); nothing here judges a value.

Decisions
---------
* **Row numbers** are the ones a spreadsheet shows: the header is row 1 and the first data row
  row 2; a blank line still counts as a row (it is skipped, not loaded). Parquet has no
  spreadsheet, so its rows are numbered the same way (first row = 2).
* **Encoding** of a CSV: strict UTF-8 (a byte-order mark is allowed), else strict GB18030 (a
  superset of GBK and GB2312). A file that decodes as neither, or whose UTF-8 header is
  followed by rows that are not UTF-8, is refused whole.
* **Header-only files** are fine: a township with no events that month delivers an empty
  ledger; it is recorded as loaded with zero rows. A 0-byte file is an error.
* **Truncated or malformed files** (a row whose number of fields differs from the header's, an
  unterminated quote, a corrupt XLSX zip, NUL bytes) are refused whole: a misaligned file cannot
  be trusted row by row.
* **XLSX cells** are never evaluated: a formula cell arrives as its formula text (``=...``),
  which validation rejects as ``formula_in_cell``. Date cells become ``YYYY-MM-DD``; a number
  in a date column is read as an Excel serial date; whole numbers lose their ``.0``.
* **Headers** not in the mapping are ignored (never stored, never shown in messages: a file
  without a header row would otherwise put a child's data into an error message).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.mapping import Mapping
from features.schema import TABLES, TableSpec
from shouhu.errors import SourceFileError

logger = logging.getLogger(__name__)

#: File suffixes read as ledgers; anything else in a batch folder is ignored.
LEDGER_SUFFIXES = frozenset({".csv", ".xlsx", ".parquet"})
#: Suffixes that look like ledgers but cannot be read: refused with a clear message.
UNSUPPORTED_SUFFIXES = frozenset({".xls", ".xlsm", ".et", ".ods", ".txt", ".tsv"})

_STRING = pd.StringDtype()


@dataclass(frozen=True)
class SourceFile:
    """One ledger file read as text under canonical column names.

    Attributes
    ----------
    path : Path
        The file.
    table : TableSpec
        The ledger table it holds.
    frame : pandas.DataFrame
        One column per canonical column of ``table`` (in schema order), string dtype, missing
        cells as NA; optional columns the file lacks are all NA. Index ``0..n-1``.
    rows : numpy.ndarray
        Spreadsheet row number of each frame row (header = 1).
    sha256 : str
        Hash of the file's bytes (a file loaded twice is recognised by it).
    encoding : str
        ``utf-8``, ``utf-8-sig`` or ``gb18030`` for CSV; ``xlsx`` or ``parquet`` otherwise.
    ignored_headers : int
        Headers the mapping does not know (their columns are not read).
    """

    path: Path
    table: TableSpec
    frame: pd.DataFrame
    rows: np.ndarray[Any, np.dtype[np.int64]]
    sha256: str
    encoding: str
    ignored_headers: int


@dataclass(frozen=True)
class _Sheet:
    headers: list[str]
    # one list of cell values per column, or Arrow columns by header position (strings, or
    # dictionaries of strings)
    columns: list[list[Any]] | dict[int, pa.ChunkedArray]
    rows: np.ndarray[Any, np.dtype[np.int64]]
    encoding: str
    epoch: datetime | None = None


def file_sha256(data: bytes) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(data).hexdigest()


def read_source(path: Path, mapping: Mapping, *, data: bytes | None = None) -> SourceFile:
    """Read a ledger file and map its headers onto the canonical columns of its table.

    Parameters
    ----------
    path : Path
        A ``.csv``, ``.xlsx`` or ``.parquet`` file.
    mapping : Mapping
        Header (and file-name) spellings.
    data : bytes, optional
        The file's bytes if the caller has read them already.

    Returns
    -------
    SourceFile
        The cells as text, with row numbers and the file's hash and encoding.

    Raises
    ------
    SourceFileError
        If the file is empty, cannot be decoded or parsed, is truncated, or its headers do not
        identify exactly one ledger table with all required columns. Nothing from such a file
        is to be stored.
    """
    name = path.name
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SourceFileError(name, f"cannot read the file ({exc.strerror})") from None
    suffix = path.suffix.lower()
    if suffix in UNSUPPORTED_SUFFIXES:
        raise SourceFileError(name, f"{suffix} files are not supported: save as .xlsx or .csv")
    if suffix not in LEDGER_SUFFIXES:
        raise SourceFileError(name, f"unknown file type {suffix!r}: expected .csv, .xlsx, .parquet")
    if not data:
        raise SourceFileError(name, "the file is empty (0 bytes)")
    if suffix == ".parquet":
        sheet, spec, found = _read_parquet(name, data, mapping)
    else:
        sheet = _read_csv(name, data) if suffix == ".csv" else _read_xlsx(name, data)
        spec, found = identify_table(sheet.headers, mapping, name, encoding=sheet.encoding)
    frame = _canonical_frame(sheet, spec, found)
    keep = _non_blank(frame)
    rows = sheet.rows
    if not keep.all():
        frame = frame.loc[keep].reset_index(drop=True)
        rows = rows[keep]
    ignored = len(sheet.headers) - len(found)
    if ignored:
        logger.info("ignored unknown headers", extra={"file": name, "headers": ignored})
    return SourceFile(
        path=path,
        table=spec,
        frame=frame,
        rows=rows,
        sha256=file_sha256(data),
        encoding=sheet.encoding,
        ignored_headers=ignored,
    )


def sniff_table(path: Path, mapping: Mapping) -> TableSpec | None:
    """Guess a file's table cheaply (file name, else header row) to order a batch; None if unsure.

    The guess only orders loading (registries before records); :func:`read_source` decides.
    """
    hinted = mapping.table_for_file_name(path.stem)
    if hinted is not None:
        return next(t for t in TABLES if t.name == hinted)
    try:
        if path.suffix.lower() == ".csv":
            with path.open("rb") as fh:
                first = fh.readline(1 << 16)
            text = _decode_loose(first)
            headers = next(csv.reader(io.StringIO(text)), [])
        elif path.suffix.lower() == ".parquet":
            headers = list(pq.read_schema(path).names)
        else:
            return None
        spec, _ = identify_table(headers, mapping, path.name)
    except (SourceFileError, OSError, csv.Error, pa.ArrowException):
        return None
    return spec


def identify_table(
    headers: Sequence[str], mapping: Mapping, file_name: str, *, encoding: str | None = None
) -> tuple[TableSpec, dict[int, str]]:
    """Find the one ledger table whose required columns the headers all provide.

    Parameters
    ----------
    headers : sequence of str
        The file's header cells, in order.
    mapping : Mapping
        Header spellings per table.
    file_name : str
        The file's name; ``<TableSpec.zh>_YYYY-MM.ext`` hints at the table when headers fit
        several, and names the table whose missing columns are reported when they fit none.
    encoding : str, optional
        How the file was decoded, mentioned when no header is recognised.

    Returns
    -------
    tuple
        The table and ``{header position: canonical column}`` for the recognised headers.

    Raises
    ------
    SourceFileError
        If no table, or several equally, fit; or two headers mean the same column.
    """
    hint = mapping.table_for_file_name(Path(file_name).stem)
    fits: list[tuple[TableSpec, dict[int, str], list[str]]] = []
    for spec in TABLES:
        found: dict[int, str] = {}
        for i, header in enumerate(headers):
            column = mapping.column_for(spec.name, str(header)) if header is not None else None
            if column is not None:
                found[i] = column
        missing = [c.name for c in spec.columns if c.required and c.name not in found.values()]
        fits.append((spec, found, missing))
    complete = [f for f in fits if not f[2]]
    if not complete:
        if hint is not None:
            spec, found, missing = next(f for f in fits if f[0].name == hint)
        else:
            spec, found, missing = max(fits, key=lambda f: (len(set(f[1].values())), -len(f[2])))
        if not found:
            how = f" (read as {encoding.upper()})" if encoding and encoding != "xlsx" else ""
            raise SourceFileError(
                file_name,
                f"no header matches a ledger table{how}: not a ledger, a header row missing, "
                "or the wrong encoding (Big5? save it as UTF-8 or GB18030)",
            )
        cols = ", ".join(f"{spec.column(c).zh} ({c})" for c in missing)
        plural = "s" if len(missing) > 1 else ""
        raise SourceFileError(
            file_name, f"missing required column{plural} {cols} of table {spec.zh} ({spec.name})"
        )
    if len(complete) > 1:
        hinted = [f for f in complete if f[0].name == hint]
        if hinted:
            complete = hinted
        else:
            best = max(len(f[1]) for f in complete)
            complete = [f for f in complete if len(f[1]) == best]
        if len(complete) > 1:
            names = ", ".join(f"{f[0].zh} ({f[0].name})" for f in complete)
            raise SourceFileError(
                file_name,
                f"headers fit several tables ({names}): name the file <table>_YYYY-MM.ext",
            )
    spec, found, _ = complete[0]
    seen: dict[str, int] = {}
    for i, column in found.items():
        if column in seen:
            raise SourceFileError(
                file_name,
                f"columns {seen[column] + 1} and {i + 1} both mean {spec.column(column).zh} "
                f"({column})",
            )
        seen[column] = i
    return spec, found


# --------------------------------------------------------------------------- CSV


def _decode_loose(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gb18030", errors="replace")


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _decode(name: str, data: bytes) -> tuple[str, str]:
    """Decode strictly: UTF-8 (with or without BOM), else GB18030; refuse mixtures."""
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            line = _line_of(data, exc.start + len(codecs.BOM_UTF8))
            raise SourceFileError(
                name, f"mixed encodings: marked as UTF-8 but line {line} is not UTF-8"
            ) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        first_end = data.find(b"\n")
        header = data[: first_end if first_end >= 0 else len(data)]
        if 0 <= first_end < exc.start and not header.isascii():
            # The header decodes as UTF-8 with Chinese in it and a later row does not: two
            # encodings in one file (rows pasted from another system). GB18030 would turn the
            # header into nonsense, so say what happened instead.
            try:
                header.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                raise SourceFileError(
                    name,
                    f"mixed encodings: the header is UTF-8 but line {_line_of(data, exc.start)} "
                    "is not",
                ) from None
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        raise SourceFileError(
            name,
            f"cannot decode the file as UTF-8 or GB18030 (invalid bytes on line "
            f"{_line_of(data, exc.start)}): save it as UTF-8 or GB18030",
        ) from None


def _read_csv(name: str, data: bytes) -> _Sheet:
    if b"\x00" in data:
        raise SourceFileError(name, "binary data (NUL bytes): not a text CSV (UTF-16 or corrupt?)")
    text, encoding = _decode(name, data)
    # Work on UTF-8 bytes from here: slicing a str of a large ledger copies it several times.
    if encoding == "gb18030":
        utf8 = text.encode("utf-8")
    elif encoding == "utf-8-sig":
        utf8 = data[len(codecs.BOM_UTF8) :]
    else:
        utf8 = data
    del text
    if not utf8 or utf8.isspace():
        raise SourceFileError(name, "the file has no header row (only white space)")
    first_end = utf8.find(b"\n")
    end = len(utf8)
    while end and utf8[end - 1] in b"\r\n":
        end -= 1
    first_line = utf8[: first_end if first_end >= 0 else end].decode("utf-8")
    # The fast Arrow parser skips blank lines (row numbers would shift) and accepts an
    # unterminated quote at the end of the file, so those files take the exact slow path.
    quotes = utf8.count(b'"')
    slow = (
        quotes % 2 == 1
        or '"' in first_line
        or (first_end >= 0 and first_end < end and utf8.find(b"\n\n", first_end, end) >= 0)
        or (first_end >= 0 and first_end < end and utf8.find(b"\n\r\n", first_end, end) >= 0)
    )
    if slow:
        return _read_csv_exact(name, utf8.decode("utf-8"), encoding)
    headers = next(csv.reader([first_line.rstrip("\r")]))
    if first_end < 0 or first_end >= end:
        return _Sheet(headers, [[] for _ in headers], np.zeros(0, np.int64), encoding)
    names = [f"c{i}" for i in range(len(headers))]
    body = pa.py_buffer(utf8).slice(first_end + 1)
    try:
        table = pacsv.read_csv(
            pa.BufferReader(body),
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
            # without quotes no value can hold a newline, and Arrow may parse blocks in parallel
            parse_options=pacsv.ParseOptions(newlines_in_values=quotes > 0),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except pa.ArrowInvalid:
        # Arrow's message quotes the offending row (a child's data): find the row ourselves.
        return _read_csv_exact(name, utf8.decode("utf-8"), encoding)
    rows = np.arange(2, table.num_rows + 2, dtype=np.int64)
    return _Sheet(headers, dict(enumerate(table.columns)), rows, encoding)


def _read_csv_exact(name: str, text: str, encoding: str) -> _Sheet:
    """The slow, exact parser: spreadsheet row numbers with blank lines, precise errors."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    headers: list[str] | None = None
    columns: list[list[str | None]] = []
    rows: list[int] = []
    row = 0
    try:
        for record in reader:
            row += 1
            if headers is None:
                headers = record
                columns = [[] for _ in headers]
                continue
            if not record:
                continue
            if len(record) != len(headers):
                raise SourceFileError(
                    name,
                    f"row {row} has {len(record)} fields but the header has {len(headers)} "
                    "(a truncated or malformed line)",
                )
            for col, value in zip(columns, record, strict=True):
                col.append(value if value != "" else None)
            rows.append(row)
    except csv.Error as exc:
        problem = "unterminated quoted field" if "end of data" in str(exc) else str(exc)
        raise SourceFileError(name, f"malformed CSV at row {row + 1}: {problem}") from None
    if headers is None:
        raise SourceFileError(name, "the file has no header row")
    return _Sheet(headers, list(columns), np.asarray(rows, dtype=np.int64), encoding)


# --------------------------------------------------------------------------- XLSX, Parquet


def _read_xlsx(name: str, data: bytes) -> _Sheet:
    import openpyxl

    headers: list[str] | None = None
    columns: list[list[Any]] = []
    rows: list[int] = []
    try:
        # read_only streams the sheet; data_only=False returns a formula as its text, so no
        # formula is evaluated and validation sees it for what it is.
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
        try:
            sheet = book.worksheets[0]
            epoch = book.epoch
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                if headers is None:
                    headers = ["" if v is None else str(v) for v in values]
                    while headers and headers[-1] == "":
                        headers.pop()
                    columns = [[] for _ in headers]
                    continue
                if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                    continue
                for i, col in enumerate(columns):
                    col.append(values[i] if i < len(values) else None)
                rows.append(number)
        finally:
            book.close()
    except SourceFileError:
        raise
    except Exception as exc:  # openpyxl raises zip, XML, key and value errors on corrupt files
        raise SourceFileError(
            name, f"not a readable XLSX workbook (corrupt or truncated: {type(exc).__name__})"
        ) from None
    if headers is None or not headers:
        raise SourceFileError(name, "the first sheet is empty (no header row)")
    return _Sheet(headers, columns, np.asarray(rows, dtype=np.int64), "xlsx", epoch)


def _read_parquet(
    name: str, data: bytes, mapping: Mapping
) -> tuple[_Sheet, TableSpec, dict[int, str]]:
    """Read the mapped columns of a Parquet file; coded columns stay dictionary-encoded.

    The header comes from the schema alone, so columns the mapping does not know are never
    read. Dates, numbers, labels and yes/no columns repeat a few values over millions of rows
    and Parquet stores them as a dictionary: reading them as such skips building millions of
    strings, and the dictionary is the set of distinct values that validation parses.
    """
    try:
        schema = pq.read_schema(io.BytesIO(data))
        headers = list(schema.names)
        spec, found = identify_table(headers, mapping, name, encoding="parquet")
        wanted = sorted(found)
        coded = [
            headers[i]
            for i in wanted
            if spec.column(found[i]).dtype not in ("str", "text")
            and (
                pa.types.is_string(schema.field(i).type)
                or pa.types.is_large_string(schema.field(i).type)
            )
        ]
        table = pq.read_table(
            io.BytesIO(data), columns=[headers[i] for i in wanted], read_dictionary=coded
        )
    except (pa.ArrowException, OSError) as exc:
        raise SourceFileError(
            name, f"not a readable Parquet file (corrupt or truncated: {type(exc).__name__})"
        ) from None
    converted = []
    for i, column in zip(wanted, table.columns, strict=True):
        if pa.types.is_dictionary(column.type) or pa.types.is_string(column.type):
            converted.append(column)
            continue
        try:
            if pa.types.is_timestamp(column.type):
                column = column.cast(pa.date32())
            converted.append(column.cast(pa.string()))
        except pa.ArrowException:
            col = spec.column(found[i])
            raise SourceFileError(
                name, f"column {col.zh} ({col.name}) holds {column.type} values, not text"
            ) from None
    # columns by header position, as the other readers give them; unread ones stay absent
    sheet = _Sheet(
        headers,
        {i: column for i, column in zip(wanted, converted, strict=True)},
        np.arange(2, table.num_rows + 2, dtype=np.int64),
        "parquet",
    )
    return sheet, spec, found


# --------------------------------------------------------------------------- to canonical text


def _xlsx_text(value: Any, dtype: str, epoch: datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, int | float):
        if dtype == "date" and math.isfinite(value) and 0 < value < 2_958_466:
            from openpyxl.utils.datetime import from_excel

            when = from_excel(value, epoch) if epoch else from_excel(value)
            if isinstance(when, datetime):
                return when.date().isoformat()
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value) if isinstance(value, float) else str(value)
    text = str(value)
    return text if text != "" else None


def _canonical_frame(sheet: _Sheet, spec: TableSpec, found: dict[int, str]) -> pd.DataFrame:
    n = len(sheet.rows)
    by_column = {column: i for i, column in found.items()}
    data: dict[str, pd.Series] = {}
    for col in spec.columns:
        i = by_column.get(col.name)
        if i is None:
            data[col.name] = pd.Series(pd.arrays.ArrowStringArray(pa.nulls(n, pa.string())))
        elif isinstance(sheet.columns, dict):
            column = sheet.columns[i]
            if pa.types.is_dictionary(column.type):
                # a pandas Categorical over the dictionary: no string per row is built
                data[col.name] = column.to_pandas().reset_index(drop=True)
            else:
                data[col.name] = pd.Series(pd.arrays.ArrowStringArray(column))
        else:
            values = sheet.columns[i]
            if sheet.encoding == "xlsx":
                values = [_xlsx_text(v, col.dtype, sheet.epoch) for v in values]
            data[col.name] = pd.Series(pd.array(values, dtype=_STRING))
    return pd.DataFrame(data, index=pd.RangeIndex(n))


def _non_blank(frame: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Rows with at least one non-blank canonical cell (blank spreadsheet rows are skipped)."""
    if frame.empty:
        return np.ones(len(frame), dtype=bool)
    filled = np.zeros(len(frame), dtype=bool)
    for name in frame.columns:
        filled |= frame[name].notna().to_numpy(dtype=bool)
    return filled


__all__ = [
    "LEDGER_SUFFIXES",
    "UNSUPPORTED_SUFFIXES",
    "SourceFile",
    "file_sha256",
    "identify_table",
    "read_source",
    "sniff_table",
]
