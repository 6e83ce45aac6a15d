"""Every kind of bad input in ``tests/data/bad_inputs``: the exact outcome, and nothing else lost.

Each case loads the corpus's valid base ledgers first, then the case's file(s), and checks
* a file-level defect: the exact message, nothing of the file stored, the store unchanged;
* a row-level defect: the exact (row, field, reason_code) rejects, the good rows of the same
  file stored, the base rows unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest

from features.ingest import IngestSummary, ingest_paths
from features.mapping import Mapping, load_mapping
from features.rawstore import connect, raw_table
from features.schema import TABLES
from tests.data.bad_inputs import make_corpus
from tests.factories import KEY, TODAY

CORPUS = Path(make_corpus.__file__).parent


@dataclass(frozen=True)
class Expect:
    """What loading one case does."""

    file_error: str | None = None  # the exact reason of a file-level refusal
    rejects: tuple[tuple[int, str, str], ...] = ()  # (row, field, reason_code)
    accepted: int = 0
    duplicates: int = 0
    reason_contains: dict[str, str] = field(default_factory=dict)  # reason_code -> text


_FORMULA = "starts like a spreadsheet formula"

EXPECTED: dict[str, Expect] = {
    "latin1_encoding": Expect(
        file_error="cannot decode the file as UTF-8 or GB18030 (invalid bytes on line 2): "
        "save it as UTF-8 or GB18030"
    ),
    "big5_encoding": Expect(
        file_error="no header matches a ledger table (read as GB18030): not a ledger, a header "
        "row missing, or the wrong encoding (Big5? save it as UTF-8 or GB18030)"
    ),
    "mixed_encoding": Expect(file_error="mixed encodings: the header is UTF-8 but line 3 is not"),
    "utf16_nul_bytes": Expect(
        file_error="binary data (NUL bytes): not a text CSV (UTF-16 or corrupt?)"
    ),
    "missing_required_column": Expect(
        file_error="missing required column 出生日期 (birth_date) of table 留守儿童基本信息 "
        "(children)"
    ),
    "unknown_headers_only": Expect(
        file_error="no header matches a ledger table (read as UTF-8): not a ledger, a header "
        "row missing, or the wrong encoding (Big5? save it as UTF-8 or GB18030)"
    ),
    "truncated_csv": Expect(
        file_error="row 4 has 5 fields but the header has 15 (a truncated or malformed line)"
    ),
    "unterminated_quote": Expect(file_error="malformed CSV at row 4: unterminated quoted field"),
    "corrupt_xlsx": Expect(
        file_error="not a readable XLSX workbook (corrupt or truncated: BadZipFile)"
    ),
    "empty_file": Expect(file_error="the file is empty (0 bytes)"),
    "old_xls_format": Expect(file_error=".xls files are not supported: save as .xlsx or .csv"),
    "header_only": Expect(),
    "unknown_village": Expect(
        rejects=((3, "village_code", "unknown_village"),),
        accepted=1,
        reason_contains={"unknown_village": "'500101999999' is not a known village"},
    ),
    "unknown_child": Expect(rejects=((4, "id_number", "unknown_child"),), accepted=2),
    "future_dates": Expect(
        rejects=((4, "recorded_at", "future_date"), (4, "visit_date", "future_date")),
        accepted=2,
        reason_contains={"future_date": "is after 2025-04-02 (in the future)"},
    ),
    "recorded_before_event": Expect(
        rejects=((4, "recorded_at", "recorded_before_event"),),
        accepted=2,
        reason_contains={
            "recorded_before_event": "录入日期 (recorded_at) 2025-03-10 is before 走访日期 "
            "(visit_date) 2025-03-20"
        },
    ),
    "impossible_date": Expect(
        rejects=((4, "visit_date", "invalid_date"),),
        accepted=2,
        reason_contains={"invalid_date": "'2025-02-30' is not a calendar date"},
    ),
    "excel_serial_in_csv": Expect(
        rejects=((4, "visit_date", "invalid_date"),),
        accepted=2,
        reason_contains={"invalid_date": "is a number, not a date"},
    ),
    "date_too_early": Expect(
        rejects=((3, "effective_date", "date_too_early"),),
        accepted=1,
        reason_contains={"date_too_early": "'1980-01-01' is before 1990-01-01"},
    ),
    "duplicates_within_file": Expect(accepted=2, duplicates=1),
    "duplicate_of_loaded_row": Expect(accepted=1, duplicates=1),
    "key_conflict_within_file": Expect(
        rejects=(
            (3, "visit_id", "duplicate_key_conflict"),
            (4, "visit_id", "duplicate_key_conflict"),
        ),
        accepted=1,
    ),
    "key_conflict_with_store": Expect(
        rejects=((3, "id_number", "duplicate_key_conflict"),),
        accepted=1,
        reason_contains={"duplicate_key_conflict": "a correction needs a later 录入日期"},
    ),
    "text_in_numeric": Expect(
        rejects=((4, "school_days", "not_a_number"),),
        accepted=2,
        reason_contains={"not_a_number": "应到校天数 (school_days) '五' is not a number"},
    ),
    "not_a_whole_number": Expect(
        rejects=((4, "school_days", "not_a_number"),),
        accepted=2,
        reason_contains={"not_a_number": "'4.5' is not a whole number"},
    ),
    "negative_number": Expect(
        rejects=((4, "excused_days", "out_of_range"),),
        accepted=2,
        reason_contains={"out_of_range": "请假天数 (excused_days) '-1' is outside 0–7"},
    ),
    "out_of_range_number": Expect(
        rejects=((3, "depression_score", "out_of_range"),),
        accepted=1,
        reason_contains={"out_of_range": "'99' is outside 0–60"},
    ),
    "absences_exceed_school_days": Expect(
        rejects=((4, "school_days", "absences_exceed_school_days"),),
        accepted=2,
        reason_contains={
            "absences_exceed_school_days": "请假天数 (excused_days) 3 + 无故缺课天数 "
            "(unexcused_days) 3 exceed 应到校天数 (school_days) 5"
        },
    ),
    "unknown_label": Expect(
        rejects=((3, "sex", "unknown_code"),),
        accepted=1,
        reason_contains={
            "unknown_code": "性别 (sex) '未知' is not a known label (allowed: 男、女)"
        },
    ),
    "not_a_boolean": Expect(rejects=((4, "child_seen", "not_a_boolean"),), accepted=2),
    "missing_required_value": Expect(
        rejects=((3, "sex", "missing_required"),),
        accepted=1,
        reason_contains={"missing_required": "性别 (sex) is required but empty"},
    ),
    "birth_date_in_future": Expect(
        rejects=((3, "birth_date", "birth_after_registration"), (3, "birth_date", "future_date")),
        accepted=1,
    ),
    "age_out_of_range": Expect(rejects=((3, "birth_date", "age_out_of_range"),), accepted=1),
    "event_before_birth": Expect(rejects=((4, "visit_date", "event_before_birth"),), accepted=2),
    "malformed_id_number": Expect(
        rejects=((4, "id_number", "invalid_id_number"), (5, "id_number", "invalid_id_number")),
        accepted=2,
    ),
    "formula_injection_xlsx": Expect(
        rejects=(
            (4, "needs", "formula_in_cell"),
            (5, "actions", "formula_in_cell"),
            (6, "needs", "formula_in_cell"),
            (7, "actions", "formula_in_cell"),
            (8, "needs", "formula_in_cell"),
        ),
        accepted=2,
        reason_contains={"formula_in_cell": _FORMULA},
    ),
    "same_file_twice": Expect(accepted=2),
}


def _load(con: duckdb.DuckDBPyConnection, path: Path, mapping: Mapping) -> IngestSummary:
    return ingest_paths(
        con, [path], mapping=mapping, key=KEY, max_future_days=1, progress=False, today=TODAY
    )


def _snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    tables = [raw_table(spec) for spec in TABLES] + ["ingested_files", "rejected_rows"]
    out = {}
    for name in tables:
        drop = " EXCLUDE (loaded_at)" if name == "ingested_files" else ""
        out[name] = con.execute(f"SELECT *{drop} FROM {name} ORDER BY ALL").fetchall()
    return out


@pytest.fixture(scope="module")
def mapping() -> Mapping:
    return load_mapping(None)


@pytest.fixture
def store(tmp_path: Path, mapping: Mapping) -> Iterator[duckdb.DuckDBPyConnection]:
    """A store holding the corpus's base ledgers (villages 0-4, children 0-4)."""
    con = connect(tmp_path / "store.duckdb")
    summary = _load(con, CORPUS / "base", mapping)
    assert summary.accepted == {"areas": 5, "children": 5}
    yield con
    con.close()


