"""Derived features: each pure function on hand-checked values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import transforms as tf


def _dates(*values: str | None) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values)))


def test_age_years_counts_completed_years_including_leap_birthdays() -> None:
    as_of = _dates("2024-03-01", "2024-02-28", "2024-02-29", "2025-02-28", "2024-03-01")
    born = _dates("2014-03-01", "2012-02-29", "2012-02-29", "2012-02-29", None)
    assert tf.age_years(as_of, born).tolist()[:4] == [10.0, 11.0, 12.0, 12.0]
    assert np.isnan(tf.age_years(as_of, born).iloc[4])


def test_is_registered_needs_an_open_file_and_age_under_16() -> None:
    status = pd.Series(["active", "active", "exited", None])
    age = pd.Series([15.0, 16.0, 10.0, 10.0])
    assert tf.is_registered(status, age).tolist() == [True, False, False, False]


def test_absence_rate_is_zero_without_school_days() -> None:
    got = tf.absence_rate(pd.Series([3, 2, 0]), pd.Series([10, 0, 0]))
    assert got.tolist() == [0.3, 0.0, 0.0]


def test_share_of_is_unknown_without_any_record() -> None:
    got = tf.share_of(pd.Series([1, 0]), pd.Series([4, 0]))
    assert got.iloc[0] == 0.25 and np.isnan(got.iloc[1])


def test_changes_are_current_minus_previous() -> None:
    assert tf.rate_change(pd.Series([0.3]), pd.Series([0.1])).round(6).tolist() == [0.2]
    assert tf.score_change(pd.Series([60.0, np.nan]), pd.Series([70.0, 50.0])).tolist()[0] == -10


def test_days_since_any_record_takes_the_freshest_source() -> None:
    got = tf.days_since_any_record(pd.Series([5.0, np.nan]), pd.Series([2.0, np.nan]))
    assert got.iloc[0] == 2.0 and np.isnan(got.iloc[1])


def test_no_household_registration_keeps_unknown_unknown() -> None:
    got = tf.has_no_household_registration(pd.Series(["none", "rural", None]))
    assert got.tolist()[:2] == [True, False] and got.isna().tolist()[2]


def test_lives_alone_follows_the_newest_record_or_visit() -> None:
    nan = np.nan
    # record says / days since record / days since a visit found alone / ... found cared for
    cases = [
        ("alone", 10.0, nan, nan, True),  # the record, nothing newer
        ("alone", 40.0, nan, 5.0, False),  # a later visit found the child with a carer
        ("with_caregiver", 20.0, 50.0, nan, False),  # a guardian arranged after the visit
        ("with_caregiver", 60.0, 15.0, 30.0, True),  # the newest word is a visit: alone
        ("with_caregiver", 60.0, 15.0, 15.0, False),  # same-day visits: a carer was there
        ("alone", 7.0, 7.0, 7.0, True),  # on the same day the record is believed
        (None, nan, nan, nan, None),  # nothing known
    ]
    got = tf.lives_alone(
        pd.Series([c[0] for c in cases], dtype="category"),
        pd.Series([c[1] for c in cases]),
        pd.Series([c[2] for c in cases]),
        pd.Series([c[3] for c in cases]),
    )
    assert str(got.dtype) == "boolean"
    assert [None if v is pd.NA else bool(v) for v in got] == [c[4] for c in cases]


def test_out_of_school_until_a_later_return_or_while_the_roll_says_so() -> None:
    nan = np.nan
    left = pd.Series([30.0, 30.0, 30.0, nan, nan, 10.0])
    back = pd.Series([nan, 12.0, 30.0, nan, 5.0, 200.0])
    status = pd.Series(["enrolled", "enrolled", "enrolled", "dropped_out", None, None])
    got = tf.is_out_of_school(left, back, status)
    assert got.tolist() == [True, False, False, True, False, True]
