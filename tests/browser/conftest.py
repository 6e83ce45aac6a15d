"""Browser tests: the real service on 127.0.0.1, driven by Debian's Chromium through Playwright.

One module-scoped server serves a copy of the shared trained home (``tests/_trained_model``):
the copy's model is promoted, one scoring run is stored, the workflow opens its tasks and
alerts, and accounts like the demo's are created through ``service.accounts``. Uvicorn runs in
a thread on a socket bound to a free port of 127.0.0.1 and is stopped after the module, with
bounded waits both ways.

Playwright drives ``/usr/bin/chromium`` (``make browsers`` installs it; Playwright never
downloads a browser of its own here). Without it the tests are skipped, except under CI, where
a missing browser is a failure. Screenshots go to ``tests/artifacts/screenshots`` (git-ignored;
``SHOUHU_SCREENSHOTS`` chooses another folder).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests._trained_model import KEY, TRAIN, prepared

CHROMIUM = Path(os.environ.get("SHOUHU_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
#: The scoring date of the served run: the last month of the prepared population.
AS_OF = date(2025, 12, 31)
PASSWORD = "browser-test-password"
SCREENSHOT_DIR = Path(
    os.environ.get(
        "SHOUHU_SCREENSHOTS", Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
    )
)
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


@dataclass(frozen=True)
class Served:
    """The running service and who may sign in to it."""

    base_url: str
    home: Path
    accounts: dict[str, dict[str, str]]
    areas: dict[str, str]


def _promote_for_serving(settings: Any) -> None:
    """Promote the shared model in this copy of the home.

    The 3,000-child model is too small to clear the champion gate and the policy's precision
    minimum (both are tested in ``tests/unit/models``); the pages need *a* champion to serve,
    so this copy promotes it against a policy whose minimum is zero. The policy served is the
    default one.
    """
    from models.policy import load_policy
    from service.state import registry_for

    registry = registry_for(settings)
    if registry.champion_info() is not None:
        return
    versions = registry.client.search_model_versions(f"name='{settings.registry.model_name}'")
    policy = load_policy(settings.policy.file)
    lenient = policy.model_copy(
        update={"promotion": policy.promotion.model_copy(update={"min_precision_at_capacity": 0.0})}
    )
    newest = max(int(v.version) for v in versions)
    registry.promote(
        newest, approver="browser-tests", reason="serve the test model", policy=lenient
    )


def _score_and_process(settings: Any) -> None:
    """One scoring run, then the workflow's tasks and alerts for it (as ``shouhu demo`` does)."""
    from models.cli import score_from_settings
    from models.policy import load_policy
    from service.db.base import make_engine, make_session_factory, session_scope
    from service.db.migrate import upgrade
    from service.workflow.alerts import process_run
    from service.workflow.runs import load_runs

    score_from_settings(settings, AS_OF)
    engine = make_engine(settings.service_database_url)
    try:
        upgrade(engine)
        current, previous = load_runs(settings.scores_db_path)
        with session_scope(make_session_factory(engine)) as session:
            process_run(session, load_policy(settings.policy.file), current, previous)
    finally:
        engine.dispose()


def _accounts(settings: Any) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Demo-like accounts: caseworkers of two townships of one county, its supervisor, an
    analyst and an administrator (``service.accounts``)."""
    from service.accounts import add_user, demo_areas
    from service.db.base import make_engine, make_session_factory, session_scope

    areas = demo_areas(settings.store_path)
    wanted = {
        "cw_a": ("caseworker", areas["township_a"]),
        "cw_b": ("caseworker", areas["township_b"]),
        "sup": ("supervisor", areas["county"]),
        "analyst": ("analyst", areas["county"]),
        "admin": ("admin", areas["city"]),
    }
    engine = make_engine(settings.service_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            for username, (role, area) in wanted.items():
                add_user(session, username=username, password=PASSWORD, role=role, area_code=area)
    finally:
        engine.dispose()
    accounts = {
        name: {"username": name, "password": PASSWORD, "role": role, "area_code": area}
        for name, (role, area) in wanted.items()
    }
    return accounts, areas


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The service on a free port of 127.0.0.1 over a scored copy of the shared home."""
    import uvicorn

    from service.app import create_app
    from shouhu.settings import Settings

    shared = prepared(tmp_path_factory)
    home = tmp_path_factory.mktemp("browser") / "home"
    shutil.copytree(shared.home, home)
    settings = Settings(
        home=home,
        pseudonym_key=KEY,
        train=TRAIN,
        service={"refresh_seconds": 0},
    )
    _promote_for_serving(settings)
    _score_and_process(settings)
    accounts, areas = _accounts(settings)

    sock = _free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()
            raise RuntimeError("the service did not start within 120 s")
        time.sleep(0.1)
    try:
        yield Served(f"http://127.0.0.1:{port}", home, accounts, areas)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (never a browser Playwright downloads)."""
    if not CHROMIUM.is_file():
        message = f"{CHROMIUM} is missing: run `make browsers` (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """The folder screenshots are saved in (printed once so a person can find them)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    print(f"\nbrowser screenshots: {SCREENSHOT_DIR}")  # noqa: T201 - where to look
    return SCREENSHOT_DIR


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    """A fresh browser context at phone size (no cookies from another test)."""
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def sign_in(page: Any, served: Served, who: str, then: str | None = None) -> None:
    """Sign in as the account ``who`` and wait for the page it lands on.

    Without ``then`` the user lands where the service sends them (the watch list, or the
    model page for roles without one); with it, on ``then`` (the form's way back).
    """
    account = served.accounts[who]
    page.goto(f"{served.base_url}/sign-in" + ("" if then is None else f"?next={then}"))
    page.fill("#username", account["username"])
    page.fill("#password", account["password"])
    page.click("button[type=submit]")
    landing = r".*/(watchlist|model)(\?.*)?$" if then is None else rf".*{re.escape(then)}$"
    page.wait_for_url(re.compile(landing), timeout=15_000)


def shoot(page: Any, folder: Path, name: str) -> None:
    """Save the current page at phone and desktop width (full length)."""
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=str(folder / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(PHONE)
