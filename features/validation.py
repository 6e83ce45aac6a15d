"""Turning ledger text into typed canonical values, and validating them against the data model.

Two steps, both driven by ``features/schema.py``:

1. **Parse** each cell by its column's dtype (vectorised over a column's distinct values, which
   ledgers repeat a lot): text is NFKC-normalised and trimmed; dates accept ``YYYY-MM-DD``,
   ``YYYY/M/D``, ``YYYY.M.D``, ``YYYYMMDD`` and ``YYYY年M月D日`` (a time of day is dropped);
   numbers, booleans (spellings from the mapping) and categorical labels (mapped to codes).
   A cell that cannot be parsed is a row error, never a silent missing value.
2. **Validate** the typed frame with a pandera schema built from the same declarations:
   dtype, nullability (``required``), ``minimum``/``maximum``, allowed codes, identity-number
   format, dates neither in the future nor absurdly early, and row rules (:data:`ROW_RULES`).
   Validation is lazy, so every error of a row is reported; each becomes one reject.

A row with any error is rejected whole by the caller (``ingest.py``); its errors are the rows
of ``rejected_rows``. Reasons name the column (Chinese header and canonical name) and never
contain identity numbers or names.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pyarrow_lib
import pyarrow.compute as pc
from pandera.engines import pandas_engine

from features.mapping import Mapping, normalise_label
from features.schema import Column, TableSpec

logger = logging.getLogger(__name__)

#: Every reason code a reject can carry, with what it means. Codes are stable: reports and
#: dashboards count by them.
REASON_CODES: dict[str, str] = {
    "missing_required": "a required field is empty",
    "invalid_date": "not a date in a known format, or not a calendar date (2025-02-30)",
    "not_a_number": "not a number, or not a whole number where one is required",
    "not_a_boolean": "not a yes/no spelling the mapping knows",
    "unknown_code": "a categorical label the mapping does not know",
    "out_of_range": "a number outside the field's minimum and maximum",
    "future_date": "a date after the load date plus the allowed days",
    "date_too_early": "a date before 1990-01-01",
    "formula_in_cell": "a spreadsheet formula or formula-like text (=, +, -, @); never evaluated",
    "invalid_id_number": "not an 18-character identity number with a valid date and check digit",
    "id_number_in_field": "an identity number in a field that is not the identity field",
    "recorded_before_event": "entered in the ledger before the event happened",
    "absences_exceed_school_days": "excused plus unexcused days exceed the school days",
    "birth_after_registration": "born after the registry file was opened",
    "age_out_of_range": "older than 18 when registered as a left-behind child",
    "event_before_birth": "a record about a child dated before the child's birth",
    "unknown_village": "a village code that is not a known village area",
    "unknown_child": "a record about a child who is not in the registry",
    "duplicate_key_conflict": "same record key and entry date as another row, different values",
}

#: Dates before this are typos (a two-digit year, a wrong century), not history.
EARLIEST_DATE = date(1990, 1, 1)
#: A registered left-behind child is under 16; two years of slack for late exits.
MAX_AGE_YEARS = 18

_CHUNK_ROWS = 1_000_000
_STRING = pd.StringDtype()
_PANDERA_DTYPES: dict[str, Any] = {
    "str": _STRING,
    "text": _STRING,
    "category": _STRING,
    "int": pd.Int64Dtype(),
    "float": pd.Float64Dtype(),
    "bool": pd.BooleanDtype(),
    "date": "datetime64[s]",
}
_DATE_PATTERNS = (
    re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"),
    re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日?"),
    re.compile(r"(\d{4})(\d{2})(\d{2})"),
)
_INT = re.compile(r"([+-]?\d+)(?:\.0*)?")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_MULTI_SEPARATORS = re.compile(r"[;、,/|]")
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_ID_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)
_LONG_DIGITS = re.compile(r"\d{15,}")
#: An identity number anywhere in a text (masked in reasons and raw values).
ID_NUMBER_PATTERN = r"\d{17}[\dXx]"


@dataclass(frozen=True)
class RowRule:
    """A rule over several fields of one row, named by the reason code it rejects with.

    ``ok`` returns True where a row passes (a missing value passes: ``required`` covers it);
    ``describe`` turns the failing rows into readable reasons.
    """

    reason_code: str
    field: str
    ok: Callable[[pd.DataFrame], pd.Series]
    describe: Callable[[pd.DataFrame], list[str]]


@dataclass(frozen=True)
class Validated:
    """The result of validating one file's rows.

    Attributes
    ----------
    typed : pandas.DataFrame
        Every row with typed canonical values (a cell that failed to parse is NA); same index
        as the input (positions ``0..n-1``).
    errors : pandas.DataFrame
        One row per field error: ``position`` (index into ``typed``), ``field``,
        ``reason_code``, ``reason``. A position listed here is a rejected row.
    """

    typed: pd.DataFrame
    errors: pd.DataFrame

    @property
    def rejected_positions(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Sorted positions of the rows with at least one error."""
        return np.unique(self.errors["position"].to_numpy(dtype=np.int64))


