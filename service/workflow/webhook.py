"""POST alerts to the webhook: signed, with bounded retries, every attempt recorded.

The signing, the headers and the retry policy are :mod:`shouhu.webhook`'s (the drift alarm
uses the same): ``X-Shouhu-Event: alert``; ``X-Shouhu-Delivery: alert-<id>``, the same on
every attempt, so a receiver can drop a repeat; ``X-Shouhu-Signature: t=<unix
seconds>,v1=<hex>``, HMAC-SHA256 of ``"<t>." + body``. Network errors, timeouts, 408, 429 and
5xx answers are retried with a doubling backoff; any other 4xx is not. This module adds what
is the service's own: the alert's body, an :class:`~service.db.workflow.AlertDelivery` row per
attempt, and rounds over the pending alerts that stop when the receiver looks down. The body
carries pseudonymous ids, area codes, tiers, rule names and reasons, never a name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.workflow import Alert, AlertDelivery
from shouhu.webhook import Attempt, WebhookConfig, encode, post_signed, sign, verify_signature

logger = logging.getLogger(__name__)


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The JSON object POSTed for ``alert`` (pseudonymous ids only)."""
    return {
        "type": "shouhu.alert",
        "id": f"alert-{alert.id}",
        "alert": {
            "id": alert.id,
            "child_id": alert.child_id,
            "village_code": alert.village_code,
            "township_code": alert.township_code,
            "tier": alert.tier,
            "previous_tier": alert.previous_tier,
            "tier_rise": alert.tier_rise,
            "hard_rules": list(alert.hard_rules),
            "reasons": list(alert.reasons),
            "as_of": alert.as_of.isoformat(),
            "run_id": alert.run_id,
            "policy_version": alert.policy_version,
            "model_version": alert.model_version,
            "raised_at": alert.raised_at.astimezone(UTC).isoformat(),
        },
    }


def deliver_alert(
    session: Session,
    alert: Alert,
    config: WebhookConfig,
    client: httpx.Client,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> bool:
    """POST one alert, retrying as configured; every attempt is recorded.

    Parameters
    ----------
    session : Session
        The operational database (each attempt is flushed).
    alert : Alert
        The alert.
    config : WebhookConfig
        URL, secret, retries and backoff.
    client : httpx.Client
        The HTTP client.
    sleep, clock : callable
        Waiting and the signature's time (tests replace them).

    Returns
    -------
    bool
        Whether the receiver accepted it (2xx).
    """

    def record(attempt: Attempt) -> None:
        session.add(
            AlertDelivery(
                alert_id=alert.id,
                attempt=attempt.number,
                attempted_at=attempt.attempted_at,
                ok=attempt.ok,
                status_code=attempt.status_code,
                error=attempt.error[:255],
                duration_ms=attempt.duration_ms,
            )
        )
        session.flush()

    delivery = post_signed(
        client,
        config,
        encode(alert_payload(alert)),
        event="alert",
        delivery_id=f"alert-{alert.id}",
        sleep=sleep,
        clock=clock,
        on_attempt=record,
    )
    if delivery.ok:
        return True
    if delivery.refused:
        status = delivery.attempts[-1].status_code
        logger.warning("webhook refused the alert", extra={"alert_id": alert.id, "status": status})
    else:
        attempts = len(delivery.attempts)
        logger.warning(
            "webhook delivery failed", extra={"alert_id": alert.id, "attempts": attempts}
        )
    return False


@dataclass(frozen=True)
class DeliveryRun:
    """What :func:`deliver_pending` did.

    Attributes
    ----------
    delivered, failed : int
        Alerts the receiver accepted, and alerts it did not after every attempt.
    deferred : int
        Alerts left for the next round because the receiver looked down.
    """

    delivered: int
    failed: int
    deferred: int = 0


def pending_alerts(session: Session, *, limit: int = 1000) -> list[Alert]:
    """Alerts no attempt has delivered yet, oldest first."""
    delivered = select(AlertDelivery.alert_id).where(AlertDelivery.ok.is_(True))
    return list(
        session.scalars(
            select(Alert).where(Alert.id.not_in(delivered)).order_by(Alert.id).limit(limit)
        )
    )


def deliver_pending(
    session: Session,
    config: WebhookConfig,
    *,
    client: httpx.Client | None = None,
    limit: int = 1000,
    max_consecutive_failures: int = 3,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryRun:
    """Deliver every alert not yet delivered (an alert already accepted is never re-sent).

    After ``max_consecutive_failures`` alerts in a row fail every attempt, the receiver is
    taken to be down and the round stops: the rest stay pending for the next round instead
    of each waiting through its own retries (a first run can raise thousands of alerts).

    Parameters
    ----------
    session : Session
        The operational database (flushed, not committed).
    config : WebhookConfig
        The webhook.
    client : httpx.Client, optional
        An HTTP client (a new one when ``None``).
    limit : int, default=1000
        At most this many alerts in one call.
    sleep : callable
        Waiting between retries.

    Returns
    -------
    DeliveryRun
    """
    own = client is None
    http = client if client is not None else httpx.Client()
    delivered = failed = streak = 0
    pending = pending_alerts(session, limit=limit)
    try:
        for alert in pending:
            if streak >= max_consecutive_failures:
                break
            if deliver_alert(session, alert, config, http, sleep=sleep):
                delivered += 1
                streak = 0
            else:
                failed += 1
                streak += 1
    finally:
        if own:
            http.close()
    deferred = len(pending) - delivered - failed
    logger.info(
        "webhook deliveries",
        extra={"delivered": delivered, "failed": failed, "deferred": deferred},
    )
    return DeliveryRun(delivered=delivered, failed=failed, deferred=deferred)


__all__ = [
    "DeliveryRun",
    "WebhookConfig",
    "alert_payload",
    "deliver_alert",
    "deliver_pending",
    "pending_alerts",
    "sign",
    "verify_signature",
]
