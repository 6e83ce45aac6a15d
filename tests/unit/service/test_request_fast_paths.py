"""The per-request shortcuts keep their guarantees: verified tokens, the audit insert, the WAL.

- A verified token is trusted for a few seconds, never past its expiry, and a revocation in
  the process applies at once.
- The audit insert compiled once and sent to the driver stores exactly what the ORM stores.
- The background checkpointer keeps the WAL small without a request paying for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service import audit
from service.accounts import add_user, disable_user
from service.auth.tokens import (
    VerifiedTokens,
    issue_token,
    resolve_token_row,
    revoke_token,
)
from service.db.audit import AuditEntry
from service.db.base import (
    SERVICE_AUTOCHECKPOINT_PAGES,
    WalCheckpointer,
    is_sqlite_file,
    make_engine,
    make_session_factory,
    utcnow,
)
from service.db.migrate import upgrade
from service.deps import Principal

PASSWORD = "a long enough password"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(
        f"sqlite:///{tmp_path / 'service.db'}", wal_autocheckpoint=SERVICE_AUTOCHECKPOINT_PAGES
    )
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


def _principal(session: Session, username: str = "sup") -> tuple[Principal, str]:
    user = add_user(
        session, username=username, password=PASSWORD, role="supervisor", area_code="990101"
    )
    token, _ = issue_token(session, user, days=1)
    session.commit()
    return Principal.of(user), token


def test_a_verified_token_is_trusted_briefly_and_never_past_its_expiry() -> None:
    clock = Clock()
    cache: VerifiedTokens[str] = VerifiedTokens(seconds=5.0, clock=clock)
    soon = utcnow() + timedelta(days=1)
    cache.put("shk_a", "alice", user_id=1, expires_at=soon)
    assert cache.get("shk_a") == "alice"
    assert cache.get("shk_b") is None
    clock.now += 5.0
    assert cache.get("shk_a") is None  # verified too long ago: ask the database again
    # A token that expires in two seconds is trusted for two seconds, not five.
    cache.put("shk_c", "carol", user_id=3, expires_at=utcnow() + timedelta(seconds=2))
    clock.now += 2.5
    assert cache.get("shk_c") is None
    cache.put("shk_d", "dave", user_id=4, expires_at=utcnow() - timedelta(seconds=1))
    assert cache.get("shk_d") is None and len(cache) <= 2


def test_the_cache_stays_bounded() -> None:
    clock = Clock()
    cache: VerifiedTokens[int] = VerifiedTokens(seconds=60.0, max_entries=3, clock=clock)
    later = utcnow() + timedelta(days=1)
    for i in range(10):
        cache.put(f"shk_{i}", i, user_id=i, expires_at=later)
    assert len(cache) <= 3
    assert cache.get("shk_9") == 9  # the newest are kept


def test_revoking_or_disabling_forgets_verified_tokens_at_once(
    sessions: sessionmaker[Session],
) -> None:
    cache: VerifiedTokens[Principal] = VerifiedTokens(seconds=3600.0)
    with sessions() as session:
        principal, token = _principal(session)
        other, other_token = _principal(session, "sup2")
        for t, p in ((token, principal), (other_token, other)):
            found = resolve_token_row(session, t)
            assert found is not None and Principal.of(found[0]) == p
            cache.put(t, p, user_id=p.user_id, expires_at=found[1])
        assert cache.get(token) == principal
        assert revoke_token(session, token)
        session.commit()
        assert cache.get(token) is None
        assert resolve_token_row(session, token) is None
        assert cache.get(other_token) == other
        disable_user(session, "sup2")
        session.commit()
        assert cache.get(other_token) is None


def test_the_audit_insert_stores_what_the_orm_would(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        principal, _ = _principal(session)
        access = audit.Access("GET", "/api/v1/children/c-1/score", "127.0.0.1")
        before = utcnow()
        audit.record(
            session, principal, access, action="score_child", child_id="c-1", area_code="990101001"
        )
        written = audit.record_many(
            session,
            principal,
            audit.Access("GET", "/api/v1/watchlist", "10.0.0.2"),
            action="get_watchlist",
            children=[("c-2", "990101002"), ("c-3", None)],
            list_area="990101",
        )
        assert written == 3
        session.add(
            AuditEntry(
                at=before,
                user_id=principal.user_id,
                username=principal.username,
                role="supervisor",
                child_id="c-4",
                area_code="990101003",
                action="orm",
                outcome=audit.NOT_FOUND,
                method="GET",
                path="/x",
                client="",
            )
        )
        session.commit()
    with sessions() as session:
        rows = session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars().all()
    assert [(r.child_id, r.area_code, r.action, r.outcome) for r in rows] == [
        ("c-1", "990101001", "score_child", "ok"),
        (None, "990101", "get_watchlist", "ok"),
        ("c-2", "990101002", "get_watchlist", "ok"),
        ("c-3", None, "get_watchlist", "ok"),
        ("c-4", "990101003", "orm", "not_found"),
    ]
    first = rows[0]
    assert (first.user_id, first.username, first.role) == (principal.user_id, "sup", "supervisor")
    assert (first.method, first.path, first.client) == (
        "GET",
        "/api/v1/children/c-1/score",
        "127.0.0.1",
    )
    # Timestamps round-trip as aware UTC, in order, whichever way the row was written.
    assert all(r.at.tzinfo is not None and r.at.utcoffset() == timedelta(0) for r in rows)
    assert before <= first.at <= rows[1].at
    assert rows[-1].at == before
    # The keyset page of a supervisor finds the rows written by the fast path.
    with sessions() as session:
        page = audit.audit_page(session, "990101", limit=10)
    assert {e.child_id for e in page} >= {"c-1", "c-2", None}


def test_the_audit_insert_takes_aware_times_in_any_zone(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        principal, _ = _principal(session)
        access = audit.Access("GET", "/p", "")
        row = audit._values(
            principal,
            access,
            action="a",
            child_id="c",
            area_code=None,
            outcome="ok",
            at=datetime(2026, 1, 1, 16, 0, tzinfo=timezone(timedelta(hours=8))),
        )
        audit._insert(session, [row])
        session.commit()
        stored = session.execute(select(AuditEntry.at)).scalar_one()
    assert stored == datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def test_the_checkpointer_keeps_the_wal_small(tmp_path: Path) -> None:
    database = tmp_path / "service.db"
    engine = make_engine(f"sqlite:///{database}", wal_autocheckpoint=SERVICE_AUTOCHECKPOINT_PAGES)
    assert is_sqlite_file(engine) and not is_sqlite_file(make_engine("sqlite://"))
    upgrade(engine)
    sessions = make_session_factory(engine)
    with engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert pages == SERVICE_AUTOCHECKPOINT_PAGES
    with sessions() as session:
        principal, _ = _principal(session)
        for k in range(40):
            audit.record_many(
                session,
                principal,
                audit.Access("GET", "/api/v1/watchlist", ""),
                action="get_watchlist",
                children=[(f"c-{k}-{i}", "990101001") for i in range(50)],
                list_area="990101",
            )
    checkpointer = WalCheckpointer(engine, interval=0.05)
    busy, frames, copied = checkpointer.checkpoint()
    assert busy == 0 and frames > 0 and copied == frames  # everything went to the main file
    checkpointer.start()
    try:
        deadline = utcnow() + timedelta(seconds=30)
        while checkpointer.checkpoints < 3 and utcnow() < deadline:
            checkpointer._stop.wait(0.05)
        assert checkpointer.checkpoints >= 3
    finally:
        checkpointer.stop()
    assert checkpointer._thread is None
    with sessions() as session:
        count = session.execute(select(AuditEntry.id)).all()
    assert len(count) == 40 * 51
    engine.dispose()
