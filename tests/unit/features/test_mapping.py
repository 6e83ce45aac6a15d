"""The header/value mapping: generated default, county files that extend it, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.mapping import (
    DEFAULT_MAPPING_PATH,
    load_mapping,
    normalise_header,
    render_default_mapping,
    write_default_mapping,
)
from features.schema import TABLES
from shouhu.errors import MappingError


def test_committed_default_mapping_equals_what_the_generator_writes() -> None:
    assert DEFAULT_MAPPING_PATH.read_text(encoding="utf-8") == render_default_mapping()


def test_default_mapping_knows_every_chinese_header_english_name_and_label() -> None:
    mapping = load_mapping(None)
    for spec in TABLES:
        for col in spec.columns:
            assert mapping.column_for(spec.name, col.zh) == col.name
            assert mapping.column_for(spec.name, col.name) == col.name
            for code in col.codes:
                for spelling in (code.zh, code.code, code.en):
                    assert mapping.code_for(spec.name, col.name, spelling) == code.code


def test_booleans_cover_the_common_spellings() -> None:
    mapping = load_mapping(None)
    for spelling in ("是", "有", "Y", "y", "1", "true", "TRUE", "yes"):
        assert mapping.booleans[spelling.casefold()] is True
    for spelling in ("否", "无", "N", "0", "false", "no"):
        assert mapping.booleans[spelling.casefold()] is False


@given(
    st.sampled_from([c.zh for spec in TABLES for c in spec.columns]),
    st.sampled_from(["", " ", "\u3000", "\t"]),
    st.sampled_from(["", "*", "＊"]),
    st.sampled_from(["", "：", ":"]),
)
def test_header_variants_with_spaces_marks_and_full_width_forms_match(
    header: str, space: str, star: str, colon: str
) -> None:
    variant = f"{space}{star}{header}{colon}{space}"
    assert normalise_header(variant) == normalise_header(header)


def test_full_width_brackets_in_headers_match() -> None:
    mapping = load_mapping(None)
    assert mapping.column_for("children", "所在村（社区）代码") == "village_code"


def test_county_file_extends_and_overrides_the_default(tmp_path: Path) -> None:
    county = tmp_path / "county.yaml"
    county.write_text(
        """
version: 1
checks: {id_number_checksum: false}
booleans:
  'true': [OK]
  'false': [有]          # this county writes 有 for "no problem": moves from true to false
tables:
  children:
    columns:
      id_number: [儿童证件号]
      name: [身份证]      # moves 身份证 from id_number to name
    values:
      sex:
        male: [M男]
""",
        encoding="utf-8",
    )
    mapping = load_mapping(county)
    assert mapping.column_for("children", "儿童证件号") == "id_number"
    assert mapping.column_for("children", "身份证号") == "id_number"  # default still there
    assert mapping.column_for("children", "身份证") == "name"
    assert mapping.code_for("children", "sex", "M男") == "male"
    assert mapping.booleans["ok"] is True
    assert mapping.booleans["有"] is False
    assert mapping.id_number_checksum is False
    assert mapping.sources == (str(DEFAULT_MAPPING_PATH), str(county))


def test_written_default_mapping_loads_as_a_county_file(tmp_path: Path) -> None:
    path = write_default_mapping(tmp_path / "start" / "county.yaml")
    assert load_mapping(path).headers == load_mapping(None).headers


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("tables: [1, 2", "not valid YAML at line 1"),
        ("- a\n- b\n", "the top level must be a mapping of keys"),
        ("tables:\n  pupils: {}\n", "tables.pupils: unknown table"),
        (
            "tables:\n  children:\n    columns:\n      shoe_size: [鞋码]\n",
            "unknown column 'shoe_size' of children",
        ),
        (
            "tables:\n  children:\n    values:\n      sex:\n        other: [其他]\n",
            "unknown code 'other'",
        ),
        (
            "tables:\n  children:\n    values:\n      birth_date:\n        x: [y]\n",
            "tables.children.values.birth_date: not a categorical column",
        ),
        (
            "tables:\n  children:\n    columns:\n      name: [编号]\n      household_no: [编号]\n",
            "header '编号' listed for both name and household_no",
        ),
        ("booleans:\n  'true': [是]\n  'false': [是]\n", "listed as both true and false"),
        ("version: 2\n", "version must be 1"),
        ("colour: blue\n", "colour: Extra inputs are not permitted"),
    ],
)
def test_malformed_mapping_file_raises_naming_the_file_and_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert str(path) in info.value.message
    assert problem in info.value.message


def test_missing_mapping_file_raises_mapping_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="no such file"):
        load_mapping(tmp_path / "absent.yaml")


def test_file_name_hints_at_the_table() -> None:
    mapping = load_mapping(None)
    assert mapping.table_for_file_name("走访记录_2025-03") == "visits"
    assert mapping.table_for_file_name("visits_202503") == "visits"
    assert mapping.table_for_file_name("台账") is None
