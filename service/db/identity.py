"""Who may sign in: users, their API bearer tokens and their page sessions.

Secrets are never stored: passwords as argon2 hashes, tokens and session ids as SHA-256 digests
of a random value only the holder knows. A user is never deleted (the audit log names them);
``disabled_at`` ends every token and session at once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, UTCDateTime, utcnow

#: Roles, as stored; ``service.deps.Role`` is the typed view.
ROLES: tuple[str, ...] = ("caseworker", "supervisor", "analyst", "admin")


class User(Base):
    """A person who uses the service, with one role and one area (city/county/township/village).

    Attributes
    ----------
    username : str
        Sign-in name (unique; a work id, not a person's name).
    password_hash : str
        argon2id hash.
    role : str
        One of :data:`ROLES`.
    area_code : str
        The area the user sees: children whose village code starts with it.
    lang : str
        ``zh`` or ``en``, the user's page and explanation language.
    disabled_at : datetime or None
        Set when the account is disabled; its tokens and sessions stop working.
    """

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('caseworker', 'supervisor', 'analyst', 'admin')", name="role_known"
        ),
        CheckConstraint("lang IN ('zh', 'en')", name="lang_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    area_code: Mapped[str] = mapped_column(String(12))
    lang: Mapped[str] = mapped_column(String(2), default="zh")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    @property
    def active(self) -> bool:
        """Whether the account may sign in."""
        return self.disabled_at is None


class ApiToken(Base):
    """A bearer token for the JSON API; only its SHA-256 digest is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebSession(Base):
    """A signed-in browser session for the pages; only the cookie value's digest is stored."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_expires_at", "expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    client: Mapped[str] = mapped_column(String(64), default="")


__all__ = ["ROLES", "ApiToken", "User", "WebSession"]
