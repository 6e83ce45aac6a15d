"""One exception handler per surface: JSON for ``/api``, an HTML page (or a redirect) for pages.

Domain code raises ``shouhu.errors`` classes and never ``HTTPException``. Bodies carry the
error's own message, which names objects by pseudonymous id only; an unexpected error answers
a fixed text, so no stack trace or record value can leak to a client. For pages, a 401 becomes
a redirect to the sign-in page; other errors render ``error.html`` from ``app.state.templates``
(a ``Jinja2Templates`` the pages install) with ``status`` and ``message``, or a minimal
built-in page until the pages exist.
"""

from __future__ import annotations

import html
import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from shouhu.errors import ShouhuError

logger = logging.getLogger(__name__)

#: Paths answered in JSON; everything else is a page.
API_PREFIXES = ("/api/", "/metrics")


class ErrorBody(BaseModel):
    """The JSON body of every error the API answers (4xx and 5xx, except 422)."""

    detail: str
    error: str


def is_api(request: Request) -> bool:
    """Whether the request is for the JSON API (else a page)."""
    return request.url.path.startswith(API_PREFIXES)


def _json(status: int, detail: str, error: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"detail": detail, "error": error}, status_code=status, headers=headers)


def _page(request: Request, status: int, message: str) -> Response:
    if status == 401:
        from service.deps import SIGN_IN_PATH

        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{SIGN_IN_PATH}?next={quote(target, safe='/')}", status_code=303)
    templates: Any = getattr(request.app.state, "templates", None)
    if templates is not None:
        try:
            return templates.TemplateResponse(  # type: ignore[no-any-return]
                request, "error.html", {"status": status, "message": message}, status_code=status
            )
        except Exception:  # a missing or broken template must not hide the original error
            logger.exception("error page template failed")
    body = (
        "<!doctype html><html lang='zh'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{status}</title></head><body><h1>{status}</h1>"
        f"<p>{html.escape(message)}</p><p><a href='/'>返回首页 · Home</a></p></body></html>"
    )
    return HTMLResponse(body, status_code=status)


def _respond(
    request: Request, status: int, detail: str, error: str, headers: dict[str, str] | None = None
) -> Response:
    if is_api(request):
        return _json(status, detail, error, headers)
    return _page(request, status, detail)


async def _shouhu_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ShouhuError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    if exc.http_status >= 500:
        logger.warning("%s on %s: %s", type(exc).__name__, request.url.path, exc.message)
    return _respond(request, exc.http_status, exc.message, type(exc).__name__, headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    headers = dict(exc.headers) if exc.headers else None
    return _respond(request, exc.status_code, detail, "HTTPError", headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if is_api(request):
        # FastAPI's own shape (HTTPValidationError), as the OpenAPI schema declares it. Input
        # values are left out: they could be anything a client typed.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e["type"])}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)
    return _page(request, 422, "the form has invalid values")


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Logged with the type and path only: a message could quote record values.
    logger.error("unexpected %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
    return _respond(request, 500, "internal error", "InternalError")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app`` (called once by ``create_app``)."""
    app.add_exception_handler(ShouhuError, _shouhu_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)


__all__ = ["API_PREFIXES", "ErrorBody", "install_error_handlers", "is_api"]
