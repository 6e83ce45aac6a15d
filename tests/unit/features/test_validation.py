"""Parsing and validating ledger rows against the schema-built pandera schemas."""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from datetime import date

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.mapping import Mapping, load_mapping
from features.schema import ATTENDANCE, CHILDREN, TABLES, VISITS, TableSpec
from features.validation import REASON_CODES, build_schema, validate_frame
from tests.factories import TODAY, id_number, ledger_row

MAPPING = load_mapping(None)


def _frame(spec: TableSpec, rows: list[dict[str, str | None]]) -> pd.DataFrame:
    data = {
        c.name: pd.array([r.get(c.name) for r in rows], dtype=pd.StringDtype())
        for c in spec.columns
    }
    return pd.DataFrame(data)


def _validate(
    spec: TableSpec,
    rows: list[dict[str, str | None]],
    mapping: Mapping = MAPPING,
    chunk_rows: int = 250_000,
):
    return validate_frame(
        _frame(spec, rows), spec, mapping, load_date=TODAY, max_future_days=1, chunk_rows=chunk_rows
    )


def _errors(result) -> list[tuple[int, str, str]]:  # type: ignore[no-untyped-def]
    return [
        tuple(r)
        for r in result.errors[["position", "field", "reason_code"]].itertuples(index=False)
    ]


@pytest.mark.parametrize("spec", TABLES, ids=lambda s: s.name)
def test_schema_is_built_from_the_declarations(spec: TableSpec) -> None:
    schema = build_schema(spec, load_date=TODAY, max_future_days=1)
    assert list(schema.columns) == list(spec.column_names)
    for col in spec.columns:
        column = schema.columns[col.name]
        assert column.nullable is (not col.required)
        names = {check.name for check in column.checks}
        assert names <= set(REASON_CODES)
        if col.minimum is not None:
            assert "out_of_range" in names
        if col.codes:
            assert "unknown_code" in names
        if col.dtype == "date":
            assert {"future_date", "date_too_early"} <= names
    assert {check.name for check in schema.checks} <= set(REASON_CODES)


@pytest.mark.parametrize("spec", TABLES, ids=lambda s: s.name)
def test_factory_rows_of_every_table_are_valid(spec: TableSpec) -> None:
    result = _validate(spec, [ledger_row(spec, i) for i in range(3)])
    assert result.errors.empty
    assert len(result.typed) == 3


def test_typed_values_use_codes_booleans_and_dates() -> None:
    row = ledger_row(CHILDREN, 1, sex="女", disability="是", birth_date="2015年6月1日")
    typed = _validate(CHILDREN, [row]).typed.iloc[0]
    assert typed["sex"] == "female"
    assert bool(typed["disability"]) is True
    assert typed["birth_date"] == pd.Timestamp("2015-06-01")
    assert typed["id_number"] == id_number(1)


_DAYS = st.dates(min_value=date(1990, 1, 1), max_value=date(2025, 4, 1))


@settings(max_examples=60, deadline=None)
@given(
    day=_DAYS,
    form=st.sampled_from(
        [
            "{y}-{m:02d}-{d:02d}",
            "{y}/{m}/{d}",
            "{y}.{m}.{d}",
            "{y}年{m}月{d}日",
            "{y}{m:02d}{d:02d}",
            "{y}-{m:02d}-{d:02d} 00:00:00",
            " {y}-{m}-{d}\u3000",
        ]
    ),
)
def test_every_accepted_date_form_parses_to_the_same_day(day: date, form: str) -> None:
    text = form.format(y=day.year, m=day.month, d=day.day)
    row = ledger_row(VISITS, 0, visit_date=text, recorded_at=day.isoformat())
    result = _validate(VISITS, [row])
    assert result.errors.empty, result.errors.to_dict("records")
    assert result.typed.loc[0, "visit_date"] == pd.Timestamp(day)


@settings(max_examples=40, deadline=None)
@given(
    label=st.sampled_from([c for c in CHILDREN.column("ethnicity").codes]),
    pad=st.sampled_from(["", " ", "\u3000", "\t"]),
    full_width=st.booleans(),
)
def test_labels_match_despite_white_space_and_full_width_forms(label, pad, full_width) -> None:  # type: ignore[no-untyped-def]
    text = (
        label.code
        if not full_width
        else "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in label.code)
    )
    assert unicodedata.normalize("NFKC", text) == label.code
    row = ledger_row(CHILDREN, 0, ethnicity=f"{pad}{text}{pad}")
    result = _validate(CHILDREN, [row])
    assert result.errors.empty
    assert result.typed.loc[0, "ethnicity"] == label.code


@settings(deadline=None)  # the first validation in a process also imports pandera's backends
@given(st.integers(min_value=0, max_value=7))
def test_full_width_digits_are_numbers(n: int) -> None:
    row = ledger_row(ATTENDANCE, 0, school_days=chr(ord("０") + n))
    result = _validate(ATTENDANCE, [row])
    assert result.errors.empty
    assert result.typed.loc[0, "school_days"] == n


