"""Seasonality is not drift: the season-matched reference and the common recency horizon."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from features.calendar import school_days_between, term_at
from monitoring.season import (
    comparable_frame,
    comparison_horizon,
    matched_reference,
    school_day_gap,
    season_note,
    season_of,
    shift_months,
)


def test_a_term_month_end_is_compared_with_the_same_month_end_a_year_earlier() -> None:
    assert matched_reference(date(2025, 12, 31)) == date(2024, 12, 31)
    assert matched_reference(date(2025, 10, 15)) == date(2024, 10, 15)
    assert matched_reference(date(2025, 8, 31)) == date(2024, 8, 31)


def test_the_spring_festival_return_is_matched_by_the_festival_not_the_calendar() -> None:
    # 2026-02-28: winter holiday, 11 days after the festival (the spring term starts 4 March).
    # 2025-02-28 was in term; 2025-01-31 was in the holiday, 2 days after that festival.
    current = date(2026, 2, 28)
    assert season_of(current).holiday == "winter"
    assert season_of(date(2025, 2, 28)).in_term
    assert matched_reference(current) == date(2025, 1, 31)
    assert season_note(date(2025, 1, 31), current)["matched"]
    assert not season_note(date(2025, 2, 28), current)["matched"]


@pytest.mark.parametrize("months", range(0, 24))
def test_the_reference_keeps_term_or_holiday_whenever_a_candidate_can(months: int) -> None:
    current = shift_months(date(2027, 12, 31), months)
    chosen = matched_reference(current)
    candidates = [shift_months(current, lag) for lag in (11, 12, 13)]
    same_state = [c for c in candidates if season_of(c).in_term == season_of(current).in_term]
    assert chosen in candidates
    if same_state:
        assert season_of(chosen).in_term == season_of(current).in_term
    if season_note(shift_months(current, 12), current)["mismatch"] == 0:
        assert chosen == shift_months(current, 12)


def test_seasons_name_the_holiday_and_the_festival_offset() -> None:
    summer = season_of(date(2025, 7, 31))
    assert (summer.in_term, summer.holiday, summer.spring_festival_days) == (False, "summer", None)
    assert season_of(date(2025, 1, 31)).spring_festival_days == 2  # festival on 29 January
    assert season_of(date(2025, 5, 15)).in_term and season_of(date(2025, 5, 15)).holiday is None


def test_month_ends_stay_month_ends_when_shifted() -> None:
    assert shift_months(date(2025, 2, 28), 12) == date(2024, 2, 29)
    assert shift_months(date(2024, 2, 29), 12) == date(2023, 2, 28)
    assert shift_months(date(2025, 3, 30), 1) == date(2025, 2, 28)
    assert shift_months(date(2025, 1, 15), 13) == date(2023, 12, 15)


def test_recency_features_are_capped_at_a_common_horizon_and_other_columns_kept() -> None:
    frame = pd.DataFrame(
        {
            "days_since_incident": [10.0, 500.0, np.nan],
            "visits_30d": pd.array([1, 2, 3], dtype="int32"),
            "child_id": ["a", "b", "c"],
        }
    )
    out = comparable_frame(frame, ["days_since_incident", "visits_30d"], horizon=365)
    assert out["days_since_incident"].tolist() == [10.0, 365.0, 366.0]
    assert out["visits_30d"].tolist() == [1, 2, 3]
    assert list(out.columns) == ["days_since_incident", "visits_30d"]
    assert np.isnan(frame.at[2, "days_since_incident"])  # the input is not changed


def test_the_horizon_never_exceeds_the_history_before_the_reference() -> None:
    assert comparison_horizon(365, None) == 365
    assert comparison_horizon(365, 200) == 200
    assert comparison_horizon(365, 900) == 365
    assert comparison_horizon(365, 0) == 1


def test_a_school_silent_through_a_holiday_has_no_gap_but_one_silent_in_term_has() -> None:
    as_of = date(2025, 8, 31)  # summer holiday since early July
    last_term_day = max(
        day for day in (as_of - timedelta(days=n) for n in range(90)) if term_at(day) is not None
    )
    days = float((as_of - last_term_day).days)
    assert school_day_gap(as_of, days, None) == 0
    in_term = date(2025, 12, 31)
    gap = school_day_gap(in_term, 14.0, None)
    assert gap == school_days_between(in_term - timedelta(days=13), in_term) and gap >= 9
    assert school_day_gap(in_term, 0.0, None) == 0


def test_a_school_that_never_reported_counts_from_the_start_of_the_ledgers() -> None:
    start, as_of = date(2025, 9, 1), date(2025, 9, 30)
    assert school_day_gap(as_of, None, start) == school_days_between(start, as_of)
    assert school_day_gap(as_of, None, None) is None
