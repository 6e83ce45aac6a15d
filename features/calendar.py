"""The school calendar and the Spring Festival: the seasons every ledger follows.

Absence counts mean nothing without the school days they are counted over, and parents come
home at the Spring Festival, so both the generator and the features need one calendar. It is
reference data computed from a rule (two terms a school year, national holidays) and the
Spring Festival dates, not read from any ledger.

Terms: the autumn term runs from the first weekday of September to the earlier of 20 January
and a week before the Spring Festival; the spring term from the later of 17 February and 15
days after the Spring Festival, to 5 July. The National Day week and the May Day holiday have
no school days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd

#: Lunar new year (春节) dates, Gregorian.
SPRING_FESTIVAL: dict[int, date] = {
    2015: date(2015, 2, 19),
    2016: date(2016, 2, 8),
    2017: date(2017, 1, 28),
    2018: date(2018, 2, 16),
    2019: date(2019, 2, 5),
    2020: date(2020, 1, 25),
    2021: date(2021, 2, 12),
    2022: date(2022, 2, 1),
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
    2031: date(2031, 1, 23),
    2032: date(2032, 2, 11),
    2033: date(2033, 1, 31),
    2034: date(2034, 2, 19),
    2035: date(2035, 2, 8),
}
FIRST_YEAR = min(SPRING_FESTIVAL)
LAST_YEAR = max(SPRING_FESTIVAL)


@dataclass(frozen=True, order=True)
class Term:
    """One school term: ``index`` counts terms from the first calendar year, in order."""

    index: int
    start: date
    end: date

    @property
    def label(self) -> str:
        """Term name as ledgers write it, e.g. ``2025-2026-1`` (autumn) or ``2025-2026-2``."""
        first = self.start.year if self.start.month >= 8 else self.start.year - 1
        half = 1 if self.start.month >= 8 else 2
        return f"{first}-{first + 1}-{half}"


def _next_weekday(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _check_year(year: int) -> None:
    if year not in SPRING_FESTIVAL:
        raise ValueError(f"the calendar covers {FIRST_YEAR}-{LAST_YEAR}; {year} is outside it")


@lru_cache(maxsize=1)
def terms() -> tuple[Term, ...]:
    """Every term the calendar covers, in order."""
    out: list[Term] = []
    for year in range(FIRST_YEAR, LAST_YEAR + 1):
        spring_start = max(date(year, 2, 17), SPRING_FESTIVAL[year] + timedelta(days=15))
        out.append(Term(len(out), _next_weekday(spring_start), date(year, 7, 5)))
        if year == LAST_YEAR:  # its autumn term ends near a Spring Festival the table lacks
            break
        autumn_end = min(date(year + 1, 1, 20), SPRING_FESTIVAL[year + 1] - timedelta(days=7))
        out.append(Term(len(out), _next_weekday(date(year, 9, 1)), autumn_end))
    return tuple(out)


def _is_holiday(day: date) -> bool:
    return (day.month == 10 and day.day <= 7) or (day.month == 5 and day.day <= 5)


def term_at(day: date) -> Term | None:
    """The term in session on ``day``, or ``None`` in a holiday."""
    _check_year(day.year)
    for term in terms():
        if term.start <= day <= term.end:
            return term
    return None


def latest_term(day: date) -> Term:
    """The term in session on ``day`` or, in a holiday, the last one that ended before it."""
    _check_year(day.year)
    started = [t for t in terms() if t.start <= day]
    if not started:
        raise ValueError(f"no school term starts on or before {day}")
    return started[-1]


@lru_cache(maxsize=1)
def school_days_frame() -> pd.DataFrame:
    """One row per calendar day: ``day``, ``is_school_day`` and ``term_index`` (-1 in holidays).

    Used as a reference table by the store (SQL) and by vectorised code (pandas, numpy).
    """
    days = pd.date_range(date(FIRST_YEAR, 1, 1), date(LAST_YEAR, 12, 31), freq="D")
    term_index = np.full(len(days), -1, dtype=np.int32)
    for term in terms():
        lo = (pd.Timestamp(term.start) - days[0]).days
        hi = (pd.Timestamp(term.end) - days[0]).days
        term_index[lo : hi + 1] = term.index
    weekday = days.weekday < 5
    holiday = ((days.month == 10) & (days.day <= 7)) | ((days.month == 5) & (days.day <= 5))
    school = (term_index >= 0) & weekday & ~holiday
    return pd.DataFrame({"day": days.date, "is_school_day": school, "term_index": term_index})


def school_days_between(start: date, end: date) -> int:
    """School days in the closed interval ``[start, end]``."""
    frame = school_days_frame()
    mask = (frame["day"] >= start) & (frame["day"] <= end)
    return int(frame.loc[mask, "is_school_day"].sum())


def is_school_day(day: date) -> bool:
    """Whether pupils are expected at school on ``day``."""
    return term_at(day) is not None and day.weekday() < 5 and not _is_holiday(day)


def spring_festival_window(year: int, before: int = 14, after: int = 14) -> tuple[date, date]:
    """The weeks around the Spring Festival when migrant parents come home."""
    _check_year(year)
    day = SPRING_FESTIVAL[year]
    return day - timedelta(days=before), day + timedelta(days=after)


__all__ = [
    "FIRST_YEAR",
    "LAST_YEAR",
    "SPRING_FESTIVAL",
    "Term",
    "is_school_day",
    "latest_term",
    "school_days_between",
    "school_days_frame",
    "spring_festival_window",
    "term_at",
    "terms",
]
