"""``GET /api/v1/watchlist``: who needs a visit first in the caller's area, and why."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from service import audit
from service.areas import narrow
from service.deps import SCORE_READERS, Principal, SessionDep, StateDep, access_of, require_role
from service.repository.watchlist import WatchFilters, overdue_by_child, watch_list
from service.schemas.common import ERROR_RESPONSES, AreaCode, Lang, TierCode
from service.schemas.watchlist import WatchListPage
from shouhu.errors import NotFoundError

router = APIRouter(prefix="/watchlist", tags=["watchlist"], responses=ERROR_RESPONSES)


@router.get("", name="get_watchlist", response_model=WatchListPage)
def get_watchlist(
    request: Request,
    principal: Annotated[Principal, Depends(require_role(*SCORE_READERS))],
    state: StateDep,
    session: SessionDep,
    area: Annotated[AreaCode | None, Query(description="a sub-area of the caller's")] = None,
    tier: Annotated[list[TierCode] | None, Query(description="tiers to list")] = None,
    overdue: Annotated[bool | None, Query(description="only (not) overdue children")] = None,
    domain: Annotated[str | None, Query(max_length=32, description="a policy domain")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    lang: Annotated[Lang | None, Query()] = None,
) -> WatchListPage:
    """The run in force in the caller's area, ranked by tier, then calibrated risk, then days
    overdue; one audit entry for the list and one per child shown."""
    scope = narrow(principal, area)
    if scope is None:
        raise NotFoundError(f"area {area} not found")
    filters = WatchFilters(
        scope=scope,
        tiers=None if not tier else frozenset(tier),
        overdue=overdue,
        domain=domain,
        limit=limit,
        offset=offset,
    )
    page, shown = watch_list(
        state, filters, overdue_by_child(session, state, scope), lang or principal.lang
    )
    access = access_of(request)
    audit.record(session, principal, access, action="get_watchlist", area_code=scope, commit=False)
    audit.record_many(session, principal, access, action="get_watchlist", children=shown)
    return page
