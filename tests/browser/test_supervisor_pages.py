"""A supervisor's oversight in real Chromium: override rates by reviewer, tier and group (the
same numbers as the API, a high rate highlighted), reached from the review queue, and the
audit log of the area, paged newest first and filtered by child and by user. A caseworker has
neither page. Screenshots at phone and desktop width are saved beside the others
(``conftest.SCREENSHOT_DIR``).

The supervisor's decisions the rates count are made through the JSON API first (five
overrides and one confirmation by ``sup``), so the tests need nothing from another module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from service.workflow.stats import FLAG_MIN_DECISIONS
from tests.browser.conftest import Served, shoot, sign_in

pytestmark = pytest.mark.slow


def _token(served: Served, username: str) -> str:
    """A bearer token for one of the served accounts (issued in the served database)."""
    from sqlalchemy import select

    from service.auth.tokens import issue_token
    from service.db.base import make_engine, make_session_factory, session_scope
    from service.db.identity import User

    engine = make_engine(f"sqlite:///{served.home / 'service.db'}")
    try:
        with session_scope(make_session_factory(engine)) as session:
            user = session.scalars(select(User).where(User.username == username)).one()
            token, _ = issue_token(session, user, days=1, label="browser-tests")
    finally:
        engine.dispose()
    return token


@pytest.fixture(scope="module")
def api(served: Served) -> Iterator[httpx.Client]:
    """The served JSON API as the county's supervisor."""
    headers = {"Authorization": f"Bearer {_token(served, 'sup')}"}
    with httpx.Client(base_url=served.base_url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def decided(api: httpx.Client, served: Served) -> list[str]:
    """Five overrides and one confirmation by ``sup`` on routine-care children of township A."""
    listing = api.get(
        "/api/v1/watchlist",
        params={"tier": "T4", "area": served.areas["township_a"], "limit": 50},
    )
    assert listing.status_code == 200, listing.text
    children = [item["child_id"] for item in listing.json()["items"]][-(FLAG_MIN_DECISIONS + 1) :]
    assert len(children) == FLAG_MIN_DECISIONS + 1
    for child in children[:-1]:
        made = api.post(
            f"/api/v1/children/{child}/overrides",
            json={
                "tier": "T3",
                "reason_code": "new_information",
                "reason_text": "学校反映近两周常缺课,待走访核实",
            },
        )
        assert made.status_code == 201, made.text
    kept = api.post(f"/api/v1/children/{children[-1]}/confirmations", json={})
    assert kept.status_code == 201, kept.text
    return children


def test_supervisor_reads_override_rates_from_the_queue(
    phone: Any, served: Served, screenshots: Path, api: httpx.Client, decided: list[str]
) -> None:
    page = phone
    sign_in(page, served, "sup", "/queue")
    page.get_by_test_id("queue-rates-link").click()
    page.wait_for_url(re.compile(r".*/override-rates$"))
    assert page.locator("nav.nav a.current").inner_text().startswith("改判率")
    mine = page.locator("[data-testid=rate-row][data-group=sup]").first
    expect(mine).to_be_visible()
    assert mine.get_attribute("data-flagged") == "yes"
    expect(mine.get_by_test_id("rate-flagged")).to_be_visible()  # highlighted, with its rate
    shoot(page, screenshots, "override-rates")

    # Every split shows the API's numbers.
    for by in ("tier", "girl", "disability", "township", "reviewer"):
        page.select_option("#r-by", by)
        page.locator("[data-testid=rates-filters] button[type=submit]").click()
        page.wait_for_url(re.compile(rf".*/override-rates\?by={by}.*"))
        shown = sorted(
            (
                row.get_attribute("data-group"),
                int(row.get_attribute("data-decisions")),
                int(row.get_attribute("data-overrides")),
            )
            for row in page.get_by_test_id("rate-row").all()
        )
        rows = api.get("/api/v1/overrides/stats", params={"by": by}).json()["rows"]
        assert shown == sorted((r["group"], r["decisions"], r["overrides"]) for r in rows), by
    page.select_option("#r-by", "tier")
    page.locator("[data-testid=rates-filters] button[type=submit]").click()
    page.wait_for_url(re.compile(r".*by=tier.*"))
    assert page.locator("[data-testid=rate-row][data-group=T4]").count() >= 1
    shoot(page, screenshots, "override-rates-by-tier")

    # English on the switch.
    page.get_by_test_id("lang-switch").click()
    page.wait_for_url(re.compile(r".*/override-rates\?by=tier.*"))
    assert page.locator("h1").inner_text() == "Override rates"


def test_supervisor_pages_through_the_audit_log_and_filters_it(
    phone: Any, served: Served, screenshots: Path, decided: list[str]
) -> None:
    page = phone
    child = decided[0]
    sign_in(page, served, "sup", f"/children/{child}")  # a read of the child's file: audited
    page.goto(f"{served.base_url}/audit")
    entries = page.get_by_test_id("audit-entry")
    expect(entries.first).to_be_visible()
    ids = [int(entries.nth(i).get_attribute("data-id")) for i in range(entries.count())]
    assert ids == sorted(ids, reverse=True), "newest first"
    assert entries.first.get_attribute("data-child") == child
    assert entries.first.get_attribute("data-user") == "sup"
    shoot(page, screenshots, "audit")

    # An entry opens the log of that child only.
    entries.first.locator("a").click()
    page.wait_for_url(re.compile(rf".*/audit\?child_id={child}$"))
    children = {entries.nth(i).get_attribute("data-child") for i in range(entries.count())}
    assert children == {child}
    # The overrides were written through the API: the log has them too.
    actions = page.locator("[data-testid=audit-entry] .c-why").all_inner_texts()
    assert any("create_override" in a for a in actions)
    page.get_by_test_id("audit-clear").click()
    page.wait_for_url(re.compile(r".*/audit$"))

    # By user: the form narrows to one user's entries.
    page.fill("#a-user", "sup")
    page.locator("[data-testid=audit-filters] button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/audit\?.*username=sup.*"))
    users = {entries.nth(i).get_attribute("data-user") for i in range(entries.count())}
    assert users == {"sup"}
    if page.get_by_test_id("audit-older").count():
        page.get_by_test_id("audit-older").click()
        page.wait_for_url(re.compile(r".*before=\d+.*"))
        expect(page.get_by_test_id("audit-newest")).to_be_visible()
    # No identity number anywhere on the page.
    assert not re.search(r"\b\d{17}[\dXx]\b", page.content())


def test_a_caseworker_has_neither_oversight_page(phone: Any, served: Served) -> None:
    page = phone
    sign_in(page, served, "cw_a", "/alerts")
    tabs = page.locator("nav.nav a").all_inner_texts()
    assert not any(t.startswith(("改判率", "审计日志")) for t in tabs)
    for path in ("/override-rates", "/audit"):
        response = page.goto(f"{served.base_url}{path}")
        assert response is not None and response.status == 403
