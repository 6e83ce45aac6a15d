"""Signed webhook POSTs with bounded retries: what every Shouhu webhook shares.

The service's early-warning alerts (``service.workflow.webhook``) and the drift alarm
(``monitoring.drift``) go to the same receiver (``settings.service.webhook_url``), signed with
the same secret, so a receiver checks both the same way. Each request carries:

- ``X-Shouhu-Event``: what it is (``alert``, ``drift_alarm``);
- ``X-Shouhu-Delivery``: an id that is the same on every attempt, so a receiver that saw it
  already can drop a repeat (an answer lost on the way back makes the sender try again);
- ``X-Shouhu-Signature: t=<unix seconds>,v1=<hex>``, where ``hex`` is the HMAC-SHA256 of
  ``"<t>." + body`` under the shared secret. The time inside the signed text lets a receiver
  refuse a replayed request (:func:`verify_signature` allows five minutes by default).

:func:`post_signed` tries once and then up to ``retries`` more times, waiting ``backoff``,
``2 × backoff``, … (capped) between attempts; it retries network errors, timeouts, 408, 429
and 5xx answers, and gives up at once on any other 4xx (the receiver refuses the request as
it is). The caller learns of every attempt (``on_attempt``) to keep its own record.

This module sits one layer above ``shouhu.settings`` and ``shouhu.errors`` (see the
import-linter layers in ``pyproject.toml``), so the service and monitoring, which may not
import each other, both read the webhook settings through :func:`webhook_config`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from shouhu.errors import ConfigError

if TYPE_CHECKING:
    from shouhu.settings import Settings

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

    What a receiver runs (and the tests' local receivers do).

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


def encode(payload: Mapping[str, Any]) -> bytes:
    """The request body of ``payload``: compact UTF-8 JSON with sorted keys.

    Sorted and compact so that the same event always has the same bytes, hence the same
    signature input, on every attempt.

    Examples
    --------
    >>> encode({"b": 1, "a": "守护"}).decode("utf-8")
    '{"a":"守护","b":1}'
    """
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode(
        "utf-8"
    )


@dataclass(frozen=True)
class WebhookConfig:
    """Where and how to deliver (from ``settings.service``, see :func:`webhook_config`).

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


@dataclass(frozen=True)
class Attempt:
    """One POST of a delivery.

    Attributes
    ----------
    number : int
        1 for the first attempt.
    attempted_at : datetime
        When it ended (UTC).
    ok : bool
        The receiver answered 2xx.
    status_code : int or None
        The answer's status (``None``: no answer, see ``error``).
    error : str
        ``HTTP <status>`` or the kind of network error; empty when ``ok``.
    duration_ms : int
        Time taken.
    """

    number: int
    attempted_at: datetime
    ok: bool
    status_code: int | None
    error: str
    duration_ms: int


@dataclass(frozen=True)
class Delivery:
    """Every attempt of one delivery, the last one deciding."""

    attempts: tuple[Attempt, ...]

    @property
    def ok(self) -> bool:
        """Whether the receiver accepted the request (2xx)."""
        return bool(self.attempts) and self.attempts[-1].ok

    @property
    def refused(self) -> bool:
        """Whether the receiver answered with a status that is not worth retrying."""
        last = self.attempts[-1] if self.attempts else None
        return (
            last is not None
            and not last.ok
            and last.status_code is not None
            and not _retryable(last.status_code)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: ``delivered``, ``attempts``, the last ``status_code`` and ``error``.

        Returns
        -------
        dict
            The summary.
        """
        last = self.attempts[-1] if self.attempts else None
        return {
            "delivered": self.ok,
            "attempts": len(self.attempts),
            "status_code": None if last is None else last.status_code,
            "error": "" if last is None else last.error,
        }


def _retryable(status: int) -> bool:
    return status >= 500 or status in _RETRY_STATUSES


def post_signed(
    client: httpx.Client,
    config: WebhookConfig,
    body: bytes,
    *,
    event: str,
    delivery_id: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> Delivery:
    """POST ``body`` signed, retrying as configured.

    Parameters
    ----------
    client : httpx.Client
        The HTTP client.
    config : WebhookConfig
        URL, secret, retries and backoff.
    body : bytes
        The request body (see :func:`encode`); signed anew at each attempt's time.
    event : str
        The ``X-Shouhu-Event`` header.
    delivery_id : str
        The ``X-Shouhu-Delivery`` header, the same on every attempt.
    sleep, clock : callable
        Waiting and the signature's time (tests replace them).
    on_attempt : callable, optional
        Called with every :class:`Attempt` as it ends (the service records each one).

    Returns
    -------
    Delivery
        Every attempt; ``ok`` when the receiver accepted it.
    """
    attempts: list[Attempt] = []
    total = 1 + config.retries
    for number in range(1, total + 1):
        started = time.perf_counter()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            EVENT_HEADER: event,
            DELIVERY_HEADER: delivery_id,
            SIGNATURE_HEADER: sign(config.secret, int(clock()), body),
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
        attempt = Attempt(
            number=number,
            attempted_at=datetime.now(UTC),
            ok=ok,
            status_code=status,
            error=error,
            duration_ms=int((time.perf_counter() - started) * 1000),
        )
        attempts.append(attempt)
        if on_attempt is not None:
            on_attempt(attempt)
        if ok or (status is not None and not _retryable(status)):
            break
        if number < total:
            sleep(min(config.max_backoff_s, config.backoff_s * 2 ** (number - 1)))
    return Delivery(tuple(attempts))


def webhook_config(settings: Settings) -> WebhookConfig | None:
    """The webhook of ``settings.service`` (``None`` when no URL is set).

    Parameters
    ----------
    settings : Settings
        The process settings (``service.webhook_url``, ``webhook_secret``,
        ``webhook_retries``).

    Returns
    -------
    WebhookConfig or None
        The receiver, or ``None`` when none is configured.

    Raises
    ------
    ConfigError
        If a URL is set without a secret (an unsigned request could be forged), or is
        malformed.
    """
    service = settings.service
    if not service.webhook_url:
        return None
    secret = service.webhook_secret
    if secret is None or not secret.get_secret_value():
        raise ConfigError(
            "SHOUHU_SERVICE__WEBHOOK_URL is set but SHOUHU_SERVICE__WEBHOOK_SECRET is not: "
            "webhook requests are only sent signed"
        )
    try:
        return WebhookConfig(
            service.webhook_url, secret.get_secret_value(), service.webhook_retries
        )
    except ValueError as exc:
        raise ConfigError(f"webhook: {exc}") from None


__all__ = [
    "DEFAULT_TOLERANCE_S",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "Attempt",
    "Delivery",
    "WebhookConfig",
    "encode",
    "post_signed",
    "sign",
    "verify_signature",
    "webhook_config",
]
