"""Labels look forward from the as-of date, record their sources and respect maturity."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.labels import OUTCOMES, label_frame
from tests.unit.features._raw_factory import RawFactory

D = date(2024, 3, 1)


@pytest.fixture()
def factory(tmp_path: Path) -> Iterator[RawFactory]:
    raw = RawFactory.create(tmp_path / "store.duckdb")
    raw.child("c-1")
    raw.child("c-2")
    yield raw
    raw.con.close()


def labels(factory: RawFactory, known_by: date | None = None, pid: str = "c-1") -> pd.Series:
    spine = pd.DataFrame({"child_id": [pid], "as_of": [D]})
    return label_frame(factory.con, spine, known_by=known_by).iloc[0]


def test_labels_never_use_rows_on_or_before_as_of(factory: RawFactory) -> None:
    factory.incident("c-1", "2024-03-01", incident_type="abuse", recorded_at="2024-03-03")
    factory.incident("c-1", "2024-02-10", incident_type="drowning", recorded_at="2024-04-01")
    factory.guardianship("c-1", "2024-03-01", capacity="absent")
    factory.school_event("c-1", "2024-02-28", kind="dropout", recorded_at="2024-03-05")
    got = labels(factory)
    assert not got[["serious_harm", "guardianship_breakdown", "dropout", "any"]].any()


def test_labels_window_is_the_next_90_days_inclusive(factory: RawFactory) -> None:
    factory.incident("c-1", "2024-05-30", incident_type="missing", source_system="police")
    factory.incident("c-2", "2024-05-31", incident_type="missing", source_system="police")
    assert labels(factory)["serious_harm"]  # D + 90 days
    assert not labels(factory, pid="c-2")["serious_harm"]  # D + 91 days
    assert labels(factory)["window_end"] == pd.Timestamp("2024-05-30")


def test_labels_count_late_entries_unless_known_by_excludes_them(factory: RawFactory) -> None:
    factory.incident(
        "c-1",
        "2024-04-10",
        incident_type="self_harm",
        source_system="health",
        recorded_at="2024-07-20",
    )
    assert labels(factory)["mental_health"]
    assert not labels(factory, known_by=date(2024, 6, 30))["mental_health"]
    assert labels(factory, known_by=date(2024, 7, 31))["mental_health"]


def test_labels_use_the_version_known_by_the_maturity_date(factory: RawFactory) -> None:
    factory.incident(
        "c-1", "2024-04-10", incident_id="i-1", incident_type="abuse", recorded_at="2024-04-11"
    )
    factory.incident(
        "c-1",
        "2024-04-10",
        incident_id="i-1",
        incident_type="accidental_injury",
        recorded_at="2024-06-15",
    )  # corrected: not a serious harm after all
    assert labels(factory, known_by=date(2024, 5, 31))["serious_harm"]
    assert not labels(factory, known_by=date(2024, 6, 30))["serious_harm"]
    assert not labels(factory)["serious_harm"]


def test_labels_record_source_systems_per_outcome(factory: RawFactory) -> None:
    factory.incident("c-1", "2024-03-20", incident_type="domestic_violence", source_system="police")
    factory.incident("c-1", "2024-04-20", incident_type="unlawful_harm", source_system="school")
    factory.school_event("c-1", "2024-04-01", kind="suspected_dropout")
    factory.guardianship("c-1", "2024-04-02", living_arrangement="alone")
    got = labels(factory)
    assert got["source_serious_harm"] == "police;school"
    assert got["source_dropout"] == "school"
    assert got["source_guardianship_breakdown"] == "village"
    assert pd.isna(got["source_mental_health"])
    assert got["source_any"] == "police;school;village"
    assert got[["serious_harm", "dropout", "guardianship_breakdown", "any"]].all()


def test_mental_health_screen_needs_ideation_and_positive(factory: RawFactory) -> None:
    factory.screening("c-1", "2024-04-01", suicidal_ideation=True, positive=False)
    factory.screening("c-2", "2024-04-01", suicidal_ideation=True, positive=True, screener="health")
    assert not labels(factory)["mental_health"]
    assert labels(factory, pid="c-2")["mental_health"]
    assert labels(factory, pid="c-2")["source_mental_health"] == "health"


def test_dropout_from_enrolment_status(factory: RawFactory) -> None:
    factory.enrolment("c-1", "2024-04-15", enrol_status="dropped_out")
    got = labels(factory)
    assert got["dropout"] and got["source_dropout"] == "school"


def test_labels_report_visits_in_the_window(factory: RawFactory) -> None:
    factory.visit("c-1", "2024-03-01")  # on D: not in the window
    factory.visit("c-1", "2024-03-15")
    factory.visit("c-1", "2024-04-15")
    got = labels(factory)
    assert got["visits_in_window"] == 2
    assert got["visited_in_window"]
    assert not labels(factory, pid="c-2")["visited_in_window"]


def test_label_maturity_follows_known_by_or_the_newest_record(factory: RawFactory) -> None:
    factory.visit("c-2", "2024-05-01")
    assert not labels(factory)["label_mature"]  # newest record 2024-05-01 < window end
    assert labels(factory, known_by=date(2024, 6, 1))["label_mature"]
    assert labels(factory, known_by=date(2024, 6, 1))["known_by"] == pd.Timestamp("2024-06-01")


def test_label_frame_keeps_spine_order_and_every_outcome_column(factory: RawFactory) -> None:
    factory.incident("c-2", "2024-03-05", incident_type="abuse")
    spine = pd.DataFrame({"child_id": ["c-2", "c-1", "c-2"], "as_of": [D, D, date(2024, 3, 10)]})
    got = label_frame(factory.con, spine)
    assert got["child_id"].tolist() == ["c-2", "c-1", "c-2"]
    assert got["serious_harm"].tolist() == [True, False, False]
    assert got["any"].tolist() == [True, False, False]
    for outcome in (*OUTCOMES, "any"):
        assert got[outcome].dtype == bool


def test_a_guardianship_state_recorded_again_unchanged_is_no_new_breakdown(
    factory: RawFactory,
) -> None:
    # c-1: already absent before D; the quarterly review in the window records it again.
    factory.guardianship("c-1", "2024-01-15", capacity="absent", caregiver_relation="none")
    factory.guardianship("c-1", "2024-04-15", capacity="absent", caregiver_relation="none")
    # c-2: cared for before D; the record in the window shows the guardian gone.
    factory.guardianship("c-2", "2024-01-15", capacity="normal", caregiver_relation="grandparent")
    factory.guardianship("c-2", "2024-04-15", capacity="normal", living_arrangement="alone")
    assert not labels(factory)["guardianship_breakdown"]
    assert labels(factory, pid="c-2")["guardianship_breakdown"]


def test_a_breakdown_after_a_recovery_counts_again(factory: RawFactory) -> None:
    factory.guardianship("c-1", "2023-10-01", capacity="absent")
    factory.guardianship("c-1", "2024-01-10", capacity="insufficient")  # a guardian arranged
    factory.guardianship("c-1", "2024-05-01", capacity="absent")
    # Entered late, but dated before the window: it is the row before the one above only if
    # the order is by event date, not by when it was typed in.
    factory.guardianship("c-1", "2024-02-01", capacity="normal", recorded_at="2024-06-01")
    assert labels(factory)["guardianship_breakdown"]
    assert not labels(factory, known_by=date(2024, 4, 30))["guardianship_breakdown"]
