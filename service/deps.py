"""Typed dependencies every handler (API and pages) uses.

API routes::

    @router.get("/{child_id}", name="get_child_file")
    def get_child_file(child: VisibleChild, state: StateDep, session: SessionDep) -> ...

- :data:`StateDep` — the :class:`~service.state.ServiceState` (policy, champion, snapshot).
- :data:`SessionDep` — a SQLAlchemy session of the operational database, closed after the
  request (handlers commit what they write).
- :data:`PrincipalDep` — the caller, from ``Authorization: Bearer <token>`` (401 otherwise);
  a token verified in the last few seconds is not looked up again
  (``service.auth.tokens.VerifiedTokens``).
- :func:`require_role` — ``Depends(require_role(Role.SUPERVISOR, Role.ADMIN))`` answers 403 to
  other roles; use it in ``dependencies=[...]`` or as ``Annotated[Principal, Depends(...)]``.
- :data:`VisibleChild` — resolves the ``child_id`` path parameter: 404 for an unknown child
  *and* for one outside the caller's area (identical bodies), and one ``audit_log`` row for the
  request either way (action = the route's ``name``). Declare the role guard before it, so a
  role without access gets 403 without touching the child.
- :func:`run_db` — run blocking operational-database work from an ``async`` handler: on the
  event loop for SQLite (sub-millisecond local statements, cheaper than a thread-pool hop),
  in the thread pool for a networked database. The API's hot paths (principal, child check
  and audit, score, watch list, explanation) are ``async`` for this reason; anything that
  reads a DuckDB store or draws a chart stays a plain ``def`` (thread pool).

Pages (S3) use the same state and session, and:

- :data:`PagePrincipalDep` — the caller from the session cookie; without one, the error
  handler redirects to :data:`SIGN_IN_PATH` with ``?next=``.
- :data:`OptionalPagePrincipalDep` — the same, ``None`` when not signed in (the sign-in page).
- :data:`PageVisibleChild` — :data:`VisibleChild` for a page principal.
- :data:`CsrfDep` — ``dependencies=[CsrfDep]`` on every POST page route: the form field
  ``csrf_token`` (or the ``X-CSRF-Token`` header) must match :func:`page_csrf_token`.
- :func:`page_csrf_token` — the token to put in every form (``request.state`` carries the
  anchor cookie the middleware set for a visitor who is not signed in yet).
- :func:`sign_in` / :func:`sign_out` — start or end a page session on a response (sets or
  clears the cookie with the right flags).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import audit
from service.areas import visible
from service.auth.csrf import ANON_COOKIE, CSRF_FIELD, CSRF_HEADER, csrf_token, verify_csrf_token
from service.auth.sessions import (
    SESSION_COOKIE,
    end_web_session,
    resolve_web_session,
    start_web_session,
)
from service.auth.tokens import resolve_token_row
from service.db.identity import User
from service.state import ServiceState
from shouhu.errors import AuthenticationError, NotFoundError, PermissionDeniedError

#: Where pages send a visitor who is not signed in (S3 serves the form there).
SIGN_IN_PATH = "/sign-in"
#: Pseudonymous child ids: ``c-`` and hex digits (``features.pseudonym``); bounded for safety.
CHILD_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"

T = TypeVar("T")


class Role(StrEnum):
    """What a user may do. Child data: caseworkers and supervisors (their area), analysts
    scores and explanations only; admins manage users and read the audit log, not children."""

    CASEWORKER = "caseworker"
    SUPERVISOR = "supervisor"
    ANALYST = "analyst"
    ADMIN = "admin"


Lang = Literal["zh", "en"]


@dataclass(frozen=True)
class Principal:
    """The signed-in caller.

    Attributes
    ----------
    user_id : int
        ``users.id``.
    username : str
        Sign-in name.
    role : Role
        The user's role.
    area_code : str
        The user's area: they see children of this area and below.
    lang : {"zh", "en"}
        Preferred language.
    """

    user_id: int
    username: str
    role: Role
    area_code: str
    lang: Lang = "zh"

    @classmethod
    def of(cls, user: User) -> Principal:
        """The principal of a user row."""
        lang: Lang = "en" if user.lang == "en" else "zh"
        return cls(user.id, user.username, Role(user.role), user.area_code, lang)


@dataclass(frozen=True)
class ChildRef:
    """A child the caller may see: pseudonymous id and home village."""

    child_id: str
    village_code: str


# --------------------------------------------------------------------------------------------
# State and database
# --------------------------------------------------------------------------------------------


async def get_state(request: Request) -> ServiceState:
    """The service state the lifespan loaded (async: no I/O, so no thread-pool hop)."""
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


async def get_session(request: Request) -> Any:
    """One operational-database session per request (closed, never committed, after it).

    Async because opening and closing a session do no I/O (the first query checks out a
    pooled connection, in the thread that runs it); this saves a thread-pool hop per request.
    """
    state: ServiceState = request.app.state.service
    session = state.sessions()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def client_address(request: Request) -> str:
    """The client's address as the server saw it (uvicorn applies trusted proxy headers)."""
    return request.client.host if request.client is not None else ""


