"""Named scenarios: what changes from ``scenario_start``, and where.

=================  ==========================================================================
``baseline``       nothing changes
``new-township``   a township (and its villages, school and children) joins the platform; it
                   enters records late, leaves more gaps and sends other staff on visits
``visit-lapse``    one township stops visiting and stops updating files
``migration-shock`` in some counties parents leave in numbers: new registrations quadruple for
                   six months and contact with parents drops for many households
``school-closure`` some schools stop sending weekly absence reports for six weeks
=================  ==========================================================================

The affected codes go into the manifest so monitoring can check it blames the right areas.
Scenario shocks are not anticipated by the oracle before they start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from features.synthetic import codes
from features.synthetic.areas import Areas
from features.synthetic.config import SynthConfig
from features.synthetic.population import Population
from features.synthetic.timeline import Timeline, from_day

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MIGRATION_SURGE_MONTHS = 6
MIGRATION_SURGE_FACTOR = 4.0
MIGRATION_COUNTY_SHARE = 0.3
MIGRATION_CONTACT_DROP = 0.4
CLOSURE_SCHOOL_SHARE = 0.1
CLOSURE_DAYS = 42
LAPSE_FACTOR = 0.03


@dataclass
class ScenarioPlan:
    """A scenario resolved against the generated areas."""

    name: str
    start_month: int
    start_day: int
    counties: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    townships: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    schools: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    closure_end_day: int = 0

    # -- effects ------------------------------------------------------------------------------
    def county_entry_factor(self, months: int, n_counties: int) -> FloatArray:
        """Multiplier of new registrations per (month, county)."""
        factor = np.ones((months, n_counties))
        if self.name == "migration-shock":
            end = min(months, self.start_month + MIGRATION_SURGE_MONTHS)
            factor[self.start_month : end, self.counties] = MIGRATION_SURGE_FACTOR
        return factor

    @property
    def new_township_day(self) -> int | None:
        """Day the new township joins (``None`` unless new-township)."""
        return self.start_day if self.name == "new-township" else None

    def visit_factor(self, village_township: IntArray, m: int) -> FloatArray:
        """Multiplier of visit (and file update) probability for villages in month ``m``."""
        factor = np.ones(len(village_township))
        if self.name == "visit-lapse" and m >= self.start_month:
            factor[np.isin(village_township, self.townships)] = LAPSE_FACTOR
        return factor

    def attendance_blocked(self, school: IntArray, week_start: int) -> BoolArray:
        """Absence reports that never arrive (school closed or not reporting)."""
        if self.name != "school-closure" or not self.start_day <= week_start < self.closure_end_day:
            return np.zeros(len(school), dtype=bool)
        return np.isin(school, self.schools)

    def apply_month_start(
        self,
        pop: Population,
        areas: Areas,
        m: int,
        rng: np.random.Generator,
        month_start: int,
        month_end: int,
    ) -> None:
        """Shocks applied to the population before month ``m`` is simulated."""
        if self.name != "migration-shock" or m < self.start_month:
            return
        county = areas.village_county[pop.hh_village]
        hit = np.isin(county, self.counties)
        if m == self.start_month:
            # many parents who still phoned often now go further for work, and call less
            present = hit & (pop.hh_entry < month_start) & (pop.hh_exit > month_start)
            drop = present & (rng.random(pop.n_households) < MIGRATION_CONTACT_DROP)
            step = np.where(rng.random(pop.n_households) < 0.3, 2, 1)
            pop.hh_contact[drop] = np.minimum(pop.hh_contact[drop] + step[drop], codes.NEVER)
        if m < self.start_month + MIGRATION_SURGE_MONTHS:
            joining = hit & (pop.hh_entry >= month_start) & (pop.hh_entry <= month_end)
            pop.hh_contact[joining] = np.minimum(pop.hh_contact[joining] + 1, codes.NEVER)
            pop.hh_lbt[joining] = codes.BOTH_AWAY

    # -- manifest ----------------------------------------------------------------------------
    def describe(self, areas: Areas) -> dict[str, Any]:
        """The scenario as the manifest records it."""
        villages = np.flatnonzero(np.isin(areas.village_township, self.townships))
        if self.name == "migration-shock":
            villages = np.flatnonzero(np.isin(areas.village_county, self.counties))
        out: dict[str, Any] = {
            "name": self.name,
            "start": from_day(self.start_day).isoformat() if self.name != "baseline" else None,
            "counties": [str(c) for c in areas.county_code[self.counties]],
            "townships": [str(t) for t in areas.township_code[self.townships]],
            "villages": [str(v) for v in areas.village_code[villages]],
            "schools": [str(s) for s in areas.school_code[self.schools]],
        }
        if self.name == "school-closure":
            out["window"] = [
                from_day(self.start_day).isoformat(),
                from_day(self.closure_end_day - 1).isoformat(),
            ]
        if self.name == "migration-shock":
            out["surge_months"] = MIGRATION_SURGE_MONTHS
        return out


def plan_scenario(
    config: SynthConfig, areas: Areas, tl: Timeline, rng: np.random.Generator
) -> ScenarioPlan:
    """Resolve the configured scenario: which areas or schools, and from when."""
    m = config.scenario_month
    start_day = tl.months[m].start_day
    plan = ScenarioPlan(config.scenario, m, start_day)
    old_townships = np.flatnonzero(~areas.township_new)
    if config.scenario == "new-township":
        plan.townships = np.flatnonzero(areas.township_new)
        plan.counties = np.unique(areas.township_county[plan.townships])
        plan.schools = np.unique(areas.township_primary[plan.townships])
    elif config.scenario == "visit-lapse":
        plan.townships = np.sort(rng.choice(old_townships, 1, replace=False))
        plan.counties = np.unique(areas.township_county[plan.townships])
    elif config.scenario == "migration-shock":
        n_counties = len(areas.county_code)
        k = max(1, round(MIGRATION_COUNTY_SHARE * n_counties))
        plan.counties = np.sort(rng.choice(n_counties, k, replace=False))
    elif config.scenario == "school-closure":
        candidates = np.flatnonzero(areas.school_kind < 2)
        k = max(1, round(CLOSURE_SCHOOL_SHARE * len(candidates)))
        plan.schools = np.sort(rng.choice(candidates, k, replace=False))
        plan.closure_end_day = start_day + CLOSURE_DAYS
        plan.counties = np.unique(areas.school_county[plan.schools])
    return plan


__all__ = ["ScenarioPlan", "plan_scenario"]
