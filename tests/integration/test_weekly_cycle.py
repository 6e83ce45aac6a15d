"""Five weeks of ``shouhu weekly`` on a served home: what people decide reaches the next run.

A copy of the served 3,000-child home (``tests/_service_home``), scored as of 2025-12-31, runs
the week on five Wednesdays. Between the runs a supervisor overrides two routine-care children
up to T2 (and is refused below a floor), then ends the overrides; their tier, raised by a
person, then falls only as the policy allows: two scorings below, then a caseworker's
confirmation, which is given for one child only. The stored runs say which override and which
confirmation each tier took. The error paths keep their exit codes: a stale date stops the week
with nothing stored (9), a misconfigured webhook fails the step after the run with its code (3)
after printing what was done.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from sqlalchemy import select

from models.policy import Tier, load_policy
from service.accounts import add_user
from service.db.migrate import migrated_session
from service.db.workflow import Override
from service.workflow.codes import ReasonCode
from service.workflow.context import Reviewer, context_from_score_row
from service.workflow.reviews import confirm_fall, decide
from shouhu.cli import main
from shouhu.errors import ReviewRefusedError
from shouhu.settings import ScoringSettings, Settings, get_settings
from shouhu.weekly import run_weekly
from tests._service_home import served_home

pytestmark = pytest.mark.slow

#: Reasons for T1 only: the runs here check tiers, not explanations.
EXPLAIN = ("T1",)
WEEKS = [date(2026, 1, 7), date(2026, 1, 14), date(2026, 1, 21), date(2026, 1, 28)]
LAST = date(2026, 2, 4)
REASON = "学校反映近两周常缺课,待走访核实"


@dataclass(frozen=True)
class Home:
    """The copied home, its settings, the two reviewers and the caseworker's township."""

    path: Path
    settings: Settings
    supervisor: Reviewer
    caseworker: Reviewer
    township: str


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    served = served_home(tmp_path_factory)
    path = tmp_path_factory.mktemp("weekly") / "home"
    shutil.copytree(served.home, path, ignore=shutil.ignore_patterns("service.db*"))
    settings = Settings(home=path, scoring=ScoringSettings(explain_tiers=list(EXPLAIN)))
    with migrated_session(settings.service_database_url) as session:
        users = [
            add_user(session, username=name, password="p" * 16, role=role, area_code=area)
            for name, role, area in (
                ("wk_sup", "supervisor", served.county),
                ("wk_cw", "caseworker", served.township_a),
            )
        ]
        session.flush()
        supervisor, caseworker = (Reviewer(u.id, u.role) for u in users)
    return Home(path, settings, supervisor, caseworker, served.township_a)


def _run(home: Home, run_id: str) -> pd.DataFrame:
    con = duckdb.connect(str(home.settings.scores_db_path), read_only=True)
    try:
        frame: pd.DataFrame = con.execute(
            "SELECT * FROM scores WHERE run_id = ? ORDER BY child_id", [run_id]
        ).df()
    finally:
        con.close()
    frame["rules_fired"] = frame["rules_fired"].map(list)
    return frame.set_index("child_id", drop=False)


def _context(run: pd.DataFrame, child: str) -> Any:
    return context_from_score_row(run.loc[child].to_dict())


def _runs(home: Home) -> int:
    con = duckdb.connect(str(home.settings.scores_db_path), read_only=True)
    try:
        found = con.execute("SELECT COUNT(*) FROM scoring_runs").fetchone()
    finally:
        con.close()
    assert found is not None
    return int(found[0])


def _steady(home: Home, dates: list[date]) -> set[str]:
    """Children of the township in routine care with no rule firing on every one of ``dates``.

    A real population changes from week to week (a positive screen, a dropout): the children
    whose tier history the test follows are those the engine alone keeps in T4 throughout, so
    every change in their tier is what people decided.
    """
    from features.rawstore import connect
    from features.store import FeatureStore
    from models.cli import registry_from_settings
    from models.scoring import score

    registry = registry_from_settings(home.settings)
    champion = registry.champion_info()
    assert champion is not None
    bundle = registry.load_bundle(champion.version)
    policy = load_policy(home.settings.policy.file)
    con = connect(home.settings.store_path, read_only=True)
    try:
        steady: set[str] | None = None
        for day in dates:
            run = score(day, bundle, policy, FeatureStore(con), with_reasons=False)
            calm = run[
                (run["tier"] == "T4")
                & (run["rules_fired"].map(len) == 0)
                & run["village_code"].astype(str).str.startswith(home.township)
            ]
            ids = set(calm["child_id"])
            steady = ids if steady is None else steady & ids
    finally:
        con.close()
    assert steady is not None
    return steady


