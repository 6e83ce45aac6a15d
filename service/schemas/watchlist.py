"""The watch list: the run in force, ranked by tier, then calibrated risk, then days overdue."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import Field

from service.schemas.common import AreaCode, ChildId, Lang, OutputModel, TierCode


class WatchItem(OutputModel):
    """One child on the watch list."""

    rank: int = Field(ge=1, description="position in the caller's list")
    child_id: ChildId
    tier: TierCode
    p_any: float | None = Field(description="calibrated risk (None without a model)")
    p_low: float | None
    p_high: float | None
    borderline: bool
    hard_rule: bool = Field(description="a hard rule forces T1")
    rules_fired: list[str]
    top_reasons: list[str] = Field(description="up to three factors raising risk")
    domains: list[str] = Field(description="domains with a rule or a factor raising risk")
    village_code: str
    village_name: str | None
    township_code: str | None
    days_overdue: int = Field(ge=0, description="days past the earliest open task's due date")
    overdue_tasks: int = Field(ge=0, description="open tasks past their due date")


class WatchListPage(OutputModel):
    """A page of the watch list."""

    as_of: date | None = Field(description="date of the run in force")
    run_id: str | None
    scored_at: datetime | None
    model_name: str | None
    model_version: int | None
    policy_version: str | None
    area_code: AreaCode
    total: int = Field(ge=0, description="children matching the filters")
    offset: int = Field(ge=0)
    limit: int = Field(ge=1)
    lang: Lang
    counts: dict[str, int] = Field(description="children per tier before the tier filter")
    items: list[WatchItem]


__all__ = ["WatchItem", "WatchListPage"]
