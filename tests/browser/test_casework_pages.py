"""A caseworker's and a supervisor's day in real Chromium: sign in, triage the watch list, open a
child, record a visit with a proposed tier, override as supervisor, and find that a caseworker
of another township cannot open the child. Screenshots of the main pages at phone and desktop
width are saved (see ``conftest.SCREENSHOT_DIR``).

The tests run in file order and build on each other (the proposal recorded by the caseworker
is what the supervisor decides), as a person's day would.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Served, shoot, sign_in

pytestmark = pytest.mark.slow

#: Shared between the tests of this module: the child the caseworker reviewed.
FOUND: dict[str, str] = {}


def test_sign_in_refuses_a_wrong_password_and_keeps_pages_behind_it(
    phone: Any, served: Served, screenshots: Path
) -> None:
    page = phone
    page.goto(f"{served.base_url}/watchlist")
    assert "/sign-in" in page.url  # not signed in: sent to the sign-in page, way back kept
    assert "next=/watchlist" in page.url
    page.fill("#username", "cw_a")
    page.fill("#password", "not-the-password")
    page.click("button[type=submit]")
    assert page.get_by_test_id("signin-failed").is_visible()
    shoot(page, screenshots, "sign-in")
    page.fill("#password", served.accounts["cw_a"]["password"])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/watchlist$"))
    assert page.locator("nav.nav a.current").inner_text().startswith("关注名单")


def test_caseworker_triages_the_watch_list(phone: Any, served: Served, screenshots: Path) -> None:
    page = phone
    sign_in(page, served, "cw_a")
    rows = page.get_by_test_id("watch-row")
    assert rows.count() > 0
    tiers = [rows.nth(i).get_attribute("data-tier") for i in range(rows.count())]
    assert tiers == sorted(tiers), "the list is ranked by tier first"
    assert tiers[0] == "T1"
    shoot(page, screenshots, "watchlist")

    # Filtering swaps the rows in place (htmx) and keeps the filter in the address.
    with page.expect_response(lambda r: "/watchlist?" in r.url and r.status == 200):
        page.select_option("#f-tier", "T3")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=watch-row]')]"
        ".every(r => r.dataset.tier === 'T3')"
    )
    assert "tier=T3" in page.url
    rows = page.get_by_test_id("watch-row")
    assert rows.count() > 0
    FOUND["child"] = str(rows.first.get_attribute("data-child"))

    # A domain filter narrows further; clearing the tier brings T1 children back first.
    with page.expect_response(lambda r: "domain=guardianship" in r.url):
        page.select_option("#f-domain", "guardianship")
    with page.expect_response(lambda r: "/watchlist?" in r.url and "tier=T3" not in r.url):
        page.select_option("#f-tier", "")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=watch-row]')?.dataset.tier === 'T1'"
    )


def test_caseworker_opens_a_child_and_records_a_visit_with_a_proposal(
    phone: Any, served: Served, screenshots: Path
) -> None:
    page = phone
    child = FOUND["child"]
    sign_in(page, served, "cw_a")
    page.goto(f"{served.base_url}/watchlist?tier=T3")
    page.locator(f"[data-child='{child}'] a").click()
    page.wait_for_url(re.compile(rf".*/children/{child}$"))
    explanation = page.get_by_test_id("explanation")
    assert explanation.is_visible()
    # Plain sentences grouped by the policy's four domains, with the records behind them.
    for domain in ("health", "study_life", "guardianship", "safety"):
        assert page.get_by_test_id(f"domain-{domain}").count() == 1
    assert page.get_by_test_id("evidence").count() > 0
    waterfall = page.get_by_test_id("waterfall")
    waterfall.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=waterfall]');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    assert page.get_by_test_id("child-tier").get_attribute("data-tier") == "T3"
    shoot(page, screenshots, "child")

    page.get_by_test_id("open-review").click()
    page.wait_for_url(re.compile(rf".*/children/{child}/review$"))
    page.select_option("#activity", "home_visit")
    page.select_option("#outcome", "concerns")
    page.fill("#notes", "祖母住院,孩子独自照顾弟弟")
    # A proposal without a reason is refused in place (htmx swaps the form with the errors).
    page.select_option("#proposed_tier", "T2")
    page.get_by_test_id("review-submit").click()
    expect(page.get_by_test_id("form-errors")).to_be_visible()
    assert page.locator("#notes").input_value() == "祖母住院,孩子独自照顾弟弟"
    shoot(page, screenshots, "review-form")
    page.select_option("#reason_code", "visit_found_higher_risk")
    page.fill("#reason_text", "监护人住院,暂无成年人照料")
    page.get_by_test_id("review-submit").click()
    page.wait_for_url(re.compile(rf".*/children/{child}\?done=review$"))
    first = page.get_by_test_id("review-entry").first
    assert "建议等级" in first.inner_text()
    assert "入户走访" in first.inner_text()


def test_supervisor_overrides_from_the_queue(phone: Any, served: Served, screenshots: Path) -> None:
    page = phone
    child = FOUND["child"]
    sign_in(page, served, "sup")
    page.goto(f"{served.base_url}/queue")
    proposal = page.locator(f"[data-testid=queue-proposal][data-child='{child}']")
    assert proposal.count() == 1
    shoot(page, screenshots, "queue")
    proposal.locator("a").click()
    page.wait_for_url(re.compile(rf".*/children/{child}/decide\?proposal=\d+$"))
    assert page.get_by_test_id("proposal").count() == 1
    # Override to T1 (more severe than proposed) with a written reason.
    page.select_option("#tier", "T1")
    page.get_by_test_id("override-submit").click()
    expect(page.get_by_test_id("form-errors")).to_be_visible()  # no reason: nothing recorded
    page.select_option("#reason_code", "professional_judgement")
    page.fill("#reason_text", "走访发现无人照料,按一级处置")
    shoot(page, screenshots, "decision")
    page.get_by_test_id("override-submit").click()
    page.wait_for_url(re.compile(rf".*/children/{child}\?done=decision$"))
    assert page.get_by_test_id("child-tier").get_attribute("data-tier") == "T1"
    assert page.get_by_test_id("decided-tier").is_visible()
    assert "调整等级" in page.get_by_test_id("review-entry").first.inner_text()
    # The answered proposal has left the queue.
    page.goto(f"{served.base_url}/queue")
    assert page.locator(f"[data-testid=queue-proposal][data-child='{child}']").count() == 0


def test_a_floor_cannot_be_undercut_from_the_decision_form(phone: Any, served: Served) -> None:
    page = phone
    sign_in(page, served, "sup")
    page.goto(f"{served.base_url}/watchlist?tier=T1")
    first = page.get_by_test_id("watch-row").first
    child = first.get_attribute("data-child")
    page.goto(f"{served.base_url}/children/{child}/decide")
    # A T1 child whose rules force T1 offers no lower tier.
    disabled = page.locator("#tier option[disabled]")
    assert disabled.count() >= 1
    assert page.locator("#tier option[value=T4]").is_disabled()


def test_caseworker_of_another_township_gets_not_found(
    phone: Any, served: Served, screenshots: Path
) -> None:
    page = phone
    child = FOUND["child"]
    sign_in(page, served, "cw_b")
    response = page.goto(f"{served.base_url}/children/{child}")
    assert response is not None and response.status == 404
    assert page.get_by_test_id("error-page").is_visible()
    assert child not in page.content()  # not even the pseudonymous id is echoed
    shoot(page, screenshots, "not-found")
    unknown = page.goto(f"{served.base_url}/children/c-0000000000000000")
    assert unknown is not None and unknown.status == 404
    assert page.get_by_test_id("error-page").is_visible()  # the same page as for an outsider
    page.goto(f"{served.base_url}/watchlist")
    assert page.locator(f"[data-child='{child}']").count() == 0
    # Both reads were audited, the refused one as "not found".
    with sqlite3.connect(served.home / "service.db") as db:
        outcomes = dict(
            db.execute(
                "SELECT username, outcome FROM audit_log WHERE child_id = ? AND action = ?",
                (child, "page_child"),
            ).fetchall()
        )
    assert outcomes == {"cw_a": "ok", "sup": "ok", "cw_b": "not_found"}


def test_a_form_without_its_csrf_token_is_refused(phone: Any, served: Served) -> None:
    page = phone
    child = FOUND["child"]
    sign_in(page, served, "cw_a")
    # Same cookies as the signed-in page, but no token: what a cross-site form would send.
    response = page.request.post(
        f"{served.base_url}/children/{child}/review",
        form={"activity": "home_visit", "outcome": "safe"},
        max_redirects=0,
    )
    assert response.status == 403
    page.goto(f"{served.base_url}/children/{child}")
    assert "见到儿童,情况安全" not in page.get_by_test_id("reviews").inner_text()


def test_alerts_model_reports_and_the_english_switch(
    phone: Any, served: Served, screenshots: Path
) -> None:
    page = phone
    folder = served.home / "monitoring"
    folder.mkdir(exist_ok=True)
    (folder / "drift-2025-12-31.html").write_text("<html><body>drift report</body></html>")
    (folder / "drift-2025-12-31.json").write_text('{"drift": false}')
    sign_in(page, served, "cw_a")
    page.goto(f"{served.base_url}/alerts")
    assert page.get_by_test_id("alert").count() > 0
    shoot(page, screenshots, "alerts")
    page.goto(f"{served.base_url}/model")
    assert "shouhu-risk" in page.get_by_test_id("model-facts").inner_text()
    shoot(page, screenshots, "model")
    page.goto(f"{served.base_url}/reports")
    page.get_by_test_id("latest-drift").locator("a").click()
    assert "drift report" in page.content()
    page.goto(f"{served.base_url}/reports")
    shoot(page, screenshots, "reports")
    outside = page.goto(f"{served.base_url}/reports/..%2F..%2Fservice.db")
    assert outside is not None and outside.status == 404

    page.goto(f"{served.base_url}/reports")
    page.get_by_test_id("lang-switch").click()
    page.wait_for_url(re.compile(r".*/reports$"))
    assert page.locator("nav.nav a.current").inner_text() == "Reports"
    page.goto(f"{served.base_url}/watchlist")
    assert page.locator("h1").inner_text() == "Watch list"
    shoot(page, screenshots, "watchlist-en")
