"""Reviews of a child: visit outcomes and proposals, mandatory reports, fall confirmations, the
history, and the supervisor's queue of proposals to decide and hard-rule T1s to close."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from models.policy import Tier
from service import audit
from service.areas import narrow
from service.db.workflow import Review
from service.deps import (
    FILE_READERS,
    Principal,
    Role,
    SessionDep,
    StateDep,
    VisibleChild,
    access_of,
    require_role,
)
from service.schemas.common import ERROR_RESPONSES, AreaCode
from service.schemas.workflow import (
    REFUSED_RESPONSES,
    FallConfirmationCreate,
    MandatoryReportCreate,
    PendingPublic,
    ReviewCreate,
    ReviewList,
    ReviewPublic,
)
from service.workflow.context import context_for, context_from_score_row
from service.workflow.public import closure_public, review_public
from service.workflow.reviews import (
    ReviewEntry,
    awaiting_closure,
    child_reviews,
    confirm_fall,
    log_mandatory_report,
    pending_proposals,
    record_visit,
)
from shouhu.errors import NotFoundError

router = APIRouter(tags=["reviews"], responses=ERROR_RESPONSES)

CaseWorker = Annotated[Principal, Depends(require_role(*FILE_READERS))]
Supervisor = Annotated[Principal, Depends(require_role(Role.SUPERVISOR))]


def _entry(review: Review, principal: Principal) -> ReviewPublic:
    return review_public(ReviewEntry(review, principal.username, None))


@router.get("/children/{child_id}/reviews", name="list_child_reviews", response_model=ReviewList)
def list_child_reviews(
    principal: CaseWorker, child: VisibleChild, session: SessionDep
) -> ReviewList:
    """The child's whole review history, newest first, with each override."""
    return ReviewList(reviews=[review_public(e) for e in child_reviews(session, child.child_id)])


@router.post(
    "/children/{child_id}/reviews",
    name="create_review",
    response_model=ReviewPublic,
    status_code=201,
    responses=REFUSED_RESPONSES,
)
def create_review(
    body: ReviewCreate,
    principal: CaseWorker,
    child: VisibleChild,
    state: StateDep,
    session: SessionDep,
) -> ReviewPublic:
    """Record a visit, phone check, case plan or file update and what it found; completes the
    tasks it covers. A proposed tier (with a reason) goes to a supervisor; one below a floor
    or a hard rule is refused (409)."""
    review = record_visit(
        session,
        state.policy,
        context_for(state.snapshot, child.child_id),
        principal,
        activity=body.activity,
        outcome=body.outcome,
        notes=body.notes,
        proposed_tier=None if body.proposed_tier is None else Tier(body.proposed_tier),
        reason_code=body.reason_code,
        reason_text=body.reason_text,
    )
    session.commit()
    return _entry(review, principal)


@router.post(
    "/children/{child_id}/mandatory-reports",
    name="log_mandatory_report",
    response_model=ReviewPublic,
    status_code=201,
    responses=REFUSED_RESPONSES,
)
def create_mandatory_report(
    body: MandatoryReportCreate,
    principal: CaseWorker,
    child: VisibleChild,
    state: StateDep,
    session: SessionDep,
) -> ReviewPublic:
    """Log a mandatory report made to the police (agency, reference, time); completes the
    child's open report task."""
    review = log_mandatory_report(
        session,
        state.policy,
        context_for(state.snapshot, child.child_id),
        principal,
        agency=body.agency,
        reference=body.reference,
        reported_at=body.reported_at,
        notes=body.notes,
    )
    session.commit()
    return _entry(review, principal)


@router.post(
    "/children/{child_id}/fall-confirmations",
    name="confirm_fall",
    response_model=ReviewPublic,
    status_code=201,
    responses=REFUSED_RESPONSES,
)
def create_fall_confirmation(
    body: FallConfirmationCreate,
    principal: CaseWorker,
    child: VisibleChild,
    state: StateDep,
    session: SessionDep,
) -> ReviewPublic:
    """Confirm a fall the engine holds for a person; a T1 caused by a hard rule is closed only
    by a supervisor (403 for a caseworker). 409 when no fall awaits confirmation."""
    review = confirm_fall(
        session,
        state.policy,
        context_for(state.snapshot, child.child_id),
        principal,
        notes=body.notes,
    )
    session.commit()
    return _entry(review, principal)


@router.get("/reviews/pending", name="list_pending", response_model=PendingPublic)
def list_pending(
    request: Request,
    principal: Supervisor,
    state: StateDep,
    session: SessionDep,
    area: Annotated[AreaCode | None, Query(description="a sub-area of the caller's")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> PendingPublic:
    """The supervisor's queue: caseworkers' proposals not yet decided (oldest first) and
    hard-rule T1s whose fall awaits a supervisor's closure. Audited per child listed."""
    scope = narrow(principal, area)
    if scope is None:
        raise NotFoundError(f"area {area} not found")
    proposals = pending_proposals(session, area_code=scope, limit=limit)
    rows = state.snapshot.board.rows
    if len(rows):
        waiting = rows[
            rows["hard_rule_t1"].astype(bool)
            & rows["awaiting_confirmation"].astype(bool)
            & rows["village_code"].astype(str).str.startswith(scope)
        ].head(limit)
        candidates = [context_from_score_row(r) for r in waiting.to_dict("records")]
    else:
        candidates = []
    closures = awaiting_closure(session, candidates)
    access = access_of(request)
    audit.record(session, principal, access, action="list_pending", area_code=scope, commit=False)
    shown = dict.fromkeys(
        [(p.review.child_id, p.review.village_code) for p in proposals]
        + [(c.child_id, c.village_code) for c in closures]
    )
    audit.record_many(session, principal, access, action="list_pending", children=list(shown))
    session.commit()
    return PendingPublic(
        area_code=scope,
        proposals=[review_public(p) for p in proposals],
        closures=[closure_public(c) for c in closures],
    )
