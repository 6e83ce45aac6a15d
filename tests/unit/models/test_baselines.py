"""The warning-sign count and the village-rate ranker: hand-computed scores and rates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.baselines import VillageRateRanker, WarningSign, WarningSignCounter

SIGNS = (WarningSign("absent_days", ">=", 5), WarningSign("lives_alone", "==", True))


def test_warning_signs_are_counted_and_missing_values_count_as_absent() -> None:
    frame = pd.DataFrame(
        {"absent_days": [0.0, 6.0, 7.0, np.nan], "lives_alone": [False, True, None, True]}
    )
    counter = WarningSignCounter(signs=SIGNS).fit(frame, [0, 1, 0, 0])
    assert counter.decision_function(frame).tolist() == [0.0, 2.0, 1.0, 1.0]


def test_warning_sign_rates_are_shrunk_training_rates_per_count() -> None:
    frame = pd.DataFrame({"absent_days": [0, 0, 9, 9], "lives_alone": [False, False, True, True]})
    counter = WarningSignCounter(signs=SIGNS, prior_strength=10.0).fit(frame, [0, 0, 1, 0])
    # Overall rate 1/4. Count 0: (0 + 2.5) / (2 + 10); count 1 (never seen): the overall rate;
    # count 2: (1 + 2.5) / (2 + 10).
    np.testing.assert_allclose(counter.rate_by_count_, [2.5 / 12, 0.25, 3.5 / 12])
    probe = pd.DataFrame({"absent_days": [9, 0], "lives_alone": [False, False]})
    np.testing.assert_allclose(counter.predict_proba(probe)[:, 1], [0.25, 2.5 / 12])


def test_more_warning_signs_never_mean_a_lower_probability() -> None:
    # In this sample one sign had more events than two; the fitted rates still rise.
    frame = pd.DataFrame(
        {"absent_days": [9, 9, 9, 9, 9, 9, 0], "lives_alone": [False] * 4 + [True] * 2 + [False]}
    )
    counter = WarningSignCounter(signs=SIGNS, prior_strength=0.0)
    counter.fit(frame, [1, 1, 1, 1, 0, 0, 0])
    assert np.all(np.diff(counter.rate_by_count_) >= 0)
    assert counter.rate_by_count_.tolist() == [0.0, 1.0, 1.0]


def test_warning_sign_counter_needs_signs_and_their_columns() -> None:
    frame = pd.DataFrame({"absent_days": [1, 2]})
    with pytest.raises(ValueError, match="at least one"):
        WarningSignCounter().fit(frame, [0, 1])
    with pytest.raises(ValueError, match="lives_alone"):
        WarningSignCounter(signs=SIGNS).fit(frame, [0, 1])


def test_village_rates_shrink_towards_the_overall_rate() -> None:
    train = pd.DataFrame({"village_code": ["v1", "v1", "v1", "v1", "v2"]})
    ranker = VillageRateRanker(prior_strength=2.0).fit(train, [1, 1, 0, 0, 1])
    # Overall 3/5 = 0.6. v1: (2 + 1.2) / (4 + 2); v2: (1 + 1.2) / (1 + 2).
    assert ranker.area_rates_ == pytest.approx({"v1": 3.2 / 6, "v2": 2.2 / 3})
    new = pd.DataFrame({"village_code": ["v2", "v9", None, "v1"]})
    np.testing.assert_allclose(ranker.predict_proba(new)[:, 1], [2.2 / 3, 0.6, 0.6, 3.2 / 6])


def test_village_rate_comes_from_training_rows_not_the_scored_batch() -> None:
    train = pd.DataFrame({"village_code": ["v1"] * 10 + ["v2"] * 10})
    ranker = VillageRateRanker(prior_strength=5.0).fit(train, [1] * 3 + [0] * 7 + [0] * 10)
    alone = ranker.predict_proba(pd.DataFrame({"village_code": ["v1"]}))[:, 1]
    mixed = ranker.predict_proba(pd.DataFrame({"village_code": ["v1", "v2", "v2"]}))[:, 1]
    assert alone[0] == mixed[0] == pytest.approx((3 + 5 * 0.15) / 15)


def test_village_ranker_uses_the_configured_column() -> None:
    train = pd.DataFrame({"township_code": ["t1", "t2"], "village_code": ["v1", "v1"]})
    ranker = VillageRateRanker(area_column="township_code", prior_strength=0.0)
    ranker.fit(train, [1, 0])
    assert ranker.area_rates_ == {"t1": 1.0, "t2": 0.0}
    with pytest.raises(ValueError, match="township_code"):
        ranker.predict_proba(pd.DataFrame({"village_code": ["v1"]}))
