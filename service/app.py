"""The app factory: ``create_app(settings)`` builds the FastAPI app; its lifespan loads the state.

Routers are included from two lists, by module path, each module exposing ``router``:

- :data:`API_ROUTERS` are mounted under ``/api/v1`` (JSON API, bearer tokens);
- :data:`PAGE_ROUTERS` are mounted at ``/`` (server-rendered pages, session cookies, CSRF).

To add a router, add one line to the right list. Operation ids are ``<tag>-<route name>``
(stable, for schemathesis and clients), so give every route a ``name`` and every router a tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from service.deps import CsrfCookieMiddleware
from service.errors import install_error_handlers
from service.metrics import MetricsMiddleware, ServiceMetrics
from service.state import ServiceState
from shouhu.settings import Settings

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

#: JSON API routers (``/api/v1``). S2 adds the workflow routers here, one line each.
API_ROUTERS: tuple[str, ...] = (
    "service.routers.health",
    "service.routers.auth",
    "service.routers.scores",
    "service.routers.watchlist",
    "service.routers.children",
    "service.routers.explanations",
    "service.routers.model",
    "service.routers.audit",
    # -- workflow (S2): tasks, reviews, overrides, alerts --
    "service.routers.tasks",
    "service.routers.reviews",
    "service.routers.overrides",
    "service.routers.alerts",
)

#: Routers outside ``/api/v1``: metrics, then the pages (S3 adds theirs here, one line each).
ROOT_ROUTERS: tuple[str, ...] = ("service.routers.metrics",)
PAGE_ROUTERS: tuple[str, ...] = (
    # -- pages (S3) --
    "service.pages",
)

#: Static files of the pages, served at /static when the folder exists.
STATIC_DIR = Path(__file__).resolve().parent / "static"


def operation_id(route: APIRoute) -> str:
    """``<first tag>-<route name>``: stable operation ids (e.g. ``scores-score_child``)."""
    tag = str(route.tags[0]) if route.tags else "service"
    return f"{tag}-{route.name}"


def _router(module: str) -> APIRouter:
    router = getattr(importlib.import_module(module), "router", None)
    if not isinstance(router, APIRouter):
        raise TypeError(f"{module} has no APIRouter called `router`")
    return router


async def _refresh_loop(state: ServiceState, seconds: int) -> None:
    """Look for new runs, store changes and a new champion every ``seconds`` (never raises)."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await asyncio.to_thread(state.refresh)
        except Exception:  # a refresh must never stop the service
            logger.exception("refresh failed; serving what is held")


def create_app(settings: Settings | None = None, *, state: ServiceState | None = None) -> FastAPI:
    """Build the service app.

    Parameters
    ----------
    settings : Settings, optional
        The settings (``shouhu.settings.get_settings()`` when omitted).
    state : ServiceState, optional
        An already loaded state (tests share one between apps); loaded in the lifespan from
        ``settings`` otherwise, which refuses to start without a champion.

    Returns
    -------
    FastAPI
        The app; the state is on ``app.state.service`` once the lifespan has started.
    """
    if settings is None:
        from shouhu.settings import get_settings

        settings = state.settings if state is not None else get_settings()
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = state is None
        loaded = ServiceState.load(settings) if state is None else state
        app.state.service = loaded
        task: asyncio.Task[Any] | None = None
        if settings.service.refresh_seconds > 0:
            task = asyncio.create_task(_refresh_loop(loaded, settings.service.refresh_seconds))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if owned:
                loaded.close()

    app = FastAPI(
        title="Shouhu 守护",
        summary="Risk scoring, explanations and human review for left-behind children.",
        version="1",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    if state is not None:
        app.state.service = state
    install_error_handlers(app)
    for module in API_ROUTERS:
        app.include_router(_router(module), prefix=API_PREFIX)
    for module in (*ROOT_ROUTERS, *PAGE_ROUTERS):
        app.include_router(_router(module))
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(CsrfCookieMiddleware, secure=settings.service.secure_cookies)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


__all__ = [
    "API_PREFIX",
    "API_ROUTERS",
    "PAGE_ROUTERS",
    "ROOT_ROUTERS",
    "create_app",
    "operation_id",
]
