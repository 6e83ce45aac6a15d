"""Training rows: registered children × month ends, point-in-time features, matured labels."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from features.definitions import model_feature_names
from features.rawstore import connect
from features.store import FeatureStore
from models.dataset import (
    AREA_COLUMN,
    OUTCOMES,
    UNRESOLVED_AREA,
    capacity_areas,
    label_column,
    month_ends,
    newest_record,
    source_freshness,
    training_dates,
)
from tests._trained_model import Prepared, frame_on


def test_month_ends_count_back_from_the_last_date() -> None:
    assert month_ends(date(2024, 1, 15), date(2024, 5, 20)) == [
        date(2024, 1, 31),
        date(2024, 2, 29),
        date(2024, 3, 31),
        date(2024, 4, 30),
    ]
    # Every third month, always including the newest month end.
    assert month_ends(date(2024, 1, 1), date(2024, 12, 31), every=3) == [
        date(2024, 3, 31),
        date(2024, 6, 30),
        date(2024, 9, 30),
        date(2024, 12, 31),
    ]
    assert month_ends(date(2024, 5, 1), date(2024, 4, 30)) == []


def test_capacity_areas_fill_a_missing_township_from_the_village_code_prefix() -> None:
    frame = pd.DataFrame(
        {
            "township_code": ["990101001", None, None, "990101002"],
            "village_code": ["990101001003", "990101002007", "880000000001", "990101002001"],
        }
    )
    assert capacity_areas(frame).tolist() == [
        "990101001",
        "990101002",  # its village code starts with a known township's code
        UNRESOLVED_AREA,  # no known township fits: counted apart, never dropped
        "990101002",
    ]


def test_label_column_refuses_unknown_outcomes() -> None:
    assert [label_column(o) for o in OUTCOMES][-1] == "y_any"
    with pytest.raises(ValueError, match="unknown outcome"):
        label_column("drowning")


def test_training_rows_are_every_registered_child_at_each_month_end(trained: Prepared) -> None:
    frame = trained.data.frame
    con = connect(trained.store_path, read_only=True)
    try:
        store = FeatureStore(con)
        for as_of in (trained.data.as_of_dates[0], trained.data.as_of_dates[-1]):
            registered = store.registered_children(as_of)["child_id"]
            rows = frame.loc[frame["as_of"] == pd.Timestamp(as_of), "child_id"]
            assert sorted(rows) == sorted(registered)
    finally:
        con.close()
    assert not frame.duplicated(["child_id", "as_of"]).any()
    assert all(
        d == (pd.Timestamp(d) + pd.offsets.MonthEnd(0)).date() for d in trained.data.as_of_dates
    )


def test_every_label_window_had_passed_when_the_data_were_cut(trained: Prepared) -> None:
    data = trained.data
    window_end = pd.to_datetime(data.frame["as_of"]) + pd.Timedelta(days=data.horizon_days)
    assert (window_end <= pd.Timestamp(data.known_by)).all()
    # The newest as-of date is the last month end whose window has passed, no later.
    last = data.as_of_dates[-1]
    assert last + timedelta(days=data.horizon_days) <= data.known_by
    assert (last + timedelta(days=31 + data.horizon_days)) > data.known_by
    # Labels are 0/1 columns apart from the features, and the rates are plausible.
    for outcome in OUTCOMES:
        values = data.frame[label_column(outcome)]
        assert set(np.unique(values)) <= {0, 1}
        assert label_column(outcome) not in model_feature_names()
    assert 0.03 < data.frame[label_column("any")].mean() < 0.25
    any_of_domains = data.frame[[label_column(o) for o in OUTCOMES if o != "any"]].max(axis=1)
    assert (data.frame[label_column("any")] == any_of_domains).all()


def test_training_features_equal_a_scoring_build_on_the_same_date(trained: Prepared) -> None:
    # Training and scoring read one retrieval: no train/serve skew (anti-pattern 5).
    as_of = trained.data.as_of_dates[-1]
    built = frame_on(trained, as_of).sort_values("child_id").reset_index(drop=True)
    rows = trained.data.frame.loc[trained.data.frame["as_of"] == pd.Timestamp(as_of)]
    rows = rows.sort_values("child_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(rows[list(built.columns)], built)


def test_every_row_has_a_capacity_area(trained: Prepared) -> None:
    areas = trained.data.frame[AREA_COLUMN]
    assert areas.notna().all()
    known = trained.data.frame["township_code"].notna()
    assert (areas[known] == trained.data.frame.loc[known, "township_code"]).all()


def test_freshness_ignores_records_entered_after_the_date(trained: Prepared) -> None:
    con = connect(trained.store_path, read_only=True)
    try:
        newest = newest_record(con)
        now = source_freshness(con)
        earlier = source_freshness(con, newest - timedelta(days=40))
        dates = training_dates(con, known_by=newest, cadence_months=3)
    finally:
        con.close()
    assert max(d for d in now.values() if d is not None) == newest
    assert all(d is not None and d <= newest - timedelta(days=40) for d in earlier.values())
    assert "areas" not in now  # reference data, not a ledger the scores depend on
    assert dates[-1] == trained.data.as_of_dates[-1]
    assert len(dates) == len(trained.data.as_of_dates[::-1][::3])
