"""ModelBundle: one picklable object that scores, explains and carries its provenance."""

from __future__ import annotations

import pickle
from dataclasses import replace
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from models.bundle import ModelBundle, frame_fingerprint
from models.calibration import calibrate
from models.estimator import BIAS_COLUMN, RiskClassifier

from ._bundle_factory import FAST, Trained, train_bundle
from ._simulated import FEATURES, simulate_children


@pytest.fixture(scope="module")
def trained() -> Trained:
    return train_bundle(seed=0)


def test_predict_gives_score_columns_with_band_around_p_any(trained: Trained) -> None:
    bundle, test = trained.bundle, trained.test
    scores = bundle.predict(test)
    assert list(scores.columns) == ["p_any", "p_low", "p_high", "p_dropout"]
    assert scores.index.equals(test.index)
    expected_any = bundle.models["any"].predict_proba(test[FEATURES])[:, 1]
    expected_dropout = bundle.models["dropout"].predict_proba(test[FEATURES])[:, 1]
    np.testing.assert_allclose(scores["p_any"], expected_any)
    np.testing.assert_allclose(scores["p_dropout"], expected_dropout)
    assert (scores["p_low"] <= scores["p_any"]).all()
    assert (scores["p_any"] <= scores["p_high"]).all()
    assert (scores["p_high"] - scores["p_low"]).mean() > 0.0
    assert bundle.score_columns == tuple(scores.columns)


def test_predict_ignores_extra_columns_and_column_order(trained: Trained) -> None:
    bundle, test = trained.bundle, trained.test
    shuffled = test[["child_id", *reversed(FEATURES), "village_code"]]
    pd.testing.assert_frame_equal(bundle.predict(shuffled), bundle.predict(test))


def test_predict_names_missing_feature_columns(trained: Trained) -> None:
    with pytest.raises(ValueError, match=r"lacks feature columns \['age'\]"):
        trained.bundle.predict(trained.test.drop(columns="age"))


def test_contributions_delegate_to_the_outcome_estimator(trained: Trained) -> None:
    bundle, rows = trained.bundle, trained.test.head(20)
    contributions = bundle.contributions(rows)
    estimator = bundle.models["any"].model
    pd.testing.assert_frame_equal(contributions, estimator.contributions(rows[FEATURES]))
    assert list(contributions.columns) == [*FEATURES, BIAS_COLUMN]
    # TreeSHAP values and the bias add up to the model's margin for every row.
    np.testing.assert_allclose(
        contributions.sum(axis=1), estimator.decision_function(rows[FEATURES]), atol=1e-9
    )
    scorecard = bundle.contributions(rows, domain="dropout")
    np.testing.assert_allclose(
        scorecard.sum(axis=1),
        bundle.models["dropout"].model.decision_function(rows[FEATURES]),
        atol=1e-9,
    )


def test_contributions_refuse_an_outcome_without_a_model(trained: Trained) -> None:
    with pytest.raises(ValueError, match="no model for 'mental_health'"):
        trained.bundle.contributions(trained.test.head(2), domain="mental_health")


def test_bundle_survives_pickling_with_identical_scores(trained: Trained) -> None:
    restored = pickle.loads(pickle.dumps(trained.bundle))
    pd.testing.assert_frame_equal(
        restored.predict(trained.test), trained.bundle.predict(trained.test)
    )
    assert restored.describe() == trained.bundle.describe()


def test_describe_and_metric_report_provenance_and_recorded_figures(trained: Trained) -> None:
    bundle = trained.bundle
    info = bundle.describe()
    assert info["outcomes"] == ["any", "dropout"]
    assert info["feature_names"] == FEATURES
    assert info["policy_version"] == "cq-default-2026.2"
    assert info["data_fingerprint"].startswith("sha256:")
    assert info["created_at"] == "2026-11-23T09:30:00+00:00"
    recorded = trained.reports["any"].metrics["precision_at_capacity"].value
    assert bundle.metric("precision_at_capacity") == pytest.approx(recorded)
    assert bundle.metric("roc_auc", "dropout") == pytest.approx(
        trained.reports["dropout"].metrics["roc_auc"].value
    )
    assert bundle.metric("no_such_metric") is None


def test_bundle_requires_a_model_for_any(trained: Trained) -> None:
    only_dropout = {"dropout": trained.bundle.models["dropout"]}
    with pytest.raises(ValueError, match="needs a model for 'any'"):
        replace(trained.bundle, models=only_dropout, metrics={})


def test_bundle_refuses_unknown_outcomes(trained: Trained) -> None:
    models = {**trained.bundle.models, "truancy": trained.bundle.models["dropout"]}
    with pytest.raises(ValueError, match=r"unknown outcomes \['truancy'\]"):
        replace(trained.bundle, models=models)


def test_bundle_refuses_models_fitted_on_other_columns(trained: Trained) -> None:
    with pytest.raises(ValueError, match="fitted on columns"):
        replace(trained.bundle, feature_names=tuple(reversed(FEATURES)))


def test_bundle_refuses_repeated_or_missing_feature_names(trained: Trained) -> None:
    with pytest.raises(ValueError, match="repeated"):
        replace(trained.bundle, feature_names=(*FEATURES, "age"))
    with pytest.raises(ValueError, match="at least one feature"):
        replace(trained.bundle, feature_names=())


def test_bundle_refuses_naive_creation_time_and_blank_provenance(trained: Trained) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        replace(trained.bundle, created_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="policy_version must not be empty"):
        replace(trained.bundle, policy_version=" ")


def test_bundle_needs_intervals_for_p_any() -> None:
    train, calib = simulate_children(300, seed=5), simulate_children(300, seed=6)
    model = RiskClassifier(**FAST).fit(train[FEATURES], train["y"])
    no_band = calibrate(model, calib[FEATURES], calib["y"], n_bootstrap=0)
    with pytest.raises(ValueError, match="n_bootstrap > 0"):
        ModelBundle(
            models={"any": no_band},
            feature_names=tuple(FEATURES),
            feature_fingerprint="f",
            policy_version="p",
            policy_fingerprint="pf",
            data_fingerprint="d",
        )


def test_frame_fingerprint_follows_content_not_index() -> None:
    frame = simulate_children(50, seed=9)
    same = frame.set_axis(np.arange(len(frame)) + 100)
    changed = frame.copy()
    changed.loc[changed.index[3], "age"] += 1.0
    assert frame_fingerprint(frame) == frame_fingerprint(same)
    assert frame_fingerprint(frame) != frame_fingerprint(changed)
    assert frame_fingerprint(frame) != frame_fingerprint(frame.rename(columns={"age": "age2"}))
