"""Attribution of feature drift to areas: which township moved, in which feature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import area_shifts


def _frame(contact: dict[str, list[str]], visits: dict[str, float], n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(len(contact) + int(sum(visits.values()) * 10))
    parts = []
    for area in contact:
        parts.append(
            pd.DataFrame(
                {
                    "township": area,
                    "visits_30d": rng.normal(visits[area], 0.1, n),
                    "parent_contact": rng.choice(contact[area], n),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_the_area_that_moved_has_the_largest_shift_in_the_feature_that_moved() -> None:
    ref = _frame({"A": ["weekly", "monthly"], "B": ["weekly", "monthly"]}, {"A": 1.0, "B": 1.0})
    cur = _frame({"A": ["weekly", "monthly"], "B": ["never"]}, {"A": 0.0, "B": 1.0})
    shifts = area_shifts(ref, cur, ["visits_30d"], ["parent_contact"], "township")
    assert shifts.loc["A", "visits_30d"] < -2 and abs(shifts.loc["B", "visits_30d"]) < 0.3
    assert shifts.loc["B", "parent_contact"] == pytest.approx(1.0)  # every child moved
    assert shifts.loc["A", "parent_contact"] < 0.15


def test_a_new_area_is_held_against_the_whole_reference() -> None:
    ref = _frame({"A": ["weekly"], "B": ["monthly"]}, {"A": 1.0, "B": 3.0})
    cur = _frame({"A": ["weekly"], "C": ["weekly", "monthly"]}, {"A": 1.0, "C": 2.0})
    shifts = area_shifts(ref, cur, ["visits_30d"], ["parent_contact"], "township")
    assert list(shifts.index) == ["A", "C"]
    assert abs(shifts.loc["C", "visits_30d"]) < 0.2  # 2.0 is the whole reference's mean
    assert shifts.loc["C", "parent_contact"] < 0.15  # half and half, as the whole reference
