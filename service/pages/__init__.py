"""The server-rendered pages: sign-in, watch list, child file, review, queue, alerts, model.

``router`` is what ``service.app`` includes (``PAGE_ROUTERS``). Its lifespan hands the error
handlers of ``service.errors`` a renderer for ``error.html`` (``app.state.templates``), so an
error on a page is a page in the visitor's language that names no child, name or identity
number.

The pages use the same dependencies as the JSON API (``service.deps``: the page principal from
the session cookie, the area check and audit entry of :data:`~service.deps.PageVisibleChild`,
the CSRF check) and call the same repository functions and route handlers, so a page shows
exactly what the API answers and audits it the same way. See ``docs/service.md``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from service.pages.casework import router as _casework
from service.pages.rendering import ErrorPages
from service.pages.views import router as _views


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # service.errors renders page errors with app.state.templates when it is there.
    app.state.templates = ErrorPages()
    yield


router = APIRouter(lifespan=_lifespan)
router.include_router(_views)
router.include_router(_casework)

__all__ = ["router"]
