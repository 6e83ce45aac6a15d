"""Point-in-time behaviours of the feature store, one rule per test, with values asserted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.definitions import IDENTIFYING_COLUMNS, VISIT, feature_names
from features.rawstore import connect
from features.store import FeatureStore, Plan
from tests.unit.features._raw_factory import Day, RawFactory, as_date


@pytest.fixture()
def factory(tmp_path: Path) -> Iterator[RawFactory]:
    raw = RawFactory.create(tmp_path / "store.duckdb")
    raw.hierarchy()
    yield raw
    raw.con.close()


def row(factory: RawFactory, as_of: Day, pid: str = "c-1") -> pd.Series:
    """The features of one child as of one date, checked equal under both query plans."""
    spine = pd.DataFrame({"child_id": [pid], "as_of": [as_date(as_of)]})
    joined = FeatureStore(factory.con, plan="join").as_of_frame(spine)
    aggregated = FeatureStore(factory.con, plan="aggregate").as_of_frame(spine)
    pd.testing.assert_frame_equal(joined, aggregated)
    return aggregated.iloc[0]


def test_as_of_frame_ignores_rows_recorded_after_as_of(factory: RawFactory) -> None:
    factory.child("c-1")
    factory.visit("c-1", "2024-03-01", recorded_at="2024-03-02")
    factory.visit("c-1", "2024-03-05", recorded_at="2024-03-20")  # late entry
    assert row(factory, "2024-03-10")["visits_30d"] == 1
    assert row(factory, "2024-03-10")["days_since_last_visit"] == 9
    assert row(factory, "2024-03-20")["visits_30d"] == 2
    assert row(factory, "2024-03-20")["days_since_last_visit"] == 15


def test_as_of_frame_ignores_events_after_as_of_even_if_recorded_before(
    factory: RawFactory,
) -> None:
    factory.child("c-1")
    factory.incident("c-1", "2024-04-01", recorded_at="2024-03-01", incident_type="abuse")
    assert row(factory, "2024-03-15")["harm_incidents_365d"] == 0
    assert row(factory, "2024-04-01")["harm_incidents_365d"] == 1


def test_same_date_rows_later_recorded_wins_then_seq(factory: RawFactory) -> None:
    factory.child("c-1")
    factory.guardianship("c-1", "2024-01-10", capacity="normal", recorded_at="2024-01-20")
    factory.guardianship("c-1", "2024-01-10", capacity="absent", recorded_at="2024-01-15")
    assert row(factory, "2024-01-17")["guardianship_capacity"] == "absent"
    assert row(factory, "2024-02-01")["guardianship_capacity"] == "normal"
    # Same change date and same recorded date: load order decides, whatever order the rows
    # sit in the table.
    factory.guardianship(
        "c-1", "2024-03-01", capacity="improper", recorded_at="2024-03-02", seq=900
    )
    factory.guardianship(
        "c-1", "2024-03-01", capacity="insufficient", recorded_at="2024-03-02", seq=800
    )
    assert row(factory, "2024-03-05")["guardianship_capacity"] == "improper"


def test_latest_value_prefers_newer_event_over_later_recorded_older_state(
    factory: RawFactory,
) -> None:
    factory.child("c-1")
    factory.guardianship(
        "c-1", "2024-05-01", caregiver_relation="relative", recorded_at="2024-05-02"
    )
    # A late entry about an older state must not override the newer one.
    factory.guardianship("c-1", "2024-02-01", caregiver_relation="none", recorded_at="2024-06-01")
    got = row(factory, "2024-06-10")
    assert got["caregiver_relation"] == "relative"
    assert got["days_since_guardianship_change"] == 40
    assert got["guardianship_changes_365d"] == 2


def test_correction_counted_once(factory: RawFactory) -> None:
    factory.child("c-1")
    factory.visit("c-1", "2024-03-01", visit_id="v-9", child_seen=True, recorded_at="2024-03-01")
    factory.visit("c-1", "2024-03-01", visit_id="v-9", child_seen=False, recorded_at="2024-03-08")
    before, after = row(factory, "2024-03-05"), row(factory, "2024-03-10")
    assert before["visits_30d"] == 1 and after["visits_30d"] == 1
    assert before["visits_child_not_seen_90d"] == 0
    assert after["visits_child_not_seen_90d"] == 1


def test_correction_moving_the_event_date_moves_the_record(factory: RawFactory) -> None:
    factory.child("c-1")
    factory.visit("c-1", "2024-01-05", visit_id="v-1", recorded_at="2024-01-05")
    factory.visit("c-1", "2024-03-01", visit_id="v-1", recorded_at="2024-03-02")
    got = row(factory, "2024-03-10")
    assert got["visits_30d"] == 1
    assert got["visits_90d"] == 1
    assert got["days_since_last_visit"] == 9


def test_one_household_visit_counts_for_each_child_and_corrects_per_child(
    factory: RawFactory,
) -> None:
    factory.child("c-1")
    factory.child("c-2")
    # One visit_id, a row per child (the natural key is visit and child).
    factory.visit("c-1", "2024-03-01", visit_id="v-1", child_seen=True)
    factory.visit("c-2", "2024-03-01", visit_id="v-1", child_seen=True)
    factory.visit("c-2", "2024-03-01", visit_id="v-1", child_seen=False, recorded_at="2024-03-04")
    assert row(factory, "2024-03-05", "c-1")["visits_30d"] == 1
    assert row(factory, "2024-03-05", "c-2")["visits_30d"] == 1
    assert row(factory, "2024-03-05", "c-1")["visits_child_not_seen_90d"] == 0
    assert row(factory, "2024-03-05", "c-2")["visits_child_not_seen_90d"] == 1


def test_correction_reassigning_an_incident_removes_it_from_the_first_child(
    factory: RawFactory,
) -> None:
    factory.child("c-1")
    factory.child("c-2")
    factory.incident("c-1", "2024-03-01", incident_id="i-1", recorded_at="2024-03-01")
    factory.incident("c-2", "2024-03-01", incident_id="i-1", recorded_at="2024-03-04")
    assert row(factory, "2024-03-02", "c-1")["incidents_90d"] == 1
    assert row(factory, "2024-03-05", "c-1")["incidents_90d"] == 0
    assert row(factory, "2024-03-05", "c-2")["incidents_90d"] == 1


def test_term_aware_absence_rate_zero_in_holidays(factory: RawFactory) -> None:
    factory.child("c-1")
    factory.absence("c-1", "2024-06-24", unexcused_days=3, recorded_at="2024-06-28")
    got = row(factory, "2024-08-20")  # summer holiday: no school day in the last 30 days
    assert got["unexcused_absence_days_30d"] == 0
    assert got["unexcused_absence_rate_30d"] == 0.0
    # The spring term just ended is still the "current" term in the holiday.
    assert got["unexcused_absence_days_current_term"] == 3
    assert got["unexcused_absence_rate_current_term"] > 0


def test_absence_rate_divides_by_calendar_school_days(factory: RawFactory) -> None:
    factory.child("c-1")
    # Spring term 2024 starts Monday 26 February (Spring Festival 10 February + 15 days).
    factory.absence("c-1", "2024-03-04", unexcused_days=3, excused_days=1)
    got = row(factory, "2024-03-10")
    assert got["unexcused_absence_days_current_term"] == 3
    assert got["unexcused_absence_rate_current_term"] == pytest.approx(3 / 10)
    assert got["unexcused_absence_rate_30d"] == pytest.approx(3 / 10)
    assert got["absence_weeks_90d"] == 1
    # Autumn term 2023: its rate is 0 and the trend is this term's rate minus 0.
    assert got["unexcused_absence_rate_previous_term"] == 0.0
    assert got["unexcused_absence_trend"] == pytest.approx(0.3)


def test_school_staleness_comes_from_the_school_not_the_child(factory: RawFactory) -> None:
    factory.child("c-1", school_code="S7")
    factory.child("c-2", school_code="S7")
    factory.absence("c-2", "2024-03-04", school_code="S7", recorded_at="2024-03-08")
    got = row(factory, "2024-03-10", "c-1")
    assert got["unexcused_absence_days_90d"] == 0
    assert got["days_since_school_absence_report"] == 2
    assert pd.isna(row(factory, "2024-03-07", "c-1")["days_since_school_absence_report"])


def test_months_without_visit_count_30_day_periods_back_from_as_of(factory: RawFactory) -> None:
    factory.child("c-1")
    factory.visit("c-1", "2024-06-01")  # 9 days before: period 0
    factory.visit("c-1", "2024-04-15")  # 56 days before: period 1
    factory.visit("c-1", "2024-04-12")  # 59 days before: period 1 again
    got = row(factory, "2024-06-10")
    assert got["months_without_visit_90d"] == 1
    assert got["months_without_visit_180d"] == 4
    assert row(factory, "2024-06-10", "c-unknown")["months_without_visit_180d"] == 6


def test_hazard_filter_matches_whole_codes_in_multi_code_cells(factory: RawFactory) -> None:
    factory.child("c-1")
    factory.visit("c-1", "2024-03-01", home_hazards="fire;water")
    factory.visit("c-1", "2024-03-02", home_hazards="none")
    got = row(factory, "2024-03-10")
    assert got["visits_water_hazard_365d"] == 1
    assert got["visits_any_hazard_365d"] == 1


def test_registered_children_use_latest_version_and_age(factory: RawFactory) -> None:
    factory.child("c-open", registered="2023-01-01")
    factory.child("c-exited", registered="2023-01-01")
    factory.child("c-exited", registered="2024-02-01", status="exited", exit_reason="moved")
    factory.child("c-16", birth_date="2008-03-01")
    factory.child("c-later", registered="2024-05-01")  # not registered yet on D
    factory.child("c-late-exit", registered="2023-01-01")
    factory.child(
        "c-late-exit", registered="2024-02-15", status="exited", recorded_at="2024-03-15"
    )  # the exit is entered after D
    got = FeatureStore(factory.con).registered_children(date(2024, 3, 1))
    assert list(got["child_id"]) == ["c-late-exit", "c-open"]
    assert list(got.columns) == list(IDENTIFYING_COLUMNS)
    assert set(got["township_code"]) == {"500101001"}
    assert set(got["county_code"]) == {"500101"}


def test_build_starts_with_identifying_columns_then_every_feature(factory: RawFactory) -> None:
    factory.child("c-2", household_pid="h-9", school_code="S1")
    factory.child("c-1", household_pid="h-9", school_code="S1")
    factory.enrolment("c-1", "2023-09-01", school_code="S2", grade=5)
    frame = FeatureStore(factory.con).build(date(2024, 3, 1))
    assert list(frame.columns) == [*IDENTIFYING_COLUMNS, *feature_names()]
    assert list(frame["child_id"]) == ["c-1", "c-2"]
    assert list(frame["school_code"]) == ["S2", "S1"]
    assert list(frame["household_pid"]) == ["h-9", "h-9"]
    assert list(frame["grade"].fillna(-1)) == [5.0, -1.0]
    assert frame["age_years"].tolist() == [9.0, 9.0]


def test_as_of_frame_for_many_dates_equals_build_date_by_date(factory: RawFactory) -> None:
    for pid in ("c-1", "c-2", "c-3"):
        factory.child(pid)
    factory.child("c-3", registered="2024-04-01", status="exited")
    factory.visit("c-1", "2024-01-05", recorded_at="2024-02-20")
    factory.visit("c-2", "2024-03-05", child_seen=False)
    factory.absence("c-2", "2024-03-04", unexcused_days=2)
    factory.guardianship("c-1", "2024-02-01", capacity="insufficient", recorded_at="2024-04-03")
    factory.screening("c-3", "2024-03-20", positive=True)
    store = FeatureStore(factory.con)
    dates = [date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30)]
    builds = [store.build(d) for d in dates]
    spine = pd.concat([b[["child_id", "as_of"]] for b in builds], ignore_index=True)
    many = store.as_of_frame(spine)
    pd.testing.assert_frame_equal(many, pd.concat(builds, ignore_index=True))
    assert len(builds[-1]) == 2  # c-3 exited in April


def test_spine_with_a_repeated_pair_is_refused(factory: RawFactory) -> None:
    spine = pd.DataFrame({"child_id": ["c-1", "c-1"], "as_of": [date(2024, 1, 1)] * 2})
    with pytest.raises(ValueError, match="repeats"):
        FeatureStore(factory.con).as_of_frame(spine)


def test_new_rows_after_a_build_are_seen_by_the_next_build(factory: RawFactory) -> None:
    factory.child("c-1")
    factory.visit("c-1", "2024-03-01", visit_id="v-1")
    store = FeatureStore(factory.con)
    spine = pd.DataFrame({"child_id": ["c-1"], "as_of": [date(2024, 3, 10)]})
    assert store.as_of_frame(spine)["visits_child_not_seen_90d"].item() == 0
    factory.visit("c-1", "2024-03-01", visit_id="v-1", child_seen=False, recorded_at="2024-03-09")
    assert store.as_of_frame(spine)["visits_child_not_seen_90d"].item() == 1
    assert store.as_of_frame(spine)["visits_30d"].item() == 1


def test_refresh_keeps_versions_for_a_later_read_only_build(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    raw = RawFactory.create(path)
    raw.child("c-1")
    raw.visit("c-1", "2024-03-01", visit_id="v-1")
    raw.visit("c-1", "2024-03-02", visit_id="v-1", recorded_at="2024-03-05")
    assert FeatureStore(raw.con).refresh()["visits"] == 1
    raw.con.close()
    con = connect(path, read_only=True)
    try:
        got = FeatureStore(con).build(date(2024, 3, 10))
    finally:
        con.close()
    assert got["visits_30d"].tolist() == [1]
    assert got["days_since_last_visit"].tolist() == [8.0]


def test_auto_plan_aggregates_first_only_for_one_date_spines_covering_the_registry(
    factory: RawFactory,
) -> None:
    children = [f"c-{i}" for i in range(10)]
    for pid in children:
        factory.child(pid)
    day = pd.Timestamp("2024-03-01")
    everyone = pd.DataFrame({"child_id": children, "as_of": day})
    few = everyone.iloc[:2]
    two_dates = pd.concat([everyone, everyone.assign(as_of=pd.Timestamp("2024-04-01"))])
    auto = FeatureStore(factory.con)
    assert auto.plan_for(VISIT, everyone) == "aggregate"
    assert auto.plan_for(VISIT, few) == "join"  # a few children: join their rows only
    assert auto.plan_for(VISIT, two_dates) == "join"  # literals need a single date
    assert FeatureStore(factory.con, plan="aggregate").plan_for(VISIT, few) == "aggregate"
    assert FeatureStore(factory.con, plan="aggregate").plan_for(VISIT, two_dates) == "join"
    assert FeatureStore(factory.con, plan="join").plan_for(VISIT, everyone) == "join"
    with pytest.raises(ValueError, match="unknown plan"):
        FeatureStore(factory.con, plan="fast")  # type: ignore[arg-type]


@pytest.mark.parametrize("plan", ["join", "aggregate"])
def test_as_of_frame_keeps_spine_order_under_either_plan(factory: RawFactory, plan: Plan) -> None:
    for pid, visits in (("c-1", 1), ("c-2", 2), ("c-3", 3)):
        factory.child(pid)
        for k in range(visits):
            factory.visit(pid, f"2024-03-0{k + 1}", guardian_present=False)
    spine = pd.DataFrame(
        {"child_id": ["c-3", "c-9", "c-1", "c-2"], "as_of": [date(2024, 3, 10)] * 4}
    )
    got = FeatureStore(factory.con, plan=plan).as_of_frame(spine)
    assert got["child_id"].tolist() == ["c-3", "c-9", "c-1", "c-2"]
    assert got["visits_30d"].tolist() == [3, 0, 1, 2]
    assert got["visits_guardian_absent_90d"].tolist() == [3, 0, 1, 2]
    assert got["days_since_last_visit"].fillna(-1).tolist() == [7.0, -1.0, 9.0, 8.0]
