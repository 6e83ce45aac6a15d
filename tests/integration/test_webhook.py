"""Alerts POSTed to a local receiver on 127.0.0.1: HMAC signature, bounded retries, dedup.

The receiver (``tests._webhook_receiver``) is a real HTTP server in a thread, stopped after each
test; it checks every request's signature the way a partner's receiver would, answers with a
scripted status per request, and drops a delivery id it has already accepted.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import httpx
import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from models.policy import load_policy
from service.db.base import make_engine, make_session_factory
from service.db.migrate import upgrade
from service.db.workflow import Alert, AlertDelivery
from service.workflow.alerts import raise_alerts_for_run
from service.workflow.cli import app as review_cli
from service.workflow.webhook import (
    WebhookConfig,
    deliver_alert,
    deliver_pending,
    pending_alerts,
)
from shouhu.settings import get_settings
from tests._webhook_receiver import Receiver, receiver_fixture

SECRET = "test-webhook-secret-0123456789"
VILLAGE = "990101001001"


receiver = receiver_fixture(SECRET)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'service.db'}")
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


def _run(children: list[str], run_id: str = "r1") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "child_id": children,
            "village_code": VILLAGE,
            "township_code": VILLAGE[:9],
            "tier": "T1",
            "rules_fired": [["hard:suspected_abuse_or_unlawful_harm"]] * len(children),
            "run_id": run_id,
            "as_of": date(2026, 1, 31),
            "policy_version": "cq-default-2026.1",
            "model_version": 1,
        }
    )


def _alerts(sessions: sessionmaker[Session], n: int) -> None:
    with sessions() as session:
        raise_alerts_for_run(session, load_policy(), _run([f"c-{i:04d}" for i in range(n)]), None)
        session.commit()


class _Waits:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_a_signed_alert_is_retried_with_backoff_until_accepted(
    receiver: Receiver, sessions: sessionmaker[Session]
) -> None:
    _alerts(sessions, 1)
    receiver.script = [503, 502]
    waits = _Waits()
    config = WebhookConfig(receiver.url, SECRET, retries=3, backoff_s=0.01, max_backoff_s=1.0)
    with sessions() as session, httpx.Client() as client:
        alert = session.scalars(select(Alert)).one()
        assert deliver_alert(session, alert, config, client, sleep=waits)
        session.commit()
        attempts = session.scalars(select(AlertDelivery).order_by(AlertDelivery.id)).all()
    assert [(a.attempt, a.ok, a.status_code) for a in attempts] == [
        (1, False, 503),
        (2, False, 502),
        (3, True, 200),
    ]
    assert waits.calls == [0.01, 0.02]  # doubling backoff between attempts
    assert [s["valid"] for s in receiver.seen] == [True, True, True]
    assert {s["delivery"] for s in receiver.seen} == {f"alert-{alert.id}"}
    event = receiver.accepted[f"alert-{alert.id}"]
    assert event["type"] == "shouhu.alert"
    assert event["alert"]["child_id"] == "c-0000"
    assert event["alert"]["hard_rules"] == ["suspected_abuse_or_unlawful_harm"]
    assert event["alert"]["reasons"][0]["zh"].startswith("疑似遭受")


def test_retries_are_bounded_and_a_refusal_is_not_retried(
    receiver: Receiver, sessions: sessionmaker[Session]
) -> None:
    _alerts(sessions, 1)
    receiver.default = 500
    waits = _Waits()
    config = WebhookConfig(receiver.url, SECRET, retries=2, backoff_s=0.5, max_backoff_s=0.75)
    with sessions() as session:
        run = deliver_pending(session, config, sleep=waits)
        session.commit()
        assert (run.delivered, run.failed) == (0, 1)
        assert len(pending_alerts(session)) == 1  # still pending: a later round tries again
    assert len(receiver.seen) == 3  # one attempt plus two retries, no more
    assert waits.calls == [0.5, 0.75]  # capped

    receiver.default = 422  # the receiver refuses the request as it is: no point retrying
    with sessions() as session:
        run = deliver_pending(session, config, sleep=waits)
        session.commit()
    assert (run.delivered, run.failed) == (0, 1)
    assert len(receiver.seen) == 4


def test_a_receiver_that_is_down_stops_the_round(
    receiver: Receiver, sessions: sessionmaker[Session]
) -> None:
    _alerts(sessions, 6)
    receiver.default = 503
    config = WebhookConfig(receiver.url, SECRET, retries=1, backoff_s=0.01)
    with sessions() as session:
        run = deliver_pending(session, config, max_consecutive_failures=2, sleep=_Waits())
        session.commit()
        assert len(pending_alerts(session)) == 6
    assert (run.delivered, run.failed, run.deferred) == (0, 2, 4)
    assert len(receiver.seen) == 4  # two alerts, two attempts each, then the round stopped
    receiver.default = 200
    with sessions() as session:
        run = deliver_pending(session, config, sleep=_Waits())
        session.commit()
    assert (run.delivered, run.failed, run.deferred) == (6, 0, 0)


def test_a_wrong_secret_is_rejected_by_the_receiver(
    receiver: Receiver, sessions: sessionmaker[Session]
) -> None:
    _alerts(sessions, 1)
    config = WebhookConfig(receiver.url, "not-the-shared-secret", retries=3, backoff_s=0.01)
    with sessions() as session:
        run = deliver_pending(session, config, sleep=_Waits())
    assert (run.delivered, run.failed) == (0, 1)
    assert [(s["valid"], s["status"]) for s in receiver.seen] == [(False, 401)]
    assert receiver.accepted == {}


class _LostFirstAnswer(httpx.BaseTransport):
    """Forward to the receiver, but lose its first answer (a proxy timing out)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        response = self.inner.handle_request(request)
        if self.calls == 1:
            response.close()
            raise httpx.ReadTimeout("answer lost", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_delivered_alerts_are_never_sent_twice_and_lost_answers_are_deduplicated(
    receiver: Receiver, sessions: sessionmaker[Session]
) -> None:
    _alerts(sessions, 3)
    config = WebhookConfig(receiver.url, SECRET, retries=2, backoff_s=0.01)
    with sessions() as session:
        first = deliver_pending(session, config, sleep=_Waits())
        session.commit()
    assert (first.delivered, first.failed) == (3, 0)
    with sessions() as session:
        again = deliver_pending(session, config, sleep=_Waits())
    assert (again.delivered, again.failed) == (0, 0)  # accepted alerts are not sent again
    assert len(receiver.seen) == 3 and len(receiver.accepted) == 3

    # The receiver stores a new alert but its answer is lost: the sender retries with the same
    # delivery id, and the receiver recognises and drops the repeat.
    with sessions() as session:
        raise_alerts_for_run(session, load_policy(), _run(["c-late"], run_id="r2"), None)
        session.commit()
    with sessions() as session, httpx.Client(transport=_LostFirstAnswer()) as client:
        run = deliver_pending(session, config, client=client, sleep=_Waits())
        session.commit()
        late_id = session.scalars(select(Alert.id).where(Alert.child_id == "c-late")).one()
        attempts = session.scalars(
            select(AlertDelivery).where(AlertDelivery.alert_id == late_id)
        ).all()
    assert (run.delivered, run.failed) == (1, 0)
    assert [(a.attempt, a.ok, a.error) for a in attempts] == [
        (1, False, "ReadTimeout"),
        (2, True, ""),
    ]
    late = [s for s in receiver.seen if s["delivery"] == f"alert-{late_id}"]
    assert [s["dup"] for s in late] == [False, True]
    assert len(receiver.accepted) == 4


def test_an_unreachable_receiver_is_recorded_and_retried(sessions: sessionmaker[Session]) -> None:
    _alerts(sessions, 1)
    # A port nothing listens on (bound and closed at once).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = WebhookConfig(f"http://127.0.0.1:{port}/", SECRET, retries=1, backoff_s=0.01)
    with sessions() as session:
        run = deliver_pending(session, config, sleep=_Waits())
        session.commit()
        attempts = session.scalars(select(AlertDelivery)).all()
    assert (run.delivered, run.failed) == (0, 1)
    assert [(a.attempt, a.status_code, a.error) for a in attempts] == [
        (1, None, "ConnectError"),
        (2, None, "ConnectError"),
    ]


def _score_store(path: Path) -> None:
    jan = _run(["c-a", "c-b"], run_id="r1").assign(tier=["T3", "T4"], rules_fired=[[], []])
    feb = _run(["c-a", "c-b"], run_id="r2").assign(as_of=date(2026, 2, 28))
    frames = [
        frame.assign(
            reasons=[[{"feature": "age_years", "direction": "raises", "zh": "年龄", "en": "age"}]]
            * len(frame),
            hard_rule_t1=frame["tier"] == "T1",
            awaiting_confirmation=False,
            scored_at=pd.Timestamp(datetime(2026, 3, 1 + i, tzinfo=UTC)),
        )
        for i, frame in enumerate((jan, feb))
    ]
    scores = pd.concat(frames, ignore_index=True)
    runs = scores[["run_id", "as_of", "scored_at"]].drop_duplicates("run_id")
    con = duckdb.connect(str(path))
    try:
        con.register("scores_in", scores)
        con.register("runs_in", runs)
        con.execute("CREATE TABLE scores AS SELECT * FROM scores_in")
        con.execute("CREATE TABLE scoring_runs AS SELECT * FROM runs_in")
    finally:
        con.close()


def test_review_after_run_command_raises_alerts_and_posts_them(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    _score_store(isolated_home / get_settings().scoring.database)
    monkeypatch.setenv("SHOUHU_SERVICE__WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("SHOUHU_SERVICE__WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("SHOUHU_SERVICE__WEBHOOK_RETRIES", "1")
    get_settings.cache_clear()
    runner = CliRunner()
    result = runner.invoke(review_cli, ["after-run", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["run_id"] == "r2" and summary["previous_run_id"] == "r1"
    assert (summary["alerts_raised"], summary["episodes_opened"]) == (2, 2)
    assert summary["webhook"] == {"delivered": 2, "failed": 0, "deferred": 0}
    assert len(receiver.accepted) == 2 and all(s["valid"] for s in receiver.seen)
    again = json.loads(runner.invoke(review_cli, ["after-run", "--json"]).stdout)
    assert (again["alerts_raised"], again["alerts_duplicate"], again["tasks_opened"]) == (0, 2, 0)
    assert again["webhook"] == {"delivered": 0, "failed": 0, "deferred": 0}

    monkeypatch.delenv("SHOUHU_SERVICE__WEBHOOK_SECRET")
    get_settings.cache_clear()
    unsigned = runner.invoke(review_cli, ["after-run", "--json"])
    assert unsigned.exit_code != 0
    assert "WEBHOOK_SECRET" in str(unsigned.exception)
