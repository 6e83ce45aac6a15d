"""One month of the population's life: exits, outcomes, injuries, state changes.

:func:`step` advances the population by one calendar month, fully vectorised. Hazards are
evaluated on the state at the start of the month (see :mod:`hazards`); the state for the next
month (guardianship capacity, school engagement, latent stress, contact) is drawn at the end,
so at each month end the generator's full state fixes the next month's intensities up to the
unrecorded shocks. The oracle (:mod:`oracle`) integrates exactly these transitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from features.calendar import SPRING_FESTIVAL
from features.synthetic import codes, params
from features.synthetic.areas import Areas
from features.synthetic.hazards import (
    COMPONENTS,
    DOMAIN_COMPONENTS,
    DOMAINS,
    DRIFTING,
    ENGAGED,
    OUT,
    Covariates,
    alone_extra,
    base_log_intensity,
    injury_log_intensity,
    state_effects,
)
from features.synthetic.population import NA_DAY, NEVER, YEAR, Population, caregiver_health
from features.synthetic.schooling import schooling
from features.synthetic.timeline import SF_ARRIVE_BEFORE, Month, Timeline, to_day

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_EMPTY = np.zeros(0, dtype=np.int64)
#: School-event schedule of an episode: suspected dropout, persuasion, written report,
#: dropout (over a month), returned.
EPISODE_EVENTS = (
    codes.SE_SUSPECTED,
    codes.SE_PERSUASION,
    codes.SE_REPORT,
    codes.SE_DROPOUT,
    codes.SE_RETURNED,
)


@dataclass
class MonthEvents:
    """Everything that happened in one month, for the ledgers and the truth files."""

    month: Month
    activated: IntArray = field(default_factory=lambda: _EMPTY)
    exit_child: IntArray = field(default_factory=lambda: _EMPTY)
    exit_day: IntArray = field(default_factory=lambda: _EMPTY)
    exit_reason: IntArray = field(default_factory=lambda: _EMPTY)
    out_child: IntArray = field(default_factory=lambda: _EMPTY)
    out_component: IntArray = field(default_factory=lambda: _EMPTY)
    out_day: IntArray = field(default_factory=lambda: _EMPTY)
    out_fatal: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    injury_child: IntArray = field(default_factory=lambda: _EMPTY)
    injury_day: IntArray = field(default_factory=lambda: _EMPTY)
    k_start: IntArray = field(default_factory=lambda: _EMPTY)
    k_change_day: IntArray = field(default_factory=lambda: _EMPTY)
    k_hh: IntArray = field(default_factory=lambda: _EMPTY)
    k_day: IntArray = field(default_factory=lambda: _EMPTY)
    k_old: IntArray = field(default_factory=lambda: _EMPTY)
    k_new: IntArray = field(default_factory=lambda: _EMPTY)
    k_cause: IntArray = field(default_factory=lambda: _EMPTY)  # 0 chain, 1 breakdown, 2 arranged
    school_child: IntArray = field(default_factory=lambda: _EMPTY)
    school_kind: IntArray = field(default_factory=lambda: _EMPTY)
    school_day: IntArray = field(default_factory=lambda: _EMPTY)
    school_absent: IntArray = field(default_factory=lambda: _EMPTY)
    poverty_hh: IntArray = field(default_factory=lambda: _EMPTY)
    poverty_day: IntArray = field(default_factory=lambda: _EMPTY)
    contact_hh: IntArray = field(default_factory=lambda: _EMPTY)
    contact_day: IntArray = field(default_factory=lambda: _EMPTY)
    e_start: IntArray = field(default_factory=lambda: _EMPTY)  # engagement during the month
    x_start: FloatArray = field(default_factory=lambda: np.zeros(0))  # stress during the month


@dataclass
class EpisodeBook:
    """Per-child school-event schedule of the current and the previous absence episode."""

    days: IntArray  # (n, 5) days of EPISODE_EVENTS (NEVER if it does not happen)
    recorded: BoolArray  # the school files this episode
    prev_onset: IntArray
    prev_return: IntArray

    @classmethod
    def empty(cls, n: int) -> EpisodeBook:
        """No episodes yet."""
        return cls(
            days=np.full((n, len(EPISODE_EVENTS)), NEVER, dtype=np.int64),
            recorded=np.zeros(n, dtype=bool),
            prev_onset=np.full(n, NA_DAY, dtype=np.int64),
            prev_return=np.full(n, NA_DAY, dtype=np.int64),
        )


def birthday16(birth: IntArray) -> IntArray:
    """Day each child turns 16 (29 February birthdays move to 1 March)."""
    d = np.asarray(birth, dtype="datetime64[D]")
    months = d.astype("datetime64[M]")
    day_of_month = (d - months.astype("datetime64[D]")).astype(np.int64)
    target = (months + np.timedelta64(16 * 12, "M")).astype("datetime64[D]") + day_of_month
    out: IntArray = target.astype(np.int64)
    return out


def age_on(pop: Population, idx: IntArray, day: int) -> IntArray:
    """Whole years of age on ``day``."""
    return np.floor((day - pop.c_birth[idx]) / YEAR).astype(np.int64)


def low_contact(contact: IntArray) -> BoolArray:
    """Parents seen once a year or never."""
    return np.isin(contact, [codes.YEARLY, codes.NEVER])


def stress_mean(pop: Population, idx: IntArray) -> FloatArray:
    """Each child's long-run mean stress, including the part that follows parent contact."""
    return pop.c_mu_x[idx] + params.STRESS_MEAN_LOW_CONTACT * low_contact(
        pop.hh_contact[pop.c_hh[idx]]
    )


