"""Drift reports on synthetic scenarios: each is detected and attributed, baselines stay quiet.

Populations of 3,000 children over 26 months (2024-01 to 2026-02, Parquet), seed 1: a baseline
and the four scenarios, built once per session (``visit-lapse`` and ``school-closure`` share
every batch before they start with the baseline, so those batches are ingested once). The
current date is 2025-12-31 against the default, season-matched reference 2024-12-31; the
scenarios start in 2025 (``benchmarks.drift_false_alarms.SCENARIO_STARTS``). The baseline of
another seed is the shared trained home (``tests/_trained_model.py``, seed 11), which also
provides the model for the prediction-drift test.

Set ``SHOUHU_TEST_DRIFT_DIR`` to a folder to keep the populations between local runs.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from benchmarks.drift_false_alarms import Population, build_population, history_start, side
from features.rawstore import connect
from features.store import FeatureStore
from models.policy import load_policy
from models.scoring import ModelRef, ScoreStore, score
from monitoring.drift import compare, drift_from_settings, load_side, prediction_drift
from monitoring.metrics_export import read_metrics
from monitoring.reports import latest_reports
from shouhu.cli import app
from shouhu.settings import Settings
from tests._trained_model import Prepared, prepared

pytestmark = pytest.mark.slow

MONTHS = 26
SEED = 1
REFERENCE = date(2024, 12, 31)
CURRENT = date(2025, 12, 31)
SCENARIOS = ("new-township", "visit-lapse", "migration-shock", "school-closure")
#: Features a lapse of home visits shows in.
VISIT_FEATURES = {
    "visits_30d",
    "visits_90d",
    "visits_180d",
    "days_since_last_visit",
    "days_since_child_seen",
    "days_since_any_record",
    "months_without_visit_90d",
    "months_without_visit_180d",
}


@pytest.fixture(scope="session")
def populations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Population]:
    """The baseline and the four scenario populations of seed 1."""
    keep = os.environ.get("SHOUHU_TEST_DRIFT_DIR")
    root = Path(keep) if keep else tmp_path_factory.mktemp("drift-populations")
    baseline = build_population(root / "baseline", months=MONTHS, seed=SEED)
    out = {"baseline": baseline}
    for scenario in SCENARIOS:
        out[scenario] = build_population(
            root / scenario, months=MONTHS, seed=SEED, scenario=scenario, prefix_from=baseline
        )
    return out


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """The shared trained home (seed 11): a baseline of another seed, with a model."""
    return prepared(tmp_path_factory)


_CACHE: dict[str, dict[str, Any]] = {}


def _report(populations: dict[str, Population], name: str) -> dict[str, Any]:
    """The drift summary of ``name``'s population, 2025-12-31 against 2024-12-31 (cached)."""
    if name not in _CACHE:
        population = populations[name]
        result = compare(
            side(population, REFERENCE),
            side(population, CURRENT),
            load_policy(),
            sample_rows=20_000,
            history_start=history_start(population),
        )
        _CACHE[name] = result.summary
    return _CACHE[name]


def _area(summary: dict[str, Any], code: str) -> dict[str, Any]:
    return next(a for a in summary["areas"] if a["area_code"] == code)


def test_new_township_is_detected_as_a_new_area_with_its_own_gaps(
    populations: dict[str, Population],
) -> None:
    summary = _report(populations, "new-township")
    township = populations["new-township"].detail["townships"][0]
    assert summary["alarm"]
    new = [r for r in summary["reasons"] if r["check"] == "new_category"]
    assert any(r["scope"] == township and r["subject"] == f"township={township}" for r in new)
    entry = _area(summary, township)
    assert entry["alarm"] and entry.get("new")
    # Its children arrived within 90 days, and its files lack what older townships have.
    assert any(r["check"] == "entrant_surge" for r in summary["reasons"])
    assert any(
        r["check"] == "missing_rate_jump" and r["scope"] == township for r in summary["reasons"]
    )
    # No old township is blamed.
    old = [
        a
        for a in summary["areas"]
        if a["level"] == "township" and a["area_code"] != township and a["alarm"]
    ]
    assert old == []


def test_visit_lapse_is_attributed_to_the_lapsed_township_and_visit_features(
    populations: dict[str, Population], tmp_path: Path
) -> None:
    # Through drift_from_settings (what the CLI and the demo call), so the report with its
    # alarm is written and the metrics file updated.
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(populations["visit-lapse"].store, home / "features.duckdb")
    summary = drift_from_settings(Settings(home=home), None, CURRENT)
    assert summary["reference"] == REFERENCE.isoformat()
    stored = json.loads(Path(summary["files"]["summary"]).read_text(encoding="utf-8"))
    assert stored["reasons"] == summary["reasons"]
    metrics = read_metrics(home / "monitoring")
    assert metrics is not None and "shouhu_drift_alarm 1.0" in metrics
    township = populations["visit-lapse"].detail["townships"][0]
    assert summary["alarm"]
    lapsed = {r["scope"] for r in summary["reasons"] if r["check"].startswith("visit_volume")}
    assert lapsed == {township}
    entry = _area(summary, township)
    assert entry["alarm"] and entry["visit_ratio_30d"] < 0.2
    assert {t["feature"] for t in entry["top_shifts"][:3]} & VISIT_FEATURES
    assert set(summary["drifted_features"][:5]) & VISIT_FEATURES
    townships = [a for a in summary["areas"] if a["level"] == "township" and a["alarm"]]
    assert [a["area_code"] for a in townships] == [township]


