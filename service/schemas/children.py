"""A child's file: profile, timeline, score history, reviews."""

from __future__ import annotations

import datetime as dt
from datetime import date, datetime

from pydantic import Field

from service.schemas.common import ChildId, Lang, OutputModel, TierCode

Scalar = str | int | float | bool | None


class AreaPublic(OutputModel):
    """An area in the hierarchy (a place name, never a person's)."""

    code: str
    level: str
    name: str


class ProfilePublic(OutputModel):
    """The child's registry file as known now (no name, no identity number)."""

    child_id: ChildId
    household_pid: str | None = Field(description="pseudonymous household id (siblings share it)")
    sex: str | None
    age_years: int | None
    hukou_status: str | None
    left_behind_type: str | None
    disability: bool | None
    serious_illness: bool | None
    poverty_status: str | None
    status: str | None = Field(description="active or exited")
    exit_reason: str | None
    village_code: str
    areas: list[AreaPublic] = Field(description="city → village")
    school_code: str | None
    registered_date: date | None
    recorded_at: date | None
    guardianship: dict[str, Scalar] = Field(description="the latest guardianship record")


class TimelineEvent(OutputModel):
    """One dated record of the child's file."""

    date: dt.date
    recorded_at: dt.date | None
    kind: str = Field(description="source table: visits, guardianship, incidents, …")
    title: str = Field(description="what happened, in the caller's language")
    details: dict[str, Scalar]


class ScoreHistoryItem(OutputModel):
    """The child's score in one run (the newest run of each scored date)."""

    as_of: date
    run_id: str
    scored_at: datetime | None
    tier: TierCode
    tier_source: str | None
    p_any: float | None
    p_low: float | None
    p_high: float | None
    rules_fired: list[str]
    reasons: list[str] = Field(description="the run's top factors, in the caller's language")
    model_name: str | None
    model_version: int | None
    policy_version: str


class ReviewEntry(OutputModel):
    """A review, tier proposal, override or sign-off recorded for the child (append-only)."""

    kind: str
    at: datetime
    by: str
    summary: str
    details: dict[str, Scalar]


class ChildFilePublic(OutputModel):
    """Everything the caller may see of one child."""

    child_id: ChildId
    lang: Lang
    profile: ProfilePublic
    current: ScoreHistoryItem | None = Field(description="the run in force")
    timeline: list[TimelineEvent]
    scores: list[ScoreHistoryItem] = Field(description="newest first")
    reviews: list[ReviewEntry] = Field(description="newest first")


__all__ = [
    "AreaPublic",
    "ChildFilePublic",
    "ProfilePublic",
    "ReviewEntry",
    "ScoreHistoryItem",
    "TimelineEvent",
]
