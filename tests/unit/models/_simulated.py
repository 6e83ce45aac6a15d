"""Small simulated populations with a known true probability, for model-library tests.

The columns mimic a feature-store frame (ids, as-of date, area codes, numeric, boolean and
string features) without depending on the real feature names, which are still being written.
Every child's true 90-day event probability is known, so tests can compare a model with the
oracle and check that an interval contains the truth.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

FEATURES = ["absence_days", "visit_gap_days", "guardian_type", "lives_alone", "age", "noise"]
GUARDIAN_EFFECT = {"parent": 0.0, "grandparent": 0.5, "relative": 0.8, "none": 1.6}


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function."""
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def simulate_children(
    n_households: int = 1500,
    *,
    seed: int = 0,
    as_of: date = date(2025, 1, 6),
    n_villages: int = 40,
    household_effect: float = 0.3,
) -> pd.DataFrame:
    """One row per child at one as-of date, with features, true probability and outcome.

    Parameters
    ----------
    n_households : int
        Households; each has 1-3 children, who share the household's random effect.
    seed : int
        Seed of every draw.
    as_of : date
        The as-of date of every row.
    n_villages : int
        Villages; each has a modest random effect on risk.
    household_effect : float
        Standard deviation of the household random effect on the log-odds.

    Returns
    -------
    DataFrame
        ``child_id, household_pid, village_code, as_of``, the ``FEATURES``, ``true_p``, ``y``.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, n_households)
    household = np.repeat(np.arange(n_households), sizes)
    n = len(household)
    village_of_household = rng.integers(0, n_villages, n_households)
    village = village_of_household[household]
    village_effect = rng.normal(0.0, 0.3, n_villages)
    shared = rng.normal(0.0, household_effect, n_households)

    absence = rng.poisson(1.5, n).astype(np.float64)
    visit_gap = rng.exponential(40.0, n)
    visit_gap[rng.random(n) < 0.08] = np.nan  # never visited: missing
    guardian = rng.choice(list(GUARDIAN_EFFECT), n, p=[0.45, 0.35, 0.12, 0.08])[household]
    guardian = guardian.astype(object)
    guardian[rng.random(n) < 0.03] = None
    alone = rng.random(n) < 0.06
    age = rng.integers(6, 17, n).astype(np.float64)
    noise = rng.normal(0.0, 1.0, n)

    logit = (
        -3.2
        + 0.35 * absence
        + 0.012 * np.nan_to_num(np.minimum(visit_gap, 150.0), nan=90.0)
        + np.array([GUARDIAN_EFFECT.get(g, 0.7) if g is not None else 0.7 for g in guardian])
        + 1.2 * alone
        + 0.05 * (age - 11.0)
        + village_effect[village]
        + shared[household]
    )
    true_p = sigmoid(logit)
    y = (rng.random(n) < true_p).astype(np.int64)
    return pd.DataFrame(
        {
            "child_id": [f"c{seed}-{i:05d}" for i in range(n)],
            "household_pid": [f"h{seed}-{h:05d}" for h in household],
            "village_code": [f"v{v:03d}" for v in village],
            "as_of": pd.Timestamp(as_of),
            "absence_days": absence,
            "visit_gap_days": visit_gap,
            "guardian_type": pd.Series(guardian, dtype="str"),
            "lives_alone": alone,
            "age": age,
            "noise": noise,
            "true_p": true_p,
            "y": y,
        }
    )


def simulate_spine(
    n_households: int,
    *,
    seed: int,
    start: date = date(2023, 1, 2),
    n_dates: int = 24,
    step_days: int = 30,
    move_share: float = 0.1,
) -> pd.DataFrame:
    """A spine of (child, household, as_of) rows over many dates, with some children moving.

    Parameters
    ----------
    n_households : int
        Households at the start.
    seed : int
        Seed of every draw.
    start : date
        First as-of date.
    n_dates : int
        Number of as-of dates.
    step_days : int
        Days between as-of dates.
    move_share : float
        Share of children who move to another household halfway through.

    Returns
    -------
    DataFrame
        ``child_id, household_pid, as_of``.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, n_households)
    household = np.repeat(np.arange(n_households), sizes)
    n = len(household)
    moved_to = np.where(rng.random(n) < move_share, rng.integers(0, n_households, n), household)
    rows = []
    for k in range(n_dates):
        current = household if k < n_dates // 2 else moved_to
        rows.append(
            pd.DataFrame(
                {
                    "child_id": [f"c{i}" for i in range(n)],
                    "household_pid": [f"h{h}" for h in current],
                    "as_of": pd.Timestamp(start + timedelta(days=k * step_days)),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)
