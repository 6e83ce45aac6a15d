"""A webhook receiver on 127.0.0.1 for tests: checks signatures, answers as scripted, dedups.

A real HTTP server in a thread, stopped when the ``with`` block ends. It checks every request's
signature the way a partner's receiver would (``shouhu.webhook.verify_signature``), answers
with a scripted status per request, and processes a delivery id it has already accepted only
once (an answer lost on the way back makes the sender try again with the same id).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shouhu.webhook import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify_signature


@dataclass
class Receiver:
    """What the receiver saw and how it answers."""

    url: str = ""
    script: list[int] = field(default_factory=list)  # statuses to answer, in order
    default: int = 200
    seen: list[dict[str, Any]] = field(default_factory=list)
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def running_receiver(secret: str) -> Iterator[Receiver]:
    """A receiver on a free port of 127.0.0.1 that verifies signatures under ``secret``."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            valid = verify_signature(secret, self.headers.get(SIGNATURE_HEADER), body)
            delivery = self.headers.get(DELIVERY_HEADER, "")
            with state.lock:
                status = state.script.pop(0) if state.script else state.default
                if not valid:
                    status = 401
                duplicate = delivery in state.accepted
                state.seen.append(
                    {
                        "delivery": delivery,
                        "event": self.headers.get(EVENT_HEADER, ""),
                        "valid": valid,
                        "status": status,
                        "dup": duplicate,
                    }
                )
                # The receiver processes a valid event once, even when its answer is lost.
                if valid and not duplicate and status < 500:
                    state.accepted[delivery] = json.loads(body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/shouhu"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def receiver_fixture(secret: str) -> Callable[[], Iterator[Receiver]]:
    """A ``receiver`` fixture for a test module: a fresh receiver per test, under ``secret``."""

    @pytest.fixture
    def receiver() -> Iterator[Receiver]:
        with running_receiver(secret) as state:
            yield state

    return receiver


__all__ = ["Receiver", "receiver_fixture", "running_receiver"]
