"""Precision at capacity as the tier policy spends visits: the T2 band, scaled capacity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.capacity import area_counts, band_precision, capacity, capacity_report, t2_band
from models.policy import load_policy

from ._policy_frames import BASELINE, typed_frame


def test_children_a_rule_puts_in_t1_are_never_ranked_for_the_t2_band() -> None:
    y = np.array([1, 1, 0, 0, 1, 0])
    p = np.array([0.99, 0.90, 0.80, 0.20, 0.10, 0.05])
    keys = np.array(["t|2025-01-31"] * 6, dtype=object)
    band = np.array([False, True, True, True, True, True])  # the top child is a hard-rule T1
    slots = {"t|2025-01-31": 2}
    # The band's two picks are the 0.90 (event) and the 0.80 (none): precision 1/2.
    assert band_precision(y, p, keys=keys, slots=slots, band=band, tie_break="stable") == 0.5
    report = capacity_report(
        y,
        p,
        clusters=np.arange(6),
        keys=keys,
        slots=slots,
        band=band,
        n_resamples=20,
        seed=0,
        tie_break="stable",
    )
    values = report.values()
    assert values["precision_at_capacity"] == 0.5
    assert values["recall_at_capacity"] == 0.5  # one of the band's two events
    assert values["precision_at_capacity_all_children"] == 1.0  # ranking everyone
    assert report.settings["t2_band_rows"] == 5
    assert values["roc_auc"] == pytest.approx(7 / 9)


def test_capacity_is_the_townships_t2_visits_scaled_to_the_sample() -> None:
    everyone = pd.DataFrame(
        {
            "capacity_area": ["990101001"] * 400 + ["990101002"] * 200,
            "as_of": pd.Timestamp("2025-01-31"),
        }
    )
    sample = everyone.iloc[::4]  # a quarter of each township's children
    keys, slots = capacity(sample, area_counts(everyone), load_policy())
    assert set(keys) == {"990101001|2025-01-31", "990101002|2025-01-31"}
    # 30 T2 visits per township by default; a quarter of them fall to the sample.
    assert slots == {"990101001|2025-01-31": 8, "990101002|2025-01-31": 8}


def test_t2_band_leaves_out_hard_rules_and_t1_floors_only() -> None:
    policy = load_policy()
    frame = typed_frame(
        [
            {**BASELINE, "lives_alone": True},  # a hard rule (a child under 16)
            {**BASELINE, "unexcused_absence_days_30d": 9},  # a T2 floor: still ranked
            BASELINE,
        ]
    )
    assert t2_band(frame, policy).tolist() == [False, True, True]
