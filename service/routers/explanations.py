"""Why a child is scored as it is: ``/explanation`` (JSON) and ``/explanation.png``.

The JSON explanation is ``async`` (computed from the snapshot in memory) unless the ledger
evidence is asked for, which reads the feature store in the thread pool; the chart is drawn
in the thread pool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from service.deps import SCORE_READERS, Principal, StateDep, VisibleChild, require_role
from service.repository.explanations import explanation, waterfall_png
from service.schemas.common import ERROR_RESPONSES, Lang
from service.schemas.explanations import ExplanationPublic

router = APIRouter(prefix="/children", tags=["explanations"], responses=ERROR_RESPONSES)

ScoreReader = Annotated[Principal, Depends(require_role(*SCORE_READERS))]


@router.get("/{child_id}/explanation", name="get_explanation", response_model=ExplanationPublic)
async def get_explanation(
    principal: ScoreReader,
    child: VisibleChild,
    state: StateDep,
    lang: Annotated[Lang | None, Query()] = None,
    top: Annotated[int, Query(ge=1, le=20)] = 5,
    per_domain: Annotated[int, Query(ge=1, le=10)] = 3,
    evidence: Annotated[bool, Query(description="cite the ledger records")] = False,
) -> ExplanationPublic:
    """Rules fired and the reasons by domain, in the caller's language."""
    if evidence:
        return await run_in_threadpool(
            explanation,
            state,
            child.child_id,
            lang or principal.lang,
            top=top,
            per_domain=per_domain,
            with_evidence=True,
        )
    return explanation(
        state, child.child_id, lang or principal.lang, top=top, per_domain=per_domain
    )


@router.get(
    "/{child_id}/explanation.png",
    name="get_waterfall",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "the waterfall chart"}},
)
def get_waterfall(
    principal: ScoreReader,
    child: VisibleChild,
    state: StateDep,
    lang: Annotated[Lang | None, Query()] = None,
) -> Response:
    """The child's waterfall chart: from the average child's log-odds to this child's."""
    png, used = waterfall_png(state, child.child_id, lang or principal.lang)
    return Response(png, media_type="image/png", headers={"Content-Language": used})
