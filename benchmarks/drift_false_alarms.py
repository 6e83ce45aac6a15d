"""Drift monitoring on synthetic populations: false-alarm rate and detection table.

Not part of ``make test`` (it generates and ingests dozens of populations): run it with

    nice python -m benchmarks.drift_false_alarms --out benchmarks/out/drift [--seeds 10]

and copy the printed tables into docs/monitoring.md. What it measures:

* **False alarms, year on year** (what a county sees): for each baseline population (one per
  seed), the drift report of several current dates against their default, season-matched
  reference (``monitoring.season.matched_reference``): a term month (December), the winter
  holiday around the Spring Festival (February), the summer holiday (July, August).
* **False alarms, seed pairs**: the reference side from one baseline population, the current
  side from another seed's (populations of 3,000 children always have the same area
  hierarchy: one county, four townships, seven schools, so the codes line up; the places
  behind them differ).
* **Prediction drift and tier mix** in both, from a fixed champion (the demo home's, copied)
  scoring every population on both dates, as a county's weekly runs would.
* **Detection**: each scenario (``new-township``, ``visit-lapse``, ``migration-shock``,
  ``school-closure``) on several seeds, current date 2025-12-31 against 2024-12-31: whether
  the alarm rose and whether the report names the right features or areas.

The population builder is shared with ``tests/integration/test_drift_scenarios.py``: batches
that a scenario population shares byte for byte with the baseline of the same seed (every
batch before the scenario starts, for ``visit-lapse`` and ``school-closure``) are ingested
once and the store copied.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

#: Every population: 3,000 children (a fixed area hierarchy), Parquet ledgers from 2024-01.
CHILDREN = 3000
START = date(2024, 1, 1)
#: Last batch shared by a baseline and its visit-lapse and school-closure variants.
PREFIX_UNTIL = "2025-09"
#: Scenario start months: migration-shock earlier so that two quarterly file updates have
#: recorded the parents' contact, school-closure so that the school is silent on 2025-12-31.
SCENARIO_STARTS: dict[str, date] = {
    "new-township": date(2025, 10, 1),
    "visit-lapse": date(2025, 10, 1),
    "migration-shock": date(2025, 7, 1),
    "school-closure": date(2025, 12, 1),
}
DETECTION_REFERENCE = date(2024, 12, 31)
DETECTION_CURRENT = date(2025, 12, 31)
#: Year-on-year current dates of the false-alarm runs, and the months they need (to 2027-02).
#: The first two compare with a reference in the ledgers' first 13 months (as a county in its
#: second year would), the others with a reference 19 or more months in.
YEAR_ON_YEAR = (
    date(2025, 12, 31),
    date(2026, 2, 28),
    date(2026, 7, 31),
    date(2026, 8, 31),
    date(2026, 12, 31),
    date(2027, 2, 28),
)
BENCH_MONTHS = 38
KEY = "shouhu-demo-key-not-for-real-data"


@dataclass(frozen=True)
class Population:
    """One generated and ingested synthetic population."""

    folder: Path
    scenario: str
    seed: int
    detail: dict[str, Any]

    @property
    def store(self) -> Path:
        """Its feature store."""
        return self.folder / "features.duckdb"

    @property
    def sources(self) -> Path:
        """Its delivered ledgers (one folder per monthly batch)."""
        return self.folder / "synth" / "sources"


def _batches(sources: Path) -> list[Path]:
    return sorted(p for p in sources.iterdir() if p.is_dir())


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _ingest(store: Path, batches: Sequence[Path]) -> None:
    from features.ingest import ingest_paths
    from features.mapping import load_mapping
    from features.rawstore import connect
    from features.store import FeatureStore

    con = connect(store)
    try:
        if batches:
            ingest_paths(
                con,
                list(batches),
                mapping=load_mapping(None),
                key=KEY,
                max_future_days=1,
                progress=False,
                today=date(2030, 1, 1),
            )
        FeatureStore(con).refresh()
    finally:
        con.close()


def build_population(
    folder: Path,
    *,
    months: int,
    seed: int,
    scenario: str = "baseline",
    prefix_from: Population | None = None,
) -> Population:
    """Generate and ingest one population into ``folder`` (reused when already built).

    Parameters
    ----------
    folder : Path
        Holds ``synth/`` and ``features.duckdb``.
    months, seed, scenario : int, int, str
        The generator's configuration (3,000 children from 2024-01, Parquet); a scenario
        starts at :data:`SCENARIO_STARTS`.
    prefix_from : Population, optional
        A baseline of the same seed and months built by this function: when every batch up
        to :data:`PREFIX_UNTIL` is identical, its ``prefix.duckdb`` is copied and only the
        later batches are ingested. A baseline always keeps such a prefix store.

    Returns
    -------
    Population
        The population, with its manifest's ``scenario_detail``.
    """
    from features.synthetic import SynthConfig, generate

    folder.mkdir(parents=True, exist_ok=True)
    synth = folder / "synth"
    manifest = synth / "manifest.json"
    if not manifest.is_file():
        start = SCENARIO_STARTS.get(scenario)
        config = SynthConfig(
            children=CHILDREN,
            months=months,
            start=START,
            seed=seed,
            scenario=scenario,
            scenario_start=start,
            fmt="parquet",
        )
        generate(config, synth, progress=False)
    detail = json.loads(manifest.read_text(encoding="utf-8")).get("scenario_detail") or {}
    population = Population(folder, scenario, seed, detail)
    done = folder / "ingested"
    if done.is_file():
        return population
    store = population.store
    store.unlink(missing_ok=True)
    batches = _batches(population.sources)
    early = [b for b in batches if b.name <= PREFIX_UNTIL]
    late = [b for b in batches if b.name > PREFIX_UNTIL]
    shared = (
        prefix_from is not None
        and (prefix_from.folder / "prefix.duckdb").is_file()
        and [b.name for b in early] == [b.name for b in _batches(prefix_from.sources)][: len(early)]
        and all(_digest(b) == _digest(prefix_from.sources / b.name) for b in early)
    )
    if shared:
        assert prefix_from is not None
        shutil.copyfile(prefix_from.folder / "prefix.duckdb", store)
        _ingest(store, late)
    elif scenario == "baseline":
        _ingest(store, early)
        shutil.copyfile(store, folder / "prefix.duckdb")
        _ingest(store, late)
    else:
        _ingest(store, batches)
    done.write_text("ok\n", encoding="utf-8")
    return population


# ---------------------------------------------------------------------------------------------
# Measuring


def side(population: Population, as_of: date, scores_db: Path | None = None) -> Any:
    """One date of one population as a drift side (``monitoring.drift.load_side``)."""
    from features.rawstore import connect
    from features.store import FeatureStore
    from monitoring.drift import load_side

    con = connect(population.store, read_only=True)
    try:
        return load_side(FeatureStore(con), as_of, scores_db)
    finally:
        con.close()


def history_start(population: Population) -> date:
    """First day of the population's ledgers."""
    from features.rawstore import connect
    from models.dataset import earliest_record

    con = connect(population.store, read_only=True)
    try:
        return earliest_record(con)
    finally:
        con.close()


