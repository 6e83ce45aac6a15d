"""Validation finds exactly the failures pandera's own ``validate`` reports, row for row.

``validation.schema_failures`` runs the pandera schema's checks over every row and leaves the
failure-case report to the caller (pandera's report cost most of a file's validation time);
these tests hold it to ``schema.validate(lazy=True)`` on frames full of defects.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.mapping import load_mapping
from features.schema import ATTENDANCE, CHILDREN, VISITS, TableSpec
from features.validation import build_schema, parse_frame, schema_failures
from tests.factories import TODAY, id_number, ledger_row

MAPPING = load_mapping(None)

#: Per table, values that break a field (or a row rule), and values that are fine.
DEFECTS: dict[str, dict[str, list[str | None]]] = {
    "visits": {
        "visit_date": ["2025-02-30", "1980-01-01", "2026-01-01", None, "2025-03-20"],
        "visitor_role": ["路人", None, "村干部"],
        "child_seen": ["也许", None, "否"],
        "id_number": ["123", id_number(3)[:-1] + "0", None, "=A1"],
        "needs": [id_number(4), "学习辅导", "+SUM(A1)"],
        "home_hazards": ["临近水域;鬼屋", "临近水域、危房", None],
        "recorded_at": ["2025-03-01", "2099-01-01", None],
    },
    "children": {
        "birth_date": ["2026-05-01", "1990-02-01", "2003-01-01", None],
        "registered_date": ["2014-01-01", "2025-04-30", None],
        "sex": ["未知", None, "女"],
        "village_code": [id_number(5), None, "500101001007"],
        "disability": ["maybe", None],
    },
    "attendance": {
        "school_days": ["9", "-1", "五", "4.5", None, "3"],
        "excused_days": ["3", "8", None],
        "unexcused_days": ["3", "-2", None],
        "week_start": ["2025-04-30", "2025-03-31"],
    },
}
SPECS = {"visits": VISITS, "children": CHILDREN, "attendance": ATTENDANCE}


def _frame(spec: TableSpec, rows: list[dict[str, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        {c.name: pd.array([r[c.name] for r in rows], dtype=pd.StringDtype()) for c in spec.columns}
    )


def _pandera_failures(schema: pa.DataFrameSchema, typed: pd.DataFrame) -> set[tuple[Any, ...]]:
    try:
        schema.validate(typed, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return set()
    out: set[tuple[Any, ...]] = set()
    for context, column, check, index in cases[
        ["schema_context", "column", "check", "index"]
    ].itertuples(index=False):
        field = column if context == "Column" else schema.name
        out.add((int(index), field, str(check)))
    return out


def _ours(schema: pa.DataFrameSchema, typed: pd.DataFrame) -> set[tuple[Any, ...]]:
    return {
        (int(position), failure.field, failure.check)
        for failure in schema_failures(schema, typed)
        for position in typed.index[failure.rows]
    }


@st.composite
def _defective_rows(draw: st.DrawFn, table: str) -> list[dict[str, str | None]]:
    spec = SPECS[table]
    rows = []
    for i in range(draw(st.integers(min_value=1, max_value=12))):
        fields = draw(st.lists(st.sampled_from(sorted(DEFECTS[table])), unique=True, max_size=3))
        changes = {f: draw(st.sampled_from(DEFECTS[table][f])) for f in fields}
        rows.append(ledger_row(spec, i, **changes))
    return rows


@pytest.mark.parametrize("table", sorted(SPECS))
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_the_same_rows_fail_the_same_checks_as_in_pandera_validate(
    table: str, data: st.DataObject
) -> None:
    spec = SPECS[table]
    rows = data.draw(_defective_rows(table))
    typed, _ = parse_frame(_frame(spec, rows), spec, MAPPING)
    schema = build_schema(spec, load_date=TODAY, max_future_days=1)
    assert _ours(schema, typed) == _pandera_failures(schema, typed)


def test_a_chunk_of_a_frame_reports_the_chunks_own_row_labels() -> None:
    rows = [ledger_row(ATTENDANCE, i, school_days="9" if i % 3 else "3") for i in range(9)]
    typed, _ = parse_frame(_frame(ATTENDANCE, rows), ATTENDANCE, MAPPING)
    chunk = typed.iloc[4:9]  # labels 4..8, as validate_frame's chunks have
    schema = build_schema(ATTENDANCE, load_date=TODAY, max_future_days=1)
    assert _ours(schema, chunk) == _pandera_failures(schema, chunk)
    assert {p for p, _, _ in _ours(schema, chunk)} == {4, 5, 7, 8}


def test_a_column_parsed_to_the_wrong_type_is_a_bug_not_bad_data() -> None:
    typed, _ = parse_frame(_frame(ATTENDANCE, [ledger_row(ATTENDANCE, 0)]), ATTENDANCE, MAPPING)
    typed["school_days"] = typed["school_days"].astype("float64")
    schema = build_schema(ATTENDANCE, load_date=TODAY, max_future_days=1)
    with pytest.raises(RuntimeError, match="school_days: parsed as float64"):
        schema_failures(schema, typed)
