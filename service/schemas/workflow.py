"""Requests and responses of human review and early warning (tasks, reviews, overrides, alerts).

Inputs (``…Create``) forbid unknown fields and do not coerce scalars; outputs (``…Public``)
carry pseudonymous child ids, area codes and user names (work ids), never a child's name.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import Field, Strict, StringConstraints, model_validator

from service.errors import ErrorBody
from service.schemas.common import AreaCode, ChildId, InputModel, OutputModel, TierCode
from service.workflow.codes import Activity, ReasonCode, VisitOutcome
from service.workflow.reviews import MAX_TEXT
from service.workflow.stats import GroupBy
from service.workflow.tasks import TaskKind, TaskStatus

FreeText = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
# Inputs are strict, but a JSON body carries codes and times as strings: these fields parse
# them (an unknown code or a malformed time is still a 422).
ActivityIn = Annotated[Activity, Strict(False)]
OutcomeIn = Annotated[VisitOutcome, Strict(False)]
ReasonCodeIn = Annotated[ReasonCode, Strict(False)]
TimeIn = Annotated[datetime, Strict(False)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT, strip_whitespace=True)]

#: The answer of a write the tier policy or the review process refuses (nothing is recorded).
REFUSED_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorBody,
        "description": "refused: below a floor or a hard rule, no written reason, already "
        "decided, or nothing to confirm; nothing was recorded",
    }
}


# ---------------------------------------------------------------------------------------------
# Inputs


class ReviewCreate(InputModel):
    """A caseworker's record of a visit, phone check, case plan or file update."""

    activity: ActivityIn = Field(description="what was done")
    outcome: OutcomeIn = Field(description="what was found")
    notes: FreeText = Field(default="", description="free text")
    proposed_tier: TierCode | None = Field(
        default=None,
        description="a tier proposed instead of the one in force (a supervisor decides)",
    )
    reason_code: ReasonCodeIn | None = Field(default=None, description="required with a proposal")
    reason_text: FreeText | None = Field(
        default=None, description="the written reason, required with a proposal"
    )

    @model_validator(mode="after")
    def _reason_with_proposal(self) -> ReviewCreate:
        if self.proposed_tier is not None:
            if self.reason_code is None or not (self.reason_text or "").strip():
                raise ValueError("a proposed tier needs reason_code and a written reason_text")
        elif self.reason_code is not None or (self.reason_text or "").strip():
            raise ValueError("reason_code and reason_text go with a proposed_tier only")
        return self


class MandatoryReportCreate(InputModel):
    """A mandatory report made to the police, logged."""

    agency: Annotated[
        str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)
    ] = Field(description="the police station or office reported to")
    reference: Annotated[
        str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)
    ] = Field(description="the receipt or case number the police gave")
    reported_at: TimeIn = Field(description="when the report was made (ISO 8601 with zone)")
    notes: FreeText = Field(default="")

    @model_validator(mode="after")
    def _zoned(self) -> MandatoryReportCreate:
        if self.reported_at.tzinfo is None:
            raise ValueError("reported_at needs a time zone (e.g. +08:00 or Z)")
        return self


class FallConfirmationCreate(InputModel):
    """Confirm a fall the engine holds for a person (closing a hard-rule T1 for supervisors)."""

    notes: FreeText = Field(default="")


class OverrideCreate(InputModel):
    """A supervisor sets a tier other than the engine's, with a reason code and written reason."""

    tier: TierCode = Field(description="the tier to set")
    reason_code: ReasonCodeIn
    reason_text: Reason = Field(description="the written reason")
    proposal_id: int | None = Field(default=None, ge=1, description="the proposal this answers")
    notes: FreeText = Field(default="")


class ConfirmationCreate(InputModel):
    """A supervisor confirms the engine's tier, or accepts or declines a caseworker's proposal."""

    proposal_id: int | None = Field(default=None, ge=1, description="the proposal this answers")
    accept_proposal: bool = Field(
        default=True, description="with proposal_id: set the proposed tier (false: decline it)"
    )
    notes: FreeText = Field(default="")


# ---------------------------------------------------------------------------------------------
# Outputs