def access_of(request: Request) -> audit.Access:
    """Method, path and client address of a request, for the audit log."""
    return audit.Access(request.method, request.url.path, client_address(request))


# --------------------------------------------------------------------------------------------
# API principal (bearer token)
# --------------------------------------------------------------------------------------------

bearer_scheme = HTTPBearer(auto_error=False, description="a token from POST /api/v1/auth/token")


async def run_db(state: Any, function: Callable[..., T], *args: Any) -> T:
    """Run blocking operational-database work from an ``async`` handler.

    Inline on the event loop when the state says the database is SQLite
    (``ServiceState.db_inline``): an audit insert or a token lookup is a local call of a
    fraction of a millisecond, less than the two thread switches of a hop to the pool, and
    one worker serialises Python work on the GIL either way. In the thread pool otherwise (a
    networked database must not stall the loop while it answers).
    """
    if getattr(state, "db_inline", False):
        return function(*args)
    return await run_in_threadpool(function, *args)


async def get_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The API caller from its bearer token.

    A token verified in the last ``service.auth.tokens.VERIFIED_SECONDS`` is trusted without
    a database lookup (revocations in this process apply at once).

    Raises
    ------
    AuthenticationError
        Without a token, or with an unknown, expired or revoked one (401).
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationError("sign in: send Authorization: Bearer <token>")
    token = credentials.credentials
    state = request.app.state.service
    verified = getattr(state, "verified_tokens", None)
    if verified is not None:
        known: Principal | None = verified.get(token)
        if known is not None:
            return known
    found = await run_db(state, resolve_token_row, session, token)
    if found is None:
        raise AuthenticationError("the token is not valid")
    user, expires_at = found
    principal = Principal.of(user)
    if verified is not None:
        verified.put(token, principal, user_id=user.id, expires_at=expires_at)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_role(*roles: Role) -> Any:
    """A dependency that lets only ``roles`` through (403 for the others).

    Parameters
    ----------
    *roles : Role
        Roles allowed.

    Returns
    -------
    callable
        A FastAPI dependency returning the :class:`Principal`.

    Examples
    --------
    >>> SupervisorOnly = Depends(require_role(Role.SUPERVISOR))  # doctest: +SKIP
    """
    allowed = frozenset(roles)

    async def check(principal: PrincipalDep) -> Principal:
        if principal.role not in allowed:
            raise PermissionDeniedError(f"the {principal.role} role may not do this")
        return principal

    check.__name__ = "require_" + "_or_".join(sorted(allowed))
    return check


#: Roles that may read a child's scores and explanations (pseudonymous, their area).
SCORE_READERS = (Role.CASEWORKER, Role.SUPERVISOR, Role.ANALYST)
#: Roles that may open a child's file (casework).
FILE_READERS = (Role.CASEWORKER, Role.SUPERVISOR)


def _check_child(
    request: Request, state: ServiceState, principal: Principal, child_id: str
) -> tuple[str | None, bool, str]:
    """The child's village, whether the caller may see it, and the audit action."""
    village = state.snapshot.villages.get(child_id)
    route = request.scope.get("route")
    action = getattr(route, "name", None) or f"{request.method} {request.url.path}"
    return village, village is not None and visible(principal, village), action


