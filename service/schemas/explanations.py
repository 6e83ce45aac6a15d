"""Why a child is scored as it is: rules fired and reasons grouped by domain."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from service.schemas.children import Scalar
from service.schemas.common import ChildId, Lang, OutputModel, Provenance, TierCode


class EvidencePublic(OutputModel):
    """A ledger record behind a reason."""

    table: str
    record_id: str | None
    event_date: str | None
    recorded_at: str | None
    file: str | None
    row: int | None


class ExplainedReason(OutputModel):
    """One factor with its sentence and, on request, its records."""

    feature: str
    direction: str
    contribution: float
    value: Scalar
    text: str
    evidence: list[EvidencePublic]


class DomainPublic(OutputModel):
    """One tier-policy domain: its name, total contribution and top factors."""

    domain: str
    name: str
    contribution: float
    direction: str
    reasons: list[ExplainedReason]


class RulePublic(OutputModel):
    """A hard or floor rule that fires for the child."""

    rule: str
    kind: str
    tier: TierCode
    domain: str
    text: str


class ExplanationPublic(Provenance):
    """A child's explanation in the caller's language."""

    child_id: ChildId
    as_of: date
    lang: Lang
    p_any: float = Field(ge=0.0, le=1.0)
    p_low: float = Field(ge=0.0, le=1.0)
    p_high: float = Field(ge=0.0, le=1.0)
    tier: TierCode
    margin: float = Field(description="raw log-odds of the model")
    bias: float = Field(description="the average child's log-odds")
    rules_fired: list[RulePublic]
    top_reasons: list[ExplainedReason]
    domains: list[DomainPublic]


__all__ = [
    "DomainPublic",
    "EvidencePublic",
    "ExplainedReason",
    "ExplanationPublic",
    "RulePublic",
]
