"""Model registry on a real local MLflow store (SQLite + artifact folder) in a temp folder.

One store serves the whole module because creating MLflow's SQLite schema takes seconds.
Each test that changes the registry logs the versions it needs itself and checks changes
relative to the state it found, so the tests do not depend on their order.

MLflow's process-wide tracking URI points at a decoy file during the module: the registry must
never use it (every call goes through its own client).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd
import pytest
from typer.testing import CliRunner

from models.gate import FAILED, GATE_REASON_TAG, GATE_TAG, PASSED
from models.policy import Promotion, TierPolicy, load_policy
from models.registry import (
    CHALLENGER,
    CHAMPION,
    PRECISION_METRIC,
    LoggedVersion,
    ModelRegistry,
    flatten_metrics,
)
from shouhu.errors import NotFoundError, PromotionRefusedError, RegistryError
from shouhu.settings import Settings

from ._bundle_factory import Trained, train_bundle

FAIRNESS = [
    {"attribute": "sex", "group": "girls", "metric": "fnr", "value": 0.4, "ratio": 1.1},
    {"attribute": "sex", "group": "boys", "metric": "fnr", "value": 0.36, "ratio": 1.0},
]


@dataclass(frozen=True)
class Store:
    """The module's registry, the bundle logged into it, and the first logged version."""

    home: Path
    registry: ModelRegistry
    trained: Trained
    first: LoggedVersion
    aliases_after_first: dict[str, int]
    decoy: Path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("registry")
    decoy = root / "decoy.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{decoy.as_posix()}")
        registry = ModelRegistry.local(root / "home" / "mlflow")
        trained = train_bundle(seed=1)
        plot = root / "calibration.png"
        plot.write_bytes(b"\x89PNG\r\n\x1a\n")  # the header is enough for an artifact
        first = registry.log_training_run(
            trained.bundle,
            params={"estimator": {"n_estimators": 40, "num_leaves": 5}, "seed": 1},
            metrics={"baseline": {"scorecard": trained.scorecard_report.to_dict()}},
            fairness=pd.DataFrame(FAIRNESS),
            plots=[plot],
            model_card={
                "data": {"description": "Simulated children, three windows."},
                "baselines": {"scorecard": trained.scorecard_report.to_dict()},
                "fairness": {"band": [0.8, 1.25]},
                "promotion": {"min_precision_at_capacity": 0.2},
            },
            run_name="first",
        )
        yield Store(root / "home", registry, trained, first, registry._aliases(), decoy)


@pytest.fixture(scope="module")
def policy() -> TierPolicy:
    return load_policy()


def strict(policy: TierPolicy, minimum: float) -> TierPolicy:
    """The policy with another pre-registered minimum precision at capacity."""
    promotion = Promotion(min_precision_at_capacity=minimum, preregistered_on=date(2026, 11, 1))
    return policy.model_copy(update={"promotion": promotion})


def snapshot(registry: ModelRegistry) -> tuple[dict[str, int], str, list[dict[str, str]]]:
    """Aliases, promotion log text and every version's tags: what a refusal must not change."""
    log = registry.promotion_log.read_text() if registry.promotion_log.exists() else ""
    return registry._aliases(), log, [v.tags for v in registry.list_versions()]


def test_log_training_run_registers_a_version_with_the_challenger_alias(store: Store) -> None:
    assert store.first.version == 1
    assert store.aliases_after_first == {CHALLENGER: 1}
    info = store.registry.version_info(1)
    assert info.run_id == store.first.run_id
    assert info.tag("policy_version") == "cq-default-2026.2"
    assert info.tag("feature_fingerprint") == store.trained.bundle.feature_fingerprint
    assert info.tag("data_fingerprint") == store.trained.bundle.data_fingerprint
    assert info.tag("policy_fingerprint") == store.trained.bundle.policy_fingerprint
    assert len(info.tag("bundle_sha256") or "") == 64
    assert store.first.model_uri == "models:/shouhu-risk/1"