def test_a_row_with_several_errors_reports_all_of_them_once_each() -> None:
    bad = ledger_row(
        VISITS, 1, visit_date="2025-02-30", visitor_role="路人", child_seen="", id_number="123"
    )
    result = _validate(VISITS, [ledger_row(VISITS, 0), bad])
    assert sorted(_errors(result)) == [
        (1, "child_seen", "missing_required"),
        (1, "id_number", "invalid_id_number"),
        (1, "visit_date", "invalid_date"),  # not also missing_required
        (1, "visitor_role", "unknown_code"),
    ]
    assert list(result.rejected_positions) == [1]


def test_multi_valued_hazards_map_each_label_and_keep_schema_order() -> None:
    rows = [
        ledger_row(VISITS, 0, home_hazards="用电隐患；临近水域"),
        ledger_row(VISITS, 1, home_hazards="临近水域、危房、临近水域"),
        ledger_row(VISITS, 2, home_hazards="临近水域;鬼屋"),
    ]
    result = _validate(VISITS, rows)
    assert result.typed.loc[0, "home_hazards"] == "water;electricity"
    assert result.typed.loc[1, "home_hazards"] == "water;building"
    assert _errors(result) == [(2, "home_hazards", "unknown_code")]


def test_identity_number_checksum_can_be_switched_off_by_the_mapping() -> None:
    wrong = id_number(5)[:-1] + ("0" if id_number(5)[-1] != "0" else "1")
    row = ledger_row(VISITS, 0, id_number=wrong)
    assert _errors(_validate(VISITS, [row])) == [(0, "id_number", "invalid_id_number")]
    lenient = replace(MAPPING, id_number_checksum=False)
    assert _validate(VISITS, [row], lenient).errors.empty
    assert _errors(_validate(VISITS, [ledger_row(VISITS, 0, id_number="1234")], lenient)) == [
        (0, "id_number", "invalid_id_number")
    ]


def test_lower_case_x_check_digit_is_normalised() -> None:
    number = next(id_number(i) for i in range(1000) if id_number(i).endswith("X"))
    result = _validate(VISITS, [ledger_row(VISITS, 0, id_number=number.lower())])
    assert result.errors.empty
    assert result.typed.loc[0, "id_number"] == number


def test_chunked_validation_gives_the_same_result() -> None:
    rows = [ledger_row(ATTENDANCE, i, excused_days=str(i % 9)) for i in range(40)]
    whole, chunked = _validate(ATTENDANCE, rows), _validate(ATTENDANCE, rows, chunk_rows=7)
    pd.testing.assert_frame_equal(whole.errors, chunked.errors)
    pd.testing.assert_frame_equal(whole.typed, chunked.typed)
    assert set(whole.errors["reason_code"]) == {"out_of_range", "absences_exceed_school_days"}


def test_reasons_never_show_identity_numbers_or_names() -> None:
    row = ledger_row(CHILDREN, 0, name="=张三", id_number="+" + id_number(0))
    result = _validate(CHILDREN, [row])
    assert set(zip(result.errors["field"], result.errors["reason_code"], strict=True)) == {
        ("name", "formula_in_cell"),
        ("id_number", "invalid_id_number"),  # "+<digits>" is a plain number, not a formula
    }
    text = " ".join(result.errors["reason"])
    assert "张三" not in text and id_number(0) not in text


@settings(max_examples=30, deadline=None)
@given(
    value=st.sampled_from(["=1+1", "@SUM(A1)", "+SUM(A1)", "-2+3", "=cmd|' /C calc'!A0", "-", "--"])
)
def test_formula_like_cells_are_rejected_in_any_column(value: str) -> None:
    row = ledger_row(ATTENDANCE, 0, school_days=value)
    codes = set(_validate(ATTENDANCE, [row]).errors["reason_code"])
    assert codes == ({"not_a_number"} if value == "-" else {"formula_in_cell"})


def test_negative_plain_numbers_are_numbers_out_of_range_not_formulas() -> None:
    row = ledger_row(ATTENDANCE, 0, excused_days="-3")
    assert _errors(_validate(ATTENDANCE, [row])) == [(0, "excused_days", "out_of_range")]


def test_dictionary_encoded_columns_validate_as_their_text_does() -> None:
    rows = [
        ledger_row(VISITS, i, visitor_role=role, visit_date=day)
        for i, (role, day) in enumerate(
            [("村干部", "2025-03-03"), ("路人", "2025-03-03"), (None, "2025-02-30"), ("村干部", "")]
        )
    ]
    text = _frame(VISITS, rows)
    coded = text.assign(
        visitor_role=text["visitor_role"].astype("category"),
        visit_date=text["visit_date"].astype("category"),
    )
    plain, categorical = (
        validate_frame(f, VISITS, MAPPING, load_date=TODAY, max_future_days=1)
        for f in (text, coded)
    )
    pd.testing.assert_frame_equal(plain.typed, categorical.typed)
    pd.testing.assert_frame_equal(plain.errors, categorical.errors)
    assert set(plain.errors["reason_code"]) == {"unknown_code", "missing_required", "invalid_date"}
