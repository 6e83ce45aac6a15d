"""Load on the service: latency and throughput of one uvicorn worker, auth and audit on.

Starts ``shouhu serve`` on 127.0.0.1 (a free port) for a data home with a champion and a
scoring run (``shouhu demo --no-serve`` builds one), with its own operational database so the
audit rows of the run do not land in the home's. A supervisor of the most populated county
signs in with a bearer token; every request is authenticated and every child-data request
audited, exactly as in production. Then, with a small keep-alive HTTP/1.1 client on asyncio
(cheaper per request than a general-purpose client, so the generator takes less of the CPU
the server needs):

1. **score**: ``GET /api/v1/children/{id}/score`` (score now, with its reasons) for random
   children of the area — latency at one request in flight (p50, p99), then throughput with
   ``--concurrency`` in flight;
2. **watch list**: ``GET /api/v1/watchlist?area=<township>&limit=50`` for random townships;
3. **mixed**: ``--duration`` seconds (60 by default) of 50 % scores, 30 % watch lists, 10 %
   explanations, 5 % child files, 5 % batch scores of ten; every answer must be 2xx.

Aims (issue 4): p99 under 15 ms for a score with explanation, under 30 ms for the watch list,
at least 300 requests per second, and zero errors under mixed load. These are figures, not
tests: nothing fails on a slow machine, and the report says what was measured.

The generator shares the machine with the server, so every phase also reports the CPU both
took (the server's from ``/proc``, the generator's own from ``time.process_time``) and the
load average: a latency measured on a busy machine says so.

Usage::

    python -m benchmarks.service_load --home $SHOUHU_HOME [--duration 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Tally:
    """Latencies (seconds) and errors of one scenario."""

    name: str
    latencies: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """p50, p99, mean (ms), requests, errors and throughput."""
        lat = np.asarray(self.latencies) * 1000.0
        n = len(lat)
        return {
            "requests": n,
            "errors": sum(self.errors.values()),
            "error_statuses": {str(k): v for k, v in self.errors.items()},
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if n else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if n else None,
            "mean_ms": round(float(lat.mean()), 2) if n else None,
            "max_ms": round(float(lat.max()), 2) if n else None,
            "seconds": round(self.seconds, 2),
            "requests_per_second": round(n / self.seconds, 1) if self.seconds else None,
        }


class Connection:
    """One keep-alive HTTP/1.1 connection (requests are sent one after the other)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {token}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: bytes | None = None) -> int:
        """Send one request and read the whole answer; returns the status code."""
        if self.writer is None:
            await self._open()
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.auth}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        close = False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        if length:
            await self.reader.readexactly(length)
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        """Close the connection (it reopens on the next request)."""
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


Request = tuple[str, str, bytes | None]


async def _drive(
    host: str,
    port: int,
    token: str,
    make: Callable[[random.Random], tuple[str, Request]],
    *,
    concurrency: int,
    total: int | None = None,
    duration: float | None = None,
    seed: int = 0,
) -> dict[str, Tally]:
    """Run ``concurrency`` closed-loop clients until ``total`` requests or ``duration`` s."""
    tallies: dict[str, Tally] = {}
    issued = 0
    deadline = None if duration is None else time.perf_counter() + duration

    async def client(k: int) -> None:
        nonlocal issued
        rng = random.Random(seed * 1000 + k)
        conn = Connection(host, port, token)
        try:
            while True:
                if total is not None and issued >= total:
                    return
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                issued += 1
                name, (method, path, body) = make(rng)
                tally = tallies.setdefault(name, Tally(name))
                started = time.perf_counter()
                try:
                    status = await conn.request(method, path, body)
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                    status = 599
                    await conn.close()
                tally.latencies.append(time.perf_counter() - started)
                if not 200 <= status < 300:
                    tally.errors[status] = tally.errors.get(status, 0) + 1
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - started
    for tally in tallies.values():
        tally.seconds = elapsed
    return tallies


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux ``/proc``; 0 elsewhere).

    Divided by the requests of a phase it gives the server's CPU cost per request, a figure
    that, unlike latency, does not depend on what else the machine is running.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get_json(url: str, token: str | None = None) -> Any:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def _prepare_user(home: Path, database: Path) -> tuple[str, str]:
    """A supervisor of the most populated county in a fresh database; (token, county)."""
    from service.accounts import add_user, demo_areas
    from service.auth.tokens import issue_token
    from service.db.base import make_engine, make_session_factory, session_scope
    from service.db.migrate import upgrade

    areas = demo_areas(home / "features.duckdb")
    engine = make_engine(f"sqlite:///{database}")
    try:
        upgrade(engine)
        with session_scope(make_session_factory(engine)) as session:
            user = add_user(
                session,
                username="bench_supervisor",
                password="bench-password-not-secret",
                role="supervisor",
                area_code=areas["county"],
                replace_password=True,
            )
            token, _ = issue_token(session, user, days=1, label="bench")
    finally:
        engine.dispose()
    return token, areas["county"]


