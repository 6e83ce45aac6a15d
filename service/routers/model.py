"""``/api/v1/model`` and ``/api/v1/policy``: the champion, its card, and the tier policy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import PrincipalDep, StateDep
from service.repository.model import model_public, policy_public
from service.schemas.common import ERROR_RESPONSES, Lang
from service.schemas.model import ModelCardPublic, ModelPublic, PolicyPublic
from shouhu.errors import RegistryError

router = APIRouter(tags=["model"], responses=ERROR_RESPONSES)


@router.get("/model", name="get_model", response_model=ModelPublic)
def get_model(principal: PrincipalDep, state: StateDep) -> ModelPublic:
    """The champion the service scores with: version, provenance and test metrics."""
    return model_public(state)


@router.get("/model/card", name="get_model_card", response_model=ModelCardPublic)
def get_model_card(principal: PrincipalDep, state: StateDep) -> ModelCardPublic:
    """The champion's model card (markdown and HTML), from the registry."""
    card = state.model_card()
    if card is None:
        raise RegistryError("the model card cannot be read from the registry now; retry later")
    return ModelCardPublic(
        model_version=state.model_version, markdown=card["markdown"], html=card["html"]
    )


@router.get("/policy", name="get_policy", response_model=PolicyPublic)
def get_policy(
    principal: PrincipalDep,
    state: StateDep,
    lang: Annotated[Lang | None, Query()] = None,
) -> PolicyPublic:
    """The tier policy in force: tiers with their response times, hard and floor rules."""
    return policy_public(state.policy, lang or principal.lang)
