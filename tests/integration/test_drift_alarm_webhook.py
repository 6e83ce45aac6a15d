"""``shouhu monitoring drift`` delivers its alarm to the configured webhook (a real receiver).

The shared trained home's feature store (3,000 children, 2024-2025) is compared 2025-12-31
against the season-matched 2024-12-31 under a county policy whose population-change limit is
zero, so the registered population's growth crosses a policy threshold: the alarm is real,
raised by the policy file, not by a stand-in. The receiver on 127.0.0.1 checks signatures and
answers the first attempt with 503, so the delivery also shows its retry.
"""

from __future__ import annotations

import json
import re
import shutil
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.policy import DEFAULT_POLICY_RESOURCE
from monitoring.alarm import DELIVERY_FILE, EVENT
from shouhu.cli import app
from shouhu.errors import ConfigError
from shouhu.settings import get_settings
from tests._trained_model import Prepared, prepared
from tests._webhook_receiver import Receiver, receiver_fixture

pytestmark = pytest.mark.slow

SECRET = "drift-alarm-integration-secret"


receiver = receiver_fixture(SECRET)


@pytest.fixture
def home(
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """The shared store under the isolated home, with a policy that makes growth an alarm."""
    trained: Prepared = prepared(tmp_path_factory)
    isolated_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(trained.store_path, isolated_home / "features.duckdb")
    shipped = resources.files("models").joinpath(DEFAULT_POLICY_RESOURCE).read_text("utf-8")
    strict = re.sub(r"max_population_change: [0-9.]+", "max_population_change: 0.0", shipped)
    assert strict != shipped
    policy = tmp_path / "county-policy.yaml"
    policy.write_text(strict, encoding="utf-8")
    monkeypatch.setenv("SHOUHU_POLICY__FILE", str(policy))
    get_settings.cache_clear()
    return isolated_home


def test_the_drift_command_posts_a_signed_alarm_to_the_webhook(
    home: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOUHU_SERVICE__WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("SHOUHU_SERVICE__WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("SHOUHU_SERVICE__WEBHOOK_RETRIES", "2")
    get_settings.cache_clear()
    receiver.script = [503]  # the receiver is busy once: the alarm is sent again
    result = CliRunner().invoke(
        app, ["monitoring", "drift", "--current", "2025-12-31", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["alarm"] is True
    assert "population_change" in {r["check"] for r in summary["reasons"]}
    # A store without scores: prediction drift is absent (null in the JSON), not false.
    assert summary["prediction_drift"] is None and summary["tier_shift"]["available"] is False
    report = Path(summary["report"])
    delivery = f"drift-{report.parent.name}"
    assert summary["webhook"] == {
        "delivered": True,
        "attempts": 2,
        "status_code": 200,
        "error": "",
        "id": delivery,
    }
    assert [(s["event"], s["delivery"], s["valid"]) for s in receiver.seen] == [
        (EVENT, delivery, True),
        (EVENT, delivery, True),
    ]
    event = receiver.accepted[delivery]["drift"]
    assert (event["reference"], event["current"]) == ("2024-12-31", "2025-12-31")
    assert event["checks"]["population_change"] >= 1
    assert event["report_path"] == report.relative_to(home / "monitoring").as_posix()
    assert json.loads((report.parent / DELIVERY_FILE).read_text(encoding="utf-8"))["delivered"]


def test_a_webhook_without_a_secret_stops_the_command_unless_told_not_to_deliver(
    home: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOUHU_SERVICE__WEBHOOK_URL", receiver.url)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["monitoring", "drift", "--current", "2025-12-31"])
    assert isinstance(result.exception, ConfigError)
    assert "WEBHOOK_SECRET" in result.exception.message
    assert not (home / "monitoring").exists() and receiver.seen == []
    # --no-deliver does not read the webhook at all: the next check to fail is the dates'.
    args = ["--current", "2025-12-31", "--reference", "2026-01-31", "--no-deliver"]
    quiet = CliRunner().invoke(app, ["monitoring", "drift", *args])
    assert isinstance(quiet.exception, ConfigError)
    assert "must come before" in quiet.exception.message
