"""Scoring with explanations for a million children: wall time, peak memory, SHAP check.

``python -m benchmarks.scoring [--rows 1000000] [--home DIR] [--explain all|acted-on]``

1. **A real model and a real frame.** With ``--home`` (a data home holding a feature store
   and a registered model, e.g. one left by ``shouhu demo``) its newest version and the
   features of its last month end are used. Without it, a small synthetic population
   (``--children``, 24 months) is generated, ingested and trained on in a temporary home with
   the default training settings, so the model has the default shape.
2. **A million children, cheaply.** The real as-of frame (a few thousand children) is
   resampled with replacement to ``--rows`` rows: every row is a real child's feature vector,
   so the model's trees, the contributions and the sentences see realistic values, while
   building features for a million children is ``benchmarks/run.py``'s job, not this one's.
   Each resampled row gets a fresh child and household id, and rows are dealt into townships
   of ``--township-size`` children so capacity bands are per area as in production.
3. **The measured run**, in a fresh process whose peak resident memory (``ru_maxrss``) is
   its own: read the frame and the model, then ``models.scoring.score_frame`` (missing-rate
   and spread guards, calibrated probabilities of every outcome with the ``p_any`` band,
   tiers with capacity per township, and top-5 reasons with their Chinese and English
   sentences), i.e. everything of ``shouhu models score`` except the feature build and the
   write. ``--explain acted-on`` explains only T1-T3 at once (T4 on demand).
4. **SHAP against LightGBM.** On ``--shap-rows`` rows: ``shap.TreeExplainer`` (path-dependent)
   against LightGBM's own ``pred_contrib`` on the same encoded matrix, as a time ratio, and
   their largest absolute difference (``models.explain.contributions_agree``).

Wall time depends on what else the machine runs, so the CPU time of the measured call is
printed beside it (with one LightGBM thread it is the wall time on an idle core), and the load
average. Figures, never a pass/fail test; ``main(argv)`` prints them and returns 0.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from models.bundle import ModelBundle

#: Population generated when no ``--home`` is given: enough children for every category
#: level and rule to occur, small enough to ingest and train in a few minutes.
SMALL_CHILDREN = 3000
MONTHS = 24
START = date(2024, 1, 1)
ONE_DAY = timedelta(days=1)


def _prepare_home(children: int, seed: int, folder: Path) -> Path:
    """Generate, ingest and train a small population in ``folder``; return the home."""
    from features.ingest import ingest_paths
    from features.mapping import load_mapping
    from features.rawstore import connect
    from features.store import FeatureStore
    from features.synthetic import SynthConfig, generate
    from models.train import train_from_settings
    from shouhu.settings import DEMO_PSEUDONYM_KEY, Settings, TrainSettings

    config = SynthConfig(children=children, months=MONTHS, start=START, seed=seed, fmt="parquet")
    generate(config, folder / "synth", progress=False)
    # Fewer bootstrap resamples than a production run: they change the intervals' last
    # digit, not the model, and this benchmark measures scoring.
    settings = Settings(
        home=folder / "home",
        pseudonym_key=DEMO_PSEUDONYM_KEY,
        train=TrainSettings(n_bootstrap=40, n_resamples=20),
    )
    con = connect(settings.store_path)
    try:
        ingest_paths(
            con,
            [folder / "synth" / "sources"],
            mapping=load_mapping(None),
            key=DEMO_PSEUDONYM_KEY,
            max_future_days=1,
            progress=False,
        )
        FeatureStore(con).refresh()
    finally:
        con.close()
    train_from_settings(settings)
    return settings.home


def _newest_bundle(home: Path) -> tuple[ModelBundle, int]:
    """The champion of ``home`` if there is one, else its newest registered version."""
    from models.cli import registry_from_settings
    from shouhu.settings import Settings

    registry = registry_from_settings(Settings(home=home))
    champion = registry.champion_info()
    version = (
        champion.version
        if champion is not None
        else max(v.version for v in registry.list_versions())
    )
    return registry.load_bundle(version), version


def _as_of_frame(home: Path) -> pd.DataFrame:
    """Every feature of every child registered on the newest month end of the store."""
    from features.rawstore import connect
    from features.store import FeatureStore
    from models.dataset import month_end, newest_record

    con = connect(home / "features.duckdb", read_only=True)
    try:
        newest = newest_record(con)
        # The last month end on or before the newest record (a month not yet over has none).
        as_of = newest if month_end(newest) == newest else newest.replace(day=1) - ONE_DAY
        return FeatureStore(con).build(as_of)
    finally:
        con.close()


def resample(frame: pd.DataFrame, rows: int, *, township_size: int, seed: int) -> pd.DataFrame:
    """``rows`` children drawn with replacement from ``frame``, with fresh ids and areas.

    Parameters
    ----------
    frame : DataFrame
        A real as-of frame (``FeatureStore.build``).
    rows : int
        Children wanted.
    township_size : int
        Children per township: rows are dealt into townships of this size, in villages of a
        tenth of it, so capacity applies per area as in production.
    seed : int
        Seed of the draw.

    Returns
    -------
    DataFrame
        Same columns and dtypes as ``frame``.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    picked = frame.iloc[rng.integers(0, len(frame), rows)].reset_index(drop=True)
    serial = np.arange(rows)
    town = serial // township_size
    picked["child_id"] = np.char.add("bench-c", serial.astype("U8"))
    picked["household_pid"] = np.char.add("bench-h", serial.astype("U8"))
    picked["county_code"] = "990100"
    picked["township_code"] = np.char.add("990100", np.char.zfill(town.astype("U3"), 3))
    village = np.char.zfill((serial // max(township_size // 10, 1) % 1000).astype("U3"), 3)
    picked["village_code"] = np.char.add(picked["township_code"].to_numpy(dtype="U9"), village)
    for column in ("child_id", "household_pid", "county_code", "township_code", "village_code"):
        picked[column] = picked[column].astype("str")
    return picked


def _shap_check(bundle: ModelBundle, frame: pd.DataFrame) -> dict[str, Any]:
    """Time ``shap.TreeExplainer`` against LightGBM's ``pred_contrib`` on the same rows."""
    import numpy as np

    from models.bundle import ANY
    from models.explain import contributions_agree

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap

    model = bundle.models[ANY].model
    booster = model.booster_
    matrix = model._matrix(frame[list(bundle.feature_names)])
    started = time.perf_counter()
    own = booster.predict(matrix, pred_contrib=True, num_threads=1)
    lightgbm_seconds = time.perf_counter() - started
    explainer = shap.TreeExplainer(booster, feature_perturbation="tree_path_dependent")
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        values = np.asarray(explainer.shap_values(matrix), dtype=np.float64)
    shap_seconds = time.perf_counter() - started
    margin = booster.predict(matrix, raw_score=True, num_threads=1)
    return {
        "rows": len(frame),
        "shap_version": shap.__version__,
        "lightgbm_seconds": round(lightgbm_seconds, 3),
        "shap_seconds": round(shap_seconds, 3),
        "time_ratio_shap_over_lightgbm": round(shap_seconds / max(lightgbm_seconds, 1e-9), 3),
        "max_abs_difference": contributions_agree(bundle, frame),
        "max_abs_difference_features_here": float(np.max(np.abs(values - own[:, :-1]))),
        # The contributions plus the bias sum to the margin (what every reason rests on).
        "max_abs_sum_minus_margin": float(np.max(np.abs(own.sum(axis=1) - margin))),
    }


def _measure(args: argparse.Namespace) -> dict[str, Any]:
    """The measured process: read frame and bundle, score with reasons, report."""
    import pandas as pd

    from models.policy import load_policy
    from models.scoring import score_frame

    started = time.perf_counter()
    frame = pd.read_parquet(args.frame)
    with Path(args.bundle).open("rb") as handle:
        bundle = pickle.load(handle)  # our own file, written by the parent process
    read_seconds = time.perf_counter() - started
    policy = load_policy()
    started = time.perf_counter()
    cpu_started = time.process_time()
    scores = score_frame(
        frame,
        bundle,
        policy,
        explain_tiers=None if args.explain == "all" else ("T1", "T2", "T3"),
        explain_threads=args.threads,
    )
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    run = scores.attrs["run"]
    reasons = scores["reasons"].map(len)
    return {
        "children": len(scores),
        "read_seconds": round(read_seconds, 2),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "explained": run["explained"],
        "tiers": run["tiers"],
        "children_with_reasons": int((reasons > 0).sum()),
        "mean_reasons": round(float(reasons.mean()), 2),
        "peak_rss_gib_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scoring", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="children to score")
    parser.add_argument("--home", type=Path, help="data home with a store and a model")
    parser.add_argument("--children", type=int, default=SMALL_CHILDREN)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--township-size", type=int, default=740)
    parser.add_argument(
        "--explain", choices=("all", "acted-on"), default="all", help="who gets reasons at once"
    )
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads for reasons")
    parser.add_argument("--shap-rows", type=int, default=20_000)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    # Internal: the measured child process.
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--frame", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bundle", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 (figures are never a failure).
    """
    args = _parser().parse_args(argv)
    if args.measure:
        print(json.dumps(_measure(args)))
        return 0

    with tempfile.TemporaryDirectory(prefix="shouhu-bench-scoring-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        home = args.home or _prepare_home(args.children, args.seed, folder)
        prepare_seconds = time.perf_counter() - started
        bundle, version = _newest_bundle(home)
        real = _as_of_frame(home)
        big = resample(real, args.rows, township_size=args.township_size, seed=args.seed)
        frame_path, bundle_path = folder / "frame.parquet", folder / "bundle.pkl"
        big.to_parquet(frame_path, index=False)
        with bundle_path.open("wb") as handle:
            pickle.dump(bundle, handle)
        del big

        started = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.scoring",
                "--measure",
                "--frame",
                str(frame_path),
                "--bundle",
                str(bundle_path),
                "--explain",
                args.explain,
                "--threads",
                str(args.threads),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        output = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"the measured scoring process failed with status {status}")
        measured = json.loads(output.strip().splitlines()[-1])
        shap_rows = real.sample(
            n=args.shap_rows, replace=args.shap_rows > len(real), random_state=args.seed
        )
        check = _shap_check(bundle, shap_rows)

    model = bundle.models["any"].model
    figures = {
        "rows": args.rows,
        "source": str(args.home) if args.home else f"synthetic {args.children} children",
        "resampled_from": len(real),
        "model_version": version,
        "model_shape": {
            "trees": int(model.booster_.num_trees()),
            "num_leaves": int(model.get_params()["num_leaves"]),
            "features": len(bundle.feature_names),
        },
        "explain": args.explain,
        "threads": args.threads,
        "prepare_seconds": round(prepare_seconds, 1),
        "score_seconds": measured["seconds"],
        "score_cpu_seconds": measured["cpu_seconds"],
        "load_average": round(os.getloadavg()[0], 1),
        "process_wall_seconds": round(wall, 1),
        "peak_rss_gib": round(usage.ru_maxrss / 1024**2, 2),
        "explained": measured["explained"],
        "tiers": measured["tiers"],
        "shap_vs_lightgbm": check,
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"scoring with explanations: {args.rows:,} children ({figures['source']}, resampled")
    print(f"  from {len(real):,} real as-of rows), model v{version}: {figures['model_shape']}")
    print(
        f"  score + tiers + reasons ({args.explain}, {args.threads} thread(s)): "
        f"{measured['seconds']:.1f} s wall, {measured['cpu_seconds']:.1f} s CPU (load "
        f"average {figures['load_average']}); process wall {wall:.1f} s (reading the frame "
        f"{measured['read_seconds']:.1f} s); peak RSS {figures['peak_rss_gib']:.2f} GiB"
    )
    print(f"  explained {measured['explained']:,} children; tiers {measured['tiers']}")
    print(
        f"  shap.TreeExplainer vs LightGBM pred_contrib on {check['rows']:,} rows: "
        f"{check['shap_seconds']:.2f} s vs {check['lightgbm_seconds']:.2f} s "
        f"(ratio {check['time_ratio_shap_over_lightgbm']:.2f}), max |difference| "
        f"{check['max_abs_difference']:.2e}; contributions sum to the margin within "
        f"{check['max_abs_sum_minus_margin']:.1e}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
