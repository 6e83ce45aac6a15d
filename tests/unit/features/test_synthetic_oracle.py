"""The oracle's true probabilities are calibrated and discriminate as intended."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from features.synthetic.areas import build_areas
from features.synthetic.calibration import auc, oracle_check
from features.synthetic.config import SynthConfig, streams
from features.synthetic.dynamics import EpisodeBook, step
from features.synthetic.hazards import DOMAINS
from features.synthetic.oracle import _gamma_log_ratio, monte_carlo, oracle
from features.synthetic.population import build_population
from features.synthetic.timeline import Timeline
from tests.unit.features._synthetic_cache import BASELINE, generated


@pytest.fixture(scope="module")
def check(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return oracle_check(generated(BASELINE, tmp_path_factory))


def test_mean_oracle_probability_matches_realised_rate(check: pd.DataFrame) -> None:
    assert len(check) == 21  # month ends with a full 90-day window inside 24 months
    for domain in ("serious_harm", "dropout", "guardianship_breakdown", "mental_health", "any"):
        predicted = check[f"{domain}_p"].mean()
        realised = check[f"{domain}_rate"].mean()
        assert predicted == pytest.approx(realised, rel=0.15, abs=0.002), domain


def test_oracle_auc_for_any_adverse_outcome_is_high_but_not_perfect(check: pd.DataFrame) -> None:
    mean_auc = check["any_auc"].mean()
    assert 0.78 <= mean_auc <= 0.90
    assert check["any_auc"].min() > 0.7


def test_oracle_ranks_children_within_each_domain(check: pd.DataFrame) -> None:
    for domain in ("serious_harm", "dropout", "guardianship_breakdown", "mental_health"):
        assert check[f"{domain}_auc"].mean() > 0.7, domain


def test_top_decile_of_oracle_risk_holds_a_third_of_outcomes(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    out = generated(BASELINE, tmp_path_factory)
    risk = pd.read_parquet(out / "truth" / "risk.parquet")
    outcomes = pd.read_parquet(out / "truth" / "outcomes.parquet")
    as_of = pd.Timestamp("2024-12-31")
    frame = risk[pd.to_datetime(risk["as_of"]) == as_of]
    events = pd.to_datetime(outcomes["event_date"])
    hit = outcomes[(events > as_of) & (events <= as_of + pd.Timedelta(days=90))]
    y = frame["id_number"].isin(set(hit["id_number"])).to_numpy()
    top = frame["p_any"].to_numpy() >= np.quantile(frame["p_any"], 0.9)
    assert y[top].sum() / y.sum() > 0.3
    assert auc(frame["p_any"].to_numpy(dtype=np.float64), y) > 0.75


def test_gamma_correction_never_lowers_the_no_event_probability() -> None:
    mu = np.array([0.0, 0.01, 0.2, 1.5, 30.0])
    var = np.array([0.0, 0.0001, 0.05, 2.0, 900.0])
    ratio = _gamma_log_ratio(mu, var)
    assert ratio[0] == 0.0
    assert np.all(ratio >= 0.0)
    # a gamma with mean 1.5 and variance 2 has Laplace transform (1 + 4/3) ** -1.125 at 1
    assert ratio[3] == pytest.approx(-1.125 * np.log1p(2.0 / 1.5) + 1.5)


def test_oracle_agrees_with_monte_carlo_of_the_generator() -> None:
    config = SynthConfig(children=2500, months=8, start=date(2024, 1, 1), seed=13)
    rngs = streams(config.seed)
    tl = Timeline(config)
    areas = build_areas(config.children, rngs["areas"], new_township=False)
    pop = build_population(
        config.children,
        areas,
        tl,
        rngs["population"],
        rngs["entrants"],
        np.ones((config.months, len(areas.county_code))),
        None,
    )
    book = EpisodeBook.empty(pop.n_children)
    for m in range(6):
        step(pop, book, tl, areas, m, rngs["dynamics"])
    result = oracle(pop, book, tl, areas, 5)
    # the riskiest children carry the approximations' errors, so oversample them
    order = np.argsort(-result.p["any"])
    chosen = np.concatenate([order[:150], order[150::12][:150]])
    children = result.children[chosen]
    simulated = monte_carlo(pop, book, tl, areas, 5, children, 300, np.random.default_rng(1))
    for domain in (*DOMAINS, "any"):
        p = result.p[domain][chosen]
        f = simulated[domain]
        assert f.mean() == pytest.approx(p.mean(), rel=0.1, abs=0.003), domain
    p_any, f_any = result.p["any"][chosen], simulated["any"]
    assert np.corrcoef(p_any, f_any)[0, 1] > 0.9
    assert np.abs(p_any - f_any).mean() < 0.03
