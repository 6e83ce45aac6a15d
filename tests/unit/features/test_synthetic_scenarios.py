"""Each scenario changes what it should, where the manifest says, and baseline changes nothing."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.synthetic import SynthConfig
from tests.unit.features._synthetic_cache import generated, ledger, parse_day, scenario_config

#: School closure starts in term time (July is the summer holiday).
CLOSURE = SynthConfig(
    children=2500,
    months=12,
    start=date(2024, 1, 1),
    seed=5,
    scenario="school-closure",
    scenario_start=date(2024, 10, 1),
)


def _run(name: str, factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    config = CLOSURE if name == "school-closure" else scenario_config(name)
    out = generated(config, factory)
    return out, json.loads((out / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run("baseline", tmp_path_factory)[0]


def _per_month(frame: pd.DataFrame, column: str) -> pd.Series:
    day = frame[column].map(parse_day).dropna()
    return day.map(lambda d: d.month).value_counts().sort_index()


def _ratio(counts: pd.Series, before: range, after: range) -> float:
    pre = counts.reindex(list(before), fill_value=0).mean()
    post = counts.reindex(list(after), fill_value=0).mean()
    return float(post / max(pre, 1e-9))


def _visits_in(out: Path, villages: list[str]) -> tuple[pd.Series, pd.Series]:
    visits = ledger(out, "visits")
    registry = ledger(out, "children").dropna(subset=["id_number", "village_code"])
    village = registry.drop_duplicates("id_number").set_index("id_number")["village_code"]
    visits["village"] = visits["id_number"].map(village).str.strip()
    inside = visits[visits["village"].isin(villages)]
    outside = visits[visits["village"].notna() & ~visits["village"].isin(villages)]
    return _per_month(inside, "visit_date"), _per_month(outside, "visit_date")


def test_visit_lapse_township_stops_visiting(
    tmp_path_factory: pytest.TempPathFactory, baseline: Path
) -> None:
    out, manifest = _run("visit-lapse", tmp_path_factory)
    detail = manifest["scenario_detail"]
    assert detail["start"] == "2024-07-01"
    assert len(detail["townships"]) == 1
    villages = detail["villages"]
    assert all(v.startswith(detail["townships"][0]) for v in villages)
    inside, outside = _visits_in(out, villages)
    assert _ratio(inside, range(2, 7), range(8, 12)) < 0.15
    assert _ratio(outside, range(2, 7), range(8, 12)) > 0.8
    base_inside, _ = _visits_in(baseline, villages)
    assert _ratio(base_inside, range(2, 7), range(8, 12)) > 0.8


def test_school_closure_schools_stop_reporting_absences_for_six_weeks(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    out, manifest = _run("school-closure", tmp_path_factory)
    detail = manifest["scenario_detail"]
    schools = set(detail["schools"])
    assert schools
    first, last = (date.fromisoformat(d) for d in detail["window"])
    assert (last - first).days == 41
    absences = ledger(out, "attendance")
    absences["week"] = absences["week_start"].map(parse_day)
    absences["school"] = absences["school_code"].str.strip()
    closed = absences[absences["school"].isin(schools)].dropna(subset=["week"])
    during = closed[(closed["week"] >= first) & (closed["week"] <= last)]
    before = closed[(closed["week"] >= date(2024, 9, 2)) & (closed["week"] < first)]
    after = closed[closed["week"] > last]
    assert len(during) == 0
    assert len(before) > 10
    assert len(after) > 10
    others = absences[~absences["school"].isin(schools)].dropna(subset=["week"])
    assert ((others["week"] >= first) & (others["week"] <= last)).sum() > 50


def test_new_township_joins_with_its_areas_children_and_habits(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    out, manifest = _run("new-township", tmp_path_factory)
    detail = manifest["scenario_detail"]
    township = detail["townships"][0]
    villages = set(detail["villages"])
    assert len(villages) >= 12
    areas = ledger(out, "areas")
    areas["code"] = areas["area_code"].str.strip()
    joined = areas[areas["code"].isin(villages | {township})]
    # delivered in the batch of the month it joins (a row may come again as a duplicate)
    assert joined["_batch"].min() == "2024-07"
    recorded = joined["recorded_at"].map(parse_day)
    assert all(d.year == 2024 and d.month == 7 for d in recorded)
    assert joined["code"].nunique() == len(villages) + 1
    assert (joined["effective_date"].map(parse_day).dropna() == date(2024, 7, 1)).all()
    assert not areas[areas["_batch"] == "2024-01"]["code"].isin(villages).any()
    registry = ledger(out, "children")
    new = registry[registry["village_code"].str.strip().isin(villages)]
    assert len(new) > 400
    assert (new["_batch"] >= "2024-07").all()
    visits = ledger(out, "visits")
    ids = set(new["id_number"])
    mine = visits[visits["id_number"].isin(ids)]
    theirs = visits[~visits["id_number"].isin(ids)]
    cadre = "村干部"
    assert (mine["visitor_role"].str.strip() == cadre).mean() > 0.4
    assert (theirs["visitor_role"].str.strip() == cadre).mean() < 0.35

    def lag(frame: pd.DataFrame) -> float:
        days = [
            (r - v).days
            for v, r in zip(
                frame["visit_date"].map(parse_day), frame["recorded_at"].map(parse_day), strict=True
            )
            if v and r
        ]
        return float(pd.Series(days).median())

    assert lag(mine) > lag(theirs) + 5


def _registrations(out: Path, counties: list[str]) -> tuple[pd.Series, pd.Series]:
    registry = ledger(out, "children").dropna(subset=["id_number", "village_code"])
    registry["day"] = registry["registered_date"].map(parse_day)
    first = registry.dropna(subset=["day"]).sort_values("day").drop_duplicates("id_number")
    first = first[first["day"] >= date(2024, 2, 1)]
    inside = first["village_code"].str.strip().str[:6].isin(counties)
    return (
        _per_month(first[inside], "registered_date"),
        _per_month(first[~inside], "registered_date"),
    )


def test_migration_shock_raises_registrations_and_cuts_contact(
    tmp_path_factory: pytest.TempPathFactory, baseline: Path
) -> None:
    out, manifest = _run("migration-shock", tmp_path_factory)
    counties = manifest["scenario_detail"]["counties"]
    assert counties
    inside, outside = _registrations(out, counties)
    assert _ratio(inside, range(2, 7), range(7, 12)) > 2.0
    assert _ratio(outside, range(2, 7), range(7, 12)) < 1.6
    base_inside, _ = _registrations(baseline, counties)
    assert _ratio(base_inside, range(2, 7), range(7, 12)) < 1.6

    files = ledger(out, "guardianship").dropna(subset=["parent_contact", "change_date"])
    files["day"] = files["change_date"].map(parse_day)
    files = files.dropna(subset=["day"])
    registry = ledger(out, "children").drop_duplicates("id_number")
    county = registry.set_index("id_number")["village_code"].str.strip().str[:6]
    files = files[files["id_number"].map(county).isin(counties)]
    rare = files["parent_contact"].str.strip().isin(["每年", "从不"])
    before = rare[files["day"].map(lambda d: date(2024, 1, 1) <= d < date(2024, 7, 1))].mean()
    after = rare[files["day"] >= date(2024, 8, 1)].mean()
    assert after > before + 0.08


def test_baseline_manifest_names_no_affected_area(baseline: Path) -> None:
    manifest = json.loads((baseline / "manifest.json").read_text(encoding="utf-8"))
    detail = manifest["scenario_detail"]
    assert detail["name"] == "baseline"
    assert detail["start"] is None
    assert not (
        detail["counties"] or detail["townships"] or detail["villages"] or detail["schools"]
    )
