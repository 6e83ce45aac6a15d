"""A demo home whose population changed starts afresh; a home the demo did not build is never
touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from features.synthetic.config import GENERATOR_VERSION
from shouhu.demo import _clear_demo_home, _population_is_current
from shouhu.errors import ConfigError
from shouhu.settings import Settings


def _manifest(home: Path, **changes: object) -> None:
    meta = {
        "children": 500,
        "months": 6,
        "seed": 7,
        "scenario": "baseline",
        "generator_version": GENERATOR_VERSION,
        **changes,
    }
    (home / "synthetic").mkdir(parents=True, exist_ok=True)
    (home / "synthetic" / "manifest.json").write_text(json.dumps(meta), encoding="utf-8")


@pytest.mark.parametrize(
    "changes",
    [{"children": 600}, {"seed": 8}, {"scenario": "visit-lapse"}, {"generator_version": "0.9"}],
)
def test_a_population_of_other_settings_or_generator_is_not_current(
    tmp_path: Path, changes: dict[str, object]
) -> None:
    _manifest(tmp_path)
    assert _population_is_current(tmp_path / "synthetic", 500, 6, 7)
    _manifest(tmp_path, **changes)
    assert not _population_is_current(tmp_path / "synthetic", 500, 6, 7)


def test_an_older_demo_population_goes_with_everything_built_on_it(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    _manifest(tmp_path, generator_version="0.9")
    settings.store_path.write_bytes(b"old store")
    settings.store_path.with_name(settings.store_path.name + ".wal").write_bytes(b"wal")
    settings.scores_dir.mkdir()
    (settings.scores_dir / "scores_2025-12-31.parquet").write_bytes(b"old scores")
    settings.registry_dir.mkdir()
    (tmp_path / "service.db").write_bytes(b"accounts")
    kept = tmp_path / "notes.txt"
    kept.write_text("an operator's own file", encoding="utf-8")
    removed = _clear_demo_home(settings)
    assert {"synthetic", settings.store_path.name, "scores", "mlflow", "service.db"} <= set(removed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_home_with_a_store_the_demo_did_not_build_is_refused_untouched(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    settings.store_path.write_bytes(b"a county's own store")
    with pytest.raises(ConfigError, match="did not build"):
        _clear_demo_home(settings)
    assert settings.store_path.read_bytes() == b"a county's own store"
    assert _clear_demo_home(Settings(home=tmp_path / "empty")) == []