def covariates(
    pop: Population, idx: IntArray, month: Month, areas: Areas, tl: Timeline
) -> Covariates:
    """Intensity inputs of children ``idx`` in ``month`` (age and school at mid-month)."""
    mid = (month.start_day + month.end_day) // 2
    hh = pop.c_hh[idx]
    school = schooling(pop, idx, mid, areas, tl.first_day)
    cg_age = (mid - pop.hh_cg_birth[hh]) / YEAR
    return Covariates(
        age=age_on(pop, idx, mid),
        girl=~pop.c_male[idx],
        compulsory=school.compulsory,
        boarding=school.boarding,
        disability=pop.c_disability[idx],
        illness=pop.c_illness[idx],
        no_hukou=pop.c_hukou[idx] == codes.NO_HUKOU,
        poverty=pop.hh_poverty[hh],
        contact=pop.hh_contact[hh],
        incapable_parent=pop.hh_lbt[hh] == codes.ONE_AWAY_INCAPABLE,
        relation=pop.hh_relation[hh],
        caregiver_age=cg_age,
        adult_woman=pop.hh_adult_woman[hh],
        water=pop.hh_water[hh],
        hardship=pop.hh_hardship[hh],
        z_common=pop.c_zc[idx],
        z_harm=pop.c_zh[idx],
        z_dropout=pop.c_zd[idx],
        z_mental=pop.c_zm[idx],
        ability=pop.c_ability[idx],
    )


def k_transitions(
    relation: IntArray, cg_age: FloatArray, hardship: FloatArray, month: Month
) -> FloatArray:
    """Monthly transition probabilities of guardianship capacity, shape ``(4, 4, n)``
    (from, to, household).

    Only the changes that are not outcomes: a breakdown (into "absent") is an outcome event
    drawn from its own intensity.
    """
    n = len(relation)
    winter = params.K_DECLINE_WINTER if month.winter else 1.0
    age = np.clip(np.nan_to_num(cg_age, nan=65.0) - 65.0, -15.0, 25.0)
    decline = (
        np.select(
            [relation == codes.GRANDPARENT, relation == codes.PARENT],
            [
                params.K_DECLINE * np.exp(params.K_DECLINE_AGE * age),
                np.full(n, params.K_DECLINE_PARENT),
            ],
            default=params.K_DECLINE,
        )
        * winter
    )
    decline = np.minimum(decline, 0.2)
    improper = params.K_TO_IMPROPER * np.exp(0.5 * hardship)
    t = np.zeros((4, 4, n))
    t[codes.K_NORMAL, codes.K_INSUFFICIENT] = decline
    t[codes.K_NORMAL, codes.K_IMPROPER] = improper
    t[codes.K_INSUFFICIENT, codes.K_NORMAL] = params.K_RECOVER
    t[codes.K_INSUFFICIENT, codes.K_IMPROPER] = params.K_INSUFFICIENT_TO_IMPROPER
    t[codes.K_IMPROPER, codes.K_NORMAL] = params.K_IMPROPER_RECOVER
    t[codes.K_IMPROPER, codes.K_INSUFFICIENT] = params.K_IMPROPER_TO_INSUFFICIENT
    t[codes.K_ABSENT, codes.K_NORMAL] = params.K_ABSENT_TO_NORMAL
    t[codes.K_ABSENT, codes.K_INSUFFICIENT] = params.K_ABSENT_TO_INSUFFICIENT
    for i in range(4):
        t[i, i] = 1.0 - t[i].sum(axis=0)
    return t


