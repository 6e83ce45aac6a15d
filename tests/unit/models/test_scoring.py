"""Scoring runs on a real store: tiers, provenance, rules without a model, guards, persistence."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from features.rawstore import connect
from features.store import FeatureStore
from models.cli import app
from models.policy import load_policy
from models.scoring import (
    SCORE_SCHEMA,
    ModelRef,
    ScoreStore,
    reasons_for,
    score,
    score_frame,
    summarise,
)
from shouhu.errors import MissingRateJumpError, ScoreCollapseError, StaleDataError
from shouhu.settings import get_settings
from tests._trained_model import KEY, Prepared

CONTRACT = (
    "child_id",
    "as_of",
    "p_any",
    "p_low",
    "p_high",
    "borderline",
    "p_serious_harm",
    "p_dropout",
    "p_guardianship_breakdown",
    "p_mental_health",
    "tier",
    "rules_fired",
    "reasons",
    "model_version",
    "policy_version",
)


class _Altered(FeatureStore):
    """The real store, with a change applied to every frame it builds (a corrupted delivery)."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, change: Callable[[pd.DataFrame], pd.DataFrame]
    ) -> None:
        super().__init__(con)
        self.change = change

    def build(self, as_of: date) -> pd.DataFrame:
        return self.change(super().build(as_of))


@pytest.fixture
def con(trained: Prepared) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(trained.store_path, read_only=True)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def as_of(trained: Prepared) -> date:
    """The newest month end in the store: the date a run would score today."""
    return trained.data.known_by


@pytest.fixture(scope="module")
def scored(trained: Prepared, as_of: date) -> pd.DataFrame:
    connection = connect(trained.store_path, read_only=True)
    try:
        return score(
            as_of,
            trained.result.bundle,
            load_policy(),
            FeatureStore(connection),
            model=ModelRef("shouhu-risk", 1),
        )
    finally:
        connection.close()


def test_every_registered_child_gets_one_tier_with_provenance(
    trained: Prepared, scored: pd.DataFrame, con: duckdb.DuckDBPyConnection, as_of: date
) -> None:
    registered = FeatureStore(con).registered_children(as_of)["child_id"]
    assert sorted(scored["child_id"]) == sorted(registered)
    assert set(CONTRACT) <= set(scored.columns)
    assert set(scored["tier"]) <= {"T1", "T2", "T3", "T4"}
    assert (scored["p_low"] <= scored["p_any"]).all() and (
        scored["p_any"] <= scored["p_high"]
    ).all()
    policy = load_policy()
    bundle = trained.result.bundle
    assert (scored["model_version"] == 1).all() and (scored["model_name"] == "shouhu-risk").all()
    assert (scored["policy_version"] == policy.version).all()
    assert (scored["feature_fingerprint"] == bundle.feature_fingerprint).all()
    assert scored["model_available"].all()
    # Every rule that fired is named by kind, and hard rules force T1.
    labels = {label for rules in scored["rules_fired"] for label in rules}
    assert all(label.startswith(("hard:", "floor:T")) for label in labels)
    hard = scored["rules_fired"].map(lambda rules: any(r.startswith("hard:") for r in rules))
    assert hard.any() and (scored.loc[hard, "tier"] == "T1").all()
    # Reasons: the top factors of p_any, in both languages, for children the model placed.
    with_reasons = scored["reasons"].map(len) > 0
    assert with_reasons.mean() > 0.9
    first = scored.loc[with_reasons, "reasons"].iloc[0][0]
    assert {"feature", "domain", "direction", "contribution", "value", "zh", "en"} <= set(first)
    assert first["feature"] in bundle.feature_names
    summary = summarise(scored)
    assert summary["children"] == len(scored) and sum(summary["tiers"].values()) == len(scored)
    assert summary["model_tiers_missing"] is False


def test_without_a_model_the_rules_still_tier_children_and_the_run_says_so(
    scored: pd.DataFrame, con: duckdb.DuckDBPyConnection, as_of: date
) -> None:
    rules_only = score(as_of, None, load_policy(), FeatureStore(con))
    assert not rules_only["model_available"].any()
    assert rules_only["p_any"].isna().all() and rules_only["model_version"].isna().all()
    summary = summarise(rules_only)
    assert summary["model_tiers_missing"] is True
    with_model = scored.set_index("child_id")
    alone = rules_only.set_index("child_id")
    hard = alone["rules_fired"].map(lambda rules: any(r.startswith("hard:") for r in rules))
    assert (alone.loc[hard, "tier"] == "T1").all()
    # The same rules fire whether or not a model is there.
    assert (
        alone["rules_fired"]
        .map(tuple)
        .equals(with_model.loc[alone.index, "rules_fired"].map(tuple))
    )
    floor_t2 = alone["rules_fired"].map(lambda rules: any(r.startswith("floor:T2:") for r in rules))
    assert alone.loc[floor_t2, "tier"].isin(["T1", "T2"]).all()
    # Without a rule and without a score there is nothing to raise a child above routine care.
    no_rule = alone["rules_fired"].map(len) == 0
    assert (alone.loc[no_rule, "tier"] == "T4").all()


