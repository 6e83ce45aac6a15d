"""``GET /metrics``: Prometheus metrics (route templates and counts only, no child data).

The answer is the service's own registry followed by the drift and data-quality figures that
``shouhu monitoring drift`` writes to ``$SHOUHU_HOME/monitoring/metrics.prom`` (gauges
``shouhu_drift_*``, ``shouhu_quality_*``, ``shouhu_area_*``; see docs/monitoring.md). The
service may not import ``monitoring`` (import-linter keeps the two apart), so it reads the file:
checked once per change (its size and modification time) with Prometheus' own parser, and
left out, with a warning in the log, when it does not parse, is too large, or names a metric
the service itself exports, so that a damaged file never breaks the whole scrape.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.deps import StateDep
from service.metrics import ServiceMetrics

logger = logging.getLogger(__name__)

router = APIRouter(tags=["metrics"])

#: What ``monitoring.metrics_export`` writes in the monitoring folder (read, never imported).
MONITORING_METRICS_FILE = "metrics.prom"
#: A larger file is not appended (a county's figures are tens of kilobytes).
MAX_MONITORING_BYTES = 4 * 1024 * 1024

_checked: dict[Path, tuple[tuple[int, int], str]] = {}
_checked_lock = threading.Lock()


def _families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


def monitoring_metrics(folder: Path, own: ServiceMetrics) -> str:
    """The monitoring figures' text to append to ``/metrics`` ('' when there are none).

    Parameters
    ----------
    folder : Path
        ``$SHOUHU_HOME/monitoring``.
    own : ServiceMetrics
        The service's registry, whose metric names the file may not reuse.

    Returns
    -------
    str
        The file's exposition text, ending in a newline, or ``''`` when the file is missing
        or refused (see the module docstring).
    """
    path = folder / MONITORING_METRICS_FILE
    try:
        stat = path.stat()
    except OSError:
        return ""
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _checked_lock:
        known = _checked.get(path)
    if known is not None and known[0] == stamp:
        return known[1]
    text = ""
    if stat.st_size > MAX_MONITORING_BYTES:
        logger.warning("monitoring metrics file too large; left out of /metrics")
    else:
        try:
            candidate = path.read_text(encoding="utf-8")
            names = _families(candidate)
        except (OSError, UnicodeDecodeError, ValueError):
            logger.warning("monitoring metrics file unreadable; left out of /metrics")
        else:
            clash = names & _families(generate_latest(own.registry).decode("utf-8"))
            if clash:
                logger.warning("monitoring metrics file reuses service metric names; left out")
            else:
                text = candidate if candidate.endswith("\n") or not candidate else candidate + "\n"
    with _checked_lock:
        _checked[path] = (stamp, text)
    return text


@router.get(
    "/metrics",
    name="get_metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
def get_metrics(request: Request, state: StateDep) -> Response:
    """Request counts and latencies by route, scores served, model and snapshot gauges, and
    the latest drift report's figures."""
    metrics: ServiceMetrics = request.app.state.metrics
    metrics.observe_state(state)
    body = generate_latest(metrics.registry).decode("utf-8")
    body += monitoring_metrics(state.settings.monitoring_dir, metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


__all__ = ["MAX_MONITORING_BYTES", "MONITORING_METRICS_FILE", "monitoring_metrics", "router"]
