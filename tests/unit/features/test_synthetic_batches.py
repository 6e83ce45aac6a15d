"""Delivery batches: what each monthly batch holds, late entries, duplicates and defects."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.schema import TABLES, TABLES_BY_NAME
from features.synthetic.calibration import read_ledger
from features.synthetic.defects import DEFECT_KINDS
from tests.unit.features._synthetic_cache import BASELINE, generated, ledger, parse_day


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated(BASELINE, tmp_path_factory)


@pytest.fixture(scope="module")
def manifest(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return data


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _previous(label: str) -> str:
    year, month = map(int, label.split("-"))
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


@pytest.mark.parametrize("table", [t.name for t in TABLES])
def test_batch_holds_only_rows_entered_that_month(out: Path, table: str) -> None:
    frame = ledger(out, table)
    assert len(frame) > 0
    recorded = frame["recorded_at"].map(parse_day)
    month = recorded.map(lambda d: _month(d) if d else None)
    assert recorded.notna().all()
    stray = frame[month != frame["_batch"]]
    # the only exceptions are rows delivered a second time: entered in the month before and
    # present, identical, in the previous batch
    assert (month[stray.index] == stray["_batch"].map(_previous)).all()
    columns = list(TABLES_BY_NAME[table].column_names)
    earlier = frame[frame["_batch"].isin(set(stray["_batch"].map(_previous)))]
    keys = set(map(tuple, earlier[columns].fillna("").to_numpy().tolist()))
    assert all(tuple(row) in keys for row in stray[columns].fillna("").to_numpy().tolist())


def test_late_entries_about_earlier_months_arrive_in_later_batches(out: Path) -> None:
    for table, column in (
        ("visits", "visit_date"),
        ("guardianship", "change_date"),
        ("incidents", "event_date"),
        ("attendance", "week_start"),
    ):
        frame = ledger(out, table)
        event = frame[column].map(parse_day)
        late = frame[
            event.notna() & (event.map(lambda d: _month(d) if d else "") < frame["_batch"])
        ]
        late = late[late[column].map(parse_day) >= date(2024, 1, 1)]
        assert len(late) > 0.02 * len(frame), table


def test_manifest_counts_every_defect_kind(manifest: dict[str, Any]) -> None:
    counts = manifest["defects"]
    assert set(counts) == set(DEFECT_KINDS)
    for kind in DEFECT_KINDS:
        assert counts[kind] > 0, kind
    assert counts["late_entries"] == sum(manifest["late_entries"].values())


def test_wrong_encoding_files_are_exactly_the_non_gb18030_ones(
    out: Path, manifest: dict[str, Any]
) -> None:
    wrong = set()
    for path in sorted((out / "sources").rglob("*.csv")):
        raw = path.read_bytes()
        if raw.startswith(b"\xef\xbb\xbf"):
            wrong.add(f"{path.parent.name}/{path.name}")
            continue
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raw.decode("gb18030")  # the default encoding
            continue
        if any(b > 127 for b in raw):
            wrong.add(f"{path.parent.name}/{path.name}")
    assert wrong == set(manifest["wrong_encoding_files"])
    assert len(wrong) == manifest["defects"]["wrong_encoding_files"]


def test_next_batch_duplicates_match_the_manifest(out: Path, manifest: dict[str, Any]) -> None:
    total = 0
    for spec in TABLES:
        frame = ledger(out, spec.name)
        month = frame["recorded_at"].map(parse_day).map(lambda d: _month(d) if d else None)
        total += int((month != frame["_batch"]).sum())
    assert total == manifest["defects"]["duplicate_next_batch"]


def test_same_batch_duplicates_are_repeated_rows(out: Path, manifest: dict[str, Any]) -> None:
    repeated = 0
    for spec in TABLES:
        for path in sorted((out / "sources").rglob(f"{spec.zh}_*")):
            frame = read_ledger(path)
            repeated += int(frame.duplicated(keep="first").sum())
    counted = manifest["defects"]["duplicate_same_batch"]
    assert counted > 0
    assert counted <= repeated <= counted * 1.05 + 5


def test_registry_row_comes_before_or_with_a_childs_other_records(out: Path) -> None:
    registry = ledger(out, "children")
    registry["day"] = registry["recorded_at"].map(parse_day)
    first = registry.dropna(subset=["day"]).groupby("id_number")["day"].min()
    for table in ("visits", "guardianship", "incidents", "screenings"):
        frame = ledger(out, table)
        frame["day"] = frame["recorded_at"].map(parse_day)
        earliest = frame.dropna(subset=["day"]).groupby("id_number")["day"].min()
        known = earliest.index.intersection(first.index)
        assert len(known) > 0.9 * len(earliest), table  # unknown ids are typo'd numbers
        # a typo in a child's first registry row can hide it: allow a couple of those
        assert (first[known] > earliest[known]).sum() <= 2, table


def test_areas_arrive_in_the_first_batch_only(out: Path) -> None:
    areas = ledger(out, "areas")
    assert set(areas["_batch"]) == {"2024-01"}
    levels = areas["level"].str.strip().value_counts()
    assert levels["村(社区)"] >= 3000 / 60 * 0.9
    codes = areas["area_code"].dropna().str.strip()
    assert codes.str.startswith("99").all()
    assert set(codes.str.len()) == {4, 6, 9, 12}


def test_absence_rows_only_for_weeks_with_an_absence(out: Path) -> None:
    frame = ledger(out, "attendance")
    days = frame[["school_days", "excused_days", "unexcused_days"]].apply(
        lambda s: pd.to_numeric(s.str.strip(), errors="coerce")
    )
    valid = days.dropna()
    assert ((valid["excused_days"] + valid["unexcused_days"]) > 0).all()
    assert (valid["excused_days"] + valid["unexcused_days"] <= valid["school_days"]).all()
    week = frame["week_start"].map(parse_day).dropna()
    week = week[week.map(lambda d: d.year < 2090)]  # deliberate impossible years
    assert (week.map(lambda d: d.weekday()) == 0).all()
    # no absence reports in the summer holiday
    assert not week.map(lambda d: d.month == 8 or (d.month == 7 and d.day > 7)).any()


def test_dropout_episode_runs_suspected_persuasion_then_return_or_dropout(out: Path) -> None:
    events = ledger(out, "school_events")
    events["kind"] = events["kind"].str.strip()
    events["day"] = events["event_date"].map(parse_day)
    kinds = events["kind"].value_counts()
    assert kinds["疑似辍学"] > 20
    assert kinds["劝返"] > 0.8 * kinds["疑似辍学"]
    assert kinds["复学"] > 0.3 * kinds["疑似辍学"]
    assert kinds["辍学"] > 0
    suspected = events[events["kind"] == "疑似辍学"]
    days = pd.to_numeric(suspected["absent_days"], errors="coerce").dropna()
    assert (days > 5).all()
    dropout = events[events["kind"] == "辍学"]
    long = pd.to_numeric(dropout["absent_days"], errors="coerce").dropna()
    assert (long >= 20).all()
