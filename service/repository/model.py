"""The champion and the tier policy, as API schemas."""

from __future__ import annotations

from typing import Any

from models.bundle import ANY
from models.policy import TierPolicy
from service.schemas.common import Lang
from service.schemas.model import ModelPublic, PolicyPublic, RuleSpecPublic, TierSpecPublic
from service.state import ServiceState

#: Test metrics of ``p_any`` shown with the model.
_METRICS = ("roc_auc", "pr_auc", "brier", "ece", "precision_at_capacity", "recall_at_capacity")


def model_public(state: ServiceState) -> ModelPublic:
    """The champion as the API shows it."""
    bundle, champion = state.bundle, state.champion
    return ModelPublic(
        model_name=champion.name,
        model_version=champion.version,
        aliases=list(champion.aliases),
        created_at=champion.created_at,
        outcomes=list(bundle.outcomes),
        features=len(bundle.feature_names),
        feature_fingerprint=bundle.feature_fingerprint,
        trained_policy_version=bundle.policy_version,
        data_fingerprint=bundle.data_fingerprint,
        metrics={name: bundle.metric(name, ANY) for name in _METRICS},
        registry_reachable=state.registry_status.reachable,
        promoted_by=champion.tag("promoted_by") or champion.tag("approver"),
        promotion_reason=champion.tag("promotion_reason") or champion.tag("reason"),
    )


def _periods(response: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in response.model_dump(mode="json").items():
        if key in {"summary", "closed_by"} or value in (None, False):
            continue
        out[key] = value
    out["closed_by"] = str(response.closed_by)
    return out


def policy_public(policy: TierPolicy, lang: Lang) -> PolicyPublic:
    """The tier policy in the caller's language."""
    tiers = [
        TierSpecPublic(
            tier=spec.id.value,
            name=spec.zh if lang == "zh" else spec.en,
            colour=spec.colour.zh if lang == "zh" else spec.colour.en,
            hex=spec.colour.hex,
            response=spec.response.summary.zh if lang == "zh" else spec.response.summary.en,
            response_times=_periods(spec.response),
        )
        for spec in policy.tiers
    ]
    rules = []
    for rule in policy.rules:
        fired = policy.fired(rule)
        rules.append(
            RuleSpecPublic(
                rule=fired.label,
                kind=fired.kind,
                tier=fired.tier.value,
                domain=rule.domain,
                text=rule.zh if lang == "zh" else rule.en,
            )
        )
    return PolicyPublic(
        policy_version=policy.version,
        fingerprint=policy.fingerprint(),
        title=policy.title.zh if lang == "zh" else policy.title.en,
        lang=lang,
        domains={k: (v.zh if lang == "zh" else v.en) for k, v in policy.domains.items()},
        tiers=tiers,
        rules=rules,
    )


__all__ = ["model_public", "policy_public"]
