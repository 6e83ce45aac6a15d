"""Tiny model bundles trained on simulated children, for bundle, registry and card tests.

Small on purpose (a few hundred households, a few dozen trees, 30 bootstrap maps): the tests
check plumbing and recorded values, not model quality.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from models.bundle import ModelBundle, frame_fingerprint
from models.calibration import calibrate
from models.estimator import RiskClassifier, ScorecardClassifier
from models.metrics import EvaluationReport, evaluate

from ._simulated import FEATURES, simulate_children

FAST: dict[str, Any] = {
    "n_estimators": 40,
    "learning_rate": 0.1,
    "num_leaves": 5,
    "min_child_samples": 40,
}
FEATURE_FINGERPRINT = "feat-0123456789abcdef"
POLICY_FINGERPRINT = "sha256:" + "ab" * 32
CREATED_AT = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Trained:
    """A bundle, its held-out test rows and the reports it was evaluated with."""

    bundle: ModelBundle
    test: pd.DataFrame
    reports: dict[str, EvaluationReport]
    scorecard_report: EvaluationReport


def _dropout_label(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A second outcome, correlated with the first, so the domain model has a target."""
    rng = np.random.default_rng(seed)
    return (rng.random(len(frame)) < 0.6 * frame["true_p"].to_numpy()).astype(np.int64)


def _report(test: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> EvaluationReport:
    capacity = {v: 4 for v in test["village_code"].unique()}
    return evaluate(
        y,
        p,
        clusters=test["household_pid"],
        areas=test["village_code"],
        capacity=capacity,
        n_resamples=40,
        seed=0,
    )


def train_bundle(seed: int = 0, *, n_households: int = 500) -> Trained:
    """Train the ``any`` (LightGBM) and ``dropout`` (scorecard) models and bundle them.

    Parameters
    ----------
    seed : int
        Seed of the three simulated windows (train, calibration, test).
    n_households : int
        Households per window.
    """
    train = simulate_children(n_households, seed=100 + seed)
    calib = simulate_children(n_households, seed=200 + seed)
    test = simulate_children(n_households, seed=300 + seed)
    labels = {
        "any": (train["y"], calib["y"], test["y"].to_numpy()),
        "dropout": (
            _dropout_label(train, seed),
            _dropout_label(calib, seed + 1),
            _dropout_label(test, seed + 2),
        ),
    }
    models = {
        "any": RiskClassifier(**FAST).fit(train[FEATURES], labels["any"][0]),
        "dropout": ScorecardClassifier().fit(train[FEATURES], labels["dropout"][0]),
    }
    calibrated = {
        name: calibrate(
            model,
            calib[FEATURES],
            labels[name][1],
            groups=calib["household_pid"],
            n_bootstrap=30,
        )
        for name, model in models.items()
    }
    reports = {
        name: _report(test, labels[name][2], cal.predict_proba(test[FEATURES])[:, 1])
        for name, cal in calibrated.items()
    }
    scorecard = calibrate(
        ScorecardClassifier().fit(train[FEATURES], labels["any"][0]),
        calib[FEATURES],
        labels["any"][1],
        n_bootstrap=0,
    )
    scorecard_report = _report(
        test, labels["any"][2], scorecard.predict_proba(test[FEATURES])[:, 1]
    )
    bundle = ModelBundle(
        models=calibrated,
        feature_names=tuple(FEATURES),
        feature_fingerprint=FEATURE_FINGERPRINT,
        policy_version="cq-default-2026.2",
        policy_fingerprint=POLICY_FINGERPRINT,
        data_fingerprint=frame_fingerprint(train),
        metrics={name: report.to_dict() for name, report in reports.items()},
        created_at=CREATED_AT,
    )
    return Trained(bundle, test, reports, scorecard_report)