def score_dates(
    population: Population, bundle: Any, dates: Sequence[date], scores_db: Path
) -> dict[str, str]:
    """Score ``dates`` with ``bundle`` into ``scores_db`` (reasons skipped: not compared).

    Returns
    -------
    dict
        Dates the model's input guards refused, with the guard's message: a date with a
        shorter history than the model's training rows has more missing "days since"
        features, and the missing-rate guard stops the run (so that date has no scores).
    """
    from features.rawstore import connect
    from features.store import FeatureStore
    from models.policy import load_policy
    from models.scoring import ModelRef, ScoreStore, score
    from shouhu.errors import InputGuardError

    refused_file = scores_db.with_suffix(".refused.json")
    if scores_db.is_file() and refused_file.is_file():
        refused: dict[str, str] = json.loads(refused_file.read_text(encoding="utf-8"))
        return refused
    scores_db.unlink(missing_ok=True)
    store = ScoreStore(scores_db, scores_db.parent / "scores")
    policy = load_policy()
    refused = {}
    con = connect(population.store, read_only=True)
    try:
        for day in sorted(dates):
            try:
                # No previous run: nobody confirms a fall in a simulation, so hysteresis would
                # only ratchet tiers up between the sparse dates scored here.
                run = score(
                    day,
                    bundle,
                    policy,
                    FeatureStore(con),
                    None,
                    model=ModelRef("shouhu-risk", 1),
                    with_reasons=False,
                )
            except InputGuardError as exc:
                refused[day.isoformat()] = exc.message
                continue
            store.save(run)
    finally:
        con.close()
    refused_file.write_text(json.dumps(refused, indent=1), encoding="utf-8")
    return refused