def _audit_child(
    session: Session,
    principal: Principal,
    access: audit.Access,
    action: str,
    child_id: str,
    village: str | None,
    shown: bool,
) -> None:
    audit.record(
        session,
        principal,
        access,
        action=action,
        child_id=child_id,
        area_code=village,
        outcome=audit.OK if shown else audit.NOT_FOUND,
    )


def _visible_or_404(child_id: str, village: str | None, shown: bool) -> ChildRef:
    if not shown or village is None:
        # One message for both: an outsider must not learn that the child exists.
        raise NotFoundError(f"child {child_id} not found")
    return ChildRef(child_id, village)


def _resolve_child(
    request: Request,
    state: ServiceState,
    session: Session,
    principal: Principal,
    child_id: str,
) -> ChildRef:
    village, shown, action = _check_child(request, state, principal, child_id)
    _audit_child(session, principal, access_of(request), action, child_id, village, shown)
    return _visible_or_404(child_id, village, shown)


async def get_visible_child(
    request: Request,
    state: StateDep,
    session: SessionDep,
    principal: PrincipalDep,
    child_id: Annotated[str, Path(pattern=CHILD_ID_PATTERN, description="pseudonymous child id")],
) -> ChildRef:
    """The path's child if the API caller may see it; audited either way (404 otherwise).

    The audit entry is committed before the handler runs (see :func:`run_db`).
    """
    village, shown, action = _check_child(request, state, principal, child_id)
    access = access_of(request)
    await run_db(state, _audit_child, session, principal, access, action, child_id, village, shown)
    return _visible_or_404(child_id, village, shown)


VisibleChild = Annotated[ChildRef, Depends(get_visible_child)]


# --------------------------------------------------------------------------------------------
# Pages: session cookie and CSRF
# --------------------------------------------------------------------------------------------


def get_optional_page_principal(request: Request, session: SessionDep) -> Principal | None:
    """The page caller from the session cookie, or ``None`` when not signed in."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    user = resolve_web_session(session, cookie)
    return None if user is None else Principal.of(user)


OptionalPagePrincipalDep = Annotated[Principal | None, Depends(get_optional_page_principal)]


async def get_page_principal(principal: OptionalPagePrincipalDep) -> Principal:
    """The page caller; not signed in raises 401, which pages turn into a redirect."""
    if principal is None:
        raise AuthenticationError("please sign in")
    return principal


PagePrincipalDep = Annotated[Principal, Depends(get_page_principal)]


def require_page_role(*roles: Role) -> Any:
    """:func:`require_role` for pages (the session-cookie principal)."""
    allowed = frozenset(roles)

    async def check(principal: PagePrincipalDep) -> Principal:
        if principal.role not in allowed:
            raise PermissionDeniedError(f"the {principal.role} role may not do this")
        return principal

    check.__name__ = "require_page_" + "_or_".join(sorted(allowed))
    return check


def get_page_visible_child(
    request: Request,
    state: StateDep,
    session: SessionDep,
    principal: PagePrincipalDep,
    child_id: Annotated[str, Path(pattern=CHILD_ID_PATTERN, description="pseudonymous child id")],
) -> ChildRef:
    """The path's child if the page caller may see it; audited either way (404 otherwise)."""
    return _resolve_child(request, state, session, principal, child_id)


PageVisibleChild = Annotated[ChildRef, Depends(get_page_visible_child)]


def _csrf_anchor(request: Request) -> str:
    session_cookie = request.cookies.get(SESSION_COOKIE)
    if session_cookie:
        return session_cookie
    fresh = getattr(request.state, "csrf_anchor", None)
    return request.cookies.get(ANON_COOKIE) or (fresh if isinstance(fresh, str) else "")


