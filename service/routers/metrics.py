"""``GET /metrics``: Prometheus metrics (route templates and counts only, no child data)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import StateDep
from service.metrics import ServiceMetrics

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    name="get_metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
def get_metrics(request: Request, state: StateDep) -> Response:
    """Request counts and latencies by route, scores served, model and snapshot gauges."""
    metrics: ServiceMetrics = request.app.state.metrics
    metrics.observe_state(state)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
