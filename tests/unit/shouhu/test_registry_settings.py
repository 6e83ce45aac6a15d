"""Registry settings: a local MLflow store under SHOUHU_HOME unless a tracking URI is set."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shouhu.settings import Settings


def test_registry_defaults_to_a_local_store_under_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SHOUHU_HOME", str(tmp_path / "h"))
    settings = Settings()
    root = (tmp_path / "h").resolve() / "mlflow"
    assert settings.registry.tracking_uri is None
    assert settings.registry.model_name == "shouhu-risk"
    assert settings.registry_dir == root
    assert settings.tracking_uri == f"sqlite:///{root.as_posix()}/mlflow.db"
    assert settings.registry_uri == settings.tracking_uri
    assert settings.artifact_location == (root / "artifacts").as_uri()
    assert settings.promotion_log_path == root / "promotions.jsonl"


def test_registry_reads_a_remote_tracking_uri_from_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOUHU_REGISTRY__TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("SHOUHU_REGISTRY__MODEL_NAME", "county-risk")
    settings = Settings()
    assert settings.tracking_uri == "http://127.0.0.1:5000"
    assert settings.registry_uri == "http://127.0.0.1:5000"
    assert settings.artifact_location is None  # the server chooses its artifact store
    assert settings.registry.model_name == "county-risk"
    # The promotion log stays local, in the data home.
    assert settings.promotion_log_path == settings.home / "mlflow" / "promotions.jsonl"


def test_registry_reads_a_separate_registry_uri_from_toml(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "shouhu.toml"
    config.write_text(
        '[registry]\ntracking_uri = "http://127.0.0.1:5000"\n'
        'registry_uri = "sqlite:////srv/registry.db"\nexperiment_name = "quarterly"\n'
    )
    monkeypatch.setenv("SHOUHU_CONFIG", str(config))
    settings = Settings()
    assert settings.tracking_uri == "http://127.0.0.1:5000"
    assert settings.registry_uri == "sqlite:////srv/registry.db"
    assert settings.registry.experiment_name == "quarterly"


def test_blank_registry_uri_means_the_local_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOUHU_REGISTRY__TRACKING_URI", "  ")
    settings = Settings()
    assert settings.registry.tracking_uri is None
    assert settings.tracking_uri.startswith("sqlite:///")


def test_registry_refuses_an_empty_model_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOUHU_REGISTRY__MODEL_NAME", "")
    with pytest.raises(ValidationError):
        Settings()
