"""Random histories: the DuckDB store equals the pandas reference, and ignores the future.

Histories have late entries, corrections (same natural key, recorded later, with changed
values, dates and even children), same-day ties settled only by load order, and rows recorded
after the as-of dates. Every feature of every spine row must agree between the two engines,
under either of the store's query plans (join the spine first, or aggregate one date first),
and must not change when the store also holds the rows recorded after the as-of date.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.reference import ReferenceEngine
from features.schema import TABLES_BY_NAME
from features.store import FeatureStore
from tests.unit.features._raw_factory import RawFactory

BASE = date(2023, 9, 1)
SPAN = 500
CHILDREN = ("c-a", "c-b", "c-c", "c-d")
SCHOOLS = ("S1", "S2")
MONDAYS = tuple(BASE + timedelta(days=7 * k) for k in range(0, SPAN // 7, 9))


def _codes(table: str, column: str) -> st.SearchStrategy[str]:
    return st.sampled_from(sorted(TABLES_BY_NAME[table].column(column).code_set()))


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


days = st.integers(0, SPAN)
lags = st.sampled_from([0, 0, 1, 3, 10, 45, 120])
pids = st.sampled_from(CHILDREN)


@st.composite
def rows(draw: st.DrawFn) -> list[tuple[str, dict[str, Any]]]:
    """A shuffled history across every table (insertion order = _seq order)."""
    out: list[tuple[str, dict[str, Any]]] = []

    def dated(event_col: str, day: int | date) -> dict[str, Any]:
        event = day if isinstance(day, date) else BASE + timedelta(days=day)
        return {event_col: event, "recorded_at": event + timedelta(days=draw(lags))}

    for pid in CHILDREN:
        for _ in range(draw(st.integers(1, 3))):
            out.append(
                (
                    "children",
                    {
                        "child_id": pid,
                        **dated("registered_date", draw(st.integers(-300, SPAN))),
                        "status": draw(st.sampled_from(["active", "active", "exited"])),
                        "birth_date": date(
                            draw(st.integers(2008, 2018)), draw(st.integers(1, 12)), 28
                        ),
                        "sex": draw(_codes("children", "sex")),
                        "hukou_status": draw(_codes("children", "hukou_status")),
                        "school_code": draw(st.sampled_from(SCHOOLS)),
                        "disability": draw(st.booleans()),
                    },
                )
            )
    for _ in range(draw(st.integers(0, 8))):
        out.append(
            (
                "guardianship",
                {
                    "child_id": draw(pids),
                    **dated("change_date", draw(st.sampled_from([10, 100, 200, 300, 400]))),
                    "capacity": draw(_codes("guardianship", "capacity")),
                    "caregiver_age": draw(_maybe(st.integers(30, 80))),
                    "parent_last_visit": draw(
                        _maybe(st.sampled_from([BASE, BASE + timedelta(200)]))
                    ),
                    "agreement_signed": draw(st.booleans()),
                },
            )
        )
    for _ in range(draw(st.integers(0, 14))):
        out.append(
            (
                "visits",
                {
                    "visit_id": draw(st.sampled_from([f"v{i}" for i in range(8)])),
                    "child_id": draw(pids),
                    **dated("visit_date", draw(days)),
                    "child_seen": draw(_maybe(st.booleans())),
                    "living_arrangement": draw(_codes("visits", "living_arrangement")),
                    "home_hazards": draw(
                        st.sampled_from(["none", "water", "fire;water", "building", None])
                    ),
                    "emotional_state": draw(_codes("visits", "emotional_state")),
                },
            )
        )
    for _ in range(draw(st.integers(0, 10))):
        out.append(
            (
                "attendance",
                {
                    "child_id": draw(pids),
                    "school_code": draw(st.sampled_from(SCHOOLS)),
                    **dated("week_start", draw(st.sampled_from(MONDAYS))),
                    "unexcused_days": draw(st.integers(0, 5)),
                    "excused_days": draw(st.integers(0, 2)),
                },
            )
        )
    for _ in range(draw(st.integers(0, 4))):
        out.append(
            (
                "enrolments",
                {
                    "child_id": draw(pids),
                    **dated("change_date", draw(st.sampled_from([5, 250]))),
                    "school_code": draw(st.sampled_from(SCHOOLS)),
                    "enrol_status": draw(_codes("enrolments", "enrol_status")),
                },
            )
        )
    for _ in range(draw(st.integers(0, 5))):
        out.append(
            (
                "results",
                {
                    "child_id": draw(pids),
                    **dated("term_end", draw(st.sampled_from([140, 310, 490]))),
                    "average_score": float(draw(st.integers(20, 100))),
                },
            )
        )
    for _ in range(draw(st.integers(0, 4))):
        out.append(
            (
                "school_events",
                {
                    "event_id": draw(st.sampled_from(["e1", "e2", "e3"])),
                    "child_id": draw(pids),
                    **dated("event_date", draw(days)),
                    "kind": draw(_codes("school_events", "kind")),
                    "absent_days": draw(_maybe(st.integers(5, 40))),
                },
            )
        )
    for _ in range(draw(st.integers(0, 4))):
        out.append(
            (
                "screenings",
                {
                    "child_id": draw(pids),
                    **dated("screen_date", draw(st.sampled_from([30, 220]))),
                    "positive": draw(st.booleans()),
                    "suicidal_ideation": draw(st.booleans()),
                    "depression_score": draw(st.integers(0, 60)),
                },
            )
        )
    for _ in range(draw(st.integers(0, 5))):
        out.append(
            (
                "incidents",
                {
                    "incident_id": draw(st.sampled_from(["i1", "i2", "i3", "i4"])),
                    "child_id": draw(pids),
                    **dated("event_date", draw(days)),
                    "incident_type": draw(_codes("incidents", "incident_type")),
                },
            )
        )
    return draw(st.permutations(out))


as_of_dates = st.lists(
    st.integers(0, SPAN + 60).map(lambda d: BASE + timedelta(days=d)),
    min_size=1,
    max_size=3,
    unique=True,
)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RawFactory, RawFactory]]:
    folder: Path = tmp_path_factory.mktemp("oracle")
    full, known = RawFactory.create(folder / "full.duckdb"), RawFactory.create(folder / "k.duckdb")
    for factory in (full, known):
        factory.hierarchy()
    yield full, known
    full.con.close()
    known.con.close()


def _load(
    factory: RawFactory, history: list[tuple[str, dict[str, Any]]], up_to: date | None = None
) -> None:
    factory.clear()
    factory.hierarchy()
    for seq, (table, values) in enumerate(history, start=1000):
        if up_to is None or values["recorded_at"] <= up_to:
            factory.add(table, seq=seq, **values)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=rows(), dates=as_of_dates)
def test_duckdb_store_equals_pandas_reference_on_random_histories(
    stores: tuple[RawFactory, RawFactory],
    history: list[tuple[str, dict[str, Any]]],
    dates: list[date],
) -> None:
    full, _ = stores
    _load(full, history)
    spine = pd.DataFrame(
        [(pid, d) for d in dates for pid in CHILDREN], columns=["child_id", "as_of"]
    )
    store = FeatureStore(full.con)
    reference = ReferenceEngine.from_connection(full.con)
    pd.testing.assert_frame_equal(store.as_of_frame(spine), reference.as_of_frame(spine))
    # build() adds the registry filter on top of the same retrieval: one date is enough.
    pd.testing.assert_frame_equal(store.build(dates[0]), reference.build(dates[0]))


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=rows(), dates=as_of_dates)
def test_join_and_aggregate_plans_equal_pandas_reference_on_one_date(
    stores: tuple[RawFactory, RawFactory],
    history: list[tuple[str, dict[str, Any]]],
    dates: list[date],
) -> None:
    full, _ = stores
    _load(full, history)
    day = dates[0]
    spine = pd.DataFrame({"child_id": list(CHILDREN), "as_of": day})
    reference = ReferenceEngine.from_connection(full.con)
    expected, expected_build = reference.as_of_frame(spine), reference.build(day)
    for plan in ("join", "aggregate"):
        store = FeatureStore(full.con, plan=plan)
        pd.testing.assert_frame_equal(store.as_of_frame(spine), expected)
        pd.testing.assert_frame_equal(store.build(day), expected_build)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=rows(), dates=as_of_dates)
def test_features_as_of_d_identical_whether_store_holds_later_rows_or_not(
    stores: tuple[RawFactory, RawFactory],
    history: list[tuple[str, dict[str, Any]]],
    dates: list[date],
) -> None:
    full, known = stores
    _load(full, history)
    for day in dates:
        _load(known, history, up_to=day)
        spine = pd.DataFrame({"child_id": list(CHILDREN), "as_of": day})
        pd.testing.assert_frame_equal(
            FeatureStore(full.con).as_of_frame(spine), FeatureStore(known.con).as_of_frame(spine)
        )
