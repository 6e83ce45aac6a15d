"""Reading ledger files: encodings, formats, row numbers, table identification."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.mapping import Mapping, load_mapping
from features.schema import ATTENDANCE, CHILDREN, ENROLMENTS, RESULTS, VISITS
from features.sources import identify_table, read_source, sniff_table
from shouhu.errors import SourceFileError
from tests.factories import id_number, ledger_csv, ledger_row, write_ledger, write_xlsx


@pytest.fixture(scope="module")
def mapping() -> Mapping:
    return load_mapping(None)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk"])
def test_csv_in_each_encoding_reads_chinese_headers_and_labels(
    tmp_path: Path, mapping: Mapping, encoding: str
) -> None:
    path = tmp_path / "台账.csv"
    path.write_bytes(ledger_csv(CHILDREN, [ledger_row(CHILDREN, 1)], encoding=encoding))
    source = read_source(path, mapping)
    assert source.table is CHILDREN
    assert source.encoding == {"gbk": "gb18030"}.get(encoding, encoding)
    assert source.frame.loc[0, "sex"] == "男"
    assert source.frame.loc[0, "id_number"] == id_number(1)
    assert list(source.rows) == [2]


def test_row_numbers_count_blank_lines_as_a_spreadsheet_does(
    tmp_path: Path, mapping: Mapping
) -> None:
    lines = ledger_csv(VISITS, [ledger_row(VISITS, i) for i in range(3)]).split(b"\r\n")
    path = tmp_path / "走访记录_2025-03.csv"
    path.write_bytes(b"\r\n".join([lines[0], lines[1], b"", lines[2], lines[3], b""]))
    source = read_source(path, mapping)
    assert list(source.rows) == [2, 4, 5]
    assert list(source.frame["visit_id"]) == [f"VISIT_ID-00000{i}" for i in range(3)]


def test_quoted_newlines_and_commas_stay_inside_one_cell(tmp_path: Path, mapping: Mapping) -> None:
    rows = [ledger_row(VISITS, 0, needs="学习辅导,\n心理疏导"), ledger_row(VISITS, 1)]
    path = write_ledger(tmp_path / "走访记录_2025-03.csv", VISITS, rows)
    source = read_source(path, mapping)
    assert source.frame.loc[0, "needs"] == "学习辅导,\n心理疏导"
    assert list(source.rows) == [2, 3]


def test_header_only_file_without_final_newline_has_zero_rows(
    tmp_path: Path, mapping: Mapping
) -> None:
    path = tmp_path / "走访记录_2025-03.csv"
    path.write_bytes(ledger_csv(VISITS, []).rstrip(b"\r\n"))
    source = read_source(path, mapping)
    assert source.table is VISITS and len(source.frame) == 0


def test_unknown_extra_columns_are_ignored_and_optional_ones_filled_with_missing(
    tmp_path: Path, mapping: Mapping
) -> None:
    header = ",".join([c.zh for c in CHILDREN.columns if c.name != "school_code"] + ["备注"])
    row = ledger_row(CHILDREN, 2)
    values = ",".join([str(row[c.name] or "") for c in CHILDREN.columns if c.name != "school_code"])
    path = tmp_path / "x.csv"
    path.write_text(f"{header}\n{values},联系电话13800000000\n", encoding="utf-8")
    source = read_source(path, mapping)
    assert source.ignored_headers == 1
    assert "备注" not in source.frame.columns
    assert source.frame["school_code"].isna().all()
    assert list(source.frame.columns) == list(CHILDREN.column_names)


def test_english_and_variant_headers_identify_the_table(tmp_path: Path, mapping: Mapping) -> None:
    path = write_ledger(tmp_path / "a.csv", CHILDREN, [ledger_row(CHILDREN, 3)], headers="en")
    assert read_source(path, mapping).table is CHILDREN


def test_two_headers_meaning_one_column_is_refused(tmp_path: Path, mapping: Mapping) -> None:
    headers = [c.zh for c in VISITS.columns] + ["身份证号码"]
    with pytest.raises(SourceFileError, match=r"columns 2 and 16 both mean 身份证号 \(id_number\)"):
        identify_table(headers, mapping, "x.csv")


def test_headers_fitting_several_tables_use_the_file_name_then_the_best_fit(
    mapping: Mapping,
) -> None:
    # only the columns every school table shares, plus both tables' required columns
    headers = [c.zh for c in RESULTS.columns] + [c.zh for c in ENROLMENTS.columns]
    headers = list(dict.fromkeys(headers))
    spec, _ = identify_table(headers, mapping, f"{ENROLMENTS.zh}_2025-03.csv")
    assert spec is ENROLMENTS
    spec, _ = identify_table(headers, mapping, f"{RESULTS.zh}_2025-03.csv")
    assert spec is RESULTS
    # without a hint, the table that explains more headers (enrolments: 7 of 9) wins
    spec, _ = identify_table(headers, mapping, "school.csv")
    assert spec is ENROLMENTS


def test_sniff_uses_the_file_name_then_the_header(tmp_path: Path, mapping: Mapping) -> None:
    named = write_ledger(tmp_path / f"{ATTENDANCE.zh}_2025-03.csv", ATTENDANCE, [])
    unnamed = write_ledger(tmp_path / "export.csv", VISITS, [])
    assert sniff_table(named, mapping) is ATTENDANCE
    assert sniff_table(unnamed, mapping) is VISITS
    assert sniff_table(tmp_path / "missing.xlsx", mapping) is None


def test_xlsx_cells_become_canonical_text_and_formulas_are_not_evaluated(
    tmp_path: Path, mapping: Mapping
) -> None:
    row = ledger_row(VISITS, 0)
    cells: list[list[object]] = [[c.zh for c in VISITS.columns]]
    values: dict[str, object] = dict(row)
    values["visit_date"] = datetime(2025, 3, 3)  # a date cell
    values["recorded_at"] = 45726.0  # a serial number in a date column: 2025-03-10
    values["needs"] = "=1+1"  # a formula cell: kept as its text
    values["child_seen"] = True  # a boolean cell
    cells.append([values[c.name] for c in VISITS.columns])
    second = dict(row, visit_id=12345.0, recorded_at=date(2025, 3, 11))
    cells.append([second[c.name] for c in VISITS.columns])
    path = write_xlsx(tmp_path / "走访记录_2025-03.xlsx", cells)
    source = read_source(path, mapping)
    frame = source.frame
    assert source.encoding == "xlsx"
    assert list(source.rows) == [2, 3]
    assert frame.loc[0, "visit_date"] == "2025-03-03"
    assert frame.loc[0, "recorded_at"] == "2025-03-10"
    assert frame.loc[0, "needs"] == "=1+1"
    assert frame.loc[0, "child_seen"] == "true"
    assert frame.loc[1, "visit_id"] == "12345"
    assert frame.loc[1, "recorded_at"] == "2025-03-11"


def test_parquet_ledger_reads_as_text(tmp_path: Path, mapping: Mapping) -> None:
    import pandas as pd

    frame = pd.DataFrame({c.zh: [ledger_row(ATTENDANCE, 0)[c.name]] for c in ATTENDANCE.columns})
    frame["应到校天数"] = [5]
    frame["周起始日期"] = [pd.Timestamp("2025-03-03")]
    path = tmp_path / "缺勤周报_2025-03.parquet"
    frame.to_parquet(path)
    source = read_source(path, mapping)
    assert source.table is ATTENDANCE
    assert source.frame.loc[0, "school_days"] == "5"
    assert source.frame.loc[0, "week_start"] == "2025-03-03"


def test_corrupt_parquet_is_refused(tmp_path: Path, mapping: Mapping) -> None:
    path = tmp_path / "缺勤周报_2025-03.parquet"
    path.write_bytes(b"PAR1not really")
    with pytest.raises(SourceFileError, match="not a readable Parquet file"):
        read_source(path, mapping)


import pandas as pd  # noqa: E402

_CELL = st.text(
    alphabet=st.characters(
        codec="gb18030", exclude_categories=("Cs", "Cc"), exclude_characters='\r\n"'
    ),
    max_size=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cells=st.lists(_CELL, min_size=1, max_size=5),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]),
)
def test_any_text_cell_survives_the_round_trip_in_every_encoding(
    tmp_path: Path, mapping: Mapping, cells: list[str], encoding: str
) -> None:
    rows = [ledger_row(VISITS, i, needs=cell) for i, cell in enumerate(cells)]
    path = tmp_path / "走访记录_2025-03.csv"
    path.write_bytes(ledger_csv(VISITS, rows, encoding=encoding))
    source = read_source(path, mapping)
    got = [None if v is pd.NA else v for v in source.frame["needs"].astype(object).tolist()]
    assert got == [cell or None for cell in cells]
    assert list(source.rows) == list(range(2, len(cells) + 2))


def test_parquet_coded_columns_read_as_dictionaries_hold_the_same_text(
    tmp_path: Path, mapping: Mapping
) -> None:
    rows = [
        ledger_row(VISITS, 0, visitor_role="村干部", child_seen="是"),
        ledger_row(VISITS, 1, visitor_role=None, child_seen=""),
        ledger_row(VISITS, 2, visitor_role="村干部", child_seen="否", needs="学习辅导"),
    ]
    parquet = read_source(
        write_ledger(tmp_path / "走访记录_2025-03.parquet", VISITS, rows), mapping
    )
    csv_file = read_source(write_ledger(tmp_path / "走访记录_2025-03.csv", VISITS, rows), mapping)
    # labels, dates and yes/no columns stay dictionary-encoded (a Categorical); ids are text
    assert isinstance(parquet.frame["visitor_role"].dtype, pd.CategoricalDtype)
    assert isinstance(parquet.frame["visit_date"].dtype, pd.CategoricalDtype)
    assert not isinstance(parquet.frame["id_number"].dtype, pd.CategoricalDtype)
    for column in VISITS.column_names:
        got = [None if pd.isna(v) else v for v in parquet.frame[column].astype(object)]
        want = [None if pd.isna(v) else v for v in csv_file.frame[column].astype(object)]
        # a CSV has no empty string, only a missing cell; Parquet keeps "" (parsed as missing)
        assert [v or None for v in got] == want, column