def drift_probability(cov: Covariates, k_state: IntArray, poverty: IntArray) -> FloatArray:
    """Monthly probability an engaged pupil starts drifting (scattered unexcused absences)."""
    log = (
        np.log(params.E_DRIFT)
        + params.E_DRIFT_MIDDLE * (cov.age >= 12)
        + params.E_DRIFT_BOY * (~cov.girl)
        + np.asarray(params.E_DRIFT_K)[k_state]
        + params.E_DRIFT_FRAILTY * cov.z_dropout
        + params.E_DRIFT_POVERTY * (poverty != codes.POV_NONE)
        + params.E_DRIFT_ABILITY * cov.ability
    )
    out: FloatArray = np.minimum(np.exp(log), 0.5)
    return out


def exit_probability(contact: IntArray, month: Month) -> tuple[FloatArray, FloatArray]:
    """Monthly probabilities that parents come back for good, and that the family moves."""
    back = params.RETURN_FOR_GOOD * (params.RETURN_AFTER_SF_FACTOR if month.after_sf else 1.0)
    back_arr = np.where(contact == codes.WEEKLY, 1.5 * back, back)
    return back_arr, np.full(len(contact), params.MOVED_AWAY)


def home_fraction(pop: Population, hh: IntArray, month: Month) -> FloatArray:
    """Share of the month parents are home for the Spring Festival (0 outside its window)."""
    if month.sf_year == 0:
        return np.zeros(len(hh))
    home = (pop.hh_sf_year[hh] == month.sf_year) & pop.hh_sf_home[hh]
    return np.where(home, month.sf_home_fraction, 0.0)


def out_at(pop: Population, idx: IntArray, day: int) -> BoolArray:
    """Children in an unexcused-absence episode on ``day``."""
    return (pop.c_onset[idx] <= day) & (pop.c_return[idx] > day)


def sorted_unique(values: IntArray) -> IntArray:
    """Distinct values of an already sorted array (faster than hashing at this scale)."""
    if len(values) == 0:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    out: IntArray = values[keep]
    return out


def record_parent_visit(pop: Population, hh: IntArray, day: IntArray) -> None:
    """Note that a parent came home on ``day`` (the previous visit is kept for earlier rows)."""
    later = day > pop.hh_parent_visit[hh]
    hh, day = hh[later], day[later]
    pop.hh_parent_prev[hh] = pop.hh_parent_visit[hh]
    pop.hh_parent_visit[hh] = day


def _first_event_fraction(rng: np.random.Generator, lam: FloatArray) -> FloatArray:
    """Position (share of the exposure) of the first event, given at least one happened."""
    u = rng.random(len(lam))
    safe = np.maximum(lam, 1e-12)
    return np.clip(-np.log1p(-u * (-np.expm1(-safe))) / safe, 0.0, 1.0 - 1e-9)


