"""The canonical data model is consistent, and its generated document is current."""

from __future__ import annotations

from pathlib import Path

from features.datamodel_doc import render_data_model
from features.rawstore import connect, raw_table, stored_columns
from features.schema import TABLES, table

ROOT = Path(__file__).resolve().parents[3]


def test_every_table_declares_event_time_and_recorded_at() -> None:
    for spec in TABLES:
        names = spec.column_names
        assert spec.event_time in names, spec.name
        assert spec.recorded_time in names, spec.name
        assert spec.column(spec.event_time).dtype == "date"
        assert all(k in names for k in spec.key), spec.name


def test_headers_are_unique_within_a_table() -> None:
    for spec in TABLES:
        assert len(set(spec.column_names)) == len(spec.column_names)
        assert len({c.zh for c in spec.columns}) == len(spec.columns), spec.name


def test_categorical_labels_are_unique_per_field() -> None:
    for spec in TABLES:
        for col in spec.columns:
            if col.codes:
                assert len({c.zh for c in col.codes}) == len(col.codes), (spec.name, col.name)
                assert len(col.code_set()) == len(col.codes)


def test_identity_fields_never_become_store_columns(tmp_path: Path) -> None:
    con = connect(tmp_path / "s.duckdb")
    for spec in TABLES:
        stored = {name for name, _ in stored_columns(spec)}
        assert "id_number" not in stored and "name" not in stored and "household_no" not in stored
        described = {row[0] for row in con.sql(f"DESCRIBE {raw_table(spec)}").fetchall()}
        assert stored <= described
    assert "child_id" in {n for n, _ in stored_columns(table("visits"))}
    con.close()


def test_data_model_document_is_current() -> None:
    committed = (ROOT / "docs" / "data-model.md").read_text(encoding="utf-8")
    assert committed == render_data_model(), "run `make docs` to regenerate docs/data-model.md"
