"""Override rates per week, by reviewer, by tier and by group (girls, disability, township).

An unexplained override rate is itself a risk (a reviewer who lowers every girl's tier, a
township that overrides twice as often as its neighbours), so supervisors see it. The rate of
a cell is overrides / decisions: every supervisor decision (confirm or override) counts once,
in the ISO week it was made. The tier is the engine's tier the decision was about; the groups
are the child's when the decision was made (recorded on the review).

:func:`flag_rates` marks the cells worth a conversation: a high rate resting on enough
decisions, or a rate well above the whole area's in the same week (a township overriding twice
as often as its neighbours). A flag is a prompt to ask why, not a finding: many overrides may
be well explained (a school closed, a new caseworker's first weeks).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.policy import Tier
from service.db.identity import User
from service.db.workflow import Review
from service.workflow.codes import Decision, ReviewKind
from service.workflow.scope import in_area

#: A cell is flagged only when it rests on at least this many decisions (two overrides out of
#: three decisions say little about a reviewer).
FLAG_MIN_DECISIONS = 5
#: ... and its override rate is at least this, whatever the area's rate ...
FLAG_RATE = 0.5
#: ... or at least this many times the rate of all the area's decisions in the same week.
FLAG_RATIO = 2.0


class GroupBy(StrEnum):
    """What the rates are split by."""

    REVIEWER = "reviewer"
    TIER = "tier"
    GIRL = "girl"
    DISABILITY = "disability"
    TOWNSHIP = "township"


@dataclass(frozen=True)
class DecisionFact:
    """One supervisor decision, as the statistics see it."""

    at: datetime
    reviewer: str
    computed_tier: str
    decided_tier: str
    overridden: bool
    girl: bool | None
    disability: bool | None
    township_code: str


@dataclass(frozen=True)
class RateRow:
    """One cell: a week and a group.

    Attributes
    ----------
    week : str
        ISO week, ``2026-W05``.
    week_start : date
        Its Monday.
    by : GroupBy
        The split.
    group : str
        The group (a user name, a tier, ``girl``/``boy``/``unknown``, ``yes``/``no``/
        ``unknown``, or a township code).
    decisions, overrides : int
        Decisions made and how many set a tier other than the engine's.
    raised, lowered : int
        Overrides to a more severe / less severe tier.
    rate : float
        ``overrides / decisions``.
    """

    week: str
    week_start: date
    by: GroupBy
    group: str
    decisions: int
    overrides: int
    raised: int
    lowered: int
    rate: float


def _group(fact: DecisionFact, by: GroupBy) -> str:
    match by:
        case GroupBy.REVIEWER:
            return fact.reviewer
        case GroupBy.TIER:
            return fact.computed_tier
        case GroupBy.GIRL:
            return "unknown" if fact.girl is None else ("girl" if fact.girl else "boy")
        case GroupBy.DISABILITY:
            return "unknown" if fact.disability is None else ("yes" if fact.disability else "no")
        case GroupBy.TOWNSHIP:
            return fact.township_code
    raise ValueError(f"unknown split {by!r}")  # pragma: no cover - exhaustive enum


def iso_week(at: datetime) -> tuple[str, date]:
    """The ISO week label and Monday of ``at`` (taken in UTC).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> iso_week(datetime(2026, 1, 1, tzinfo=UTC))
    ('2026-W01', datetime.date(2025, 12, 29))
    """
    day = at.astimezone(UTC).date()
    year, week, weekday = day.isocalendar()
    return f"{year}-W{week:02d}", day - timedelta(days=weekday - 1)


def rate_table(facts: Iterable[DecisionFact], by: GroupBy) -> list[RateRow]:
    """Override rates per ISO week and group, oldest week first, groups in order.

    Parameters
    ----------
    facts : iterable of DecisionFact
        The decisions.
    by : GroupBy
        The split.

    Returns
    -------
    list of RateRow
    """
    cells: dict[tuple[str, str], list[int]] = {}
    starts: dict[str, date] = {}
    for fact in facts:
        week, start = iso_week(fact.at)
        starts[week] = start
        cell = cells.setdefault((week, _group(fact, by)), [0, 0, 0, 0])
        cell[0] += 1
        if fact.overridden:
            cell[1] += 1
            more_severe = Tier(fact.decided_tier).level < Tier(fact.computed_tier).level
            cell[2 if more_severe else 3] += 1
    return [
        RateRow(
            week=week,
            week_start=starts[week],
            by=by,
            group=group,
            decisions=n,
            overrides=o,
            raised=up,
            lowered=down,
            rate=o / n,
        )
        for (week, group), (n, o, up, down) in sorted(cells.items())
    ]


def decision_facts(
    session: Session,
    *,
    area_code: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[DecisionFact]:
    """Every supervisor decision about the area's children in ``[since, until)``.

    Parameters
    ----------
    session : Session
        The operational database.
    area_code : str, optional
        Only children of this area.
    since, until : datetime, optional
        The time window (UTC).

    Returns
    -------
    list of DecisionFact
    """
    query = (
        select(Review, User.username)
        .join(User, User.id == Review.reviewer_id)
        .where(Review.kind == ReviewKind.DECISION.value)
    )
    if area_code is not None:
        query = query.where(in_area(Review.village_code, area_code))
    if since is not None:
        query = query.where(Review.created_at >= since.astimezone(UTC))
    if until is not None:
        query = query.where(Review.created_at < until.astimezone(UTC))
    return [
        DecisionFact(
            at=review.created_at,
            reviewer=username,
            computed_tier=review.computed_tier,
            decided_tier=review.decided_tier or review.computed_tier,
            overridden=review.decision == Decision.OVERRIDE.value,
            girl=review.girl,
            disability=review.disability,
            township_code=review.township_code,
        )
        for review, username in session.execute(query.order_by(Review.created_at))
    ]


def override_rates(
    session: Session,
    by: GroupBy,
    *,
    area_code: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[RateRow]:
    """Weekly override rates of the area's decisions, split by ``by``.

    Parameters
    ----------
    session : Session
        The operational database.
    by : GroupBy
        reviewer, tier, girl, disability or township.
    area_code : str, optional
        Only children of this area (the supervisor's).
    since, until : datetime, optional
        The time window (UTC).

    Returns
    -------
    list of RateRow
    """
    facts = decision_facts(session, area_code=area_code, since=since, until=until)
    return rate_table(facts, by)


class RateCell(Protocol):
    """What :func:`flag_rates` reads of a row (:class:`RateRow` and the API's ``RatePublic``)."""

    @property
    def week(self) -> str: ...
    @property
    def week_start(self) -> date: ...
    @property
    def decisions(self) -> int: ...
    @property
    def overrides(self) -> int: ...
    @property
    def raised(self) -> int: ...
    @property
    def lowered(self) -> int: ...


@dataclass(frozen=True)
class WeekTotal:
    """Every decision of one week, whatever the group: the rate the groups are compared with."""

    week: str
    week_start: date
    decisions: int
    overrides: int
    raised: int
    lowered: int

    @property
    def rate(self) -> float:
        """``overrides / decisions`` (0 without a decision)."""
        return self.overrides / self.decisions if self.decisions else 0.0


def week_totals(rows: Sequence[RateCell]) -> dict[str, WeekTotal]:
    """Per ISO week, the sum over the groups of one split (each decision is in one group).

    Parameters
    ----------
    rows : sequence of RateRow or RatePublic
        The rows of one split.

    Returns
    -------
    dict of str to WeekTotal
        By week label, oldest first.
    """
    sums: dict[str, list[int]] = {}
    starts: dict[str, date] = {}
    for row in rows:
        starts[row.week] = row.week_start
        cell = sums.setdefault(row.week, [0, 0, 0, 0])
        for i, value in enumerate((row.decisions, row.overrides, row.raised, row.lowered)):
            cell[i] += value
    return {
        week: WeekTotal(week, starts[week], *sums[week])
        for week in sorted(sums, key=lambda w: starts[w])
    }


def is_flagged(row: RateCell, total: WeekTotal) -> bool:
    """Whether a cell's override rate asks for a conversation.

    It does when the cell rests on at least :data:`FLAG_MIN_DECISIONS` decisions and its rate
    is at least :data:`FLAG_RATE`, or at least :data:`FLAG_RATIO` times ``total``'s rate.

    Examples
    --------
    >>> week = WeekTotal("2026-W05", date(2026, 1, 26), 40, 4, 1, 3)
    >>> is_flagged(RateRow("2026-W05", date(2026, 1, 26), GroupBy.TOWNSHIP, "t", 8, 2, 0, 2,
    ...     0.25), week)
    True
    >>> is_flagged(RateRow("2026-W05", date(2026, 1, 26), GroupBy.TOWNSHIP, "t", 4, 3, 0, 3,
    ...     0.75), week)
    False
    """
    if row.decisions < FLAG_MIN_DECISIONS:
        return False
    rate = row.overrides / row.decisions
    return rate >= FLAG_RATE or (total.rate > 0 and rate >= FLAG_RATIO * total.rate)


def flag_rates(rows: Sequence[RateCell]) -> list[bool]:
    """For each row of one split, whether it is flagged (:func:`is_flagged`) against its week.

    Parameters
    ----------
    rows : sequence of RateRow or RatePublic
        The rows of one split.

    Returns
    -------
    list of bool
        In the order of ``rows``.
    """
    totals = week_totals(rows)
    return [is_flagged(row, totals[row.week]) for row in rows]


__all__ = [
    "FLAG_MIN_DECISIONS",
    "FLAG_RATE",
    "FLAG_RATIO",
    "DecisionFact",
    "GroupBy",
    "RateCell",
    "RateRow",
    "WeekTotal",
    "decision_facts",
    "flag_rates",
    "is_flagged",
    "iso_week",
    "override_rates",
    "rate_table",
    "week_totals",
]