ERROR_COLUMNS = ("position", "field", "reason_code", "reason")


def empty_errors() -> pd.DataFrame:
    """An empty error frame with the error columns."""
    return pd.DataFrame(
        {
            "position": pd.Series([], dtype=np.int64),
            "field": pd.Series([], dtype=object),
            "reason_code": pd.Series([], dtype=object),
            "reason": pd.Series([], dtype=object),
        }
    )


def errors_frame(
    positions: Any, field: str, reason_code: str, reasons: list[str] | str
) -> pd.DataFrame:
    """Build an error frame for several positions with one field and reason code."""
    pos = np.asarray(positions, dtype=np.int64)
    texts = [reasons] * len(pos) if isinstance(reasons, str) else list(reasons)
    return pd.DataFrame(
        {
            "position": pos,
            "field": [field] * len(pos),
            "reason_code": [reason_code] * len(pos),
            "reason": texts,
        }
    )


def label(col: Column) -> str:
    """How a reason names a column: its Chinese header and canonical name."""
    return f"{col.zh} ({col.name})"


def shown(col: Column, value: Any) -> str:
    """A value as a reason may show it: never for identity fields or id-like digit runs."""
    if col.pii is not None or col.dtype == "text":
        return "***"
    text = value.date().isoformat() if isinstance(value, pd.Timestamp) else str(value)
    if _LONG_DIGITS.search(text):
        return "***"
    return repr(text[:40] + ("…" if len(text) > 40 else ""))


# --------------------------------------------------------------------------- row rules


def _fmt_dates(values: pd.Series) -> list[str]:
    return [v.date().isoformat() if pd.notna(v) else "?" for v in values]


def _not_before(later: str, earlier: str) -> Callable[[pd.DataFrame], pd.Series]:
    def ok(frame: pd.DataFrame) -> pd.Series:
        a, b = frame[later], frame[earlier]
        return (a >= b) | a.isna() | b.isna()

    return ok


def _recorded_rule(spec: TableSpec) -> RowRule:
    rec, event = spec.column(spec.recorded_time), spec.column(spec.event_time)

    def describe(rows: pd.DataFrame) -> list[str]:
        return [
            f"{label(rec)} {r} is before {label(event)} {e}"
            for r, e in zip(_fmt_dates(rows[rec.name]), _fmt_dates(rows[event.name]), strict=True)
        ]

    return RowRule("recorded_before_event", rec.name, _not_before(rec.name, event.name), describe)


def _absences_ok(frame: pd.DataFrame) -> pd.Series:
    total = frame["excused_days"] + frame["unexcused_days"]
    return (total <= frame["school_days"]).fillna(True).astype(bool)


def _absences_describe(rows: pd.DataFrame) -> list[str]:
    return [
        f"请假天数 (excused_days) {e} + 无故缺课天数 (unexcused_days) {u} exceed "
        f"应到校天数 (school_days) {s}"
        for e, u, s in zip(
            rows["excused_days"], rows["unexcused_days"], rows["school_days"], strict=True
        )
    ]


def _birth_describe(rows: pd.DataFrame) -> list[str]:
    return [
        f"出生日期 (birth_date) {b} is after 建档日期 (registered_date) {r}"
        for b, r in zip(
            _fmt_dates(rows["birth_date"]), _fmt_dates(rows["registered_date"]), strict=True
        )
    ]


def _age_ok(frame: pd.DataFrame) -> pd.Series:
    born, registered = frame["birth_date"], frame["registered_date"]
    limit = born + pd.DateOffset(years=MAX_AGE_YEARS)
    return (registered < limit) | born.isna() | registered.isna()


def _age_describe(rows: pd.DataFrame) -> list[str]:
    return [
        f"出生日期 (birth_date) {b}: {MAX_AGE_YEARS} or older on 建档日期 (registered_date) {r}"
        for b, r in zip(
            _fmt_dates(rows["birth_date"]), _fmt_dates(rows["registered_date"]), strict=True
        )
    ]


#: Rules over several fields of one row, beyond the generic ``recorded_at >= event date``.
ROW_RULES: dict[str, tuple[RowRule, ...]] = {
    "attendance": (
        RowRule("absences_exceed_school_days", "school_days", _absences_ok, _absences_describe),
    ),
    "children": (
        RowRule(
            "birth_after_registration",
            "birth_date",
            _not_before("registered_date", "birth_date"),
            _birth_describe,
        ),
        RowRule("age_out_of_range", "birth_date", _age_ok, _age_describe),
    ),
}


def row_rules(spec: TableSpec) -> tuple[RowRule, ...]:
    """The row rules of a table: entry not before the event, then the table's own rules."""
    generic = (_recorded_rule(spec),) if spec.event_time != spec.recorded_time else ()
    return generic + ROW_RULES.get(spec.name, ())


# --------------------------------------------------------------------------- schema