def step(
    pop: Population, book: EpisodeBook, tl: Timeline, areas: Areas, m: int, rng: np.random.Generator
) -> MonthEvents:
    """Advance the population through month ``m`` and return what happened."""
    month = tl.months[m]
    ms, me = month.start_day, month.end_day

    # -- joins ------------------------------------------------------------------------------
    joining = np.flatnonzero(~pop.c_active & (pop.c_entry <= me) & (pop.c_exit == NEVER))
    _initial_engagement(pop, joining, month, areas, tl, rng)
    ev = MonthEvents(month=month, e_start=pop.c_e.copy(), x_start=pop.c_x.copy())
    pop.c_active[joining] = True
    ev.activated = joining
    active = np.flatnonzero(pop.c_active)
    hh_of = pop.c_hh[active]

    # -- Spring Festival: parents decide whether to come home -------------------------------
    if month.sf_year:
        hh_all = sorted_unique(hh_of)
        undecided = hh_all[pop.hh_sf_year[hh_all] != month.sf_year]
        prob = np.asarray(params.SF_RETURN)[pop.hh_contact[undecided]]
        pop.hh_sf_year[undecided] = month.sf_year
        pop.hh_sf_home[undecided] = rng.random(len(undecided)) < prob
        came = undecided[pop.hh_sf_home[undecided]]
        arrive = (
            to_day(SPRING_FESTIVAL[month.sf_year])
            - SF_ARRIVE_BEFORE
            + rng.integers(-3, 4, len(came))
        )
        record_parent_visit(pop, came, arrive)

    # -- exits -------------------------------------------------------------------------------
    hh_active = sorted_unique(hh_of)
    back, moved = exit_probability(pop.hh_contact[hh_active], month)
    u = rng.random(len(hh_active))
    leaving = u < back + moved
    lo_hh = np.maximum(ms, pop.hh_entry[hh_active] + 1)
    leave_day = lo_hh + np.floor(rng.random(len(hh_active)) * (me + 1 - lo_hh)).astype(np.int64)
    pop.hh_exit[hh_active[leaving]] = leave_day[leaving]
    pop.hh_exit_reason[hh_active[leaving]] = np.where(
        u[leaving] < back[leaving], codes.EXIT_PARENTS_RETURNED, codes.EXIT_MOVED
    )
    b16 = birthday16(pop.c_birth[active])
    aged = (b16 >= ms) & (b16 <= me)
    hh_exit = pop.hh_exit[hh_of]
    exit_day = np.minimum(np.where(aged, b16, NEVER), np.where(hh_exit <= me, hh_exit, NEVER))
    exit_reason = np.where(
        (hh_exit <= me) & (hh_exit <= np.where(aged, b16, NEVER)),
        pop.hh_exit_reason[hh_of],
        codes.EXIT_AGED_OUT,
    )
    lo = np.maximum(ms, pop.c_entry[active])
    hi = np.minimum(me + 1, exit_day)

    # -- school episodes under way: their events this month ---------------------------------
    _collect_school_events(ev, book, pop, tl, active, hi, ms, me)

    # -- outcome intensities -----------------------------------------------------------------
    cov = covariates(pop, active, month, areas, tl)
    base = base_log_intensity(cov, month)
    fk, ge = state_effects()
    k_now = pop.hh_k[hh_of]
    e_now = pop.c_e[active]
    out_start = (pop.c_onset[active] < ms) & (pop.c_return[active] > ms)
    e_eff = np.where(out_start, OUT, e_now)
    state = fk[:, k_now] + np.where(
        np.asarray([c.domain == "dropout" for c in COMPONENTS])[:, None], ge[:, e_now], ge[:, e_eff]
    )
    state = state + np.where(k_now == codes.K_ABSENT, alone_extra(cov.boarding), 0.0)[None, :]
    log_lam = base + state
    home = home_fraction(pop, hh_of, month)
    expo_uniform = tl.weight_between("uniform", lo, hi)
    drop_lo = np.maximum(lo, np.where(pop.c_return[active] > ms, pop.c_return[active], lo))
    expo_drop = tl.weight_between("dropout", drop_lo, hi)
    x = pop.c_x[active]

    events_child: list[IntArray] = []
    events_comp: list[IntArray] = []
    events_day: list[IntArray] = []
    for domain in DOMAINS:
        if domain == "breakdown":
            continue
        comps = list(DOMAIN_COMPONENTS[domain])
        lam_c = np.exp(log_lam[comps])  # (c, n)
        shock = rng.normal(0.0, params.SHOCK_SD[domain], len(active))
        factor = np.exp(
            params.STRESS_LOADING[domain] * x + params.HOME_EFFECT[domain] * home + shock
        )
        expo = expo_drop if domain == "dropout" else expo_uniform
        lam = lam_c.sum(axis=0) * factor * expo
        hit = rng.random(len(active)) < -np.expm1(-lam)
        where = np.flatnonzero(hit)
        frac = _first_event_fraction(rng, lam[where])
        kind = "dropout" if domain == "dropout" else "uniform"
        start = drop_lo[where] if domain == "dropout" else lo[where]
        day = tl.day_at_weight(kind, start, frac * expo[where])
        day = np.minimum(day, hi[where] - 1)
        share = lam_c[:, where] / lam_c[:, where].sum(axis=0)
        pick = (rng.random(len(where))[None, :] > np.cumsum(share, axis=0)).sum(axis=0)
        events_child.append(active[where])
        events_comp.append(np.asarray(comps)[np.minimum(pick, len(comps) - 1)])
        events_day.append(day)

    # breakdown: one draw per household, shared by the children registered on that day
    comp_b = DOMAIN_COMPONENTS["breakdown"][0]
    first_of_hh = np.flatnonzero(np.r_[True, hh_of[1:] != hh_of[:-1]])
    hh_b = hh_of[first_of_hh]
    lam_hh = np.exp(log_lam[comp_b, first_of_hh])
    hh_lo = np.maximum(ms, pop.hh_entry[hh_b])
    hh_hi = np.minimum(me + 1, np.where(pop.hh_exit[hh_b] <= me, pop.hh_exit[hh_b], NEVER))
    hh_home = home[first_of_hh]
    shock_b = rng.normal(0.0, params.SHOCK_SD["breakdown"], len(hh_b))
    lam_b = (
        lam_hh
        * np.exp(params.HOME_EFFECT["breakdown"] * hh_home + shock_b)
        * tl.weight_between("uniform", hh_lo, hh_hi)
    )
    hit_b = np.flatnonzero(rng.random(len(hh_b)) < -np.expm1(-lam_b))
    frac_b = _first_event_fraction(rng, lam_b[hit_b])
    day_b = tl.day_at_weight(
        "uniform", hh_lo[hit_b], frac_b * tl.weight_between("uniform", hh_lo[hit_b], hh_hi[hit_b])
    )
    broke_day = np.full(pop.n_households, NEVER, dtype=np.int64)
    broke_day[hh_b[hit_b]] = day_b
    child_break = broke_day[hh_of]
    affected = np.flatnonzero((child_break >= lo) & (child_break < hi))
    events_child.append(active[affected])
    events_comp.append(np.full(len(affected), comp_b, dtype=np.int64))
    events_day.append(child_break[affected])

    out_child = np.concatenate(events_child)
    out_comp = np.concatenate(events_comp)
    out_day = np.concatenate(events_day)
    drowning = np.asarray([c.name == "drowning" for c in COMPONENTS])[out_comp]
    fatal = drowning & (rng.random(len(out_comp)) < params.DROWNING_FATAL)
    # a child who drowned fatally has no later events and leaves the registry that day
    death = np.full(pop.n_children, NEVER, dtype=np.int64)
    np.minimum.at(death, out_child[fatal], out_day[fatal])
    keep = out_day <= death[out_child]
    out_child, out_comp, out_day = out_child[keep], out_comp[keep], out_day[keep]
    fatal = fatal[keep]
    order = np.lexsort((out_comp, out_day, out_child))
    ev.out_child, ev.out_component, ev.out_day, ev.out_fatal = (
        out_child[order],
        out_comp[order],
        out_day[order],
        fatal[order],
    )
    dead_pos = np.flatnonzero(death[active] < NEVER)
    exit_day[dead_pos] = np.minimum(exit_day[dead_pos], death[active][dead_pos])
    exit_reason[dead_pos] = codes.EXIT_OTHER
    hi = np.minimum(hi, exit_day)

    # -- accidental injuries (not an outcome, but a visible sign) ---------------------------
    inj_log = injury_log_intensity(cov, month, k_now, x)
    inj_lam = np.exp(inj_log) * tl.weight_between("uniform", lo, hi)
    injured = np.flatnonzero(rng.random(len(active)) < -np.expm1(-inj_lam))
    inj_day = lo[injured] + np.floor(
        rng.random(len(injured)) * np.maximum(hi[injured] - lo[injured], 1)
    ).astype(np.int64)
    ev.injury_child, ev.injury_day = active[injured], inj_day
    pop.c_last_injury[active[injured]] = inj_day

    # -- guardianship: breakdowns now, other changes drawn for next month -------------------
    ev.k_start = pop.hh_k.copy()
    ev.k_change_day = np.full(pop.n_households, NEVER, dtype=np.int64)
    _guardianship_changes(ev, pop, hh_b, hit_b, day_b, month, rng)

    # -- school: new episodes, engagement for next month -----------------------------------
    dropout_comp = DOMAIN_COMPONENTS["dropout"][0]
    onset_pos = np.flatnonzero(ev.out_component == dropout_comp)
    _start_episodes(ev, book, pop, tl, ev.out_child[onset_pos], ev.out_day[onset_pos], rng, ms, me)
    _engagement(pop, active, cov, k_now, ms, me, rng)

    # -- stress for next month ---------------------------------------------------------------
    mu = stress_mean(pop, active)
    jump = np.zeros(pop.n_children)
    harm_like = np.isin(ev.out_component, DOMAIN_COMPONENTS["harm"])
    np.maximum.at(jump, ev.out_child[harm_like], params.STRESS_JUMP_HARM)
    mental = np.isin(ev.out_component, DOMAIN_COMPONENTS["mental"])
    np.maximum.at(jump, ev.out_child[mental], params.STRESS_JUMP_MENTAL)
    sd_e = params.STRESS_SD * np.sqrt(1.0 - params.STRESS_RHO**2)
    # an event lifts stress, but repeated events do not push it without limit
    lift = np.where(x < mu + params.STRESS_JUMP_CEILING * params.STRESS_SD, jump[active], 0.0)
    pop.c_x[active] = mu + params.STRESS_RHO * (x - mu) + rng.normal(0.0, sd_e, len(active)) + lift

    # -- contact, poverty, parents' short visits ---------------------------------------------
    _household_drift(ev, pop, hh_active, month, rng)

    # -- exits take effect ---------------------------------------------------------------------
    gone = np.flatnonzero(exit_day <= me)
    ev.exit_child = active[gone]
    ev.exit_day = exit_day[gone]
    ev.exit_reason = exit_reason[gone]
    pop.c_exit[active[gone]] = exit_day[gone]
    pop.c_exit_reason[active[gone]] = exit_reason[gone]
    pop.c_active[active[gone]] = False
    return ev


