"""Derived features: small pure functions over aggregated columns, shared by every engine.

Each function is named after what it returns, takes the columns it needs as ``pd.Series``
arguments (no I/O, no state) and has a one-sentence docstring a caseworker could read. The
DuckDB store and the pandas reference both call these same functions after aggregation, so a
derived feature has exactly one implementation (style rule 4; anti-pattern 5).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def age_years(as_of: pd.Series, birth_date: pd.Series) -> pd.Series:
    """Completed years of age on the as-of date."""
    before_birthday = (as_of.dt.month < birth_date.dt.month) | (
        (as_of.dt.month == birth_date.dt.month) & (as_of.dt.day < birth_date.dt.day)
    )
    years: pd.Series = as_of.dt.year - birth_date.dt.year - before_birthday.astype("int64")
    return years.astype("float64")


def is_registered(status: pd.Series, age: pd.Series) -> pd.Series:
    """Whether the child's file is open and the child is under 16 (the programme's age limit)."""
    # 16 is the statutory definition of a left-behind child (domain.md), not a tier threshold.
    active = status.eq("active").fillna(False).astype(bool)
    return active & age.lt(16).fillna(False).astype(bool)


def has_no_household_registration(hukou_status: pd.Series) -> pd.Series:
    """Whether the child has no household registration (无户籍)."""
    out = hukou_status.astype("object").eq("none")
    return out.astype("boolean").mask(hukou_status.isna())


def absence_rate(absence_days: pd.Series, school_days: pd.Series) -> pd.Series:
    """Absence days divided by the school days in the same window; 0 when school was out."""
    days = absence_days.astype("float64")
    school = school_days.astype("float64")
    # A window with no school days (a holiday) has no absence to speak of: 0, not "unknown".
    rate = np.where(school > 0, days / school.where(school > 0, 1.0), 0.0)
    return pd.Series(rate, index=absence_days.index, dtype="float64")


def rate_change(current: pd.Series, previous: pd.Series) -> pd.Series:
    """This period's rate minus the previous period's rate (positive = getting worse)."""
    return current.astype("float64") - previous.astype("float64")


def score_change(latest: pd.Series, previous: pd.Series) -> pd.Series:
    """Latest term's average score minus the previous term's (negative = falling)."""
    return latest.astype("float64") - previous.astype("float64")


def share_of(part: pd.Series, total: pd.Series) -> pd.Series:
    """Part divided by total; unknown when there were none at all."""
    whole = total.astype("float64")
    return part.astype("float64") / whole.where(whole > 0)


def lives_alone(
    record_arrangement: pd.Series,
    days_since_record: pd.Series,
    days_since_visit_alone: pd.Series,
    days_since_visit_cared_for: pd.Series,
) -> pd.Series:
    """Whether the newest word on where the child lives, record or home visit, is "alone"."""
    record = days_since_record.astype("float64").to_numpy()
    alone = days_since_visit_alone.astype("float64").to_numpy()
    cared = days_since_visit_cared_for.astype("float64").to_numpy()
    says_alone = record_arrangement.astype("object").eq("alone").fillna(False).to_numpy(bool)
    # A guardian arranged after a visit found the child alone closes that finding; a visit
    # after the record finding the child with a carer (or boarding) overrides the record.
    # Missing evidence is "never": +inf days ago. On the same day the record is believed, and
    # a visit that found a carer outweighs one that found the child alone.
    inf = np.inf
    record_d = np.where(np.isnan(record), inf, record)
    alone_d = np.where(np.isnan(alone), inf, alone)
    cared_d = np.where(np.isnan(cared), inf, cared)
    by_record = says_alone & (record_d <= np.minimum(alone_d, cared_d))
    by_visit = (alone_d < record_d) & (alone_d < cared_d)
    known = np.isfinite(record_d) | np.isfinite(alone_d) | np.isfinite(cared_d)
    out = pd.Series(by_record | by_visit, index=record_arrangement.index, dtype="boolean")
    return out.mask(~known)


def is_out_of_school(
    days_since_left: pd.Series, days_since_return: pd.Series, enrol_status: pd.Series
) -> pd.Series:
    """Whether the child left school (a record of it) and no return was recorded since."""
    left = days_since_left.astype("float64")
    back = days_since_return.astype("float64")
    # Fewer days since the return than since leaving: the return came after it. Same-day
    # records count as back at school (a return closes the episode it is dated with).
    away = left.notna() & (back.isna() | (back > left))
    dropped = enrol_status.astype("object").eq("dropped_out").fillna(False).astype(bool)
    return (away | dropped).astype("boolean")


def days_since_any_record(*days_since: pd.Series) -> pd.Series:
    """Days since the newest record of any kind about the child was entered."""
    return pd.concat(days_since, axis=1).astype("float64").min(axis=1, skipna=True)


__all__ = [
    "absence_rate",
    "age_years",
    "days_since_any_record",
    "has_no_household_registration",
    "is_out_of_school",
    "is_registered",
    "lives_alone",
    "rate_change",
    "score_change",
    "share_of",
]