def test_log_training_run_records_params_flattened_metrics_and_artifacts(store: Store) -> None:
    client = store.registry.client
    run = client.get_run(store.first.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["estimator.n_estimators"] == "40"
    assert run.data.params["n_features"] == "6"
    precision = store.trained.reports["any"].metrics["precision_at_capacity"]
    assert run.data.metrics[PRECISION_METRIC] == pytest.approx(precision.value)
    assert run.data.metrics[f"{PRECISION_METRIC}.low"] == pytest.approx(precision.low)
    assert run.data.metrics[f"{PRECISION_METRIC}.high"] == pytest.approx(precision.high)
    assert "test.dropout.roc_auc" in run.data.metrics
    assert "baseline.scorecard.roc_auc.high" in run.data.metrics
    assert run.data.tags["shouhu.policy_version"] == "cq-default-2026.2"

    def listing(path: str = "") -> set[str]:
        return {f.path for f in client.list_artifacts(store.first.run_id, path)}

    assert {"features.json", "provenance.json", "metrics.json"} <= listing()
    assert listing("fairness") == {"fairness/fairness.csv", "fairness/fairness.json"}
    assert listing("plots") == {"plots/calibration.png"}
    assert listing("model_card") == {
        "model_card/context.json",
        "model_card/model_card.md",
        "model_card/model_card.html",
    }
    local = Path(client.download_artifacts(store.first.run_id, "", str(store.home / "dl")))
    features = json.loads((local / "features.json").read_text())
    assert features["feature_names"] == list(store.trained.bundle.feature_names)
    fairness = pd.read_csv(local / "fairness" / "fairness.csv")
    assert fairness["group"].tolist() == ["girls", "boys"]


def test_logged_model_card_holds_metrics_with_intervals_and_human_review(store: Store) -> None:
    local = Path(
        store.registry.client.download_artifacts(
            store.first.run_id, "model_card", str(store.home / "card")
        )
    )
    markdown = (local / "model_card.md").read_text()
    roc = store.trained.reports["any"].metrics["roc_auc"]
    assert "# Model card: shouhu-risk version 1" in markdown
    assert f"| ROC-AUC | {roc.value:.3f} | {roc.low:.3f}–{roc.high:.3f} |" in markdown
    assert "## Human review (人工复核)" in markdown
    assert "| sex | girls |" in markdown and "within 0.80–1.25" in markdown
    assert "Human review (人工复核)" in (local / "model_card.html").read_text()
    context = json.loads((local / "context.json").read_text())
    assert context["model"]["version"] == 1


def test_load_bundle_by_alias_gives_identical_predictions(store: Store) -> None:
    logged = store.registry.log_training_run(store.trained.bundle, run_name="load")
    assert store.registry._aliases()[CHALLENGER] == logged.version
    loaded = store.registry.load_bundle(CHALLENGER)
    test = store.trained.test
    pd.testing.assert_frame_equal(loaded.predict(test), store.trained.bundle.predict(test))
    pd.testing.assert_frame_equal(
        loaded.contributions(test.head(5)), store.trained.bundle.contributions(test.head(5))
    )
    assert loaded.describe() == store.trained.bundle.describe()
    by_number = store.registry.load_bundle(str(logged.version))
    pd.testing.assert_frame_equal(by_number.predict(test), loaded.predict(test))


def test_pyfunc_wrapper_scores_like_the_bundle(store: Store) -> None:
    import mlflow.pyfunc

    uri = store.registry.client.get_model_version_download_uri("shouhu-risk", "1")
    pyfunc = mlflow.pyfunc.load_model(uri)
    test = store.trained.test
    pd.testing.assert_frame_equal(pyfunc.predict(test), store.trained.bundle.predict(test))


@pytest.mark.parametrize(
    ("approver", "reason", "message"),
    [
        ("", "passed quarterly review", "named approver"),
        ("   ", "passed quarterly review", "named approver"),
        ("Wang Fang (county supervisor)", "", "reason is required"),
        ("Wang Fang (county supervisor)", " \n", "reason is required"),
    ],
)
def test_promote_without_approver_or_reason_is_refused(
    store: Store, policy: TierPolicy, approver: str, reason: str, message: str
) -> None:
    before = snapshot(store.registry)
    with pytest.raises(PromotionRefusedError, match=message):
        store.registry.promote(1, approver=approver, reason=reason, policy=policy)
    assert snapshot(store.registry) == before


def test_promote_below_the_preregistered_minimum_is_refused_and_changes_nothing(
    store: Store, policy: TierPolicy
) -> None:
    recorded = store.trained.bundle.metric("precision_at_capacity")
    assert recorded is not None
    demanding = strict(policy, round(recorded + 0.05, 2))
    before = snapshot(store.registry)
    with pytest.raises(PromotionRefusedError, match="below the minimum") as refused:
        store.registry.promote(1, approver="Wang Fang", reason="best AUC so far", policy=demanding)
    assert f"{recorded:.3f}" in refused.value.message
    assert "pre-registered in policy cq-default-2026.2 on 2026-11-01" in refused.value.message
    assert snapshot(store.registry) == before
    assert store.registry.version_info(1).tag("promoted_by") is None


def test_promote_refuses_a_failed_champion_gate_without_the_caller_checking_it(
    store: Store, policy: TierPolicy
) -> None:
    reason = (
        "champion gate failed: the model's precision at capacity beat both the warning-sign "
        "count and the village ranker in 1 of 2 time folds (2 required)"
    )
    failed = store.registry.log_training_run(
        store.trained.bundle,
        run_name="failed gate",
        tags={GATE_TAG: FAILED, GATE_REASON_TAG: reason},
    )
    lenient = strict(policy, 0.01)  # the precision bar is no obstacle: only the gate is
    before = snapshot(store.registry)
    with pytest.raises(PromotionRefusedError, match="1 of 2 time folds") as refused:
        store.registry.promote(failed.version, approver="Li", reason="looks good", policy=lenient)
    assert refused.value.message.startswith(f"version {failed.version} was not promoted")
    assert snapshot(store.registry) == before
    passed = store.registry.log_training_run(
        store.trained.bundle, run_name="passed gate", tags={GATE_TAG: PASSED}
    )
    record = store.registry.promote(
        passed.version, approver="Li", reason="passed the gate", policy=lenient
    )
    assert record.version == passed.version


def test_promote_moves_champion_tags_the_version_and_appends_to_the_log(
    store: Store, policy: TierPolicy
) -> None:
    logged = store.registry.log_training_run(store.trained.bundle, run_name="promote")
    previous = store.registry._aliases().get(CHAMPION)
    lines_before = len(store.registry.promotions())
    when = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    record = store.registry.promote(
        logged.version,
        approver="  Wang Fang (county supervisor) ",
        reason="Quarterly review: precision at capacity 0.31, fairness within band.",
        policy=policy,
        now=when,
    )
    champion = store.registry.champion_info()
    assert champion is not None and champion.version == logged.version
    assert champion.aliases == (CHAMPION,)  # no longer the challenger
    assert champion.tag("promoted_by") == "Wang Fang (county supervisor)"
    assert (champion.tag("promotion_reason") or "").startswith("Quarterly review")
    assert champion.tag("promoted_at") == "2026-11-24T08:00:00+00:00"
    assert champion.tag("promotion_policy_version") == policy.version
    log = store.registry.promotions()
    assert len(log) == lines_before + 1
    assert log[-1] == record.to_dict()
    assert log[-1]["version"] == logged.version
    assert log[-1]["previous_champion"] == previous
    assert log[-1]["approver"] == "Wang Fang (county supervisor)"
    assert log[-1]["min_precision_at_capacity"] == policy.promotion.min_precision_at_capacity
    assert log[-1]["policy_fingerprint"] == policy.fingerprint()
    loaded = store.registry.load_bundle(CHAMPION)
    test = store.trained.test
    pd.testing.assert_frame_equal(loaded.predict(test), store.trained.bundle.predict(test))


def test_promote_refuses_the_current_champion_and_unknown_versions(
    store: Store, policy: TierPolicy
) -> None:
    champion = store.registry.champion_info()
    if champion is None:
        logged = store.registry.log_training_run(store.trained.bundle, run_name="champion")
        store.registry.promote(logged.version, approver="Li", reason="first", policy=policy)
        champion = store.registry.champion_info()
    assert champion is not None
    before = snapshot(store.registry)
    with pytest.raises(PromotionRefusedError, match="already the champion"):
        store.registry.promote(champion.version, approver="Li", reason="again", policy=policy)
    with pytest.raises(NotFoundError, match="has no version 999"):
        store.registry.promote(999, approver="Li", reason="typo", policy=policy)
    assert snapshot(store.registry) == before


def test_second_training_becomes_challenger_while_champion_stays(
    store: Store, policy: TierPolicy
) -> None:
    if store.registry.champion_info() is None:
        store.registry.promote(1, approver="Li", reason="first champion", policy=policy)
    champion = store.registry.champion_info()
    assert champion is not None
    newest = max(v.version for v in store.registry.list_versions())
    logged = store.registry.log_training_run(store.trained.bundle, run_name="next quarter")
    assert logged.version == newest + 1
    aliases = store.registry._aliases()
    assert aliases[CHALLENGER] == logged.version
    assert aliases[CHAMPION] == champion.version
    versions = store.registry.list_versions()
    assert versions[0].version == logged.version and versions[0].aliases == (CHALLENGER,)
    by_number = {v.version: v for v in versions}
    assert by_number[champion.version].aliases == (CHAMPION,)
    assert [v.version for v in versions] == sorted(by_number, reverse=True)
    # Every version has a card, even when training passed no extra card context.
    card = store.registry.model_card(logged.version)
    assert f"# Model card: shouhu-risk version {logged.version}" in card.markdown
    assert "Human review (人工复核)" in card.html


def test_load_bundle_refuses_an_artifact_changed_after_registration(store: Store) -> None:
    logged = store.registry.log_training_run(store.trained.bundle, run_name="tamper")
    uri = store.registry.client.get_model_version_download_uri("shouhu-risk", str(logged.version))
    bundle_file = Path(url2pathname(urlparse(uri).path)) / "artifacts" / "bundle.pkl"
    bundle_file.write_bytes(bundle_file.read_bytes() + b"\x00")
    with pytest.raises(RegistryError, match="checksum does not match"):
        store.registry.load_bundle(logged.version)


def test_an_empty_registry_has_no_champion_and_no_versions(store: Store) -> None:
    other = ModelRegistry(
        tracking_uri=store.registry.tracking_uri,
        promotion_log=store.home / "other.jsonl",
        model_name="other-model",
    )
    assert other.champion_info() is None
    assert other.list_versions() == []
    with pytest.raises(NotFoundError, match="other-model has no alias 'champion'"):
        other.load_bundle()


def test_cli_promote_prints_the_record_and_moves_champion(
    store: Store, policy: TierPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.cli import app
    from shouhu.settings import get_settings

    logged = store.registry.log_training_run(store.trained.bundle, run_name="cli")
    monkeypatch.setenv("SHOUHU_HOME", str(store.home))
    get_settings.cache_clear()
    args = ["promote", str(logged.version), "--approver", "Li Na", "--reason", "reviewed"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["version"] == logged.version and payload["approver"] == "Li Na"
    assert store.registry._aliases()[CHAMPION] == logged.version

    refused = CliRunner().invoke(app, ["promote", str(logged.version), "--reason", "x"])
    assert refused.exit_code == 2  # usage error: --approver is required
    blank = CliRunner().invoke(
        app, ["promote", str(logged.version), "--approver", " ", "--reason", "x"]
    )
    assert isinstance(blank.exception, PromotionRefusedError)
    assert blank.exception.exit_code == 8


def test_cli_promote_refuses_a_failed_gate_with_exit_code_8(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.cli import app
    from shouhu.settings import get_settings

    logged = store.registry.log_training_run(
        store.trained.bundle, run_name="cli failed gate", tags={GATE_TAG: FAILED}
    )
    monkeypatch.setenv("SHOUHU_HOME", str(store.home))
    get_settings.cache_clear()
    before = snapshot(store.registry)
    args = ["promote", str(logged.version), "--approver", "Li Na", "--reason", "reviewed"]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, PromotionRefusedError)
    assert result.exception.exit_code == 8
    assert "did not beat both baselines" in result.exception.message
    assert snapshot(store.registry) == before


def test_local_registry_layout_matches_the_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    local = ModelRegistry.local(settings.registry_dir)
    assert local.tracking_uri == settings.tracking_uri
    assert local.registry_uri == settings.registry_uri
    assert local.artifact_location == settings.artifact_location
    assert local.promotion_log == settings.promotion_log_path
    assert local.model_name == settings.registry.model_name


def test_flatten_metrics_keeps_intervals_and_drops_settings() -> None:
    report = {
        "n_rows": 10,
        "n_positive": 2,
        "n_clusters": 5,
        "metrics": {"roc_auc": {"value": 0.8, "low": 0.7, "high": 0.9, "level": 0.95}},
        "settings": {"seed": 0},
    }
    flat = flatten_metrics({"test": {"any": report}, "note": "text", "nan": float("nan")})
    assert flat == {
        "test.any.n_rows": 10.0,
        "test.any.n_positive": 2.0,
        "test.any.n_clusters": 5.0,
        "test.any.roc_auc": 0.8,
        "test.any.roc_auc.low": 0.7,
        "test.any.roc_auc.high": 0.9,
    }


def test_registry_never_uses_mlflows_global_tracking_uri(store: Store) -> None:
    assert not store.decoy.exists()
    assert (store.home / "mlflow" / "mlflow.db").is_file()
    assert not Path("mlruns").exists()
