"""Speed and memory of the point-in-time feature store, against the pandas reference.

``python -m benchmarks.feature_store [--children 1000000] [--repeat 2]`` fills a scratch store
with ``benchmarks._rawfill`` (1M children, ~20M visits, 7M absence rows, 2M guardianship
rows…), then runs each measured call in a fresh process (so its peak RSS is its own) and
prints one table plus one JSON line:

``duckdb-cold``   ``FeatureStore(con).build(D)`` on a read-only connection to a store whose
                  superseded-versions tables were never built (first build after an ingest)
``duckdb-warm``   the same after ``FeatureStore(con).refresh()`` kept those tables in the file
``pandas``        ``ReferenceEngine(raw).build(D)`` with the raw tables already in memory
                  (loading them is reported separately as ``pandas_load_seconds``)
``spine``         ``as_of_frame`` for 20,000 children × 24 month-ends

Figures, never a pass/fail test. Stages: ``python -m benchmarks.feature_store stage NAME DB``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

AS_OF = date(2025, 6, 30)


def _stage(name: str, db: Path) -> dict[str, Any]:
    import pandas as pd

    from features.rawstore import connect
    from features.reference import ReferenceEngine, load_raw_frames
    from features.store import FeatureStore

    if name == "refresh":
        con = connect(db, threads=2, memory_limit="4GB")
        started = time.perf_counter()
        counts = FeatureStore(con).refresh()
        return {"seconds": time.perf_counter() - started, "superseded": counts}
    con = connect(db, read_only=True, threads=2, memory_limit="4GB")
    if name in ("duckdb-cold", "duckdb-warm"):
        started = time.perf_counter()
        frame = FeatureStore(con).build(AS_OF)
        return {
            "seconds": time.perf_counter() - started,
            "rows": len(frame),
            "columns": frame.shape[1],
        }
    if name == "pandas":
        started = time.perf_counter()
        engine = ReferenceEngine(load_raw_frames(con, only_used=True))
        loaded = time.perf_counter() - started
        con.close()
        started = time.perf_counter()
        frame = engine.build(AS_OF)
        return {
            "seconds": time.perf_counter() - started,
            "rows": len(frame),
            "pandas_load_seconds": loaded,
        }
    if name == "spine":
        store = FeatureStore(con)
        ids = store.registered_children(AS_OF)["child_id"].sample(20_000, random_state=0)
        month_ends = pd.date_range(end=pd.Timestamp(AS_OF), periods=24, freq="ME")
        spine = pd.MultiIndex.from_product([ids, month_ends], names=["child_id", "as_of"])
        started = time.perf_counter()
        frame = store.as_of_frame(spine.to_frame(index=False))
        return {"seconds": time.perf_counter() - started, "rows": len(frame)}
    raise SystemExit(f"unknown stage {name!r}")


def _measure(name: str, db: Path) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.feature_store", "stage", name, str(db)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"stage {name} failed")
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result.update(
        stage=name,
        wall_with_startup=time.perf_counter() - started,
        peak_gib=usage.ru_maxrss / 1024**2,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )
    return result


def main(argv: list[str] | None = None) -> None:
    """Fill a scratch store and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    stage = sub.add_parser("stage")
    stage.add_argument("name")
    stage.add_argument("db", type=Path)
    parser.add_argument("--children", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--db", type=Path, default=Path("benchmarks/out/feature_store.duckdb"))
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="keep an existing filled store")
    args = parser.parse_args(argv)
    if args.command == "stage":
        print(json.dumps(_stage(args.name, args.db), default=str))
        return

    from benchmarks._rawfill import FillSizes, fill
    from features.rawstore import connect

    db: Path = args.db
    db.parent.mkdir(parents=True, exist_ok=True)
    con = connect(db, threads=2, memory_limit="4GB")
    if args.reuse and con.sql("SELECT COUNT(*) FROM raw_children").fetchall()[0][0]:
        rows = {"reused": 1}
    else:
        con.close()
        db.unlink(missing_ok=True)
        con = connect(db, threads=2, memory_limit="4GB")
        started = time.perf_counter()
        rows = fill(con, FillSizes().scaled(args.children / 1_000_000), end=AS_OF)
        print(f"filled {db} in {time.perf_counter() - started:.0f} s: {rows}")
    # Cold builds must find no kept superseded tables (a fresh ingest has none either).
    for (name,) in con.sql(
        "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'pit_superseded%'"
    ).fetchall():
        con.execute(f"DROP TABLE {name}")
    con.close()

    results: list[dict[str, Any]] = []
    for name in ("duckdb-cold",) * args.repeat:
        results.append(_measure(name, db))
    results.append(_measure("refresh", db))
    for name in ("duckdb-warm",) * args.repeat + ("spine",):
        results.append(_measure(name, db))
    if not args.skip_pandas:
        results.append(_measure("pandas", db))
    for r in results:
        extra = f"  load {r['pandas_load_seconds']:.1f} s" if "pandas_load_seconds" in r else ""
        print(
            f"{r['stage']:<12} {r['seconds']:7.1f} s  cpu {r['cpu_seconds']:6.1f} s  "
            f"peak {r['peak_gib']:.2f} GiB{extra}"
        )
    best = {
        n: min(r["seconds"] for r in results if r["stage"] == n)
        for n in {r["stage"] for r in results}
    }
    if "pandas" in best:
        best["pandas_over_duckdb_warm"] = best["pandas"] / best["duckdb-warm"]
        best["pandas_over_duckdb_cold"] = best["pandas"] / best["duckdb-cold"]
    print(json.dumps({"rows": rows, "best_seconds": best, "runs": results}, default=str))


if __name__ == "__main__":
    main()
