"""``GET /api/v1/children/{child_id}``: a child's file (caseworkers and supervisors)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from service.deps import FILE_READERS, Principal, SessionDep, StateDep, VisibleChild, require_role
from service.repository.children import child_file
from service.schemas.children import ChildFilePublic
from service.schemas.common import ERROR_RESPONSES, Lang

router = APIRouter(prefix="/children", tags=["children"], responses=ERROR_RESPONSES)


@router.get("/{child_id}", name="get_child_file", response_model=ChildFilePublic)
def get_child_file(
    principal: Annotated[Principal, Depends(require_role(*FILE_READERS))],
    child: VisibleChild,
    state: StateDep,
    session: SessionDep,
    lang: Annotated[Lang | None, Query()] = None,
    months: Annotated[int, Query(ge=1, le=120, description="timeline months")] = 24,
) -> ChildFilePublic:
    """Profile, timeline of visits, school, guardianship and incidents, score history with
    tiers and reasons, and reviews."""
    return child_file(state, session, child.child_id, lang or principal.lang, months)
