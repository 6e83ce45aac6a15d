"""Evidence: the records behind a feature are exactly the rows the feature counted on D.

Two kinds of tests: hand-built ledgers (``RawFactory``) that pin the point-in-time rules one by
one (late entries, corrections before and after D, windows, a key shared by two children), and
an oracle over a generated population: for every child and every count, sum, latest, previous,
maximum and days-since feature, the cited records reproduce the store's value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from features.definitions import DERIVED, model_feature_names
from features.evidence import (
    EVIDENCE_KEYS,
    evidence_for,
    evidence_frame,
    feature_sources,
    known_child,
)
from features.rawstore import connect
from features.store import FeatureStore

from ._population_store import AS_OF, ledger_identities, population_store
from ._raw_factory import RawFactory

D = date(2025, 6, 30)  # the 90-day window starts on 2025-04-02


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawFactory]:
    """Two children of one school, with late entries and corrections around D."""
    factory = RawFactory.create(tmp_path_factory.mktemp("evidence") / "store.duckdb")
    factory.hierarchy()
    factory.child("c-1", "2024-01-01")
    factory.child("c-2", "2024-01-01", household_pid="h-2")
    factory.enrolment("c-1", "2024-09-01", school_code="S1")
    factory.enrolment("c-2", "2024-09-01", school_code="S1")
    # c-1's absence weeks. Counted on D: 2 + 3 + 2 = 7 unexcused days.
    factory.absence("c-1", "2025-04-07", unexcused_days=1, recorded_at="2025-04-10")
    factory.absence("c-1", "2025-04-07", unexcused_days=2, recorded_at="2025-04-20")  # fix
    factory.absence("c-1", "2025-05-05", unexcused_days=3, recorded_at="2025-05-09")
    factory.absence("c-1", "2025-05-05", unexcused_days=5, recorded_at="2025-07-10")  # after D
    factory.absence("c-1", "2025-05-19", unexcused_days=0, excused_days=2)  # leave only
    factory.absence("c-1", "2025-06-16", unexcused_days=2, recorded_at="2025-06-20")
    factory.absence("c-1", "2025-06-23", unexcused_days=3, recorded_at="2025-07-02")  # late
    factory.absence("c-1", "2025-03-03", unexcused_days=4)  # before the window
    # The school's last report known on D is another child's (recorded 2025-06-27).
    factory.absence("c-2", "2025-06-23", unexcused_days=1, recorded_at="2025-06-27")
    # Visits: two where c-1 was not seen (one entered after D), one where c-1 was.
    factory.visit("c-1", "2025-05-02", visit_id="V-1", child_seen=False)
    factory.visit("c-1", "2025-06-10", visit_id="V-2", child_seen=True)
    factory.visit("c-1", "2025-06-25", visit_id="V-3", child_seen=False, recorded_at="2025-07-03")
    # One record number listing two children (a household visit).
    factory.visit("c-1", "2025-06-12", visit_id="V-4", child_seen=False, recorded_at="2025-06-12")
    factory.visit("c-2", "2025-06-12", visit_id="V-4", child_seen=False, recorded_at="2025-06-14")
    # Guardianship: assessed insufficient, corrected to improper before D, to absent after D.
    factory.guardianship("c-1", "2025-03-01", capacity="insufficient", recorded_at="2025-03-05")
    factory.guardianship("c-1", "2025-03-01", capacity="improper", recorded_at="2025-04-01")
    factory.guardianship("c-1", "2025-03-01", capacity="absent", recorded_at="2025-07-01")
    yield factory
    factory.con.close()


def _store_value(con: duckdb.DuckDBPyConnection, feature: str, child: str = "c-1") -> object:
    spine = pd.DataFrame({"child_id": [child], "as_of": [pd.Timestamp(D)]})
    return FeatureStore(con).as_of_frame(spine)[feature].iloc[0]


def test_evidence_cites_exactly_the_absence_weeks_summing_to_the_unexcused_days(
    ledgers: RawFactory,
) -> None:
    records = evidence_for(ledgers.con, "c-1", "unexcused_absence_days_90d", D)
    assert [r["record_id"] for r in records] == ["2025-06-16", "2025-05-05", "2025-04-07"]
    # The corrected version known on D (2, not 1), the original where the fix came later.
    assert [r["value"] for r in records] == [2, 3, 2]
    assert (
        sum(r["value"] for r in records)
        == 7
        == _store_value(ledgers.con, "unexcused_absence_days_90d")
    )
    assert all(r["table"] == "attendance" and r["field"] == "unexcused_days" for r in records)


def test_evidence_never_cites_rows_recorded_after_the_as_of_date(ledgers: RawFactory) -> None:
    for feature in ("unexcused_absence_days_90d", "visits_child_not_seen_90d", "visits_90d"):
        for record in evidence_for(ledgers.con, "c-1", feature, D):
            assert record["recorded_at"] <= D.isoformat()
            assert record["event_date"] <= D.isoformat()
    cited = {r["record_id"] for r in evidence_for(ledgers.con, "c-1", "visits_90d", D)}
    assert "V-3" not in cited  # entered on 2025-07-03


def test_evidence_of_a_visit_count_names_the_visits_by_record_number(ledgers: RawFactory) -> None:
    records = evidence_for(ledgers.con, "c-1", "visits_child_not_seen_90d", D)
    assert [r["record_id"] for r in records] == ["V-4", "V-1"]  # V-3 was entered after D
    assert records[-1]["key"] == {"visit_id": "V-1"}
    assert len(records) == _store_value(ledgers.con, "visits_child_not_seen_90d")


def test_a_record_number_shared_by_two_children_follows_the_store_versioning(
    ledgers: RawFactory,
) -> None:
    # Whatever the version key says (a household visit lists each sibling under one number),
    # evidence cites a shared record number for a child exactly when the store counts it.
    for child in ("c-1", "c-2"):
        cited = {r["record_id"] for r in evidence_for(ledgers.con, child, "visits_90d", D)}
        assert len(cited) == _store_value(ledgers.con, "visits_90d", child)
        assert "V-4" in cited


def test_a_latest_value_cites_the_version_known_on_the_date(ledgers: RawFactory) -> None:
    records = evidence_for(ledgers.con, "c-1", "guardianship_capacity", D)
    assert len(records) == 1
    assert records[0]["value"] == "improper" == _store_value(ledgers.con, "guardianship_capacity")
    assert records[0]["recorded_at"] == "2025-04-01"
    assert records[0]["key"] == {"change_date": "2025-03-01"}


def test_days_since_cites_the_newest_matching_record(ledgers: RawFactory) -> None:
    records = evidence_for(ledgers.con, "c-1", "days_since_child_seen", D)
    assert [r["record_id"] for r in records] == ["V-2"]
    days = (D - date.fromisoformat(records[0]["event_date"])).days
    assert days == _store_value(ledgers.con, "days_since_child_seen")


def test_a_derived_rate_cites_the_records_of_its_inputs(ledgers: RawFactory) -> None:
    rate = evidence_for(ledgers.con, "c-1", "unexcused_absence_rate_90d", D)
    days = evidence_for(ledgers.con, "c-1", "unexcused_absence_days_90d", D)
    assert rate == days
    assert [s.field.name for s in feature_sources("child_not_seen_share_365d")] == [
        "visits_child_not_seen_365d",
        "visits_365d",
    ]


def test_school_level_evidence_names_the_school_and_week_not_another_child(
    ledgers: RawFactory,
) -> None:
    records = evidence_for(ledgers.con, "c-1", "days_since_school_absence_report", D)
    assert len(records) == 1
    assert records[0]["scope"] == "school"
    assert records[0]["key"] == {"school_code": "S1", "week_start": "2025-06-23"}
    assert "c-2" not in json.dumps(records)
    recorded = date.fromisoformat(records[0]["recorded_at"])
    assert (D - recorded).days == _store_value(ledgers.con, "days_since_school_absence_report")


def test_records_carry_their_source_and_never_the_child_id(ledgers: RawFactory) -> None:
    records = evidence_for(ledgers.con, "c-1", "visits_365d", D)
    assert records
    for record in records:
        assert tuple(record) == EVIDENCE_KEYS
        assert isinstance(record["row"], int)
        assert "child_id" not in record["key"]
        assert "c-1" not in json.dumps(record)


def test_a_feature_without_records_cites_nothing(ledgers: RawFactory) -> None:
    assert evidence_for(ledgers.con, "c-1", "harm_incidents_365d", D) == []
    assert evidence_for(ledgers.con, "c-404", "visits_365d", D) == []


def test_an_unknown_feature_is_refused(ledgers: RawFactory) -> None:
    with pytest.raises(KeyError, match="unknown feature"):
        evidence_for(ledgers.con, "c-1", "no_such_feature", D)


def test_known_child_needs_a_file_recorded_by_the_date(ledgers: RawFactory) -> None:
    assert known_child(ledgers.con, "c-1", D)
    assert not known_child(ledgers.con, "c-1", date(2023, 12, 31))
    assert not known_child(ledgers.con, "c-404", D)


# --- oracle on a generated population -----------------------------------------------------------


@pytest.fixture(scope="module")
def generated(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, duckdb.DuckDBPyConnection]]:
    population = population_store(tmp_path_factory)
    con = connect(population.store, read_only=True)
    yield population.sources, con
    con.close()


def _aggregated(aggs: tuple[str, ...]) -> list[str]:
    derived = {d.name for d in DERIVED}
    return [
        name
        for name in model_feature_names()
        if name not in derived and feature_sources(name)[0].field.agg in aggs
    ]


def test_cited_records_reproduce_every_count_and_sum_feature_of_every_child(
    generated: tuple[Path, duckdb.DuckDBPyConnection],
) -> None:
    _, con = generated
    as_of = AS_OF[-1]
    frame = FeatureStore(con).build(as_of)
    features = [
        f
        for f in _aggregated(("count", "sum"))
        if feature_sources(f)[0].view.entity.name == "child"
    ]
    cited = evidence_frame(con, frame["child_id"].tolist(), features, as_of)
    assert cited["recorded_at"].max() <= as_of.isoformat()
    for feature in features:
        agg = feature_sources(feature)[0].field.agg
        rows = cited[cited["feature"] == feature].groupby("child_id")
        got = rows.size() if agg == "count" else rows["value"].sum()
        got = got.reindex(frame["child_id"], fill_value=0).to_numpy()
        np.testing.assert_array_equal(got, frame[feature].to_numpy(), err_msg=feature)


def test_cited_records_reproduce_every_latest_and_days_since_feature(
    generated: tuple[Path, duckdb.DuckDBPyConnection],
) -> None:
    _, con = generated
    as_of = AS_OF[1]
    frame = FeatureStore(con).build(as_of).set_index("child_id")
    features = _aggregated(("latest", "previous", "days_since", "max"))
    cited = evidence_frame(con, frame.index.tolist(), features, as_of)
    for feature in features:
        field = feature_sources(feature)[0].field
        rows = cited[cited["feature"] == feature]
        assert not rows["child_id"].duplicated().any(), feature  # one record per child
        first = rows.set_index("child_id")
        if field.agg == "days_since":
            dated = first["value"] if field.column else first["event_date"]
            got = (pd.Timestamp(as_of) - pd.to_datetime(dated)).dt.days.astype(float)
        else:
            got = first["value"]
        got = got.reindex(frame.index)
        expected = frame[feature]
        both_missing = got.isna().to_numpy() & expected.isna().to_numpy()
        same = got.astype(str).to_numpy() == expected.astype(str).to_numpy()
        if field.agg == "days_since" or field.dtype == "float64":
            same = np.isclose(got.astype(float), expected.astype(float))
        assert (both_missing | same).all(), feature


def test_evidence_never_carries_identity_numbers_or_names(
    generated: tuple[Path, duckdb.DuckDBPyConnection],
) -> None:
    sources, con = generated
    as_of = AS_OF[-1]
    children = FeatureStore(con).registered_children(as_of)["child_id"].head(200).tolist()
    cited = evidence_frame(con, children, model_feature_names(), as_of)
    text = cited.to_json(orient="records", force_ascii=False)
    assert not re.search(r"(?<![\d.])\d{17}[\dXx](?!\d)", text)
    ids, names = ledger_identities(sources)
    assert ids and names
    assert not any(i in text for i in ids)
    assert not any(n in text for n in names if len(n) >= 2)
