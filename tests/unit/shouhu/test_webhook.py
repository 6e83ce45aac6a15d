"""``shouhu.webhook``: the signed POST with bounded retries, and the settings it is read from.

The HTTP side runs through httpx's MockTransport (the requests as a receiver gets them); the
real receivers on 127.0.0.1 are in ``tests/integration/test_webhook.py`` (alerts) and
``tests/unit/monitoring/test_drift_alarm.py`` (the drift alarm).
"""

from __future__ import annotations

import httpx
import pytest

from shouhu.errors import ConfigError
from shouhu.settings import ServiceSettings, Settings
from shouhu.webhook import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    Attempt,
    WebhookConfig,
    encode,
    post_signed,
    verify_signature,
    webhook_config,
)

SECRET = "unit-test-secret-0123456789"


def _client(
    statuses: list[int | type[httpx.TransportError]], seen: list[httpx.Request]
) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = statuses.pop(0)
        if isinstance(status, type):
            raise status("no answer", request=request)
        return httpx.Response(status)

    return httpx.Client(transport=httpx.MockTransport(answer))


def test_every_attempt_is_signed_with_the_same_delivery_id_and_reported() -> None:
    seen: list[httpx.Request] = []
    attempts: list[Attempt] = []
    waits: list[float] = []
    body = encode({"type": "test", "n": 1})
    config = WebhookConfig("https://receiver.example/hook", SECRET, retries=3, backoff_s=0.1)
    with _client([httpx.ConnectTimeout, 429, 502, 204], seen) as client:
        delivery = post_signed(
            client,
            config,
            body,
            event="drift_alarm",
            delivery_id="d-1",
            sleep=waits.append,
            on_attempt=attempts.append,
        )
    assert delivery.ok and not delivery.refused
    assert [(a.number, a.ok, a.status_code, a.error) for a in attempts] == [
        (1, False, None, "ConnectTimeout"),
        (2, False, 429, "HTTP 429"),
        (3, False, 502, "HTTP 502"),
        (4, True, 204, ""),
    ]
    assert list(delivery.attempts) == attempts
    assert waits == [0.1, 0.2, 0.4]  # doubling
    for request in seen:
        assert request.content == body
        assert request.headers[EVENT_HEADER] == "drift_alarm"
        assert request.headers[DELIVERY_HEADER] == "d-1"
        assert verify_signature(SECRET, request.headers[SIGNATURE_HEADER], body)
    assert delivery.to_dict() == {"delivered": True, "attempts": 4, "status_code": 204, "error": ""}


def _never(seconds: float) -> None:
    raise AssertionError(f"a refused request is not retried (asked to wait {seconds} s)")


def test_a_refusal_stops_at_once_and_retries_are_bounded() -> None:
    seen: list[httpx.Request] = []
    config = WebhookConfig("http://127.0.0.1:9/hook", SECRET, retries=1, backoff_s=0.1)
    with _client([403, 500, 500], seen) as client:
        refused = post_signed(client, config, b"{}", event="e", delivery_id="d", sleep=_never)
        assert refused.refused and not refused.ok and len(refused.attempts) == 1
        failed = post_signed(
            client, config, b"{}", event="e", delivery_id="d", sleep=lambda _: None
        )
    assert not failed.ok and not failed.refused and len(failed.attempts) == 2
    assert len(seen) == 3


def _settings(**service: object) -> Settings:
    return Settings(service=ServiceSettings.model_validate(service))


def test_the_webhook_comes_from_the_service_settings() -> None:
    assert webhook_config(_settings()) is None
    config = webhook_config(
        _settings(webhook_url="https://h.example/x", webhook_secret=SECRET, webhook_retries=5)
    )
    assert config == WebhookConfig("https://h.example/x", SECRET, retries=5)
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET is not"):
        webhook_config(_settings(webhook_url="https://h.example/x"))
    with pytest.raises(ConfigError, match="http:// or https://"):
        webhook_config(_settings(webhook_url="ftp://h.example/x", webhook_secret=SECRET))
