"""Configuration checks, determinism and format parity of the synthetic generator."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import pytest

from features.synthetic import SynthConfig, generate
from features.synthetic.calibration import load_table

SMALL = SynthConfig(children=600, months=4, start=date(2024, 8, 1), seed=3)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_config_rejects_unknown_scenario() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'flood'"):
        SynthConfig(scenario="flood").validate()


def test_config_rejects_scenario_start_outside_period() -> None:
    config = SynthConfig(
        months=12, start=date(2024, 1, 1), scenario="visit-lapse", scenario_start=date(2025, 3, 1)
    )
    with pytest.raises(ValueError, match="outside the period"):
        config.validate()


def test_config_rejects_unknown_format_and_mid_month_start() -> None:
    with pytest.raises(ValueError, match="unknown format 'json'"):
        SynthConfig(fmt="json").validate()
    with pytest.raises(ValueError, match="first day of a month"):
        SynthConfig(start=date(2024, 1, 15)).validate()


def test_generate_refuses_invalid_config_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        generate(SynthConfig(scenario="nope"), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_scenario_start_defaults_to_two_thirds_into_the_period() -> None:
    config = SynthConfig(months=24, start=date(2024, 1, 1))
    assert config.effective_scenario_start == date(2025, 5, 1)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx"])
def test_same_config_gives_byte_identical_files(fmt: str, tmp_path: Path) -> None:
    config = SynthConfig(children=300, months=3, start=date(2024, 2, 1), seed=9, fmt=fmt)
    first = generate(config, tmp_path / "a", progress=False)
    second = generate(config, tmp_path / "b", progress=False)
    assert first["rows"] == second["rows"]
    digest_a, digest_b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert len(digest_a) > 20
    assert digest_a == digest_b


def test_other_seed_gives_other_population(tmp_path: Path) -> None:
    generate(SMALL, tmp_path / "a", progress=False)
    other = SynthConfig(children=600, months=4, start=date(2024, 8, 1), seed=4)
    generate(other, tmp_path / "b", progress=False)
    ids_a = set(load_table(tmp_path / "a", "children")["id_number"])
    ids_b = set(load_table(tmp_path / "b", "children")["id_number"])
    assert len(ids_a & ids_b) < 0.01 * len(ids_a)


def test_formats_carry_the_same_values(tmp_path: Path) -> None:
    for fmt in ("csv", "parquet", "xlsx"):
        generate(
            SynthConfig(children=400, months=2, seed=21, fmt=fmt), tmp_path / fmt, progress=False
        )
    for table in ("children", "visits", "guardianship"):
        frames = [
            load_table(tmp_path / fmt, table).fillna("") for fmt in ("csv", "parquet", "xlsx")
        ]
        assert len(frames[0]) > 50
        assert frames[0].equals(frames[1])
        assert frames[0].equals(frames[2])


def test_summary_and_manifest_agree(tmp_path: Path) -> None:
    summary = generate(SMALL, tmp_path, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert summary["children"] == 600
    assert summary["months"] == 4
    assert summary["batches"] == ["2024-08", "2024-09", "2024-10", "2024-11"]
    assert summary["rows"] == manifest["rows"]
    assert manifest["seed"] == 3
    assert manifest["scenario"] == "baseline"
    assert manifest["start"] == "2024-08-01"
    assert manifest["end"] == "2024-11-30"
    assert manifest["generator_version"]
    assert manifest["format"] == "csv"
    assert manifest["encoding"] == "gb18030"
    delivered = sum(1 for _ in (tmp_path / "sources").rglob("*.csv"))
    assert delivered == len(manifest["files"])
