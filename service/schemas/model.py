"""The model and policy in use."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from service.schemas.common import OutputModel, TierCode


class ModelPublic(OutputModel):
    """The champion the service scores with."""

    model_name: str
    model_version: int
    aliases: list[str]
    created_at: datetime
    outcomes: list[str]
    features: int = Field(ge=1)
    feature_fingerprint: str
    trained_policy_version: str
    data_fingerprint: str
    metrics: dict[str, float | None] = Field(description="test-window metrics of p_any")
    registry_reachable: bool
    promoted_by: str | None
    promotion_reason: str | None


class ModelCardPublic(OutputModel):
    """The champion's model card."""

    model_version: int
    markdown: str
    html: str


class TierSpecPublic(OutputModel):
    """One tier's name, colour and response, in the caller's language."""

    tier: TierCode
    name: str
    colour: str
    hex: str
    response: str
    response_times: dict[str, Any]


class RuleSpecPublic(OutputModel):
    """One hard or floor rule of the policy."""

    rule: str
    kind: str
    tier: TierCode
    domain: str
    text: str


class PolicyPublic(OutputModel):
    """The tier policy in force."""

    policy_version: str
    fingerprint: str
    title: str
    lang: str
    domains: dict[str, str]
    tiers: list[TierSpecPublic]
    rules: list[RuleSpecPublic]


__all__ = ["ModelCardPublic", "ModelPublic", "PolicyPublic", "RuleSpecPublic", "TierSpecPublic"]
