"""``make bench``: speed and memory figures of the pipeline, the scoring run and the service.

Three sections, each printed as it finishes (``--only`` picks some):

- **features** (issue 2): for each population size (default 100,000 and 1,000,000
  children × 24 months): synthetic generation (Parquet ledgers), ingestion into the DuckDB
  store (and the store's refresh of superseded versions), one as-of feature build, and the
  same features computed by the plain-pandas reference engine (``features.reference``), with
  the ratio and whether the two outputs are identical. Each stage runs in its own process:
  wall time, CPU time of all its threads, peak resident memory, and the machine's one-minute
  load average while it ran (the machine is shared: compare wall times only at similar load).

  Targets for 1M children on this 2-core, 24 GiB machine: the feature build under 30 s and
  under 4 GiB, and at least 3× faster than the pandas reference.
- **scoring** (issue 3): ``benchmarks.scoring`` on a demo home's model and features,
  resampled to a million children, once explaining T1-T3 at once (what a scoring run does)
  and once explaining everyone; with the SHAP library against LightGBM's own contributions.
  Aim: under 120 s and 8 GiB.
- **service** (issue 4): ``benchmarks.service_load`` against one uvicorn worker serving the
  demo home, authentication and audit on. Aims: p99 under 15 ms for a score with its
  explanation and under 30 ms for the watch list, at least 300 requests per second, zero
  errors in 60 s of mixed load.

The scoring and service sections share one data home built by ``shouhu demo --no-serve``
(``--demo-children``, default 20,000 as the demo) under ``benchmarks/out/``, kept between runs
(the population and the committed ``features/`` and ``models/`` trees it was built from are
recorded beside it; a mismatch rebuilds it). Aims and targets are reported, met or not;
nothing here fails on a slow machine.

The figures are also written as JSON to ``benchmarks/results/latest.json`` (committed: the
latest figures, which ``docs/feature-store.md`` quotes); generated data goes to the
git-ignored ``benchmarks/out/`` and is removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from benchmarks.measure import Measurement, run_stage
from shouhu.demo import last_month_end

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RESULTS = HERE / "results" / "latest.json"

#: Issue 2's targets for the one-date feature build of 1,000,000 children.
TARGET_CHILDREN = 1_000_000
TARGET_BUILD_SECONDS = 30.0
TARGET_BUILD_GIB = 4.0
TARGET_SPEEDUP = 3.0
#: The sections of ``make bench``.
SECTIONS = ("features", "scoring", "service")


def bench_features(
    children: int, months: int, seed: int, *, keep: bool, timeout: float
) -> dict[str, Any]:
    """Run the feature-pipeline stages for one population size; return their figures."""
    work = OUT / f"features-{children}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    env = {"SHOUHU_HOME": str(work / "home")}
    as_of = last_month_end(date(2024, 1, 1), months).isoformat()
    features = str(work / "features.parquet")
    try:
        synth = run_stage(
            "synth",
            *("--children", str(children), "--months", str(months), "--seed", str(seed)),
            *("--out", str(work / "synthetic")),
            timeout=timeout,
        )
        sources = str(work / "synthetic" / "sources")
        ingest = run_stage("ingest", "--sources", sources, env=env, timeout=timeout)
        build = run_stage("build", "--as-of", as_of, "--out", features, env=env, timeout=timeout)
        reference = run_stage(
            "reference", "--as-of", as_of, "--compare", features, env=env, timeout=timeout
        )
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    refresh = {
        "seconds": round(ingest.result["refresh_seconds"], 2),
        "cpu_seconds": round(ingest.result["refresh_cpu_seconds"], 2),
        "peak_gib": None,  # the ingest process's: the refresh runs right after it
        "load": ingest.load,
    }
    return {
        "children": children,
        "months": months,
        "seed": seed,
        "as_of": as_of,
        "stages": {
            "synth": _row(synth),
            "ingest": _row(ingest),
            "refresh": refresh,
            "build": _row(build),
            "reference": _row(reference),
        },
        "rows_generated": sum(synth.result.get("rows", {}).values()),
        "ingest": {
            k: ingest.result.get(k)
            for k in ("files", "accepted", "rejected", "duplicates_skipped", "file_errors")
        },
        "store_gib": round(ingest.result.get("store_gib", 0.0), 2),
        "reference_load_seconds": round(reference.result.get("load_seconds", 0.0), 2),
        "features": build.result.get("columns"),
        "registered_children": build.result.get("children"),
        "duckdb": {k: build.result.get(k) for k in ("threads", "memory_limit")},
        "reference_identical": reference.result.get("identical"),
        "speedup_vs_pandas": round(reference.seconds / build.seconds, 2),
    }


def _row(m: Measurement) -> dict[str, Any]:
    return {
        "seconds": round(m.seconds, 2),
        "cpu_seconds": round(m.cpu_seconds, 2),
        "peak_gib": round(m.peak_gib, 2),
        "load": m.load,
    }


def _notes(res: dict[str, Any], stage: str) -> str:
    row = res["stages"][stage]
    if stage == "synth":
        return f"{res['rows_generated']:,} ledger rows"
    if stage == "ingest":
        ing = res["ingest"]
        rate = (ing["accepted"] + ing["rejected"] + ing["duplicates_skipped"]) / row["seconds"]
        return (
            f"{ing['files']} files: {ing['accepted']:,} rows stored, {ing['rejected']:,} "
            f"rejected, {ing['duplicates_skipped']:,} duplicates ({rate:,.0f} rows/s); "
            f"store {res['store_gib']:.2f} GiB"
        )
    if stage == "refresh":
        return "superseded versions kept in the store (ingest process; peak as ingest)"
    if stage == "build":
        threads = res["duckdb"]["threads"] or "auto"
        return (
            f"{res['registered_children']:,} children × {res['features']} columns; DuckDB "
            f"threads {threads}, memory_limit {res['duckdb']['memory_limit']}"
        )
    return f"after loading the raw tables into pandas ({res['reference_load_seconds']:.1f} s)"


def format_table(results: list[dict[str, Any]]) -> list[str]:
    """The figures as text lines: one row per size and stage, then ratios and targets."""
    lines = [
        f"{'children':>10}  {'stage':<10} {'wall s':>8} {'CPU s':>8} {'peak GiB':>9}  "
        f"{'load avg mean/max':>17}  notes"
    ]
    for res in results:
        for stage, row in res["stages"].items():
            peak = "—" if row["peak_gib"] is None else f"{row['peak_gib']:.2f}"
            load = row["load"]
            shown = f"{load['mean']:.1f} / {load['max']:.1f}" if load else "n/a"
            lines.append(
                f"{res['children']:>10,}  {stage:<10} {row['seconds']:>8.1f} "
                f"{row['cpu_seconds']:>8.1f} {peak:>9}  {shown:>17}  {_notes(res, stage)}"
            )
        identical = {True: "yes", False: "NO"}.get(res["reference_identical"], "n/a")
        lines.append(
            f"{res['children']:>10,}  as of {res['as_of']}: DuckDB build "
            f"{res['speedup_vs_pandas']:.2f}× faster than the pandas reference; identical "
            f"output: {identical}"
        )
    target = next((r for r in results if r["children"] == TARGET_CHILDREN), None)
    if target is not None:
        build = target["stages"]["build"]
        checks = [
            (f"build under {TARGET_BUILD_SECONDS:.0f} s", build["seconds"] < TARGET_BUILD_SECONDS,
             f"{build['seconds']:.1f} s"),
            (f"build under {TARGET_BUILD_GIB:.0f} GiB", build["peak_gib"] < TARGET_BUILD_GIB,
             f"{build['peak_gib']:.2f} GiB"),
            (f"≥{TARGET_SPEEDUP:.0f}× the pandas reference",
             target["speedup_vs_pandas"] >= TARGET_SPEEDUP,
             f"{target['speedup_vs_pandas']:.2f}×"),
            ("identical output", target["reference_identical"] is True,
             str(target["reference_identical"])),
        ]  # fmt: skip
        lines.append(
            f"targets at {TARGET_CHILDREN:,} children: "
            + "; ".join(f"{name}: {got} ({'met' if ok else 'NOT met'})" for name, ok, got in checks)
        )
    return lines


def _commit() -> str:
    """The checked-out commit, marked when the work tree has local changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' + local changes' if dirty else ''}"