def run_pair(
    reference: Population,
    ref_date: date,
    current: Population,
    cur_date: date,
    scores: tuple[Path, Path] | None = None,
) -> dict[str, Any]:
    """The drift summary of one comparison (no files written)."""
    from models.policy import load_policy
    from monitoring.drift import compare

    ref = side(reference, ref_date, None if scores is None else scores[0])
    cur = side(current, cur_date, None if scores is None else scores[1])
    result = compare(
        ref, cur, load_policy(), sample_rows=20_000, history_start=history_start(reference)
    )
    summary: dict[str, Any] = result.summary
    return summary


def _fired(summary: dict[str, Any], exclude: Sequence[str] = ()) -> list[str]:
    return sorted({r["check"] for r in summary["reasons"] if r["check"] not in exclude})


#: Checks of a standing condition rather than a change between the dates.
STANDING = ("outside_expected_mix",)


def _fired_from(result: dict[str, Any], exclude: Sequence[str] = ()) -> list[str]:
    return [c for c in result["checks"] if c not in exclude]


def _reasons(summary: dict[str, Any]) -> list[str]:
    return [f"{r['check']}@{r['scope']}:{r['subject']}={r['value']}" for r in summary["reasons"]]


def attribution(scenario: str, detail: dict[str, Any], summary: dict[str, Any]) -> bool:
    """Whether a scenario's report names the right areas or features (see docs)."""
    reasons = summary["reasons"]
    areas = {a["area_code"]: a for a in summary["areas"]}
    if scenario == "new-township":
        township = detail["townships"][0]
        return any(
            r["check"] == "new_category" and r["scope"] == township for r in reasons
        ) and bool(areas.get(township, {}).get("alarm"))
    if scenario == "visit-lapse":
        township = detail["townships"][0]
        lapsed = {r["scope"] for r in reasons if r["check"].startswith("visit_volume")}
        return lapsed == {township}
    if scenario == "migration-shock":
        surge = any(
            r["check"] == "entrant_surge" and r["scope"] in detail["counties"] for r in reasons
        )
        return surge and "parent_contact" in summary["drifted_features"]
    if scenario == "school-closure":
        silent = {r["subject"] for r in reasons if r["check"] == "school_not_reporting"}
        return bool(silent) and silent <= set(detail["schools"])
    return False


