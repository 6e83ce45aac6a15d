"""The approval page: who may approve a re-evaluation's challenger, refusals, and the record.

The whole app (``service.app.create_app``) over a home of its own (``tests/_promotion_home.py``:
a champion, a challenger, a ``promote`` and a ``keep`` re-evaluation), signed in through the
sign-in form with cookies and CSRF tokens as a browser would. The tests run in file order: the
approval itself comes last, as it moves the registry's champion.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from models.promotion import APPROVAL_EVENT, approvals_log
from monitoring.metrics_export import write_metrics
from service.app import create_app
from service.db.audit import AuditEntry
from service.state import ServiceState
from tests._promotion_home import (
    KEEP_QUARTER,
    PROMOTE_QUARTER,
    PromotionHome,
    add_accounts,
    promotion_home,
)
from tests._service_home import PASSWORD
from tests.unit.monitoring.test_drift_reports import _summary


@dataclass(frozen=True)
class World:
    """The app, its loaded state and the home behind it."""

    app: FastAPI
    state: ServiceState
    built: PromotionHome


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = promotion_home(tmp_path_factory, "promotion-page")
    state = ServiceState.load(built.settings)  # type: ignore[arg-type]
    add_accounts(state, built.accounts)
    try:
        yield World(create_app(built.settings, state=state), state, built)
    finally:
        state.close()


def _token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


@pytest.fixture
def signed_in(world: World) -> Iterator[object]:
    """``signed_in(username)``: a client with that user's session cookie."""
    clients: list[TestClient] = []

    def sign(username: str) -> TestClient:
        client = TestClient(world.app, follow_redirects=False)
        client.__enter__()
        clients.append(client)
        form = client.get("/sign-in")
        done = client.post(
            "/sign-in",
            data={"username": username, "password": PASSWORD, "csrf_token": _token(form.text)},
        )
        assert done.status_code == 303, done.text
        return client

    yield sign
    for client in clients:
        client.__exit__(None, None, None)


def _audit(world: World) -> list[tuple[str, str, str]]:
    with world.state.sessions() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.action == APPROVAL_EVENT).order_by(AuditEntry.id)
        ).all()
        return [(r.username, r.outcome, r.path) for r in rows]


def _champion(world: World) -> int | None:
    assert world.state.registry is not None
    info = world.state.registry.champion_info()
    return None if info is None else info.version


def test_the_reports_page_lists_each_quarters_recommendation(
    world: World, signed_in: object
) -> None:
    client = signed_in("sup_county")  # type: ignore[operator]
    page = client.get("/reports")
    assert page.status_code == 200
    assert f'href="/promotion/{PROMOTE_QUARTER}"' in page.text
    assert f'data-quarter="{KEEP_QUARTER}"' in page.text
    # The re-evaluation's own page is two folders down and is listed and served.
    report = f"reevaluation/{PROMOTE_QUARTER}/reevaluation.html"
    assert f'href="/reports/{report}"' in page.text
    assert client.get(f"/reports/{report}").status_code == 200


def test_a_keep_is_shown_with_what_blocks_it_and_refused_when_posted(
    world: World, signed_in: object
) -> None:
    client = signed_in("sup_county")  # type: ignore[operator]
    page = client.get(f"/promotion/{KEEP_QUARTER}")
    assert page.status_code == 200
    assert 'data-testid="blockers"' in page.text and 'data-testid="approval-form"' not in page.text
    assert "recommends keep, not promote" in page.text
    assert "signs a note" in page.text  # how a fairness block is lifted
    version = world.built.challenger
    refused = client.post(
        f"/promotion/{KEEP_QUARTER}/{version}",
        data={"reason": "I disagree with the report", "csrf_token": _token(page.text)},
    )
    assert refused.status_code == 409
    assert 'data-testid="form-refused"' in refused.text
    assert "gate: champion gate failed" in refused.text
    assert _champion(world) == world.built.champion
    assert not approvals_log(world.built.settings.monitoring_dir).exists()  # type: ignore[attr-defined]
    assert _audit(world)[-1] == ("sup_county", "refused", f"/promotion/{KEEP_QUARTER}/{version}")


