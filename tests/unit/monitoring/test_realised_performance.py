"""Realised performance: stored scoring runs against the outcomes their ledgers recorded."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from features.rawstore import connect
from features.store import FeatureStore
from models.policy import load_policy
from models.scoring import ModelRef, ScoreStore, score
from monitoring.cli import app
from monitoring.quarters import Quarter
from monitoring.realised import (
    group_metrics,
    performance_from_settings,
    realised_performance,
    stored_runs,
    trend,
)
from shouhu.settings import Settings, get_settings
from tests._trained_model import KEY, Prepared, prepared

#: Month ends scored with the shared model: three matured quarters' worth and one that is not.
MATURED = (date(2025, 3, 31), date(2025, 6, 30), date(2025, 9, 30))
PENDING = date(2025, 12, 31)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """The shared small population and its trained model."""
    return prepared(tmp_path_factory)


@pytest.fixture(scope="module")
def scored_home(trained: Prepared, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data home with the shared store and four scoring runs of the shared model."""
    home = tmp_path_factory.mktemp("realised") / "home"
    home.mkdir()
    shutil.copy(trained.store_path, home / "features.duckdb")
    store = ScoreStore(home / "scores.duckdb", home / "scores")
    policy = load_policy()
    con = connect(home / "features.duckdb", read_only=True)
    try:
        for day in (*MATURED, PENDING):
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
    finally:
        con.close()
    return home


def _frame(**columns: object) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    n = len(frame)
    defaults = {
        "as_of": pd.Timestamp("2025-03-31"),
        "township_code": "990101001",
        "capacity_key": "990101001|2025-03-31",
        "visited_in_window": True,
        "t2_band": True,
        **{f"y_{o}": 0 for o in ("serious_harm", "dropout", "guardianship_breakdown")},
    }
    for name, value in defaults.items():
        if name not in frame:
            frame[name] = [value] * n
    frame["t1_t2"] = frame["tier"].isin(["T1", "T2"])
    return frame


