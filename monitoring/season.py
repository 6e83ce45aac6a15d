"""Seasonality is not drift: compare like with like.

Children's records follow the school calendar (terms, the summer and winter holidays) and the
Spring Festival (parents come home, registrations double the month after, the spring term
starts about two weeks later). A lunar festival moves by up to three weeks between years, so
"the same month a year earlier" is not always the same season: 2026-02-28 falls in the winter
holiday (the spring term starts on 4 March), 2025-02-28 in term. Two things make a drift report
compare like with like:

1. **The reference date** (:func:`matched_reference`): by default the month end (or the same
   day) about a year before the current date, chosen among the candidates 11, 12 and 13
   months back as the one whose season matches best (:func:`season_of`: term or holiday and
   which holiday, days from the Spring Festival), preferring exactly twelve months. Windowed
   features (visits in 30 days, absences this term) then see the same phase of the year.
2. **Recency features on a common horizon** (:func:`comparable_frame`): a ``days_since_*``
   feature is bounded by the history the ledgers hold, so a year-old store and a two-year-old
   one differ for no reason in the world. Both sides are capped at the same horizon
   (``recency_horizon_days`` of the policy, at most the reference's history) and "nothing
   within the horizon" becomes the horizon plus one day, so the share of children with a
   recent event is compared as well as how recent it was.

Checks that depend on school being in session model the calendar directly: a school's gap
since its last weekly absence report is counted in school days (``school_days_between``), so a
holiday is never a gap.
"""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import pandas as pd

from features.calendar import SPRING_FESTIVAL, school_days_between, term_at

#: Days before and after the Spring Festival during which migrant parents travel and stay home
#: and registrations move; outside it the festival plays no part in the match.
SPRING_FESTIVAL_WINDOW: tuple[int, int] = (-14, 45)

#: Prefix of the open-ended recency features ("days since the last …").
RECENCY_PREFIX = "days_since_"

# Costs of a season mismatch; only their order matters: a term/holiday mismatch outweighs any
# Spring Festival offset, which outweighs a month's distance from the preferred lag.
_TERM_MISMATCH = 1000
_HOLIDAY_MISMATCH = 500
_FESTIVAL_ONE_SIDED = 60
_MONTH_OFF = 2


