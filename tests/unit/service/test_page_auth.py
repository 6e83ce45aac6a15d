"""The page dependencies: cookie sign-in, CSRF on every form, redirect to sign-in.

A small app built from the same dependencies the pages use (``service.deps``) and the real
error handlers, over a real operational database; the state carries only what these
dependencies read (settings and the session factory).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.testclient import TestClient

from service.accounts import add_user
from service.auth.csrf import ANON_COOKIE
from service.auth.sessions import SESSION_COOKIE, authenticate
from service.db.base import make_engine, make_session_factory, session_scope
from service.db.migrate import upgrade
from service.deps import (
    CsrfCookieMiddleware,
    CsrfDep,
    PagePrincipalDep,
    Role,
    SessionDep,
    StateDep,
    page_csrf_token,
    require_page_role,
    sign_in,
    sign_out,
)
from service.errors import install_error_handlers
from shouhu.settings import Settings

PASSWORD = "a long enough password"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    engine = make_engine(f"sqlite:///{tmp_path / 'service.db'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as session:
        add_user(session, username="cw", password=PASSWORD, role="caseworker", area_code="9901")
    router = APIRouter()

    @router.get("/sign-in", response_class=HTMLResponse)
    def form(request: Request) -> str:
        return f"<form><input name=csrf_token value={page_csrf_token(request)}></form>"

    @router.post("/sign-in", dependencies=[CsrfDep])
    def submit(
        request: Request,
        state: StateDep,
        session: SessionDep,
        username: Annotated[str, Form()],
        password: Annotated[str, Form()],
    ) -> RedirectResponse:
        user = authenticate(session, username, password)
        assert user is not None
        response = RedirectResponse("/home", status_code=303)
        sign_in(response, request, state, session, user)
        return response

    @router.get("/home", response_class=HTMLResponse)
    def home(request: Request, principal: PagePrincipalDep) -> str:
        return f"{principal.username} {page_csrf_token(request)}"

    @router.post("/act", dependencies=[CsrfDep])
    def act(principal: PagePrincipalDep) -> dict[str, str]:
        return {"by": principal.username}

    @router.get("/supervise")
    def supervise(
        principal: Annotated[object, Depends(require_page_role(Role.SUPERVISOR))],
    ) -> dict[str, str]:
        return {"ok": "yes"}

    @router.post("/sign-out", dependencies=[CsrfDep])
    def leave(request: Request, state: StateDep, session: SessionDep) -> RedirectResponse:
        response = RedirectResponse("/sign-in", status_code=303)
        sign_out(response, request, state, session)
        return response

    app = FastAPI()
    app.state.service = SimpleNamespace(settings=Settings(home=tmp_path), sessions=sessions)
    install_error_handlers(app)
    app.include_router(router)
    app.add_middleware(CsrfCookieMiddleware)
    with TestClient(app, follow_redirects=False) as c:
        yield c
    engine.dispose()


def _token(html: str) -> str:
    return html.split("value=", 1)[1].split(">", 1)[0]


def test_sign_in_needs_the_forms_csrf_token_and_sets_a_session_cookie(client: TestClient) -> None:
    page = client.get("/sign-in")
    assert ANON_COOKIE in page.cookies
    token = _token(page.text)
    refused = client.post("/sign-in", data={"username": "cw", "password": PASSWORD})
    assert refused.status_code == 403
    forged = client.post(
        "/sign-in", data={"username": "cw", "password": PASSWORD, "csrf_token": "0" * 64}
    )
    assert forged.status_code == 403
    signed = client.post(
        "/sign-in", data={"username": "cw", "password": PASSWORD, "csrf_token": token}
    )
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"]
    assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    home = client.get("/home")
    assert home.status_code == 200 and home.text.startswith("cw ")
    session_token = home.text.split(" ", 1)[1]
    assert session_token != token  # bound to the session now, not the pre-sign-in cookie
    assert client.post("/act", data={"csrf_token": token}).status_code == 403
    assert client.post("/act", data={"csrf_token": session_token}).json() == {"by": "cw"}
    assert client.post("/act", headers={"X-CSRF-Token": session_token}).status_code == 200
    assert client.get("/supervise").status_code == 403
    out = client.post("/sign-out", data={"csrf_token": session_token})
    assert out.status_code == 303
    client.cookies.clear()
    assert client.get("/home").status_code == 303


def test_pages_redirect_to_sign_in_with_the_page_to_return_to(client: TestClient) -> None:
    response = client.get("/home?tab=2")
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=/home%3Ftab%3D2"
