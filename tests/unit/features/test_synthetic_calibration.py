"""The synthetic population matches the public statistics it is calibrated to."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from features.synthetic.calibration import Figure, measure
from features.synthetic.config import SynthConfig, streams
from features.synthetic.dynamics import covariates
from features.synthetic.hazards import COMPONENTS, base_log_intensity
from features.synthetic.timeline import DROWNING_MONTH_SHARE, Timeline
from tests.unit.features._synthetic_cache import BASELINE, generated


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Figure]:
    out = generated(BASELINE, tmp_path_factory)
    return {f.name: f for f in measure(out)}


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("boys", 0.51, 0.58),
        ("age 0-5", 0.19, 0.245),
        ("age 6-13", 0.64, 0.71),
        ("age 14-15", 0.085, 0.135),
        ("caregiver: grandparent", 0.895, 0.955),
        ("caregiver: relative", 0.015, 0.06),
        ("caregiver: parent", 0.015, 0.055),
        # The 2018 count: no standing no-guardian group; only January's breakdowns.
        ("caregiver: none", 0.0, 0.01),
        ("caregiver age on the first day (mean, years)", 56.5, 60.0),
        ("poor guardianship (with grandparents or relatives)", 0.02, 0.055),
        ("parent contact (phone): 每周", 0.35, 0.46),
        ("parent contact (phone): 从不", 0.02, 0.07),
        ("depressive symptoms (CES-DC >= 16)", 0.27, 0.35),
        ("screen positive (referral)", 0.015, 0.07),
        ("annual injury incidence", 0.07, 0.11),
    ],
)
def test_population_share_matches_target(
    figures: dict[str, Figure], name: str, low: float, high: float
) -> None:
    assert low <= figures[name].achieved <= high, figures[name]


def test_standing_shares_hold_to_the_end_of_the_run(figures: dict[str, Figure]) -> None:
    """The chains keep the statistics' shares: no drift away from the first day's calibration
    (poor guardianship once tripled within two years), no standing no-guardian group."""
    standing = {
        name.split(",")[0]: f for name, f in figures.items() if "update" in name or "end of" in name
    }
    assert set(standing) == {
        "poor guardianship (with grandparents or relatives)",
        "no guardian (caregiver none)",
        "parents not home for over a year (or never on record)",
        "minimum income (低保)",
    }
    assert 0.02 <= standing["poor guardianship (with grandparents or relatives)"].achieved <= 0.055
    assert standing["no guardian (caregiver none)"].achieved <= 0.015
    assert 0.10 <= standing["parents not home for over a year (or never on record)"].achieved <= 0.2
    assert 0.004 <= standing["minimum income (低保)"].achieved <= 0.022


def test_injuries_are_more_common_for_boys(figures: dict[str, Figure]) -> None:
    assert figures["injury incidence boys / girls"].achieved > 1.1


def test_ninety_day_outcome_rates_are_in_the_requested_ranges(figures: dict[str, Figure]) -> None:
    ranges = {
        "serious_harm": (0.012, 0.033),
        "dropout": (0.018, 0.042),
        "guardianship_breakdown": (0.008, 0.022),
        "mental_health": (0.012, 0.033),
        "any": (0.06, 0.10),
    }
    for domain, (low, high) in ranges.items():
        achieved = figures[f"90-day rate: {domain}"].achieved
        assert low <= achieved <= high, (domain, achieved)


def test_every_figure_of_the_test_population_is_in_range(figures: dict[str, Figure]) -> None:
    failing = [f for f in figures.values() if not f.ok]
    assert not failing, failing


def test_drowning_intensity_peaks_in_summer_with_august_near_18_percent() -> None:
    config = SynthConfig(children=3000, months=12, start=date(2024, 1, 1), seed=2)
    rngs = streams(config.seed)
    from features.synthetic.areas import build_areas
    from features.synthetic.population import build_population

    tl = Timeline(config)
    areas = build_areas(config.children, rngs["areas"], new_township=False)
    pop = build_population(
        config.children,
        areas,
        tl,
        rngs["population"],
        rngs["entrants"],
        np.ones((12, len(areas.county_code))),
        None,
    )
    idx = np.flatnonzero(pop.c_group == 0)
    drowning = next(i for i, c in enumerate(COMPONENTS) if c.name == "drowning")
    totals = []
    for m in range(12):
        month = tl.months[m]
        cov = covariates(pop, idx, month, areas, tl)
        days = month.end_day - month.start_day + 1
        totals.append(np.exp(base_log_intensity(cov, month)[drowning]).sum() * days)
    share = np.asarray(totals) / np.sum(totals)
    assert share[7] == pytest.approx(0.18, abs=0.01)
    assert share[5:9].sum() == pytest.approx(sum(DROWNING_MONTH_SHARE[5:9]), abs=0.02)
    assert share[5:9].sum() > 0.55
