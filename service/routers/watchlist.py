"""``GET /api/v1/watchlist``: who needs a visit first in the caller's area, and why.

The route (:func:`read_watchlist`) is ``async``: the ranking reads the snapshot in memory, and
the overdue tasks and the audit entries go through ``service.deps.run_db`` (no thread-pool hop
on SQLite). :func:`get_watchlist` does the same for synchronous callers (the pages, which run
in the thread pool).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from service import audit
from service.areas import narrow
from service.deps import (
    SCORE_READERS,
    Principal,
    SessionDep,
    StateDep,
    access_of,
    require_role,
    run_db,
)
from service.repository.watchlist import WatchFilters, overdue_by_child, watch_list
from service.schemas.common import ERROR_RESPONSES, AreaCode, Lang, TierCode
from service.schemas.watchlist import WatchListPage
from service.state import ServiceState
from shouhu.errors import NotFoundError

router = APIRouter(prefix="/watchlist", tags=["watchlist"], responses=ERROR_RESPONSES)


def _filters(
    principal: Principal,
    area: str | None,
    tier: list[TierCode] | None,
    overdue: bool | None,
    domain: str | None,
    limit: int,
    offset: int,
) -> WatchFilters:
    scope = narrow(principal, area)
    if scope is None:
        raise NotFoundError(f"area {area} not found")
    return WatchFilters(
        scope=scope,
        tiers=None if not tier else frozenset(tier),
        overdue=overdue,
        domain=domain,
        limit=limit,
        offset=offset,
    )


def _audit_list(
    session: Session,
    principal: Principal,
    access: audit.Access,
    scope: str,
    shown: list[tuple[str, str]],
) -> None:
    """One entry for the list and one per child shown, in one statement and commit."""
    audit.record_many(
        session, principal, access, action="get_watchlist", children=shown, list_area=scope
    )


def get_watchlist(
    request: Request,
    principal: Principal,
    state: ServiceState,
    session: Session,
    area: str | None = None,
    tier: list[TierCode] | None = None,
    overdue: bool | None = None,
    domain: str | None = None,
    limit: int = 50,
    offset: int = 0,
    lang: Lang | None = None,
) -> WatchListPage:
    """The watch list of :func:`read_watchlist`, called from synchronous code (the pages).

    Raises
    ------
    NotFoundError
        If ``area`` is not the caller's area or below.
    """
    filters = _filters(principal, area, tier, overdue, domain, limit, offset)
    late = overdue_by_child(session, state, filters.scope)
    page, shown = watch_list(state, filters, late, lang or principal.lang)
    _audit_list(session, principal, access_of(request), filters.scope, shown)
    return page


@router.get("", name="get_watchlist", response_model=WatchListPage, summary="Get Watchlist")
async def read_watchlist(
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
    filters = _filters(principal, area, tier, overdue, domain, limit, offset)
    late = await run_db(state, overdue_by_child, session, state, filters.scope)
    page, shown = watch_list(state, filters, late, lang or principal.lang)
    access = access_of(request)
    await run_db(state, _audit_list, session, principal, access, filters.scope, shown)
    return page