def _guardianship_changes(
    ev: MonthEvents,
    pop: Population,
    hh_b: IntArray,
    hit_b: IntArray,
    day_b: IntArray,
    month: Month,
    rng: np.random.Generator,
) -> None:
    ms, me = month.start_day, month.end_day
    broke = hh_b[hit_b]
    old_b = pop.hh_k[broke].copy()
    pop.hh_k[broke] = codes.K_ABSENT
    pop.hh_k_since[broke] = day_b
    # the caregiver died, fell gravely ill or left; some stay nominally but cannot care
    nominal = rng.random(len(broke)) < 0.3
    pop.hh_relation[broke] = np.where(nominal, pop.hh_relation[broke], codes.NOBODY)
    pop.hh_cg_health[broke] = codes.H_CRITICAL
    pop.hh_cg_birth[broke] = np.where(nominal, pop.hh_cg_birth[broke], np.nan)
    pop.hh_adult_woman[broke] = nominal & pop.hh_adult_woman[broke]
    ev.k_change_day[broke] = day_b

    others = sorted_unique(pop.c_hh[pop.c_active])
    others = others[~np.isin(others, broke)]
    mid = (ms + me) // 2
    cg_age = (mid - pop.hh_cg_birth[others]) / YEAR
    t = k_transitions(pop.hh_relation[others], cg_age, pop.hh_hardship[others], month)
    current = pop.hh_k[others]
    rows = t[current, :, np.arange(len(others))]  # (n, 4)
    nxt = (rng.random(len(others))[:, None] > np.cumsum(rows, axis=1)).sum(axis=1)
    nxt = np.minimum(nxt, 3)
    moved = np.flatnonzero(nxt != current)
    hh = others[moved]
    old, new = current[moved], nxt[moved]
    day = rng.integers(ms, me + 1, len(hh))
    pop.hh_k[hh] = new
    pop.hh_k_since[hh] = day
    ev.k_change_day[hh] = day
    pop.hh_cg_health[hh] = caregiver_health(new, rng)
    # a guardian is arranged for children who had none
    arranged = old == codes.K_ABSENT
    ha = hh[arranged]
    pick = rng.choice(3, len(ha), p=[0.5, 0.3, 0.2])
    relation = np.array([codes.ENTRUSTED, codes.RELATIVE, codes.GRANDPARENT])[pick]
    pop.hh_relation[ha] = relation
    age = np.select(
        [relation == codes.ENTRUSTED, relation == codes.RELATIVE],
        [rng.normal(50, 8, len(ha)), rng.normal(45, 8, len(ha))],
        default=rng.normal(params.CAREGIVER_AGE["grandparent"][0] + 2.0, 6, len(ha)),
    )
    pop.hh_cg_birth[ha] = day[arranged] - age * YEAR
    pop.hh_agreement[ha] = rng.random(len(ha)) < np.where(relation == codes.ENTRUSTED, 0.75, 0.4)
    pop.hh_adult_woman[ha] = rng.random(len(ha)) < 0.7
    ev.k_hh = np.concatenate([broke, hh])
    ev.k_day = np.concatenate([day_b, day])
    ev.k_old = np.concatenate([old_b, old])
    ev.k_new = np.concatenate([np.full(len(broke), codes.K_ABSENT), new])
    ev.k_cause = np.concatenate([np.ones(len(broke), dtype=np.int64), np.where(arranged, 2, 0)])