def page_csrf_token(request: Request) -> str:
    """The CSRF token to embed in the page's forms (as field ``csrf_token``).

    Bound to the session cookie once signed in, else to the pre-sign-in cookie that
    :class:`CsrfCookieMiddleware` sets on the first page a visitor opens.
    """
    state: ServiceState = request.app.state.service
    anchor = _csrf_anchor(request)
    return csrf_token(state.settings.service.session_secret.get_secret_value(), anchor)


async def verify_csrf(request: Request) -> None:
    """Refuse an unsafe page request without the right CSRF token (403).

    Reads the ``X-CSRF-Token`` header, else the ``csrf_token`` form field (the form is parsed
    once and cached, so ``Form(...)`` parameters still work).
    """
    if request.method in {"GET", "HEAD", "OPTIONS"}:
        return
    token = request.headers.get(CSRF_HEADER)
    if not token:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    state: ServiceState = request.app.state.service
    secret = state.settings.service.session_secret.get_secret_value()
    if not token or not verify_csrf_token(secret, _csrf_anchor(request), token):
        raise PermissionDeniedError("the form has expired or did not come from this site")


CsrfDep = Depends(verify_csrf)


def _cookie_flags(state: ServiceState) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "lax",
        "secure": state.settings.service.secure_cookies,
        "path": "/",
    }


def sign_in(
    response: Response, request: Request, state: ServiceState, session: Session, user: User
) -> str:
    """Start a page session for ``user``: store it, commit, set the cookie on ``response``.

    Returns
    -------
    str
        The new session's CSRF token (the anchor changed from the pre-sign-in cookie).
    """
    hours = state.settings.service.session_hours
    value = start_web_session(session, user, hours=hours, client=client_address(request))
    session.commit()
    response.set_cookie(SESSION_COOKIE, value, max_age=hours * 3600, **_cookie_flags(state))
    response.delete_cookie(ANON_COOKIE, path="/")
    return csrf_token(state.settings.service.session_secret.get_secret_value(), value)


def sign_out(response: Response, request: Request, state: ServiceState, session: Session) -> None:
    """End the caller's page session (if any) and clear its cookie on ``response``."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        end_web_session(session, cookie)
        session.commit()
    response.delete_cookie(SESSION_COOKIE, path="/")


class CsrfCookieMiddleware:
    """Give a visitor without a session a random pre-sign-in cookie, the sign-in form's anchor.

    Pure ASGI (no per-request overhead on ``/api`` and ``/metrics``, which it skips). The new
    value is put on ``request.state.csrf_anchor`` so the page rendered in the same response
    already carries the matching token.
    """

    def __init__(self, app: ASGIApp, *, secure: bool = False) -> None:
        self.app = app
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if scope["type"] != "http" or path.startswith(("/api/", "/metrics", "/static/")):
            await self.app(scope, receive, send)
            return
        cookies = _cookie_names(scope)
        if SESSION_COOKIE in cookies or ANON_COOKIE in cookies:
            await self.app(scope, receive, send)
            return
        anchor = secrets.token_urlsafe(24)
        scope.setdefault("state", {})["csrf_anchor"] = anchor
        flags = "; HttpOnly; SameSite=Lax; Path=/" + ("; Secure" if self.secure else "")
        header = f"{ANON_COOKIE}={anchor}{flags}".encode("latin-1")

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"set-cookie", header)]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _cookie_names(scope: Scope) -> set[str]:
    names: set[str] = set()
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, _ = part.strip().partition("=")
                if name:
                    names.add(name)
    return names


__all__ = [
    "CHILD_ID_PATTERN",
    "FILE_READERS",
    "SCORE_READERS",
    "SIGN_IN_PATH",
    "ChildRef",
    "CsrfCookieMiddleware",
    "CsrfDep",
    "Lang",
    "OptionalPagePrincipalDep",
    "PagePrincipalDep",
    "PageVisibleChild",
    "Principal",
    "PrincipalDep",
    "Role",
    "SessionDep",
    "StateDep",
    "VisibleChild",
    "access_of",
    "bearer_scheme",
    "client_address",
    "get_principal",
    "get_session",
    "get_state",
    "page_csrf_token",
    "require_page_role",
    "require_role",
    "run_db",
    "sign_in",
    "sign_out",
    "verify_csrf",
]
