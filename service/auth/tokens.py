"""API bearer tokens: a random secret given once to the user, stored only as its SHA-256.

:class:`VerifiedTokens` remembers, for a few seconds, what a token resolved to, so the API does
not query the database for the caller of every request. Revoking a token or disabling a user
in the same process forgets at once (:func:`revoke_token`, :func:`revoke_user_tokens`); a
change made by another process (``shouhu users disable``) takes effect within
:data:`VERIFIED_SECONDS`.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.db.base import utcnow
from service.db.identity import ApiToken, User

#: Prefix that makes a leaked token recognisable (secret scanners, logs).
TOKEN_PREFIX = "shk_"
#: How long a verified token is trusted without asking the database again (seconds).
VERIFIED_SECONDS = 5.0
#: Verified tokens remembered at most (the oldest are dropped first).
VERIFIED_MAX = 10_000

T = TypeVar("T")


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
    found = resolve_token_row(session, token, now=now)
    return None if found is None else found[0]


def revoke_token(session: Session, token: str, *, now: datetime | None = None) -> bool:
    """Revoke one token; ``True`` if it existed and was live.

    Every :class:`VerifiedTokens` of the process forgets it at once.
    """
    digest = token_digest(token)
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    _forget(lambda entry_digest, _user: entry_digest == digest)
    return bool(getattr(result, "rowcount", 0))


def revoke_user_tokens(session: Session, user_id: int, *, now: datetime | None = None) -> int:
    """Revoke every live token of a user (when the account is disabled); returns the count.

    Every :class:`VerifiedTokens` of the process forgets the user's tokens at once.
    """
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    _forget(lambda _digest, entry_user: entry_user == user_id)
    return int(getattr(result, "rowcount", 0))


@dataclass(frozen=True)
class _Verified(Generic[T]):
    value: T
    user_id: int
    until: float


class VerifiedTokens(Generic[T]):
    """What recently verified tokens resolved to (e.g. the API principal), for a few seconds.

    A token is verified against the database (:func:`resolve_token`) at most once every
    ``seconds`` and never trusted past its own expiry; unknown, expired and revoked tokens are
    not remembered, so they cost a lookup every time. Thread-safe.

    Parameters
    ----------
    seconds : float, default=VERIFIED_SECONDS
        How long a verification is trusted.
    max_entries : int, default=VERIFIED_MAX
        Tokens remembered at most.
    clock : callable, default=time.monotonic
        Seconds (tests pass a fake clock).
    """

    def __init__(
        self,
        seconds: float = VERIFIED_SECONDS,
        max_entries: int = VERIFIED_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, _Verified[T]] = {}
        self._lock = threading.Lock()
        _LIVE.add(self)

    def get(self, token: str) -> T | None:
        """What ``token`` resolved to, if it was verified less than ``seconds`` ago."""
        entry = self._entries.get(token_digest(token))
        if entry is None or entry.until <= self.clock():
            return None
        return entry.value

    def put(self, token: str, value: T, *, user_id: int, expires_at: datetime) -> None:
        """Remember a token just verified, with the user it belongs to and its expiry."""
        left = (expires_at - utcnow()).total_seconds()
        if left <= 0:
            return
        until = self.clock() + min(self.seconds, left)
        with self._lock:
            if len(self._entries) >= self.max_entries:
                now = self.clock()
                self._entries = {k: v for k, v in self._entries.items() if v.until > now}
                while len(self._entries) >= self.max_entries:
                    self._entries.pop(next(iter(self._entries)))
            self._entries[token_digest(token)] = _Verified(value, user_id, until)

    def forget(self, matches: Callable[[str, int], bool]) -> int:
        """Drop the entries whose ``(digest, user_id)`` match; returns how many."""
        with self._lock:
            gone = [k for k, v in self._entries.items() if matches(k, v.user_id)]
            for key in gone:
                del self._entries[key]
        return len(gone)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


#: Every live cache of the process, so a revocation reaches them all.
_LIVE: weakref.WeakSet[VerifiedTokens[Any]] = weakref.WeakSet()


def _forget(matches: Callable[[str, int], bool]) -> None:
    for cache in list(_LIVE):
        cache.forget(matches)


def resolve_token_row(
    session: Session, token: str, *, now: datetime | None = None
) -> tuple[User, datetime] | None:
    """:func:`resolve_token` with the token's expiry (what :class:`VerifiedTokens` needs)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    moment = now or utcnow()
    row = session.execute(
        select(User, ApiToken.expires_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.token_hash == token_digest(token),
            ApiToken.revoked_at.is_(None),
            ApiToken.expires_at > moment,
            User.disabled_at.is_(None),
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])


__all__ = [
    "TOKEN_PREFIX",
    "VERIFIED_MAX",
    "VERIFIED_SECONDS",
    "VerifiedTokens",
    "issue_token",
    "resolve_token",
    "resolve_token_row",
    "revoke_token",
    "revoke_user_tokens",
    "token_digest",
]
