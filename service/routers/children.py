"""``GET /api/v1/children/{child_id}``: a child's file (caseworkers and supervisors).

``async``: the file is read from the snapshot's records in memory (a couple of milliseconds).
Only when a store changed since the snapshot does it read the DuckDB stores, in the thread
pool. (A handler in the pool competes for the GIL with the event loop serving everything else,
and under load waited tens of milliseconds for it.)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from service.deps import FILE_READERS, Principal, SessionDep, StateDep, VisibleChild, require_role
from service.repository.children import child_file, current_records
from service.schemas.children import ChildFilePublic
from service.schemas.common import ERROR_RESPONSES, Lang

router = APIRouter(prefix="/children", tags=["children"], responses=ERROR_RESPONSES)


@router.get("/{child_id}", name="get_child_file", response_model=ChildFilePublic)
async def get_child_file(
    principal: Annotated[Principal, Depends(require_role(*FILE_READERS))],
    child: VisibleChild,
    state: StateDep,
    session: SessionDep,
    lang: Annotated[Lang | None, Query()] = None,
    months: Annotated[int, Query(ge=1, le=120, description="timeline months")] = 24,
) -> ChildFilePublic:
    """Profile, timeline of visits, school, guardianship and incidents, score history with
    tiers and reasons, and reviews."""
    language = lang or principal.lang
    records = current_records(state)
    if records is not None and state.db_inline:
        return child_file(state, session, child.child_id, language, months, records=records)
    return await run_in_threadpool(child_file, state, session, child.child_id, language, months)
