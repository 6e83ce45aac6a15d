"""The benchmark stages, each run in its own process by ``benchmarks.measure.run_stage``.

Every stage prints one JSON object as its last stdout line; its ``seconds`` and
``cpu_seconds`` (all threads of the process) cover the measured call only, not interpreter
start-up or imports.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from shouhu.settings import get_settings

T = TypeVar("T")


def _timed(call: Callable[[], T]) -> tuple[T, float, float]:
    """Run ``call``; return its result, wall seconds and CPU seconds (every thread)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _synth(args: argparse.Namespace) -> dict[str, Any]:
    from features.synthetic import SynthConfig, generate

    config = SynthConfig(children=args.children, months=args.months, seed=args.seed, fmt="parquet")
    summary, seconds, cpu = _timed(lambda: generate(config, Path(args.out), progress=False))
    return {"seconds": seconds, "cpu_seconds": cpu, "rows": summary["rows"]}


def _ingest(args: argparse.Namespace) -> dict[str, Any]:
    """``ingest_paths`` over every batch, then ``FeatureStore.refresh`` (timed apart)."""
    from features.ingest import ingest_paths
    from features.mapping import load_mapping
    from features.rawstore import connect
    from features.store import FeatureStore

    settings = get_settings()
    con = connect(
        settings.store_path,
        threads=settings.store.threads,
        memory_limit=settings.store.memory_limit,
    )
    summary, seconds, cpu = _timed(
        lambda: ingest_paths(
            con,
            [Path(args.sources)],
            mapping=load_mapping(None),
            key=settings.pseudonym_key.get_secret_value(),
            max_future_days=settings.ingest.max_future_days,
            progress=False,
        )
    )
    _, refresh_seconds, refresh_cpu = _timed(lambda: FeatureStore(con).refresh())
    con.close()
    out = summary.as_dict()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "refresh_seconds": refresh_seconds,
        "refresh_cpu_seconds": refresh_cpu,
        "files": out["files"],
        "accepted": sum(out["accepted"].values()),
        "rejected": sum(out["rejected"].values()),
        "duplicates_skipped": out["duplicates_skipped"],
        "file_errors": len(out["file_errors"]),
        "store_gib": settings.store_path.stat().st_size / 1024**3,
    }


def _build(args: argparse.Namespace) -> dict[str, Any]:
    from features.rawstore import connect
    from features.store import FeatureStore

    settings = get_settings()
    con = connect(
        settings.store_path,
        read_only=True,
        threads=settings.store.threads,
        memory_limit=settings.store.memory_limit,
    )
    frame, seconds, cpu = _timed(lambda: FeatureStore(con).build(date.fromisoformat(args.as_of)))
    con.close()
    frame.to_parquet(args.out, index=False)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "children": len(frame),
        "columns": frame.shape[1],
        "threads": settings.store.threads,
        "memory_limit": settings.store.memory_limit,
    }


def _reference(args: argparse.Namespace) -> dict[str, Any]:
    """The pandas reference engine: raw tables loaded first (timed apart), then the build."""
    import pandas as pd

    from features.rawstore import connect
    from features.reference import ReferenceEngine, load_raw_frames

    settings = get_settings()
    con = connect(settings.store_path, read_only=True)
    # only the columns some feature reads: the same result, in less memory
    engine, load_seconds, _ = _timed(lambda: ReferenceEngine(load_raw_frames(con, only_used=True)))
    con.close()
    frame, seconds, cpu = _timed(lambda: engine.build(date.fromisoformat(args.as_of)))
    duck = pd.read_parquet(args.compare)
    try:
        pd.testing.assert_frame_equal(
            frame.reset_index(drop=True), duck.reset_index(drop=True), check_dtype=False
        )
        identical = True
    except AssertionError:
        identical = False
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "load_seconds": load_seconds,
        "identical": identical,
        "children": len(frame),
        "columns": frame.shape[1],
    }


STAGES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "synth": _synth,
    "ingest": _ingest,
    "build": _build,
    "reference": _reference,
}


def main(argv: list[str] | None = None) -> None:
    """Parse the stage's arguments, run it, and print its JSON result."""
    parser = argparse.ArgumentParser(prog="benchmarks.stages")
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--children", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out")
    parser.add_argument("--sources")
    parser.add_argument("--as-of", dest="as_of")
    parser.add_argument("--compare")
    args = parser.parse_args(argv)
    result = STAGES[args.stage](args)
    sys.stdout.write(json.dumps(result, default=str) + "\n")


if __name__ == "__main__":
    main()
