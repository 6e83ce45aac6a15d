"""Ingestion end to end: batches, idempotency, transactions, pseudonymisation, the summary."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import features.ingest as ingest_module
from features.ingest import IngestSummary, ingest_paths, plan_batches
from features.mapping import Mapping, load_mapping
from features.pseudonym import pseudonymise, pseudonymise_column
from features.rawstore import connect, raw_table
from features.schema import AREAS, ATTENDANCE, CHILDREN, TABLES, VISITS
from shouhu.errors import SourceFileError
from tests.factories import (
    KEY,
    TODAY,
    id_number,
    ledger_row,
    name_of,
    village_code,
    village_row,
    write_ledger,
)


@pytest.fixture(scope="module")
def mapping() -> Mapping:
    return load_mapping(None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(tmp_path / "store.duckdb")
    yield con
    con.close()


def _ingest(con: duckdb.DuckDBPyConnection, paths: list[Path], mapping: Mapping) -> IngestSummary:
    return ingest_paths(
        con, paths, mapping=mapping, key=KEY, max_future_days=1, progress=False, today=TODAY
    )


def _batch(folder: Path, month: str, children: range, *, fmt: str = "csv") -> Path:
    """A batch: villages and children of ``children``, one visit and one week each."""
    batch = folder / month
    write_ledger(batch / f"{AREAS.zh}_{month}.csv", AREAS, [village_row(i) for i in children])
    write_ledger(
        batch / f"{CHILDREN.zh}_{month}.{fmt}",
        CHILDREN,
        [ledger_row(CHILDREN, i) for i in children],
    )
    day = f"{month}-03"
    write_ledger(
        batch / f"{VISITS.zh}_{month}.{fmt}",
        VISITS,
        [
            ledger_row(VISITS, i, visit_id=f"V{month}-{i}", visit_date=day, recorded_at=day)
            for i in children
        ],
    )
    write_ledger(
        batch / f"{ATTENDANCE.zh}_{month}.csv",
        ATTENDANCE,
        [ledger_row(ATTENDANCE, i, week_start=day, recorded_at=day) for i in children],
    )
    return batch


def _all_rows(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[object, ...]]]:
    names = [raw_table(s) for s in TABLES] + ["rejected_rows"]
    out = {n: con.execute(f"SELECT * FROM {n} ORDER BY ALL").fetchall() for n in names}
    out["ingested_files"] = con.execute(
        "SELECT * EXCLUDE (loaded_at) FROM ingested_files ORDER BY ALL"
    ).fetchall()
    return out


def test_summary_has_exactly_the_cli_json_shape(
    tmp_path: Path, store: duckdb.DuckDBPyConnection, mapping: Mapping
) -> None:
    summary = _ingest(store, [_batch(tmp_path, "2025-03", range(3))], mapping)
    assert summary.as_dict() == {
        "files": 4,
        "accepted": {"areas": 3, "children": 3, "visits": 3, "attendance": 3},
        "rejected": {"areas": 0, "children": 0, "visits": 0, "attendance": 0},
        "duplicates_skipped": 0,
        "rejects_by_reason": {},
        "files_loaded": 4,
        "files_skipped": 0,
        "file_errors": [],
    }
    assert json.loads(json.dumps(summary.as_dict())) == summary.as_dict()


def test_ingesting_twice_adds_nothing_and_counts_skipped_files(
    tmp_path: Path, store: duckdb.DuckDBPyConnection, mapping: Mapping
) -> None:
    sources = tmp_path / "sources"
    _batch(sources, "2025-02", range(3))
    _batch(sources, "2025-03", range(2, 5))
    first = _ingest(store, [sources], mapping)
    before = _all_rows(store)
    second = _ingest(store, [sources], mapping)
    # child 2 and village 2 are delivered again, unchanged, in the second month
    assert first.files_loaded == 8 and first.accepted["children"] == 5
    assert first.duplicates_skipped == 2
    assert (second.files, second.files_loaded, second.files_skipped) == (8, 0, 8)
    assert sum(second.accepted.values()) == 0
    assert _all_rows(store) == before


def test_a_re_delivered_file_with_the_same_rows_stores_them_once(
    tmp_path: Path, store: duckdb.DuckDBPyConnection, mapping: Mapping
) -> None:
    batch = _batch(tmp_path, "2025-03", range(3))
    _ingest(store, [batch], mapping)
    again = tmp_path / "again" / "留守儿童基本信息_2025-03.xlsx"  # same rows, other bytes
    rows = [ledger_row(CHILDREN, i) for i in range(3)]
    write_ledger(again, CHILDREN, [*rows, ledger_row(CHILDREN, 3, village_code=village_code(0))])
    summary = _ingest(store, [again], mapping)
    assert summary.accepted == {"children": 1}
    assert summary.duplicates_skipped == 3
    assert store.execute("SELECT count(*) FROM raw_children").fetchall() == [(4,)]


def test_batches_load_in_date_order_and_tables_in_schema_order(
    tmp_path: Path, store: duckdb.DuckDBPyConnection, mapping: Mapping
) -> None:
    sources = tmp_path / "out" / "sources"
    _batch(sources, "2025-03", range(3, 6))
    _batch(sources, "2025-02", range(3))
    batches = plan_batches([tmp_path / "out"], mapping)  # a `features synth` output folder
    assert [[p.parent.name + "/" + p.name.split("_")[0] for p in b] for b in batches] == [
        [f"{m}/{t.zh}" for t in (AREAS, CHILDREN, VISITS, ATTENDANCE)]
        for m in ("2025-02", "2025-03")
    ]
    summary = _ingest(store, [tmp_path / "out"], mapping)
    assert sum(summary.rejected.values()) == 0
    seqs = store.execute(
        "SELECT f.file_name, min(v._seq), max(v._seq) FROM raw_visits v "
        "JOIN ingested_files f ON f.file_id = v._file_id GROUP BY ALL ORDER BY 2"
    ).fetchall()
    assert [name for name, _, _ in seqs] == ["走访记录_2025-02.csv", "走访记录_2025-03.csv"]
    assert seqs[0][2] < seqs[1][1]
    rows = store.execute("SELECT _row FROM raw_visits ORDER BY _seq").fetchall()
    assert [r for (r,) in rows] == [2, 3, 4, 2, 3, 4]


def test_a_missing_path_is_an_error_before_anything_loads(
    tmp_path: Path, store: duckdb.DuckDBPyConnection, mapping: Mapping
) -> None:
    batch = _batch(tmp_path, "2025-03", range(2))
    with pytest.raises(SourceFileError, match="no such file or folder"):
        _ingest(store, [batch, tmp_path / "nowhere"], mapping)
    assert store.execute("SELECT count(*) FROM ingested_files").fetchall() == [(0,)]


def test_a_failure_mid_file_rolls_back_everything_of_that_file(
    tmp_path: Path,
    store: duckdb.DuckDBPyConnection,
    mapping: Mapping,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = _batch(tmp_path, "2025-03", range(3))
    _ingest(store, [batch / f"{AREAS.zh}_2025-03.csv"], mapping)
    before = _all_rows(store)
    children = batch / f"{CHILDREN.zh}_2025-03.csv"
    write_ledger(children, CHILDREN, [ledger_row(CHILDREN, 0), ledger_row(CHILDREN, 1, sex="?")])

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    # the rows are inserted, then storing the rejects fails
    monkeypatch.setattr(ingest_module, "_store_rejects", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        _ingest(store, [children], mapping)
    assert _all_rows(store) == before
    monkeypatch.undo()
    summary = _ingest(store, [children], mapping)  # the file was not marked as loaded
    assert summary.accepted == {"children": 1} and summary.rejected == {"children": 1}


def test_identity_numbers_and_names_never_reach_the_store_or_the_logs(
    tmp_path: Path,
    store: duckdb.DuckDBPyConnection,
    mapping: Mapping,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    batch = _batch(tmp_path, "2025-03", range(6), fmt="xlsx")
    bad = tmp_path / "bad" / f"{CHILDREN.zh}_2025-03.csv"
    write_ledger(
        bad,
        CHILDREN,
        [
            ledger_row(CHILDREN, 6, sex="不详", village_code=village_code(0)),  # raw values kept
            ledger_row(CHILDREN, 7, name="=" + name_of(7), village_code=village_code(0)),
            ledger_row(CHILDREN, 8, village_code=id_number(8)),  # an id in the wrong column
        ],
    )
    summary = _ingest(store, [batch, bad], mapping)
    assert summary.rejected["children"] == 3
    assert summary.rejects_by_reason == {
        "formula_in_cell": 1,
        "id_number_in_field": 1,
        "unknown_code": 1,
    }
    secrets = {id_number(i) for i in range(9)} | {name_of(i) for i in range(9)}
    secrets |= {f"H{i:08d}" for i in range(9)}
    tables = store.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE data_type = 'VARCHAR' AND table_schema = 'main'"
    ).fetchall()
    assert len(tables) > 20
    for table, column in tables:
        values = {
            v
            for (v,) in store.execute(f'SELECT DISTINCT "{column}" FROM "{table}"').fetchall()
            if v is not None
        }
        leaked = {s for s in secrets if any(s in v for v in values)}
        assert not leaked, (table, column)
    logged = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert not {s for s in secrets if s in logged}
    pids = {p for (p,) in store.execute("SELECT child_id FROM raw_visits").fetchall()}
    assert pids == {pseudonymise(id_number(i), KEY) for i in range(6)}


def test_visits_refer_to_children_loaded_earlier_in_the_same_batch(
    tmp_path: Path, store: duckdb.DuckDBPyConnection, mapping: Mapping
) -> None:
    batch = _batch(tmp_path, "2025-03", range(3))
    (batch / f"{VISITS.zh}_2025-03.csv").rename(batch / "0_visits_first_by_name.csv")
    summary = _ingest(store, [batch], mapping)
    assert summary.accepted["visits"] == 3
    assert summary.rejects_by_reason == {}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(min_size=1, max_size=20)), max_size=30))
def test_pseudonymising_in_duckdb_equals_the_reference_function(values: list[str | None]) -> None:
    con = duckdb.connect()
    series = pd.Series(pd.array(values, dtype=pd.StringDtype()), index=range(5, 5 + len(values)))
    got = pseudonymise_column(con, series, KEY).tolist()
    want = [None if v is None else pseudonymise(v, KEY) for v in values]
    assert [None if g is pd.NA else g for g in got] == want
    long_key = KEY * 8  # longer than an HMAC block
    got = pseudonymise_column(con, series, long_key, "household").tolist()
    assert [None if g is pd.NA else g for g in got] == [
        None if v is None else pseudonymise(v, long_key, "household") for v in values
    ]


def test_cli_ingest_prints_one_json_object(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from features.cli import app

    batch = _batch(tmp_path, "2025-03", range(2))
    result = CliRunner().invoke(app, ["ingest", str(batch), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {
        "files",
        "accepted",
        "rejected",
        "duplicates_skipped",
        "rejects_by_reason",
        "files_loaded",
        "files_skipped",
        "file_errors",
    }
    assert payload["accepted"]["visits"] == 2


def test_cli_ingest_exits_non_zero_naming_a_refused_file_and_loads_the_rest(
    tmp_path: Path, isolated_home: Path
) -> None:
    from typer.testing import CliRunner

    from features.cli import app

    batch = _batch(tmp_path, "2025-03", range(2))
    (batch / "走访记录_broken.csv").write_bytes("走访编号,身份证号\n".encode("utf-16"))
    result = CliRunner().invoke(app, ["ingest", str(batch), "--json"])
    assert result.exit_code == 4
    payload = json.loads(result.stdout.splitlines()[0])
    assert payload["accepted"]["visits"] == 2
    assert [e["file"] for e in payload["file_errors"]] == ["走访记录_broken.csv"]
    assert "error: 走访记录_broken.csv:" in result.stderr


def test_prefetching_the_next_file_stores_exactly_what_loading_in_turn_stores(
    tmp_path: Path, mapping: Mapping
) -> None:
    from datetime import date

    from features.synthetic import SynthConfig, generate

    generate(
        SynthConfig(children=300, months=3, start=date(2024, 1, 1), seed=4, fmt="parquet"),
        tmp_path / "synth",
        progress=False,
    )
    stores, summaries = [], []
    for prefetch in (True, False):
        con = connect(tmp_path / f"store-{prefetch}.duckdb")
        summaries.append(
            ingest_paths(
                con,
                [tmp_path / "synth" / "sources"],
                mapping=mapping,
                key=KEY,
                max_future_days=1,
                progress=False,
                today=date(2025, 1, 1),
                prefetch=prefetch,
            ).as_dict()
        )
        stores.append(_all_rows(con))
        con.close()
    assert summaries[0] == summaries[1]
    delivered = [f for f in (tmp_path / "synth" / "sources").rglob("*") if f.is_file()]
    assert summaries[0]["files_loaded"] == len(delivered) > 0
    assert sum(summaries[0]["rejected"].values()) > 0
    assert stores[0] == stores[1]


def test_records_of_a_later_batch_find_the_children_registered_in_it(
    tmp_path: Path, store: duckdb.DuckDBPyConnection, mapping: Mapping
) -> None:
    sources = tmp_path / "sources"
    _batch(sources, "2025-02", range(3))
    _batch(sources, "2025-03", range(3, 6))  # new children, and visits about them
    summary = _ingest(store, [sources], mapping)
    assert summary.accepted["visits"] == 6 and summary.accepted["attendance"] == 6
    assert summary.rejects_by_reason == {}


def test_a_run_checkpoints_once_at_its_end_and_restores_the_threshold(
    tmp_path: Path,
    store: duckdb.DuckDBPyConnection,
    mapping: Mapping,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def threshold() -> str:
        return str(store.execute("SELECT current_setting('checkpoint_threshold')").fetchall()[0][0])

    before = threshold()
    _ingest(store, [_batch(tmp_path, "2025-03", range(3))], mapping)
    assert threshold() == before
    wal = tmp_path / "store.duckdb.wal"
    assert not wal.exists() or wal.stat().st_size == 0  # everything checkpointed

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    write_ledger(
        tmp_path / "bad" / f"{CHILDREN.zh}_2025-04.csv",
        CHILDREN,
        [ledger_row(CHILDREN, 9, sex="?")],
    )
    monkeypatch.setattr(ingest_module, "_store_rejects", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        _ingest(store, [tmp_path / "bad"], mapping)
    assert threshold() == before


def test_a_second_run_over_loaded_folders_only_hashes_the_files(
    tmp_path: Path,
    store: duckdb.DuckDBPyConnection,
    mapping: Mapping,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = _batch(tmp_path, "2025-03", range(3))
    _ingest(store, [batch], mapping)

    def unreadable(*args: object, **kwargs: object) -> None:
        raise AssertionError("a loaded file was read again")

    monkeypatch.setattr(ingest_module, "read_source", unreadable)
    summary = _ingest(store, [batch], mapping)
    assert (summary.files, summary.files_skipped) == (4, 4)


def test_remembered_pseudonyms_equal_the_reference_function_for_chunked_columns() -> None:
    import pyarrow as pa

    con = duckdb.connect()
    pseudonyms = ingest_module._Pseudonyms(con, KEY)
    pseudonyms.LOOKUP_MIN_ROWS = 1  # look up from the second call on, however small
    numbers = [id_number(i) for i in range(400)]
    chunked = pd.Series(
        pd.arrays.ArrowStringArray(
            pa.chunked_array(
                [
                    pa.array(numbers[:150], pa.large_string()),
                    pa.array(numbers[150:], pa.large_string()),
                ]
            )
        )
    )
    first = pseudonyms(chunked, "child")  # computes and remembers
    again = pseudonyms(
        pd.Series(pd.array([*numbers[::-1], None, "NEW"], dtype="string")), "child"
    )  # looks up, computes one new value
    want = [pseudonymise(n, KEY) for n in numbers]
    assert list(first) == want
    assert list(again[:400]) == want[::-1]
    assert again.iloc[400] is pd.NA and again.iloc[401] == pseudonymise("NEW", KEY)
    con.close()
