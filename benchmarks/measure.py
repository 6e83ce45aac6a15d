"""Run one benchmark stage in a fresh process and measure its time, memory and the machine's load.

Each stage runs in its own interpreter so that its peak resident memory (``ru_maxrss`` from
``os.wait4``) belongs to that stage alone, not to whatever ran before it. The machine is
shared, so the one-minute load average is sampled while the stage runs: wall times are only
comparable between runs at similar load, CPU seconds much more so.

``python -m benchmarks.measure --home DIR --as-of D [--repeat N] [--reference]`` measures the
feature build (and the pandas reference, compared with it) on a data home that already holds
an ingested store, e.g. one kept by ``benchmarks.run --keep``: the stages ``make bench`` runs
after synthesis and ingestion, without redoing those.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_LOADAVG = Path("/proc/loadavg")


def load_average() -> float | None:
    """The machine's one-minute load average, or None where ``/proc/loadavg`` is missing."""
    try:
        return float(_LOADAVG.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class LoadSampler:
    """Samples the one-minute load average every ``interval`` seconds in a daemon thread."""

    interval: float = 2.0
    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> LoadSampler:
        self._sample()
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 1)
        self._sample()

    def _sample(self) -> None:
        value = load_average()
        if value is not None:
            self.samples.append(value)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def summary(self) -> dict[str, float]:
        """``min``, ``mean`` and ``max`` of the samples (empty if none could be read)."""
        if not self.samples:
            return {}
        return {
            "min": round(min(self.samples), 2),
            "mean": round(sum(self.samples) / len(self.samples), 2),
            "max": round(max(self.samples), 2),
        }


@dataclass(frozen=True)
class Measurement:
    """Wall and CPU time, peak memory and load of one stage, plus what the stage reported.

    Attributes
    ----------
    stage : str
        The stage's name.
    seconds : float
        Wall time of the measured call (as the stage reports it; else of the whole process).
    cpu_seconds : float
        CPU time of all the stage's threads over the measured call (else of the process).
    peak_gib : float
        Peak resident memory of the stage's process.
    load : dict
        One-minute load average while the stage ran: ``min``, ``mean``, ``max``.
    result : dict
        The stage's own JSON report.
    """

    stage: str
    seconds: float
    cpu_seconds: float
    peak_gib: float
    load: dict[str, float]
    result: dict[str, Any]


def run_stage(
    stage: str, *args: str, env: dict[str, str] | None = None, timeout: float | None = None
) -> Measurement:
    """Run ``python -m benchmarks.stages STAGE ARGS…`` and measure it.

    The stage prints one JSON object on its last stdout line; ``seconds`` and ``cpu_seconds``
    inside it (when present) cover the measured call alone, without interpreter start-up and
    imports.

    Raises
    ------
    RuntimeError
        If the stage fails or runs past ``timeout`` seconds (it is killed then).
    """
    started = time.perf_counter()
    with LoadSampler() as sampler:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.stages", stage, *args],
            stdout=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            text=True,
        )
        timer = threading.Timer(timeout, proc.kill) if timeout else None
        if timer is not None:
            timer.start()
        try:
            assert proc.stdout is not None
            output = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer is not None:
                timer.cancel()
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        why = f"killed after {timeout:.0f} s" if code < 0 and timeout else f"exit status {code}"
        raise RuntimeError(f"benchmark stage {stage} failed ({why})")
    lines = [line for line in output.splitlines() if line.strip()]
    result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    return Measurement(
        stage,
        float(result.get("seconds", wall)),
        float(result.get("cpu_seconds", usage.ru_utime + usage.ru_stime)),
        usage.ru_maxrss / 1024**2,
        sampler.summary(),
        result,
    )


def _summary(m: Measurement) -> str:
    load = m.load
    shown = f"{load['min']:.1f}-{load['max']:.1f}" if load else "n/a"
    return (
        f"{m.stage:<10} wall {m.seconds:6.1f} s  CPU {m.cpu_seconds:6.1f} s  "
        f"peak {m.peak_gib:5.2f} GiB  load {shown}"
    )


def _figures(m: Measurement) -> dict[str, Any]:
    return {
        "seconds": round(m.seconds, 2),
        "cpu_seconds": round(m.cpu_seconds, 2),
        "peak_gib": round(m.peak_gib, 2),
        "load": m.load,
    }


def main(argv: list[str] | None = None) -> None:
    """Measure the build (and the reference) on an existing data home; print the figures."""
    parser = argparse.ArgumentParser(prog="benchmarks.measure", description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="SHOUHU_HOME with a store")
    parser.add_argument("--as-of", required=True, help="as-of date, YYYY-MM-DD")
    parser.add_argument("--repeat", type=int, default=1, help="build runs")
    parser.add_argument("--reference", action="store_true", help="also run the pandas reference")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per stage")
    args = parser.parse_args(argv)
    env = {"SHOUHU_HOME": str(args.home)}
    figures: dict[str, Any] = {"as_of": args.as_of, "builds": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "features.parquet")
        builds: list[Measurement] = []
        for _ in range(args.repeat):
            build = run_stage(
                "build", "--as-of", args.as_of, "--out", out, env=env, timeout=args.timeout
            )
            print(_summary(build), flush=True)
            builds.append(build)
            figures["builds"].append(_figures(build))
        if args.reference:
            ref = run_stage(
                "reference", "--as-of", args.as_of, "--compare", out, env=env, timeout=args.timeout
            )
            print(_summary(ref), flush=True)
            ratio = ref.seconds / min(b.seconds for b in builds)
            identical = ref.result.get("identical")
            figures["reference"] = {**_figures(ref), "identical": identical, "ratio": ratio}
            print(f"reference / fastest build: {ratio:.2f}x; identical output: {identical}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
