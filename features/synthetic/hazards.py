"""The outcome intensities: one definition used by the dynamics (to draw events) and by the
oracle (to compute the true probability), so the two cannot disagree.

An outcome component ``c`` of domain ``d`` happens in a month with intensity

    Λ_c = exp(base_c + fK_c[K] + gE_c[E] + alone + a_d·x + β_d·home + ε_d) × exposure_d

``base_c`` depends on the child's static attributes and the month (age, season, school);
``K`` is the household's guardianship capacity and ``E`` the child's school engagement (both
Markov chains); ``x`` the child's latent stress (a Gaussian AR(1)); ``home`` the share of the
month parents are home for the Spring Festival; ``ε_d`` an unrecorded monthly shock
``N(0, s_d²)``; ``exposure_d`` the weight of the days the child is registered (school days only
for dropout). Nothing here draws random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from features.synthetic import codes, params
from features.synthetic.timeline import Month

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DOMAINS: tuple[str, ...] = ("harm", "dropout", "breakdown", "mental")
#: Names used in the truth files.
DOMAIN_NAMES = {
    "harm": "serious_harm",
    "dropout": "dropout",
    "breakdown": "guardianship_breakdown",
    "mental": "mental_health",
}
NEG_INF = -np.inf
#: School engagement states: 0 engaged, 1 drifting, 2 out of school (an episode under way).
ENGAGED, DRIFTING, OUT = 0, 1, 2


@dataclass(frozen=True)
class Component:
    """One kind of outcome with its own intensity; several make up a domain."""

    name: str  # incident type code, or the domain's own event kind
    domain: str
    intercept: float
    fk: tuple[float, float, float, float]  # by capacity: normal, insufficient, improper, absent
    ge: tuple[float, float, float]  # by engagement: engaged, drifting, out
    weight: str = "uniform"  # day weights: "uniform" or "dropout" (school days)


COMPONENTS: tuple[Component, ...] = (
    Component("domestic_violence", "harm", -7.5, (0.0, 0.5, 1.5, 1.1), (0.0, 0.1, 0.3)),
    Component("abuse", "harm", -8.05, (0.0, 0.6, 1.5, 1.3), (0.0, 0.1, 0.3)),
    Component("sexual_abuse", "harm", -10.55, (0.0, 0.4, 1.0, 1.4), (0.0, 0.2, 0.5)),
    Component("unlawful_harm", "harm", -8.05, (0.0, 0.3, 0.7, 1.0), (0.0, 0.3, 0.8)),
    Component("serious_injury", "harm", -7.3, (0.0, 0.4, 0.6, 0.9), (0.0, 0.1, 0.3)),
    Component("drowning", "harm", -11.7, (0.0, 0.4, 0.6, 1.0), (0.0, 0.2, 0.6)),
    Component("missing", "harm", -8.75, (0.0, 0.4, 0.9, 1.4), (0.0, 0.5, 1.2)),
    Component("begging", "harm", -10.65, (0.0, 0.4, 0.8, 2.0), (0.0, 0.3, 1.0)),
    # out of school: no new episode before the return day, which bounds the exposure instead
    Component(
        "suspected_dropout", "dropout", -5.5, (0.0, 0.4, 0.8, 1.0), (0.0, 1.8, 1.8), "dropout"
    ),
    Component("breakdown", "breakdown", -6.06, (0.0, 1.3, 1.0, NEG_INF), (0.0, 0.0, 0.0)),
    Component("mental", "mental", -6.25, (0.0, 0.3, 0.6, 0.7), (0.0, 0.2, 0.4)),
)
DOMAIN_COMPONENTS: dict[str, tuple[int, ...]] = {
    d: tuple(i for i, c in enumerate(COMPONENTS) if c.domain == d) for d in DOMAINS
}
#: Kinds a severe mental-health event is recorded as, and their shares.
MENTAL_KINDS = (("suicide_attempt", 0.25), ("self_harm", 0.4), ("mental_crisis", 0.35))


@dataclass
class Covariates:
    """Per-child inputs of the intensities for one month (household values broadcast)."""

    age: IntArray
    girl: BoolArray
    compulsory: BoolArray
    boarding: BoolArray
    disability: BoolArray
    illness: BoolArray
    no_hukou: BoolArray
    poverty: IntArray
    contact: IntArray
    incapable_parent: BoolArray
    relation: IntArray
    caregiver_age: FloatArray
    adult_woman: BoolArray
    water: BoolArray
    hardship: FloatArray
    z_common: FloatArray
    z_harm: FloatArray
    z_dropout: FloatArray
    z_mental: FloatArray
    ability: FloatArray


def _band(age: IntArray, edges: tuple[int, ...], values: tuple[float, ...]) -> FloatArray:
    """Piecewise-constant effect of age: ``values[i]`` for ``edges[i-1] <= age < edges[i]``."""
    return np.asarray(values, dtype=np.float64)[np.searchsorted(edges, age, side="right")]


def base_log_intensity(cov: Covariates, month: Month) -> FloatArray:
    """``base_c`` for every component, shape ``(len(COMPONENTS), n)``."""
    n = len(cov.age)
    out = np.empty((len(COMPONENTS), n), dtype=np.float64)
    girl = cov.girl.astype(np.float64)
    boy = 1.0 - girl
    poor = (cov.poverty != codes.POV_NONE).astype(np.float64)
    tekun = (cov.poverty == codes.TEKUN).astype(np.float64)
    dis = cov.disability.astype(np.float64)
    ill = cov.illness.astype(np.float64)
    incap = cov.incapable_parent.astype(np.float64)
    contact = {d: np.asarray(params.CONTACT_EFFECT[d])[cov.contact] for d in params.CONTACT_EFFECT}
    harm_common = (
        contact["harm"]
        + 0.4 * poor
        + 0.2 * tekun
        + 0.4 * dis
        + 0.2 * ill
        + 0.4 * cov.no_hukou
        + 0.2 * incap
        + 0.9 * cov.z_common
        + 0.65 * cov.z_harm
        + 0.5 * cov.hardship
    )
    age = cov.age
    for i, comp in enumerate(COMPONENTS):
        if comp.domain == "harm":
            term = harm_common.copy()
            if comp.name == "domestic_violence":
                term += _band(age, (6, 12), (0.0, 0.1, 0.2))
            elif comp.name == "abuse":
                term += _band(age, (6, 12), (0.3, 0.0, -0.1))
            elif comp.name == "sexual_abuse":
                term += 2.2 * girl + _band(age, (5, 8, 12), (-1.5, -0.5, 0.3, 0.6))
                term += 0.5 * (~cov.adult_woman)
            elif comp.name == "unlawful_harm":
                term += 0.3 * boy + _band(age, (8, 12), (-0.8, 0.0, 0.5))
            elif comp.name == "serious_injury":
                term += 0.4 * boy + _band(age, (3, 12), (0.2, 0.0, 0.1))
            elif comp.name == "drowning":
                term += (
                    np.log(month.drowning_factor)
                    + 0.5 * boy
                    + _band(age, (1, 5, 10, 15), (-1.0, 0.5, 0.0, 0.3, 0.1))
                    + 1.1 * cov.water
                )
            elif comp.name == "missing":
                term += _band(age, (8, 12, 14), (-1.5, -0.3, 0.6, 0.9)) + 0.2 * girl
            elif comp.name == "begging":
                term += _band(age, (6, 10), (-0.3, 0.2, 0.0)) + 0.6 * tekun
        elif comp.domain == "dropout":
            term = (
                _band(age, (6, 10, 12, 13, 14, 15), (0.0, -1.6, -0.9, -0.2, 0.2, 0.5, 0.7))
                + 0.3 * boy
                + contact["dropout"]
                + 0.5 * poor
                + 0.4 * dis
                + 0.3 * ill
                + 0.7 * cov.z_common
                + 0.7 * cov.z_dropout
                - 0.35 * cov.ability
                + 0.2 * cov.hardship
                - 0.2 * cov.boarding
                + 0.2 * incap
            )
            term = np.where(cov.compulsory, term, NEG_INF)
        elif comp.domain == "breakdown":
            cg_old = np.clip(np.nan_to_num(cov.caregiver_age, nan=65.0) - 65.0, -10.0, 20.0)
            relation = np.asarray([0.0, 0.2, 0.6, 0.5, 0.0])[cov.relation]
            term = (
                contact["breakdown"]
                + 0.05 * cg_old * (cov.relation == codes.GRANDPARENT)
                + relation
                + 0.8 * cov.hardship
                + 0.3 * poor
                + (0.3 if month.winter else 0.0)
            )
        else:  # mental
            term = (
                _band(age, (8, 10, 12, 14), (-3.5, -1.5, -0.5, 0.1, 0.4))
                + 0.45 * girl
                + contact["mental"]
                + 0.3 * dis
                + 0.4 * ill
                + 0.8 * cov.z_mental
                + 0.7 * cov.z_common
                + 0.15 * incap
            )
        out[i] = comp.intercept + term
    return out


def alone_extra(boarding: BoolArray) -> FloatArray:
    """Extra log intensity in the absent-guardianship state for children who do not board."""
    return np.where(boarding, 0.0, params.ALONE_EXTRA)


def state_effects() -> tuple[FloatArray, FloatArray]:
    """``fK`` (components × 4) and ``gE`` (components × 3) as arrays."""
    fk = np.array([c.fk for c in COMPONENTS], dtype=np.float64)
    ge = np.array([c.ge for c in COMPONENTS], dtype=np.float64)
    return fk, ge


def injury_log_intensity(
    cov: Covariates, month: Month, k_state: IntArray, stress: FloatArray
) -> FloatArray:
    """Log intensity of a (non-serious) accidental injury this month."""
    summer = params.INJURY_SUMMER if month.month in (6, 7, 8) else 0.0
    boy = (~cov.girl).astype(np.float64)
    log: FloatArray = (
        params.INJURY_BASE
        + params.INJURY_BOY * boy
        + summer
        + _band(cov.age, (3, 13), (-0.2, 0.15, 0.0))
        + params.INJURY_K * (k_state != codes.K_NORMAL)
        + params.INJURY_STRESS * stress
    )
    return log


__all__ = [
    "COMPONENTS",
    "DOMAINS",
    "DOMAIN_COMPONENTS",
    "DOMAIN_NAMES",
    "DRIFTING",
    "ENGAGED",
    "MENTAL_KINDS",
    "OUT",
    "Component",
    "Covariates",
    "alone_extra",
    "base_log_intensity",
    "injury_log_intensity",
    "state_effects",
]
