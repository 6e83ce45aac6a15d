"""Rendering the pages: one Jinja2 environment, the page language, and what every page shows.

Every page is rendered by :func:`render` with the signed-in principal (or none on the sign-in
and error pages), the page language and the CSRF token of the session, so the base template
can show the navigation for the principal's role, the language switch and the sign-out form,
and put the token in an ``X-CSRF-Token`` header on every htmx request.

The language of a page is, in order: the ``shouhu_lang`` cookie the switch sets, the user's
own language, the service's default (Chinese).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from service.i18n import LANG_NAMES, Lang, as_lang, catalogue

#: Templates and static files ship inside the package.
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
#: Cookie set by the language switch (not a secret; readable by scripts is fine).
LANG_COOKIE = "shouhu_lang"
#: China has one time zone and no daylight saving: times are shown in UTC+8.
CHINA = timezone(timedelta(hours=8), "UTC+8")


class Viewer(Protocol):
    """What the pages read of the signed-in principal (``service.deps.Principal``)."""

    @property
    def username(self) -> str: ...
    @property
    def role(self) -> Any: ...
    @property
    def area_code(self) -> str: ...
    @property
    def lang(self) -> str: ...


@dataclass(frozen=True)
class NavItem:
    """One tab of the navigation."""

    key: str
    href: str
    badge: int | None = None


#: The tabs each role sees, in order. The server checks roles on every route; hiding a tab only
#: spares people links that would answer "not permitted".
NAV_BY_ROLE: dict[str, tuple[str, ...]] = {
    "caseworker": ("watchlist", "alerts", "model", "reports"),
    "supervisor": ("watchlist", "queue", "alerts", "rates", "audit", "model", "reports"),
    "analyst": ("watchlist", "rates", "model", "reports"),
    "admin": ("model", "audit", "reports"),
}
_NAV_HREF = {
    "watchlist": "/watchlist",
    "queue": "/queue",
    "alerts": "/alerts",
    "rates": "/override-rates",
    "audit": "/audit",
    "model": "/model",
    "reports": "/reports",
}


def role_name(role: Any) -> str:
    """The role as its plain string (``Role`` enums and strings alike)."""
    return str(getattr(role, "value", role))


def nav_for(principal: Viewer | None, badges: Mapping[str, int] | None = None) -> list[NavItem]:
    """The navigation tabs of ``principal``'s role, with optional counts (pending, new)."""
    if principal is None:
        return []
    counts = badges or {}
    return [
        NavItem(key, _NAV_HREF[key], counts.get(key) or None)
        for key in NAV_BY_ROLE.get(role_name(principal.role), ("watchlist",))
    ]


def page_lang(request: Request, principal: Viewer | None, default: str = "zh") -> Lang:
    """The language of the page: the switch's cookie, the user's own, the service default."""
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie is not None:
        return as_lang(cookie, as_lang(default))
    if principal is not None:
        return as_lang(principal.lang, as_lang(default))
    return as_lang(default)