def test_migration_shock_is_attributed_to_arrivals_and_parents_calling_less(
    populations: dict[str, Population],
) -> None:
    summary = _report(populations, "migration-shock")
    counties = set(populations["migration-shock"].detail["counties"])
    assert summary["alarm"]
    surges = {r["scope"] for r in summary["reasons"] if r["check"] == "entrant_surge"}
    assert counties <= surges
    assert "parent_contact" in summary["drifted_features"]
    for county in counties:
        shifted = [t["feature"] for t in _area(summary, county)["top_shifts"]]
        assert "parent_contact" in shifted


def test_school_closure_is_attributed_to_the_silent_school(
    populations: dict[str, Population],
) -> None:
    summary = _report(populations, "school-closure")
    closed = set(populations["school-closure"].detail["schools"])
    assert summary["alarm"]
    silent = {r["subject"] for r in summary["reasons"] if r["check"] == "school_not_reporting"}
    assert silent and silent <= closed
    schools = {s["subject"]: s for s in summary["quality"]["schools"]}
    for school in closed & set(schools):
        assert schools[school]["alarm"]
        assert _area(summary, schools[school]["scope"])["alarm"]
    assert all(not s["alarm"] for code, s in schools.items() if code not in closed)


def test_baseline_against_a_baseline_of_another_seed_raises_no_alarm(
    populations: dict[str, Population], trained: Prepared
) -> None:
    reference = side(populations["baseline"], REFERENCE)
    con = connect(trained.store_path, read_only=True)
    try:
        current = load_side(FeatureStore(con), CURRENT)
    finally:
        con.close()
    summary = compare(
        reference,
        current,
        load_policy(),
        sample_rows=20_000,
        history_start=history_start(populations["baseline"]),
    ).summary
    assert summary["reasons"] == []
    assert summary["alarm"] is False
    assert summary["dataset_drift"] is False
    # No score store given: prediction drift and tier mix are absent, not errors.
    assert summary["prediction_drift"] is None
    assert summary["tier_shift"]["available"] is False


def test_winter_holiday_and_spring_festival_raise_no_alarm_through_the_cli(
    populations: dict[str, Population], isolated_home: Path
) -> None:
    # 2026-02-28 is in the winter holiday, eleven days after the Spring Festival; the same
    # calendar day a year earlier is in term. The default reference is 2025-01-31: holiday,
    # two days after that year's festival.
    isolated_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(populations["baseline"].store, isolated_home / "features.duckdb")
    result = CliRunner().invoke(
        app, ["monitoring", "drift", "--current", "2026-02-28", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    for key in (
        "alarm",
        "dataset_drift",
        "share_drifted",
        "drifted_features",
        "prediction_drift",
        "tier_shift",
        "quality",
        "areas",
        "report",
    ):
        assert key in summary
    assert summary["reference"] == "2025-01-31"
    assert summary["season"]["matched"]
    assert summary["reasons"] == [] and summary["alarm"] is False
    assert all({"area_code", "alarm"} <= set(a) for a in summary["areas"])
    report = Path(summary["report"])
    assert report.is_file() and report.is_relative_to(isolated_home / "monitoring")
    assert Path(summary["files"]["features"]).stat().st_size > 10_000
    listed = latest_reports(isolated_home)
    assert [r.html for r in listed] == [report]
    metrics = (isolated_home / "monitoring" / "metrics.prom").read_text(encoding="utf-8")
    assert "shouhu_drift_alarm 0.0" in metrics


def test_prediction_drift_and_tier_mix_come_from_the_score_store(
    trained: Prepared, tmp_path: Path
) -> None:
    # A quarter apart: a year earlier the ledgers are too short for the model's input guard
    # (more "days since" features are missing than in its training rows), and scoring stops.
    reference_day = date(2025, 9, 30)
    store = ScoreStore(tmp_path / "scores.duckdb", tmp_path / "scores")
    policy = load_policy()
    con = connect(trained.store_path, read_only=True)
    try:
        for day in (reference_day, CURRENT):
            run = score(
                day,
                trained.result.bundle,
                policy,
                FeatureStore(con),
                store.previous(day),
                model=ModelRef("shouhu-risk", 1),
                with_reasons=False,
            )
            store.save(run)
        reference = load_side(FeatureStore(con), reference_day, store.path)
        current = load_side(FeatureStore(con), CURRENT, store.path)
    finally:
        con.close()
    summary = compare(reference, current, policy, sample_rows=20_000).summary
    prediction = summary["prediction"]
    assert prediction["available"] and isinstance(summary["prediction_drift"], bool)
    assert prediction["runs"]["current"]["as_of"] == CURRENT.isoformat()
    tiers = summary["tier_shift"]
    assert tiers["available"]
    assert sum(tiers["current"].values()) == pytest.approx(1.0)
    for tier in tiers["outside_expected_mix"]:
        assert any(
            r["check"] == "outside_expected_mix" and r["subject"] == tier
            for r in summary["reasons"]
        )
    townships = [a for a in summary["areas"] if a["level"] == "township"]
    assert all("p_any_mean_current" in a for a in townships)
    # The same test on p_any doubled for every child: the drift is found.
    doubled = current.scores.assign(p_any=current.scores["p_any"].clip(upper=0.5) * 2)
    shifted, _ = prediction_drift(
        reference.scores, doubled, sample_rows=20_000, seed=0, threshold=0.2
    )
    assert shifted["drift"] is True
