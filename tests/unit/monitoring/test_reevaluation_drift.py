"""Acceptance: a challenger from a drifted population is recommended when better, not worse.

Two models are fitted on the shared population's history before 2025Q3: one on the outcomes
the ledgers recorded, one on a drifted population whose outcomes no longer follow its records
(each date's outcomes shuffled across its children). Whichever is the challenger, the
re-evaluation on 2025Q3 must recommend it exactly when it is the better one.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.definitions import definitions_fingerprint
from models.bundle import ModelBundle
from models.calibration import calibrate
from models.estimator import RiskClassifier
from models.policy import load_policy
from models.splits import assign_groups
from models.train import model_features
from monitoring.quarters import Quarter
from monitoring.reevaluation import (
    EvaluationSettings,
    EvaluationWindow,
    GateStatus,
    compare,
    load_note,
)
from tests._trained_model import Prepared, prepared

QUARTER = Quarter.parse("2025Q3")
LABELS = ("y_any",)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """The shared small population and its trained model."""
    return prepared(tmp_path_factory)


def _fit(history: pd.DataFrame, seed: int) -> ModelBundle:
    """A small calibrated booster: trained on 2024, calibrated on other households in 2025Q1."""
    features = [f for f in model_features(history) if history[f].nunique(dropna=False) > 1]
    group = assign_groups(history, calib_share=0.35, test_share=0.0).to_numpy()
    early = history["as_of"] <= pd.Timestamp("2024-12-31")
    train = history.loc[early.to_numpy() & (group == "train")]
    calib = history.loc[~early.to_numpy() & (group == "calib")]
    model = RiskClassifier(
        n_estimators=80, learning_rate=0.08, min_child_samples=60, random_state=seed
    ).fit(train[features], train["y_any"].to_numpy())
    calibrated = calibrate(
        model,
        calib[features],
        calib["y_any"].to_numpy(),
        groups=calib["household_pid"].to_numpy(dtype=object),
        method="sigmoid",
        n_bootstrap=10,
    )
    policy = load_policy()
    return ModelBundle(
        models={"any": calibrated},
        feature_names=tuple(features),
        feature_fingerprint=definitions_fingerprint(),
        policy_version=policy.version,
        policy_fingerprint=policy.fingerprint(),
        data_fingerprint=f"drift-test-{seed}",
    )


@pytest.fixture(scope="module")
def models(trained: Prepared) -> dict[str, ModelBundle]:
    frame = trained.data.frame
    history = frame.loc[frame["as_of"] <= pd.Timestamp("2025-03-31")].reset_index(drop=True)
    drifted = history.copy()
    rng = np.random.default_rng(7)
    for _, index in drifted.groupby("as_of").groups.items():
        order = rng.permutation(len(index))
        drifted.loc[index, "y_any"] = history.loc[index, "y_any"].to_numpy()[order]
    return {"recorded": _fit(history, 1), "drifted": _fit(drifted, 2)}


@pytest.fixture(scope="module")
def window(trained: Prepared) -> EvaluationWindow:
    frame = trained.data.frame
    dates = [pd.Timestamp(d) for d in QUARTER.month_ends()]
    return EvaluationWindow.of(frame.loc[frame["as_of"].isin(dates)], load_policy())


def _note(tmp_path: Path, version: int) -> object:
    path = tmp_path / "note.yaml"
    signed = (date.today() - timedelta(days=1)).isoformat()
    path.write_text(
        f"quarter: {QUARTER}\nchallenger_version: {version}\nsupervisor: Supervisor Li\n"
        f"signed_on: {signed}\nreason: Disparities reviewed with the township directors.\n",
        encoding="utf-8",
    )
    return load_note(path)


def test_a_better_challenger_from_the_recorded_population_is_recommended(
    models: dict[str, ModelBundle], window: EvaluationWindow, tmp_path: Path
) -> None:
    _, champion, diffs, stability, recommendation, checks, _ = compare(
        window,
        load_policy(),
        EvaluationSettings(n_resamples=20),
        quarter=QUARTER,
        challenger=(2, models["recorded"]),
        champion=(1, models["drifted"]),
        gate=GateStatus(True, "champion gate passed", 0.3),
        note=_note(tmp_path, 2),  # accepts any fairness flag, so the figures decide
    )
    by_name = {c.name: c for c in checks}
    assert champion is not None and diffs is not None and stability is not None
    assert diffs["precision_at_capacity"].low > 0
    assert diffs["roc_auc"].value > 0.1
    assert by_name["better"].passed and by_name["no_regression"].passed
    assert recommendation == "promote"
    # The better model moves children between bands, never across a rule's T1.
    assert stability["changed"] > 0
    assert stability["matrix"]["T1"].get("T1", 0) == sum(stability["matrix"]["T1"].values())


def test_a_worse_challenger_from_the_drifted_population_is_not(
    models: dict[str, ModelBundle], window: EvaluationWindow, tmp_path: Path
) -> None:
    _, _, diffs, _, recommendation, checks, _ = compare(
        window,
        load_policy(),
        EvaluationSettings(n_resamples=20),
        quarter=QUARTER,
        challenger=(2, models["drifted"]),
        champion=(1, models["recorded"]),
        gate=GateStatus(True, "champion gate passed", 0.3),
        note=_note(tmp_path, 2),
    )
    by_name = {c.name: c for c in checks}
    assert diffs is not None and diffs["precision_at_capacity"].high < 0
    assert recommendation == "keep"
    assert not by_name["better"].passed
    assert (
        not by_name["no_regression"].passed and "clearly worse" in by_name["no_regression"].reason
    )
