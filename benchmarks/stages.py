"""The benchmark stages, each run in its own process by ``benchmarks.measure.run_stage``.

Every stage prints one JSON object as its last stdout line; its ``seconds`` covers the measured
call only (not interpreter start-up or imports).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from shouhu.settings import get_settings


def _synth(args: argparse.Namespace) -> dict[str, Any]:
    from features.synthetic import SynthConfig, generate

    config = SynthConfig(children=args.children, months=args.months, seed=args.seed, fmt="parquet")
    started = time.perf_counter()
    summary = generate(config, Path(args.out), progress=False)
    return {"seconds": time.perf_counter() - started, "rows": summary["rows"]}


def _ingest(args: argparse.Namespace) -> dict[str, Any]:
    from features.ingest import ingest_paths
    from features.mapping import load_mapping
    from features.rawstore import connect
    from features.store import FeatureStore

    settings = get_settings()
    con = connect(settings.store_path, memory_limit=settings.store.memory_limit)
    started = time.perf_counter()
    summary = ingest_paths(
        con,
        [Path(args.sources)],
        mapping=load_mapping(None),
        key=settings.pseudonym_key.get_secret_value(),
        max_future_days=settings.ingest.max_future_days,
        progress=False,
    )
    FeatureStore(con).refresh()
    seconds = time.perf_counter() - started
    con.close()
    out = summary.as_dict()
    return {
        "seconds": seconds,
        "accepted": sum(out["accepted"].values()),
        "rejected": sum(out["rejected"].values()),
    }


def _build(args: argparse.Namespace) -> dict[str, Any]:
    from features.rawstore import connect
    from features.store import FeatureStore

    settings = get_settings()
    con = connect(settings.store_path, read_only=True, memory_limit=settings.store.memory_limit)
    started = time.perf_counter()
    frame = FeatureStore(con).build(date.fromisoformat(args.as_of))
    seconds = time.perf_counter() - started
    con.close()
    frame.to_parquet(args.out, index=False)
    return {"seconds": seconds, "children": len(frame), "columns": frame.shape[1]}


def _reference(args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd

    from features.rawstore import connect
    from features.reference import ReferenceEngine

    settings = get_settings()
    con = connect(settings.store_path, read_only=True)
    started = time.perf_counter()
    engine = ReferenceEngine.from_connection(con)
    loaded = time.perf_counter()
    frame = engine.build(date.fromisoformat(args.as_of))
    seconds = time.perf_counter() - loaded
    con.close()
    duck = pd.read_parquet(args.compare)
    try:
        pd.testing.assert_frame_equal(
            frame.reset_index(drop=True), duck.reset_index(drop=True), check_dtype=False
        )
        identical = True
    except AssertionError:
        identical = False
    return {"seconds": seconds, "load_seconds": loaded - started, "identical": identical}


STAGES = {"synth": _synth, "ingest": _ingest, "build": _build, "reference": _reference}


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
