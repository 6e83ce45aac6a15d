"""Explanations: exact contributions, caseworker sentences, domains, evidence and the CLI.

A small LightGBM bundle is fitted on the real feature list of a generated population (2,000
children, 12 months of ledgers, three month-end dates), with labels read forward from the
ledgers (``features.labels``), so reasons, evidence and rules are those a caseworker would see.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.definitions import DOMAINS, model_feature_names
from features.labels import label_frame
from features.rawstore import connect
from features.store import FeatureStore
from models.bundle import ModelBundle, frame_fingerprint
from models.calibration import calibrate
from models.estimator import RiskClassifier
from models.explain import (
    REASON_KEYS,
    contributions,
    contributions_agree,
    explain_child,
    explain_frame,
    feature_texts,
    global_importance,
    reasons_from_top,
    render_text,
    sentence,
    top_contributions,
)
from models.policy import TierPolicy, fired_rules, load_policy
from models.registry import VersionInfo
from shouhu.errors import NotFoundError
from tests.unit.features._population_store import AS_OF, ledger_identities, population_store

FAST: dict[str, Any] = {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 15}
# An 18-character identity number standing alone (not the digits of a float).
ID_NUMBER = re.compile(r"(?<![\d.])\d{17}[\dXx](?!\d)")


@dataclass(frozen=True)
class Fitted:
    """The bundle, the frame it explains, the store and where the ledgers are."""

    bundle: ModelBundle
    frame: pd.DataFrame
    con: duckdb.DuckDBPyConnection
    store: Path
    sources: Path
    policy: TierPolicy


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fitted]:
    population = population_store(tmp_path_factory)
    con = connect(population.store, read_only=True)
    store = FeatureStore(con)
    frames = [store.build(day) for day in AS_OF]
    labels = [label_frame(con, f[["child_id", "as_of"]])["any"].to_numpy() for f in frames]
    names = model_feature_names()
    train = pd.concat(frames[:2], ignore_index=True)
    model = RiskClassifier(**FAST).fit(train[names], np.concatenate(labels[:2]))
    calibrated = calibrate(
        model, frames[2][names], labels[2], groups=frames[2]["household_pid"], n_bootstrap=10
    )
    policy = load_policy()
    bundle = ModelBundle(
        models={"any": calibrated},
        feature_names=tuple(names),
        feature_fingerprint="test-features",
        policy_version=policy.version,
        policy_fingerprint=policy.fingerprint(),
        data_fingerprint=frame_fingerprint(train[names]),
    )
    yield Fitted(bundle, frames[2], con, population.store, population.sources, policy)
    con.close()


def _model(fitted: Fitted) -> RiskClassifier:
    model = fitted.bundle.models["any"].model
    assert isinstance(model, RiskClassifier)
    return model


def _riskiest(fitted: Fitted, n: int = 1) -> pd.DataFrame:
    margin = _model(fitted).decision_function(fitted.frame[list(fitted.bundle.feature_names)])
    return fitted.frame.iloc[np.argsort(-margin)[:n]]


# --- contributions -----------------------------------------------------------------------------


def test_contributions_sum_to_the_models_raw_margin_for_every_row(fitted: Fitted) -> None:
    values = contributions(fitted.bundle, fitted.frame)
    margin = _model(fitted).decision_function(fitted.frame[list(fitted.bundle.feature_names)])
    assert values.shape == (len(fitted.frame), len(fitted.bundle.feature_names) + 1)
    np.testing.assert_allclose(values.sum(axis=1), margin, rtol=0, atol=1e-9)
    top = top_contributions(fitted.bundle, fitted.frame, batch_size=333)
    np.testing.assert_allclose(top.margin, margin, rtol=0, atol=1e-9)
    np.testing.assert_allclose(top.bias, values[:, -1], rtol=0, atol=0)


def test_shap_tree_explainer_equals_lightgbm_pred_contrib(fitted: Fitted) -> None:
    assert contributions_agree(fitted.bundle, fitted.frame) < 1e-6


def test_contributions_do_not_depend_on_threads_or_batches(fitted: Fitted) -> None:
    one = top_contributions(fitted.bundle, fitted.frame, n_threads=1, batch_size=10_000)
    two = top_contributions(fitted.bundle, fitted.frame, n_threads=2, batch_size=97)
    np.testing.assert_array_equal(one.index, two.index)
    np.testing.assert_array_equal(one.value, two.value)


def test_top_reasons_are_the_largest_contributions_largest_first(fitted: Fitted) -> None:
    reasons = explain_frame(fitted.bundle, fitted.frame, top_k=5, batch_size=500)
    full = fitted.bundle.contributions(fitted.frame, "any").drop(columns="bias")
    assert len(reasons) == len(fitted.frame)
    for i in range(0, len(fitted.frame), 37):
        row = full.iloc[i]
        expected = row[row != 0].abs().sort_values(ascending=False).head(5)
        got = reasons[i]
        assert [r["feature"] for r in got] == list(expected.index)
        for reason in got:
            assert tuple(reason) == REASON_KEYS
            assert reason["contribution"] == pytest.approx(row[reason["feature"]], abs=1e-12)
            assert reason["direction"] == ("raises" if reason["contribution"] > 0 else "lowers")
            assert reason["domain"] == feature_texts()[reason["feature"]].domain
            assert (reason["zh"], reason["en"]) == sentence(reason["feature"], reason["value"])


def test_reason_values_are_the_childs_values(fitted: Fitted) -> None:
    reasons = explain_frame(fitted.bundle, fitted.frame.head(300))
    for i, row_reasons in enumerate(reasons):
        for reason in row_reasons:
            value = fitted.frame[reason["feature"]].iloc[i]
            if pd.isna(value):
                assert reason["value"] is None
            elif isinstance(reason["value"], str):
                assert reason["value"] == str(value)
            else:
                assert reason["value"] == pytest.approx(float(value))


def test_stored_top_contributions_render_the_same_reasons(fitted: Fitted) -> None:
    rows = fitted.frame.head(200)
    top = top_contributions(fitted.bundle, rows, top_k=4)
    assert reasons_from_top(top, rows) == explain_frame(fitted.bundle, rows, top_k=4)


# --- sentences ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("feature", "value", "zh", "en"),
    [
        (
            "unexcused_absence_days_90d",
            7,
            "近90天无故缺课7天",
            "7 unexcused absence days in the last 90 days",
        ),
        ("visits_90d", 1, "近90天走访1次", "1 home visit in the last 90 days"),
        ("visits_90d", 0, "近90天走访0次", "0 home visits in the last 90 days"),
        (
            "visits_child_not_seen_365d",
            3,
            "近365天走访中未见到儿童3次",
            "3 visits in the last 365 days where the child was not seen",
        ),
        (
            "days_since_last_visit",
            45.0,
            "距最近一次走访已45天",
            "45 days since the last home visit",
        ),
        (
            "days_since_last_visit",
            None,
            "距最近一次走访的天数：无记录",
            "days since the last home visit: no record",
        ),
        (
            "absence_weeks_90d",
            3,
            "近90天有无故缺课3周",
            "3 weeks with an unexcused absence in the last 90 days",
        ),
        (
            "suspected_dropout_records_365d",
            2,
            "近365天疑似辍学或辍学记录2条",
            "2 suspected-dropout or dropout records in the last 365 days",
        ),
        (
            "harm_incidents_365d",
            1,
            "近365天家庭暴力、虐待、性侵害或其他不法侵害事件1起",
            "domestic violence, abuse, sexual abuse or other unlawful harm in the last 365 "
            "days: 1 incident",
        ),
        ("disability", True, "是否残疾：是", "has a disability: yes"),
        (
            "latest_screen_positive",
            False,
            "最近一次心理筛查结果为阳性：否",
            "the latest screening was positive: no",
        ),
        (
            "guardianship_capacity",
            "absent",
            "监护能力评估：监护缺失",
            "assessed guardianship capacity: absent",
        ),
        (
            "parent_contact",
            "quarterly",
            "父母联系频次：每季度",
            "how often the parents phone the child: quarterly",
        ),
        (
            "latest_depression_score",
            32.0,
            "最近一次抑郁量表得分为32分",
            "latest depression score (CES-DC, 0-60): 32 points",
        ),
        ("caregiver_age", 72.0, "监护人年龄为72岁", "caregiver's age: 72 years"),
        (
            "unexcused_absence_rate_90d",
            0.125,
            "近90天无故缺课天数占应到校天数的比例为12.5%",
            "share of school days in the last 90 days missed without excuse: 12.5%",
        ),
        (
            "unexcused_absence_trend",
            0.05,
            "本学期比上学期无故缺课率的变化为+5个百分点(正数表示变差)",
            "change in the unexcused absence rate, this term minus last term (positive = "
            "worse): +5 percentage points",
        ),
        (
            "months_without_visit_90d",
            2,
            "近90天中没有任何走访2个月(每30天计一个月)",
            "2 months (30-day periods) without any home visit in the last 90 days",
        ),
    ],
)
def test_sentences_read_as_a_caseworker_would_write_them(
    feature: str, value: object, zh: str, en: str
) -> None:
    assert sentence(feature, value) == (zh, en)


def test_every_model_feature_has_a_sentence_that_shows_its_value() -> None:
    for name in model_feature_names():
        text = feature_texts()[name]
        if text.kind == "flag":
            value: object = True
            shown = ("是", "yes")
        elif text.kind == "category":
            value = next(iter(text.labels))
            shown = text.labels[str(value)]
        elif text.kind == "share" or (text.kind == "change" and text.unit == "share"):
            value, shown = 0.25, ("25", "25")
        else:
            value, shown = 13, ("13", "13")
        zh, en = sentence(name, value)
        assert shown[0] in zh and shown[1] in en, name
        assert text.domain in DOMAINS, name


# --- one child ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def explained(fitted: Fitted) -> dict[str, Any]:
    return explain_child(
        fitted.bundle,
        _riskiest(fitted),
        con=fitted.con,
        model_name="shouhu-risk",
        model_version=3,
        policy=fitted.policy,
    )


def test_explain_child_groups_reasons_by_the_four_domains(
    fitted: Fitted, explained: dict[str, Any]
) -> None:
    assert [g["domain"] for g in explained["domains"]] == list(DOMAINS)
    assert [(g["zh"], g["en"]) for g in explained["domains"]] == list(DOMAINS.values())
    for group in explained["domains"]:
        assert len(group["reasons"]) <= 3
        assert all(r["domain"] == group["domain"] for r in group["reasons"])
        sizes = [abs(r["contribution"]) for r in group["reasons"]]
        assert sizes == sorted(sizes, reverse=True)
    # Domain totals cover every feature: with the bias they give the child's margin.
    score = explained["score"]
    total = sum(g["contribution"] for g in explained["domains"]) + score["bias"]
    assert total == pytest.approx(score["margin"], abs=1e-9)
    margin = _model(fitted).decision_function(_riskiest(fitted)[list(fitted.bundle.feature_names)])
    assert score["margin"] == pytest.approx(float(margin[0]), abs=1e-9)


def test_explain_child_carries_score_and_provenance(
    fitted: Fitted, explained: dict[str, Any]
) -> None:
    child = _riskiest(fitted)
    assert explained["child_id"] == child["child_id"].iloc[0]
    assert explained["as_of"] == AS_OF[-1].isoformat()
    assert (explained["model_name"], explained["model_version"]) == ("shouhu-risk", 3)
    assert explained["policy_version"] == fitted.policy.version
    assert explained["policy_fingerprint"] == fitted.policy.fingerprint()
    p_any = fitted.bundle.predict(child)["p_any"].iloc[0]
    assert explained["score"]["p_any"] == pytest.approx(p_any)
    assert (
        explained["score"]["p_low"] <= explained["score"]["p_any"] <= explained["score"]["p_high"]
    )


def test_explain_child_lists_every_rule_that_fires_by_name(
    fitted: Fitted, explained: dict[str, Any]
) -> None:
    record = _riskiest(fitted).iloc[0].to_dict()
    expected = [r.label for r in fired_rules(fitted.policy, record)]
    assert [r["rule"] for r in explained["rules_fired"]] == expected
    assert all(r["zh"] and r["en"] for r in explained["rules_fired"])


def test_each_reason_cites_the_records_the_feature_counted(explained: dict[str, Any]) -> None:
    reasons = [*explained["top_reasons"], *(r for g in explained["domains"] for r in g["reasons"])]
    counted = [r for r in reasons if feature_texts()[r["feature"]].kind == "count"]
    assert counted, "the riskiest child should have a count among its reasons"
    for reason in reasons:
        for record in reason["evidence"]:
            assert record["recorded_at"] <= explained["as_of"]
            assert record["file"] and record["row"] >= 2
    for reason in counted:
        records = reason["evidence"]
        if reason["feature"].startswith(("unexcused_absence_days", "excused_absence_days")):
            assert sum(r["value"] for r in records) == reason["value"]
        elif reason["feature"].startswith("months_without_visit"):
            continue  # cites the visits that did happen
        else:
            assert len(records) == reason["value"], reason["feature"]


def test_explanations_never_carry_identity_numbers_or_names(
    fitted: Fitted, explained: dict[str, Any]
) -> None:
    others = [
        explain_child(fitted.bundle, fitted.frame.iloc[[i]], con=fitted.con)
        for i in range(0, len(fitted.frame), 400)
    ]
    text = json.dumps(
        [explained, *others, explain_frame(fitted.bundle, fitted.frame.head(500))],
        ensure_ascii=False,
        default=str,
    )
    text += render_text(explained, "zh") + render_text(explained, "en")
    assert not ID_NUMBER.search(text)
    ids, names = ledger_identities(fitted.sources)
    assert not any(i in text for i in ids)
    assert not any(n in text for n in names if len(n) >= 2)


def test_text_rendering_shows_domains_directions_and_evidence(explained: dict[str, Any]) -> None:
    zh = render_text(explained, "zh")
    en = render_text(explained, "en")
    for name, (domain_zh, domain_en) in DOMAINS.items():
        assert f"【{domain_zh}】" in zh and f"[{domain_en}]" in en, name
    first = explained["top_reasons"][0]
    assert first["zh"] in zh and first["en"] in en
    assert ("升高风险" in zh) and ("raises risk" in en)
    assert "证据" in zh and "evidence" in en


def test_global_importance_is_the_mean_absolute_contribution(fitted: Fitted) -> None:
    importance = global_importance(fitted.bundle, fitted.frame, batch_size=300)
    full = fitted.bundle.contributions(fitted.frame, "any").drop(columns="bias")
    expected = full.abs().mean().sort_values(ascending=False)
    assert importance["feature"].head(10).tolist() == list(expected.index[:10])
    np.testing.assert_allclose(importance["mean_abs"].head(10), expected.head(10), atol=1e-12)
    assert set(importance["domain"]) <= set(DOMAINS)


# --- the command -------------------------------------------------------------------------------


class _Registry:
    """Stands in for the MLflow registry: the champion is the test bundle."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle

    def version_info(self, alias_or_version: str | int) -> VersionInfo:
        return VersionInfo("shouhu-risk", 3, ("champion",), None, datetime(2026, 1, 1, tzinfo=UTC))

    def load_bundle(self, alias_or_version: str | int = "champion") -> ModelBundle:
        return self.bundle