def _main(home: Home, args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """``shouhu ARGS`` on ``home`` in this process, as the console script runs it; its exit
    code."""
    monkeypatch.setenv("SHOUHU_HOME", str(home.path))
    monkeypatch.setenv("SHOUHU_SCORING__EXPLAIN_TIERS", json.dumps(list(EXPLAIN)))
    get_settings.cache_clear()
    monkeypatch.setattr(sys, "argv", ["shouhu", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    code = exited.value.code
    return int(code) if code is not None else 0


def test_a_week_after_week_the_reviews_reach_the_runs(
    home: Home, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = load_policy(home.settings.policy.file)
    first = run_weekly(home.settings, WEEKS[0], drift=False)
    assert first.error is None and first.summary["drift"] is None
    score = first.summary["score"]
    assert score["reviews"]["overrides_in_force"] == 0 and score["overrides_applied"] == 0
    assert first.summary["review"]["run_id"] == score["run_id"]
    run = _run(home, score["run_id"])
    a, b = sorted(_steady(home, [*WEEKS, LAST]))[:2]
    floor = run[
        run["rules_fired"].map(lambda r: any(x.startswith("floor:T2:") for x in r))
        & (run["tier"] == "T2")
    ]["child_id"].iloc[0]

    # Week 1 → 2: the supervisor raises two children; an override below a floor is refused.
    with migrated_session(home.settings.service_database_url) as session:
        for child in (a, b):
            decide(
                session,
                policy,
                _context(run, child),
                home.supervisor,
                tier=Tier.T2,
                reason_code=ReasonCode.NEW_INFORMATION,
                reason_text=REASON,
            )
        with pytest.raises(ReviewRefusedError, match="floor"):
            decide(
                session,
                policy,
                _context(run, floor),
                home.supervisor,
                tier=Tier.T4,
                reason_code=ReasonCode.OTHER,
                reason_text=REASON,
            )
        ids = {child: id_ for child, id_ in session.execute(select(Override.child_id, Override.id))}
    second = run_weekly(home.settings, WEEKS[1], drift=False)
    score = second.summary["score"]
    assert score["reviews"]["overrides_in_force"] == 2 and score["overrides_applied"] == 2
    assert score["reviews"]["previous_run_id"] == first.summary["score"]["run_id"]
    run = _run(home, score["run_id"])
    for child in (a, b):
        row = run.loc[child]
        assert (row["tier"], row["computed_tier"], row["tier_source"]) == ("T2", "T4", "override")
        assert row["override_id"] == ids[child]

    # Week 2 → 3: the supervisor confirms the computed tier, ending both overrides; the tier a
    # person raised falls only as the policy allows.
    with migrated_session(home.settings.service_database_url) as session:
        for child in (a, b):
            ended = decide(session, policy, _context(run, child), home.supervisor)
            assert (ended.review.decision, ended.review.decided_tier) == ("confirm", "T4")
    third = run_weekly(home.settings, WEEKS[2], drift=False)
    assert third.summary["score"]["reviews"]["overrides_in_force"] == 0
    run = _run(home, third.summary["score"]["run_id"])
    assert run.loc[[a, b], "tier"].tolist() == ["T2", "T2"]
    assert run.loc[[a, b], "held_by_hysteresis"].all()
    fourth = run_weekly(home.settings, WEEKS[3], drift=False)
    run = _run(home, fourth.summary["score"]["run_id"])
    assert run.loc[[a, b], "awaiting_confirmation"].all()
    assert run.loc[[a, b], "tier"].tolist() == ["T2", "T2"]

    # Week 4 → 5: a caseworker confirms one fall; the other waits.
    with migrated_session(home.settings.service_database_url) as session:
        confirmation = confirm_fall(session, policy, _context(run, a), home.caseworker)
        confirmation_id = confirmation.id
    runs_before = _runs(home)
    assert _main(home, ["weekly", "--as-of", LAST.isoformat(), "--json"], monkeypatch) == 0
    summary = json.loads(capsys.readouterr().out)
    assert _runs(home) == runs_before + 1
    score = summary["score"]
    assert score["reviews"]["confirmations_given"] == 1
    assert score["falls_confirmed"] >= 1 and score["awaiting_confirmation"] >= 1
    run = _run(home, score["run_id"])
    fell, waits = run.loc[a], run.loc[b]
    assert (fell["tier"], fell["fall_confirmed"], fell["confirmation_id"]) == (
        "T4",
        True,
        confirmation_id,
    )
    assert fell["confirmed_by"] == "caseworker"
    assert (waits["tier"], waits["awaiting_confirmation"], waits["fall_confirmed"]) == (
        "T2",
        True,
        False,
    )
    assert pd.isna(waits["confirmation_id"])
    # Every step's summary: tasks and alerts of the run, then the drift report.
    assert summary["review"]["run_id"] == score["run_id"]
    assert isinstance(summary["drift"]["alarm"], bool)
    assert Path(summary["drift"]["report"]).is_file()


def test_a_stale_date_stores_nothing_and_a_failed_step_keeps_its_exit_code(
    home: Home, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = _runs(home)
    stale = ["weekly", "--as-of", "2026-03-31", "--no-drift", "--json"]
    assert _main(home, stale, monkeypatch) == 9
    out, err = capsys.readouterr()
    assert out == "" and "stale" in err
    assert _runs(home) == runs
    # A webhook without its secret: the run is stored, the review step fails with code 3.
    monkeypatch.setenv("SHOUHU_SERVICE__WEBHOOK_URL", "http://127.0.0.1:9/alerts")
    code = _main(home, ["weekly", "--as-of", LAST.isoformat(), "--no-drift"], monkeypatch)
    err = capsys.readouterr().err
    assert code == 3
    assert _runs(home) == runs + 1
    assert "score:" in err and "review failed" in err and "WEBHOOK_SECRET" in err
