"""Who may see what: the authorisation matrix over every child-data endpoint, and the audit log.

Table-driven: :data:`CHILD_ENDPOINTS` lists each endpoint that reads or writes one child's data,
with the roles allowed. Every endpoint is called by every role, for a child inside the caller's
area and one outside it (and an unknown id): an allowed role gets 200 inside, and 404 — the same
body as for an unknown child — outside; any other role gets 403 whatever the child. Every call
is recorded, and the last test checks that the audit log has an entry for each one.

To add an endpoint, add one :class:`Endpoint` line (the workflow's come from
``tests/unit/service/_workflow_endpoints.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.app import create_app
from service.db.audit import AuditEntry
from service.state import ServiceState
from tests._service_home import ServedHome, add_user, served_home, shared_state
from tests.unit.service._workflow_endpoints import WORKFLOW_ENDPOINTS

ROLES = ("caseworker", "supervisor", "analyst", "admin")
SCORE_READERS = frozenset({"caseworker", "supervisor", "analyst"})
FILE_READERS = frozenset({"caseworker", "supervisor"})
UNKNOWN_CHILD = "c-0000000000000000"


@dataclass(frozen=True)
class Endpoint:
    """One child-data endpoint: method, path template, roles allowed, in-area statuses, body."""

    method: str
    path: str
    roles: frozenset[str]
    ok: frozenset[int] = frozenset({200})
    body: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


CHILD_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/api/v1/children/{child_id}", FILE_READERS),
    Endpoint("GET", "/api/v1/children/{child_id}/score", SCORE_READERS),
    Endpoint("GET", "/api/v1/children/{child_id}/explanation", SCORE_READERS),
    Endpoint("GET", "/api/v1/children/{child_id}/explanation.png", SCORE_READERS),
    # The workflow's child endpoints (tasks, reviews, overrides, alerts), as S2 lists them.
    *(Endpoint(e.method, e.path, e.roles, e.ok, e.body) for e in WORKFLOW_ENDPOINTS if e.child),
)


@dataclass
class Recorder:
    """Every child-data request this module made: (username, method, path, child, status)."""

    calls: list[tuple[str, str, str, str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class World:
    """The app, the users of each role in and out of area, and the children used."""

    client: TestClient
    state: ServiceState
    tokens: dict[tuple[str, bool], str]
    inside: str
    outside: str
    recorder: Recorder


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> ServedHome:
    return served_home(tmp_path_factory)


@pytest.fixture(scope="module")
def world(served: ServedHome, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    state = shared_state(served, tmp_path_factory)
    board = state.snapshot.board.rows
    villages = board["village_code"].astype(str)
    # A T3 child without a hard rule: no workflow write is refused by the tier policy itself
    # (a hard-rule T1 closes only by a supervisor, which is not an authorisation answer).
    calm = board["tier"].astype(str).eq("T3") & ~board["hard_rule_t1"].astype(bool)
    inside = str(board.loc[calm & villages.str.startswith(served.township_a), "child_id"].iloc[0])
    outside = str(board.loc[villages.str.startswith(served.township_b), "child_id"].iloc[0])
    tokens: dict[tuple[str, bool], str] = {}
    for role in ROLES:
        # Every role once in township A (sees `inside`, not `outside`) and once in township B.
        tokens[(role, True)] = add_user(state, f"acc_{role}_in", role, served.township_a)
        tokens[(role, False)] = add_user(state, f"acc_{role}_out", role, served.township_b)
    with TestClient(create_app(state.settings, state=state)) as client:
        yield World(client, state, tokens, inside, outside, Recorder())


def _call(world: World, endpoint: Endpoint, role: str, in_area: bool, child: str) -> httpx.Response:
    token = world.tokens[(role, in_area)]
    body = dict(endpoint.body) if endpoint.body is not None else None
    response = world.client.request(
        endpoint.method,
        endpoint.path.format(child_id=child),
        headers={"Authorization": f"Bearer {token}"},
        json=body,
    )
    username = f"acc_{role}_{'in' if in_area else 'out'}"
    world.recorder.calls.append(
        (
            username,
            endpoint.method,
            endpoint.path.format(child_id=child),
            child,
            response.status_code,
        )
    )
    assert isinstance(response, httpx.Response)
    return response


MATRIX = [(e, r) for e in CHILD_ENDPOINTS for r in ROLES]


@pytest.mark.parametrize(("endpoint", "role"), MATRIX, ids=[f"{e}-{r}" for e, r in MATRIX])
def test_child_endpoint_answers_by_role_and_area(
    world: World, endpoint: Endpoint, role: str
) -> None:
    own = _call(world, endpoint, role, True, world.inside)
    foreign = _call(world, endpoint, role, True, world.outside)
    unknown = _call(world, endpoint, role, True, UNKNOWN_CHILD)
    outsider = _call(world, endpoint, role, False, world.inside)
    if role in endpoint.roles:
        assert own.status_code in endpoint.ok, own.text
        assert foreign.status_code == 404
        assert outsider.status_code == 404
        assert unknown.status_code == 404
        # Outside the area reads exactly like unknown: nothing hints that the child exists.
        assert foreign.json()["detail"].replace(world.outside, "?") == unknown.json()[
            "detail"
        ].replace(UNKNOWN_CHILD, "?")
        assert foreign.json()["error"] == unknown.json()["error"] == "NotFoundError"
    else:
        for response in (own, foreign, unknown, outsider):
            assert response.status_code == 403, response.text


@pytest.mark.parametrize("endpoint", CHILD_ENDPOINTS, ids=str)
def test_child_endpoint_needs_a_token(world: World, endpoint: Endpoint) -> None:
    path = endpoint.path.format(child_id=world.inside)
    missing = world.client.request(endpoint.method, path)
    wrong = world.client.request(
        endpoint.method, path, headers={"Authorization": "Bearer shk_not-a-real-token"}
    )
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"


def test_batch_score_lists_outside_children_as_not_found(world: World) -> None:
    token = world.tokens[("caseworker", True)]
    response = world.client.post(
        "/api/v1/scores",
        headers={"Authorization": f"Bearer {token}"},
        json={"child_ids": [world.inside, world.outside, UNKNOWN_CHILD], "explain": True},
    )
    for child in (world.inside, world.outside, UNKNOWN_CHILD):
        world.recorder.calls.append(
            ("acc_caseworker_in", "POST", "/api/v1/scores", child, response.status_code)
        )
    assert response.status_code == 200
    payload = response.json()
    assert [s["child_id"] for s in payload["scores"]] == [world.inside]
    assert payload["not_found"] == [world.outside, UNKNOWN_CHILD]
    assert payload["scores"][0]["model_version"] == world.state.model_version
    assert payload["scores"][0]["policy_version"] == world.state.policy_version


def test_watch_list_shows_only_the_callers_area(world: World) -> None:
    token = world.tokens[("caseworker", True)]
    headers = {"Authorization": f"Bearer {token}"}
    page = world.client.get("/api/v1/watchlist", headers=headers, params={"limit": 500}).json()
    scope = page["area_code"]
    assert page["total"] > 0
    assert all(item["village_code"].startswith(scope) for item in page["items"])
    assert world.outside not in {item["child_id"] for item in page["items"]}
    outside_area = world.client.get("/api/v1/watchlist", headers=headers, params={"area": "9999"})
    assert outside_area.status_code == 404
    for item in page["items"]:
        world.recorder.calls.append(
            ("acc_caseworker_in", "GET", "/api/v1/watchlist", item["child_id"], 200)
        )


def test_audit_page_is_for_supervisors_of_the_area(world: World) -> None:
    for role in ROLES:
        token = world.tokens[(role, True)]
        response = world.client.get(
            "/api/v1/audit", headers={"Authorization": f"Bearer {token}"}, params={"limit": 500}
        )
        if role in ("supervisor", "admin"):
            assert response.status_code == 200
            items = response.json()["items"]
            assert items, "the matrix above wrote audit entries in this area"
            scope = response.json()["area_code"]
            assert all((i["area_code"] or "").startswith(scope) for i in items)
            assert world.outside not in {i["child_id"] for i in items}
        else:
            assert response.status_code == 403


def test_audit_log_has_an_entry_for_every_child_data_request(world: World) -> None:
    # Runs last in this module: every request recorded above must be in the log.
    if not world.recorder.calls:
        test_child_endpoint_answers_by_role_and_area(world, CHILD_ENDPOINTS[0], "caseworker")
    with world.state.sessions() as session:
        entries = (
            session.execute(select(AuditEntry).where(AuditEntry.username.startswith("acc_")))
            .scalars()
            .all()
        )
    logged = {(e.username, e.method, e.child_id) for e in entries}
    by_path = {(e.username, e.path, e.child_id) for e in entries}
    missing = []
    for username, method, path, child, status in world.recorder.calls:
        if status == 403:
            continue  # refused by role before any child data was touched
        if (username, method, child) not in logged:
            missing.append((username, method, path, child, status))
        elif method == "GET" and "{" not in path and path.startswith("/api/v1/children"):
            assert (username, path, child) in by_path
    assert not missing, f"requests without an audit entry: {missing[:5]}"
    outcomes = {(e.username, e.child_id): e.outcome for e in entries}
    assert outcomes[("acc_caseworker_in", world.inside)] == "ok"
    assert outcomes[("acc_caseworker_in", world.outside)] == "not_found"
    assert all(e.client for e in entries), "every entry names where the request came from"
