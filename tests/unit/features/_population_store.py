"""A small generated population, ingested once per test process, for evidence and explanations.

Generation takes a second but ingestion takes tens of seconds, so the evidence tests and the
explanation tests share one store file through this cache (as ``_synthetic_cache`` does for
generated folders). The store is refreshed (superseded versions kept in the file) and closed:
tests open it read-only, any number of times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.ingest import ingest_paths
from features.mapping import load_mapping
from features.rawstore import connect
from features.store import FeatureStore
from features.synthetic import SynthConfig, generate

CONFIG = SynthConfig(children=2000, months=12, start=date(2024, 1, 1), seed=3, fmt="parquet")
#: Month-ends the tests compute features on; later batches hold late entries about them.
AS_OF: tuple[date, ...] = (date(2024, 6, 30), date(2024, 8, 31), date(2024, 10, 31))
KEY = "explain-test-key-0123456789abcdef"


@dataclass(frozen=True)
class PopulationStore:
    """The generated ledgers and the store they were ingested into."""

    sources: Path
    store: Path


_CACHE: dict[SynthConfig, PopulationStore] = {}


def population_store(factory: pytest.TempPathFactory) -> PopulationStore:
    """The ingested store of :data:`CONFIG`, built on first use in this process."""
    if CONFIG not in _CACHE:
        out = factory.mktemp("explain_population")
        generate(CONFIG, out, progress=False)
        store = out / "store.duckdb"
        con = connect(store)
        try:
            ingest_paths(
                con,
                [out / "sources"],
                mapping=load_mapping(None),
                key=KEY,
                max_future_days=1,
                progress=False,
            )
            FeatureStore(con).refresh()
        finally:
            con.close()
        _CACHE[CONFIG] = PopulationStore(out / "sources", store)
    return _CACHE[CONFIG]


def ledger_identities(sources: Path) -> tuple[set[str], set[str]]:
    """Identity numbers and names written in the child-registry ledgers (to prove they never
    come out of the store)."""
    ids: set[str] = set()
    names: set[str] = set()
    for path in sorted(sources.glob("*/留守儿童基本信息_*.parquet")):
        frame = pd.read_parquet(path)
        ids.update(str(v) for v in frame["身份证号"].dropna())
        names.update(str(v) for v in frame["姓名"].dropna())
    return ids, names
