"""Run one benchmark stage in a fresh process and measure its wall time and peak memory.

Each stage runs in its own interpreter so that its peak resident memory (``ru_maxrss`` from
``os.wait4``) belongs to that stage alone, not to whatever ran before it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Measurement:
    """Wall time and peak memory of one stage, plus what the stage reported about itself."""

    stage: str
    seconds: float
    peak_gib: float
    result: dict[str, Any]


def run_stage(stage: str, *args: str, env: dict[str, str] | None = None) -> Measurement:
    """Run ``python -m benchmarks.stages STAGE ARGS…`` and measure it.

    The stage prints one JSON object on its last stdout line; ``seconds`` inside it (when
    present) is the time of the measured call alone, without interpreter start-up and imports.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.stages", stage, *args],
        stdout=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        text=True,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"benchmark stage {stage} failed with status {status}")
    lines = [line for line in output.splitlines() if line.strip()]
    result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    seconds = float(result.get("seconds", wall))
    return Measurement(stage, seconds, usage.ru_maxrss / 1024**2, result)