def test_corpus_has_at_least_twenty_kinds_and_every_kind_has_an_expectation() -> None:
    assert len(make_corpus.CASES) >= 20
    assert set(EXPECTED) == set(make_corpus.CASES)
    assert sorted(p.name for p in (CORPUS / "cases").iterdir()) == sorted(make_corpus.CASES)


def test_committed_corpus_is_what_the_script_writes(tmp_path: Path) -> None:
    make_corpus.build(tmp_path)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(
        p.relative_to(CORPUS)
        for sub in ("base", "cases")
        for p in (CORPUS / sub).rglob("*")
        if p.is_file()
    )
    assert written == committed
    for rel in written:
        assert (tmp_path / rel).read_bytes() == (CORPUS / rel).read_bytes(), rel


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_bad_input_is_refused_or_rejected_exactly_and_nothing_else_is_lost(
    kind: str, store: duckdb.DuckDBPyConnection, mapping: Mapping
) -> None:
    expect = EXPECTED[kind]
    before = _snapshot(store)
    summary = _load(store, CORPUS / "cases" / kind, mapping)
    after = _snapshot(store)
    # the rows stored before are all still there, unchanged
    for name, rows in before.items():
        assert set(rows) <= set(after[name]), name
    if expect.file_error is not None:
        assert [reason for _, reason in summary.file_errors] == [expect.file_error]
        assert after == before  # nothing of the refused file, not even its ingested_files row
        assert summary.files_loaded == 0
        return
    assert summary.file_errors == []
    assert summary.files_loaded == 1
    rejects = store.execute(
        'SELECT "row", field, reason_code, reason FROM rejected_rows ORDER BY "row", field, '
        "reason_code"
    ).fetchall()
    assert tuple((r, f, c) for r, f, c, _ in rejects) == tuple(sorted(expect.rejects))
    for code, text in expect.reason_contains.items():
        reasons = [reason for _, _, c, reason in rejects if c == code]
        assert reasons and all(text in reason for reason in reasons), (code, reasons)
    assert sum(summary.accepted.values()) == expect.accepted
    assert summary.duplicates_skipped == expect.duplicates
    assert sum(summary.rejected.values()) == len({r for r, _, _ in expect.rejects})
    reasons_count: dict[str, int] = {}
    for _, _, code in expect.rejects:
        reasons_count[code] = reasons_count.get(code, 0) + 1
    assert summary.as_dict()["rejects_by_reason"] == dict(sorted(reasons_count.items()))
    # the good rows of the same file are stored, under the file's spreadsheet rows
    (file_id, table, accepted) = store.execute(
        "SELECT file_id, table_name, rows_accepted FROM ingested_files ORDER BY file_id DESC "
        "LIMIT 1"
    ).fetchall()[0]
    stored = store.execute(f"SELECT count(*) FROM raw_{table} WHERE _file_id = ?", [file_id])
    assert stored.fetchall()[0][0] == accepted == expect.accepted
    rejected_rows = {r for r, _, _ in expect.rejects}
    stored_rows = {
        r
        for (r,) in store.execute(
            f"SELECT _row FROM raw_{table} WHERE _file_id = ?", [file_id]
        ).fetchall()
    }
    assert not rejected_rows & stored_rows


