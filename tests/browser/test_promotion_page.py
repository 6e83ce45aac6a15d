"""A supervisor approves a re-evaluation's challenger in real Chromium; a caseworker cannot.

The service runs on 127.0.0.1 over a home of its own (``tests/_promotion_home.py``: champion
version 1 loaded, challenger version 2, a ``promote`` re-evaluation of 2025Q3 and a ``keep`` of
2025Q2), not over the casework tests' home, since approving moves the registry's champion.
The tests run in file order: the caseworker first, then the approval.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.state import registry_for
from tests._promotion_home import KEEP_QUARTER, PROMOTE_QUARTER, add_accounts, promotion_home
from tests._service_home import PASSWORD
from tests.browser.conftest import DESKTOP, Served, _free_socket, shoot, sign_in

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def approval(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The service over the approval home, on a free port of 127.0.0.1 (stopped after)."""
    import uvicorn

    from service.app import create_app

    built = promotion_home(tmp_path_factory, "promotion-browser")
    app = create_app(built.settings)  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    sock = _free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    worker = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while not server.started:  # the lifespan loads the champion and the snapshot first
            assert worker.is_alive() and time.monotonic() < deadline, "the service did not start"
            time.sleep(0.1)
        add_accounts(app.state.service, built.accounts)
        accounts = {
            name: {"username": name, "password": PASSWORD, "role": role, "area_code": area}
            for name, (role, area) in built.accounts.items()
        }
        yield Served(base, built.home, accounts, {})
    finally:
        server.should_exit = True
        worker.join(timeout=30)
        sock.close()


@pytest.fixture
def desk(browser: Any) -> Iterator[Any]:
    """A fresh desktop browser context (a supervisor approves at a desk)."""
    context = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def _champion(served: Served) -> int | None:
    from shouhu.settings import Settings
    from tests._trained_model import KEY

    info = registry_for(Settings(home=served.home, pseudonym_key=KEY)).champion_info()
    return None if info is None else info.version


def test_a_caseworker_can_neither_open_nor_post_an_approval(desk: Any, approval: Served) -> None:
    page = desk
    sign_in(page, approval, "cw_town")
    page.goto(f"{approval.base_url}/reports")
    assert page.get_by_test_id("reevaluations").is_visible()
    assert page.get_by_test_id(f"review-{PROMOTE_QUARTER}").count() == 0  # no way in
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    response = page.goto(f"{approval.base_url}/promotion/{PROMOTE_QUARTER}")
    assert response is not None and response.status == 403
    assert page.get_by_test_id("error-page").is_visible()
    # Even with a valid token of the caseworker's session, the POST is refused.
    posted = page.request.post(
        f"{approval.base_url}/promotion/{PROMOTE_QUARTER}/2",
        form={"reason": "let me", "csrf_token": str(token)},
        max_redirects=0,
    )
    assert posted.status == 403
    assert _champion(approval) == 1


def test_a_county_supervisor_approves_from_the_reports_page(
    desk: Any, approval: Served, screenshots: Path
) -> None:
    page = desk
    sign_in(page, approval, "sup_county")
    page.goto(f"{approval.base_url}/reports")
    # The keep is shown with what blocks it and no form.
    page.get_by_test_id(f"review-{KEEP_QUARTER}").click()
    page.wait_for_url(f"**/promotion/{KEEP_QUARTER}")
    assert page.get_by_test_id("recommendation").get_attribute("data-value") == "keep"
    assert "recommends keep" in page.get_by_test_id("blockers").inner_text()
    assert page.get_by_test_id("approval-form").count() == 0
    shoot(page, screenshots, "promotion-keep")

    page.goto(f"{approval.base_url}/reports")
    page.get_by_test_id(f"review-{PROMOTE_QUARTER}").click()
    page.wait_for_url(f"**/promotion/{PROMOTE_QUARTER}")
    assert page.get_by_test_id("recommendation").get_attribute("data-value") == "promote"
    assert page.get_by_test_id("challenger").inner_text() == "v2"
    assert page.get_by_test_id("served-model").get_attribute("data-served") == "1"
    shoot(page, screenshots, "promotion-approve")
    reason = "2025Q3 复评:精确率明显更高,公平性在范围内,已安排新进入一、二级儿童的走访。"
    page.fill("#reason", reason)
    page.get_by_test_id("approve-submit").click()
    page.wait_for_url(f"**/promotion/{PROMOTE_QUARTER}?done=approved")
    assert reason in page.get_by_test_id("approved").inner_text()
    served = page.get_by_test_id("served-model")
    # The registry's champion changed; this service still serves the model it loaded.
    assert served.get_attribute("data-served") == "1"
    assert served.get_attribute("data-switch") == "restart"
    assert page.get_by_test_id("registry-champion").inner_text() == "v2"
    shoot(page, screenshots, "promotion-approved")

    assert _champion(approval) == 2
    with sqlite3.connect(approval.home / "service.db") as db:
        rows = db.execute(
            "SELECT username, role, outcome FROM audit_log WHERE action = 'approve_promotion'"
        ).fetchall()
    assert rows == [("sup_county", "supervisor", "ok")]
    health = httpx.get(f"{approval.base_url}/api/v1/health", timeout=10).json()
    assert health["model_version"] == 1
