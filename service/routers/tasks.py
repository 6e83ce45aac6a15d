"""Tasks from the tier policy's response times: the caller's open tasks and a child's history."""

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
from service.schemas.common import ERROR_RESPONSES, AreaCode, Lang
from service.schemas.workflow import TaskList
from service.workflow.public import task_public
from service.workflow.tasks import open_tasks, task_history
from shouhu.errors import NotFoundError

router = APIRouter(tags=["tasks"], responses=ERROR_RESPONSES)

CaseReader = Annotated[Principal, Depends(require_role(*FILE_READERS))]


@router.get("/tasks", name="list_tasks", response_model=TaskList)
def list_tasks(
    request: Request,
    principal: CaseReader,
    session: SessionDep,
    area: Annotated[AreaCode | None, Query(description="a sub-area of the caller's")] = None,
    overdue: Annotated[bool, Query(description="only tasks past their due time")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    lang: Annotated[Lang | None, Query()] = None,
) -> TaskList:
    """Open tasks of the children in the caller's area, soonest due first; one audit entry for
    the list and one per child listed."""
    scope = narrow(principal, area)
    if scope is None:
        raise NotFoundError(f"area {area} not found")
    views = open_tasks(session, area_code=scope, overdue_only=overdue, limit=limit)
    access = access_of(request)
    audit.record(session, principal, access, action="list_tasks", area_code=scope, commit=False)
    shown = dict.fromkeys((v.task.child_id, v.task.village_code) for v in views)
    audit.record_many(session, principal, access, action="list_tasks", children=list(shown))
    session.commit()
    return TaskList(tasks=[task_public(v, lang or principal.lang) for v in views])


@router.get("/children/{child_id}/tasks", name="list_child_tasks", response_model=TaskList)
def list_child_tasks(
    principal: CaseReader,
    child: VisibleChild,
    session: SessionDep,
    lang: Annotated[Lang | None, Query()] = None,
) -> TaskList:
    """Every task the child ever had, newest first: open, done (with the review) or superseded
    by a later tier."""
    views = task_history(session, child.child_id)
    return TaskList(tasks=[task_public(v, lang or principal.lang) for v in views])
