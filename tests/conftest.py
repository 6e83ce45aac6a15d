"""Fixtures shared by every test: an isolated data home and fresh settings per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shouhu.settings import get_settings


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point SHOUHU_HOME at a fresh folder so no test touches a developer's data home."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHOUHU_HOME", str(home))
    monkeypatch.delenv("SHOUHU_CONFIG", raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()