def _absent_days(tl: Timeline, onset: IntArray, day: IntArray, kind: IntArray) -> IntArray:
    """School days missed by ``day``: the return day itself is not missed."""
    end = np.where(kind == codes.SE_RETURNED, day, day + 1)
    return tl.school_days_between(onset, end)


def _collect_school_events(
    ev: MonthEvents,
    book: EpisodeBook,
    pop: Population,
    tl: Timeline,
    active: IntArray,
    hi: IntArray,
    ms: int,
    me: int,
) -> None:
    days = book.days[active]
    inside = (days >= ms) & (days <= me) & (days < hi[:, None]) & book.recorded[active][:, None]
    rows, cols = np.nonzero(inside)
    child = active[rows]
    day = days[rows, cols]
    kind = np.asarray(EPISODE_EVENTS)[cols]
    ev.school_child = np.concatenate([ev.school_child, child])
    ev.school_kind = np.concatenate([ev.school_kind, kind])
    ev.school_day = np.concatenate([ev.school_day, day])
    ev.school_absent = np.concatenate(
        [ev.school_absent, _absent_days(tl, pop.c_onset[child], day, kind)]
    )


def _start_episodes(
    ev: MonthEvents,
    book: EpisodeBook,
    pop: Population,
    tl: Timeline,
    child: IntArray,
    onset: IntArray,
    rng: np.random.Generator,
    ms: int,
    me: int,
) -> None:
    if len(child) == 0:
        return
    # the previous episode is kept so this month's absence report still sees it
    book.prev_onset[child] = pop.c_onset[child]
    book.prev_return[child] = pop.c_return[child]
    age = np.floor((onset - pop.c_birth[child]) / YEAR)
    u = rng.random(len(child))
    never_share = np.where(age >= 14, params.EPISODE_NEVER[1], params.EPISODE_NEVER[0])
    short, medium = params.EPISODE_SHORT, params.EPISODE_SHORT + params.EPISODE_MEDIUM
    span = np.select(
        [u < short, u < medium, u < 1.0 - never_share],
        [
            rng.integers(6, 15, len(child)),
            rng.integers(15, 31, len(child)),
            rng.integers(31, 101, len(child)),
        ],
        default=-1,
    )
    ret = np.where(span > 0, tl.nth_school_day(onset, np.maximum(span, 1) + 1), NEVER)
    pop.c_onset[child] = onset
    pop.c_return[child] = ret
    pop.c_drop_recorded[child] = False
    suspected = tl.nth_school_day(onset, np.full(len(child), 6))
    persuasion = suspected + rng.integers(1, 7, len(child))
    day15 = tl.nth_school_day(onset, np.full(len(child), 15))
    report = np.where(ret > day15, day15 + rng.integers(0, 4, len(child)), NEVER)
    day22 = tl.nth_school_day(onset, np.full(len(child), 22))
    dropout = np.where(ret > day22, day22, NEVER)
    returned = np.where(ret < NEVER, ret, NEVER)
    schedule = np.stack([suspected, persuasion, report, dropout, returned], axis=1)
    schedule = np.where(schedule > tl.last_day, NEVER, schedule)
    book.days[child] = schedule
    book.recorded[child] = rng.random(len(child)) < 0.92
    inside = (schedule >= ms) & (schedule <= me) & book.recorded[child][:, None]
    inside &= schedule < pop.c_exit[child][:, None]
    rows, cols = np.nonzero(inside)
    kind = np.asarray(EPISODE_EVENTS)[cols]
    day = schedule[rows, cols]
    ev.school_child = np.concatenate([ev.school_child, child[rows]])
    ev.school_kind = np.concatenate([ev.school_kind, kind])
    ev.school_day = np.concatenate([ev.school_day, day])
    ev.school_absent = np.concatenate([ev.school_absent, _absent_days(tl, onset[rows], day, kind)])


