"""The workflow API: roles, area scoping, audit, refusals, through the real routers.

The app here mounts only the workflow routers, with the real dependencies (``VisibleChild``,
``require_role``, the audit log, the error handlers) over a migrated database; the service
state is a small stand-in holding the policy and a snapshot of five children, so no model is
needed. The whole service is exercised by the service's own tests and the matrix test
(``_workflow_endpoints.WORKFLOW_ENDPOINTS``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.policy import TierPolicy, load_policy
from service.app import operation_id
from service.db.audit import AuditEntry
from service.db.base import make_engine, make_session_factory
from service.db.identity import User
from service.db.workflow import Alert, Override, Review
from service.deps import Principal, get_principal
from service.errors import install_error_handlers
from service.routers import alerts, overrides, reviews, tasks
from service.workflow.alerts import process_run

from ._workflow_endpoints import ROLES, WORKFLOW_ENDPOINTS
from ._workflow_helpers import migrated_template

__all__ = ["migrated_template"]

IN_VILLAGE, OUT_VILLAGE = "990101001001", "990102003014"
SCORED_AT = datetime(2026, 3, 1, 8, tzinfo=UTC)
_REASON = "走访发现:祖母住院,孩子独自在家"

# child, village, tier, rules, hard_rule_t1, awaiting confirmation, sex
CHILDREN = [
    ("c-t3", IN_VILLAGE, "T3", ["floor:T3:rare_parent_contact"], False, False, "female"),
    ("c-t2", IN_VILLAGE, "T2", ["floor:T2:suspected_dropout"], False, False, "male"),
    ("c-held", IN_VILLAGE, "T1", [], True, True, "male"),
    ("c-abuse", IN_VILLAGE, "T1", ["hard:suspected_abuse_or_unlawful_harm"], True, False, "female"),
    ("c-far", OUT_VILLAGE, "T2", [], False, False, "female"),
]


@dataclass
class _Board:
    rows: pd.DataFrame
    row_of: dict[str, int]


@dataclass
class _Snapshot:
    board: _Board
    frame: pd.DataFrame
    row_of: dict[str, int]
    villages: dict[str, str | None]


@dataclass
class _State:
    policy: TierPolicy
    snapshot: _Snapshot
    sessions: sessionmaker[Session]


def _snapshot() -> _Snapshot:
    rows = pd.DataFrame(
        [
            {
                "child_id": c,
                "village_code": v,
                "township_code": v[:9],
                "tier": t,
                "rules_fired": r,
                "hard_rule_t1": h,
                "awaiting_confirmation": a,
                "run_id": "run0001",
                "as_of": SCORED_AT.date(),
                "scored_at": pd.Timestamp(SCORED_AT),
            }
            for c, v, t, r, h, a, _ in CHILDREN
        ]
    )
    frame = pd.DataFrame(
        {
            "child_id": [c[0] for c in CHILDREN],
            "sex": [c[6] for c in CHILDREN],
            "disability": [False] * len(CHILDREN),
        }
    )
    index = {c[0]: i for i, c in enumerate(CHILDREN)}
    return _Snapshot(_Board(rows, index), frame, index, {c[0]: c[1] for c in CHILDREN})


@pytest.fixture
def api(
    migrated_template: Path, tmp_path: Path
) -> Iterator[tuple[TestClient, sessionmaker[Session], dict[str, Principal]]]:
    shutil.copyfile(migrated_template, tmp_path / "service.db")
    engine = make_engine(f"sqlite:///{tmp_path / 'service.db'}")
    sessions = make_session_factory(engine)
    principals: dict[str, Principal] = {}
    with sessions() as session:
        for username, role, area in [
            ("cw", "caseworker", "990101001"),
            ("cw_far", "caseworker", "990102003"),
            ("sup", "supervisor", "990101"),
            ("an", "analyst", "990101"),
            ("adm", "admin", "990101"),
        ]:
            user = User(username=username, password_hash="x", role=role, area_code=area, lang="en")
            session.add(user)
            session.flush()
            principals[username] = Principal.of(user)
        session.commit()
    app = FastAPI(generate_unique_id_function=operation_id)
    install_error_handlers(app)
    for module in (tasks, reviews, overrides, alerts):
        app.include_router(module.router, prefix="/api/v1")
    app.state.service = _State(load_policy(), _snapshot(), sessions)

    def principal(request: Request) -> Principal:
        return principals[request.headers["x-user"]]

    app.dependency_overrides[get_principal] = principal
    with TestClient(app) as client:
        yield client, sessions, principals
    engine.dispose()


def _as(user: str) -> dict[str, str]:
    return {"x-user": user}


def test_a_caseworker_records_a_visit_and_a_proposal_the_supervisor_accepts(api: Any) -> None:
    client, _, _ = api
    visit = client.post(
        "/api/v1/children/c-t2/reviews",
        json={
            "activity": "home_visit",
            "outcome": "concerns",
            "notes": "祖母生病",
            "proposed_tier": "T1",
            "reason_code": "visit_found_higher_risk",
            "reason_text": _REASON,
        },
        headers=_as("cw"),
    )
    assert visit.status_code == 201, visit.text
    proposal = visit.json()
    assert (proposal["proposed_tier"], proposal["reviewer"]) == ("T1", "cw")

    pending = client.get("/api/v1/reviews/pending", headers=_as("sup")).json()
    assert [p["id"] for p in pending["proposals"]] == [proposal["id"]]
    assert [c["child_id"] for c in pending["closures"]] == ["c-held"]

    accepted = client.post(
        "/api/v1/children/c-t2/confirmations",
        json={"proposal_id": proposal["id"]},
        headers=_as("sup"),
    )
    assert accepted.status_code == 201, accepted.text
    decision = accepted.json()
    assert decision["review"]["decision"] == "override"
    assert decision["override"]["tier"] == "T1"
    assert decision["override"]["reason_code"] == "visit_found_higher_risk"
    assert client.get("/api/v1/reviews/pending", headers=_as("sup")).json()["proposals"] == []

    history = client.get("/api/v1/children/c-t2/reviews", headers=_as("cw")).json()["reviews"]
    assert [r["kind"] for r in history] == ["decision", "visit"]
    listed = client.get("/api/v1/children/c-t2/overrides", headers=_as("cw")).json()
    assert [o["tier"] for o in listed] == ["T1"]
    # The tier changed: a T1 episode of tasks is open, its mandatory report due at once.
    open_kinds = {
        t["kind"]
        for t in client.get("/api/v1/children/c-t2/tasks", headers=_as("cw")).json()["tasks"]
        if t["status"] == "open"
    }
    assert {"mandatory_report", "first_visit", "contact"} <= open_kinds


def test_an_override_below_a_floor_is_refused_and_nothing_is_recorded(api: Any) -> None:
    client, sessions, _ = api
    refused = client.post(
        "/api/v1/children/c-t2/overrides",
        json={"tier": "T3", "reason_code": "records_outdated", "reason_text": _REASON},
        headers=_as("sup"),
    )
    assert refused.status_code == 409
    assert "suspected_dropout" in refused.json()["detail"]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Review)) == 0
        assert session.scalar(select(func.count()).select_from(Override)) == 0


def test_a_hard_rule_t1_is_closed_by_a_supervisor_only(api: Any) -> None:
    client, _, _ = api
    denied = client.post("/api/v1/children/c-held/fall-confirmations", json={}, headers=_as("cw"))
    assert denied.status_code == 403
    closed = client.post("/api/v1/children/c-held/fall-confirmations", json={}, headers=_as("sup"))
    assert closed.status_code == 201
    assert closed.json()["kind"] == "fall_confirmation"
    pending = client.get("/api/v1/reviews/pending", headers=_as("sup")).json()
    assert pending["closures"] == []
    # While the hard rule fires, not even a supervisor lowers the T1.
    lowered = client.post(
        "/api/v1/children/c-abuse/overrides",
        json={"tier": "T2", "reason_code": "other", "reason_text": _REASON},
        headers=_as("sup"),
    )
    assert lowered.status_code == 409


def test_roles_and_areas_are_enforced_and_every_request_is_audited(api: Any) -> None:
    client, sessions, principals = api
    requests = 0
    for endpoint in WORKFLOW_ENDPOINTS:
        for user in ("cw", "sup", "an", "adm"):
            role = principals[user].role.value
            assert role in ROLES
            for inside in (True, False):
                child = "c-t3" if inside else "c-far"
                path = endpoint.path.format(child_id=child)
                params = dict(endpoint.params)
                if not endpoint.child and not inside:
                    params["area"] = "990102"
                response = client.request(
                    endpoint.method, path, json=endpoint.body, params=params, headers=_as(user)
                )
                requests += endpoint.child
                if role not in endpoint.roles:
                    expected = {403}
                elif not inside:
                    expected = {404}
                else:
                    expected = set(endpoint.ok)
                assert response.status_code in expected, (
                    endpoint.name,
                    user,
                    inside,
                    response.text,
                )
    with sessions() as session:
        child_entries = session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.child_id.is_not(None))
        )
        not_found = session.scalar(select(func.count()).where(AuditEntry.outcome == "not_found"))
    # Every request the role guard let through to a child endpoint was audited, found or not.
    allowed_child_requests = sum(
        2 * sum(principals[u].role.value in e.roles for u in ("cw", "sup", "an", "adm"))
        for e in WORKFLOW_ENDPOINTS
        if e.child
    )
    assert child_entries is not None and child_entries >= allowed_child_requests
    assert not_found == allowed_child_requests // 2
    assert requests > 0


def test_a_caseworker_of_another_township_gets_not_found(api: Any) -> None:
    client, _, _ = api
    far = client.get("/api/v1/children/c-t3/reviews", headers=_as("cw_far"))
    unknown = client.get("/api/v1/children/c-nobody/reviews", headers=_as("cw_far"))
    assert far.status_code == unknown.status_code == 404
    assert far.json()["detail"].replace("c-t3", "X") == unknown.json()["detail"].replace(
        "c-nobody", "X"
    )


def test_inputs_forbid_unknown_fields_and_need_reasons(api: Any) -> None:
    client, _, _ = api
    extra = client.post(
        "/api/v1/children/c-t3/reviews",
        json={"activity": "home_visit", "outcome": "safe", "child_name": "x"},
        headers=_as("cw"),
    )
    assert extra.status_code == 422
    no_reason = client.post(
        "/api/v1/children/c-t3/reviews",
        json={"activity": "home_visit", "outcome": "safe", "proposed_tier": "T2"},
        headers=_as("cw"),
    )
    assert no_reason.status_code == 422
    blank = client.post(
        "/api/v1/children/c-t3/overrides",
        json={"tier": "T2", "reason_code": "other", "reason_text": "   "},
        headers=_as("sup"),
    )
    assert blank.status_code == 422
    naive = client.post(
        "/api/v1/children/c-t3/mandatory-reports",
        json={"agency": "派出所", "reference": "1", "reported_at": "2025-12-31T08:00:00"},
        headers=_as("cw"),
    )
    assert naive.status_code == 422


def test_alert_feed_and_override_stats(api: Any) -> None:
    client, sessions, _ = api
    policy = load_policy()
    snapshot = _snapshot()
    current = snapshot.board.rows.assign(policy_version=policy.version)
    previous = current.assign(tier="T4", rules_fired=[[]] * len(current), hard_rule_t1=False)
    with sessions() as session:
        processed = process_run(session, policy, current, previous, now=SCORED_AT)
        session.commit()
    assert len(processed.alerts.raised) == 5  # every child rose (from T4)
    feed = client.get("/api/v1/alerts", headers=_as("cw")).json()["alerts"]
    assert {a["child_id"] for a in feed} == {"c-t3", "c-t2", "c-held", "c-abuse"}
    abuse = next(a for a in feed if a["child_id"] == "c-abuse")
    assert abuse["hard_rules"] == ["suspected_abuse_or_unlawful_harm"]
    assert abuse["reasons"][0]["kind"] == "hard_rule"
    newest = max(a["id"] for a in feed)
    assert client.get(f"/api/v1/alerts?after_id={newest}", headers=_as("cw")).json() == {
        "alerts": []
    }
    assert (
        len(client.get("/api/v1/children/c-abuse/alerts", headers=_as("sup")).json()["alerts"]) == 1
    )
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 5

    client.post(
        "/api/v1/children/c-t3/overrides",
        json={"tier": "T2", "reason_code": "new_information", "reason_text": _REASON},
        headers=_as("sup"),
    )
    client.post("/api/v1/children/c-t2/confirmations", json={}, headers=_as("sup"))
    stats = client.get("/api/v1/overrides/stats?by=girl", headers=_as("an")).json()
    cells = {r["group"]: (r["decisions"], r["overrides"], r["rate"]) for r in stats["rows"]}
    assert cells == {"girl": (1, 1, 1.0), "boy": (1, 0, 0.0)}
    by_reviewer = client.get("/api/v1/overrides/stats?by=reviewer", headers=_as("sup")).json()
    assert [(r["group"], r["decisions"]) for r in by_reviewer["rows"]] == [("sup", 2)]
    assert datetime.fromisoformat(stats["since"]) < datetime.now(UTC) - timedelta(weeks=11)