def _start_server(home: Path, database: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SHOUHU_HOME": str(home),
        "SHOUHU_SERVICE__DATABASE_URL": f"sqlite:///{database}",
        "SHOUHU_SERVICE__REFRESH_SECONDS": "0",
        "SHOUHU_LOG_LEVEL": "WARNING",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from shouhu.cli import main; main()",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with code {proc.returncode} while starting")
        try:
            health: dict[str, Any] = _get_json(f"{base}/api/v1/health")
            return health
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the service did not answer within {timeout:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the service, run the three load phases, stop it; return every figure."""
    home = Path(args.home).resolve()
    port = args.port or _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="shouhu-bench-") as tmp:
        database = Path(tmp) / "service.db"
        token, county = _prepare_user(home, database)
        log = Path(tmp) / "server.log"
        proc = _start_server(home, database, port, log)
        try:
            health = _wait_healthy(base, proc, args.start_timeout)
            children, townships = _population(base, token)
            report = {
                "home": str(home),
                "children_held": health["children"],
                "model_version": health["model_version"],
                "policy_version": health["policy_version"],
                "area": county,
                "area_children": len(children),
                "concurrency": args.concurrency,
                "cpu_count": os.cpu_count(),
                "load_average_before": list(os.getloadavg()),
                **asyncio.run(_phases(args, port, token, children, townships, proc.pid)),
                "load_average_after": list(os.getloadavg()),
            }
            audit = _get_json(f"{base}/api/v1/audit?limit=1", token)
            report["audit_entries_written"] = audit["items"][0]["id"] if audit["items"] else 0
        finally:
            _stop(proc)
        report["server_exit_code"] = proc.returncode
    return report


def _population(base: str, token: str) -> tuple[list[str], list[str]]:
    """Every child on the supervisor's watch list, and the townships they live in."""
    children: list[str] = []
    townships: set[str] = set()
    offset, total = 0, 1
    while offset < total:
        page = _get_json(f"{base}/api/v1/watchlist?limit=500&offset={offset}", token)
        total = int(page["total"])
        children.extend(i["child_id"] for i in page["items"])
        townships.update(i["township_code"] for i in page["items"] if i.get("township_code"))
        offset += 500
    return children, sorted(townships)


async def _phases(
    args: argparse.Namespace,
    port: int,
    token: str,
    children: list[str],
    townships: list[str],
    pid: int,
) -> dict[str, Any]:
    host = "127.0.0.1"

    def score(rng: random.Random) -> tuple[str, Request]:
        return "score", ("GET", f"/api/v1/children/{rng.choice(children)}/score", None)

    def watch(rng: random.Random) -> tuple[str, Request]:
        area = rng.choice(townships)
        return "watchlist", ("GET", f"/api/v1/watchlist?area={area}&limit=50", None)

    def mixed(rng: random.Random) -> tuple[str, Request]:
        roll = rng.random()
        if roll < 0.50:
            return score(rng)
        if roll < 0.80:
            return watch(rng)
        child = rng.choice(children)
        if roll < 0.90:
            return "explanation", ("GET", f"/api/v1/children/{child}/explanation", None)
        if roll < 0.95:
            return "child_file", ("GET", f"/api/v1/children/{child}", None)
        batch = json.dumps({"child_ids": rng.sample(children, 10), "explain": True}).encode()
        return "batch_score_10", ("POST", "/api/v1/scores", batch)

    out: dict[str, Any] = {}
    # Warm-up: first requests pay for lazy imports and caches.
    await _drive(host, port, token, mixed, concurrency=2, total=200, seed=99)
    for name, make in (("score", score), ("watchlist", watch)):
        cpu, own = _cpu_seconds(pid), time.process_time()
        load = os.getloadavg()[0]
        sequential = await _drive(host, port, token, make, concurrency=1, total=args.requests)
        cpu_ms = (_cpu_seconds(pid) - cpu) * 1000 / max(1, args.requests)
        own_ms = (time.process_time() - own) * 1000 / max(1, args.requests)
        loaded = await _drive(
            host, port, token, make, concurrency=args.concurrency, total=args.requests, seed=1
        )
        out[name] = {
            "one_in_flight": sequential[name].summary(),
            f"{args.concurrency}_in_flight": loaded[name].summary(),
            "server_cpu_ms_per_request": round(cpu_ms, 2),
            "generator_cpu_ms_per_request": round(own_ms, 2),
            "load_average": round(load, 2),
        }
    cpu, own = _cpu_seconds(pid), time.process_time()
    load = os.getloadavg()[0]
    mixed_run = await _drive(
        host, port, token, mixed, concurrency=args.concurrency, duration=args.duration, seed=2
    )
    mixed_cpu = _cpu_seconds(pid) - cpu
    own_cpu = time.process_time() - own
    total = sum(len(t.latencies) for t in mixed_run.values())
    errors = sum(sum(t.errors.values()) for t in mixed_run.values())
    seconds = max(t.seconds for t in mixed_run.values())
    out["mixed"] = {
        "duration_s": round(seconds, 1),
        "requests": total,
        "errors": errors,
        "requests_per_second": round(total / seconds, 1),
        "server_cpu_ms_per_request": round(mixed_cpu * 1000 / max(1, total), 2),
        "server_cpu_share": round(mixed_cpu / seconds, 2),
        "generator_cpu_ms_per_request": round(own_cpu * 1000 / max(1, total), 2),
        "generator_cpu_share": round(own_cpu / seconds, 2),
        "load_average_start": round(load, 2),
        "load_average_end": round(os.getloadavg()[0], 2),
        "by_kind": {name: t.summary() for name, t in sorted(mixed_run.items())},
    }
    return out


def _print(report: dict[str, Any], concurrency: int) -> None:
    print(
        f"service load: {report['children_held']} children held, model v{report['model_version']}"
        f", policy {report['policy_version']}; supervisor of {report['area']} "
        f"({report['area_children']} children); {report['cpu_count']} cores, load average "
        f"before {report['load_average_before'][0]:.1f}"
    )
    print(f"{'scenario':<28} {'req':>6} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'errors':>7}")
    for name, aim in (("score", 15.0), ("watchlist", 30.0)):
        for mode, row in report[name].items():
            if not isinstance(row, dict):
                continue
            print(
                f"{name + ' (' + mode.replace('_', ' ') + ')':<28} {row['requests']:>6} "
                f"{row['p50_ms']:>8} {row['p99_ms']:>8} {row['requests_per_second']:>8} "
                f"{row['errors']:>7}   aim p99 < {aim:g} ms"
            )
    for name in ("score", "watchlist"):
        row = report[name]
        print(
            f"{name}: server CPU {row['server_cpu_ms_per_request']} ms, load generator "
            f"{row['generator_cpu_ms_per_request']} ms per request (one in flight); load "
            f"average {row['load_average']:.1f}"
        )
    mixed = report["mixed"]
    print(
        f"mixed load {mixed['duration_s']} s with {concurrency} in flight: {mixed['requests']} "
        f"requests, {mixed['requests_per_second']} req/s, {mixed['errors']} errors "
        "(aims: ≥ 300 req/s, 0 errors)"
    )
    print(
        f"  server CPU {mixed['server_cpu_ms_per_request']} ms per request; the server got "
        f"{mixed['server_cpu_share']:.0%} of a core, the load generator "
        f"{mixed['generator_cpu_share']:.0%} ({mixed['generator_cpu_ms_per_request']} ms per "
        f"request); load average {mixed['load_average_start']:.1f} → "
        f"{mixed['load_average_end']:.1f}"
    )
    for name, row in mixed["by_kind"].items():
        print(
            f"  {name:<26} {row['requests']:>6} {row['p50_ms']:>8} {row['p99_ms']:>8} "
            f"{'':>8} {row['errors']:>7}"
        )
    print(f"audit entries written during the run: {report['audit_entries_written']}")


def main(argv: list[str] | None = None) -> int:
    """Run the service load benchmark; print a table (and write JSON with ``--json``).

    Returns
    -------
    int
        0 when the benchmark ran (whatever the figures), 1 when the service could not start.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--home", default=os.environ.get("SHOUHU_HOME", ".shouhu"), help="data home to serve"
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per phase")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--duration", type=float, default=60.0, help="mixed-load seconds")
    parser.add_argument("--start-timeout", type=float, default=180.0, help="start-up limit, s")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        report = run(args)
    except RuntimeError as exc:
        print(f"service load benchmark: {exc}", file=sys.stderr)
        return 1
    _print(report, args.concurrency)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
