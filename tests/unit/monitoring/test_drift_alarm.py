"""The drift alarm on the webhook: its body, its signature, retries, and the record it leaves.

A real receiver on 127.0.0.1 (``tests._webhook_receiver``) checks each request's signature as a
partner's receiver would. The end-to-end run through ``shouhu monitoring drift`` is in
``tests/integration/test_drift_alarm_webhook.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from monitoring.alarm import DELIVERY_FILE, EVENT, alarm_payload, delivery_id, send_alarm
from shouhu.webhook import WebhookConfig, encode
from tests._webhook_receiver import Receiver, receiver_fixture
from tests.unit.monitoring.test_drift_reports import _summary

SECRET = "drift-alarm-test-secret-0123"
FOLDER = "drift_2025-12-31_vs_2024-12-31_20260105T000000000000Z"


receiver = receiver_fixture(SECRET)


def _stored(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    """An alarming summary whose report folder exists under ``tmp_path/monitoring``."""
    monitoring = tmp_path / "monitoring"
    folder = monitoring / FOLDER
    folder.mkdir(parents=True)
    summary = _summary("2026-01-05T00:00:00+00:00", alarm=True)
    summary["report"] = str(folder / "index.html")
    return summary, monitoring


def test_the_body_names_checks_areas_and_the_report_never_a_child(tmp_path: Path) -> None:
    summary, monitoring = _stored(tmp_path)
    summary["reasons"].append({**summary["reasons"][0], "alarm": False, "scope": "990101002"})
    payload = alarm_payload(summary, monitoring)
    assert payload["type"] == "shouhu.drift_alarm"
    assert payload["id"] == delivery_id(summary) == f"drift-{FOLDER}"
    drift = payload["drift"]
    assert (drift["reference"], drift["current"]) == ("2024-12-31", "2025-12-31")
    # Only reasons that raise the alarm are sent (a small area's figure is shown, not alarmed).
    assert drift["checks"] == {"visit_volume_30d": 1} and drift["reasons_total"] == 1
    assert drift["reasons"][0]["scope"] == "990101001"
    assert drift["areas"] == ["990101001"]
    assert drift["report_path"] == f"{FOLDER}/index.html"  # what /reports/<path> serves
    assert "child_id" not in encode(payload).decode("utf-8")


def test_an_alarm_is_signed_retried_and_recorded_beside_the_report(
    tmp_path: Path, receiver: Receiver
) -> None:
    summary, monitoring = _stored(tmp_path)
    receiver.script = [503]
    waits: list[float] = []
    config = WebhookConfig(receiver.url, SECRET, retries=2, backoff_s=0.01)
    outcome = send_alarm(summary, config, monitoring_dir=monitoring, sleep=waits.append)
    assert outcome == {
        "delivered": True,
        "attempts": 2,
        "status_code": 200,
        "error": "",
        "id": f"drift-{FOLDER}",
    }
    assert waits == [0.01]
    assert [(s["event"], s["valid"], s["status"]) for s in receiver.seen] == [
        (EVENT, True, 503),
        (EVENT, True, 200),
    ]
    assert {s["delivery"] for s in receiver.seen} == {f"drift-{FOLDER}"}
    assert receiver.accepted[f"drift-{FOLDER}"] == alarm_payload(summary, monitoring)
    kept = json.loads((monitoring / FOLDER / DELIVERY_FILE).read_text(encoding="utf-8"))
    assert kept == outcome


def test_a_refused_or_unanswered_alarm_is_reported_not_raised(
    tmp_path: Path, receiver: Receiver
) -> None:
    summary, monitoring = _stored(tmp_path)
    receiver.default = 422  # the receiver refuses the request as it is: no retry
    config = WebhookConfig(receiver.url, "not-the-shared-secret", retries=3, backoff_s=0.01)
    outcome = send_alarm(summary, config, monitoring_dir=monitoring, sleep=lambda _: None)
    # A wrong secret: the receiver answers 401, which is not retried either.
    assert (outcome["delivered"], outcome["attempts"], outcome["status_code"]) == (False, 1, 401)
    assert receiver.accepted == {}
    receiver.default = 500
    config = WebhookConfig(receiver.url, SECRET, retries=2, backoff_s=0.01)
    outcome = send_alarm(summary, config, monitoring_dir=monitoring, sleep=lambda _: None)
    assert (outcome["delivered"], outcome["attempts"], outcome["error"]) == (False, 3, "HTTP 500")
    kept = json.loads((monitoring / FOLDER / DELIVERY_FILE).read_text(encoding="utf-8"))
    assert kept["delivered"] is False
