"""End to end on real generated ledgers: synth → ingest → features, point in time.

The acceptance test of the foundation: features as of D are identical whether the store holds
only the monthly batches delivered up to D or every batch, on a population of 20,000 children.
Late entries, corrections and defects in the generated ledgers are what make this a real test:
a retrieval that ignored ``recorded_at`` would see rows from later batches.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from features.ingest import IngestSummary, ingest_paths
from features.labels import label_frame
from features.mapping import load_mapping
from features.rawstore import connect
from features.store import FeatureStore
from features.synthetic import SynthConfig, generate

KEY = "integration-test-key-0001"
CONFIG = SynthConfig(children=20_000, months=24, start=date(2024, 1, 1), seed=7)
CUTOFF = date(2025, 3, 31)  # month 15 of 24: later batches hold late entries about it


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("population")
    generate(CONFIG, out, progress=False)
    return out


def _ingest(store: Path, batches: list[Path]) -> tuple[duckdb.DuckDBPyConnection, IngestSummary]:
    con = connect(store)
    summary = ingest_paths(
        con, batches, mapping=load_mapping(None), key=KEY, max_future_days=1, progress=False
    )
    return con, summary


@pytest.fixture(scope="module")
def full_store(
    population: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[duckdb.DuckDBPyConnection, IngestSummary]:
    return _ingest(tmp_path_factory.mktemp("full") / "store.duckdb", [population / "sources"])


@pytest.fixture(scope="module")
def partial_store(
    population: Path, tmp_path_factory: pytest.TempPathFactory
) -> duckdb.DuckDBPyConnection:
    # Copy the batches delivered up to the cut-off into their own sources folder, as a county
    # would have had them on that date.
    sources = tmp_path_factory.mktemp("partial_sources")
    for batch in sorted((population / "sources").iterdir()):
        if batch.name <= CUTOFF.strftime("%Y-%m"):
            shutil.copytree(batch, sources / batch.name)
    con, _ = _ingest(tmp_path_factory.mktemp("partial") / "store.duckdb", [sources])
    return con


def test_generated_ledgers_load_with_rejects_kept_and_no_identity_numbers(
    population: Path, full_store: tuple[duckdb.DuckDBPyConnection, IngestSummary]
) -> None:
    con, summary = full_store
    assert summary.file_errors == [] or all(
        "encoding" in reason or "decode" in reason for _, reason in summary.file_errors
    )
    accepted = sum(summary.accepted.values())
    rejected = sum(summary.rejected.values())
    assert accepted > 20_000 * 24  # about a visit a month per child, and much else
    # Defects are deliberate and rare: they are rejected with reasons, not silently dropped.
    assert 0 < rejected < 0.02 * accepted
    stored_rejects = con.sql('SELECT count(DISTINCT (file_id, "row")) FROM rejected_rows')
    assert stored_rejects.fetchall() == [(rejected,)]
    assert summary.duplicates_skipped > 0
    raw_ids = pd.read_parquet(population / "truth" / "children.parquet")["id_number"].head(200)
    for table, column in [("raw_children", "child_id"), ("rejected_rows", "raw_values")]:
        values = {str(v) for (v,) in con.sql(f"SELECT {column} FROM {table}").fetchall()}
        text = "\n".join(values)
        assert not any(number in text for number in raw_ids), table


def test_features_as_of_cutoff_match_with_only_the_batches_known_then(
    full_store: tuple[duckdb.DuckDBPyConnection, IngestSummary],
    partial_store: duckdb.DuckDBPyConnection,
) -> None:
    full = FeatureStore(full_store[0]).build(CUTOFF)
    partial = FeatureStore(partial_store).build(CUTOFF)
    assert len(full) > 15_000
    pd.testing.assert_frame_equal(
        full.sort_values("child_id").reset_index(drop=True),
        partial.sort_values("child_id").reset_index(drop=True),
    )


def test_training_spine_before_cutoff_matches_with_only_the_batches_known_then(
    full_store: tuple[duckdb.DuckDBPyConnection, IngestSummary],
    partial_store: duckdb.DuckDBPyConnection,
) -> None:
    store = FeatureStore(partial_store)
    dates = [date(2024, 9, 30), date(2024, 12, 31), CUTOFF]
    spine = pd.concat(
        [store.registered_children(d)[["child_id"]].assign(as_of=d) for d in dates]
    ).reset_index(drop=True)
    full = FeatureStore(full_store[0]).as_of_frame(spine)
    partial = store.as_of_frame(spine)
    pd.testing.assert_frame_equal(full, partial)


def test_late_entries_make_the_full_store_differ_after_the_cutoff(
    full_store: tuple[duckdb.DuckDBPyConnection, IngestSummary],
    partial_store: duckdb.DuckDBPyConnection,
) -> None:
    # The control for the two tests above: the same comparison a month later must differ,
    # or the stores would be equal for a trivial reason.
    later = date(2025, 4, 30)
    full = FeatureStore(full_store[0]).build(later)
    partial = FeatureStore(partial_store).build(later)
    assert not full.reset_index(drop=True).equals(partial.reset_index(drop=True))


def test_labels_look_forward_from_the_as_of_date(
    full_store: tuple[duckdb.DuckDBPyConnection, IngestSummary],
) -> None:
    con = full_store[0]
    spine = FeatureStore(con).registered_children(date(2024, 12, 31))[["child_id"]]
    labels = label_frame(con, spine.assign(as_of=date(2024, 12, 31)))
    rate = labels["any"].mean()
    assert 0.02 < rate < 0.25  # recorded adverse events in 90 days are neither absent nor common