def safe_next(target: str | None, fallback: str = "/watchlist") -> str:
    """``target`` if it is a path on this site, else ``fallback`` (no open redirects).

    Examples
    --------
    >>> safe_next("/children/c1?x=1"), safe_next("https://evil.example/"), safe_next("//evil")
    ('/children/c1?x=1', '/watchlist', '/watchlist')
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return fallback
    return target


def here(request: Request) -> str:
    """The path and query of the request (for the language switch's way back)."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def local_time(value: datetime | None, with_time: bool = True) -> str:
    """A UTC timestamp as China time (``2025-12-31 09:30``); empty for ``None``."""
    if value is None:
        return ""
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    shown = moment.astimezone(CHINA)
    return shown.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def _format_date(value: date | datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return local_time(value, with_time=False)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10]


def _percent(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{100.0 * float(value):.{digits}f}%"


@lru_cache(maxsize=1)
def _static_versions() -> dict[str, str]:
    # A short content hash in each static URL lets browsers cache the files for good and still
    # fetch a new version after an upgrade.
    out: dict[str, str] = {}
    for path in STATIC_DIR.iterdir():
        if path.is_file():
            out[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    return out


def static_url(name: str) -> str:
    """URL of a static file with its content version (``/static/shouhu.css?v=…``)."""
    version = _static_versions().get(name)
    if version is None:
        raise KeyError(f"no static file {name!r}")
    return f"/static/{name}?v={version}"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one Jinja2 environment of the pages (autoescaped; undefined names fail loudly)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(("html",), default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static_url"] = static_url
    env.filters["local_time"] = local_time
    env.filters["day"] = _format_date
    env.filters["percent"] = _percent
    return env


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    lang: Lang,
    principal: Viewer | None = None,
    csrf: str = "",
    section: str = "",
    area_name: str | None = None,
    badges: Mapping[str, int] | None = None,
    notices: list[dict[str, str]] | None = None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render ``template`` into an HTML response.

    Parameters
    ----------
    request : Request
        The request (its path is the language switch's way back).
    template : str
        Template file under ``service/templates``.
    context : mapping
        The page's own values.
    lang : {"zh", "en"}
        Page language; the template's ``t(key, **params)`` speaks it.
    principal : Viewer, optional
        The signed-in user (navigation, name in the header, sign-out form).
    csrf : str, optional
        The CSRF token of the session, put in forms and in htmx's request headers.
    section : str, optional
        Navigation tab to mark as current.
    area_name : str, optional
        Name of the user's area, shown beside their name.
    badges : mapping, optional
        Counts shown on navigation tabs.
    notices : list of dict, optional
        ``{"kind": "ok"|"error", "text": …}`` messages above the content.
    status_code : int, default=200
        HTTP status.
    headers : mapping, optional
        Extra response headers.

    Returns
    -------
    HTMLResponse
        The page, marked not to be cached (it holds child data).
    """
    words = catalogue()
    other: Lang = "en" if lang == "zh" else "zh"

    def t(key: str, **params: Any) -> str:
        return words.text(lang, key, **params)

    values: dict[str, Any] = {
        "request": request,
        "t": t,
        "lang": lang,
        "other_lang": other,
        "other_lang_name": LANG_NAMES[other],
        "principal": principal,
        "csrf": csrf,
        "section": section,
        "area_name": area_name,
        "nav": nav_for(principal, badges),
        "notices": notices or [],
        "here": here(request),
    }
    values.update(context)
    body = environment().get_template(template).render(values)
    response = HTMLResponse(body, status_code=status_code, headers=dict(headers or {}))
    # Child data must not linger in shared caches or the back-forward cache of a shared phone.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Language"] = "zh-CN" if lang == "zh" else "en"
    return response


#: Which message an error page shows, by HTTP status (the error's own text is never shown: it
#: may name a child's pseudonymous id, and people need to know what to do, not what failed).
_ERROR_KINDS: dict[int, str] = {
    400: "invalid",
    403: "forbidden",
    404: "not_found",
    409: "invalid",
    422: "invalid",
    503: "busy",
}


def error_kind(status: int) -> str:
    """The error page's message key for an HTTP status (``error.title_<kind>``).

    Examples
    --------
    >>> error_kind(404), error_kind(503), error_kind(500)
    ('not_found', 'busy', 'internal')
    """
    return _ERROR_KINDS.get(status, "internal" if status >= 500 else "invalid")


class ErrorPages:
    """The renderer ``service.errors`` calls for a page error (``app.state.templates``).

    It has the one method the error handler uses, ``TemplateResponse``, and renders
    ``error.html`` in the visitor's language without touching the database (the error may be
    that the database is unavailable).
    """

    def TemplateResponse(  # noqa: N802 - the name Starlette's Jinja2Templates gives it
        self,
        request: Request,
        name: str,
        context: Mapping[str, Any],
        status_code: int = 500,
    ) -> HTMLResponse:
        """Render the error page for ``status_code`` (``context["message"]`` is not shown)."""
        from service.auth.sessions import SESSION_COOKIE

        settings = getattr(request.app.state, "settings", None)
        default = "zh" if settings is None else settings.service.default_lang
        status = int(context.get("status", status_code))
        return render(
            request,
            "error.html",
            {
                "status": status,
                "kind": error_kind(status),
                "signed_in": bool(request.cookies.get(SESSION_COOKIE)),
                # The language switch must not echo the requested path (it may hold an id).
                "here": "/",
            },
            lang=page_lang(request, None, default),
            status_code=status,
        )


__all__ = [
    "CHINA",
    "LANG_COOKIE",
    "NAV_BY_ROLE",
    "STATIC_DIR",
    "TEMPLATE_DIR",
    "ErrorPages",
    "NavItem",
    "Viewer",
    "environment",
    "error_kind",
    "here",
    "local_time",
    "nav_for",
    "page_lang",
    "render",
    "role_name",
    "safe_next",
    "static_url",
]
