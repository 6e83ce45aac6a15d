"""Starting the service: refuse without a champion; keep the model if the registry goes away."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from models.registry import ModelRegistry
from service.state import ServiceState
from shouhu.errors import ConfigError
from shouhu.settings import Settings
from tests._service_home import served_home, shared_state


def test_load_refuses_to_start_without_a_champion(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no champion model") as caught:
        ServiceState.load(Settings(home=tmp_path / "empty"))
    assert "shouhu models promote" in caught.value.message


def test_shouhu_serve_exits_with_a_clear_message_without_a_champion(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from shouhu.cli import main; main()", "serve", "--port", "1"],
        env={"SHOUHU_HOME": str(tmp_path / "empty"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == ConfigError.exit_code
    assert "no champion model" in result.stderr


def test_demo_mode_refuses_to_bind_a_public_address(tmp_path: Path) -> None:
    from service.cli import check_bind

    with pytest.raises(ConfigError, match="loopback"):
        check_bind(Settings(home=tmp_path), "0.0.0.0")
    check_bind(Settings(home=tmp_path), "127.0.0.1")


def test_unreachable_registry_keeps_the_model_held(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    state = shared_state(served_home(tmp_path_factory), tmp_path_factory)
    held = (state.model_version, state.bundle)
    registry = state.registry
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the registry's folder should be", encoding="utf-8")
    state.registry = ModelRegistry(
        tracking_uri=f"sqlite:///{blocked}/mlflow.db", promotion_log=blocked / "p.jsonl"
    )
    try:
        assert state.refresh(force=False) is False
        assert state.registry_status.reachable is False
        assert (state.model_version, state.bundle) == held
        child = str(state.snapshot.board.rows["child_id"].iloc[0])
        assert state.scorer.score([child], explain=False)[0].p_any > 0
    finally:
        state.registry = registry
        state.refresh()
    assert state.registry_status.reachable is True
