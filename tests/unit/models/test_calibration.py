"""Calibration on a later window, probability intervals and the borderline flag."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from models.calibration import ProbabilityCalibrator, borderline, calibrate
from models.estimator import RiskClassifier
from models.metrics import brier, expected_calibration_error

from ._simulated import FEATURES, sigmoid, simulate_children

FAST = {"n_estimators": 150, "learning_rate": 0.03, "num_leaves": 5, "min_child_samples": 50}


def miscalibrated_scores(
    n: int, seed: int, *, household_size: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scores that rank children exactly as their true risk does, on a wrong scale.

    Returns (score, true_p, y, household). ``P(event | score)`` is the true probability, so an
    interval for the calibrated probability can be checked against the truth.
    """
    rng = np.random.default_rng(seed)
    n_households = n // household_size
    z = np.repeat(rng.normal(-2.3, 1.1, n_households), household_size)
    true_p = sigmoid(z)
    y = (rng.random(len(z)) < true_p).astype(np.int64)
    household = np.repeat(np.arange(n_households), household_size)
    return 0.6 * z + 0.8, true_p, y, household


@pytest.fixture(scope="module")
def windows() -> dict[str, pd.DataFrame]:
    """Train, calibration and test populations (disjoint households)."""
    return {
        "train": simulate_children(1500, seed=11),
        "calib": simulate_children(1500, seed=12),
        "test": simulate_children(1500, seed=13),
    }


@pytest.fixture(scope="module")
def overconfident_model(windows: dict[str, pd.DataFrame]) -> RiskClassifier:
    """A model trained on a case-control sample (negatives undersampled): far too high risks."""
    train = windows["train"]
    keep = (train["y"] == 1) | (np.arange(len(train)) % 4 == 0)
    sample = train[keep]
    return RiskClassifier(**FAST).fit(sample[FEATURES], sample["y"])


def test_isotonic_point_map_matches_sklearn_frozen_estimator(
    overconfident_model: RiskClassifier, windows: dict[str, pd.DataFrame]
) -> None:
    calib, test = windows["calib"], windows["test"]
    ours = calibrate(overconfident_model, calib[FEATURES], calib["y"], n_bootstrap=0)
    theirs = CalibratedClassifierCV(FrozenEstimator(overconfident_model), method="isotonic")
    theirs.fit(calib[FEATURES], calib["y"])
    np.testing.assert_allclose(
        ours.predict_proba(test[FEATURES]), theirs.predict_proba(test[FEATURES]), atol=1e-12
    )


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_on_a_later_window_lowers_brier_and_ece(
    method: str, overconfident_model: RiskClassifier, windows: dict[str, pd.DataFrame]
) -> None:
    calib, test = windows["calib"], windows["test"]
    calibrated = calibrate(
        overconfident_model,
        calib[FEATURES],
        calib["y"],
        groups=calib["household_pid"],
        method=method,  # type: ignore[arg-type]
        n_bootstrap=0,
    )
    raw = overconfident_model.predict_proba(test[FEATURES])[:, 1]
    fixed = calibrated.predict_proba(test[FEATURES])[:, 1]
    y = test["y"].to_numpy()
    assert raw.mean() > 1.8 * y.mean()  # the model really is miscalibrated
    assert brier(y, fixed) < brier(y, raw) - 0.01
    assert expected_calibration_error(y, raw) > 0.15
    assert expected_calibration_error(y, fixed) < 0.03
    assert abs(fixed.mean() - y.mean()) < 0.02


def test_interval_covers_the_true_probability_near_the_nominal_rate() -> None:
    # Five independent calibration windows of 5,000 rows, 90 % bands, scored on 2,000 new rows
    # each. Rows of one window share one calibration fit, so coverage varies a lot between
    # windows; the pooled rate is what the band promises. (40 windows measured 0.876.)
    covered = []
    for seed in range(5):
        score, _, y, _ = miscalibrated_scores(5000, seed)
        new_score, new_p, _, _ = miscalibrated_scores(2000, 100 + seed)
        calibrator = ProbabilityCalibrator(interval=0.9, n_bootstrap=200, random_state=seed)
        low, high = calibrator.fit(score, y).predict_interval(new_score)
        covered.append((low <= new_p) & (new_p <= high))
    coverage = float(np.mean(np.concatenate(covered)))
    assert 0.80 <= coverage <= 0.97