def test_group_metrics_counts_missed_cases_and_ranks_at_capacity() -> None:
    # Ten children, four events: two in T1-T2 (visited), one in T3 and one in T4 (missed).
    frame = _frame(
        tier=["T1", "T2", "T2", "T3", "T3", "T3", "T4", "T4", "T4", "T4"],
        y_any=[1, 1, 0, 1, 0, 0, 1, 0, 0, 0],
        y_mental_health=[0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
        p_any=[0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05],
    )
    frame.loc[0, "t2_band"] = False  # a hard rule put the first child in T1
    out = group_metrics(frame, {"990101001|2025-03-31": 2}, min_events=1, min_children=1)
    assert out["events"] == 4 and out["t1_t2"] == 3
    assert out["missed"] == 2
    assert out["missed_by_tier"] == {"T3": 1, "T4": 1}
    assert out["missed_by_outcome"]["mental_health"] == 1
    assert out["precision_t1_t2"] == pytest.approx(2 / 3, abs=1e-6)
    assert out["recall_t1_t2"] == pytest.approx(0.5)
    assert out["missed_share"] == pytest.approx(0.5)
    # Capacity 2 among the band (rows 1..9): rows 1 (event) and 2 (none) are chosen.
    assert out["precision_at_capacity"] == pytest.approx(0.5)
    assert out["recall_at_capacity"] == pytest.approx(1 / 3, abs=1e-6)
    y, p = frame["y_any"].to_numpy(), frame["p_any"].to_numpy()
    assert out["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-6)
    assert out["calibration_ratio"] == pytest.approx(4 / p.sum(), abs=1e-6)
    assert out["status"] == "ok"


def test_group_metrics_withholds_rates_of_small_groups_but_keeps_counts() -> None:
    frame = _frame(
        tier=["T3", "T4", "T1"], y_any=[1, 0, 1], y_mental_health=[0, 0, 0], p_any=[0.2, 0.1, 0.9]
    )
    out = group_metrics(frame, {"990101001|2025-03-31": 1})
    assert out["status"] == "insufficient_data"
    assert out["missed"] == 1 and out["events"] == 2
    assert out["auc"] is None and out["recall_t1_t2"] is None


def test_trend_reports_change_and_slope_from_three_quarters() -> None:
    quarters = [
        {"quarter": "2025Q1", "auc": 0.70, "missed_share": 0.40},
        {"quarter": "2025Q2", "auc": 0.72, "missed_share": None},
        {"quarter": "2025Q3", "auc": 0.74, "missed_share": 0.30},
    ]
    out = trend(quarters)
    assert out["quarters"] == ["2025Q1", "2025Q2", "2025Q3"]
    assert out["auc"]["change"] == pytest.approx(0.02)
    assert out["auc"]["slope_per_quarter"] == pytest.approx(0.02)
    assert out["auc"]["higher_is_better"] is True
    # A missing value leaves no change, and two points give no slope.
    assert out["missed_share"]["change"] is None
    assert out["missed_share"]["slope_per_quarter"] is None
    assert out["missed_share"]["higher_is_better"] is False


def test_realised_performance_matches_the_training_labels_of_the_same_dates(
    trained: Prepared, scored_home: Path
) -> None:
    policy = load_policy()
    con = connect(scored_home / "features.duckdb", read_only=True)
    try:
        report = realised_performance(
            con, scored_home / "scores.duckdb", policy, known_by=trained.data.known_by
        )
    finally:
        con.close()
    runs = {r["as_of"]: r for r in report.runs}
    assert [r["matured"] for r in report.runs] == [True, True, True, False]
    assert runs[PENDING.isoformat()]["matures_on"] == "2026-03-31"
    frame = trained.data.frame
    for day in MATURED:
        # The same outcomes as training's labels for that date (both from features.labels,
        # known by the newest record), reached through the stored run instead.
        rows = frame.loc[frame["as_of"] == pd.Timestamp(day)]
        run = runs[day.isoformat()]
        assert run["children"] == len(rows)
        assert run["events"] == int(rows["y_any"].sum())
        p = trained.result.bundle.predict(rows)["p_any"].to_numpy()
        assert run["auc"] == pytest.approx(roc_auc_score(rows["y_any"], p), abs=1e-5)
    quarters = {q["quarter"]: q for q in report.quarters}
    assert sorted(quarters) == [str(Quarter.of(d)) for d in MATURED]
    assert (
        sum(a["events"] for a in report.areas if a["quarter"] == "2025Q3")
        == (quarters["2025Q3"]["events"])
    )
    assert report.trend["quarters"] == ["2025Q1", "2025Q2", "2025Q3"]


def test_missed_cases_are_the_events_of_children_outside_t1_t2(
    trained: Prepared, scored_home: Path
) -> None:
    con = connect(scored_home / "features.duckdb", read_only=True)
    try:
        report = realised_performance(
            con, scored_home / "scores.duckdb", load_policy(), known_by=trained.data.known_by
        )
    finally:
        con.close()
    stored = pd.read_parquet(next((scored_home / "scores").glob("scores_2025-09-30_*.parquet")))
    frame = trained.data.frame
    labels = frame.loc[frame["as_of"] == pd.Timestamp("2025-09-30"), ["child_id", "y_any"]]
    joined = stored.merge(labels, on="child_id", validate="one_to_one")
    outside = ~joined["tier"].isin(["T1", "T2"]).to_numpy()
    expected = int((joined["y_any"].to_numpy()[outside] > 0).sum())
    q3 = next(q for q in report.quarters if q["quarter"] == "2025Q3")
    assert q3["missed"] == expected > 0
    assert q3["missed_by_tier"]["T3"] + q3["missed_by_tier"]["T4"] == expected
    assert 0 < q3["recall_t1_t2"] < 1


def test_the_newest_run_of_a_date_is_the_one_measured(tmp_path: Path, scored_home: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(scored_home, home)
    before = stored_runs(home / "scores.duckdb")
    store = ScoreStore(home / "scores.duckdb", home / "scores")
    con = connect(home / "features.duckdb", read_only=True)
    try:
        # The same date scored again without a model: only the rules tier the children.
        store.save(score(MATURED[-1], None, load_policy(), FeatureStore(con), with_reasons=False))
    finally:
        con.close()
    after = stored_runs(home / "scores.duckdb")
    assert len(after) == len(before)
    newest = after.loc[after["as_of"] == MATURED[-1]].iloc[0]
    assert pd.isna(newest["model_version"])


def test_performance_from_settings_writes_the_reports(scored_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(scored_home, home)
    payload = performance_from_settings(Settings(home=home, pseudonym_key=KEY))
    assert payload["runs"] == {"stored": 4, "matured": 3, "pending": 1}
    folder = home / "monitoring" / "performance"
    assert Path(payload["report"]) == folder / "performance.html"
    saved = json.loads((folder / "performance.json").read_text(encoding="utf-8"))
    assert [q["quarter"] for q in saved["quarters"]] == ["2025Q1", "2025Q2", "2025Q3"]
    markdown = (folder / "performance.md").read_text(encoding="utf-8")
    q3 = saved["quarters"][-1]
    assert f"| 2025Q3 | {q3['children']} | {q3['events']} |" in markdown
    html = (folder / "performance.html").read_text(encoding="utf-8")
    assert "<td>2025Q3</td>" in html and "missed" in html
    assert np.isfinite(q3["auc"])


def test_the_cli_prints_one_json_object(
    scored_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    shutil.copytree(scored_home, home)
    monkeypatch.setenv("SHOUHU_HOME", str(home))
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["performance", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["runs"]["matured"] == 3
    assert payload["report"].endswith("performance.html")


def test_a_home_without_scoring_runs_reports_nothing_matured(
    trained: Prepared, tmp_path: Path
) -> None:
    con = connect(trained.store_path, read_only=True)
    try:
        report = realised_performance(
            con, tmp_path / "none.duckdb", load_policy(), known_by=trained.data.known_by
        )
    finally:
        con.close()
    assert report.runs == [] and report.quarters == []
    assert report.to_dict()["runs"] == {"stored": 0, "matured": 0, "pending": 0}
