"""RiskClassifier (LightGBM) and ScorecardClassifier: contract, explanations and behaviour.

scikit-learn's generic checks (``parametrize_with_checks``) run on both estimators with no
check skipped or expected to fail. Those checks feed plain numeric arrays, so they exercise the
array path only; the DataFrame-only behaviour (categorical levels learned in fit, unseen levels
read as missing, feature names) is covered by the dedicated tests below.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from models.baselines import VillageRateRanker, WarningSign, WarningSignCounter
from models.estimator import BIAS_COLUMN, RiskClassifier, ScorecardClassifier

from ._simulated import FEATURES, simulate_children

# Small, regularised trees: enough to approach the oracle on 3,000 rows, fast to fit.
FAST = {
    "n_estimators": 150,
    "learning_rate": 0.03,
    "num_leaves": 5,
    "min_child_samples": 50,
    "reg_lambda": 5.0,
}


@pytest.fixture(scope="module")
def population() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A training and a held-out population drawn independently (other households)."""
    return simulate_children(1500, seed=1), simulate_children(1500, seed=2)


@pytest.fixture(scope="module")
def risk_model(population: tuple[pd.DataFrame, pd.DataFrame]) -> RiskClassifier:
    train, _ = population
    model = RiskClassifier(monotone_constraints={"absence_days": 1, "visit_gap_days": 1}, **FAST)
    return model.fit(train[FEATURES], train["y"])


@pytest.fixture(scope="module")
def scorecard(population: tuple[pd.DataFrame, pd.DataFrame]) -> ScorecardClassifier:
    train, _ = population
    return ScorecardClassifier(C=0.5).fit(train[FEATURES], train["y"])


@parametrize_with_checks(
    [RiskClassifier(n_estimators=20), ScorecardClassifier()], expected_failed_checks=None
)
def test_estimators_pass_sklearn_checks(estimator: object, check: object) -> None:
    check(estimator)  # type: ignore[operator]


def test_risk_classifier_fit_sets_fitted_attributes(risk_model: RiskClassifier) -> None:
    assert list(risk_model.feature_names_in_) == FEATURES
    assert risk_model.n_features_in_ == len(FEATURES)
    assert risk_model.classes_.tolist() == [0, 1]
    assert risk_model.categorical_features_ == ("guardian_type",)
    assert risk_model.category_levels_ == {
        "guardian_type": ("grandparent", "none", "parent", "relative")
    }
    assert risk_model.booster_.num_trees() == FAST["n_estimators"]