def test_interval_contains_the_point_estimate_and_stays_in_unit_range() -> None:
    score, _, y, _ = miscalibrated_scores(3000, 1)
    calibrator = ProbabilityCalibrator(n_bootstrap=50).fit(score, y)
    grid = np.linspace(score.min() - 1, score.max() + 1, 500)
    low, high = calibrator.predict_interval(grid)
    p = calibrator.predict(grid)
    assert np.all(low <= p) and np.all(p <= high)
    assert np.all(low >= 0.0) and np.all(high <= 1.0)


def test_interval_narrows_with_a_larger_calibration_window() -> None:
    new_score, _, _, _ = miscalibrated_scores(2000, 99)
    widths = []
    for n in (1000, 16000):
        score, _, y, _ = miscalibrated_scores(n, 5)
        low, high = ProbabilityCalibrator(n_bootstrap=100).fit(score, y).predict_interval(new_score)
        widths.append(float(np.mean(high - low)))
    assert widths[1] < 0.5 * widths[0]


def test_household_bootstrap_is_wider_than_a_row_bootstrap_for_correlated_rows() -> None:
    # Five children per household with the same risk and (here) the same outcome: five rows
    # carry the information of one. Resampling rows would pretend they carry five.
    score, _, y_household, household = miscalibrated_scores(10000, 3, household_size=5)
    first_child = np.r_[True, household[1:] != household[:-1]]
    y = np.repeat(y_household[first_child], 5)
    grid = np.quantile(score, [0.5, 0.8, 0.95])
    by_row = ProbabilityCalibrator(n_bootstrap=150).fit(score, y)
    by_household = ProbabilityCalibrator(n_bootstrap=150).fit(score, y, groups=household)
    row_width = np.subtract(*by_row.predict_interval(grid)[::-1])
    household_width = np.subtract(*by_household.predict_interval(grid)[::-1])
    assert np.all(household_width > 1.5 * row_width)
    assert by_household.n_clusters_ == 2000


def test_sigmoid_method_recovers_a_logistic_miscalibration() -> None:
    score, _, y, _ = miscalibrated_scores(20000, 4)
    calibrator = ProbabilityCalibrator(method="sigmoid", n_bootstrap=0).fit(score, y)
    grid = np.linspace(-1.0, 1.5, 50)
    truth = sigmoid((grid - 0.8) / 0.6)
    assert np.max(np.abs(calibrator.predict(grid) - truth)) < 0.02


def test_calibrator_is_deterministic_for_a_seed() -> None:
    score, _, y, _ = miscalibrated_scores(2000, 6)
    grid = np.linspace(-1, 1, 20)
    a = ProbabilityCalibrator(n_bootstrap=30, random_state=7).fit(score, y).predict_interval(grid)
    b = ProbabilityCalibrator(n_bootstrap=30, random_state=7).fit(score, y).predict_interval(grid)
    np.testing.assert_array_equal(a, b)


def test_calibrator_rejects_a_window_with_one_outcome() -> None:
    with pytest.raises(ValueError, match="one class"):
        ProbabilityCalibrator().fit([0.1, 0.2, 0.3], [0, 0, 0])


def test_interval_needs_bootstrap_refits() -> None:
    score, _, y, _ = miscalibrated_scores(500, 8)
    calibrator = ProbabilityCalibrator(n_bootstrap=0).fit(score, y)
    with pytest.raises(ValueError, match="n_bootstrap"):
        calibrator.predict_interval(score)


def test_borderline_flags_intervals_that_straddle_a_shared_threshold() -> None:
    low = [0.05, 0.18, 0.30, 0.45, 0.20, 0.10]
    high = [0.08, 0.25, 0.40, 0.55, 0.30, 0.20]
    # 0.20 == p_low: both ends are in the upper tier; 0.20 == p_high: the ends differ.
    assert borderline(low, high, [0.2, 0.5]).tolist() == [False, True, False, True, False, True]


def test_borderline_uses_per_row_thresholds_and_ignores_missing_ones() -> None:
    low, high = [0.10, 0.10, 0.10], [0.20, 0.20, 0.20]
    thresholds = [[0.15, 0.50], [0.30, 0.60], [np.nan, 0.05]]
    assert borderline(low, high, thresholds).tolist() == [True, False, False]


def test_borderline_without_thresholds_flags_nobody() -> None:
    assert borderline([0.1, 0.2], [0.3, 0.4], []).tolist() == [False, False]


def test_borderline_rejects_inverted_intervals() -> None:
    with pytest.raises(ValueError, match="p_low"):
        borderline([0.3], [0.2], [0.25])
