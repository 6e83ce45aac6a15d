"""Supervisors' decisions on a child's tier (override or confirm), a child's overrides, and the
override-rate statistics."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from models.policy import Tier
from service.areas import narrow
from service.db.base import utcnow
from service.deps import (
    FILE_READERS,
    Principal,
    Role,
    SessionDep,
    StateDep,
    VisibleChild,
    require_role,
)
from service.schemas.common import ERROR_RESPONSES, AreaCode
from service.schemas.workflow import (
    REFUSED_RESPONSES,
    ConfirmationCreate,
    DecisionPublic,
    OverrideCreate,
    OverridePublic,
    OverrideStats,
)
from service.workflow.context import context_for
from service.workflow.public import override_public, rate_public, review_public
from service.workflow.reviews import DecisionResult, ReviewEntry, child_reviews, decide
from service.workflow.stats import GroupBy, override_rates
from shouhu.errors import NotFoundError, ReviewRefusedError

router = APIRouter(tags=["overrides"], responses=ERROR_RESPONSES)

CaseReader = Annotated[Principal, Depends(require_role(*FILE_READERS))]
Supervisor = Annotated[Principal, Depends(require_role(Role.SUPERVISOR))]
StatsReader = Annotated[Principal, Depends(require_role(Role.SUPERVISOR, Role.ANALYST))]


def _decision(result: DecisionResult, principal: Principal) -> DecisionPublic:
    entry = ReviewEntry(result.review, principal.username, result.override)
    return DecisionPublic(
        review=review_public(entry),
        override=(
            None
            if result.override is None
            else override_public(result.override, principal.username)
        ),
    )


@router.post(
    "/children/{child_id}/overrides",
    name="create_override",
    response_model=DecisionPublic,
    status_code=201,
    responses=REFUSED_RESPONSES,
)
def create_override(
    body: OverrideCreate,
    principal: Supervisor,
    child: VisibleChild,
    state: StateDep,
    session: SessionDep,
) -> DecisionPublic:
    """Set a tier other than the engine's, with a reason code and a written reason (answering a
    proposal if given). Refused (409) below a floor or a hard rule, and for the engine's own
    tier (confirm it instead)."""
    context = context_for(state.snapshot, child.child_id)
    tier = Tier(body.tier)
    if tier is context.tier:
        raise ReviewRefusedError(f"{tier} is the engine's tier; confirm it instead")
    result = decide(
        session,
        state.policy,
        context,
        principal,
        tier=tier,
        proposal_id=body.proposal_id,
        reason_code=body.reason_code,
        reason_text=body.reason_text,
        notes=body.notes,
    )
    session.commit()
    return _decision(result, principal)


@router.post(
    "/children/{child_id}/confirmations",
    name="confirm_tier",
    response_model=DecisionPublic,
    status_code=201,
    responses=REFUSED_RESPONSES,
)
def confirm_tier(
    body: ConfirmationCreate,
    principal: Supervisor,
    child: VisibleChild,
    state: StateDep,
    session: SessionDep,
) -> DecisionPublic:
    """Confirm the engine's tier (ending an override in force), or accept or decline a
    caseworker's proposal (accepting one that differs from the engine's tier is recorded as an
    override with the caseworker's reason)."""
    result = decide(
        session,
        state.policy,
        context_for(state.snapshot, child.child_id),
        principal,
        proposal_id=body.proposal_id,
        accept_proposal=body.accept_proposal,
        notes=body.notes,
    )
    session.commit()
    return _decision(result, principal)


@router.get(
    "/children/{child_id}/overrides",
    name="list_child_overrides",
    response_model=list[OverridePublic],
)
def list_child_overrides(
    principal: CaseReader, child: VisibleChild, session: SessionDep
) -> list[OverridePublic]:
    """Every override of the child's tier, newest first (kept for good)."""
    return [
        override_public(e.override, e.reviewer)
        for e in child_reviews(session, child.child_id)
        if e.override is not None
    ]


@router.get("/overrides/stats", name="override_stats", response_model=OverrideStats)
def override_stats(
    principal: StatsReader,
    session: SessionDep,
    by: Annotated[GroupBy, Query(description="reviewer, tier, girl, disability or township")],
    weeks: Annotated[int, Query(ge=1, le=104, description="weeks back from now")] = 12,
    area: Annotated[AreaCode | None, Query(description="a sub-area of the caller's")] = None,
) -> OverrideStats:
    """Override rates (overrides / decisions) per ISO week in the caller's area, split by
    reviewer, tier, or group (girls, disability, township). Aggregates only: no child ids."""
    scope = narrow(principal, area)
    if scope is None:
        raise NotFoundError(f"area {area} not found")
    since = utcnow() - timedelta(weeks=weeks)
    rows = override_rates(session, by, area_code=scope, since=since)
    return OverrideStats(area_code=scope, by=by, since=since, rows=[rate_public(r) for r in rows])