def test_risk_classifier_keeps_no_training_rows(
    risk_model: RiskClassifier, population: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    n_train = len(population[0])
    assert getattr(risk_model.booster_, "train_set", None) is None
    row_sized = [
        name
        for name, value in vars(risk_model).items()
        if isinstance(value, pd.DataFrame | pd.Series | np.ndarray) and len(value) == n_train
    ]
    assert row_sized == []


def test_unfitted_models_refuse_to_score(population: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    frame = population[0][FEATURES]
    for model in (RiskClassifier(), ScorecardClassifier()):
        with pytest.raises(NotFittedError):
            model.predict_proba(frame)
        with pytest.raises(NotFittedError):
            model.contributions(frame)


@pytest.mark.parametrize("name", ["risk_model", "scorecard"])
def test_models_rank_close_to_the_oracle_on_held_out_households(
    name: str, population: tuple[pd.DataFrame, pd.DataFrame], request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(name)
    _, held_out = population
    auc = roc_auc_score(held_out["y"], model.predict_proba(held_out[FEATURES])[:, 1])
    oracle = roc_auc_score(held_out["y"], held_out["true_p"])
    assert auc <= oracle + 0.02  # nothing beats the true probability by more than noise
    assert auc > oracle - 0.05


def test_risk_classifier_beats_both_baselines(
    risk_model: RiskClassifier, population: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, held_out = population
    signs = (WarningSign("absence_days", ">=", 3), WarningSign("lives_alone", "==", True))
    counter = WarningSignCounter(signs=signs).fit(train, train["y"])
    village = VillageRateRanker(area_column="village_code").fit(train, train["y"])
    y = held_out["y"]
    model_auc = roc_auc_score(y, risk_model.predict_proba(held_out[FEATURES])[:, 1])
    assert model_auc > roc_auc_score(y, counter.predict_proba(held_out)[:, 1]) + 0.03
    assert model_auc > roc_auc_score(y, village.predict_proba(held_out)[:, 1]) + 0.03


@pytest.mark.parametrize("name", ["risk_model", "scorecard"])
def test_contributions_sum_to_the_margin(
    name: str, population: tuple[pd.DataFrame, pd.DataFrame], request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(name)
    frame = population[1][FEATURES].iloc[:500]
    contributions = model.contributions(frame)
    assert list(contributions.columns) == [*FEATURES, BIAS_COLUMN]
    assert contributions.index.equals(frame.index)
    np.testing.assert_allclose(
        contributions.sum(axis=1).to_numpy(), model.decision_function(frame), atol=1e-6
    )
    p = model.predict_proba(frame)[:, 1]
    np.testing.assert_allclose(1 / (1 + np.exp(-contributions.sum(axis=1))), p, atol=1e-9)


def test_scorecard_contribution_is_coefficient_times_standardised_value(
    scorecard: ScorecardClassifier, population: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    frame = population[1][FEATURES].iloc[:50]
    # "age" has no gaps, so its contribution is coef * (age - mean) / sd plus its indicator's
    # contribution, which is zero (a constant column standardises to zero).
    position = int(np.flatnonzero(scorecard.design_feature_index_ == FEATURES.index("age"))[0])
    scaler = scorecard.pipeline_.named_steps["scale"]
    coef = scorecard.pipeline_.named_steps["logreg"].coef_[0][position]
    expected = coef * (frame["age"] - scaler.mean_[position]) / scaler.scale_[position]
    np.testing.assert_allclose(scorecard.contributions(frame)["age"], expected, atol=1e-12)


def test_noise_feature_contributes_little(
    risk_model: RiskClassifier, population: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    contributions = risk_model.contributions(population[1][FEATURES]).abs().mean()
    assert contributions["noise"] < 0.5 * contributions["absence_days"]
    assert contributions["noise"] < 0.5 * contributions["guardian_type"]


@pytest.mark.parametrize("model_class", [RiskClassifier, ScorecardClassifier])
def test_two_fits_with_the_same_seed_give_identical_predictions(
    model_class: type[RiskClassifier] | type[ScorecardClassifier],
    population: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, held_out = population
    params = {"colsample": 0.7, **FAST} if model_class is RiskClassifier else {"l1_ratio": 0.5}
    first = model_class(random_state=3, **params).fit(train[FEATURES], train["y"])
    second = model_class(random_state=3, **params).fit(train[FEATURES], train["y"])
    a = first.predict_proba(held_out[FEATURES])
    b = second.predict_proba(held_out[FEATURES])
    assert np.array_equal(a, b)


def test_risk_classifier_seed_changes_a_randomised_fit(
    population: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, held_out = population
    fits = [
        RiskClassifier(colsample=0.5, random_state=seed, **FAST).fit(train[FEATURES], train["y"])
        for seed in (1, 2)
    ]
    assert not np.array_equal(*(m.predict_proba(held_out[FEATURES]) for m in fits))


@pytest.mark.parametrize("name", ["risk_model", "scorecard"])
def test_unseen_category_scores_like_a_missing_one(
    name: str, population: tuple[pd.DataFrame, pd.DataFrame], request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(name)
    rows = population[1][FEATURES].iloc[:20].copy()
    unseen, missing = rows.copy(), rows.copy()
    unseen["guardian_type"] = "foster-family"  # a level never seen in training
    missing["guardian_type"] = None
    np.testing.assert_array_equal(model.predict_proba(unseen), model.predict_proba(missing))
    assert not np.array_equal(model.predict_proba(unseen), model.predict_proba(rows))


@pytest.mark.parametrize("name", ["risk_model", "scorecard"])
def test_category_codes_come_from_fit_not_from_the_scored_rows(
    name: str, population: tuple[pd.DataFrame, pd.DataFrame], request: pytest.FixtureRequest
) -> None:
    # A weekly batch may hold only some levels; recomputing levels at scoring would shift codes
    # (train/serve skew). Scoring a subset alone must equal scoring it within the full frame.
    model = request.getfixturevalue(name)
    frame = population[1][FEATURES]
    only_none = frame[frame["guardian_type"] == "none"]
    full = model.predict_proba(frame)[(frame["guardian_type"] == "none").to_numpy()]
    np.testing.assert_array_equal(model.predict_proba(only_none), full)


def test_string_and_category_dtypes_score_the_same(
    risk_model: RiskClassifier, population: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    frame = population[1][FEATURES]
    as_category = frame.assign(guardian_type=frame["guardian_type"].astype("category"))
    np.testing.assert_array_equal(
        risk_model.predict_proba(frame), risk_model.predict_proba(as_category)
    )


def test_integer_codes_match_their_float_form(
    population: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    # A column of codes turns float as soon as it holds a missing value; 3 and 3.0 are one level.
    train = population[0]
    codes = train.assign(code=(train["age"] // 4).astype("int64"))
    features = [*FEATURES, "code"]
    model = RiskClassifier(categorical_features=["guardian_type", "code"], **FAST)
    model.fit(codes[features], codes["y"])
    assert model.category_levels_["code"] == ("1", "2", "3", "4")
    as_float = codes[features].astype({"code": "float64"})
    np.testing.assert_array_equal(
        model.predict_proba(codes[features]), model.predict_proba(as_float)
    )


def test_scoring_with_other_columns_raises(
    risk_model: RiskClassifier, population: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    frame = population[1][FEATURES].rename(columns={"age": "age_years"})
    with pytest.raises(ValueError, match="feature names"):
        risk_model.predict_proba(frame)


def test_empty_batch_raises_a_clear_error(risk_model: RiskClassifier) -> None:
    with pytest.raises(ValueError, match="0 sample"):
        risk_model.predict_proba(pd.DataFrame({c: [] for c in FEATURES}))


@pytest.mark.parametrize(
    ("constraints", "message"),
    [
        ({"absence": 1}, "not in X"),
        ({"guardian_type": 1}, "categorical"),
        ({"absence_days": 2}, "-1, 0 or 1"),
    ],
)
def test_bad_monotone_constraints_raise(
    constraints: dict[str, int], message: str, population: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train = population[0]
    with pytest.raises(ValueError, match=message):
        RiskClassifier(monotone_constraints=constraints, **FAST).fit(train[FEATURES], train["y"])


@pytest.fixture(scope="module")
def held_out_rows(population: tuple[pd.DataFrame, pd.DataFrame]) -> Iterator[pd.DataFrame]:
    yield population[1][FEATURES].iloc[:300].reset_index(drop=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    row=st.integers(0, 299),
    feature=st.sampled_from(["absence_days", "visit_gap_days"]),
    increase=st.floats(0.0, 200.0),
)
def test_raising_a_constrained_feature_never_lowers_the_risk(
    risk_model: RiskClassifier, held_out_rows: pd.DataFrame, row: int, feature: str, increase: float
) -> None:
    before = held_out_rows.iloc[[row]].copy()
    if pd.isna(before[feature].iloc[0]):
        before[feature] = 0.0
    after = before.copy()
    after[feature] = before[feature] + increase
    assert risk_model.predict_proba(after)[0, 1] >= risk_model.predict_proba(before)[0, 1]


def test_l1_scorecard_drops_the_noise_feature(
    population: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train = population[0]
    lasso = ScorecardClassifier(C=0.01, l1_ratio=1.0).fit(train[FEATURES], train["y"])
    ridge = ScorecardClassifier(C=0.01, l1_ratio=0.0).fit(train[FEATURES], train["y"])
    # The first design column of "noise" is its standardised value (then its gap indicator).
    noise_value = int(np.flatnonzero(lasso.design_feature_index_ == FEATURES.index("noise"))[0])
    assert lasso.pipeline_[-1].coef_[0][noise_value] == 0.0
    assert ridge.pipeline_[-1].coef_[0][noise_value] != 0.0
    assert np.count_nonzero(lasso.pipeline_[-1].coef_) < np.count_nonzero(ridge.pipeline_[-1].coef_)


@pytest.mark.parametrize("name", ["risk_model", "scorecard"])
def test_fitted_models_pickle_and_score_the_same(
    name: str, population: tuple[pd.DataFrame, pd.DataFrame], request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(name)
    frame = population[1][FEATURES].iloc[:100]
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(frame), model.predict_proba(frame))
