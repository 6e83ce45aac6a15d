"""The drift alarm on the webhook: a signed POST when a report crossed a policy threshold.

``shouhu monitoring drift`` writes its report, and when ``alarm`` is true and a webhook is
configured (``settings.service.webhook_url``, ``webhook_secret``, ``webhook_retries``: the
receiver of the service's early-warning alerts) it POSTs one ``drift_alarm`` event, signed and
retried as ``shouhu.webhook`` does for every Shouhu webhook. The delivery id is the report's
folder name, the same on every attempt, so a receiver drops a repeat. Only reports kept under
the home are sent (an analyst's ``--out`` comparison is not the county's current state), the
same rule as for the Prometheus figures.

The body names checks, features, area and school codes and dates, never a child. A delivery
that fails after its retries does not fail the command (the report is written and the
Prometheus alert on ``shouhu_drift_alarm`` still fires); it is logged, returned in the
summary's ``webhook`` field and kept beside the report in ``webhook.json``.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from shouhu.webhook import WebhookConfig, encode, post_signed

logger = logging.getLogger(__name__)

#: ``X-Shouhu-Event`` of the drift alarm.
EVENT = "drift_alarm"
#: The record of the delivery, beside the report's summary.
DELIVERY_FILE = "webhook.json"
#: At most this many reasons go in the body; the report has them all.
MAX_REASONS = 50


def delivery_id(summary: Mapping[str, Any]) -> str:
    """The ``X-Shouhu-Delivery`` id of a report: ``drift-`` and its folder's name.

    Examples
    --------
    >>> delivery_id({"report": "/h/monitoring/drift_2025-12-31_vs_2024-12-31_X/index.html"})
    'drift-drift_2025-12-31_vs_2024-12-31_X'
    """
    return f"drift-{Path(str(summary['report'])).parent.name}"


def alarm_payload(summary: Mapping[str, Any], monitoring_dir: Path | None = None) -> dict[str, Any]:
    """The JSON object POSTed for a drift report that raised the alarm.

    Parameters
    ----------
    summary : mapping
        The drift summary (``shouhu monitoring drift --json``).
    monitoring_dir : Path, optional
        ``$SHOUHU_HOME/monitoring``: the report's path is then also given relative to it,
        which is where the service's reports page serves it (``/reports/<report_path>``).

    Returns
    -------
    dict
        ``type``, ``id`` and ``drift``: dates, policy, the checks that fired (with counts),
        the alarming reasons (at most :data:`MAX_REASONS`), the areas that alarmed and where
        the report is.
    """
    reasons = [r for r in summary.get("reasons", []) if r.get("alarm", True)]
    report = Path(str(summary["report"]))
    relative = None
    if monitoring_dir is not None and report.is_relative_to(monitoring_dir):
        relative = report.relative_to(monitoring_dir).as_posix()
    return {
        "type": "shouhu.drift_alarm",
        "id": delivery_id(summary),
        "drift": {
            "alarm": bool(summary.get("alarm")),
            "reference": summary.get("reference"),
            "current": summary.get("current"),
            "created_at": summary.get("created_at"),
            "policy_version": summary.get("policy_version"),
            "policy_fingerprint": summary.get("policy_fingerprint"),
            "dataset_drift": summary.get("dataset_drift"),
            "share_drifted": summary.get("share_drifted"),
            "prediction_drift": summary.get("prediction_drift"),
            "checks": dict(sorted(Counter(str(r["check"]) for r in reasons).items())),
            "reasons": [
                {
                    key: r.get(key)
                    for key in ("check", "scope", "subject", "value", "threshold", "message")
                }
                for r in reasons[:MAX_REASONS]
            ],
            "reasons_total": len(reasons),
            "areas": [str(a["area_code"]) for a in summary.get("areas", []) if a.get("alarm")],
            "report": str(report),
            "report_path": relative,
        },
    }


def send_alarm(
    summary: Mapping[str, Any],
    config: WebhookConfig,
    *,
    monitoring_dir: Path | None = None,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """POST the alarm of ``summary`` and keep the outcome beside the report.

    Parameters
    ----------
    summary : mapping
        A drift summary whose ``alarm`` is true.
    config : WebhookConfig
        The receiver, secret and retries.
    monitoring_dir : Path, optional
        ``$SHOUHU_HOME/monitoring`` (see :func:`alarm_payload`).
    client : httpx.Client, optional
        An HTTP client (a new one when ``None``).
    sleep : callable
        Waiting between retries (tests replace it).

    Returns
    -------
    dict
        ``delivered``, ``attempts``, ``status_code``, ``error`` and ``id``.
    """
    payload = alarm_payload(summary, monitoring_dir)
    http = client if client is not None else httpx.Client()
    try:
        delivery = post_signed(
            http, config, encode(payload), event=EVENT, delivery_id=payload["id"], sleep=sleep
        )
    finally:
        if client is None:
            http.close()
    outcome = {**delivery.to_dict(), "id": payload["id"]}
    record = Path(str(summary["report"])).parent / DELIVERY_FILE
    try:
        record.write_text(json.dumps(outcome, indent=1), encoding="utf-8")
    except OSError:
        logger.warning("drift alarm delivery not recorded beside the report")
    extra = {"delivery": payload["id"], "attempts": outcome["attempts"]}
    if delivery.ok:
        logger.info("drift alarm delivered", extra=extra)
    else:
        logger.warning(
            "drift alarm not delivered",
            extra={**extra, "status": outcome["status_code"], "error": outcome["error"]},
        )
    return outcome


__all__ = ["DELIVERY_FILE", "EVENT", "MAX_REASONS", "alarm_payload", "delivery_id", "send_alarm"]
