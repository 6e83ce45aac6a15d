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


def days_since_any_record(*days_since: pd.Series) -> pd.Series:
    """Days since the newest record of any kind about the child was entered."""
    return pd.concat(days_since, axis=1).astype("float64").min(axis=1, skipna=True)


__all__ = [
    "absence_rate",
    "age_years",
    "days_since_any_record",
    "has_no_household_registration",
    "is_registered",
    "rate_change",
    "score_change",
    "share_of",
]
