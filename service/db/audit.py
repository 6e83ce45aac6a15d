"""The append-only audit log: every read and write of a child's data.

One row per child touched (a batch score of ten children writes ten rows) and one row per
list read (the watch list, with the area it covered). Rows are only inserted: the ORM refuses
to update or delete them (:func:`_refuse_changes`) and the migration adds database triggers
that refuse it too, so neither a bug nor a hand-typed ``UPDATE`` can rewrite history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from service.db.base import Base, UTCDateTime, utcnow


class AuditEntry(Base):
    """Who did what to which child, when, and from where.

    Attributes
    ----------
    at : datetime
        When (UTC).
    user_id, username, role : int, str, str
        Who (copied, so the row stays readable whatever happens to the account later).
    child_id : str or None
        The child's pseudonymous id; ``None`` for a list read.
    area_code : str or None
        The child's village code, or the area a list covered: what a supervisor's audit page
        filters on.
    action : str
        What, as ``resource.verb`` (``child.read``, ``score.read``, ``watchlist.read``,
        ``review.create``…).
    outcome : str
        ``ok``, or ``not_found`` when the child is unknown or outside the caller's area (the
        caller saw a 404 either way).
    method, path : str
        The HTTP request.
    client : str
        The client address (from where).
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_area_at", "area_code", "at"),
        Index("ix_audit_log_child_at", "child_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    child_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    area_code: Mapped[str | None] = mapped_column(String(12), nullable=True)
    action: Mapped[str] = mapped_column(String(48))
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(255))
    client: Mapped[str] = mapped_column(String(64), default="")


@event.listens_for(Session, "before_flush")
def _refuse_changes(session: Session, _context: Any, _instances: Any) -> None:
    """Refuse to flush an update or a delete of an audit row (append-only)."""
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, AuditEntry) and (obj in session.deleted or session.is_modified(obj)):
            raise PermissionError("the audit log is append-only: rows cannot change")


__all__ = ["AuditEntry"]
