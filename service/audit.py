"""Writing and reading the audit log (``service.db.audit.AuditEntry``).

:func:`record` is called for every read and write of a child's data — by
``service.deps.VisibleChild`` for every route with a ``child_id`` in its path, and by list
and batch routes for what they returned — and commits at once, so an access is logged even
when the handler fails afterwards. :func:`audit_page` is the supervisor's view: the entries of
children in their area, newest first, a page at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Dialect, Table, bindparam, or_, select
from sqlalchemy.orm import Session

from service.db.audit import AuditEntry
from service.db.base import utcnow

if TYPE_CHECKING:
    from service.deps import Principal

_TABLE = cast(Table, AuditEntry.__table__)
#: Columns written by :func:`record`, in the order of :func:`_values`.
_COLUMNS = (
    "at",
    "user_id",
    "username",
    "role",
    "child_id",
    "area_code",
    "action",
    "outcome",
    "method",
    "path",
    "client",
)

#: Outcomes of an access.
OK = "ok"
NOT_FOUND = "not_found"


@dataclass(frozen=True)
class Access:
    """Where a request came from: method, path and client address."""

    method: str
    path: str
    client: str


def _values(
    principal: Principal,
    access: Access,
    *,
    action: str,
    child_id: str | None,
    area_code: str | None,
    outcome: str,
    at: datetime,
) -> tuple[Any, ...]:
    """One row's values, in the order of :data:`_COLUMNS`."""
    return (
        at,
        principal.user_id,
        principal.username,
        str(principal.role),
        child_id,
        area_code,
        action[:48],
        outcome,
        access.method[:8],
        access.path[:255],
        access.client[:64],
    )


@dataclass(frozen=True)
class _Insert:
    """The audit insert compiled once for a dialect, with each column's bind processor."""

    sql: str
    positions: tuple[int, ...] | None  # value index per placeholder (positional styles)
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column index, processor)

    def parameters(self, rows: list[tuple[Any, ...]]) -> list[Any]:
        """Driver parameters of ``rows``: processed, in the statement's order."""
        out: list[Any] = []
        # The rows of one call share their time: each distinct value is processed once.
        seen: dict[int, tuple[Any, Any]] = {}
        for row in rows:
            values = list(row)
            for i, process in self.processors:
                value = values[i]
                known = seen.get(i)
                if known is None or known[0] is not value:
                    known = seen[i] = (value, process(value))
                values[i] = known[1]
            if self.positions is None:
                out.append(dict(zip(_COLUMNS, values, strict=True)))
            else:
                out.append(tuple(values[i] for i in self.positions))
        return out


_INSERTS: dict[tuple[str, str, str], _Insert] = {}
_INSERTS_LOCK = threading.Lock()


def _compiled(dialect: Dialect) -> _Insert:
    key = (dialect.name, str(dialect.driver), str(dialect.paramstyle))
    found = _INSERTS.get(key)
    if found is not None:
        return found
    compiled = (
        _TABLE.insert()
        .values({name: bindparam(name) for name in _COLUMNS})
        .compile(dialect=dialect)
    )
    positions = (
        tuple(_COLUMNS.index(name) for name in compiled.positiontup or ())
        if compiled.positional
        else None
    )
    # The column types' own bind processing (UTCDateTime's UTC normalisation, then the
    # dialect's datetime format), so rows are stored exactly as the ORM would store them.
    processors = tuple(
        (i, process)
        for i, name in enumerate(_COLUMNS)
        if (process := _TABLE.c[name].type.bind_processor(dialect)) is not None
    )
    insert = _Insert(str(compiled), positions, processors)
    with _INSERTS_LOCK:
        _INSERTS[key] = insert
    return insert


def _insert(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """Insert rows of :func:`_values` on the session's connection (in its transaction).

    The statement is compiled once per dialect and sent to the driver as is: SQLAlchemy's
    per-execution work (cache key, parameter processing through the compiled statement)
    cost more than the insert itself for the fifty rows of a watch-list page, and this runs
    on every child-data request.
    """
    connection = session.connection()
    insert = _compiled(connection.dialect)
    parameters = insert.parameters(rows)
    connection.exec_driver_sql(insert.sql, parameters if len(parameters) > 1 else parameters[0])


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
    row = _values(
        principal,
        access,
        action=action,
        child_id=child_id,
        area_code=area_code,
        outcome=outcome,
        at=utcnow(),
    )
    _insert(session, [row])
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
    list_area: str | None = None,
    commit: bool = True,
) -> int:
    """Append one entry per child (``(child_id, village_code)`` pairs) and commit.

    Parameters
    ----------
    session : Session
        The operational database.
    principal : Principal
        Who.
    access : Access
        The request.
    action : str
        What.
    children : iterable of (str, str or None)
        The children touched and their villages.
    outcome : str, default="ok"
        ``ok`` or ``not_found``.
    list_area : str, optional
        Also write one entry for the list read itself (no child, this area), first, in the
        same statement and commit (the watch list).
    commit : bool, default=True
        Commit at once (``False`` when the caller writes more entries and commits them all).

    Returns
    -------
    int
        Entries written.
    """
    at = utcnow()
    rows = (
        [
            _values(
                principal,
                access,
                action=action,
                child_id=None,
                area_code=list_area,
                outcome=outcome,
                at=at,
            )
        ]
        if list_area is not None
        else []
    )
    rows.extend(
        _values(
            principal,
            access,
            action=action,
            child_id=child,
            area_code=area,
            outcome=outcome,
            at=at,
        )
        for child, area in children
    )
    if rows:
        _insert(session, rows)
        if commit:
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
