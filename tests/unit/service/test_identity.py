"""Passwords, bearer tokens, page sessions and the append-only audit log, on a real database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from service import audit
from service.accounts import add_user, disable_user, list_users
from service.auth.csrf import csrf_token, verify_csrf_token
from service.auth.passwords import hash_password, verify_password
from service.auth.sessions import (
    authenticate,
    end_web_session,
    resolve_web_session,
    start_web_session,
)
from service.auth.tokens import issue_token, resolve_token, revoke_token, token_digest
from service.db.audit import AuditEntry
from service.db.base import make_engine, make_session_factory, utcnow
from service.db.identity import ApiToken
from service.db.migrate import current_revision, head_revision, upgrade
from service.deps import Principal, Role
from shouhu.errors import ConfigError

PASSWORD = "a long enough password"


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'service.db'}")
    upgrade(engine)
    with make_session_factory(engine)() as s:
        yield s
    engine.dispose()


def test_migrations_reach_the_head_and_sqlite_uses_wal(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db' / 'service.db'}")
    assert current_revision(engine) is None
    assert upgrade(engine) == head_revision()
    assert upgrade(engine) == head_revision()  # idempotent
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        tables = set(sa.inspect(connection).get_table_names())
    assert {"users", "api_tokens", "web_sessions", "audit_log"} <= tables
    engine.dispose()


def test_passwords_are_salted_argon2_hashes() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first.startswith("$argon2id$") and first != second
    assert verify_password(first, PASSWORD)
    assert not verify_password(first, PASSWORD + "!")
    assert not verify_password("not a hash", PASSWORD)
    with pytest.raises(ValueError, match="at least"):
        hash_password("short")


def test_add_user_validates_role_area_and_uniqueness(session: Session) -> None:
    add_user(session, username="cw1", password=PASSWORD, role="caseworker", area_code="990101001")
    with pytest.raises(ConfigError, match="exists"):
        add_user(session, username="cw1", password=PASSWORD, role="caseworker", area_code="9901")
    with pytest.raises(ConfigError, match="role"):
        add_user(session, username="x", password=PASSWORD, role="boss", area_code="9901")
    with pytest.raises(ConfigError, match="area code"):
        add_user(session, username="y", password=PASSWORD, role="analyst", area_code="99x1")
    listed = list_users(session)
    assert [u["username"] for u in listed] == ["cw1"]
    assert "password_hash" not in listed[0]


def test_tokens_resolve_until_revoked_expired_or_user_disabled(session: Session) -> None:
    user = add_user(session, username="sv", password=PASSWORD, role="supervisor", area_code="9901")
    token, row = issue_token(session, user, days=1)
    assert row.token_hash == token_digest(token) and token not in row.token_hash
    assert resolve_token(session, token) is user
    assert resolve_token(session, token, now=utcnow() + timedelta(days=2)) is None
    assert resolve_token(session, token + "x") is None
    assert revoke_token(session, token)
    assert resolve_token(session, token) is None
    second, _ = issue_token(session, user, days=1)
    result = disable_user(session, "sv")
    assert result == {"tokens_revoked": 1, "sessions_ended": 0}
    assert resolve_token(session, second) is None
    assert authenticate(session, "sv", PASSWORD) is None
    assert session.execute(sa.select(sa.func.count()).select_from(ApiToken)).scalar() == 2


def test_page_sessions_and_csrf_tokens(session: Session) -> None:
    user = add_user(session, username="cw", password=PASSWORD, role="caseworker", area_code="9901")
    assert authenticate(session, "cw", "wrong password!") is None
    assert authenticate(session, "nobody", PASSWORD) is None
    assert authenticate(session, "cw", PASSWORD) is user
    cookie = start_web_session(session, user, hours=1)
    assert resolve_web_session(session, cookie) is user
    assert resolve_web_session(session, cookie, now=utcnow() + timedelta(hours=2)) is None
    secret = "s" * 32
    token = csrf_token(secret, cookie)
    assert verify_csrf_token(secret, cookie, token)
    assert not verify_csrf_token(secret, "another-cookie", token)
    assert not verify_csrf_token("t" * 32, cookie, token)
    assert not verify_csrf_token(secret, "", token)
    assert end_web_session(session, cookie)
    assert resolve_web_session(session, cookie) is None


def test_audit_log_is_append_only(session: Session) -> None:
    user = add_user(session, username="au", password=PASSWORD, role="supervisor", area_code="9901")
    session.commit()
    principal = Principal(user.id, user.username, Role.SUPERVISOR, "9901")
    access = audit.Access("GET", "/api/v1/children/c-1", "127.0.0.1")
    audit.record(
        session,
        principal,
        access,
        action="get_child_file",
        child_id="c-1",
        area_code="990101001001",
    )
    audit.record_many(
        session, principal, access, action="score_children", children=[("c-2", "990102001001")]
    )
    entry = session.execute(sa.select(AuditEntry).where(AuditEntry.child_id == "c-1")).scalar_one()
    assert (entry.username, entry.client, entry.outcome) == ("au", "127.0.0.1", "ok")
    entry.action = "rewritten"
    with pytest.raises(PermissionError, match="append-only"):
        session.flush()
    session.rollback()
    with pytest.raises(DatabaseError, match="append-only"):
        session.execute(sa.text("UPDATE audit_log SET action = 'x'"))
    session.rollback()
    with pytest.raises(DatabaseError, match="append-only"):
        session.execute(sa.text("DELETE FROM audit_log"))
    session.rollback()
    page = audit.audit_page(session, "990101")
    assert [e.child_id for e in page] == ["c-1"]
    everything = audit.audit_page(session, "9901", limit=1)
    assert [e.child_id for e in everything] == ["c-2"]
    older = audit.audit_page(session, "9901", before_id=everything[0].id)
    assert [e.child_id for e in older] == ["c-1"]