@pytest.fixture
def cli_home(fitted: Fitted, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolated_home.mkdir(parents=True, exist_ok=True)
    # A copy: DuckDB refuses a second connection to one file with another configuration.
    shutil.copy(fitted.store, isolated_home / "features.duckdb")
    monkeypatch.setattr("models.cli.registry_from_settings", lambda s: _Registry(fitted.bundle))
    return isolated_home


def test_cli_explain_json_prints_one_object_with_reasons_and_evidence(
    fitted: Fitted, cli_home: Path
) -> None:
    from models.cli import app

    child = str(_riskiest(fitted)["child_id"].iloc[0])
    result = CliRunner().invoke(app, ["explain", child, "--as-of", AS_OF[-1].isoformat(), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["child_id"] == child
    assert payload["model_version"] == 3
    assert [g["domain"] for g in payload["domains"]] == list(DOMAINS)
    assert any(r["evidence"] for r in payload["top_reasons"])


def test_cli_explain_prints_text_and_writes_the_waterfall(
    fitted: Fitted, cli_home: Path, tmp_path: Path
) -> None:
    from models.cli import app

    child = str(_riskiest(fitted)["child_id"].iloc[0])
    png = tmp_path / "child.png"
    args = ["explain", child, "--as-of", AS_OF[-1].isoformat(), "--lang", "en", "--plot", str(png)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"Risk explanation for child {child}" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_explain_of_an_unknown_child_is_not_found_with_exit_code_6(cli_home: Path) -> None:
    from models.cli import app

    result = CliRunner().invoke(app, ["explain", "c-nobody", "--as-of", "2024-10-31"])
    assert isinstance(result.exception, NotFoundError)
    assert result.exception.exit_code == 6
    assert "c-nobody" in result.exception.message
