"""Scores now: one child (``GET /children/{child_id}/score``) or a batch (``POST /scores``).

Both are ``async``: scoring reads the snapshot in memory (about a millisecond a child) and the
audit entries go through ``service.deps.run_db``, so a request needs no thread-pool hop.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from service import audit
from service.deps import (
    SCORE_READERS,
    Principal,
    SessionDep,
    StateDep,
    VisibleChild,
    access_of,
    require_role,
    run_db,
)
from service.repository.scores import score_public, visible_ids
from service.schemas.common import ERROR_RESPONSES, Lang
from service.schemas.scores import ScoreBatchPublic, ScoreCreate, ScorePublic

router = APIRouter(tags=["scores"], responses=ERROR_RESPONSES)

ScoreReader = Annotated[Principal, Depends(require_role(*SCORE_READERS))]


@router.get("/children/{child_id}/score", name="score_child", response_model=ScorePublic)
async def score_child(
    request: Request,
    principal: ScoreReader,
    child: VisibleChild,
    state: StateDep,
    explain: Annotated[bool, Query(description="add the top reasons")] = True,
    top: Annotated[int, Query(ge=1, le=20, description="reasons returned")] = 5,
    lang: Annotated[Lang | None, Query(description="language of the reasons")] = None,
) -> ScorePublic:
    """Score one child now from its latest features, with its tier and top reasons."""
    scored = state.scorer.score(
        [child.child_id], explain=explain, top=top, per_domain=0, only_shown=True
    )[0]
    request.app.state.metrics.scores.inc()
    return score_public(scored, state, lang or principal.lang, top)


def _audit_batch(
    session: Session,
    principal: Principal,
    access: audit.Access,
    villages: dict[str, str | None],
    scorable: list[str],
    missing: list[str],
) -> None:
    """Every requested id of a batch, scored or not found, in one commit."""
    audit.record_many(
        session,
        principal,
        access,
        action="score_children",
        children=[(c, villages.get(c)) for c in scorable],
        commit=False,
    )
    audit.record_many(
        session,
        principal,
        access,
        action="score_children",
        children=[(c, villages.get(c)) for c in missing],
        outcome=audit.NOT_FOUND,
        commit=False,
    )
    session.commit()


@router.post("/scores", name="score_children", response_model=ScoreBatchPublic)
async def score_children(
    request: Request,
    body: ScoreCreate,
    principal: ScoreReader,
    state: StateDep,
    session: SessionDep,
) -> ScoreBatchPublic:
    """Score many children now; ids unknown, outside the caller's area or without features on
    the snapshot's date are listed under ``not_found``. Every id is audited."""
    requested = list(dict.fromkeys(body.child_ids))  # each child once, in the order asked
    shown = set(visible_ids(state, principal.area_code, requested))
    scorable = [c for c in requested if c in shown and c in state.snapshot.row_of]
    kept = set(scorable)
    missing = [c for c in requested if c not in kept]
    villages = state.snapshot.villages
    access = access_of(request)
    await run_db(state, _audit_batch, session, principal, access, villages, scorable, missing)
    scored = state.scorer.score(
        scorable, explain=body.explain, top=body.top, per_domain=0, only_shown=True
    )
    request.app.state.metrics.scores.inc(len(scored))
    lang = body.lang or principal.lang
    return ScoreBatchPublic(
        scores=[score_public(s, state, lang, body.top) for s in scored],
        not_found=missing,
    )
