"""``make bench``: speed and memory of each pipeline stage, printed as a table.

For each population size: synthetic generation (Parquet ledgers), ingestion into the DuckDB
store, one as-of feature build, and the same features computed by the plain-pandas reference
engine (``features.reference``), reported as a ratio. Targets for 1M children on a 2-core,
24 GiB machine: the feature build under 30 s and 4 GiB, at least 3× faster than pandas.

These are figures, not tests: nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

from benchmarks.measure import Measurement, run_stage
from shouhu.demo import last_month_end

OUT = Path(__file__).resolve().parent / "out"


def bench_features(children: int, months: int, seed: int, keep: bool) -> dict[str, Any]:
    """Run the four feature-pipeline stages for one population size."""
    work = OUT / f"features-{children}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    env = {"SHOUHU_HOME": str(work / "home")}
    as_of = last_month_end(date(2024, 1, 1), months).isoformat()
    synth = run_stage(
        "synth",
        "--children",
        str(children),
        "--months",
        str(months),
        "--seed",
        str(seed),
        "--out",
        str(work / "synthetic"),
    )
    ingest = run_stage("ingest", "--sources", str(work / "synthetic" / "sources"), env=env)
    build = run_stage("build", "--as-of", as_of, "--out", str(work / "features.parquet"), env=env)
    reference = run_stage(
        "reference", "--as-of", as_of, "--compare", str(work / "features.parquet"), env=env
    )
    if not keep:
        shutil.rmtree(work)
    return {
        "children": children,
        "months": months,
        "as_of": as_of,
        "stages": {m.stage: _row(m) for m in (synth, ingest, build, reference)},
        "rows_generated": sum(synth.result.get("rows", {}).values()),
        "rows_accepted": ingest.result.get("accepted"),
        "features": build.result.get("columns"),
        "registered_children": build.result.get("children"),
        "reference_identical": reference.result.get("identical"),
        "speedup_vs_pandas": round(reference.seconds / build.seconds, 2),
    }


def _row(m: Measurement) -> dict[str, float]:
    return {"seconds": round(m.seconds, 2), "peak_gib": round(m.peak_gib, 2)}


def _print(results: list[dict[str, Any]]) -> None:
    print(f"{'children':>10} {'stage':<10} {'seconds':>9} {'peak GiB':>9}")
    for res in results:
        for stage, row in res["stages"].items():
            print(
                f"{res['children']:>10} {stage:<10} {row['seconds']:>9.2f} {row['peak_gib']:>9.2f}"
            )
        print(
            f"{res['children']:>10} as-of {res['as_of']}: {res['registered_children']} children × "
            f"{res['features']} columns; DuckDB build {res['speedup_vs_pandas']}× faster than the "
            f"pandas reference (identical output: {res['reference_identical']})"
        )


def main() -> None:
    """Run the benchmarks and print their figures; also write benchmarks/out/results.json."""
    parser = argparse.ArgumentParser(prog="benchmarks.run")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep generated data under out/")
    args = parser.parse_args()
    results = [bench_features(n, args.months, args.seed, args.keep) for n in args.sizes]
    _print(results)
    OUT.mkdir(exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
