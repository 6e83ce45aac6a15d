"""Data contract of the synthetic population: what every delivered file may contain.

Ingestion is built against these promises: file names, Chinese headers in schema order, Chinese
labels (or a counted, recognisable defect), dates in known spellings, and a truth folder that
never leaks into the sources.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.schema import TABLES, TABLES_BY_NAME, Column
from features.synthetic.calibration import read_ledger
from tests.unit.features._synthetic_cache import BASELINE, generated, ledger, parse_day

_FILE = re.compile(r"^(?P<table>.+)_(?P<month>\d{4}-\d{2})\.csv$")
_FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")
_BY_ZH = {t.zh: t for t in TABLES}


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated(BASELINE, tmp_path_factory)


@pytest.fixture(scope="module")
def manifest(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return data


def test_every_file_is_a_known_table_of_its_batch_month(out: Path) -> None:
    batches = sorted(p.name for p in (out / "sources").iterdir())
    assert batches[0] == "2024-01" and len(batches) == 24
    for folder in (out / "sources").iterdir():
        assert folder.is_dir()
        for path in folder.iterdir():
            match = _FILE.match(path.name)
            assert match, path.name
            assert match["table"] in _BY_ZH, path.name
            assert match["month"] == folder.name


def test_headers_are_the_tables_chinese_names_in_schema_order(out: Path) -> None:
    for path in sorted((out / "sources").rglob("*.csv")):
        spec = _BY_ZH[_FILE.match(path.name)["table"]]  # type: ignore[index]
        assert list(read_ledger(path).columns) == [c.zh for c in spec.columns], path.name


def _explained(value: str, col: Column) -> bool:
    """An invalid label is one of the deliberate typos: spaces, English code, one wrong or
    doubled character."""
    labels = {c.zh for c in col.codes} if col.codes else {"是", "否"}
    if col.multi:
        return all(_explained(part, _single(col)) for part in value.split(";"))
    stripped = value.strip()
    if stripped in labels or stripped in {c.code for c in col.codes}:
        return True
    for label in labels:
        if (
            len(stripped) == len(label)
            and sum(a != b for a, b in zip(stripped, label, strict=True)) == 1
        ):
            return True
        if len(stripped) == len(label) + 1 and any(
            stripped[:i] + stripped[i + 1 :] == label for i in range(len(stripped))
        ):
            return True
    return False


def _single(col: Column) -> Column:
    return Column(col.name, col.zh, col.dtype, col.en, codes=col.codes)


def test_categorical_values_are_labels_or_counted_typos(
    out: Path, manifest: dict[str, Any]
) -> None:
    invalid: Counter[str] = Counter()
    for spec in TABLES:
        frame = ledger(out, spec.name)
        for col in spec.columns:
            if col.dtype not in ("category", "bool"):
                continue
            labels = {c.zh for c in col.codes} if col.codes else {"是", "否"}
            values = frame[col.name].dropna()
            if col.multi:
                ok = [all(p in labels for p in v.split(";")) for v in values]
            else:
                ok = values.isin(labels).tolist()
            bad = [v for v, good in zip(values, ok, strict=True) if not good]
            assert all(_explained(v, col) for v in bad), (spec.name, col.name, bad[:5])
            invalid[spec.name] += len(bad)
    defects = manifest["defects"]
    typos = defects["typo_wrong_char"] + defects["typo_spaces"] + defects["typo_english_code"]
    assert (
        0
        < sum(invalid.values())
        <= typos + defects["duplicate_same_batch"] + defects["duplicate_next_batch"]
    )


def test_dates_use_a_known_spelling(out: Path, manifest: dict[str, Any]) -> None:
    odd = 0
    impossible = 0
    for spec in TABLES:
        frame = ledger(out, spec.name)
        for col in spec.columns:
            if col.dtype != "date":
                continue
            values = frame[col.name].dropna()
            iso = values.str.fullmatch(r"\d{4}-\d{2}-\d{2}")
            parsed = values.map(parse_day)
            odd += int((~iso).sum())
            impossible += int(parsed.isna().sum())
            far = parsed.dropna().map(lambda d: d.year >= 2090)
            impossible += int(far.sum())
    defects = manifest["defects"]
    assert odd > 0
    assert (
        odd
        <= defects["alt_date_format"]
        + defects["fullwidth_digits"]
        + defects["impossible_date"]
        + defects["duplicate_same_batch"]
        + defects["duplicate_next_batch"]
    )
    assert (
        0
        < impossible
        <= defects["impossible_date"]
        + defects["duplicate_same_batch"]
        + defects["duplicate_next_batch"]
    )


def test_numbers_are_digits_in_range(out: Path) -> None:
    for spec in TABLES:
        frame = ledger(out, spec.name)
        for col in spec.columns:
            if col.dtype not in ("int", "float"):
                continue
            values = frame[col.name].dropna().str.translate(_FULLWIDTH)
            numbers = pd.to_numeric(values, errors="coerce")
            assert numbers.notna().all(), (spec.name, col.name)
            if col.minimum is not None:
                assert (numbers >= col.minimum).all(), (spec.name, col.name)
            if col.maximum is not None:
                assert (numbers <= col.maximum).all(), (spec.name, col.name)


def test_required_fields_are_rarely_blank(out: Path) -> None:
    for spec in TABLES:
        frame = ledger(out, spec.name)
        for col in spec.columns:
            blank = frame[col.name].isna().mean()
            if col.name == spec.recorded_time:
                assert blank == 0.0
            elif col.required and col.name != "emotional_state":
                assert blank < 0.01, (spec.name, col.name, blank)


def test_truth_is_kept_apart_from_the_sources(out: Path) -> None:
    truth_names = {p.name for p in (out / "truth").iterdir()}
    assert {"risk.parquet", "outcomes.parquet", "children.parquet"} <= truth_names
    source_files = [p for p in (out / "sources").rglob("*") if p.is_file()]
    assert not any(p.name in truth_names for p in source_files)
    headers = {c.zh for t in TABLES for c in t.columns}
    for path in source_files:
        assert set(read_ledger(path).columns) <= headers
    risk = pq.read_schema(out / "truth" / "risk.parquet")
    assert risk.names == [
        "id_number",
        "as_of",
        "p_serious_harm",
        "p_dropout",
        "p_guardianship_breakdown",
        "p_mental_health",
        "p_any",
    ]


def test_risk_covers_every_registered_child_at_each_month_end(out: Path) -> None:
    risk = pd.read_parquet(out / "truth" / "risk.parquet")
    children = pd.read_parquet(out / "truth" / "children.parquet")
    assert risk["as_of"].nunique() == 24
    as_of = pd.Timestamp("2024-06-30")
    month = risk[pd.to_datetime(risk["as_of"]) == as_of]
    entry = pd.to_datetime(children["entry_date"])
    leave = pd.to_datetime(children["exit_date"])
    registered = children[(entry <= as_of) & (leave.isna() | (leave > as_of))]
    assert set(month["id_number"]) == set(registered["id_number"])
    p = month[["p_serious_harm", "p_dropout", "p_guardianship_breakdown", "p_mental_health"]]
    assert (month["p_any"] >= p.max(axis=1) - 1e-6).all()
    assert (month["p_any"] <= p.sum(axis=1) + 1e-6).all()


def test_recorded_outcomes_point_at_delivered_ledger_rows(out: Path) -> None:
    outcomes = pd.read_parquet(out / "truth" / "outcomes.parquet")
    assert set(outcomes["domain"]) == {
        "serious_harm",
        "dropout",
        "guardianship_breakdown",
        "mental_health",
    }
    recorded = outcomes[outcomes["recorded"]]
    share = outcomes.groupby("domain")["recorded"].mean()
    assert (share > 0.3).all() and (share < 0.98).all(), share
    incidents = set(ledger(out, "incidents")["incident_id"].dropna().str.strip())
    events = set(ledger(out, "school_events")["event_id"].dropna().str.strip())
    for table, ids in (("incidents", incidents), ("school_events", events)):
        linked = recorded[recorded["record_table"] == table]["record_id"]
        assert len(linked) > 20
        assert linked.isin(ids).mean() > 0.99, table


def test_caseworker_recorded_outcomes_depend_on_visits(out: Path) -> None:
    """Village-sourced reports follow visits: recording is biased towards visited children."""
    outcomes = pd.read_parquet(out / "truth" / "outcomes.parquet")
    villages = pd.read_parquet(out / "truth" / "villages.parquet")
    children = pd.read_parquet(out / "truth" / "children.parquet")
    compliance = children.merge(villages, on="village_code").set_index("id_number")[
        "visit_compliance"
    ]
    harm = outcomes[outcomes["domain"] == "guardianship_breakdown"].copy()
    harm["compliance"] = harm["id_number"].map(compliance)
    high = harm[harm["compliance"] >= harm["compliance"].median()]["recorded"].mean()
    low = harm[harm["compliance"] < harm["compliance"].median()]["recorded"].mean()
    assert high > low


def test_ledger_ids_belong_to_registered_children(out: Path) -> None:
    registry = set(ledger(out, "children")["id_number"].dropna().str.strip())
    for name in ("visits", "attendance", "incidents", "screenings"):
        ids = ledger(out, name)["id_number"].dropna().str.strip()
        assert ids.isin(registry).mean() > 0.998, name
    assert TABLES_BY_NAME["visits"].column("id_number").pii == "id_number"


def test_natural_keys_identify_rows(out: Path) -> None:
    """Apart from deliberate duplicates, a table's natural key names one row: a second row
    with the same key would be read as a correction."""
    for spec in TABLES:
        frame = ledger(out, spec.name).drop(columns=["_batch"]).drop_duplicates()
        keyed = frame.dropna(subset=list(spec.key))
        clashes = int(keyed.duplicated(subset=list(spec.key), keep=False).sum())
        limit = 0 if spec.name in ("visits", "guardianship", "attendance", "incidents") else 0.001
        assert clashes <= limit * len(keyed), (spec.name, clashes)
