"""Prometheus metrics of one app: requests, latency, scores, and what the service holds.

Each app has its own ``CollectorRegistry`` (tests build many apps in one process). Requests are
labelled by route name (``score_child``, ``get_watchlist``; the route's operation without its
tag), never by concrete path, so a child id never becomes a label value.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from service.state import ServiceState

_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServiceMetrics:
    """The metrics of one app, registered in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "shouhu_http_requests",
            "HTTP requests answered, by route name, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "shouhu_http_request_seconds",
            "Time to answer, by route name",
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.scores = Counter(
            "shouhu_children_scored",
            "Children scored on request",
            registry=self.registry,
        )
        self.model = Gauge(
            "shouhu_model_info",
            "The champion and policy in use (value 1)",
            ["model_name", "model_version", "policy_version"],
            registry=self.registry,
        )
        self.children = Gauge(
            "shouhu_snapshot_children",
            "Registered children whose features the service holds",
            registry=self.registry,
        )
        self.snapshot_age = Gauge(
            "shouhu_snapshot_age_seconds",
            "Seconds since the snapshot of the stores was built",
            registry=self.registry,
        )
        self.registry_up = Gauge(
            "shouhu_registry_up",
            "1 when the model registry answered at the last check",
            registry=self.registry,
        )

    def observe_state(self, state: ServiceState) -> None:
        """Update the gauges that describe what the service holds (before each scrape)."""
        self.model.clear()
        self.model.labels(state.model_name, str(state.model_version), state.policy_version).set(1)
        self.children.set(len(state.snapshot.frame))
        self.snapshot_age.set(max(0.0, time.time() - state.snapshot.built_at))
        self.registry_up.set(1 if state.registry_status.reachable else 0)


class MetricsMiddleware:
    """Count and time every HTTP request by route name (pure ASGI, little overhead)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            name = getattr(scope.get("route"), "name", None) or "unmatched"
            self.metrics.requests.labels(name, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - started)


__all__ = ["MetricsMiddleware", "ServiceMetrics"]
