"""A served data home for service tests: the shared trained home, promoted and scored once.

Built on ``tests/_trained_model.py``'s 3,000-child home: copied (the prepared home stays
untouched), its trained version promoted to champion if the champion gate did not promote it,
and scored as of the last month end, as ``shouhu demo`` does. Built once per test run under a
file lock; tests only read it (each gets its own operational database). The service state
takes several seconds to load (MLflow, the bundle, the snapshot), so tests share one
:class:`~service.state.ServiceState` per worker through :func:`shared_state`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from service.state import ServiceState
from tests._trained_model import CONFIG, KEY, TRAIN, prepared

#: The scoring date of the served home (the last month end of the ledgers).
AS_OF = date(2025, 12, 31)


@dataclass(frozen=True)
class ServedHome:
    """The served home and the areas tests sign users in to."""

    home: Path
    township_a: str
    township_b: str
    county: str
    city: str

    def settings(self, database: Path) -> object:
        """Settings for this home with the operational database at ``database``."""
        from shouhu.settings import ServiceSettings, Settings

        return Settings(
            home=self.home,
            pseudonym_key=KEY,
            train=TRAIN,
            service=ServiceSettings(database_url=f"sqlite:///{database}", refresh_seconds=0),
        )


def _folder(factory: pytest.TempPathFactory) -> Path:
    reuse = os.environ.get("SHOUHU_TEST_TRAINED_DIR")
    if reuse:
        folder = Path(reuse) / "served"
    else:
        base = factory.getbasetemp()
        root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
        folder = root / "shouhu-served-home"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _build(source: Path, home: Path) -> None:
    from models.cli import score_from_settings
    from service.state import registry_for
    from shouhu.settings import Settings

    if home.exists():
        shutil.rmtree(home)
    shutil.copytree(source, home, ignore=shutil.ignore_patterns("service.db*", "scores*"))
    settings = Settings(home=home, pseudonym_key=KEY, train=TRAIN)
    registry = registry_for(settings)
    if registry.champion_info() is None:
        # The 3,000-child model may fail the champion gate or the policy's pre-registered
        # precision (quality bars for real models, not what service tests check): the alias is
        # set directly, as a stand-in for an approved promotion.
        version = registry.list_versions()[0].version
        registry.client.set_registered_model_alias(registry.model_name, "champion", str(version))
    score_from_settings(settings, AS_OF)


def served_home(factory: pytest.TempPathFactory) -> ServedHome:
    """The served home, built by the first worker that asks (under a file lock)."""
    from models.policy import load_policy
    from service.accounts import demo_areas

    trained = prepared(factory)
    folder = _folder(factory)
    home = folder / "home"
    # Rebuilt when the population or the tier policy changed (a kept home would hold scores of
    # an older policy than the one the service applies).
    key = f"{CONFIG}|{load_policy().fingerprint()}"
    ready = folder / "ready"
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not ready.is_file() or ready.read_text(encoding="utf-8") != key:
                _build(trained.home, home)
                ready.write_text(key, encoding="utf-8")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    areas = demo_areas(home / "features.duckdb")
    return ServedHome(
        home=home,
        township_a=areas["township_a"],
        township_b=areas["township_b"],
        county=areas["county"],
        city=areas["city"],
    )


_STATES: dict[Path, object] = {}


def shared_state(served: ServedHome, factory: pytest.TempPathFactory) -> ServiceState:
    """One loaded :class:`~service.state.ServiceState` per worker (its own database)."""
    from service.state import ServiceState

    state = _STATES.get(served.home)
    if state is None:
        database = factory.mktemp("service-db") / "service.db"
        state = ServiceState.load(served.settings(database))  # type: ignore[arg-type]
        _STATES[served.home] = state
    assert isinstance(state, ServiceState)
    return state


def add_user(state: ServiceState, username: str, role: str, area: str, lang: str = "zh") -> str:
    """Create (or reset) a user and return a bearer token for it."""
    from service.accounts import add_user as add
    from service.auth.tokens import issue_token
    from service.db.base import session_scope

    with session_scope(state.sessions) as session:
        user = add(
            session,
            username=username,
            password=PASSWORD,
            role=role,
            area_code=area,
            lang=lang,
            replace_password=True,
        )
        token, _ = issue_token(session, user, days=1, label="tests")
    return token


#: The password of every test user.
PASSWORD = "correct horse battery staple"


__all__ = ["AS_OF", "PASSWORD", "ServedHome", "add_user", "served_home", "shared_state"]
