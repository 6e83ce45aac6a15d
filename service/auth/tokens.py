"""API bearer tokens: a random secret given once to the user, stored only as its SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.db.base import utcnow
from service.db.identity import ApiToken, User

#: Prefix that makes a leaked token recognisable (secret scanners, logs).
TOKEN_PREFIX = "shk_"


def token_digest(token: str) -> str:
    """The SHA-256 hex digest stored for ``token``.

    A fast hash is right here (unlike passwords): the token is 256 random bits, so there is
    nothing to guess, and every API request checks one.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(
    session: Session, user: User, *, days: int, label: str = "", now: datetime | None = None
) -> tuple[str, ApiToken]:
    """Create a bearer token for ``user``; the plain token is returned once and never stored.

    Parameters
    ----------
    session : Session
        The operational database (the caller commits).
    user : User
        An active user.
    days : int
        Lifetime.
    label : str, optional
        What the token is for (``cli``, ``bench``…).
    now : datetime, optional
        Creation time (UTC now).

    Returns
    -------
    (str, ApiToken)
        The token to hand to the user, and its stored row.

    Raises
    ------
    ValueError
        If the user is disabled.
    """
    if not user.active:
        raise ValueError(f"user {user.username} is disabled")
    created = now or utcnow()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        token_hash=token_digest(token),
        label=label[:64],
        created_at=created,
        expires_at=created + timedelta(days=days),
    )
    session.add(row)
    session.flush()
    return token, row


def resolve_token(session: Session, token: str, *, now: datetime | None = None) -> User | None:
    """The active user a bearer token belongs to, or ``None`` (unknown, expired, revoked,
    or the user disabled)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    moment = now or utcnow()
    row = session.execute(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.token_hash == token_digest(token),
            ApiToken.revoked_at.is_(None),
            ApiToken.expires_at > moment,
            User.disabled_at.is_(None),
        )
    ).scalar_one_or_none()
    return row


def revoke_token(session: Session, token: str, *, now: datetime | None = None) -> bool:
    """Revoke one token; ``True`` if it existed and was live."""
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.token_hash == token_digest(token), ApiToken.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


def revoke_user_tokens(session: Session, user_id: int, *, now: datetime | None = None) -> int:
    """Revoke every live token of a user (when the account is disabled); returns the count."""
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    return int(getattr(result, "rowcount", 0))


__all__ = [
    "TOKEN_PREFIX",
    "issue_token",
    "resolve_token",
    "revoke_token",
    "revoke_user_tokens",
    "token_digest",
]