def test_stale_ledgers_stop_the_run_with_a_named_error_and_store_nothing(
    trained: Prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_of: date
) -> None:
    late = as_of + timedelta(days=load_policy().input_guards.max_staleness_days + 15)
    connection = connect(trained.store_path, read_only=True)
    try:
        with pytest.raises(StaleDataError, match="stale"):
            score(late, trained.result.bundle, load_policy(), FeatureStore(connection))
    finally:
        connection.close()
    home = _private_home(trained, tmp_path, monkeypatch)
    outcome = CliRunner().invoke(app, ["score", "--as-of", late.isoformat(), "--json"])
    assert outcome.exit_code != 0
    assert isinstance(outcome.exception, StaleDataError)
    assert StaleDataError.exit_code == 9
    assert not (home / "scores.duckdb").exists() and not (home / "scores").exists()


def test_a_jump_in_missing_values_stops_the_run_naming_the_feature(
    trained: Prepared, con: duckdb.DuckDBPyConnection, as_of: date
) -> None:
    def drop_scores(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(latest_depression_score=np.nan)

    with pytest.raises(MissingRateJumpError, match="latest_depression_score"):
        score(as_of, trained.result.bundle, load_policy(), _Altered(con, drop_scores))


def test_scores_collapsing_to_one_value_stop_the_run(
    trained: Prepared, con: duckdb.DuckDBPyConnection, as_of: date
) -> None:
    features = list(trained.result.bundle.feature_names)

    def one_child_everywhere(frame: pd.DataFrame) -> pd.DataFrame:
        # Every child gets the same features (a broken join repeating one record); known
        # values everywhere, so that only the spread guard, not the missing-value one, fires.
        out = frame.copy()
        for name in features:
            known = out[name].dropna()
            value = known.mode().iloc[0] if len(known) else None
            out[name] = out[name].iloc[[0] * len(out)].fillna(value).to_numpy()
        return out

    with pytest.raises(ScoreCollapseError, match="standard deviation"):
        score(as_of, trained.result.bundle, load_policy(), _Altered(con, one_child_everywhere))


def test_runs_are_stored_and_the_previous_run_holds_a_fall_back(
    trained: Prepared, con: duckdb.DuckDBPyConnection, as_of: date, tmp_path: Path
) -> None:
    store = ScoreStore(tmp_path / "scores.duckdb", tmp_path / "scores")
    assert store.previous(as_of) is None
    earlier = (pd.Timestamp(as_of) - pd.offsets.MonthEnd(1)).date()
    policy, bundle = load_policy(), trained.result.bundle
    first = score(
        earlier, bundle, policy, FeatureStore(con), store.previous(earlier), with_reasons=False
    )
    path = store.save(first)
    table = pq.read_table(path)
    assert table.schema.equals(SCORE_SCHEMA)
    assert table.num_rows == len(first)
    previous = store.previous(as_of)
    assert previous is not None and len(previous) == len(first)
    second = score(as_of, bundle, policy, FeatureStore(con), previous, with_reasons=False)
    store.save(second)
    runs = store.runs()
    assert runs["as_of"].tolist() == [earlier, as_of]
    # A child whose candidate tier fell is held at the previous tier (a fall needs two
    # scorings below and a caseworker's confirmation).
    before = first.set_index("child_id")["tier"]
    now = second.set_index("child_id")
    common = now.index.intersection(before.index)
    fell = [c for c in common if now.at[c, "tier"] > before[c]]
    assert fell == []
    held = now.loc[common, "held_by_hysteresis"]
    assert (now.loc[held[held].index, "tier"] == before[held[held].index]).all()


def test_cli_score_writes_parquet_duckdb_and_the_contract_json(
    trained: Prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_of: date
) -> None:
    home = _private_home(trained, tmp_path, monkeypatch)
    out = tmp_path / "run.parquet"
    args = ["score", "--as-of", as_of.isoformat(), "--out", str(out), "--json"]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    payload = json.loads(outcome.stdout)
    assert {
        "as_of",
        "children",
        "tiers",
        "hard_rule_hits",
        "model_version",
        "policy_version",
    } <= set(payload)
    assert payload["as_of"] == as_of.isoformat()
    assert set(payload["tiers"]) == {"T1", "T2", "T3", "T4"}
    assert sum(payload["tiers"].values()) == payload["children"]
    assert payload["model_tiers_missing"] is (not trained.promoted)
    frame = pd.read_parquet(out)
    assert set(CONTRACT) <= set(frame.columns) and len(frame) == payload["children"]
    con = duckdb.connect(str(home / "scores.duckdb"), read_only=True)
    try:
        stored = con.execute("SELECT count(*) FROM scores").fetchall()[0][0]
    finally:
        con.close()
    assert stored == payload["children"]


def test_reasons_come_from_the_explain_module(
    trained: Prepared, con: duckdb.DuckDBPyConnection, as_of: date
) -> None:
    from models import explain

    bundle = trained.result.bundle
    features = FeatureStore(con).build(as_of).head(20)[list(bundle.feature_names)]
    expected = explain.explain_frame(bundle, features, domain="any", top_k=5)
    got = reasons_for(bundle, features, top_k=5)
    assert [[r["feature"] for r in row] for row in got] == [
        [r["feature"] for r in row] for row in expected
    ]


def test_scoring_never_imports_training_or_evaluation_code() -> None:
    code = (
        "import sys, models.scoring, models.cli, models.gate; "
        "print(sorted(m for m in ('models.train', 'models.evaluate', 'matplotlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _private_home(trained: Prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home reading the shared store and registry, writing its own scores."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "features.duckdb").symlink_to(trained.store_path)
    (home / "mlflow").symlink_to(trained.home / "mlflow")
    monkeypatch.setenv("SHOUHU_HOME", str(home))
    monkeypatch.setenv("SHOUHU_PSEUDONYM_KEY", KEY)
    get_settings.cache_clear()
    return home


def test_explaining_only_the_acted_on_tiers_leaves_t4_for_on_demand(
    trained: Prepared, scored: pd.DataFrame, con: duckdb.DuckDBPyConnection, as_of: date
) -> None:
    frame = FeatureStore(con).build(as_of)
    acted = score_frame(
        frame,
        trained.result.bundle,
        load_policy(),
        explain_tiers=("T1", "T2", "T3"),
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert acted["tier"].tolist() == scored["tier"].tolist()  # same children, same order
    routine = acted["tier"] == "T4"
    assert routine.any() and (~routine).any()
    assert (acted.loc[routine, "reasons"].map(len) == 0).all()
    assert (acted.loc[~routine, "reasons"].map(len) > 0).mean() > 0.9
    assert acted.attrs["run"]["explained"] == int((~routine).sum())
    # The reasons of the children explained at once are those of a run that explains all.
    assert acted.loc[~routine, "reasons"].tolist() == scored.loc[~routine, "reasons"].tolist()


def test_stored_reason_values_are_text_that_reads_back(scored: pd.DataFrame) -> None:
    values = [r["value"] for row in scored["reasons"] for r in row]
    assert values and all(v is None or isinstance(v, str) for v in values)
    numeric = [
        r["value"]
        for row in scored["reasons"]
        for r in row
        if r["value"] is not None and r["feature"].endswith(("_90d", "_365d"))
    ]
    assert numeric and all(float(v) >= 0 for v in numeric)
    # A whole number reads as one ("7", not "7.0"), as the sentences print it.
    assert not any(v.endswith(".0") for v in numeric)


def test_one_shared_encoding_scores_exactly_as_each_model_alone(
    trained: Prepared, con: duckdb.DuckDBPyConnection, as_of: date
) -> None:
    bundle = trained.result.bundle
    features = FeatureStore(con).build(as_of)[list(bundle.feature_names)]
    assert bundle._shared_encoding()  # five LightGBM models trained together
    got = bundle.predict(features)
    for outcome, model in bundle.models.items():
        column = "p_any" if outcome == "any" else f"p_{outcome}"
        np.testing.assert_array_equal(got[column].to_numpy(), model.predict_proba(features)[:, 1])
    low, high = bundle.models["any"].predict_interval(features)
    np.testing.assert_array_equal(got["p_low"].to_numpy(), low)
    np.testing.assert_array_equal(got["p_high"].to_numpy(), high)