def main(argv: Sequence[str] | None = None) -> None:
    """Build the populations, run every comparison and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/drift"))
    parser.add_argument("--seeds", type=int, default=10, help="baseline populations")
    parser.add_argument("--detection-seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=101)
    parser.add_argument(
        "--champion-home",
        type=Path,
        default=None,
        help="a data home with a champion (its mlflow folder is copied; default: no scores)",
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))

    bundle = None
    if args.champion_home is not None:
        from models.cli import registry_from_settings
        from shouhu.settings import Settings

        home = out / "champion-home"
        if not (home / "mlflow").is_dir():
            shutil.copytree(args.champion_home / "mlflow", home / "mlflow")
        registry = registry_from_settings(Settings(home=home))
        champion = registry.champion_info()
        if champion is not None:
            bundle = registry.load_bundle(champion.version)

    from monitoring.season import matched_reference

    results: list[dict[str, Any]] = []
    baselines: dict[int, Population] = {}
    for seed in seeds:
        baselines[seed] = build_population(out / f"baseline-{seed}", months=BENCH_MONTHS, seed=seed)
        print(f"built baseline {seed} ({time.perf_counter() - started:.0f} s)", flush=True)
    pairs = [(d, matched_reference(d)) for d in YEAR_ON_YEAR]
    all_dates = sorted({d for pair in pairs for d in pair} | {DETECTION_REFERENCE})
    for seed, population in baselines.items():
        scores_db = None
        if bundle is not None:
            scores_db = population.folder / "scores.duckdb"
            refused = score_dates(population, bundle, all_dates, scores_db)
            if refused:
                print(f"seed {seed}: not scored on {sorted(refused)}", flush=True)
        for current, reference in pairs:
            summary = run_pair(
                population,
                reference,
                population,
                current,
                None if scores_db is None else (scores_db, scores_db),
            )
            results.append(
                {
                    "kind": "year_on_year",
                    "seed": seed,
                    "reference": reference.isoformat(),
                    "current": current.isoformat(),
                    "alarm": summary["alarm"],
                    "checks": _fired(summary),
                    "reasons": _reasons(summary),
                    "share_drifted": summary["share_drifted"],
                    "prediction_drift": summary["prediction_drift"],
                    "tier_shift": summary["tier_shift"].get("max_change"),
                    "season_matched": summary["season"]["matched"],
                }
            )
            print(json.dumps(results[-1]), flush=True)
    for i, seed in enumerate(seeds):
        other = seeds[(i + 1) % len(seeds)]
        ref_pop, cur_pop = baselines[seed], baselines[other]
        scores = None
        if bundle is not None:
            scores = (ref_pop.folder / "scores.duckdb", cur_pop.folder / "scores.duckdb")
        summary = run_pair(ref_pop, DETECTION_REFERENCE, cur_pop, DETECTION_CURRENT, scores)
        results.append(
            {
                "kind": "seed_pair",
                "seed": seed,
                "other_seed": other,
                "reference": DETECTION_REFERENCE.isoformat(),
                "current": DETECTION_CURRENT.isoformat(),
                "alarm": summary["alarm"],
                "checks": _fired(summary),
                "reasons": _reasons(summary),
                "share_drifted": summary["share_drifted"],
                "prediction_drift": summary["prediction_drift"],
                "tier_shift": summary["tier_shift"].get("max_change"),
            }
        )
        print(json.dumps(results[-1]), flush=True)
    for seed in seeds[: args.detection_seeds]:
        for scenario in SCENARIO_STARTS:
            population = build_population(
                out / f"{scenario}-{seed}",
                months=BENCH_MONTHS,
                seed=seed,
                scenario=scenario,
                prefix_from=baselines[seed],
            )
            summary = run_pair(population, DETECTION_REFERENCE, population, DETECTION_CURRENT)
            results.append(
                {
                    "kind": "detection",
                    "scenario": scenario,
                    "seed": seed,
                    "alarm": summary["alarm"],
                    "attributed": attribution(scenario, population.detail, summary),
                    "checks": _fired(summary),
                    "reasons": _reasons(summary),
                    "drifted_features": summary["drifted_features"][:8],
                    "areas": [a["area_code"] for a in summary["areas"] if a["alarm"]],
                    "detail": {k: population.detail.get(k) for k in ("townships", "schools")},
                }
            )
            print(json.dumps(results[-1]), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print_tables(results, time.perf_counter() - started)


def print_tables(results: Sequence[dict[str, Any]], seconds: float) -> None:
    """Print the false-alarm and detection tables (Markdown) from the run's results."""
    print(f"\n{len(results)} comparisons in {seconds / 60:.1f} min\n")
    for kind, label in (("year_on_year", "year on year"), ("seed_pair", "seed pairs")):
        rows = [r for r in results if r["kind"] == kind]
        if not rows:
            continue
        print(f"### False alarms, {label}\n")
        print(
            "| comparison | runs | alarms, all checks | alarms, drift and quality checks "
            "| checks that fired (runs) |"
        )
        print("|---|---|---|---|---|")
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(f"{r['current']} vs {r['reference']}", []).append(r)
        groups["all"] = rows
        for name, group in groups.items():
            alarms = sum(r["alarm"] for r in group)
            # The expected-mix check compares the current tiers with the policy's planning
            # figures: a standing condition, the same on every date, not a change.
            drift = sum(bool(_fired_from(r, exclude=STANDING)) for r in group)
            checks = Counter(c for r in group for c in r["checks"])
            fired = ", ".join(f"{c} ({n})" for c, n in checks.most_common()) or "—"
            n = len(group)
            print(
                f"| {name} | {n} | {alarms} ({alarms / n:.0%}) | {drift} ({drift / n:.0%}) "
                f"| {fired} |"
            )
        print()
    rows = [r for r in results if r["kind"] == "detection"]
    if rows:
        print("### Detection (2025-12-31 against 2024-12-31)\n")
        print("| scenario | seeds | detected | attributed | checks that fired (runs) |")
        print("|---|---|---|---|---|")
        for scenario in SCENARIO_STARTS:
            group = [r for r in rows if r["scenario"] == scenario]
            if not group:
                continue
            checks = Counter(c for r in group for c in r["checks"])
            fired = ", ".join(f"{c} ({n})" for c, n in checks.most_common())
            print(
                f"| {scenario} | {len(group)} | {sum(r['alarm'] for r in group)}/{len(group)} "
                f"| {sum(r['attributed'] for r in group)}/{len(group)} | {fired} |"
            )


if __name__ == "__main__":
    main()
