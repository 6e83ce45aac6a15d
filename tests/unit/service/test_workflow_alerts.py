"""Alerts after a scoring run: tier rises and new hard-rule hits, with reasons, deduplicated."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.policy import Tier, TierPolicy
from service.db.workflow import Alert, Task
from service.workflow.alerts import (
    alert_feed,
    dedup_key,
    detect_alerts,
    process_run,
    raise_alerts_for_run,
)
from service.workflow.runs import load_runs
from shouhu.errors import NotFoundError, StoreError

from ._workflow_helpers import TOWNSHIP, VILLAGE, migrated_template, policy, session, sessions

__all__ = ["migrated_template", "policy", "session", "sessions"]

ABUSE = "hard:suspected_abuse_or_unlawful_harm"
ALONE = "hard:living_alone_unsupervised"
DROPOUT = "floor:T2:suspected_dropout"
REASONS = [
    {
        "feature": "days_since_incident",
        "domain": "safety",
        "direction": "raises",
        "contribution": 0.8,
        "value": "22",
        "zh": "距最近一次事件已22天",
        "en": "22 days since the last incident",
    },
    {
        "feature": "age_years",
        "domain": "safety",
        "direction": "lowers",
        "contribution": -0.2,
        "value": "14",
        "zh": "年龄14岁",
        "en": "age 14",
    },
]


def _run(
    rows: dict[str, tuple[str, list[str]]],
    *,
    run_id: str,
    as_of: date,
    village: str = VILLAGE,
) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "child_id": child,
                "village_code": village,
                "township_code": village[:9],
                "tier": tier,
                "rules_fired": rules,
                "reasons": REASONS,
                "hard_rule_t1": any(r.startswith("hard:") for r in rules),
                "run_id": run_id,
                "as_of": as_of,
                "scored_at": pd.Timestamp(
                    datetime(as_of.year, as_of.month, as_of.day, 20, tzinfo=UTC)
                ),
                "policy_version": "cq-default-2026.1",
                "model_version": 3,
            }
            for child, (tier, rules) in rows.items()
        ]
    )


JAN, FEB, MAR = date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)


def test_a_rise_and_a_new_hard_rule_raise_one_alert_each_with_reasons(policy: TierPolicy) -> None:
    before = _run(
        {
            "rise": ("T3", []),
            "same": ("T2", [DROPOUT]),
            "fall": ("T2", []),
            "hard": ("T1", [ABUSE]),
        },
        run_id="r1",
        as_of=JAN,
    )
    now = _run(
        {
            "rise": ("T2", [DROPOUT]),
            "same": ("T2", [DROPOUT]),
            "fall": ("T3", []),
            "hard": ("T1", [ABUSE, ALONE]),
            "new": ("T4", []),
        },
        run_id="r2",
        as_of=FEB,
    )
    found = {a.child_id: a for a in detect_alerts(policy, now, before)}
    assert set(found) == {"rise", "hard"}
    rise = found["rise"]
    assert (rise.tier, rise.previous_tier, rise.tier_rise, rise.hard_rules) == (
        Tier.T2,
        Tier.T3,
        True,
        (),
    )
    kinds = [r["kind"] for r in rise.reasons]
    assert kinds == ["tier_rise", "floor_rule", "model"]
    assert rise.reasons[0]["en"].startswith("the tier rose from Level 3")
    assert rise.reasons[1]["rule"] == "suspected_dropout"
    assert rise.reasons[2]["feature"] == "days_since_incident"  # only factors that raise risk
    hard = found["hard"]
    # Abuse fired already last run; living alone is new.
    assert (hard.tier_rise, hard.hard_rules) == (False, ("living_alone_unsupervised",))
    assert hard.reasons[0]["zh"].startswith("未满16周岁")
    assert hard.dedup_key == "hard|2026-02-28|T1|living_alone_unsupervised"


def test_a_rise_set_by_an_override_says_whose_decision_it_was(policy: TierPolicy) -> None:
    before = _run({"raised": ("T4", []), "engine": ("T4", [])}, run_id="r1", as_of=JAN)
    now = _run({"raised": ("T2", []), "engine": ("T3", [])}, run_id="r2", as_of=FEB)
    now["override_id"] = pd.array([17, None], dtype="Int64")
    found = {a.child_id: a for a in detect_alerts(policy, now, before)}
    assert set(found) == {"raised", "engine"}
    raised = [r for r in found["raised"].reasons if r["kind"] == "override"]
    assert [(r["override_id"], r["en"]) for r in raised] == [
        (17, "the tier was set by a supervisor's override (override #17)")
    ]
    assert "#17" in raised[0]["zh"]
    assert all(r["kind"] != "override" for r in found["engine"].reasons)


def test_without_a_previous_run_only_hard_rules_alert(policy: TierPolicy) -> None:
    first = _run(
        {"a": ("T1", [ABUSE]), "b": ("T2", [DROPOUT]), "c": ("T4", [])}, run_id="r1", as_of=JAN
    )
    found = detect_alerts(policy, first, None)
    assert [(a.child_id, a.hard_rules, a.previous_tier) for a in found] == [
        ("a", ("suspected_abuse_or_unlawful_harm",), None)
    ]


def test_a_previous_run_without_rule_labels_counts_hard_rule_t1_as_continuing(
    policy: TierPolicy,
) -> None:
    # ScoreStore.previous gives tier and hard_rule_t1 only.
    before = pd.DataFrame(
        {"child_id": ["a", "b"], "tier": ["T1", "T3"], "hard_rule_t1": [True, False]}
    )
    now = _run({"a": ("T1", [ABUSE]), "b": ("T1", [ABUSE])}, run_id="r2", as_of=FEB)
    found = {a.child_id: a for a in detect_alerts(policy, now, before)}
    assert set(found) == {"b"}
    assert found["b"].tier_rise and found["b"].hard_rules == ("suspected_abuse_or_unlawful_harm",)


def test_alerts_are_deduplicated_across_reprocessing_and_rescoring(
    session: Session, policy: TierPolicy
) -> None:
    before = _run({"a": ("T3", []), "b": ("T4", [])}, run_id="r1", as_of=JAN)
    now = _run({"a": ("T1", [ABUSE]), "b": ("T2", [])}, run_id="r2", as_of=FEB)
    first = raise_alerts_for_run(session, policy, now, before)
    assert (first.candidates, first.duplicates, len(first.raised)) == (2, 0, 2)
    again = raise_alerts_for_run(session, policy, now, before)
    assert (again.candidates, again.duplicates, again.raised) == (2, 2, [])
    # The same date scored again (another run id) with the same result: still one alert.
    rerun = now.assign(run_id="r2b")
    assert raise_alerts_for_run(session, policy, rerun, before).raised == []
    # The hard rule keeps firing next month: no new alert; a new rise does raise one.
    later = _run({"a": ("T1", [ABUSE]), "b": ("T1", [ALONE])}, run_id="r3", as_of=MAR)
    third = raise_alerts_for_run(session, policy, later, now)
    assert [(a.child_id, a.hard_rules) for a in third.raised] == [
        ("b", ["living_alone_unsupervised"])
    ]
    assert session.scalar(select(func.count()).select_from(Alert)) == 3


def test_dedup_key_stays_within_the_column_for_many_rules() -> None:
    rules = [f"rule_{i:03d}_with_a_rather_long_descriptive_name" for i in range(20)]
    key = dedup_key("c-0123456789abcdef", date(2026, 1, 1), Tier.T1, rules)
    assert len(key) <= 255 and key.startswith("c-0123456789abcdef|2026-01-01|T1|sha256:")
    assert key == dedup_key("c-0123456789abcdef", date(2026, 1, 1), Tier.T1, rules[::-1])


def test_the_feed_is_scoped_to_the_area_and_pages(session: Session, policy: TierPolicy) -> None:
    near = _run({f"n{i}": ("T1", [ABUSE]) for i in range(5)}, run_id="r1", as_of=JAN)
    far = _run({"f": ("T1", [ABUSE])}, run_id="r1", as_of=JAN, village="990102003014")
    raise_alerts_for_run(session, policy, pd.concat([near, far], ignore_index=True), None)
    mine = alert_feed(session, area_code=TOWNSHIP, limit=3)
    assert [v.alert.child_id for v in mine] == ["n4", "n3", "n2"]
    older = alert_feed(session, area_code=TOWNSHIP, before_id=mine[-1].alert.id)
    assert [v.alert.child_id for v in older] == ["n1", "n0"]
    assert [v.alert.child_id for v in alert_feed(session, area_code="990102")] == ["f"]
    assert not any(v.delivered for v in mine) and all(v.attempts == 0 for v in mine)


def test_process_run_opens_tasks_then_raises_alerts(session: Session, policy: TierPolicy) -> None:
    now = _run({"a": ("T1", [ABUSE]), "b": ("T4", [])}, run_id="r1", as_of=JAN)
    done = process_run(session, policy, now, None, now=datetime(2026, 2, 1, tzinfo=UTC))
    assert done.run_id == "r1"
    assert (done.tasks.episodes_opened, len(done.alerts.raised)) == (2, 1)
    due = session.scalar(
        select(Task.due_at).where(Task.child_id == "a", Task.kind == "first_visit")
    )
    assert due == datetime(2026, 1, 31, 20, tzinfo=UTC) + timedelta(hours=24)


def _store(path: Path, runs: list[pd.DataFrame]) -> None:
    con = duckdb.connect(str(path))
    try:
        for i, run in enumerate(runs):
            frame = run.copy()
            frame["awaiting_confirmation"] = False
            meta = pd.DataFrame(
                {
                    "run_id": [frame["run_id"].iloc[0]],
                    "as_of": [frame["as_of"].iloc[0]],
                    "scored_at": [frame["scored_at"].iloc[0] + pd.Timedelta(minutes=i)],
                }
            )
            con.register("frame_in", frame)
            con.register("meta_in", meta)
            if i == 0:
                con.execute("CREATE TABLE scores AS SELECT * FROM frame_in")
                con.execute("CREATE TABLE scoring_runs AS SELECT * FROM meta_in")
            else:
                con.execute("INSERT INTO scores BY NAME SELECT * FROM frame_in")
                con.execute("INSERT INTO scoring_runs BY NAME SELECT * FROM meta_in")
    finally:
        con.close()


def test_load_runs_reads_a_run_and_the_one_before_it(tmp_path: Path, policy: TierPolicy) -> None:
    path = tmp_path / "scores.duckdb"
    with pytest.raises(StoreError):
        load_runs(path)
    jan = _run({"a": ("T3", []), "b": ("T2", [DROPOUT])}, run_id="r1", as_of=JAN)
    feb = _run({"a": ("T1", [ABUSE]), "b": ("T2", [DROPOUT])}, run_id="r2", as_of=FEB)
    feb_again = feb.assign(run_id="r2b")
    _store(path, [jan, feb, feb_again])
    current, previous = load_runs(path)
    assert current["run_id"].unique().tolist() == ["r2b"]
    assert previous is not None and previous["run_id"].unique().tolist() == ["r1"]
    row: dict[str, Any] = current.set_index("child_id").loc["a"].to_dict()
    assert row["rules_fired"] == [ABUSE]
    assert row["reasons"][0]["feature"] == "days_since_incident"
    first, none = load_runs(path, "r1")
    assert none is None and len(first) == 2
    with pytest.raises(NotFoundError):
        load_runs(path, "nope")
    assert [a.child_id for a in detect_alerts(policy, current, previous)] == ["a"]