def test_only_a_county_supervisor_may_approve(world: World, signed_in: object) -> None:
    version = world.built.challenger
    target = f"/promotion/{PROMOTE_QUARTER}/{version}"
    caseworker = signed_in("cw_town")  # type: ignore[operator]
    assert caseworker.get(f"/promotion/{PROMOTE_QUARTER}").status_code == 403
    token = _token(caseworker.get("/reports").text)
    assert caseworker.post(target, data={"reason": "x", "csrf_token": token}).status_code == 403
    for username in ("sup_town", "analyst"):
        client = signed_in(username)  # type: ignore[operator]
        page = client.get(f"/promotion/{PROMOTE_QUARTER}")
        assert page.status_code == 200
        assert 'data-testid="approval-not-allowed"' in page.text
        assert 'data-testid="approval-form"' not in page.text
        posted = client.post(target, data={"reason": "looks good", "csrf_token": _token(page.text)})
        assert posted.status_code == 403
    assert _champion(world) == world.built.champion


def test_unknown_or_malformed_quarters(world: World, signed_in: object) -> None:
    client = signed_in("sup_county")  # type: ignore[operator]
    assert client.get("/promotion/2019Q1").status_code == 404
    assert client.get("/promotion/2025Q5").status_code == 422
    assert client.get("/promotion/..%2F..%2Fmlflow").status_code in {404, 422}


def test_metrics_carry_the_latest_drift_figures(world: World) -> None:
    monitoring = world.built.settings.monitoring_dir  # type: ignore[attr-defined]
    write_metrics(_summary("2026-01-05T00:00:00+00:00", alarm=True), monitoring)
    with TestClient(world.app) as client:
        text = client.get("/metrics").text
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"shouhu_http_requests", "shouhu_model_info", "shouhu_drift_alarm"} <= names
    assert "shouhu_area_alarm" in names and "shouhu_drift_feature_drifted" in names


def test_a_county_supervisor_approves_with_a_reason_and_it_is_recorded(
    world: World, signed_in: object
) -> None:
    client = signed_in("sup_county")  # type: ignore[operator]
    version, champion = world.built.challenger, world.built.champion
    page = client.get(f"/promotion/{PROMOTE_QUARTER}")
    assert page.status_code == 200
    assert 'data-value="promote"' in page.text and f">v{version}<" in page.text
    # The model the service serves, and nothing to switch to yet.
    assert f'data-served="{champion}" data-switch="none"' in page.text
    token = _token(page.text)
    target = f"/promotion/{PROMOTE_QUARTER}/{version}"

    assert client.post(target, data={"reason": "fine"}).status_code == 403  # no CSRF token
    blank = client.post(target, data={"reason": "   ", "csrf_token": token})
    assert blank.status_code == 422 and 'data-testid="form-errors"' in blank.text
    assert _champion(world) == champion

    reason = "Clearly better on 2025Q3; fairness within the band; visits of T1-T2 entrants planned."
    done = client.post(target, data={"reason": reason, "csrf_token": token})
    assert done.status_code == 303
    assert done.headers["location"] == f"/promotion/{PROMOTE_QUARTER}?done=approved"
    assert _champion(world) == version
    assert world.state.registry is not None
    info = world.state.registry.version_info(version)
    assert info.tag("promoted_by") == "sup_county"
    assert info.tag("promotion_reason") == reason
    assert info.tag("promotion_basis") == f"re-evaluation {PROMOTE_QUARTER}"
    log = approvals_log(world.built.settings.monitoring_dir)  # type: ignore[attr-defined]
    entry = json.loads(log.read_text(encoding="utf-8").splitlines()[-1])
    assert (entry["approver"], entry["version"], entry["previous_champion"]) == (
        "sup_county",
        version,
        champion,
    )
    assert _audit(world)[-1] == ("sup_county", "ok", target)

    after = client.get(done.headers["location"])
    assert 'data-testid="approved"' in after.text and reason in after.text
    # The running service keeps the model it loaded and says when it will change.
    assert world.state.model_version == champion
    assert f'data-served="{champion}" data-switch="restart"' in after.text
    again = client.post(target, data={"reason": reason, "csrf_token": token})
    assert again.status_code == 409 and "already the champion" in again.text
