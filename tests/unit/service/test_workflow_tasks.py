"""Tasks: due dates from the policy's response times, episodes, completion, overdue detection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.policy import Period, Tier, TierPolicy, load_policy
from service.db.workflow import Task, TaskCompletion
from service.workflow.codes import Activity, ReasonCode, VisitOutcome
from service.workflow.reviews import decide, log_mandatory_report, record_visit
from service.workflow.tasks import (
    ChildArea,
    OpenTaskIndex,
    TaskStatus,
    add_period,
    open_episode,
    open_tasks,
    overdue_by_child,
    overdue_index,
    planned_tasks,
    sync_tasks_for_run,
    task_history,
)

from ._workflow_helpers import (
    NOW,
    TOWNSHIP,
    VILLAGE,
    add_user,
    child,
    migrated_template,
    policy,
    session,
    sessions,
)

__all__ = ["migrated_template", "policy", "session", "sessions"]


def _due(policy: TierPolicy, tier: Tier) -> dict[str, datetime]:
    return {t.kind.value: t.due_at for t in planned_tasks(policy, tier, NOW)}


def test_planned_tasks_follow_the_default_policys_response_times(policy: TierPolicy) -> None:
    # tier-policy.md: T1 report at once and on site within 24 h, weekly contact; T2 case
    # plan within 7 days and a visit every 2 weeks; T3 monthly visit and phone check; T4
    # monthly visit; every tier's file is updated each quarter.
    assert _due(policy, Tier.T1) == {
        "mandatory_report": NOW,
        "first_visit": NOW + timedelta(hours=24),
        "contact": NOW + timedelta(weeks=1),
        "file_update": datetime(2026, 6, 2, 9, tzinfo=UTC),
    }
    assert _due(policy, Tier.T2) == {
        "case_plan": NOW + timedelta(days=7),
        "visit": NOW + timedelta(weeks=2),
        "file_update": datetime(2026, 6, 2, 9, tzinfo=UTC),
    }
    assert _due(policy, Tier.T3) == {
        "visit": datetime(2026, 4, 2, 9, tzinfo=UTC),
        "phone_check": datetime(2026, 4, 2, 9, tzinfo=UTC),
        "file_update": datetime(2026, 6, 2, 9, tzinfo=UTC),
    }
    assert _due(policy, Tier.T4) == {
        "visit": datetime(2026, 4, 2, 9, tzinfo=UTC),
        "file_update": datetime(2026, 6, 2, 9, tzinfo=UTC),
    }


def test_planned_tasks_read_every_number_from_the_policy_file(policy: TierPolicy) -> None:
    # A county that gives T2 a 3-day case plan and weekly visits gets those due dates.
    t2 = policy.tier(Tier.T2)
    response = t2.response.model_copy(
        update={
            "case_plan_within": Period(every=3, unit="day"),
            "visit_every": Period(every=1, unit="week"),
        }
    )
    tiers = [
        t if t.id is not Tier.T2 else t2.model_copy(update={"response": response})
        for t in policy.tiers
    ]
    county = policy.model_copy(update={"tiers": tiers})
    due = _due(county, Tier.T2)
    assert due["case_plan"] == NOW + timedelta(days=3)
    assert due["visit"] == NOW + timedelta(weeks=1)


@pytest.mark.parametrize(
    ("start", "period", "expected"),
    [
        (
            datetime(2025, 1, 31, tzinfo=UTC),
            Period(every=1, unit="month"),
            datetime(2025, 2, 28, tzinfo=UTC),
        ),
        (
            datetime(2024, 1, 31, tzinfo=UTC),
            Period(every=1, unit="month"),
            datetime(2024, 2, 29, tzinfo=UTC),
        ),
        (
            datetime(2025, 11, 30, tzinfo=UTC),
            Period(every=1, unit="quarter"),
            datetime(2026, 2, 28, tzinfo=UTC),
        ),
        (
            datetime(2025, 12, 15, tzinfo=UTC),
            Period(every=1, unit="month"),
            datetime(2026, 1, 15, tzinfo=UTC),
        ),
        (
            datetime(2024, 2, 29, tzinfo=UTC),
            Period(every=1, unit="year"),
            datetime(2025, 2, 28, tzinfo=UTC),
        ),
        (
            datetime(2025, 3, 1, 23, tzinfo=UTC),
            Period(every=24, unit="hour"),
            datetime(2025, 3, 2, 23, tzinfo=UTC),
        ),
    ],
)
def test_add_period_uses_calendar_months(
    start: datetime, period: Period, expected: datetime
) -> None:
    assert add_period(start, period) == expected


def _area(child_id: str = "c-0001", village: str = VILLAGE) -> ChildArea:
    return ChildArea(child_id, village, village[:9])


def test_overdue_tasks_are_those_open_past_their_due_time(
    session: Session, policy: TierPolicy
) -> None:
    open_episode(session, policy, _area(), Tier.T2, start=NOW, opened_by="run:r1")
    assert open_tasks(session, now=NOW + timedelta(days=6), overdue_only=True) == []
    assert overdue_by_child(session, now=NOW + timedelta(days=6)) == {}

    later = NOW + timedelta(days=10)
    overdue = open_tasks(session, now=later, overdue_only=True)
    assert [v.task.kind for v in overdue] == ["case_plan"]
    assert overdue[0].days_overdue == pytest.approx(3.0)
    summary = overdue_by_child(session, now=NOW + timedelta(days=15))
    assert summary["c-0001"].overdue_tasks == 2  # the case plan and the fortnightly visit
    assert summary["c-0001"].max_days_overdue == pytest.approx(8.0)
    assert summary["c-0001"].oldest_due_at == NOW + timedelta(days=7)
    assert set(summary["c-0001"].kinds) == {"case_plan", "visit"}


def test_overdue_is_scoped_to_the_area(session: Session, policy: TierPolicy) -> None:
    open_episode(session, policy, _area("c-a"), Tier.T1, start=NOW, opened_by="run:r1")
    open_episode(
        session, policy, _area("c-b", "990102003014"), Tier.T1, start=NOW, opened_by="run:r1"
    )
    later = NOW + timedelta(days=2)
    assert set(overdue_by_child(session, now=later, area_code=TOWNSHIP)) == {"c-a"}
    assert set(overdue_by_child(session, now=later, area_code="9901")) == {"c-a", "c-b"}
    assert set(overdue_by_child(session, now=later, child_ids=["c-b"])) == {"c-b"}
    assert {v.task.child_id for v in open_tasks(session, area_code="990102", now=later)} == {"c-b"}


def test_a_new_tier_supersedes_open_tasks_but_not_an_unlogged_mandatory_report(
    session: Session, policy: TierPolicy
) -> None:
    open_episode(session, policy, _area(), Tier.T1, start=NOW, opened_by="run:r1")
    open_episode(
        session, policy, _area(), Tier.T2, start=NOW + timedelta(days=1), opened_by="run:r2"
    )
    kinds = sorted(v.task.kind for v in open_tasks(session, child_id="c-0001", now=NOW))
    assert kinds == ["case_plan", "file_update", "mandatory_report", "visit"]
    history = task_history(session, "c-0001", now=NOW)
    statuses = {(v.task.tier, v.task.kind): v.status for v in history}
    assert statuses[("T1", "first_visit")] is TaskStatus.SUPERSEDED
    assert statuses[("T1", "mandatory_report")] is TaskStatus.OPEN
    # Back to T1: the report still open is not opened a second time.
    open_episode(
        session, policy, _area(), Tier.T1, start=NOW + timedelta(days=2), opened_by="run:r3"
    )
    reports = [
        v
        for v in open_tasks(session, child_id="c-0001", now=NOW)
        if v.task.kind == "mandatory_report"
    ]
    assert len(reports) == 1


def test_a_visit_completes_its_tasks_and_opens_the_next_one(
    session: Session, policy: TierPolicy
) -> None:
    worker = add_user(session, "cw1", "caseworker")
    open_episode(session, policy, _area(), Tier.T2, start=NOW, opened_by="run:r1")
    visited = NOW + timedelta(days=5)
    review = record_visit(
        session,
        policy,
        child(tier=Tier.T2),
        worker,
        activity=Activity.HOME_VISIT,
        outcome=VisitOutcome.SAFE,
        now=visited,
    )
    history = task_history(session, "c-0001", now=visited)
    done = [v for v in history if v.status is TaskStatus.DONE]
    assert [(v.task.kind, v.review_id) for v in done] == [("visit", review.id)]
    following = [v for v in history if v.status is TaskStatus.OPEN and v.task.kind == "visit"]
    assert len(following) == 1
    assert following[0].task.due_at == visited + timedelta(weeks=2)  # the T2 cadence
    assert following[0].task.opened_by == f"review:{review.id}"
    # The case plan is not a visit: still open.
    assert "case_plan" in {v.task.kind for v in open_tasks(session, child_id="c-0001", now=visited)}


def test_logging_the_mandatory_report_completes_it(session: Session, policy: TierPolicy) -> None:
    worker = add_user(session, "cw1", "caseworker")
    context = child(tier=Tier.T1, rules=("hard:guardianship_absent",))
    open_episode(session, policy, _area(), Tier.T1, start=NOW, opened_by="run:r1")
    log_mandatory_report(
        session,
        policy,
        context,
        worker,
        agency="城关派出所",
        reference="JJ-2026-0042",
        reported_at=NOW + timedelta(hours=1),
        now=NOW + timedelta(hours=2),
    )
    kinds = {v.task.kind for v in open_tasks(session, child_id="c-0001", now=NOW)}
    assert "mandatory_report" not in kinds
    assert "first_visit" in kinds


def test_a_decision_that_changes_the_tier_opens_a_new_episode(
    session: Session, policy: TierPolicy
) -> None:
    boss = add_user(session, "sup", "supervisor")
    open_episode(session, policy, _area(), Tier.T3, start=NOW, opened_by="run:r1")
    decide(
        session,
        policy,
        child(tier=Tier.T3, scored_at=NOW - timedelta(days=1)),
        boss,
        tier=Tier.T2,
        reason_code=ReasonCode.VISIT_FOUND_HIGHER_RISK,
        reason_text="走访发现祖母住院,无人照料",
        now=NOW + timedelta(hours=1),
    )
    tasks = open_tasks(session, child_id="c-0001", now=NOW)
    assert {v.task.tier for v in tasks} == {"T2"}
    assert {v.task.kind for v in tasks} == {"case_plan", "visit", "file_update"}


def _run(tiers: dict[str, str], run_id: str, scored_at: datetime) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "child_id": list(tiers),
            "village_code": [VILLAGE] * len(tiers),
            "township_code": [TOWNSHIP] * len(tiers),
            "tier": list(tiers.values()),
            "run_id": run_id,
            "scored_at": pd.Timestamp(scored_at),
        }
    )


def test_sync_for_run_opens_episodes_only_for_changed_tiers(
    session: Session, policy: TierPolicy
) -> None:
    first = sync_tasks_for_run(session, policy, _run({"a": "T1", "b": "T3", "c": "T4"}, "r1", NOW))
    assert (first.children, first.episodes_opened) == (3, 3)
    assert first.tasks_opened == 4 + 3 + 2
    due = session.scalar(
        select(Task.due_at).where(Task.child_id == "a", Task.kind == "first_visit")
    )
    assert due == NOW + timedelta(hours=24)  # from the run's scored_at

    again = sync_tasks_for_run(session, policy, _run({"a": "T1", "b": "T3", "c": "T4"}, "r1", NOW))
    assert (again.episodes_opened, again.tasks_opened) == (0, 0)

    later = NOW + timedelta(days=7)
    second = sync_tasks_for_run(
        session, policy, _run({"a": "T1", "b": "T2", "c": "T4"}, "r2", later)
    )
    assert (second.episodes_opened, second.tasks_opened) == (1, 3)
    assert {v.task.tier for v in open_tasks(session, child_id="b", now=later)} == {"T2"}
    assert session.scalar(select(func.count()).select_from(TaskCompletion)) == 0


_VILLAGES = ("990101001001", "990101001002", "990101002001", "990102003014")
_step = st.tuples(
    st.sampled_from(["episode", "visit", "phone", "report", "plan"]),
    st.integers(0, 5),  # child
    st.sampled_from(list(Tier)),
    st.sampled_from(_VILLAGES),
    st.integers(0, 40),  # days after NOW
)
_counter = count()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(_step, min_size=1, max_size=25), st.integers(0, 60))
def test_the_in_memory_index_answers_as_the_database_does(
    sessions: sessionmaker[Session], steps: list[tuple[str, int, Tier, str, int]], probe: int
) -> None:
    policy = load_policy()
    run = next(_counter)
    index = overdue_index(sessions.kw["bind"])
    with sessions() as session:
        worker = add_user(session, f"cw{run}", "caseworker", area="9901")
        for op, child_no, tier, village, days in steps:
            child_id = f"r{run}-c{child_no}"
            at = NOW + timedelta(days=days)
            area = ChildArea(child_id, village, village[:9])
            context = child(child_id, tier, village=village)
            if op == "episode":
                open_episode(session, policy, area, tier, start=at, opened_by="run:x")
            elif op == "report":
                log_mandatory_report(
                    session,
                    policy,
                    context,
                    worker,
                    agency="派出所",
                    reference="1",
                    reported_at=at,
                    now=at,
                )
            else:
                activity = {
                    "visit": Activity.HOME_VISIT,
                    "phone": Activity.PHONE_CHECK,
                    "plan": Activity.CASE_PLAN,
                }[op]
                record_visit(
                    session,
                    policy,
                    context,
                    worker,
                    activity=activity,
                    outcome=VisitOutcome.DONE,
                    now=at,
                )
            session.commit()
            if days % 3 == 0:  # catch up part-way, as a running service would
                index.refresh()
        # Later, a little later, much later, then earlier: cached answers must follow time.
        for hours in (0, 5, 12, 30, 24 * 7, -24):
            when = NOW + timedelta(days=probe, hours=hours)
            for area_code in (None, "9901", "990101", "990101001", "990101001002", "990102"):
                expected = overdue_by_child(session, now=when, area_code=area_code)
                assert index.overdue(now=when, area_code=area_code) == expected
        fresh = OpenTaskIndex(sessions.kw["bind"])
        assert fresh.overdue(now=when) == overdue_by_child(session, now=when)
        ids = [f"r{run}-c{i}" for i in range(3)]
        assert index.overdue(now=when, child_ids=ids) == overdue_by_child(
            session, now=when, child_ids=ids
        )


def test_the_index_sees_committed_rows_only(
    sessions: sessionmaker[Session], policy: TierPolicy
) -> None:
    index = OpenTaskIndex(sessions.kw["bind"])
    with sessions() as session:
        open_episode(session, policy, _area(), Tier.T1, start=NOW, opened_by="run:r1")
        session.flush()
        assert index.overdue(now=NOW + timedelta(days=2)) == {}
        session.commit()
    assert index.overdue(now=NOW + timedelta(days=2))["c-0001"].overdue_tasks == 2