def _initial_engagement(
    pop: Population,
    joining: IntArray,
    month: Month,
    areas: Areas,
    tl: Timeline,
    rng: np.random.Generator,
) -> None:
    """School engagement of children joining the registry, from the chain's stationary share.

    A pupil already drifting when the file opens is as likely as later on: drawing the
    first state from ``p / (p + settle)`` (``p`` the pupil's monthly drift probability) keeps
    the share of drifting pupils level through the run instead of climbing from zero over the
    first year, which would make the first months' data unlike the later ones.
    """
    if len(joining) == 0:
        return
    cov = covariates(pop, joining, month, areas, tl)
    hh = pop.c_hh[joining]
    p_drift = drift_probability(cov, pop.hh_k[hh], pop.hh_poverty[hh])
    stationary = p_drift / (p_drift + params.E_SETTLE)
    drifting = cov.compulsory & (rng.random(len(joining)) < stationary)
    pop.c_e[joining] = np.where(drifting, DRIFTING, ENGAGED)


def _engagement(
    pop: Population,
    active: IntArray,
    cov: Covariates,
    k_now: IntArray,
    ms: int,
    me: int,
    rng: np.random.Generator,
) -> None:
    in_school = cov.compulsory & ~out_at(pop, active, me)
    e = pop.c_e[active]
    p_drift = drift_probability(cov, k_now, cov.poverty)
    u = rng.random(len(active))
    nxt = np.where(
        e == ENGAGED,
        np.where(u < p_drift, DRIFTING, ENGAGED),
        np.where(u < params.E_SETTLE, ENGAGED, DRIFTING),
    )
    # back from an episode this month: drifting, whatever came before
    returned = (pop.c_return[active] >= ms) & (pop.c_return[active] <= me)
    nxt = np.where(returned & ~out_at(pop, active, me), DRIFTING, nxt)
    pop.c_e[active] = np.where(in_school, nxt, e)