class TaskPublic(OutputModel):
    """A task with its status."""

    id: int
    child_id: ChildId
    village_code: str
    kind: TaskKind
    tier: TierCode
    status: TaskStatus
    opened_at: datetime
    due_at: datetime
    overdue: bool
    days_overdue: float = Field(ge=0.0)
    completed_at: datetime | None
    review_id: int | None = Field(description="the review that completed it")
    label: str = Field(description="what the task asks for, in the caller's language")


class TaskList(OutputModel):
    """Tasks, soonest due first (a child's history: newest first)."""

    tasks: list[TaskPublic]


class OverridePublic(OutputModel):
    """An override: the tier a supervisor set instead of the engine's, and why."""

    id: int
    review_id: int
    child_id: ChildId
    computed_tier: TierCode
    tier_before: TierCode
    tier: TierCode
    rule_tier: TierCode | None = Field(description="the floor the rules set then")
    reason_code: ReasonCode
    reason_text: str
    reviewer: str
    reviewer_role: str
    created_at: datetime
    policy_version: str


class ReviewPublic(OutputModel):
    """One review in a child's history."""

    id: int
    child_id: ChildId
    kind: str = Field(description="visit, mandatory_report, decision, fall_confirmation")
    activity: Activity | None
    outcome: VisitOutcome | None
    notes: str
    reviewer: str
    reviewer_role: str
    created_at: datetime
    computed_tier: TierCode
    tier_in_force: TierCode
    hard_rule_t1: bool
    rules_fired: list[str]
    run_id: str | None
    proposed_tier: TierCode | None
    reason_code: ReasonCode | None
    reason_text: str | None
    answers_review_id: int | None
    decision: str | None = Field(description="confirm or override (decisions)")
    decided_tier: TierCode | None
    report_agency: str | None
    report_reference: str | None
    reported_at: datetime | None
    override: OverridePublic | None


class ReviewList(OutputModel):
    """A child's reviews, newest first (nothing is ever removed)."""

    reviews: list[ReviewPublic]


class DecisionPublic(OutputModel):
    """What a supervisor's decision recorded."""

    review: ReviewPublic
    override: OverridePublic | None


class ClosurePublic(OutputModel):
    """A hard-rule T1 the engine would lower, waiting for a supervisor to close it."""

    child_id: ChildId
    village_code: str
    tier: TierCode
    rules_fired: list[str]
    as_of: date | None
    run_id: str | None


class PendingPublic(OutputModel):
    """The supervisor's queue: proposals to decide and hard-rule T1s to close."""

    area_code: AreaCode
    proposals: list[ReviewPublic]
    closures: list[ClosurePublic]


class RatePublic(OutputModel):
    """Override rate of one week and group."""

    week: str = Field(description="ISO week, 2026-W05")
    week_start: date
    group: str
    decisions: int = Field(ge=0)
    overrides: int = Field(ge=0)
    raised: int = Field(ge=0, description="overrides to a more severe tier")
    lowered: int = Field(ge=0, description="overrides to a less severe tier")
    rate: float = Field(ge=0.0, le=1.0)


class OverrideStats(OutputModel):
    """Override rates per week, split by one grouping, in the caller's area."""

    area_code: AreaCode
    by: GroupBy
    since: datetime
    rows: list[RatePublic]


class AlertPublic(OutputModel):
    """An early warning."""

    id: int
    child_id: ChildId
    village_code: str
    township_code: str
    tier: TierCode
    previous_tier: TierCode | None
    tier_rise: bool
    hard_rules: list[str]
    reasons: list[dict[str, Any]] = Field(
        description="kind (hard_rule, tier_rise, floor_rule, model) and zh/en text"
    )
    as_of: date
    run_id: str
    policy_version: str
    model_version: int | None
    raised_at: datetime
    delivered: bool = Field(description="the webhook accepted it")
    delivery_attempts: int = Field(ge=0)


class AlertFeed(OutputModel):
    """Alerts, newest first; pass the last id as before_id for the next page."""

    alerts: list[AlertPublic]


__all__ = [
    "REFUSED_RESPONSES",
    "AlertFeed",
    "AlertPublic",
    "ClosurePublic",
    "ConfirmationCreate",
    "DecisionPublic",
    "FallConfirmationCreate",
    "MandatoryReportCreate",
    "OverrideCreate",
    "OverridePublic",
    "OverrideStats",
    "PendingPublic",
    "RatePublic",
    "ReviewCreate",
    "ReviewList",
    "ReviewPublic",
    "TaskList",
    "TaskPublic",
]
