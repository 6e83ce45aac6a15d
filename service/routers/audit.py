"""``GET /api/v1/audit``: supervisors page through the audit log of their area."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from service.areas import narrow
from service.audit import audit_page
from service.deps import Principal, Role, SessionDep, require_role
from service.schemas.audit import AuditEntryPublic, AuditPage
from service.schemas.common import ERROR_RESPONSES, AreaCode, ChildId
from shouhu.errors import NotFoundError

router = APIRouter(prefix="/audit", tags=["audit"], responses=ERROR_RESPONSES)


@router.get("", name="list_audit_entries", response_model=AuditPage)
def list_audit_entries(
    principal: Annotated[Principal, Depends(require_role(Role.SUPERVISOR, Role.ADMIN))],
    session: SessionDep,
    area: Annotated[AreaCode | None, Query(description="a sub-area of the caller's")] = None,
    child_id: Annotated[ChildId | None, Query()] = None,
    username: Annotated[str | None, Query(max_length=64)] = None,
    before_id: Annotated[int | None, Query(ge=1, description="cursor: older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AuditPage:
    """Who read or wrote which child's data in the caller's area, newest first."""
    scope = narrow(principal, area)
    if scope is None:
        raise NotFoundError(f"area {area} not found")
    entries = audit_page(
        session, scope, limit=limit, before_id=before_id, child_id=child_id, username=username
    )
    items = [
        AuditEntryPublic(
            id=e.id,
            at=e.at,
            username=e.username,
            role=e.role,
            child_id=e.child_id,
            area_code=e.area_code,
            action=e.action,
            outcome=e.outcome,
            method=e.method,
            path=e.path,
            client=e.client,
        )
        for e in entries
    ]
    return AuditPage(
        area_code=scope,
        items=items,
        next_before_id=items[-1].id if len(items) == limit else None,
    )
