"""Shared pieces of the workflow tests: a migrated operational database, users, children."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from models.policy import Tier, TierPolicy, load_policy
from service.db.base import make_engine, make_session_factory
from service.db.identity import User
from service.db.migrate import upgrade
from service.workflow.context import ChildContext, Reviewer

#: A fixed "now" so due dates are exact.
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
VILLAGE = "990101001001"
TOWNSHIP = "990101001"
OTHER_VILLAGE = "990102003014"


@pytest.fixture(scope="module")
def policy() -> TierPolicy:
    """The default tier policy."""
    return load_policy()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty operational database migrated to head once per test run (copied per test)."""
    path = tmp_path_factory.mktemp("workflow-db") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def sessions(migrated_template: Path, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A fresh SQLite operational database at head (triggers included)."""
    path = tmp_path / "service.db"
    shutil.copyfile(migrated_template, path)
    engine = make_engine(f"sqlite:///{path}")
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One session on the migrated database."""
    with sessions() as s:
        yield s


def add_user(session: Session, username: str, role: str, area: str = TOWNSHIP) -> Reviewer:
    """A user row and the :class:`Reviewer` acting as it."""
    user = User(username=username, password_hash="x", role=role, area_code=area, lang="zh")
    session.add(user)
    session.flush()
    return Reviewer(user.id, role)


def child(
    child_id: str = "c-0001",
    tier: Tier = Tier.T3,
    rules: tuple[str, ...] = (),
    *,
    hard_rule_t1: bool | None = None,
    awaiting: bool = False,
    village: str = VILLAGE,
    scored_at: datetime | None = None,
    girl: bool | None = None,
    disability: bool | None = None,
) -> ChildContext:
    """A child's latest scoring; ``hard_rule_t1`` defaults to "a hard rule fired"."""
    hard = any(r.startswith("hard:") for r in rules) if hard_rule_t1 is None else hard_rule_t1
    return ChildContext(
        child_id=child_id,
        village_code=village,
        township_code=village[:9],
        tier=tier,
        rules_fired=rules,
        hard_rule_t1=hard,
        awaiting_confirmation=awaiting,
        run_id="run0001",
        scored_at=scored_at,
        girl=girl,
        disability=disability,
    )
