"""Scoring with explanations for a million children: time, peak memory, and the strategy.

``python -m benchmarks.explain [--rows 1000000] [--shapes 200x31 100x15] [--share 0.36]``
runs, for each model shape (trees x leaves), one measured process that:

1. makes ``rows`` children of the real model feature list (``features.definitions``) with
   plausible values per kind (counts, days since, scores, shares, flags, category codes) and
   trains a ``RiskClassifier`` of that shape on 50,000 other rows (not timed);
2. scores every child (``ModelBundle.predict``: calibrated ``p_any`` and its band);
3. explains at once only the children who need it now: the top ``share`` of ``p_any``,
   standing in for T1-T3 (the policy's mix is at most 6 + 10 + 20 = 36 %), with exact TreeSHAP
   top-5 reasons and their sentences (``models.explain.explain_frame``: batches of 50,000
   float rows, every core). T4 children are explained on demand; the per-child cost is
   measured too;
4. compares ``shap.TreeExplainer`` with LightGBM's own ``pred_contrib`` on the same rows
   (time ratio and largest difference).

Peak memory is the measured process's own ``ru_maxrss`` (it includes the 1M-row frame).
Figures, never a pass/fail test. ``bench_explain()`` returns one shape's figures for
``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from models.bundle import ModelBundle

TRAIN_ROWS = 50_000
SHAP_ROWS = 20_000
ON_DEMAND_CHILDREN = 50


def _window_days(name: str) -> int:
    for part in reversed(name.split("_")):
        if part.endswith("d") and part[:-1].isdigit():
            return int(part[:-1])
    return 120  # a term


def synthetic_features(rows: int, seed: int = 7) -> pd.DataFrame:
    """``rows`` children with every model feature, in the dtypes the feature store produces.

    Values follow each feature's kind and unit (registry metadata), with children differing in
    how much happens to them (counts are Poisson with a gamma-distributed rate), and missing
    values where the store has them (days since an event that never happened, no screening).
    """
    import numpy as np
    import pandas as pd

    from features.definitions import model_feature_names
    from models.explain import feature_texts

    rng = np.random.default_rng(seed)
    activity = rng.gamma(0.6, 1 / 0.6, rows)  # a child's rate of everything, mean 1
    columns: dict[str, Any] = {}
    count_rates = {
        "visits": 0.9,
        "days": 0.4,
        "weeks": 0.12,
        "months": 0.02,
        "changes": 0.02,
        "incidents": 0.004,
        "records": 0.004,
        "screenings": 0.01,
    }
    for name in model_feature_names():
        text = feature_texts()[name]
        if text.kind == "flag":
            values = pd.array(rng.random(rows) < 0.08, dtype="boolean")
            values[rng.random(rows) < 0.02] = pd.NA
            columns[name] = values
        elif text.kind == "category":
            codes = list(text.labels)
            p = rng.dirichlet(np.ones(len(codes)) * 0.8)
            picked = rng.choice(len(codes), rows, p=p)
            cat = pd.Categorical.from_codes(picked, categories=pd.Index(codes))
            cat[rng.random(rows) < 0.03] = np.nan
            columns[name] = cat
        elif text.kind == "count":
            rate = count_rates.get(text.unit, 0.01) * _window_days(name) / 30
            if name.startswith("visits_") and not name[len("visits_")].isdigit():
                rate *= 0.1  # visits that noticed something
            columns[name] = rng.poisson(rate * activity).astype(np.int32)
        elif text.kind == "days_since":
            days = np.floor(rng.exponential(90 / activity.clip(0.2))).astype(np.float64)
            days[rng.random(rows) < 0.15] = np.nan
            columns[name] = days
        elif text.kind == "share":
            columns[name] = rng.beta(0.3, 8 / activity.clip(0.2), rows)
        elif text.kind == "change":
            change = rng.normal(0, 0.04, rows)
            change[rng.random(rows) < 0.2] = np.nan
            columns[name] = change
        else:
            low, high = {"years": (6, 16), "grade": (1, 10), "subjects": (0, 4)}.get(
                text.unit, (0, 100)
            )
            value = rng.uniform(low, high, rows).round(1)
            value[rng.random(rows) < 0.1] = np.nan
            columns[name] = value
    return pd.DataFrame(columns)


def _label(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """An outcome that depends on a dozen features, with interactions and noise."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    z = -3.2 + np.zeros(len(frame))
    for i, name in enumerate(frame.columns[:: max(1, len(frame.columns) // 12)]):
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            x = (col.cat.codes.to_numpy() == 1).astype(float)
        else:
            x = col.astype("float64").fillna(0).to_numpy()
            x = (x - x.mean()) / (x.std() or 1.0)
        z += (0.6 if i % 2 else -0.4) * np.tanh(x)
    z += 0.3 * np.tanh(z + 2) * rng.normal(0, 1, len(frame))
    return (rng.random(len(frame)) < 1 / (1 + np.exp(-z))).astype(np.int64)


def train_bundle(trees: int, leaves: int, seed: int = 7) -> tuple[ModelBundle, dict[str, float]]:
    """A bundle of one ``RiskClassifier`` of the given shape, and the shape of its trees."""
    import numpy as np

    from models.bundle import ModelBundle
    from models.calibration import calibrate
    from models.estimator import RiskClassifier

    train = synthetic_features(TRAIN_ROWS, seed + 1)
    calib = synthetic_features(TRAIN_ROWS // 2, seed + 2)
    model = RiskClassifier(n_estimators=trees, num_leaves=leaves, n_jobs=os.cpu_count() or 1)
    model.fit(train, _label(train, seed + 1))
    calibrated = calibrate(model, calib, _label(calib, seed + 2), n_bootstrap=20)
    names = tuple(str(c) for c in train.columns)
    bundle = ModelBundle(
        models={"any": calibrated},
        feature_names=names,
        feature_fingerprint="bench",
        policy_version="bench",
        policy_fingerprint="bench",
        data_fingerprint="bench",
    )
    depths = [_depth(t["tree_structure"]) for t in model.booster_.dump_model()["tree_info"]]
    return bundle, {"mean_depth": float(np.mean(depths)), "max_depth": float(max(depths))}


def _depth(node: dict[str, Any]) -> int:
    if "split_index" not in node:
        return 0
    return 1 + max(_depth(node["left_child"]), _depth(node["right_child"]))


def shap_against_lightgbm(bundle: ModelBundle, frame: pd.DataFrame) -> dict[str, float]:
    """Time of ``shap.TreeExplainer`` over LightGBM ``pred_contrib`` on the same rows."""
    import warnings

    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import shap

    model: Any = bundle.models["any"].model
    matrix = model._matrix(frame[list(bundle.feature_names)])
    booster = model.booster_
    explainer = shap.TreeExplainer(booster, feature_perturbation="tree_path_dependent")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        values = np.asarray(explainer.shap_values(matrix))
        shap_seconds = time.perf_counter() - started
        started = time.perf_counter()
        own = booster.predict(matrix, pred_contrib=True)
        lgb_seconds = time.perf_counter() - started
        # One child, as the service explains a T4 child on demand.
        row = matrix[:1]
        one_row = frame.iloc[:1][list(bundle.feature_names)]
        started = time.perf_counter()
        for _ in range(20):
            explainer.shap_values(row)
        numpy_ms = (time.perf_counter() - started) / 20 * 1000
        started = time.perf_counter()
        for _ in range(20):
            explainer.shap_values(model._matrix(one_row))
        frame_ms = (time.perf_counter() - started) / 20 * 1000
    return {
        "rows": float(len(frame)),
        "shap_seconds": shap_seconds,
        "lightgbm_seconds": lgb_seconds,
        "ratio": shap_seconds / lgb_seconds,
        "max_abs_diff": float(np.max(np.abs(values - own[:, :-1]))),
        "one_row_numpy_ms": numpy_ms,
        "one_row_frame_ms": frame_ms,
    }


def _cpu_seconds() -> float:
    """CPU time of this process, all threads: on a shared machine it varies far less than
    wall time, and on an idle one wall time is about CPU time over the threads used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(rows: int, trees: int, leaves: int, share: float, seed: int) -> dict[str, Any]:
    """Run the measured work in this process (see the module docstring)."""
    import numpy as np

    from models.explain import explain_frame, top_contributions

    started = time.perf_counter()
    bundle, shape = train_bundle(trees, leaves, seed)
    train_seconds = time.perf_counter() - started
    frame = synthetic_features(rows, seed)

    started, cpu = time.perf_counter(), _cpu_seconds()
    scores = bundle.predict(frame)
    score_seconds, score_cpu = time.perf_counter() - started, _cpu_seconds() - cpu

    n_explain = round(share * rows)
    order = np.argsort(-scores["p_any"].to_numpy(), kind="stable")
    chosen = np.sort(order[:n_explain])
    started, cpu = time.perf_counter(), _cpu_seconds()
    reasons = explain_frame(bundle, frame.iloc[chosen], top_k=5)
    explain_seconds, explain_cpu = time.perf_counter() - started, _cpu_seconds() - cpu

    started = time.perf_counter()
    for i in order[-ON_DEMAND_CHILDREN:]:  # T4 children, one at a time
        top_contributions(bundle, frame.iloc[[int(i)]], n_threads=1)
    on_demand_ms = (time.perf_counter() - started) / ON_DEMAND_CHILDREN * 1000

    ratio = shap_against_lightgbm(bundle, frame.iloc[: min(SHAP_ROWS, rows)])
    per_row = explain_seconds / max(n_explain, 1)
    return {
        "rows": rows,
        "features": len(bundle.feature_names),
        "model": {"trees": trees, "leaves": leaves, **shape},
        "strategy": (
            "score all; exact TreeSHAP top-5 reasons at once for the top "
            f"{share:.0%} by p_any (T1-T3), 50,000-row float batches on "
            f"{os.cpu_count()} threads; T4 on demand"
        ),
        "explained_rows": n_explain,
        "reasons": sum(len(r) for r in reasons),
        "seconds": {
            "score": score_seconds,
            "explain": explain_seconds,
            "total": score_seconds + explain_seconds,
            "train_not_counted": train_seconds,
        },
        "cpu_seconds": {"score": score_cpu, "explain": explain_cpu},
        "threads": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "explain_all_projected_seconds": per_row * rows,
        "on_demand_ms_per_child": on_demand_ms,
        "shap_vs_lightgbm": ratio,
    }


def bench_explain(
    rows: int = 1_000_000,
    *,
    trees: int = 200,
    leaves: int = 31,
    share: float = 0.36,
    seed: int = 7,
) -> dict[str, Any]:
    """Measure one model shape in a fresh process; its figures plus ``peak_gib``.

    Parameters
    ----------
    rows : int, default=1,000,000
        Children scored.
    trees, leaves : int
        Shape of the tree model (``RiskClassifier``'s ``n_estimators`` and ``num_leaves``).
    share : float, default=0.36
        Share of children explained at scoring time (T1-T3); the rest on demand.
    seed : int, default=7
        Seed of the synthetic features and labels.

    Returns
    -------
    dict
        See :func:`measure`; ``peak_gib`` is the process's peak resident memory and
        ``wall_seconds`` includes start-up, imports, data generation and training.
    """
    started = time.perf_counter()
    args = [
        sys.executable, "-m", "benchmarks.explain", "stage", "--rows", str(rows),
        "--trees", str(trees), "--leaves", str(leaves), "--share", str(share),
        "--seed", str(seed),
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"explain benchmark failed with status {status}")
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["peak_gib"] = usage.ru_maxrss / 1024**2
    result["wall_seconds"] = time.perf_counter() - started
    return result


def _shape(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not TREESxLEAVES, e.g. 200x31")
    return int(parts[0]), int(parts[1])


def _print(result: dict[str, Any]) -> None:
    model, sec, ratio = result["model"], result["seconds"], result["shap_vs_lightgbm"]
    print(
        f"{model['trees']:>4} trees x {model['leaves']:>2} leaves (depth mean "
        f"{model['mean_depth']:.1f}, max {model['max_depth']:.0f}): score {sec['score']:.1f} s + "
        f"explain {result['explained_rows']:,} rows {sec['explain']:.1f} s = "
        f"{sec['total']:.1f} s (cpu {sum(result['cpu_seconds'].values()):.1f} s, load "
        f"{result['load_average']:.1f}); peak {result['peak_gib']:.2f} GiB; all rows would take "
        f"{result['explain_all_projected_seconds']:.0f} s; on demand "
        f"{result['on_demand_ms_per_child']:.1f} ms/child; shap/LightGBM time "
        f"{ratio['ratio']:.2f} (max diff {ratio['max_abs_diff']:.1e}; one row "
        f"{ratio['one_row_numpy_ms']:.2f} ms numpy, {ratio['one_row_frame_ms']:.2f} ms frame)"
    )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark for each shape, print a line each and one JSON list."""
    parser = argparse.ArgumentParser(prog="benchmarks.explain")
    sub = parser.add_subparsers(dest="command")
    stage = sub.add_parser("stage")
    for p in (parser, stage):
        p.add_argument("--rows", type=int, default=1_000_000)
        p.add_argument("--share", type=float, default=0.36)
        p.add_argument("--seed", type=int, default=7)
    stage.add_argument("--trees", type=int, default=200)
    stage.add_argument("--leaves", type=int, default=31)
    parser.add_argument("--shapes", type=_shape, nargs="+", default=[(200, 31), (100, 15)])
    args = parser.parse_args(argv)
    if args.command == "stage":
        result = measure(args.rows, args.trees, args.leaves, args.share, args.seed)
        print(json.dumps(result, default=float))
        return
    results = []
    for trees, leaves in args.shapes:
        result = bench_explain(
            args.rows, trees=trees, leaves=leaves, share=args.share, seed=args.seed
        )
        _print(result)
        results.append(result)
    print(json.dumps(results, default=float))


if __name__ == "__main__":
    main()
