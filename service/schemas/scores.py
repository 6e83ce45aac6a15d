"""Scores of children now: calibrated risk, band, tier, reasons, model and policy versions."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from service.schemas.common import (
    ChildId,
    InputModel,
    JsonInt,
    Lang,
    OutputModel,
    Provenance,
    TierCode,
)

#: Largest batch one request may score.
MAX_BATCH = 500


class ReasonPublic(OutputModel):
    """One factor of a score, as a sentence in the caller's language."""

    feature: str = Field(description="feature name (shouhu features list)")
    domain: str = Field(description="tier-policy domain of the feature")
    direction: str = Field(description="raises or lowers the risk")
    contribution: float = Field(description="log-odds contribution (TreeSHAP)")
    text: str = Field(description="the factor in the caller's language")


class TierPublic(OutputModel):
    """The tier decided now, with what set it."""

    tier: TierCode
    source: str = Field(description="hard_rule, floor_rule, model, hysteresis, no_model")
    rules_fired: list[str] = Field(description="hard:<rule> / floor:<tier>:<rule>")
    model_tier: TierCode | None = Field(description="the model's band (T2-T4)")
    borderline: bool = Field(description="the score's band straddles a cut-off")
    held_by_hysteresis: bool
    awaiting_confirmation: bool
    tier_in_force: TierCode | None = Field(description="the tier of the run in force")


class ScorePublic(Provenance):
    """One child scored now from its latest features."""

    child_id: ChildId
    as_of: date = Field(description="date of the features")
    p_any: float = Field(ge=0.0, le=1.0, description="calibrated risk of any adverse event, 90 d")
    p_low: float = Field(ge=0.0, le=1.0)
    p_high: float = Field(ge=0.0, le=1.0)
    domains: dict[str, float] = Field(description="calibrated risk per domain outcome")
    tier: TierPublic
    reasons: list[ReasonPublic] = Field(description="top factors (empty unless explained)")
    lang: Lang


class ScoreCreate(InputModel):
    """Children to score now."""

    child_ids: list[ChildId] = Field(min_length=1, max_length=MAX_BATCH)
    explain: bool = Field(default=False, description="add each child's top reasons")
    top: JsonInt = Field(default=5, ge=1, le=20, description="reasons per child when explained")
    lang: Lang | None = Field(default=None, description="language of the reasons")


class ScoreBatchPublic(OutputModel):
    """Scores of a batch; ids unknown or outside the caller's area are listed as not found."""

    scores: list[ScorePublic]
    not_found: list[ChildId]


__all__ = [
    "MAX_BATCH",
    "ReasonPublic",
    "ScoreBatchPublic",
    "ScoreCreate",
    "ScorePublic",
    "TierPublic",
]
