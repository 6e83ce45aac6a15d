"""The school calendar: terms, holidays and school-day counts."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.calendar import (
    SPRING_FESTIVAL,
    is_school_day,
    latest_term,
    school_days_between,
    school_days_frame,
    term_at,
    terms,
)


def test_terms_are_ordered_and_disjoint() -> None:
    all_terms = terms()
    for earlier, later in itertools.pairwise(all_terms):
        assert earlier.index + 1 == later.index
        assert earlier.end < later.start


def test_spring_term_starts_after_the_spring_festival() -> None:
    for year, festival in SPRING_FESTIVAL.items():
        term = term_at(date(year, 4, 15))
        assert term is not None
        assert term.start >= festival + timedelta(days=15)
        assert term.label.endswith("-2")


def test_summer_and_national_day_are_not_school_days() -> None:
    assert term_at(date(2025, 8, 1)) is None
    assert not is_school_day(date(2025, 8, 4))
    assert not is_school_day(date(2025, 10, 3))  # National Day week
    assert is_school_day(date(2025, 10, 9))
    assert not is_school_day(date(2025, 10, 11))  # a Saturday


def test_latest_term_in_a_holiday_is_the_one_that_just_ended() -> None:
    term = latest_term(date(2025, 8, 1))
    assert term.end == date(2025, 7, 5)
    assert term.label == "2024-2025-2"


def test_school_days_in_a_full_term_week_is_five() -> None:
    assert school_days_between(date(2025, 3, 10), date(2025, 3, 16)) == 5
    assert school_days_between(date(2025, 7, 20), date(2025, 8, 20)) == 0


def test_school_year_has_a_realistic_number_of_school_days() -> None:
    days = school_days_between(date(2024, 9, 1), date(2025, 8, 31))
    assert 170 <= days <= 200


def test_dates_outside_the_calendar_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        term_at(date(2040, 1, 1))


@given(st.dates(min_value=date(2016, 1, 1), max_value=date(2034, 12, 31)))
def test_frame_agrees_with_is_school_day(day: date) -> None:
    frame = school_days_frame()
    row = frame.loc[frame["day"] == day].iloc[0]
    assert bool(row["is_school_day"]) == is_school_day(day)
    assert (row["term_index"] >= 0) == (term_at(day) is not None)