def _machine() -> dict[str, Any]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {"cores": os.cpu_count(), "memory_gib": round(memory, 1)}


def demo_home(children: int, seed: int, timeout: float) -> Path:
    """A data home with a champion and a scoring run, built by ``shouhu demo --no-serve``.

    Kept under ``benchmarks/out/`` and reused while the population and the committed
    ``features/`` and ``models/`` trees are those it was built from.
    """
    home = OUT / f"demo-{children}"
    key = json.dumps({"children": children, "seed": seed, "trees": _trees("features", "models")})
    marker = home / "bench-built-from.json"
    if marker.is_file() and marker.read_text(encoding="utf-8") == key:
        return home
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    started = datetime.now()
    print(f"[{started:%H:%M}] building the demo home of {children:,} children …", flush=True)
    shouhu = str(Path(sys.executable).with_name("shouhu"))
    subprocess.run(
        [shouhu, "demo", "--no-serve", "--children", str(children), "--seed", str(seed)],
        env={**os.environ, "SHOUHU_HOME": str(home)},
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=timeout,
    )
    marker.write_text(key, encoding="utf-8")
    return home


def bench_module(module: str, argv: list[str], timeout: float) -> dict[str, Any]:
    """Run ``python -m benchmarks.<module>`` (its table goes to stdout); return its JSON figures."""
    out = OUT / f"{module}.json"
    out.unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *argv, "--json", str(out)],
        check=True,
        timeout=timeout,
    )
    figures: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return figures


