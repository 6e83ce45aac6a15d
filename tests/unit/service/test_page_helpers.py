"""Small pieces of the pages: safe redirects, China time, tier labels, ledger codes, the reports
listing (nothing outside the monitoring folder), static URLs and the error page's contents."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.requests import Request

from models.policy import load_policy
from service.pages.common import coded, rule_names, tier_labels
from service.pages.rendering import (
    STATIC_DIR,
    ErrorPages,
    local_time,
    nav_for,
    safe_next,
    static_url,
)
from service.pages.views import list_reports


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/children/c-1?done=review", "/children/c-1?done=review"),
        ("/watchlist", "/watchlist"),
        ("https://example.org/", "/x"),
        ("//example.org/", "/x"),
        ("/\\example.org", "/x"),
        ("javascript:alert(1)", "/x"),
        ("", "/x"),
        (None, "/x"),
    ],
)
def test_only_local_paths_are_followed_after_sign_in(target: str | None, expected: str) -> None:
    assert safe_next(target, "/x") == expected


def test_times_are_shown_in_china_time() -> None:
    assert local_time(datetime(2025, 12, 31, 16, 30, tzinfo=UTC)) == "2026-01-01 00:30"
    assert local_time(datetime(2025, 12, 31, 16, 30, tzinfo=UTC), with_time=False) == "2026-01-01"
    assert local_time(None) == ""


def test_tier_labels_follow_the_policy_and_stay_readable() -> None:
    policy = load_policy()
    zh, en = tier_labels(policy, "zh"), tier_labels(policy, "en")
    assert list(zh) == ["T1", "T2", "T3", "T4"]
    assert zh["T1"].short == "一级" and en["T1"].short == "Level 1"
    assert zh["T1"].colour == policy.tiers[0].colour.hex
    # Dark text on the yellow tier, white on the red one (contrast).
    assert zh["T3"].ink == "#1d2430" and zh["T1"].ink == "#ffffff"
    rules = rule_names(policy, "en")
    assert any(label.startswith("hard:") for label in rules)
    assert any(label.startswith("floor:T2:") for label in rules)


def test_ledger_codes_read_as_words() -> None:
    assert coded("children", "sex", "female", "zh") == "女"
    assert coded("children", "sex", "female", "en") == "female"
    assert coded("children", "sex", None, "en") == "–"
    assert coded("children", "sex", "unheard-of", "en") == "unheard-of"


def test_navigation_depends_on_the_role() -> None:
    class Someone:
        username, area_code, lang = "x", "9901", "zh"

        def __init__(self, role: str) -> None:
            self.role = role

    assert [i.key for i in nav_for(Someone("supervisor"))][:2] == ["watchlist", "queue"]
    assert "queue" not in [i.key for i in nav_for(Someone("caseworker"))]
    # Administrators read no child data, analysts no casework: no tab leads to a refusal.
    assert [i.key for i in nav_for(Someone("admin"))] == ["model", "audit", "reports"]
    assert [i.key for i in nav_for(Someone("analyst"))] == [
        "watchlist",
        "rates",
        "model",
        "reports",
    ]
    supervisor = [i.key for i in nav_for(Someone("supervisor"))]
    assert "rates" in supervisor and "audit" in supervisor
    assert nav_for(None) == []


def test_reports_listing_stays_inside_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "monitoring"
    assert list_reports(folder) == []
    (folder / "2025-12").mkdir(parents=True)
    (folder / "drift-2025-11-30.html").write_text("old")
    (folder / "2025-12" / "drift.json").write_text("{}")
    (folder / "notes.txt").write_text("not a report")
    (folder / "reevaluation" / "2025Q3").mkdir(parents=True)
    (folder / "reevaluation" / "2025Q3" / "report.html").write_text("a quarter's report")
    os.utime(folder / "reevaluation" / "2025Q3" / "report.html", (1_600_000_000, 1_600_000_000))
    (folder / "a" / "b" / "c").mkdir(parents=True)
    (folder / "a" / "b" / "c" / "deep.html").write_text("too deep")
    outside = tmp_path / "secret.html"
    outside.write_text("outside")
    (folder / "link.html").symlink_to(outside)
    os.utime(folder / "drift-2025-11-30.html", (1_700_000_000, 1_700_000_000))
    listed = list_reports(folder)
    assert [r.path for r in listed] == [
        "2025-12/drift.json",
        "drift-2025-11-30.html",
        "reevaluation/2025Q3/report.html",
    ]
    assert listed[0].kind == "json" and listed[1].modified.tzinfo is UTC


def test_static_urls_carry_a_content_version() -> None:
    url = static_url("shouhu.css")
    assert url.startswith("/static/shouhu.css?v=") and len(url) > len("/static/shouhu.css?v=")
    assert (STATIC_DIR / "htmx.min.js").stat().st_size > 10_000
    with pytest.raises(KeyError):
        static_url("missing.js")


def _request(path: str, cookie: str = "") -> Request:
    headers = [(b"cookie", cookie.encode())] if cookie else []
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": headers,
        "app": type("App", (), {"state": type("State", (), {})()})(),
    }
    return Request(scope)


def test_error_pages_name_no_child_and_speak_the_visitors_language() -> None:
    pages = ErrorPages()
    request = _request("/children/c-1234abcd5678ef90")
    response = pages.TemplateResponse(
        request, "error.html", {"status": 404, "message": "child c-1234abcd5678ef90 not found"}
    )
    body = bytes(response.body).decode()
    assert response.status_code == 404
    assert "c-1234abcd5678ef90" not in body
    assert "未找到" in body and "/sign-in" in body
    english = pages.TemplateResponse(
        _request("/x", "shouhu_lang=en; shouhu_session=abc"), "error.html", {"status": 503}
    )
    text = bytes(english.body).decode()
    assert english.status_code == 503 and "Busy" in text and "/watchlist" in text


@pytest.mark.parametrize(
    ("awaiting", "hard_rule_t1", "shown"),
    [(True, False, True), (True, True, False), (False, False, False)],
)
def test_the_visit_page_offers_a_caseworker_to_confirm_an_ordinary_fall_only(
    awaiting: bool, hard_rule_t1: bool, shown: bool
) -> None:
    from models.policy import Tier
    from service.i18n import catalogue
    from service.pages.rendering import environment
    from service.workflow.context import ChildContext

    context = ChildContext(
        child_id="c1",
        village_code="990102003001",
        township_code="990102003",
        tier=Tier.T1 if hard_rule_t1 else Tier.T3,
        hard_rule_t1=hard_rule_t1,
        awaiting_confirmation=awaiting,
    )
    html = (
        environment()
        .get_template("partials/fall_confirmation.html")
        .render(
            context=context,
            child_id="c1",
            csrf="token",
            t=lambda key, **params: catalogue().text("en", key, **params),
        )
    )
    assert ('data-testid="fall-confirmation-form"' in html) is shown
    if shown:
        assert 'action="/children/c1/close"' in html
        assert 'name="csrf_token" value="token"' in html
        assert catalogue().text("en", "review.fall_confirm") in html
