"""The early-warning feed: alerts of the caller's area, and a child's alerts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from service import audit
from service.areas import narrow
from service.deps import (
    FILE_READERS,
    Principal,
    SessionDep,
    VisibleChild,
    access_of,
    require_role,
)
from service.schemas.common import ERROR_RESPONSES, AreaCode
from service.schemas.workflow import AlertFeed
from service.workflow.alerts import alert_feed
from service.workflow.public import alert_public
from shouhu.errors import NotFoundError

router = APIRouter(tags=["alerts"], responses=ERROR_RESPONSES)

CaseReader = Annotated[Principal, Depends(require_role(*FILE_READERS))]


@router.get("/alerts", name="list_alerts", response_model=AlertFeed)
def list_alerts(
    request: Request,
    principal: CaseReader,
    session: SessionDep,
    area: Annotated[AreaCode | None, Query(description="a sub-area of the caller's")] = None,
    after_id: Annotated[int | None, Query(ge=0, description="only newer alerts")] = None,
    before_id: Annotated[int | None, Query(ge=1, description="only older alerts")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AlertFeed:
    """Alerts of the caller's area, newest first; poll with ``after_id``, page back with
    ``before_id``. Audited per child listed."""
    scope = narrow(principal, area)
    if scope is None:
        raise NotFoundError(f"area {area} not found")
    views = alert_feed(
        session, area_code=scope, after_id=after_id, before_id=before_id, limit=limit
    )
    access = access_of(request)
    audit.record(session, principal, access, action="list_alerts", area_code=scope, commit=False)
    shown = dict.fromkeys((v.alert.child_id, v.alert.village_code) for v in views)
    audit.record_many(session, principal, access, action="list_alerts", children=list(shown))
    session.commit()
    return AlertFeed(alerts=[alert_public(v) for v in views])


@router.get("/children/{child_id}/alerts", name="list_child_alerts", response_model=AlertFeed)
def list_child_alerts(
    principal: CaseReader,
    child: VisibleChild,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AlertFeed:
    """The child's alerts, newest first."""
    views = alert_feed(session, child_id=child.child_id, limit=limit)
    return AlertFeed(alerts=[alert_public(v) for v in views])
