"""POST alerts to a webhook, signed with HMAC-SHA256, with bounded retries and backoff.

Each request carries:

- ``X-Shouhu-Event: alert``;
- ``X-Shouhu-Delivery: alert-<id>``, the same on every attempt, so a receiver that saw it
  already can drop a repeat (an answer lost on the way back makes the sender try again);
- ``X-Shouhu-Signature: t=<unix seconds>,v1=<hex>``, where ``hex`` is the HMAC-SHA256 of
  ``"<t>." + body`` under the shared secret. The time inside the signed text lets a receiver
  refuse a replayed request (:func:`verify_signature` allows five minutes by default).

A delivery tries once and then up to ``retries`` more times, waiting ``backoff``, ``2 ×
backoff``, … (capped) between attempts; it retries network errors, timeouts, 408, 429 and
5xx answers, and gives up at once on any other 4xx (the receiver refuses the request as it
is). Every attempt is an :class:`~service.db.workflow.AlertDelivery` row. The body carries
pseudonymous ids, area codes, tiers, rule names and reasons, never a name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.workflow import Alert, AlertDelivery

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Shouhu-Signature"
DELIVERY_HEADER = "X-Shouhu-Delivery"
EVENT_HEADER = "X-Shouhu-Event"
#: How old a signed request may be before :func:`verify_signature` refuses it (seconds).
DEFAULT_TOLERANCE_S = 300
_RETRY_STATUSES = frozenset({408, 429})


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Shouhu-Signature`` header value for ``body`` sent at ``timestamp``.

    Examples
    --------
    >>> sign("k", 1700000000, b"{}")[:13]
    't=1700000000,'
    """
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> bool:
    """Whether ``header`` is a valid signature of ``body`` made within ``tolerance_s``.

    What a receiver runs (and the integration test's local receiver does).

    Examples
    --------
    >>> header = sign("k", 1700000000, b"{}")
    >>> verify_signature("k", header, b"{}", now=1700000010)
    True
    >>> verify_signature("k", header, b"{ }", now=1700000010)
    False
    """
    if not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected, header.strip())


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


def _body(alert: Alert) -> bytes:
    return json.dumps(
        alert_payload(alert), ensure_ascii=False, sort_keys=True, separators=(",", ":")
    ).encode("utf-8")


@dataclass(frozen=True)
class WebhookConfig:
    """Where and how to deliver (from ``settings.service``).

    Attributes
    ----------
    url : str
        The receiver.
    secret : str
        The HMAC key.
    retries : int
        Attempts after the first (``webhook_retries``).
    backoff_s : float
        Wait before the first retry; doubled for each next one.
    max_backoff_s : float
        The longest wait.
    timeout_s : float
        Per attempt.
    """

    url: str
    secret: str
    retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError("a webhook needs a secret to sign its requests")
        if self.retries < 0:
            raise ValueError("retries cannot be negative")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("the webhook URL must be http:// or https://")


def _retryable(status: int) -> bool:
    return status >= 500 or status in _RETRY_STATUSES


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
    body = _body(alert)
    attempts = 1 + config.retries
    for attempt in range(1, attempts + 1):
        started = time.perf_counter()
        timestamp = int(clock())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            EVENT_HEADER: "alert",
            DELIVERY_HEADER: f"alert-{alert.id}",
            SIGNATURE_HEADER: sign(config.secret, timestamp, body),
        }
        status: int | None = None
        error = ""
        try:
            response = client.post(
                config.url, content=body, headers=headers, timeout=config.timeout_s
            )
            status = response.status_code
            ok = 200 <= status < 300
            if not ok:
                error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            ok = False
            error = type(exc).__name__  # the kind only: a message may echo the URL's secret
        session.add(
            AlertDelivery(
                alert_id=alert.id,
                attempt=attempt,
                attempted_at=datetime.now(UTC),
                ok=ok,
                status_code=status,
                error=error[:255],
                duration_ms=int((time.perf_counter() - started) * 1000),
            )
        )
        session.flush()
        if ok:
            return True
        if status is not None and not _retryable(status):
            logger.warning(
                "webhook refused the alert", extra={"alert_id": alert.id, "status": status}
            )
            return False
        if attempt < attempts:
            sleep(min(config.max_backoff_s, config.backoff_s * 2 ** (attempt - 1)))
    logger.warning("webhook delivery failed", extra={"alert_id": alert.id, "attempts": attempts})
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
    "DEFAULT_TOLERANCE_S",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "DeliveryRun",
    "WebhookConfig",
    "alert_payload",
    "deliver_alert",
    "deliver_pending",
    "pending_alerts",
    "sign",
    "verify_signature",
]
