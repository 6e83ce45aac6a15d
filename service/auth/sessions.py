"""Page sign-in: username and password to a session cookie, stored only as its digest."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.auth.passwords import dummy_hash, verify_password
from service.auth.tokens import token_digest
from service.db.base import utcnow
from service.db.identity import User, WebSession

#: Name of the session cookie (HttpOnly, SameSite=Lax, Secure when settings say so).
SESSION_COOKIE = "shouhu_session"


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this username and password, or ``None``.

    An unknown or disabled user costs one argon2 verification too, so the answer time does not
    reveal which usernames exist.
    """
    user = session.execute(
        select(User).where(User.username == username.strip())
    ).scalar_one_or_none()
    if user is None or not user.active:
        verify_password(dummy_hash(), password)
        return None
    return user if verify_password(user.password_hash, password) else None


def start_web_session(
    session: Session, user: User, *, hours: int, client: str = "", now: datetime | None = None
) -> str:
    """Open a page session for ``user`` and return the cookie value (shown once).

    Parameters
    ----------
    session : Session
        The operational database (the caller commits).
    user : User
        The signed-in user.
    hours : int
        Lifetime of the session.
    client : str, optional
        The client address, kept with the session.
    now : datetime, optional
        Start time (UTC now).

    Returns
    -------
    str
        The cookie value: 256 random bits, URL-safe.
    """
    created = now or utcnow()
    value = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            user_id=user.id,
            session_hash=token_digest(value),
            created_at=created,
            expires_at=created + timedelta(hours=hours),
            client=client[:64],
        )
    )
    session.flush()
    return value


def resolve_web_session(
    session: Session, cookie: str, *, now: datetime | None = None
) -> User | None:
    """The active user of a live session cookie, or ``None``."""
    if not cookie or len(cookie) > 128:
        return None
    moment = now or utcnow()
    return session.execute(
        select(User)
        .join(WebSession, WebSession.user_id == User.id)
        .where(
            WebSession.session_hash == token_digest(cookie),
            WebSession.revoked_at.is_(None),
            WebSession.expires_at > moment,
            User.disabled_at.is_(None),
        )
    ).scalar_one_or_none()


def end_web_session(session: Session, cookie: str, *, now: datetime | None = None) -> bool:
    """Sign out: revoke the session behind ``cookie``; ``True`` if it was live."""
    result = session.execute(
        update(WebSession)
        .where(WebSession.session_hash == token_digest(cookie), WebSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


def end_user_sessions(session: Session, user_id: int, *, now: datetime | None = None) -> int:
    """Revoke every live session of a user (when the account is disabled)."""
    result = session.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    return int(getattr(result, "rowcount", 0))


__all__ = [
    "SESSION_COOKIE",
    "authenticate",
    "end_user_sessions",
    "end_web_session",
    "resolve_web_session",
    "start_web_session",
]
