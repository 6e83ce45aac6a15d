"""Scoring runs on a real store: tiers, provenance, rules without a model, guards, persistence."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from features.rawstore import connect
from features.store import FeatureStore
from models.cli import app
from models.policy import Tier, load_policy
from models.scoring import (
    OVERRIDE_COLUMNS,
    SCORE_SCHEMA,
    ModelRef,
    ScoreStore,
    reasons_for,
    score,
    score_frame,
    summarise,
    to_arrow,
)
from shouhu.errors import MissingRateJumpError, PolicyError, ScoreCollapseError, StaleDataError
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


# ---------------------------------------------------------------------------------------------
# The people's part: overrides in force and fall confirmations reach the next run


@pytest.fixture(scope="module")
def frame(trained: Prepared, as_of: date) -> pd.DataFrame:
    """The features of the scoring date (one retrieval shared by the tests below)."""
    connection = connect(trained.store_path, read_only=True)
    try:
        return FeatureStore(connection).build(as_of)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def base(trained: Prepared, frame: pd.DataFrame) -> pd.DataFrame:
    """A run without any review, whose tier state the runs below continue from."""
    return score_frame(frame, trained.result.bundle, load_policy(), with_reasons=False)


def _state(run: pd.DataFrame) -> pd.DataFrame:
    return run[["child_id", "tier", "consecutive_below", "hard_rule_t1"]].copy()


def _level(tier: object) -> int:
    return 5 if tier is None or tier is pd.NA else Tier(str(tier)).level


def _rule_level(labels: list[str]) -> int:
    levels = [1 if x.startswith("hard:") else Tier(x.split(":")[1]).level for x in labels]
    return min(levels, default=5)


def test_reviews_reach_the_next_run_and_the_stored_run_names_them(
    trained: Prepared, frame: pd.DataFrame, base: pd.DataFrame, tmp_path: Path
) -> None:
    policy = load_policy()
    plain = base.loc[(base["tier"] == "T4") & (base["rules_fired"].map(len) == 0), "child_id"]
    raised, fell, waits, closed_too_low, closed = plain.iloc[:5].tolist()
    floor_t2 = base.loc[
        base["rules_fired"].map(
            lambda rules: (
                any(r.startswith("floor:T2:") for r in rules)
                and not any(r.startswith("hard:") for r in rules)
            )
        ),
        "child_id",
    ].iloc[0]
    hard = base.loc[
        base["rules_fired"].map(lambda rules: any(r.startswith("hard:") for r in rules)),
        "child_id",
    ].iloc[0]
    overrides = pd.DataFrame(
        {
            "child_id": [raised, floor_t2, hard, "no-longer-registered"],
            "tier": ["T2", "T4", "T3", "T3"],
            "role": ["supervisor"] * 4,
            "reviewer": ["user:3", "user:3", "user:3", "user:3"],
            "reason": ["new_information: bruises seen at school"] + ["records_outdated: x"] * 3,
            "override_id": [11, 12, 13, 14],
        }
    )
    # Each of these children was in a higher tier, and this run is its second below it.
    previous = _state(base).set_index("child_id")
    previous.loc[[fell, waits], ["tier", "consecutive_below"]] = ["T2", 1]
    previous.loc[[closed_too_low, closed], ["tier", "consecutive_below", "hard_rule_t1"]] = [
        "T1",
        1,
        True,
    ]
    confirmations = pd.DataFrame(
        {
            "child_id": [fell, closed_too_low, closed],
            "confirmed_by": ["caseworker", "caseworker", "supervisor"],
            "confirmation_id": [71, 72, 73],
        }
    )
    run = score_frame(
        frame,
        trained.result.bundle,
        policy,
        previous.reset_index(),
        overrides=overrides,
        confirmations=confirmations,
        with_reasons=False,
    ).set_index("child_id")

    def row(child: str) -> dict[str, Any]:
        # Missing values as None (text columns hold NaN, nullable integers NA).
        return {
            k: (None if v is pd.NA or (isinstance(v, float) and np.isnan(v)) else v)
            for k, v in run.loc[child].to_dict().items()
        }

    up = row(raised)
    assert (up["tier"], up["computed_tier"], up["tier_source"]) == ("T2", "T4", "override")
    assert (up["override_applied"], up["override_limited"], up["override_id"]) == (True, False, 11)
    assert (up["override_tier"], up["override_reviewer"]) == ("T2", "user:3")
    floor = row(floor_t2)  # an override never goes below a floor ...
    assert floor["tier"] in ("T1", "T2") and floor["override_limited"] is True
    assert (floor["override_tier"], floor["override_id"]) == ("T4", 12)
    t1 = row(hard)  # ... nor below a hard rule, whoever sets it
    assert (t1["tier"], t1["override_limited"], t1["tier_source"]) == ("T1", True, "hard_rule")
    # A confirmed fall takes effect; an unconfirmed one waits for its confirmation.
    down = row(fell)
    assert (down["tier"], down["fall_confirmed"], down["confirmation_id"]) == ("T4", True, 71)
    assert down["confirmed_by"] == "caseworker"
    held = row(waits)
    assert (held["tier"], held["awaiting_confirmation"], held["fall_confirmed"]) == (
        "T2",
        True,
        False,
    )
    assert held["confirmed_by"] is None and held["confirmation_id"] is None
    # A hard-rule T1 is closed only by a supervisor.
    still = row(closed_too_low)
    assert (still["tier"], still["awaiting_confirmation"], still["fall_confirmed"]) == (
        "T1",
        True,
        False,
    )
    assert (still["confirmed_by"], still["confirmation_id"]) == ("caseworker", 72)
    shut = row(closed)
    assert (shut["tier"], shut["hard_rule_t1"], shut["fall_confirmed"]) == ("T4", False, True)
    # Nobody else changed: no override, no confirmation, the same tier as before.
    others = run.drop(index=[raised, floor_t2, hard, fell, waits, closed_too_low, closed])
    assert not others["override_applied"].any() and others["override_id"].isna().all()
    assert not others["fall_confirmed"].any() and others["confirmed_by"].isna().all()
    assert (others["tier"] == base.set_index("child_id").loc[others.index, "tier"]).all()

    summary = run.attrs["run"]
    assert (summary["overrides_applied"], summary["overrides_limited"]) == (3, 2)
    assert (summary["falls_confirmed"], summary["awaiting_confirmation"]) == (2, 2)
    assert summary["reviews"] == {
        "overrides_in_force": 4,
        "overrides_not_scored": 1,
        "confirmations_given": 3,
        "confirmations_not_scored": 0,
    }

    # The stored run keeps which override and which confirmation each child's tier took, also
    # in a store written before these columns existed.
    store = ScoreStore(tmp_path / "scores.duckdb", tmp_path / "scores")
    new_columns = [
        "computed_tier",
        "fall_confirmed",
        "confirmed_by",
        "confirmation_id",
        "override_applied",
        "override_limited",
        "override_tier",
        "override_id",
        "override_reviewer",
    ]
    old = duckdb.connect(str(store.path))
    old.register("old_run", to_arrow(base).drop_columns(new_columns))
    old.execute("CREATE TABLE scores AS SELECT * FROM old_run")
    old.close()
    path = store.save(run.reset_index())
    assert pq.read_table(path).schema.equals(SCORE_SCHEMA)
    con = duckdb.connect(str(store.path), read_only=True)
    try:
        stored = dict(
            con.execute(
                "SELECT child_id, override_id FROM scores WHERE override_id IS NOT NULL"
            ).fetchall()
        )
        confirmed = dict(
            con.execute(
                "SELECT child_id, confirmation_id FROM scores WHERE fall_confirmed"
            ).fetchall()
        )
        old_rows = con.execute("SELECT COUNT(*) FROM scores WHERE computed_tier IS NULL").fetchone()
    finally:
        con.close()
    assert stored == {raised: 11, floor_t2: 12, hard: 13}
    assert confirmed == {fell: 71, closed: 73}
    assert old_rows == (len(base),)


def test_reviews_with_missing_columns_or_repeated_children_stop_the_run(
    trained: Prepared, frame: pd.DataFrame
) -> None:
    child = str(frame["child_id"].iloc[0])
    twice = pd.DataFrame(
        {
            "child_id": [child, child],
            "tier": ["T2", "T3"],
            "role": ["supervisor"] * 2,
            "reviewer": ["user:1"] * 2,
            "reason": ["other: twice"] * 2,
        }
    )
    with pytest.raises(PolicyError, match="more than once"):
        score_frame(frame, None, load_policy(), overrides=twice, with_reasons=False)
    with pytest.raises(PolicyError, match="lack column"):
        score_frame(
            frame,
            None,
            load_policy(),
            confirmations=pd.DataFrame({"child_id": [child]}),
            with_reasons=False,
        )


@st.composite
def reviews(draw: st.DrawFn, ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    chosen = draw(st.lists(st.sampled_from(ids), unique=True, max_size=40))
    rows = [
        {
            "child_id": child,
            "tier": draw(st.sampled_from(["T1", "T2", "T3", "T4"])),
            "role": draw(st.sampled_from(["caseworker", "supervisor"])),
            "reviewer": f"user:{draw(st.integers(1, 9))}",
            "reason": "professional_judgement: seen at the visit",
            "override_id": i + 1,
        }
        for i, child in enumerate(chosen)
    ]
    confirmed = draw(st.lists(st.sampled_from(ids), unique=True, max_size=20))
    confirmations = pd.DataFrame(
        {
            "child_id": confirmed,
            "confirmed_by": [
                draw(st.sampled_from(["caseworker", "supervisor"])) for _ in confirmed
            ],
        }
    )
    return pd.DataFrame(rows, columns=[*OVERRIDE_COLUMNS, "override_id"]), confirmations


@pytest.fixture(scope="module")
def reviewed_children(base: pd.DataFrame) -> list[str]:
    """Children of every kind: hard-rule T1s, floors, model tiers, routine care."""
    ranked = base.sort_values(["tier", "child_id"])
    return ranked.groupby("tier").head(30)["child_id"].tolist()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_an_override_in_a_scoring_run_never_goes_below_a_floor_or_a_hard_rule(
    trained: Prepared,
    frame: pd.DataFrame,
    base: pd.DataFrame,
    reviewed_children: list[str],
    data: st.DataObject,
) -> None:
    overrides, confirmations = data.draw(reviews(reviewed_children))
    run = score_frame(
        frame,
        trained.result.bundle,
        load_policy(),
        _state(base),
        overrides=overrides,
        confirmations=confirmations,
        with_reasons=False,
    )
    level = run["tier"].map(_level)
    floor = run["rules_fired"].map(_rule_level)
    assert (level <= floor).all()
    assert (run.loc[floor == 1, "tier"] == "T1").all()
    # The engine's own tier is the one the run gives without reviews (the state is unchanged
    # since the base run, so nothing falls or is held).
    assert run["computed_tier"].tolist() == base["tier"].tolist()
    wanted = overrides.set_index("child_id")
    applied = run[run["override_applied"]]
    assert set(applied["child_id"]) == set(wanted.index)
    assert (
        applied["override_id"].to_numpy() == wanted.loc[applied["child_id"], "override_id"]
    ).all()
    kept = applied[~applied["override_limited"]]
    assert (kept["tier"].to_numpy() == wanted.loc[kept["child_id"], "tier"].to_numpy()).all()
    limited = applied[applied["override_limited"]]
    asked = wanted.loc[limited["child_id"], "tier"].map(_level).to_numpy()
    assert (limited["tier"].map(_level).to_numpy() < asked).all()
    assert not run["fall_confirmed"].any()  # nothing was held, so nothing could fall
