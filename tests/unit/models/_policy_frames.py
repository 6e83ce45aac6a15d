"""Feature records and frames for tier-policy tests, typed like the feature store's output.

Dtypes and category codes come from the feature registry and the canonical data model, so a
frame built here looks like one from ``shouhu features build``. ``BASELINE`` is a child no rule
of the default policy fires for; ``TRIGGERS`` lists, per rule, feature changes that make
exactly that rule fire: together they spell out what each rule of the default policy means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from features.assembly import coerce
from features.definitions import VIEWS, registry_records
from features.schema import TABLES_BY_NAME
from models.policy import TierPolicy, load_policy


@cache
def default_policy() -> TierPolicy:
    """The shipped default policy (loaded once per test process)."""
    return load_policy()


@cache
def feature_types() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Feature name → (registry dtype, category codes) for every registry feature."""
    codes: dict[str, tuple[str, ...]] = {}
    for view in VIEWS:
        for fld in view.fields:
            if fld.dtype == "category" and fld.column is not None:
                spec = TABLES_BY_NAME[view.source].column(fld.column)
                codes[fld.name] = tuple(c.code for c in spec.codes)
    return {r["name"]: (r["dtype"], codes.get(r["name"], ())) for r in registry_records()}


#: A twelve-year-old boy living with a capable grandparent, in school, with no incident on
#: record: no rule of the default policy fires.
BASELINE: dict[str, Any] = {
    "age_years": 12.0,
    "sex": "male",
    "lives_alone": False,
    "visits_child_unattended_90d": 0,
    "caregiver_relation": "grandparent",
    "caregiver_health": "good",
    "days_since_guardianship_incident": None,
    "days_since_missing_or_begging": None,
    "days_since_harm_incident": None,
    "days_since_serious_injury": None,
    "days_since_suicide_attempt": None,
    "days_since_self_harm": None,
    "days_since_mental_health_crisis": None,
    "guardianship_capacity": "normal",
    "out_of_school": False,
    "out_of_school_over_a_month": False,
    "unexcused_absence_days_30d": 0,
    "latest_screen_positive": False,
    "latest_screen_suicidal_ideation": False,
    "suicidal_ideation_screens_365d": 0,
    "no_household_registration": False,
    "serious_illness": False,
    "disability": False,
    "poverty_status": "none",
    "days_since_parent_home_visit": 30.0,
    "parent_contact": "weekly",
    "adult_woman_in_household": True,
}

#: Rule name → feature changes to ``BASELINE`` that make that rule (and only it) fire.
TRIGGERS: dict[str, list[dict[str, Any]]] = {
    "living_alone_unsupervised": [
        {"lives_alone": True},
        {"age_years": 6.0, "visits_child_unattended_90d": 1},
    ],
    "no_de_facto_guardian": [
        {"caregiver_relation": "none"},
        {"caregiver_health": "critical", "visits_child_unattended_90d": 1},
        {"days_since_guardianship_incident": 20.0},
    ],
    "missing_runaway_or_begging": [{"days_since_missing_or_begging": 10.0}],
    "suspected_abuse_or_unlawful_harm": [{"days_since_harm_incident": 3.0}],
    "serious_injury_or_self_harm": [
        {"days_since_serious_injury": 40.0},
        {"days_since_suicide_attempt": 45.0},
        {"days_since_self_harm": 5.0, "suicidal_ideation_screens_365d": 1},
    ],
    "guardianship_absent": [{"guardianship_capacity": "absent"}],
    "dropout_with_guardianship_gap": [
        {"out_of_school_over_a_month": True, "guardianship_capacity": "insufficient"},
    ],
    "suspected_dropout": [
        {"unexcused_absence_days_30d": 6},
        {"out_of_school": True},
    ],
    "improper_guardianship": [{"guardianship_capacity": "improper"}],
    "mental_health_screen_positive": [
        {"latest_screen_positive": True},
        {"latest_screen_suicidal_ideation": True},
    ],
    "recent_self_harm_or_crisis": [
        {"days_since_self_harm": 30.0},
        {"days_since_mental_health_crisis": 12.0},
    ],
    "no_household_registration": [{"no_household_registration": True}],
    "serious_illness_or_disability": [{"serious_illness": True}, {"disability": True}],
    "minimum_income_or_extreme_poverty": [{"poverty_status": "dibao"}, {"poverty_status": "tekun"}],
    "insufficient_guardianship": [{"guardianship_capacity": "insufficient"}],
    "rare_parent_contact": [
        {"parent_contact": "never", "days_since_parent_home_visit": 400.0},
        {"parent_contact": "never", "days_since_parent_home_visit": None},
    ],
    "girl_10_without_adult_woman": [
        {"sex": "female", "age_years": 10.0, "adult_woman_in_household": False},
    ],
}