def _matches(
    values: pd.Series, pattern: str, *, min_bytes: int = 0
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Where a (RE2) pattern matches, missing values not matching; one Arrow kernel, no Python
    per value. With ``min_bytes``, only values at least that long (in UTF-8 bytes) can match,
    and the pattern runs on those alone."""
    arr = _to_arrow(values)
    if min_bytes:
        long = pc.fill_null(pc.greater_equal(pc.binary_length(arr), min_bytes), False)
        matched = np.asarray(long.to_numpy(zero_copy_only=False), dtype=bool)
        if matched.any():
            found = pc.match_substring_regex(pc.filter(arr, long), pattern)
            matched[matched] = np.asarray(
                pc.fill_null(found, False).to_numpy(zero_copy_only=False), dtype=bool
            )
        return matched
    found = pc.match_substring_regex(arr, pattern)
    return np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False), dtype=bool)


_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def _id_numbers_ok(checksum: bool) -> Callable[[pd.Series], pd.Series]:
    """Vectorised GB 11643 check: 17 digits + digit/X, a real birth date, the check digit."""

    def ok(values: pd.Series) -> pd.Series:
        # RE2's \d is ASCII only, so a well-formed number is exactly 18 ASCII bytes
        good = _matches(values, r"^\d{17}[\dX]$")
        if checksum and good.any():
            # the 18 bytes of each well-formed number, straight from Arrow's data buffer
            kept = pc.filter(_to_arrow(values), pyarrow_lib.array(good)).combine_chunks()
            kept = kept.cast(pyarrow_lib.string())
            offsets = np.frombuffer(kept.buffers()[1], dtype=np.int32)[kept.offset :]
            start = int(offsets[0])
            raw = np.frombuffer(kept.buffers()[2], dtype=np.uint8)[start : start + 18 * len(kept)]
            chars = raw.reshape(-1, 18)
            digits = chars[:, :17] - np.uint8(48)
            # einsum in int32: an int64 matmul over millions of rows costs twenty times more
            weighted = np.einsum("ij,j->i", digits, _ID_WEIGHTS.astype(np.int32), dtype=np.int32)
            check_ok = _ID_CHECK[weighted % 11] == chars[:, 17]
            date_digits = digits[:, 6:14].astype(np.int32)
            year = date_digits[:, :4] @ np.array([1000, 100, 10, 1], dtype=np.int32)
            month = date_digits[:, 4] * 10 + date_digits[:, 5]
            day = date_digits[:, 6] * 10 + date_digits[:, 7]
            valid_month = (month >= 1) & (month <= 12)
            # the calendar of years past 2200 is taken as 2200's (no such birth is real)
            cal = np.clip(year, 1900, 2200)
            leap = ((cal % 4 == 0) & (cal % 100 != 0)) | (cal % 400 == 0)
            last_day = _DAYS_IN_MONTH[np.where(valid_month, month, 0)] + ((month == 2) & leap)
            real_date = (year >= 1900) & valid_month & (day >= 1) & (day <= last_day)
            good[good] = check_ok & real_date
        return pd.Series(good, index=values.index)

    return ok


def _multi_codes_ok(col: Column) -> Callable[[pd.Series], pd.Series]:
    alternatives = "|".join(re.escape(c.code) for c in col.codes)
    pattern = f"^(?:{alternatives})(?:;(?:{alternatives}))*$"

    def ok(values: pd.Series) -> pd.Series:
        return pd.Series(_matches(values, pattern), index=values.index)

    return ok


def _column_checks(col: Column, *, latest: pd.Timestamp, id_checksum: bool) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if col.minimum is not None and col.maximum is not None:
        checks.append(
            pa.Check.in_range(col.minimum, col.maximum, name="out_of_range", error="out_of_range")
        )
    elif col.minimum is not None:
        checks.append(pa.Check.ge(col.minimum, name="out_of_range", error="out_of_range"))
    elif col.maximum is not None:
        checks.append(pa.Check.le(col.maximum, name="out_of_range", error="out_of_range"))
    if col.dtype == "category":
        if col.multi:
            checks.append(pa.Check(_multi_codes_ok(col), name="unknown_code", error="unknown_code"))
        else:
            checks.append(
                pa.Check.isin(sorted(col.code_set()), name="unknown_code", error="unknown_code")
            )
    if col.dtype == "date":
        checks.append(pa.Check.le(latest, name="future_date", error="future_date"))
        checks.append(
            pa.Check.ge(pd.Timestamp(EARLIEST_DATE), name="date_too_early", error="date_too_early")
        )
    if col.pii is None and col.dtype in ("str", "text"):
        # an identity number pasted into another column would reach the store unhashed
        checks.append(
            pa.Check(
                lambda s: pd.Series(~_matches(s, ID_NUMBER_PATTERN, min_bytes=18), index=s.index),
                name="id_number_in_field",
                error="id_number_in_field",
            )
        )
    if col.pii == "id_number":
        checks.append(
            pa.Check(
                _id_numbers_ok(id_checksum), name="invalid_id_number", error="invalid_id_number"
            )
        )
    return checks


def build_schema(
    spec: TableSpec, *, load_date: date, max_future_days: int, id_checksum: bool = True
) -> pa.DataFrameSchema:
    """Build the pandera schema of a ledger table from its declaration in ``schema.py``.

    Parameters
    ----------
    spec : TableSpec
        The table.
    load_date : date
        Today, for the load: no date may lie after ``load_date + max_future_days``.
    max_future_days : int
        Days of clock or time-zone slack allowed past the load date.
    id_checksum : bool
        Verify the identity number's embedded birth date and check digit.

    Returns
    -------
    pandera.pandas.DataFrameSchema
        Checks named by their reason code (:data:`REASON_CODES`).
    """
    latest = pd.Timestamp(load_date + timedelta(days=max_future_days))
    columns = {
        col.name: pa.Column(
            _PANDERA_DTYPES[col.dtype],
            nullable=not col.required,
            checks=_column_checks(col, latest=latest, id_checksum=id_checksum),
            title=col.zh,
            description=col.en,
        )
        for col in spec.columns
    }
    checks = [
        pa.Check(rule.ok, name=rule.reason_code, error=rule.reason_code) for rule in row_rules(spec)
    ]
    return pa.DataFrameSchema(columns, checks=checks, name=spec.name, strict=False, coerce=False)


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Parsed:
    values: Any  # array-like aligned with the uniques
    reasons: list[str | None]  # reason code per unique, None where fine


def _normalise(uniques: Any) -> list[str]:
    arr = pyarrow_lib.array(uniques, type=pyarrow_lib.string())
    arr = pc.utf8_trim_whitespace(pc.utf8_normalize(arr, form="NFKC"))
    return [str(v) for v in arr.to_pylist()]


def _formula_like(values: list[str]) -> np.ndarray[Any, np.dtype[np.bool_]]:
    arr = pyarrow_lib.array(values, type=pyarrow_lib.string())
    starts = pc.match_substring_regex(arr, r"^[=@]").to_numpy(zero_copy_only=False)
    signed = pc.match_substring_regex(arr, r"^[+\-].").to_numpy(zero_copy_only=False)
    number = pc.match_substring_regex(arr, r"^[+\-]?\d+(\.\d+)?$").to_numpy(zero_copy_only=False)
    return np.asarray(starts | (signed & ~number), dtype=bool)


def _parse_date(text: str) -> tuple[date | None, str | None]:
    for pattern in _DATE_PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            year, month, day = (int(g) for g in match.groups())
            try:
                return date(year, month, day), None
            except ValueError:
                return None, "invalid_date"
    return None, "invalid_date"


def _parse_uniques(texts: list[str], col: Column, spec: TableSpec, mapping: Mapping) -> _Parsed:
    reasons: list[str | None] = [None] * len(texts)
    if col.dtype == "category":
        labels = mapping.values.get(spec.name, {}).get(col.name, {})
        out: list[str] = []
        order = {c.code: i for i, c in enumerate(col.codes)}
        for text in texts:
            if col.multi:
                parts = [p for p in _MULTI_SEPARATORS.split(text.replace("；", ";")) if p.strip()]
                codes = [labels.get(normalise_label(p)) for p in parts]
                if parts and all(c is not None for c in codes):
                    known = sorted({c for c in codes if c is not None}, key=order.__getitem__)
                    out.append(";".join(known))
                    continue
                out.append(text)
            else:
                # an unknown label stays as written, so the schema's isin check reports it
                out.append(labels.get(normalise_label(text), text))
        return _Parsed(pd.array(out, dtype=_STRING), reasons)
    if col.dtype == "bool":
        flags: list[bool | None] = []
        for i, text in enumerate(texts):
            flag = mapping.booleans.get(normalise_label(text))
            if flag is None:
                reasons[i] = "not_a_boolean"
            flags.append(flag)
        return _Parsed(pd.array(flags, dtype=pd.BooleanDtype()), reasons)
    if col.dtype == "int":
        ints: list[int | None] = []
        for i, text in enumerate(texts):
            match = _INT.fullmatch(text)
            if match is None:
                reasons[i] = "not_a_number"
                ints.append(None)
            else:
                ints.append(int(match.group(1)))
        return _Parsed(pd.array(ints, dtype=pd.Int64Dtype()), reasons)
    if col.dtype == "float":
        floats: list[float | None] = []
        for i, text in enumerate(texts):
            if _FLOAT.fullmatch(text) is None:
                reasons[i] = "not_a_number"
                floats.append(None)
            else:
                floats.append(float(text))
        return _Parsed(pd.array(floats, dtype=pd.Float64Dtype()), reasons)
    if col.dtype == "date":
        days: list[Any] = []
        for i, text in enumerate(texts):
            when, reason = _parse_date(text)
            reasons[i] = reason
            days.append(np.datetime64(when, "s") if when is not None else np.datetime64("NaT"))
        return _Parsed(np.array(days, dtype="datetime64[s]"), reasons)
    raise ValueError(f"{spec.name}.{col.name}: unknown dtype {col.dtype!r}")


_PARSE_MESSAGES = {
    "invalid_date": "is not a date (expected YYYY-MM-DD, YYYY/M/D or YYYY年M月D日)",
    "not_a_number": "is not a number",
    "not_a_boolean": "is not a yes/no value (是/否)",
    "formula_in_cell": "starts like a spreadsheet formula (=, +, -, @); formulas are not data "
    "and are never evaluated",
}


def _parse_reason(col: Column, reason: str, text: str) -> str:
    if reason == "not_a_number" and col.dtype == "int" and _FLOAT.fullmatch(text):
        return f"{label(col)} {shown(col, text)} is not a whole number"
    if reason == "invalid_date":
        when = _DATE_PATTERNS[0].fullmatch(text) or _DATE_PATTERNS[1].fullmatch(text)
        if when is not None:
            return f"{label(col)} {shown(col, text)} is not a calendar date"
        if text.isdigit() and len(text) <= 6:
            return (
                f"{label(col)} {shown(col, text)} is a number, not a date (an Excel serial date "
                "in a CSV? format the column as a date)"
            )
    if reason == "formula_in_cell":
        return f"{label(col)} {_PARSE_MESSAGES[reason]}"
    return f"{label(col)} {shown(col, text)} {_PARSE_MESSAGES[reason]}"


def _to_arrow(values: pd.Series) -> pyarrow_lib.ChunkedArray:
    array = values.array
    if hasattr(array, "__arrow_array__"):
        out = array.__arrow_array__()
        chunked = (
            out if isinstance(out, pyarrow_lib.ChunkedArray) else pyarrow_lib.chunked_array([out])
        )
        return chunked.cast(pyarrow_lib.string())
    return pyarrow_lib.chunked_array(
        [pyarrow_lib.array(values, type=pyarrow_lib.string(), from_pandas=True)]
    )


def _parse_text_column(raw: pd.Series, col: Column) -> tuple[pd.Series, pd.DataFrame | None]:
    """Text columns are often all distinct (ids, record numbers): stay in Arrow, no Python."""
    arr = _to_arrow(raw)
    if not pc.all(pc.string_is_ascii(arr)).as_py():
        arr = pc.utf8_normalize(arr, form="NFKC")  # NFKC leaves ASCII as it is
    arr = pc.utf8_trim_whitespace(arr)
    if col.pii == "id_number":
        arr = pc.utf8_upper(arr)
    formula = _formula_mask(arr)
    drop = pc.or_(formula, pc.fill_null(pc.equal(arr, ""), False))
    if pc.any(drop).as_py():
        arr = pc.if_else(drop, pyarrow_lib.scalar(None, pyarrow_lib.string()), arr)
    values = pd.Series(pd.arrays.ArrowStringArray(arr), index=raw.index)
    bad = np.flatnonzero(formula.to_numpy(zero_copy_only=False))
    if not len(bad):
        return values, None
    found = errors_frame(
        raw.index.to_numpy()[bad],
        col.name,
        "formula_in_cell",
        _parse_reason(col, "formula_in_cell", ""),
    )
    return values, found


def _formula_mask(arr: Any) -> Any:
    """Cells that start like a spreadsheet formula: ``=`` or ``@``, or a sign not followed by
    a plain number (``-3`` is a number, ``+SUM(A1)`` and ``--`` are not)."""
    candidate = pc.fill_null(pc.match_substring_regex(arr, r"^[=@+\-]"), False)
    if not pc.any(candidate).as_py():
        return candidate  # the usual case: one scan, no cell starts like a formula
    starts = pc.match_substring_regex(arr, r"^[=@]")
    signed = pc.and_(
        pc.match_substring_regex(arr, r"^[+\-]."),
        pc.invert(pc.match_substring_regex(arr, r"^[+\-]?\d+(\.\d+)?$")),
    )
    return pc.fill_null(pc.or_(starts, signed), False)


def _parse_coded_column(
    raw: pd.Series, col: Column, spec: TableSpec, mapping: Mapping
) -> tuple[pd.Series, pd.DataFrame | None]:
    """Dates, numbers, booleans and labels repeat a lot: parse each distinct value once."""
    if isinstance(raw.dtype, pd.CategoricalDtype):
        # read dictionary-encoded (Parquet): the codes are the factorisation already; a
        # category no row uses is parsed too, but only rows report errors
        codes = raw.cat.codes.to_numpy(dtype=np.intp)
        uniques: Any = [str(c) for c in raw.cat.categories]
    else:
        codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    texts = _normalise(uniques) if len(uniques) else []
    empty = np.array([t == "" for t in texts], dtype=bool)
    formula = _formula_like(texts) if texts else np.zeros(0, dtype=bool)
    parsed = _parse_uniques(texts, col, spec, mapping)
    reasons = np.array(
        [
            "formula_in_cell" if formula[i] else (None if empty[i] else parsed.reasons[i])
            for i in range(len(texts))
        ],
        dtype=object,
    )
    # White space only is an empty cell; an unparsable cell is kept out of the typed value
    # and reported, never turned into a plausible value.
    failed = np.array([r is not None for r in reasons], dtype=bool)
    values = pd.array(parsed.values)
    if (empty | failed).any():
        values = values.copy()
        values[empty | failed] = None
    typed = pd.Series(values.take(codes, allow_fill=True), index=raw.index)
    bad_uniques = np.flatnonzero(failed)
    if not len(bad_uniques):
        return typed, None
    bad_rows = np.flatnonzero(np.isin(codes, bad_uniques))
    row_codes = codes[bad_rows]
    found = pd.DataFrame(
        {
            "position": raw.index.to_numpy()[bad_rows].astype(np.int64),
            "field": col.name,
            "reason_code": reasons[row_codes],
            "reason": [_parse_reason(col, str(reasons[c]), texts[c]) for c in row_codes],
        }
    )
    return typed, found


def parse_frame(
    frame: pd.DataFrame, spec: TableSpec, mapping: Mapping
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse a frame of ledger text into typed canonical columns.

    Parameters
    ----------
    frame : pandas.DataFrame
        Canonical columns of text (``sources.SourceFile.frame``).
    spec : TableSpec
        The table.
    mapping : Mapping
        Label and boolean spellings.

    Returns
    -------
    tuple of pandas.DataFrame
        The typed frame (cells that failed to parse are NA; empty cells are NA) and the
        parse errors (:data:`ERROR_COLUMNS`).
    """
    typed: dict[str, Any] = {}
    errors: list[pd.DataFrame] = []
    for col in spec.columns:
        if col.dtype in ("str", "text"):
            typed[col.name], found = _parse_text_column(frame[col.name], col)
        else:
            typed[col.name], found = _parse_coded_column(frame[col.name], col, spec, mapping)
        if found is not None:
            errors.append(found)
    out = pd.DataFrame(typed, index=frame.index)
    return out, (pd.concat(errors, ignore_index=True) if errors else empty_errors())


# --------------------------------------------------------------------------- validation


def _failure_reason(col: Column, check: str, value: Any, latest: date) -> str:
    if check == "missing_required":
        return f"{label(col)} is required but empty"
    if check == "out_of_range":
        low = "" if col.minimum is None else f"{col.minimum:g}"
        high = "" if col.maximum is None else f"{col.maximum:g}"
        return f"{label(col)} {shown(col, value)} is outside {low}–{high}"
    if check == "unknown_code":
        allowed = "、".join(c.zh for c in col.codes)
        return f"{label(col)} {shown(col, value)} is not a known label (allowed: {allowed})"
    if check == "future_date":
        return f"{label(col)} {shown(col, value)} is after {latest.isoformat()} (in the future)"
    if check == "date_too_early":
        return f"{label(col)} {shown(col, value)} is before {EARLIEST_DATE.isoformat()}"
    if check == "id_number_in_field":
        return f"{label(col)} holds what looks like an identity number (18 characters)"
    if check == "invalid_id_number":
        return (
            f"{label(col)} is not a valid 18-character identity number (format, birth date or "
            "check digit)"
        )
    return f"{label(col)}: {REASON_CODES.get(check, check)}"


def _check_failed(output: Any, index: pd.Index) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Rows a pandera check output fails, aligned with ``index``.

    A check with ``ignore_na`` sees only the non-missing values, so its output covers a subset
    of the rows; the rows it did not see pass, as in pandera. A missing output passes too
    (pandera's ``all()`` skips it); a scalar output applies to every row.
    """
    if isinstance(output, bool | np.bool_):
        return np.full(len(index), not bool(output))
    passed: np.ndarray[Any, np.dtype[np.bool_]] = output.to_numpy(dtype=bool, na_value=True)
    if output.index.equals(index):
        return ~passed
    failed = np.zeros(len(index), dtype=bool)
    if isinstance(index, pd.RangeIndex) and index.step == 1:
        # positions from labels without a hash lookup (a frame's rows are 0..n-1 or a chunk)
        where = output.index.to_numpy(dtype=np.int64) - index.start
    else:
        where = index.get_indexer(output.index)
    failed[where] = ~passed
    return failed


@dataclass(frozen=True)
class SchemaFailure:
    """The rows of a frame that fail one check of a pandera schema.

    Attributes
    ----------
    field : str
        The column (for a row rule: the schema's name; the rule names its own field).
    check : str
        The check's error code: a :data:`REASON_CODES` key, or ``not_nullable``.
    rows : numpy.ndarray of bool
        True where a row fails.
    row_rule : bool
        A frame-wide check over several fields of a row (:data:`ROW_RULES`).
    """

    field: str
    check: str
    rows: np.ndarray[Any, np.dtype[np.bool_]]
    row_rule: bool = False


def schema_failures(schema: pa.DataFrameSchema, typed: pd.DataFrame) -> list[SchemaFailure]:
    """Run a pandera schema over every row; return the checks that fail, with their rows.

    Every column's dtype, nullability and checks, then the frame-wide row rules, each run by
    pandera's check backend (``Check.__call__``) over all rows at once, as
    ``schema.validate`` does. What is left out is pandera's collection of failure cases into
    a report (``SchemaErrors.failure_cases``): it costs milliseconds per failing check and
    grows with the frame, which made it most of the time of validating a file. The caller
    builds its reasons for the failing rows only.

    Parameters
    ----------
    schema : pandera.pandas.DataFrameSchema
        A schema from :func:`build_schema`.
    typed : pandas.DataFrame
        Typed rows (``parse_frame``).

    Returns
    -------
    list of SchemaFailure
        In schema order: columns (nullability, then checks), then row rules; only checks that
        at least one row fails.

    Raises
    ------
    RuntimeError
        If a column is missing or has the wrong dtype (parsing produced the wrong type: a bug,
        not bad data), or a check does not look at one row at a time.
    """
    failures: list[SchemaFailure] = []

    def add(field: str, check: str, rows: np.ndarray[Any, Any], row_rule: bool = False) -> None:
        if rows.any():
            failures.append(SchemaFailure(field, check, rows, row_rule))

    for name, column in schema.columns.items():
        if name not in typed.columns:
            raise RuntimeError(f"{schema.name}: parsing produced no column {name!r}")
        values = typed[name]
        if not column.dtype.check(pandas_engine.Engine.dtype(values.dtype)):
            raise RuntimeError(
                f"{schema.name}.{name}: parsed as {values.dtype}, the schema wants {column.dtype}"
            )
        if column.unique or any(c.groupby is not None for c in column.checks):
            raise RuntimeError(f"{schema.name}.{name}: a check across rows cannot run per row")
        if not column.nullable:
            add(name, "not_nullable", values.isna().to_numpy(dtype=bool))
        for check in column.checks:
            add(name, str(check.error), _check_failed(check(values).check_output, typed.index))
    for check in schema.checks:
        output = check(typed).check_output
        if check.ignore_na and not isinstance(output, bool | np.bool_):
            # pandera lets a row whose values are all missing pass a frame-wide check
            output = output | typed.isna().all(axis="columns")
        add(str(schema.name), str(check.error), _check_failed(output, typed.index), True)
    return failures


def _schema_errors(
    typed: pd.DataFrame,
    spec: TableSpec,
    schema: pa.DataFrameSchema,
    parse_errors: pd.DataFrame,
    latest: date,
) -> pd.DataFrame:
    failures = schema_failures(schema, typed)
    if not failures:
        return empty_errors()
    unknown = {f.check for f in failures} - {*REASON_CODES, "not_nullable"}
    if unknown:
        # a check whose failures are not a known reason would reach rejects unexplained
        raise RuntimeError(f"{spec.name}: schema failures that are not data errors: {unknown}")
    # a cell that did not parse is NA, so it also fails `required`: its parse error says more
    parsed_bad: dict[str, set[int]] = {}
    for position, field_name in zip(
        parse_errors["position"].tolist(), parse_errors["field"].tolist(), strict=True
    ):
        parsed_bad.setdefault(field_name, set()).add(position)
    rules = {rule.reason_code: rule for rule in row_rules(spec)}
    index = typed.index.to_numpy()
    out: list[pd.DataFrame] = []
    for failure in failures:
        positions = index[failure.rows]
        if failure.row_rule:
            rule = rules[failure.check]
            reasons = rule.describe(typed.loc[positions])
            out.append(errors_frame(positions, rule.field, rule.reason_code, reasons))
            continue
        skip = parsed_bad.get(failure.field, set())
        keep = np.array([p not in skip for p in positions.tolist()], dtype=bool)
        positions = positions[keep]
        if not len(positions):
            continue
        col = spec.column(failure.field)
        code = "missing_required" if failure.check == "not_nullable" else failure.check
        values = typed[failure.field].array[failure.rows][keep].tolist()
        reasons_list = [_failure_reason(col, code, v, latest) for v in values]
        out.append(errors_frame(positions, failure.field, code, reasons_list))
    return pd.concat(out, ignore_index=True) if out else empty_errors()


_SCRATCH = threading.local()


def _scratch() -> duckdb.DuckDBPyConnection:
    """This thread's in-memory DuckDB connection, for grouping millions of keys."""
    con: duckdb.DuckDBPyConnection | None = getattr(_SCRATCH, "con", None)
    if con is None:
        con = duckdb.connect(config={"memory_limit": "1GB"})
        _SCRATCH.con = con
    return con


def _repeated_keys(typed: pd.DataFrame, keys: list[str], clean: np.ndarray[Any, Any]) -> pd.Index:
    """Labels of the clean rows whose key occurs more than once among the clean rows.

    DuckDB groups a million string keys several times faster than ``DataFrame.duplicated``
    and reads the columns from Arrow without copying them. Missing key values group
    together, as in pandas.
    """
    frame = pyarrow_lib.Table.from_pandas(typed[keys], preserve_index=False)
    frame = frame.append_column("_label", pyarrow_lib.array(typed.index.to_numpy()))
    frame = frame.filter(pyarrow_lib.array(np.asarray(clean, dtype=bool)))
    cols = ", ".join(f'"{k}"' for k in keys)
    same = " AND ".join(f'f."{k}" IS NOT DISTINCT FROM d."{k}"' for k in keys)
    con = _scratch()
    con.register("_keys", frame)
    try:
        found = con.sql(
            f"""SELECT f._label FROM _keys f
                SEMI JOIN (SELECT {cols} FROM _keys GROUP BY ALL HAVING count(*) > 1) d
                ON {same}
                ORDER BY f._label"""
        ).fetchnumpy()
    finally:
        con.unregister("_keys")
    return pd.Index(np.asarray(found["_label"], dtype=np.int64))


def key_conflicts(
    typed: pd.DataFrame, spec: TableSpec, clean: np.ndarray[Any, Any]
) -> pd.DataFrame:
    """Rows sharing a record key and entry date with another row of different values.

    Neither row can be trusted over the other (a correction carries a later ``recorded_at``),
    so every row of a conflicting group is rejected. Only rows without other errors count.

    Parameters
    ----------
    typed : pandas.DataFrame
        Typed rows.
    spec : TableSpec
        The table (its ``key`` and ``recorded_time``).
    clean : numpy.ndarray of bool
        Rows without other errors.

    Returns
    -------
    pandas.DataFrame
        Errors (:data:`ERROR_COLUMNS`) with reason ``duplicate_key_conflict``.
    """
    if not spec.key or not clean.any():
        return empty_errors()
    keys = [*spec.key, spec.recorded_time]
    # hashing whole rows is costly, and so is copying them: find the clean rows whose key
    # repeats from the key columns alone, then look at those rows only
    repeated = _repeated_keys(typed, keys, clean)
    if not len(repeated):
        return empty_errors()
    rows = typed.loc[repeated]
    fingerprint = pd.util.hash_pandas_object(rows, index=False)
    groups = rows[keys].assign(_fp=fingerprint.to_numpy())
    distinct = groups.groupby(keys, dropna=False, sort=False)["_fp"].transform("nunique")
    conflicting = distinct.to_numpy() > 1
    if not conflicting.any():
        return empty_errors()
    positions = rows.index.to_numpy()[conflicting]
    key_label = " + ".join(label(spec.column(k)) for k in keys)
    return errors_frame(
        positions,
        spec.key[0],
        "duplicate_key_conflict",
        f"another row has the same {key_label} but different values",
    )


def validate_frame(
    frame: pd.DataFrame,
    spec: TableSpec,
    mapping: Mapping,
    *,
    load_date: date,
    max_future_days: int,
    chunk_rows: int = _CHUNK_ROWS,
) -> Validated:
    """Parse and validate one file's rows against the table's declaration.

    Parameters
    ----------
    frame : pandas.DataFrame
        Canonical columns of text, index ``0..n-1``.
    spec : TableSpec
        The table.
    mapping : Mapping
        Label and boolean spellings, and whether identity numbers' check digits are verified.
    load_date : date
        The day of the load (the reference for ``future_date``).
    max_future_days : int
        Days past the load date a date may lie.
    chunk_rows : int
        Rows validated at a time (bounds the memory of pandera's failure cases).

    Returns
    -------
    Validated
        Typed rows and their errors; within-file key conflicts included.
    """
    schema = build_schema(
        spec,
        load_date=load_date,
        max_future_days=max_future_days,
        id_checksum=mapping.id_number_checksum,
    )
    latest = load_date + timedelta(days=max_future_days)
    typed_parts: list[pd.DataFrame] = []
    error_parts: list[pd.DataFrame] = []
    for start in range(0, max(len(frame), 1), chunk_rows):
        chunk = frame.iloc[start : start + chunk_rows]
        typed, parse_errors = parse_frame(chunk, spec, mapping)
        error_parts.append(parse_errors)
        error_parts.append(_schema_errors(typed, spec, schema, parse_errors, latest))
        typed_parts.append(typed)
    typed_all = pd.concat(typed_parts) if len(typed_parts) > 1 else typed_parts[0]
    errors = pd.concat(error_parts, ignore_index=True)
    clean = np.ones(len(typed_all), dtype=bool)
    clean[errors["position"].to_numpy(dtype=np.int64)] = False
    conflicts = key_conflicts(typed_all, spec, clean)
    if len(conflicts):
        errors = pd.concat([errors, conflicts], ignore_index=True)
    errors = errors.sort_values(["position", "field"], kind="stable", ignore_index=True)
    logger.debug(
        "validated", extra={"table": spec.name, "rows": len(typed_all), "errors": len(errors)}
    )
    return Validated(typed=typed_all, errors=errors)


__all__ = [
    "EARLIEST_DATE",
    "ERROR_COLUMNS",
    "ID_NUMBER_PATTERN",
    "REASON_CODES",
    "ROW_RULES",
    "RowRule",
    "SchemaFailure",
    "Validated",
    "build_schema",
    "empty_errors",
    "errors_frame",
    "key_conflicts",
    "label",
    "parse_frame",
    "row_rules",
    "schema_failures",
    "shown",
    "validate_frame",
]
