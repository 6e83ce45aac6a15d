"""Settings: one typed object, environment and file sources, unsafe values refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shouhu.settings import DEMO_PSEUDONYM_KEY, Settings


def test_settings_read_home_and_nested_sections_from_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SHOUHU_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("SHOUHU_STORE__THREADS", "2")
    settings = Settings()
    assert settings.home == (tmp_path / "h").resolve()
    assert settings.store.threads == 2
    assert settings.store_path == (tmp_path / "h" / "features.duckdb").resolve()


def test_settings_read_toml_file_below_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "shouhu.toml"
    config.write_text('log_level = "DEBUG"\n[store]\nmemory_limit = "2GB"\nthreads = 1\n')
    monkeypatch.setenv("SHOUHU_CONFIG", str(config))
    monkeypatch.setenv("SHOUHU_STORE__THREADS", "2")
    settings = Settings()
    assert settings.log_level == "DEBUG"
    assert settings.store.memory_limit == "2GB"
    assert settings.store.threads == 2  # the environment wins over the file


def test_settings_refuse_demo_key_outside_demo_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOUHU_DEMO_MODE", "false")
    with pytest.raises(ValidationError, match="SHOUHU_PSEUDONYM_KEY must be set"):
        Settings()
    monkeypatch.setenv("SHOUHU_PSEUDONYM_KEY", "a-real-secret-of-enough-length")
    with pytest.raises(ValidationError, match="SHOUHU_SERVICE__SESSION_SECRET must be set"):
        Settings()
    monkeypatch.setenv("SHOUHU_SERVICE__SESSION_SECRET", "another-real-secret-of-enough-length")
    assert Settings().pseudonym_key.get_secret_value() != DEMO_PSEUDONYM_KEY


def test_settings_refuse_a_network_address_in_demo_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOUHU_SERVICE__HOST", "0.0.0.0")
    with pytest.raises(ValidationError, match="loopback address only"):
        Settings()
    monkeypatch.setenv("SHOUHU_DEMO_MODE", "false")
    monkeypatch.setenv("SHOUHU_PSEUDONYM_KEY", "a-real-secret-of-enough-length")
    monkeypatch.setenv("SHOUHU_SERVICE__SESSION_SECRET", "another-real-secret-of-enough-length")
    assert Settings().service.host == "0.0.0.0"


def test_settings_refuse_short_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOUHU_PSEUDONYM_KEY", "short")
    with pytest.raises(ValidationError, match="at least 16"):
        Settings()


def test_settings_refuse_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        Settings(unknown_field=1)  # type: ignore[call-arg]


def test_settings_never_show_the_key() -> None:
    settings = Settings()
    assert DEMO_PSEUDONYM_KEY not in repr(settings)
    assert DEMO_PSEUDONYM_KEY not in str(settings.model_dump())