#: Rules a trigger may fire as well, because the situation itself implies them (a
#: guardianship gap is itself a floor rule; being out of school is a suspected dropout;
#: self-harm with a plan is also recent self-harm).
ALSO_FIRES: dict[str, frozenset[str]] = {
    "dropout_with_guardianship_gap": frozenset({"insufficient_guardianship", "suspected_dropout"}),
    "serious_injury_or_self_harm": frozenset({"recent_self_harm_or_crisis"}),
}

#: Feature changes that look close to a rule but must NOT fire it (edges of each condition).
NEAR_MISSES: list[dict[str, Any]] = [
    {"age_years": 8.0, "visits_child_unattended_90d": 1},  # 8 is not "under 8"
    {"caregiver_health": "critical"},  # ill, but nobody found the child without care
    {"days_since_harm_incident": 46.0},  # outside the 45-day look-back
    {"days_since_missing_or_begging": 120.0},  # an old episode
    {"days_since_serious_injury": 46.0},
    {"days_since_self_harm": 46.0},  # an old self-harm without a plan
    {"days_since_mental_health_crisis": 46.0},
    {"unexcused_absence_days_30d": 5},  # "over 5 days" means 6 or more
    {"parent_contact": "yearly", "days_since_parent_home_visit": 400.0},  # some contact
    {"parent_contact": "never", "days_since_parent_home_visit": 365.0},  # home within a year
    {"sex": "female", "age_years": 9.0, "adult_woman_in_household": False},
    {"sex": "female", "age_years": 12.0, "adult_woman_in_household": None},  # unknown
    {"guardianship_capacity": None, "caregiver_relation": None},  # missing is never a hit
]


def typed_frame(records: Sequence[Mapping[str, Any]], **extra: Sequence[Any]) -> pd.DataFrame:
    """A frame of feature records with the store's dtypes, plus ``extra`` columns as given."""
    types = feature_types()
    names = list(records[0]) if records else sorted(default_policy().feature_names())
    data = pd.DataFrame(list(records), columns=names)
    columns: dict[str, pd.Series] = {}
    for name in data.columns:
        dtype, codes = types[name]
        raw = data[name].astype("object").where(data[name].notna(), None)
        columns[name] = coerce(raw, dtype, codes)
    frame = pd.DataFrame(columns, index=data.index)
    for name, values in extra.items():
        frame[name] = list(values)
    return frame


def random_records(
    rng: np.random.Generator, n: int, rule_rate: float = 0.3
) -> list[dict[str, Any]]:
    """``n`` random records over the default policy's features.

    With probability ``1 - rule_rate`` a record is ``BASELINE`` (no rule fires); otherwise each
    feature is drawn at random (missing values included), so rules fire in every combination.
    """
    types = feature_types()
    names = sorted(default_policy().feature_names())
    out: list[dict[str, Any]] = []
    for _ in range(n):
        if rng.random() >= rule_rate:
            out.append(dict(BASELINE))
            continue
        record: dict[str, Any] = {}
        for name in names:
            dtype, codes = types[name]
            record[name] = _random_value(rng, name, dtype, codes)
        out.append(record)
    return out


def _random_value(rng: np.random.Generator, name: str, dtype: str, codes: tuple[str, ...]) -> Any:
    missing = rng.random() < 0.1
    if dtype == "category":
        return None if missing else str(rng.choice(list(codes)))
    if dtype == "boolean":
        return None if missing else bool(rng.random() < 0.3)
    if dtype == "int32":  # counts are 0 when there is no record, never missing
        return int(rng.choice([0, 0, 0, 1, 2, 7]))
    if missing:
        return None
    if name == "age_years":
        return float(rng.integers(0, 16))
    return float(rng.integers(0, 400))