@dataclass(frozen=True)
class Season:
    """Where a date falls in the school year and relative to the Spring Festival.

    Attributes
    ----------
    day : date
        The date.
    in_term : bool
        A school term is in session (short holidays inside a term count as term).
    holiday : str or None
        ``"winter"``, ``"summer"`` or ``None`` in term.
    spring_festival_days : int or None
        Days after (negative: before) the nearest Spring Festival, when within
        :data:`SPRING_FESTIVAL_WINDOW`; ``None`` otherwise.
    """

    day: date
    in_term: bool
    holiday: str | None
    spring_festival_days: int | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the date as ISO text)."""
        out = asdict(self)
        out["day"] = self.day.isoformat()
        return out


def season_of(day: date) -> Season:
    """The season of ``day``.

    Parameters
    ----------
    day : date
        Any date the school calendar covers (``features.calendar``).

    Returns
    -------
    Season
        Term or holiday, which holiday, and the Spring Festival offset.

    Examples
    --------
    >>> season_of(date(2026, 2, 28)).holiday, season_of(date(2025, 2, 28)).in_term
    ('winter', True)
    """
    in_term = term_at(day) is not None
    offset = _festival_offset(day)
    holiday: str | None = None
    if not in_term:
        # Summer: July to the September term start; every other gap is the winter holiday
        # around the Spring Festival (the calendar has no other multi-day break outside term).
        holiday = "summer" if 6 <= day.month <= 9 else "winter"
    return Season(day=day, in_term=in_term, holiday=holiday, spring_festival_days=offset)


def _festival_offset(day: date) -> int | None:
    low, high = SPRING_FESTIVAL_WINDOW
    best: int | None = None
    for year in (day.year - 1, day.year, day.year + 1):
        festival = SPRING_FESTIVAL.get(year)
        if festival is None:
            continue
        offset = (day - festival).days
        if low <= offset <= high and (best is None or abs(offset) < abs(best)):
            best = offset
    return best


def mismatch(a: Season, b: Season) -> int:
    """How unlike two seasons are (0: alike). Only the order of the values matters.

    Parameters
    ----------
    a, b : Season
        The seasons to compare.

    Returns
    -------
    int
        Larger for a term/holiday mismatch than for any Spring Festival offset.
    """
    cost = 0
    if a.in_term != b.in_term:
        cost += _TERM_MISMATCH
    elif a.holiday != b.holiday:
        cost += _HOLIDAY_MISMATCH
    fa, fb = a.spring_festival_days, b.spring_festival_days
    if fa is not None and fb is not None:
        cost += abs(fa - fb)
    elif (fa is None) != (fb is None):
        cost += _FESTIVAL_ONE_SIDED
    return cost


def shift_months(day: date, months: int) -> date:
    """The same day ``months`` earlier (negative: later); a month end maps to a month end.

    Examples
    --------
    >>> shift_months(date(2025, 2, 28), 12), shift_months(date(2024, 2, 29), 12)
    (datetime.date(2024, 2, 29), datetime.date(2023, 2, 28))
    """
    index = day.year * 12 + (day.month - 1) - months
    year, month = divmod(index, 12)
    last = _calendar.monthrange(year, month + 1)[1]
    month_end = day.day == _calendar.monthrange(day.year, day.month)[1]
    return date(year, month + 1, last if month_end else min(day.day, last))


def matched_reference(current: date, months_back: int = 12) -> date:
    """The default reference date: about ``months_back`` months earlier, in the same season.

    Parameters
    ----------
    current : date
        The date under review.
    months_back : int, default=12
        The preferred lag; the candidates are one month either side of it.

    Returns
    -------
    date
        The candidate whose :func:`season_of` is most like the current date's, ties going to
        exactly ``months_back`` months.

    Examples
    --------
    >>> matched_reference(date(2025, 12, 31))
    datetime.date(2024, 12, 31)
    >>> matched_reference(date(2026, 2, 28))  # winter holiday, 11 days after the festival
    datetime.date(2025, 1, 31)
    """
    target = season_of(current)
    candidates = []
    for lag in (months_back, months_back - 1, months_back + 1):
        if lag < 1:
            continue
        day = shift_months(current, lag)
        try:
            cost = mismatch(target, season_of(day))
        except ValueError:  # outside the school calendar
            continue
        candidates.append((cost + _MONTH_OFF * abs(lag - months_back), abs(lag - months_back), day))
    if not candidates:
        return shift_months(current, months_back)
    return min(candidates)[2]


def season_note(reference: date, current: date) -> dict[str, Any]:
    """Both dates' seasons and whether they match, for the report.

    Returns
    -------
    dict
        ``reference`` and ``current`` (:meth:`Season.as_dict`), ``matched`` (no term/holiday
        mismatch and a Spring Festival offset within two weeks) and ``mismatch``.
    """
    a, b = season_of(reference), season_of(current)
    cost = mismatch(a, b)
    return {
        "reference": a.as_dict(),
        "current": b.as_dict(),
        "mismatch": cost,
        "matched": cost <= 14,
    }


def recency_features(features: Sequence[str]) -> list[str]:
    """The open-ended "days since" features among ``features``."""
    return [f for f in features if f.startswith(RECENCY_PREFIX)]


def comparison_horizon(policy_days: int, history_days: int | None) -> int:
    """The horizon both sides' recency features are capped at.

    Parameters
    ----------
    policy_days : int
        ``monitoring.recency_horizon_days`` of the policy.
    history_days : int or None
        Days of ledgers before the reference date (``None``: unknown).

    Returns
    -------
    int
        The smaller of the two, at least one day.
    """
    if history_days is None:
        return max(1, policy_days)
    return max(1, min(policy_days, history_days))


def comparable_frame(frame: pd.DataFrame, features: Sequence[str], horizon: int) -> pd.DataFrame:
    """A copy of ``frame`` with recency features on a common horizon.

    Parameters
    ----------
    frame : DataFrame
        Feature rows.
    features : sequence of str
        Columns to keep; those starting with ``days_since_`` are capped at ``horizon`` and a
        missing value (no such event within the ledgers) becomes ``horizon + 1``.
    horizon : int
        Days (see :func:`comparison_horizon`).

    Returns
    -------
    DataFrame
        ``frame[features]`` with the recency columns as ``float64``.
    """
    out = frame[list(features)].copy()
    for name in recency_features(features):
        values = pd.to_numeric(out[name], errors="coerce").astype("float64")
        out[name] = values.clip(upper=float(horizon)).fillna(float(horizon + 1))
    return out


def school_day_gap(as_of: date, days: float | None, history_start: date | None) -> int | None:
    """School days between a school's last absence report and ``as_of``.

    Parameters
    ----------
    as_of : date
        The date.
    days : float or None
        ``days_since_school_absence_report`` (calendar days); missing: never reported.
    history_start : date or None
        First day of the ledgers, for a school that never reported.

    Returns
    -------
    int or None
        School days after the report day up to ``as_of``; ``None`` when unknowable.
    """
    if days is None or pd.isna(days):
        if history_start is None:
            return None
        return school_days_between(history_start, as_of)
    last = as_of - pd.Timedelta(days=int(days)).to_pytimedelta()
    if last >= as_of:
        return 0
    return school_days_between(last + pd.Timedelta(days=1).to_pytimedelta(), as_of)


__all__ = [
    "RECENCY_PREFIX",
    "SPRING_FESTIVAL_WINDOW",
    "Season",
    "comparable_frame",
    "comparison_horizon",
    "matched_reference",
    "mismatch",
    "recency_features",
    "school_day_gap",
    "season_note",
    "season_of",
    "shift_months",
]
