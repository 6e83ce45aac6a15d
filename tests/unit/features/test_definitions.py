"""The feature declarations: complete, consistent with the data model, and described."""

from __future__ import annotations

import dataclasses

import pytest

from features import definitions as defs
from features.definitions import (
    DERIVED,
    DOMAINS,
    IDENTIFYING_COLUMNS,
    VIEWS,
    definitions_fingerprint,
    describe,
    feature_names,
    model_feature_names,
    protected_feature_names,
    registry_records,
)
from features.rawstore import stored_columns
from features.schema import TABLES_BY_NAME


def test_registry_has_dozens_of_described_features_in_policy_domains() -> None:
    records = registry_records()
    assert len(records) >= 40
    for rec in records:
        assert rec["domain"] in DOMAINS
        assert rec["zh"] and rec["en"] and rec["zh"] != rec["en"]
        assert set(rec) >= {
            "name",
            "domain",
            "window_days",
            "zh",
            "en",
            "dtype",
            "source",
            "sensitivity",
            "unit",
        }
    assert {rec["domain"] for rec in records} == set(DOMAINS)


def test_feature_names_are_unique_and_distinct_from_keys() -> None:
    names = feature_names()
    assert len(names) == len(set(names))
    assert not set(names) & set(IDENTIFYING_COLUMNS)
    internal = [f.name for v in VIEWS for f in v.fields if f.doc is None]
    assert len(set(internal) | set(names)) == len(internal) + len(names)


def test_model_features_leave_out_protected_ethnicity() -> None:
    assert protected_feature_names() == ["ethnicity"]
    assert "ethnicity" in feature_names()
    assert "ethnicity" not in model_feature_names()
    assert len(model_feature_names()) == len(feature_names()) - 1


def test_every_declared_column_exists_in_its_raw_table() -> None:
    for view in VIEWS:
        stored = {name for name, _ in stored_columns(TABLES_BY_NAME[view.source])}
        used = {view.event_time, view.available_time, view.entity.key, *view.version_key}
        for fld in view.fields:
            used.update([fld.column] if fld.column else [])
            used.update(f.column for f in fld.where)
        assert used <= stored, (view.name, used - stored)
        assert view.event_time == TABLES_BY_NAME[view.source].event_time


def test_version_keys_are_the_natural_keys_of_the_data_model() -> None:
    for view in VIEWS:
        natural = tuple(
            "child_id" if k == "id_number" else k for k in TABLES_BY_NAME[view.source].key
        )
        # The school view counts every delivered report, corrections included.
        assert view.version_key == (() if view.name == "school_reports" else natural), view.name
    registry = next(v for v in VIEWS if v.name == "registry")
    assert registry.version_key == ("child_id", "registered_date")


def test_filter_values_are_codes_the_data_model_allows() -> None:
    for view in VIEWS:
        spec = TABLES_BY_NAME[view.source]
        for fld in view.fields:
            for flt in fld.where:
                column = spec.column(flt.column)
                if column.codes:
                    assert set(flt.values) <= column.code_set(), (fld.name, flt.values)


def test_derived_inputs_name_fields_calendar_or_earlier_derived_features() -> None:
    known = {f.name for v in VIEWS for f in v.fields} | {"as_of"}
    for der in DERIVED:
        for name in der.inputs:
            assert name in known or name.startswith("school_days_"), (der.name, name)
        known.add(der.name)


def test_descriptions_read_the_window_the_feature_uses() -> None:
    assert describe("unexcused_absence_days_90d") == "近90天无故缺课天数"
    assert describe("unexcused_absence_days_90d", "en") == (
        "unexcused absence days in the last 90 days"
    )
    with pytest.raises(KeyError):
        describe("no_such_feature")


def test_fingerprint_is_stable_and_changes_with_a_declaration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = definitions_fingerprint()
    assert before == definitions_fingerprint()
    assert len(before) == 16
    changed = dataclasses.replace(VIEWS[3], fields=VIEWS[3].fields[:-1])
    monkeypatch.setattr(defs, "VIEWS", (*VIEWS[:3], changed, *VIEWS[4:]))
    assert definitions_fingerprint() != before
