"""One small synthetic population, ingested and trained once per test run, shared by workers.

Generating, ingesting and training take tens of seconds, so every model test (unit tests of
``models.dataset``, ``models.train``, ``models.scoring`` and the behavioural tests in
``tests/model``) reads one prepared data home. Under pytest-xdist the workers share it: the
first to arrive builds it under a file lock in the run's common temporary folder, the others
wait and read. Nothing here writes to a developer's ``SHOUHU_HOME``.

The home holds the feature store (``features.duckdb``), the synthetic truth (``synth/truth``)
and the MLflow registry with one trained version (promoted to champion when it passes the
champion gate, as ``make demo`` would). The training result itself is pickled beside it.

Set ``SHOUHU_TEST_TRAINED_DIR`` to a folder to keep the prepared home between local runs.
"""

from __future__ import annotations

import fcntl
import os
import pickle
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.synthetic import SynthConfig, generate
from models.dataset import TrainingData
from models.train import TrainResult
from shouhu.settings import DEMO_PSEUDONYM_KEY, Settings, TrainSettings

#: The population: small enough to build in a minute or two (ingesting is most of it, about
#: half a second per delivered file), 24 months like the demo so that the folds and windows are
#: those of a real run. Parquet ledgers ingest fastest.
CONFIG = SynthConfig(children=3000, months=24, start=date(2024, 1, 1), seed=11, fmt="parquet")
KEY = DEMO_PSEUDONYM_KEY
#: The production model (default shape); fewer bootstrap resamples, as these tests check behaviour
#: and not the last digit of an interval.
TRAIN = TrainSettings(n_bootstrap=40, n_resamples=40)


@dataclass(frozen=True)
class Prepared:
    """The shared data home and what was built in it."""

    home: Path
    synth: Path
    data: TrainingData
    result: TrainResult
    promoted: bool

    @property
    def truth(self) -> Path:
        """The synthetic truth folder (evaluation code only)."""
        return self.synth / "truth"

    @property
    def store_path(self) -> Path:
        """The feature store."""
        return self.home / "features.duckdb"

    def settings(self, home: Path | None = None) -> Settings:
        """Settings pointing at the shared home (or ``home``)."""
        return Settings(home=home or self.home, pseudonym_key=KEY, train=TRAIN)


def _shared_folder(factory: pytest.TempPathFactory) -> Path:
    reuse = os.environ.get("SHOUHU_TEST_TRAINED_DIR")
    if reuse:
        # Opt-in for local iteration: keep the prepared home between runs. Delete the folder
        # whenever features/ or models/ change, or the tests read a model of older code.
        folder = Path(reuse)
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    base = factory.getbasetemp()
    # Under xdist every worker has its own basetemp inside the run's common folder.
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = root / "shouhu-trained-model"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _build(folder: Path) -> None:
    from features.ingest import ingest_paths
    from features.mapping import load_mapping
    from features.rawstore import connect
    from features.store import FeatureStore
    from models.cli import registry_from_settings
    from models.dataset import build_training_data, newest_record, training_dates
    from models.policy import load_policy
    from models.train import train_from_settings
    from shouhu.errors import PromotionRefusedError

    home = folder / "home"
    synth = folder / "synth"
    generate(CONFIG, synth, progress=False)
    settings = Settings(home=home, pseudonym_key=KEY, train=TRAIN)
    con = connect(settings.store_path)
    try:
        ingest_paths(
            con,
            [synth / "sources"],
            mapping=load_mapping(None),
            key=KEY,
            max_future_days=1,
            progress=False,
        )
        FeatureStore(con).refresh()
        known_by = newest_record(con)
        dates = training_dates(con, known_by=known_by)
        data = build_training_data(FeatureStore(con), dates, known_by=known_by)
    finally:
        con.close()
    result = train_from_settings(settings)
    registry = registry_from_settings(settings)
    assert result.version is not None
    promoted = True
    try:
        # promote itself refuses a failed champion gate or a precision below the minimum.
        registry.promote(
            result.version.version,
            approver="tests",
            reason="shared test model",
            policy=load_policy(),
        )
    except PromotionRefusedError:
        promoted = False
    with (folder / "prepared.pkl").open("wb") as handle:
        pickle.dump({"data": data, "result": result, "promoted": promoted}, handle)


def prepared(factory: pytest.TempPathFactory) -> Prepared:
    """The shared home, built by the first worker that asks (under a file lock)."""
    folder = _shared_folder(factory)
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (folder / "prepared.pkl").is_file():
                _build(folder)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    with (folder / "prepared.pkl").open("rb") as handle:
        saved = pickle.load(handle)
    return Prepared(
        home=folder / "home",
        synth=folder / "synth",
        data=saved["data"],
        result=saved["result"],
        promoted=saved["promoted"],
    )


def frame_on(prepared_home: Prepared, as_of: date) -> pd.DataFrame:
    """Every feature of every child registered on ``as_of`` (a read-only store connection)."""
    from features.rawstore import connect
    from features.store import FeatureStore

    con = connect(prepared_home.store_path, read_only=True)
    try:
        return FeatureStore(con).build(as_of)
    finally:
        con.close()
