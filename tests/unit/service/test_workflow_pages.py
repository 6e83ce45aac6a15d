"""The supervisor's oversight pages through the real app: override rates and the audit log.

The rates page shows exactly the numbers of ``GET /api/v1/overrides/stats`` for every split and
highlights a high rate; the audit page pages through the area's entries newest first, with
filters by child and by user, and shows no name or identity number. Both answer only the roles
the API allows, scoped to the caller's area as the API scopes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.pages.casework import rate_weeks
from service.schemas.workflow import RatePublic
from service.state import ServiceState
from service.workflow.stats import FLAG_MIN_DECISIONS
from tests._service_home import PASSWORD, ServedHome, add_user, served_home, shared_state

#: The users of this module: role and where (``county``, ``township_a`` or ``township_b``).
USERS = {
    "wp_sup": ("supervisor", "county"),
    "wp_sup_b": ("supervisor", "township_b"),
    "wp_cw": ("caseworker", "township_a"),
    "wp_an": ("analyst", "county"),
    "wp_admin": ("admin", "city"),
}
#: One 18-digit resident identity number pattern (the audit log must never hold one).
ID_NUMBER = re.compile(r"\b\d{17}[\dXx]\b")


@dataclass(frozen=True)
class World:
    """The app, a bearer token per user, and the children the supervisor decided about."""

    client: TestClient
    state: ServiceState
    tokens: dict[str, str]
    overridden: list[str]
    confirmed: str
    served: ServedHome


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    served = served_home(tmp_path_factory)
    state = shared_state(served, tmp_path_factory)
    areas = {
        "county": served.county,
        "township_a": served.township_a,
        "township_b": served.township_b,
        "city": served.city,
    }
    tokens = {
        name: add_user(state, name, role, areas[where]) for name, (role, where) in USERS.items()
    }
    board = state.snapshot.board.rows
    calm = (
        board["tier"].astype(str).eq("T4")
        & board["rules_fired"].map(len).eq(0)
        & board["village_code"].astype(str).str.startswith(served.township_a)
    )
    children = board.loc[calm, "child_id"].astype(str).tolist()
    # Children no other test of the shared home decides about (they pick T3 children).
    overridden, confirmed = children[:FLAG_MIN_DECISIONS], children[FLAG_MIN_DECISIONS]
    with TestClient(create_app(state.settings, state=state), follow_redirects=False) as client:
        auth = {"Authorization": f"Bearer {tokens['wp_sup']}"}
        for child in overridden:
            made = client.post(
                f"/api/v1/children/{child}/overrides",
                headers=auth,
                json={
                    "tier": "T2",
                    "reason_code": "new_information",
                    "reason_text": "邻居反映孩子常独自在家,待核实",
                },
            )
            assert made.status_code == 201, made.text
        kept = client.post(f"/api/v1/children/{confirmed}/confirmations", headers=auth, json={})
        assert kept.status_code == 201, kept.text
        yield World(client, state, tokens, overridden, confirmed, served)


def _sign_in(world: World, username: str) -> TestClient:
    client = world.client
    client.cookies.clear()
    form = client.get("/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    signed = client.post(
        "/sign-in",
        data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)},
    )
    assert signed.status_code == 303, signed.text
    return client


def _rows(html: str) -> list[dict[str, str]]:
    """The rate rows of the page, as their data attributes."""
    rows = re.findall(r'<tr data-testid="rate-row"([^>]*)>', html)
    return [dict(re.findall(r'data-([a-z]+)="([^"]*)"', attributes)) for attributes in rows]


@pytest.mark.parametrize("by", ["reviewer", "tier", "girl", "disability", "township"])
def test_the_rates_page_shows_the_apis_numbers_for_every_split(world: World, by: str) -> None:
    api = world.client.get(
        "/api/v1/overrides/stats",
        params={"by": by},
        headers={"Authorization": f"Bearer {world.tokens['wp_sup']}"},
    )
    assert api.status_code == 200
    expected = sorted(
        (r["group"], r["decisions"], r["overrides"], r["raised"], r["lowered"])
        for r in api.json()["rows"]
    )
    assert expected, "the supervisor's decisions are counted"
    client = _sign_in(world, "wp_sup")
    page = client.get("/override-rates", params={"by": by})
    assert page.status_code == 200
    shown = sorted(
        (r["group"], int(r["decisions"]), int(r["overrides"]), int(r["raised"]), int(r["lowered"]))
        for r in _rows(page.text)
    )
    assert shown == expected


def test_a_high_override_rate_is_highlighted_and_the_queue_links_to_the_page(
    world: World,
) -> None:
    client = _sign_in(world, "wp_sup")
    page = client.get("/override-rates", params={"by": "reviewer", "weeks": 4})
    rows = {r["group"]: r for r in _rows(page.text)}
    mine = rows["wp_sup"]
    assert (mine["decisions"], mine["overrides"], mine["raised"]) == (
        str(FLAG_MIN_DECISIONS + 1),
        str(FLAG_MIN_DECISIONS),
        str(FLAG_MIN_DECISIONS),
    )
    assert mine["flagged"] == "yes"
    assert 'data-testid="rate-flagged"' in page.text
    assert 'aria-current="page"' in page.text and 'href="/override-rates"' in page.text
    queue = client.get("/queue")
    assert queue.status_code == 200 and 'data-testid="queue-rates-link"' in queue.text
    switched = client.get("/lang/en", params={"next": "/override-rates"})
    assert switched.headers["location"] == "/override-rates"
    english = client.get("/override-rates")
    assert "Override rates" in english.text and "Reviewer" in english.text
    client.cookies.delete("shouhu_lang")


def test_rates_are_scoped_to_the_callers_area_and_roles_as_the_api(world: World) -> None:
    # A supervisor of another township sees none of these decisions.
    client = _sign_in(world, "wp_sup_b")
    other = client.get("/override-rates", params={"by": "reviewer"})
    assert other.status_code == 200
    assert "wp_sup" not in {r["group"] for r in _rows(other.text)}
    assert client.get("/override-rates", params={"area": world.served.township_a}).status_code == (
        404
    )
    # The analyst reads the aggregates; a caseworker and an administrator may not.
    analyst = _sign_in(world, "wp_an").get("/override-rates")
    assert analyst.status_code == 200 and "wp_sup" in analyst.text
    assert _sign_in(world, "wp_cw").get("/override-rates").status_code == 403
    assert _sign_in(world, "wp_admin").get("/override-rates").status_code == 403
    sup = _sign_in(world, "wp_sup")
    assert sup.get("/override-rates?by=nonsense").status_code == 422
    # The form sends an empty area for "all of my area"; a sub-area narrows.
    everything = sup.get("/override-rates", params={"by": "township", "weeks": 12, "area": ""})
    narrowed = sup.get(
        "/override-rates", params={"by": "township", "area": world.served.township_a}
    )
    assert everything.status_code == narrowed.status_code == 200
    assert {r["group"] for r in _rows(narrowed.text)} == {world.served.township_a}
    assert sup.get("/override-rates", params={"area": "12"}).status_code == 422


def test_rate_weeks_are_newest_first_with_their_totals() -> None:
    def row(week: str, group: str, decisions: int, overrides: int) -> RatePublic:
        start = {"2026-W01": "2025-12-29", "2026-W02": "2026-01-05"}[week]
        return RatePublic.model_validate(
            {
                "week": week,
                "week_start": start,
                "group": group,
                "decisions": decisions,
                "overrides": overrides,
                "raised": 0,
                "lowered": overrides,
                "rate": overrides / decisions,
            }
        )

    weeks = rate_weeks(
        [
            row("2026-W01", "a", 10, 1),
            row("2026-W01", "b", 10, 1),
            row("2026-W02", "a", 10, 1),
            row("2026-W02", "b", 6, 3),
        ]
    )
    assert [w.total.week for w in weeks] == ["2026-W02", "2026-W01"]
    assert (weeks[0].total.decisions, weeks[0].total.overrides) == (16, 4)
    assert [c.flagged for c in weeks[0].cells] == [False, True]
    assert weeks[0].flagged and not weeks[1].flagged


def test_the_audit_page_lists_the_areas_entries_newest_first_with_filters(world: World) -> None:
    child = world.overridden[0]
    client = _sign_in(world, "wp_sup")
    # Opening the child's file writes an entry: the newest of the area.
    assert client.get(f"/children/{child}").status_code == 200
    page = client.get("/audit")
    assert page.status_code == 200
    ids = [int(i) for i in re.findall(r'data-testid="audit-entry" data-id="(\d+)"', page.text)]
    assert ids and ids == sorted(ids, reverse=True)
    first = re.search(r'data-testid="audit-entry" data-id="\d+" data-child="([^"]*)"', page.text)
    assert first is not None and first.group(1) == child
    assert not ID_NUMBER.search(page.text)
    api = client.get(
        "/api/v1/audit",
        params={"child_id": child},
        headers={"Authorization": f"Bearer {world.tokens['wp_sup']}"},
    ).json()
    by_child = client.get("/audit", params={"child_id": child})
    shown = [int(i) for i in re.findall(r'data-id="(\d+)"', by_child.text)]
    assert shown == [item["id"] for item in api["items"]]
    assert set(re.findall(r'data-child="([^"]*)"', by_child.text)) == {child}
    by_user = client.get("/audit", params={"username": "wp_cw"})
    assert by_user.status_code == 200
    assert set(re.findall(r'data-user="([^"]*)"', by_user.text)) <= {"wp_cw"}
    # Paging: a page "before" an entry starts with the next older entry of the area.
    older = client.get("/audit", params={"before": ids[0]})
    entry = r'data-testid="audit-entry" data-id="(\d+)"'
    older_ids = [int(i) for i in re.findall(entry, older.text)]
    assert older_ids[: len(ids) - 1] == ids[1:]
    assert 'data-testid="audit-newest"' in older.text
    assert client.get("/audit", params={"child_id": "<script>"}).status_code == 422


def test_the_audit_page_is_for_supervisors_and_admins_of_the_area(world: World) -> None:
    child = world.overridden[0]
    # Another township's supervisor sees no entry about a child of township A.
    other = _sign_in(world, "wp_sup_b").get("/audit", params={"child_id": child})
    assert other.status_code == 200 and 'data-testid="audit-empty"' in other.text
    admin = _sign_in(world, "wp_admin").get("/audit", params={"child_id": child})
    assert admin.status_code == 200 and f'data-child="{child}"' in admin.text
    assert _sign_in(world, "wp_cw").get("/audit").status_code == 403
    assert _sign_in(world, "wp_an").get("/audit").status_code == 403
    nav = _sign_in(world, "wp_sup").get("/audit").text
    assert 'href="/audit"' in nav and 'href="/override-rates"' in nav
