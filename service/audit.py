"""Writing and reading the audit log (``service.db.audit.AuditEntry``).

:func:`record` is called for every read and write of a child's data — by
``service.deps.VisibleChild`` for every route with a ``child_id`` in its path, and by list
and batch routes for what they returned — and commits at once, so an access is logged even
when the handler fails afterwards. :func:`audit_page` is the supervisor's view: the entries of
children in their area, newest first, a page at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, or_, select
from sqlalchemy.orm import Session

from service.db.audit import AuditEntry
from service.db.base import utcnow

if TYPE_CHECKING:
    from service.deps import Principal

_TABLE = cast(Table, AuditEntry.__table__)

#: Outcomes of an access.
OK = "ok"
NOT_FOUND = "not_found"


@dataclass(frozen=True)
class Access:
    """Where a request came from: method, path and client address."""

    method: str
    path: str
    client: str


def _row(
    principal: Principal,
    access: Access,
    *,
    action: str,
    child_id: str | None,
    area_code: str | None,
    outcome: str,
    at: datetime,
) -> dict[str, object]:
    return {
        "at": at,
        "user_id": principal.user_id,
        "username": principal.username,
        "role": str(principal.role),
        "child_id": child_id,
        "area_code": area_code,
        "action": action[:48],
        "outcome": outcome,
        "method": access.method[:8],
        "path": access.path[:255],
        "client": access.client[:64],
    }


def record(
    session: Session,
    principal: Principal,
    access: Access,
    *,
    action: str,
    child_id: str | None = None,
    area_code: str | None = None,
    outcome: str = OK,
    commit: bool = True,
) -> None:
    """Append one audit entry.

    Parameters
    ----------
    session : Session
        The operational database.
    principal : Principal
        Who.
    access : Access
        The request (method, path, client address).
    action : str
        What (the route's name, e.g. ``get_child_file``).
    child_id : str, optional
        Which child (pseudonymous id); ``None`` for a list read.
    area_code : str, optional
        The child's village code, or the area a list covered.
    outcome : str, default="ok"
        ``ok`` or ``not_found``.
    commit : bool, default=True
        Commit at once (the default: the entry must survive a later failure).
    """
    # Core insert on the session's connection: the ORM's bulk machinery costs more than the
    # row itself, and this runs on every child-data request.
    session.connection().execute(
        _TABLE.insert(),
        [
            _row(
                principal,
                access,
                action=action,
                child_id=child_id,
                area_code=area_code,
                outcome=outcome,
                at=utcnow(),
            )
        ],
    )
    if commit:
        session.commit()


def record_many(
    session: Session,
    principal: Principal,
    access: Access,
    *,
    action: str,
    children: Iterable[tuple[str, str | None]],
    outcome: str = OK,
) -> int:
    """Append one entry per child (``(child_id, village_code)`` pairs) and commit.

    Returns
    -------
    int
        Entries written.
    """
    at = utcnow()
    rows = [
        _row(
            principal,
            access,
            action=action,
            child_id=child,
            area_code=area,
            outcome=outcome,
            at=at,
        )
        for child, area in children
    ]
    if rows:
        session.connection().execute(_TABLE.insert(), rows)
        session.commit()
    return len(rows)


def audit_page(
    session: Session,
    scope: str,
    *,
    limit: int = 50,
    before_id: int | None = None,
    child_id: str | None = None,
    username: str | None = None,
) -> Sequence[AuditEntry]:
    """Audit entries about children (or lists) in ``scope`` and below, newest first.

    Parameters
    ----------
    session : Session
        The operational database.
    scope : str
        Area code; entries whose area code starts with it are returned.
    limit : int, default=50
        Page size.
    before_id : int, optional
        Keyset cursor: only entries older than this id (the last id of the previous page).
    child_id, username : str, optional
        Narrow to one child or one user.

    Returns
    -------
    sequence of AuditEntry
        At most ``limit`` entries.
    """
    query = select(AuditEntry).where(
        or_(AuditEntry.area_code == scope, AuditEntry.area_code.startswith(scope, autoescape=True))
    )
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if child_id is not None:
        query = query.where(AuditEntry.child_id == child_id)
    if username is not None:
        query = query.where(AuditEntry.username == username)
    return session.execute(query.order_by(AuditEntry.id.desc()).limit(limit)).scalars().all()


__all__ = ["NOT_FOUND", "OK", "Access", "audit_page", "record", "record_many"]