def _trees(*folders: str) -> dict[str, str]:
    """The committed tree hash of each folder (what a kept home was built from)."""
    hashes = {}
    for folder in folders:
        try:
            hashes[folder] = subprocess.run(
                ["git", "rev-parse", f"HEAD:{folder}"],
                cwd=HERE.parent,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            hashes[folder] = "unknown"
    return hashes


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks, print their figures and write them as JSON."""
    parser = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=SECTIONS, nargs="+", default=list(SECTIONS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--demo-children", type=int, default=20_000)
    parser.add_argument("--scoring-rows", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of mixed load")
    parser.add_argument("--keep", action="store_true", help="keep generated data under out/")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file for the figures")
    parser.add_argument(
        "--stage-timeout", type=float, default=4 * 3600, help="seconds before a stage is killed"
    )
    args = parser.parse_args(argv)
    started = datetime.now()
    report: dict[str, Any] = {"started": started.isoformat(timespec="seconds")}
    if "features" in args.only:
        results = []
        for n in args.sizes:
            results.append(
                bench_features(
                    n, args.months, args.seed, keep=args.keep, timeout=args.stage_timeout
                )
            )
            print(f"[{datetime.now():%H:%M}] {n:,} children done", flush=True)
        for line in format_table(results):
            print(line)
        report["results"] = results
    if "scoring" in args.only or "service" in args.only:
        home = demo_home(args.demo_children, args.seed, args.stage_timeout)
        if "scoring" in args.only:
            report["scoring"] = [
                bench_module(
                    "scoring",
                    ["--home", str(home), "--rows", str(args.scoring_rows), "--explain", explain],
                    args.stage_timeout,
                )
                for explain in ("acted-on", "all")
            ]
        if "service" in args.only:
            report["service"] = bench_module(
                "service_load",
                ["--home", str(home), "--duration", str(args.duration)],
                args.stage_timeout,
            )
    report["finished"] = datetime.now().isoformat(timespec="seconds")
    report["commit"] = _commit()
    report["machine"] = machine = _machine()
    print(
        f"Shouhu benchmarks {report['started']} – {report['finished'][11:]}, "
        f"{machine['cores']} cores, {machine['memory_gib']} GiB, commit {report['commit']}"
    )
    # A run of some sections keeps the other sections' last figures.
    kept = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
    kept.update(report)
    kept["measured"] = {
        **kept.get("measured", {}),
        **{name: f"{report['finished']} at {report['commit']}" for name in args.only},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(kept, indent=2, ensure_ascii=False) + "\n")
    print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
