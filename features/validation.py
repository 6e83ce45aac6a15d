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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pyarrow_lib
import pyarrow.compute as pc

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

_CHUNK_ROWS = 250_000
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


def _id_numbers_ok(checksum: bool) -> Callable[[pd.Series], pd.Series]:
    """Vectorised GB 11643 check: 17 digits + digit/X, a real birth date, the check digit."""

    def ok(values: pd.Series) -> pd.Series:
        result = values.str.fullmatch(r"\d{17}[\dX]").fillna(False).astype(bool)
        if not checksum or not result.any():
            return result
        good = result.to_numpy(copy=True)
        # the 18 ASCII bytes of each well-formed number, straight from Arrow's data buffer
        kept = pc.filter(_to_arrow(values), pyarrow_lib.array(good)).combine_chunks()
        kept = kept.cast(pyarrow_lib.string())
        offsets = np.frombuffer(kept.buffers()[1], dtype=np.int32)[kept.offset :]
        start = int(offsets[0])
        raw = np.frombuffer(kept.buffers()[2], dtype=np.uint8)[start : start + 18 * len(kept)]
        chars = raw.reshape(-1, 18)
        digits = chars[:, :17].astype(np.int64) - 48
        check_ok = _ID_CHECK[digits @ _ID_WEIGHTS % 11] == chars[:, 17]
        year = digits[:, 6:10] @ np.array([1000, 100, 10, 1])
        month = digits[:, 10:12] @ np.array([10, 1])
        day = digits[:, 12:14] @ np.array([10, 1])
        in_range = (year >= 1900) & (month >= 1) & (month <= 12) & (day >= 1)
        starts = (
            (np.clip(year, 1900, 2200) - 1970).astype("datetime64[Y]")
            + (np.clip(month, 1, 12) - 1).astype("timedelta64[M]")
        ).astype("datetime64[D]")
        next_month = (starts.astype("datetime64[M]") + np.timedelta64(1, "M")).astype(
            "datetime64[D]"
        )
        days_in_month = (next_month - starts).astype(np.int64)
        good[good] = check_ok & in_range & (day <= days_in_month)
        return pd.Series(good, index=values.index)

    return ok


def _multi_codes_ok(col: Column) -> Callable[[pd.Series], pd.Series]:
    alternatives = "|".join(re.escape(c.code) for c in col.codes)
    pattern = f"(?:{alternatives})(?:;(?:{alternatives}))*"

    def ok(values: pd.Series) -> pd.Series:
        return values.str.fullmatch(pattern).fillna(False).astype(bool)

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
                lambda s: ~s.str.contains(ID_NUMBER_PATTERN, regex=True).fillna(False).astype(bool),
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
    arr = pc.utf8_trim_whitespace(pc.utf8_normalize(_to_arrow(raw), form="NFKC"))
    if col.pii == "id_number":
        arr = pc.utf8_upper(arr)
    starts = pc.match_substring_regex(arr, r"^[=@]")
    signed = pc.and_(
        pc.match_substring_regex(arr, r"^[+\-]."),
        pc.invert(pc.match_substring_regex(arr, r"^[+\-]?\d+(\.\d+)?$")),
    )
    formula = pc.fill_null(pc.or_(starts, signed), False)
    drop = pc.or_(formula, pc.fill_null(pc.equal(arr, ""), False))
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


def _parse_coded_column(
    raw: pd.Series, col: Column, spec: TableSpec, mapping: Mapping
) -> tuple[pd.Series, pd.DataFrame | None]:
    """Dates, numbers, booleans and labels repeat a lot: parse each distinct value once."""
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


def _schema_errors(
    typed: pd.DataFrame,
    spec: TableSpec,
    schema: pa.DataFrameSchema,
    parse_errors: pd.DataFrame,
    latest: date,
) -> pd.DataFrame:
    try:
        schema.validate(typed, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return empty_errors()
    # A failure without a row (a dtype mismatch, a check that raised) is a bug in parsing or
    # in a check, not bad data: it must not pass as "no errors".
    unexpected = cases[
        cases["index"].isna()
        | (
            (cases["schema_context"] == "Column")
            & ~cases["check"].isin([*REASON_CODES, "not_nullable"])
        )
    ]
    if len(unexpected):
        # a dtype failure means parsing produced the wrong type: a bug, not bad data
        raise RuntimeError(
            f"{spec.name}: schema failures that are not data errors: "
            f"{sorted(set(unexpected['check'].astype(str)))}"
        )
    out: list[pd.DataFrame] = []
    columns = cases[cases["schema_context"] == "Column"]
    if len(columns):
        checks = columns["check"].replace({"not_nullable": "missing_required"})
        parsed_bad = set(
            zip(parse_errors["position"].tolist(), parse_errors["field"].tolist(), strict=True)
        )
        positions = columns["index"].astype(np.int64).tolist()
        fields = columns["column"].tolist()
        keep = [(p, f) not in parsed_bad for p, f in zip(positions, fields, strict=True)]
        by_name = {c.name: c for c in spec.columns}
        rows = [
            (p, f, c, _failure_reason(by_name[f], c, v, latest))
            for p, f, c, v, k in zip(
                positions,
                fields,
                checks.tolist(),
                columns["failure_case"].tolist(),
                keep,
                strict=True,
            )
            if k
        ]
        out.append(pd.DataFrame(rows, columns=list(ERROR_COLUMNS)))
    frame_cases = cases[cases["schema_context"] == "DataFrameSchema"]
    if len(frame_cases):
        rules = {rule.reason_code: rule for rule in row_rules(spec)}
        for code, group in frame_cases.groupby("check", sort=False):
            rule = rules[str(code)]
            positions_arr = np.unique(group["index"].astype(np.int64).to_numpy())
            reasons = rule.describe(typed.loc[positions_arr])
            out.append(errors_frame(positions_arr, rule.field, rule.reason_code, reasons))
    return pd.concat(out, ignore_index=True) if out else empty_errors()


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
    rows = typed.loc[clean]
    # hashing whole rows is costly: look only at rows whose key repeats
    rows = rows.loc[rows.duplicated(subset=keys, keep=False).to_numpy()]
    if rows.empty:
        return empty_errors()
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
    "Validated",
    "build_schema",
    "empty_errors",
    "errors_frame",
    "key_conflicts",
    "label",
    "parse_frame",
    "row_rules",
    "shown",
    "validate_frame",
]