def test_same_file_twice_is_skipped_the_second_time(
    store: duckdb.DuckDBPyConnection, mapping: Mapping
) -> None:
    case = CORPUS / "cases" / "same_file_twice"
    first = _load(store, case, mapping)
    before = _snapshot(store)
    second = _load(store, case, mapping)
    assert first.accepted == {"visits": 2}
    assert (second.files, second.files_skipped, second.files_loaded) == (1, 1, 0)
    assert second.as_dict() == {
        "files": 1,
        "accepted": {},
        "rejected": {},
        "duplicates_skipped": 0,
        "rejects_by_reason": {},
        "files_loaded": 0,
        "files_skipped": 1,
        "file_errors": [],
    }
    assert _snapshot(store) == before


def test_header_only_file_is_recorded_with_zero_rows(
    store: duckdb.DuckDBPyConnection, mapping: Mapping
) -> None:
    summary = _load(store, CORPUS / "cases" / "header_only", mapping)
    assert summary.accepted == {"visits": 0}
    rows = store.execute(
        "SELECT table_name, rows_read, rows_accepted FROM ingested_files WHERE table_name = "
        "'visits'"
    ).fetchall()
    assert rows == [("visits", 0, 0)]


def test_rejected_raw_values_hide_identity_numbers_and_names(
    store: duckdb.DuckDBPyConnection, mapping: Mapping
) -> None:
    _load(store, CORPUS / "cases" / "unknown_label", mapping)
    (raw,) = store.execute("SELECT raw_values FROM rejected_rows").fetchall()[0]
    import json

    from features.pseudonym import pseudonymise
    from tests.factories import id_number, name_of

    values = json.loads(raw)
    assert values["child_id"] == pseudonymise(id_number(11), KEY)
    assert values["household_pid"].startswith("h-")
    assert values["name"] == "***"
    assert values["sex"] == "未知"
    assert id_number(11) not in raw and name_of(11) not in raw
