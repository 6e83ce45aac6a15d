"""Time-and-household splits: no family crosses, time order holds, test labels are mature."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.splits import (
    TimeHouseholdSplit,
    assign_groups,
    rolling_time_folds,
    split_by_time_and_household,
)

from ._simulated import simulate_spine

HORIZON = pd.Timedelta(days=90)


def assert_split_is_sound(
    frame: pd.DataFrame, split: TimeHouseholdSplit, *, data_end: pd.Timestamp, embargo: int
) -> None:
    """Every invariant a split promises, checked on the rows themselves."""
    sides = {"train": split.train, "calib": split.calib, "test": split.test}
    # Each row is used at most once, and every unused row is accounted for.
    used = np.concatenate(list(sides.values()))
    assert len(np.unique(used)) == len(used)
    assert len(used) + sum(split.dropped.values()) == len(frame)
    # No household and no child on two sides.
    for column in ("household_pid", "child_id"):
        members = {name: set(frame[column].iloc[rows]) for name, rows in sides.items()}
        assert not members["train"] & members["calib"], column
        assert not members["train"] & members["test"], column
        assert not members["calib"] & members["test"], column
    # Time order, embargo and maturity.
    dates = {name: pd.to_datetime(frame["as_of"].iloc[rows]) for name, rows in sides.items()}
    gap = pd.Timedelta(days=embargo)
    if len(dates["train"]) and len(dates["calib"]):
        assert dates["train"].max() + gap <= split.calib_window.start
        assert dates["train"].max() < dates["calib"].min()
    if len(dates["calib"]) and len(dates["test"]):
        assert dates["calib"].max() + gap <= split.test_window.start
        assert dates["calib"].max() < dates["test"].min()
    if len(dates["test"]):
        assert dates["test"].max() <= data_end - HORIZON
        assert dates["test"].min() >= split.test_window.start


@settings(max_examples=40, deadline=None)
@given(
    n_households=st.integers(1, 40),
    seed=st.integers(0, 10_000),
    move_share=st.floats(0.0, 0.5),
    calib_month=st.integers(6, 14),
    calib_months=st.integers(1, 6),
    data_end_offset=st.integers(0, 200),
    embargo=st.sampled_from([0, 30, 90]),
)
def test_random_spines_split_without_leaks(
    n_households: int,
    seed: int,
    move_share: float,
    calib_month: int,
    calib_months: int,
    data_end_offset: int,
    embargo: int,
) -> None:
    frame = simulate_spine(n_households, seed=seed, move_share=move_share)
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    start = pd.Timestamp("2023-01-02")
    calib_from = start + pd.Timedelta(days=30 * calib_month)
    test_from = calib_from + pd.Timedelta(days=30 * calib_months)
    data_end = test_from + HORIZON + pd.Timedelta(days=data_end_offset)
    split = split_by_time_and_household(
        frame,
        calib_from=calib_from,
        test_from=test_from,
        data_end=data_end,
        embargo_days=embargo,
        calib_share=0.3,
        test_share=0.3,
    )
    assert_split_is_sound(frame, split, data_end=data_end, embargo=embargo)


def test_a_child_who_moves_links_both_households() -> None:
    frame = pd.DataFrame(
        {
            "child_id": ["c1", "c1", "c2", "c3"],
            "household_pid": ["h1", "h2", "h2", "h3"],
            "as_of": ["2024-01-01", "2024-06-01", "2024-06-01", "2024-06-01"],
        }
    )
    for salt in map(str, range(30)):
        groups = assign_groups(frame, calib_share=0.3, test_share=0.3, salt=salt)
        # c1 lived in h1 and h2, so h1, h2 and c2 (h2's other child) always share a group.
        assert groups.iloc[0] == groups.iloc[1] == groups.iloc[2]


def test_assignment_does_not_depend_on_row_order() -> None:
    frame = simulate_spine(200, seed=1)
    shuffled = frame.sample(frac=1.0, random_state=3)
    a = assign_groups(frame, calib_share=0.25, test_share=0.25)
    b = assign_groups(shuffled, calib_share=0.25, test_share=0.25)
    pd.testing.assert_series_equal(a, b.loc[a.index])


def test_group_shares_follow_the_configuration() -> None:
    frame = simulate_spine(3000, seed=2, n_dates=1, move_share=0.0)
    groups = assign_groups(frame, calib_share=0.2, test_share=0.3)
    per_household = groups.groupby(frame["household_pid"]).first().value_counts(normalize=True)
    assert per_household["test"] == pytest.approx(0.3, abs=0.03)
    assert per_household["calib"] == pytest.approx(0.2, abs=0.03)


def test_rows_without_a_household_stand_for_their_child() -> None:
    frame = pd.DataFrame(
        {
            "child_id": ["c1", "c1", "c2"],
            "household_pid": [None, None, None],
            "as_of": "2024-01-01",
        }
    )
    groups = {
        tuple(assign_groups(frame, calib_share=0.3, test_share=0.3, salt=str(s))) for s in range(40)
    }
    assert all(g[0] == g[1] for g in groups)  # one child, one group
    assert any(g[0] != g[2] for g in groups)  # two children without households are not linked


def test_windows_and_drop_reasons_are_reported() -> None:
    frame = simulate_spine(300, seed=4, start=date(2023, 1, 2), n_dates=24, step_days=30)
    data_end = pd.Timestamp("2025-03-31")
    split = split_by_time_and_household(
        frame, calib_from="2024-01-01", test_from="2024-07-01", data_end=data_end
    )
    assert split.test_window.end == data_end - HORIZON
    assert split.calib_window.end == pd.Timestamp("2024-07-01") - HORIZON
    assert split.train_window.end == pd.Timestamp("2024-01-01") - HORIZON
    summary = split.to_dict()
    assert summary["windows"]["test"] == {"start": "2024-07-01", "end": "2024-12-31"}
    assert summary["rows"]["test"] == len(split.test) > 0
    assert summary["dropped"]["after_test"] == int(
        (pd.to_datetime(frame["as_of"]) > data_end - HORIZON).sum()
    )
    assert split.dropped["embargo"] > 0 and split.dropped["other_group"] > 0
    train, calib, test = split.frames(frame)
    assert [len(train), len(calib), len(test)] == [
        len(split.train),
        len(split.calib),
        len(split.test),
    ]


def test_an_immature_test_window_is_refused() -> None:
    frame = simulate_spine(10, seed=5)
    with pytest.raises(ValueError, match="mature"):
        split_by_time_and_household(
            frame,
            calib_from="2024-01-01",
            test_from="2024-07-01",
            test_to="2024-12-31",
            data_end="2025-01-31",
        )


def test_windows_out_of_order_are_refused() -> None:
    frame = simulate_spine(10, seed=6)
    with pytest.raises(ValueError, match="calib_from < test_from"):
        split_by_time_and_household(
            frame, calib_from="2024-07-01", test_from="2024-01-01", data_end="2025-06-30"
        )


def test_rolling_folds_move_forward_in_time_with_fixed_test_households() -> None:
    frame = simulate_spine(400, seed=7, start=date(2022, 1, 3), n_dates=40, step_days=30)
    data_end = pd.Timestamp(date(2022, 1, 3) + timedelta(days=39 * 30))
    folds = rolling_time_folds(frame, n_folds=3, test_days=90, calib_days=120, data_end=data_end)
    assert len(folds) == 3
    for earlier, later in itertools.pairwise(folds):
        assert earlier.test_window.end < later.test_window.start
        assert later.test_window.start - earlier.test_window.start == pd.Timedelta(days=90)
    assert folds[-1].test_window.end == data_end - HORIZON
    test_households = [set(frame["household_pid"].iloc[f.test]) for f in folds]
    train_households = set().union(*(set(frame["household_pid"].iloc[f.train]) for f in folds))
    assert not train_households & set().union(*test_households)
    for fold in folds:
        assert_split_is_sound(frame, fold, data_end=data_end, embargo=90)


def test_rolling_folds_refuse_a_fold_without_training_rows() -> None:
    frame = simulate_spine(50, seed=8, n_dates=8)
    with pytest.raises(ValueError, match="no train"):
        rolling_time_folds(
            frame, n_folds=2, test_days=60, calib_days=30, data_end=pd.Timestamp("2023-10-01")
        )
