"""Days and months of the simulated period: school days, seasons and the Spring Festival.

Everything here is deterministic reference data derived from ``features.calendar``; the
dynamics and the oracle read the same arrays, so the oracle knows exactly the seasonality the
generator will apply.

Days are integers counted from 1970-01-01 (``numpy`` ``datetime64[D]`` as ``int64``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from features.calendar import SPRING_FESTIVAL, school_days_frame, terms
from features.synthetic.config import HORIZON_MONTHS, SynthConfig, add_months

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

EPOCH = date(1970, 1, 1)
#: Average month length: intensities are "per average month" of exposure.
MONTH_DAYS = 30.4375
#: Normalises dropout exposure so that a full month of term is about one unit.
TERM_MONTH_SCHOOL_DAYS = 21.0

#: Share of the year's drowning deaths in each calendar month. The 2014 national figures peak
#: in June-September with August at 18 % (research note §3, "Injury and drowning").
DROWNING_MONTH_SHARE: tuple[float, ...] = (
    0.02,
    0.02,
    0.03,
    0.05,
    0.09,
    0.13,
    0.17,
    0.18,
    0.11,
    0.08,
    0.07,
    0.05,
)
#: Parents who come home for the Spring Festival stay from 10 days before to 12 days after.
SF_ARRIVE_BEFORE = 10
SF_LEAVE_AFTER = 12


def to_day(value: date) -> int:
    """Day number of a date."""
    return (value - EPOCH).days


def from_day(day: int) -> date:
    """Date of a day number."""
    return EPOCH + timedelta(days=int(day))


@dataclass(frozen=True)
class Month:
    """One calendar month of the period (or of the oracle's horizon after it)."""

    index: int
    year: int
    month: int
    start_day: int
    end_day: int  # inclusive
    drowning_factor: float
    winter: bool
    sf_year: int  # Spring Festival year whose home window overlaps this month, else 0
    sf_home_fraction: float  # share of the month's days inside that window
    after_sf: bool  # the month parents who stay for good are most often decided
    screening_month: bool  # school psychological screening rounds (March, October)
    review_month: bool  # quarterly guardianship file update
    term_ends: tuple[int, ...]  # days a term ends in this month
    term_starts: tuple[int, ...]

    @property
    def days(self) -> int:
        """Number of days in the month."""
        return self.end_day - self.start_day + 1

    @property
    def first(self) -> date:
        """First day as a date."""
        return date(self.year, self.month, 1)

    @property
    def label(self) -> str:
        """``YYYY-MM``."""
        return f"{self.year:04d}-{self.month:02d}"


class Timeline:
    """Day arrays and month contexts covering the period plus the oracle's horizon."""

    def __init__(self, config: SynthConfig) -> None:
        self.first_day = to_day(config.start)
        horizon_end = add_months(config.start, config.months + HORIZON_MONTHS)
        self.last_day = to_day(horizon_end) - 1
        self.period_end_day = to_day(config.end) - 1
        n_days = self.last_day - self.first_day + 1
        frame = school_days_frame()
        first = frame.index[frame["day"] == config.start][0]
        chunk = frame.iloc[first : first + n_days]
        self.is_school_day: BoolArray = chunk["is_school_day"].to_numpy(dtype=bool)
        self.term_index: IntArray = chunk["term_index"].to_numpy(dtype=np.int64)
        self._build_weights()
        self.months: list[Month] = [
            self._month(i, add_months(config.start, i))
            for i in range(config.months + HORIZON_MONTHS)
        ]
        self.n_period_months = config.months

    # -- day arrays -------------------------------------------------------------------------
    def _build_weights(self) -> None:
        n = len(self.is_school_day)
        school = self.is_school_day
        # school days still to come in the same term, including today
        remaining = np.zeros(n, dtype=np.int64)
        seen = np.zeros(n, dtype=np.int64)
        count: dict[int, int] = {}
        for i in range(n):
            if school[i]:
                t = int(self.term_index[i])
                count[t] = count.get(t, 0) + 1
                seen[i] = count[t]
        totals = dict(count)
        for i in range(n):
            if school[i]:
                t = int(self.term_index[i])
                remaining[i] = totals[t] - seen[i] + 1
        # An episode only becomes a suspected dropout after six school days, so onsets need
        # eight school days left in the term; the first days of a term carry the "did not come
        # back" risk, largest after the Spring Festival.
        eligible = school & (remaining >= 8)
        weight = eligible.astype(np.float64)
        spring = np.array([self._is_spring_term(int(t)) for t in self.term_index])
        start_window = school & (seen <= 10) & (seen >= 1)
        weight[start_window & eligible] = np.where(spring[start_window & eligible], 3.0, 2.0)
        self.dropout_weight = weight / TERM_MONTH_SCHOOL_DAYS
        self.uniform_weight = np.full(n, 1.0 / MONTH_DAYS)
        # cumulative sums with a leading zero: weight of days [a, b) = cum[b] - cum[a]
        self.cum_uniform = np.concatenate([[0.0], np.cumsum(self.uniform_weight)])
        self.cum_dropout = np.concatenate([[0.0], np.cumsum(self.dropout_weight)])
        self.cum_school = np.concatenate([[0], np.cumsum(school.astype(np.int64))])

    @staticmethod
    def _is_spring_term(index: int) -> bool:
        if index < 0:
            return False
        return terms()[index].start.month < 8

    def offset(self, day: IntArray | int) -> IntArray:
        """Position of day numbers in the day arrays (clipped to the covered range)."""
        pos = np.asarray(day, dtype=np.int64) - self.first_day
        return np.clip(pos, 0, len(self.is_school_day))

    def weight_between(self, kind: str, lo: IntArray, hi: IntArray) -> FloatArray:
        """Exposure weight of days ``[lo, hi)`` for ``kind`` (``uniform`` or ``dropout``)."""
        cum = self.cum_dropout if kind == "dropout" else self.cum_uniform
        a, b = self.offset(lo), self.offset(hi)
        return np.where(b > a, cum[b] - cum[np.minimum(a, b)], 0.0)

    def day_at_weight(self, kind: str, lo: IntArray, target: FloatArray) -> IntArray:
        """First day ``d >= lo`` whose cumulative weight from ``lo`` exceeds ``target``."""
        cum = self.cum_dropout if kind == "dropout" else self.cum_uniform
        a = self.offset(lo)
        goal = cum[a] + target
        pos = np.searchsorted(cum, goal, side="left") - 1
        pos = np.clip(pos, a, len(cum) - 2)
        return (pos + self.first_day).astype(np.int64)

    def school_days_between(self, lo: IntArray, hi: IntArray) -> IntArray:
        """School days in ``[lo, hi)``."""
        a, b = self.offset(lo), self.offset(hi)
        return np.where(b > a, self.cum_school[b] - self.cum_school[np.minimum(a, b)], 0)

    def nth_school_day(self, lo: IntArray, n: IntArray) -> IntArray:
        """The day on which the ``n``-th school day counted from ``lo`` (inclusive) falls."""
        a = self.offset(lo)
        goal = self.cum_school[a] + n
        pos = np.searchsorted(self.cum_school, goal, side="left") - 1
        pos = np.clip(pos, 0, len(self.is_school_day) - 1)
        return (pos + self.first_day).astype(np.int64)

    # -- months -----------------------------------------------------------------------------
    def _month(self, index: int, first: date) -> Month:
        nxt = add_months(first, 1)
        start_day, end_day = to_day(first), to_day(nxt) - 1
        days = end_day - start_day + 1
        drowning = DROWNING_MONTH_SHARE[first.month - 1] * 12 * MONTH_DAYS / days
        sf_year, sf_frac = 0, 0.0
        for year in (first.year, first.year + 1):
            if year not in SPRING_FESTIVAL:
                continue
            festival = to_day(SPRING_FESTIVAL[year])
            lo, hi = festival - SF_ARRIVE_BEFORE, festival + SF_LEAVE_AFTER
            overlap = min(hi, end_day) - max(lo, start_day) + 1
            if overlap > 0:
                sf_year, sf_frac = year, overlap / days
        after_sf = False
        if first.year in SPRING_FESTIVAL:
            decision = to_day(SPRING_FESTIVAL[first.year]) + 20
            after_sf = start_day <= decision <= end_day
        term_ends = tuple(to_day(t.end) for t in terms() if start_day <= to_day(t.end) <= end_day)
        term_starts = tuple(
            to_day(t.start) for t in terms() if start_day <= to_day(t.start) <= end_day
        )
        return Month(
            index=index,
            year=first.year,
            month=first.month,
            start_day=start_day,
            end_day=end_day,
            drowning_factor=drowning,
            winter=first.month in (12, 1, 2),
            sf_year=sf_year,
            sf_home_fraction=sf_frac,
            after_sf=after_sf,
            screening_month=first.month in (3, 10),
            review_month=first.month in (3, 6, 9, 12),
            term_ends=term_ends,
            term_starts=term_starts,
        )

    def month_of_day(self, day: IntArray) -> IntArray:
        """Index of the month (of the period or horizon) that contains each day."""
        starts = np.array([m.start_day for m in self.months], dtype=np.int64)
        return np.searchsorted(starts, np.asarray(day, dtype=np.int64), side="right") - 1


__all__ = [
    "DROWNING_MONTH_SHARE",
    "EPOCH",
    "MONTH_DAYS",
    "Month",
    "Timeline",
    "from_day",
    "to_day",
]