def _household_drift(
    ev: MonthEvents, pop: Population, hh: IntArray, month: Month, rng: np.random.Generator
) -> None:
    ms, me = month.start_day, month.end_day
    n = len(hh)
    # A Metropolis step: propose one step up or down, accept by the ratio of the target shares,
    # so the contact shares stay where the statistics put them.
    shares = np.asarray(params.CONTACT_SHARES)
    current = pop.hh_contact[hh]
    proposed = current + np.where(rng.random(n) < 0.5, -1, 1)
    inside = (proposed >= 0) & (proposed < len(shares))
    target = np.clip(proposed, 0, len(shares) - 1)
    accept = np.minimum(1.0, shares[target] / shares[current])
    change = (rng.random(n) < params.CONTACT_DRIFT) & inside & (rng.random(n) < accept)
    moved = hh[change]
    pop.hh_contact[moved] = target[change]
    ev.contact_hh = moved
    ev.contact_day = rng.integers(ms, me + 1, len(moved))
    # minimum-income support is granted to the hard-up and lost when things improve
    pov = pop.hh_poverty[hh]
    gain = (pov == codes.POV_NONE) & (
        rng.random(n) < params.POVERTY_GAIN * np.exp(pop.hh_hardship[hh])
    )
    lose = (pov == codes.DIBAO) & (rng.random(n) < params.POVERTY_LOSS)
    up = (pov == codes.DIBAO) & (rng.random(n) < params.POVERTY_UP)
    new = np.where(
        gain, codes.DIBAO, np.where(lose, codes.POV_NONE, np.where(up, codes.TEKUN, pov))
    )
    changed = hh[new != pov]
    pop.hh_poverty[changed] = new[new != pov]
    ev.poverty_hh = changed
    ev.poverty_day = rng.integers(ms, me + 1, len(changed))
    # parents working nearby drop in often; others rarely outside the Spring Festival
    visit_p = np.asarray(params.PARENT_DROP_IN)[pop.hh_contact[hh]]
    visit = rng.random(n) < visit_p
    day = ms + rng.integers(0, 14, n)
    record_parent_visit(pop, hh[visit], day[visit])


__all__ = [
    "EPISODE_EVENTS",
    "EpisodeBook",
    "MonthEvents",
    "age_on",
    "birthday16",
    "covariates",
    "drift_probability",
    "exit_probability",
    "home_fraction",
    "k_transitions",
    "out_at",
    "sorted_unique",
    "step",
    "stress_mean",
]
