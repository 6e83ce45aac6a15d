"""Scores of children now, as API schemas."""

from __future__ import annotations

from collections.abc import Sequence

from service.schemas.common import Lang
from service.schemas.scores import ReasonPublic, ScorePublic, TierPublic
from service.scoring import ChildScore, Reason
from service.state import ServiceState


def reason_public(reason: Reason, lang: Lang) -> ReasonPublic:
    """One reason in the caller's language."""
    return ReasonPublic(
        feature=reason.feature,
        domain=reason.domain,
        direction=reason.direction,
        contribution=reason.contribution,
        text=reason.text(lang),
    )


def score_public(score: ChildScore, state: ServiceState, lang: Lang, top: int = 5) -> ScorePublic:
    """A :class:`~service.scoring.ChildScore` as the API returns it (model and policy named)."""
    decision = score.decision
    return ScorePublic(
        child_id=score.child_id,
        as_of=score.as_of,
        p_any=score.p_any,
        p_low=score.p_low,
        p_high=score.p_high,
        domains=score.domains,
        tier=TierPublic(
            tier=decision.tier.value,
            source=decision.source.value,
            rules_fired=list(decision.rules_fired),
            model_tier=None if decision.model_tier is None else decision.model_tier.value,
            borderline=decision.borderline,
            held_by_hysteresis=decision.held_by_hysteresis,
            awaiting_confirmation=decision.awaiting_confirmation,
            tier_in_force=None if score.tier_in_force is None else score.tier_in_force.value,
        ),
        reasons=[reason_public(r, lang) for r in score.reasons[:top]],
        lang=lang,
        model_name=state.model_name,
        model_version=state.model_version,
        policy_version=decision.policy_version,
    )


def visible_ids(state: ServiceState, scope: str, child_ids: Sequence[str]) -> list[str]:
    """The ids among ``child_ids`` whose home village lies in ``scope`` (order kept)."""
    villages = state.snapshot.villages
    out: list[str] = []
    for child in child_ids:
        village = villages.get(child)
        if village is not None and village.startswith(scope):
            out.append(child)
    return out


__all__ = ["reason_public", "score_public", "visible_ids"]
