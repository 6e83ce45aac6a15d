"""Feature drift with Evidently 0.7: frames in its types, statuses read from its tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import (
    MISSING_LABEL,
    evidently_frame,
    read_snapshot,
    run_evidently,
    split_types,
    strength,
)


def test_categories_and_yes_no_are_categorical_and_a_missing_category_is_a_value() -> None:
    frame = pd.DataFrame(
        {
            "sex": pd.Categorical(["male", None, "female"]),
            "boarding": pd.array([True, None, False], dtype="boolean"),
            "visits_30d": pd.array([1, 0, 2], dtype="int32"),
            "age_years": [3.0, np.nan, 9.0],
        }
    )
    numerical, categorical = split_types(frame, list(frame.columns))
    assert numerical == ["visits_30d", "age_years"]
    assert categorical == ["sex", "boarding"]
    out = evidently_frame(frame, numerical, categorical)
    assert out["sex"].tolist() == ["male", MISSING_LABEL, "female"]
    assert out["boarding"].tolist() == ["True", MISSING_LABEL, "False"]
    assert out["visits_30d"].dtype == "float64" and np.isnan(out.at[1, "age_years"])


def _snapshot(statuses: dict[str, str], dataset: str) -> dict[str, object]:
    metrics: list[dict[str, object]] = [
        {
            "id": "count",
            "config": {"type": "evidently:metric_v2:DriftedColumnsCount"},
            "value": {"count": 1.0, "share": 0.5},
        }
    ]
    tests: list[dict[str, object]] = [{"metric_config": {"metric_id": "count"}, "status": dataset}]
    for column, status in statuses.items():
        metrics.append(
            {
                "id": f"m-{column}",
                "config": {
                    "type": "evidently:metric_v2:ValueDrift",
                    "column": column,
                    "method": "Wasserstein distance (normed)",
                    "threshold": 0.1,
                },
                "value": 0.3 if status == "FAIL" else 0.02,
            }
        )
        tests.append({"metric_config": {"metric_id": f"m-{column}"}, "status": status})
    return {"metrics": metrics, "tests": tests}


def test_a_column_drifted_exactly_when_its_test_failed() -> None:
    result = read_snapshot(_snapshot({"a": "SUCCESS", "b": "FAIL"}, "SUCCESS"))
    assert [(c["feature"], c["drifted"]) for c in result.columns] == [("b", True), ("a", False)]
    assert (result.drifted_count, result.share_drifted, result.dataset_drift) == (1, 0.5, False)
    assert read_snapshot(_snapshot({"a": "FAIL"}, "FAIL")).dataset_drift is True


def test_strength_puts_distances_and_p_values_on_one_scale_for_ordering() -> None:
    distance = {"method": "Jensen-Shannon distance", "score": 0.3, "threshold": 0.1}
    p_value = {"method": "K-S p_value", "score": 1e-10, "threshold": 0.05}
    weak = {"method": "K-S p_value", "score": 0.04, "threshold": 0.05}
    assert strength(distance) == pytest.approx(3.0)
    assert strength(p_value) > strength(weak) > 1.0
    assert strength({"method": "x", "score": None, "threshold": 0.1}) == 0.0


def test_evidently_finds_a_shifted_column_and_leaves_a_steady_one() -> None:
    rng = np.random.default_rng(0)
    n = 1500  # over 1,000 rows: Wasserstein and Jensen-Shannon distances
    reference = pd.DataFrame(
        {
            "steady": rng.normal(0, 1, n),
            "shifted": rng.normal(0, 1, n),
            "contact": rng.choice(["weekly", "monthly", "never"], n, p=[0.3, 0.5, 0.2]),
        }
    )
    current = pd.DataFrame(
        {
            "steady": rng.normal(0, 1, n),
            "shifted": rng.normal(1.0, 1, n),
            "contact": rng.choice(["weekly", "monthly", "never"], n, p=[0.05, 0.35, 0.6]),
        }
    )
    result = run_evidently(reference, current, ["steady", "shifted"], ["contact"], 0.5)
    drifted = {c["feature"]: c["drifted"] for c in result.columns}
    assert drifted == {"steady": False, "shifted": True, "contact": True}
    methods = {c["feature"]: c["method"] for c in result.columns}
    assert "Wasserstein" in str(methods["shifted"]) and "Jensen" in str(methods["contact"])
    assert result.dataset_drift and result.drifted_count == 2
    assert result.snapshot is not None
