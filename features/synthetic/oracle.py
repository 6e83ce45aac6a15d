"""The oracle: each child's true probability of an outcome in the next 90 days.

At a month end ``D`` the generator's state fixes next month's intensities up to the unrecorded
shocks. The oracle computes ``P(outcome in (D, D+90] | state at D)`` for each domain and for
any domain:

1. **Deterministic parts** of the coming months are used exactly: age, school calendar and
   term starts, grade changes in September, drowning season, winter, the 16th birthday, an
   episode's known return day, and whether parents already decided to come home for the
   Spring Festival (else the probability they do).
2. **Discrete chains** (guardianship capacity K, school engagement E) are integrated with the
   forward algorithm: ``α_{k+1}(s') = Σ_s α_k(s)·exp(-Λ_k(s))·T_k(s, s')``, so the chance of
   no event is exact for the chains given the expected intensities.
3. **Gaussian parts** (the AR(1) stress path after next month, the monthly shocks) enter
   through their log-normal means ``E[exp(a·x + ε)] = exp(a·m + a²v/2 + s²/2)``; the
   remaining Jensen gap ``E[exp(-H)] ≥ exp(-E[H])`` is closed by matching the integrated
   hazard ``H`` to a gamma distribution with the same mean and variance (the variance from
   the log-normal covariances of stress and shocks).
4. **Exits** (parents back for good, moving away) are integrated as a survival factor with an
   exit mid-month on average.

Approximations, checked by :func:`monte_carlo` (see ``docs/synthetic-population.md``): the
chain's own randomness is not in the gamma variance; the stress jump after an event, contact
and poverty changes during the window and the Spring Festival decision's sharing across two
months are ignored; per-domain probabilities include a breakdown cascading into absent
guardianship, but no other cascade.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from features.synthetic import codes, params
from features.synthetic.areas import Areas
from features.synthetic.dynamics import (
    EpisodeBook,
    birthday16,
    covariates,
    drift_probability,
    exit_probability,
    k_transitions,
    step,
    stress_mean,
)
from features.synthetic.hazards import (
    COMPONENTS,
    DOMAIN_COMPONENTS,
    DOMAINS,
    alone_extra,
    base_log_intensity,
    state_effects,
)
from features.synthetic.population import YEAR, Population
from features.synthetic.timeline import Timeline

FloatArray = npt.NDArray[np.float64]
F32Array = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

WINDOW_DAYS = 90
HORIZON = 4  # calendar months a 90-day window can touch


@dataclass
class OracleResult:
    """True 90-day probabilities for the children registered at a month end."""

    children: IntArray
    p: dict[str, FloatArray]  # by domain, plus "any"


def _gamma_log_ratio(mu: FloatArray, var: FloatArray) -> FloatArray:
    """``log(E[exp(-H)] / exp(-E[H]))`` for a gamma-distributed ``H`` with mean ``mu`` and
    variance ``var`` (zero when ``H`` is not random)."""
    safe = (mu > 1e-12) & (var > 1e-14)
    mu_s = np.where(safe, mu, 1.0)
    var_s = np.where(safe, var, 1.0)
    log_laplace = -(mu_s**2 / var_s) * np.log1p(var_s / mu_s)
    return np.where(safe, log_laplace + mu_s, 0.0)


def _stress_covariance(months: int) -> FloatArray:
    """Covariance of stress in horizon months ``0..months-1`` given month 0 is known."""
    rho = params.STRESS_RHO
    var_e = params.STRESS_SD**2 * (1.0 - rho**2)
    cov = np.zeros((months, months))
    for j in range(months):
        for k in range(months):
            cov[j, k] = sum(
                var_e * rho ** (j - i) * rho ** (k - i) for i in range(1, min(j, k) + 1)
            )
    return cov


def oracle(pop: Population, book: EpisodeBook, tl: Timeline, areas: Areas, m: int) -> OracleResult:
    """True probabilities at the end of month ``m`` (after :func:`step` for month ``m``)."""
    del book  # the episode schedule is already in the population's onset/return days
    d_day = tl.months[m].end_day
    idx = np.flatnonzero(pop.c_active)
    n = len(idx)
    hh = pop.c_hh[idx]
    fk, ge = state_effects()
    np.asarray([c.domain == "dropout" for c in COMPONENTS])
    months = [tl.months[m + 1 + j] for j in range(HORIZON) if m + 1 + j < len(tl.months)]
    n_dom = len(DOMAINS)
    b16 = birthday16(pop.c_birth[idx])
    onset, ret = pop.c_onset[idx], pop.c_return[idx]
    x1 = pop.c_x[idx]
    mu_x = stress_mean(pop, idx)
    rho = params.STRESS_RHO
    var_e = params.STRESS_SD**2 * (1.0 - rho**2)

    k0 = pop.hh_k[hh]
    e0 = pop.c_e[idx]
    # Forward weights of the no-event path (p_any) and the plain state distribution with
    # breakdowns cascading into absent guardianship (per-domain expectations). States first,
    # children last: every update is then a handful of long vector operations.
    alpha_any = np.zeros((2, 4, n), dtype=np.float32)
    alpha_any[e0, k0, np.arange(n)] = 1.0
    alpha_dom = [alpha_any.copy() for _ in DOMAINS]
    survive = np.ones(n)
    mean_any = np.zeros((n_dom, len(months), n))
    mean_dom = np.zeros((n_dom, len(months), n))
    b_index = DOMAINS.index("breakdown")
    # state weights exp(fK + gE) per component, for engaged, drifting and out of school
    state_w = np.exp(fk[:, None, :] + ge[:, :, None]).reshape(len(COMPONENTS), 12)
    state_w32 = state_w.astype(np.float32)

    for j, mo in enumerate(months):
        lo = mo.start_day
        hi_win = min(mo.end_day + 1, d_day + WINDOW_DAYS + 1)
        if hi_win <= lo:
            break
        hi = np.minimum(hi_win, b16)
        cov = covariates(pop, idx, mo, areas, tl)
        base = base_log_intensity(cov, mo)
        expo_u = tl.weight_between("uniform", np.full(n, lo), hi)
        drop_lo = np.where(ret > lo, ret, lo)
        expo_d = tl.weight_between("dropout", drop_lo, hi)
        back, moved = exit_probability(pop.hh_contact[hh], mo)
        q = back + moved
        exposure_factor = survive * (1.0 - q / 2.0)
        out_now = (onset < lo) & (ret > lo)
        m_j = mu_x + rho**j * (x1 - mu_x)
        v_j = var_e * sum(rho ** (2 * i) for i in range(j))
        alone = np.exp(alone_extra(cov.boarding)).astype(np.float32)
        decided = pop.hh_sf_year[hh] == mo.sf_year
        q_home = np.asarray(params.SF_RETURN)[pop.hh_contact[hh]]
        home_p = np.where(decided, pop.hh_sf_home[hh].astype(np.float64), q_home)

        lam = np.empty((n_dom, 2, 4, n), dtype=np.float32)
        for di, domain in enumerate(DOMAINS):
            comps = list(DOMAIN_COMPONENTS[domain])
            load = params.STRESS_LOADING[domain]
            factor = np.exp(load * m_j + load**2 * v_j / 2.0 + params.SHOCK_SD[domain] ** 2 / 2.0)
            if mo.sf_year:
                frac = mo.sf_home_fraction
                factor = factor * (
                    home_p * np.exp(params.HOME_EFFECT[domain] * frac) + 1.0 - home_p
                )
            expo = expo_d if domain == "dropout" else expo_u
            factor = factor * expo * exposure_factor
            rates = np.exp(base[comps]).astype(np.float32)
            by_state = (state_w32[comps].T @ rates).reshape(3, 4, n)
            if domain == "dropout":
                # out of school: exposure starts at the return day, effect as drifting
                by_state = by_state[:2]
            else:
                by_state = np.where(out_now[None, None, :], by_state[2][None], by_state[:2])
            by_state[:, codes.K_ABSENT, :] *= alone
            np.multiply(by_state, factor.astype(np.float32), out=lam[di])

        weights = alpha_any / np.maximum(alpha_any.sum(axis=(0, 1)), 1e-30)
        mean_any[:, j, :] = (lam * weights[None]).sum(axis=(1, 2))
        alpha_any = alpha_any * np.exp(-lam.sum(axis=0))
        for di in range(n_dom):
            w_d = alpha_dom[di] / np.maximum(alpha_dom[di].sum(axis=(0, 1)), 1e-30)
            mean_dom[di, j, :] = (lam[di] * w_d).sum(axis=(0, 1))
            alpha_dom[di] = alpha_dom[di] * np.exp(-lam[di])
        survive = survive * (1.0 - q)

        if j + 1 < len(months):
            t_k = k_transitions(
                pop.hh_relation[hh],
                (mo.start_day + 15 - pop.hh_cg_birth[hh]) / YEAR,
                pop.hh_hardship[hh],
                mo,
            ).astype(np.float32)
            p_drift = np.stack(
                [drift_probability(cov, np.full(n, k), cov.poverty) for k in range(4)]
            ).astype(np.float32)  # (4, n)
            out_end = (onset <= mo.end_day) & (ret > mo.end_day)
            back_now = (ret >= mo.start_day) & (ret <= mo.end_day)
            frozen = ~cov.compulsory | out_end
            p_break = -np.expm1(-lam[b_index, 0])  # (4, n)
            t_cascade = _with_cascade(t_k, p_break)
            alpha_any = _transition(alpha_any, t_k, p_drift, frozen, back_now)
            for di in range(n_dom):
                # other domains' paths go on after a breakdown: guardianship is then absent
                cascade = t_k if di == b_index else t_cascade
                alpha_dom[di] = _transition(alpha_dom[di], cascade, p_drift, frozen, back_now)

    ex = np.exp
    cov_x = _stress_covariance(len(months))
    loads = np.asarray([params.STRESS_LOADING[d] for d in DOMAINS])
    shocks = np.asarray([params.SHOCK_SD[d] ** 2 for d in DOMAINS])
    size = n_dom * len(months)
    expo_m = np.zeros((size, size))
    for a in range(size):
        for b in range(size):
            da, ja = divmod(a, len(months))
            db, jb = divmod(b, len(months))
            expo_m[a, b] = loads[da] * loads[db] * cov_x[ja, jb] + (
                shocks[da] if (da == db and ja == jb) else 0.0
            )
    kernel = ex(expo_m) - 1.0
    flat = mean_any.reshape(size, n)
    p: dict[str, FloatArray] = {}
    no_any = _no_event(alpha_any, flat, kernel)
    flat_d = mean_dom.reshape(size, n)
    for di, domain in enumerate(DOMAINS):
        sl = slice(di * len(months), (di + 1) * len(months))
        p[domain] = 1.0 - _no_event(alpha_dom[di], flat_d[sl], kernel[sl, sl])
    p_any = 1.0 - no_any
    # Fréchet bounds: the approximations may not hold them exactly for extreme children
    by_domain = np.stack([p[d] for d in DOMAINS])
    p["any"] = np.clip(p_any, by_domain.max(axis=0), np.minimum(by_domain.sum(axis=0), 1.0))
    return OracleResult(children=idx, p=p)


def _no_event(alpha: F32Array, means: FloatArray, kernel: FloatArray) -> FloatArray:
    """Probability of no event: the forward weights' total, with the Jensen gap of the
    Gaussian parts closed by a gamma matched to the integrated hazard's mean and variance.

    The gamma is centred on the forward algorithm's effective hazard ``-log Σα`` (which
    already averages over the chains' paths) and keeps the coefficient of variation of the
    hazard given by the log-normal terms, so the correction stays a correction.
    """
    with np.errstate(divide="ignore"):
        log_forward = np.log(alpha.sum(axis=(0, 1)).astype(np.float64))
    mu = means.sum(axis=0)
    var = ((kernel @ means) * means).sum(axis=0)
    effective = -log_forward
    finite = np.isfinite(effective) & (mu > 1e-12)
    scale = np.where(finite, effective / np.where(mu > 1e-12, mu, 1.0), 0.0)
    eff_mu = np.where(finite, effective, 0.0)
    log_ratio = _gamma_log_ratio(eff_mu, var * scale**2)
    out: FloatArray = np.exp(np.minimum(log_forward + log_ratio, 0.0))
    return out


def _with_cascade(t_k: F32Array, p_break: F32Array) -> F32Array:
    """Capacity transitions when a breakdown (probability ``p_break`` by state) also moves a
    household to absent guardianship."""
    out = t_k.copy()
    for i in range(codes.K_ABSENT):
        out[i] *= 1.0 - p_break[i]
        out[i, codes.K_ABSENT] += p_break[i]
    return out


def _transition(
    alpha: F32Array,
    t_k: F32Array,
    p_drift: F32Array,
    frozen: npt.NDArray[np.bool_],
    back_now: npt.NDArray[np.bool_],
) -> F32Array:
    """One month of the (E, K) chain applied to weights ``alpha`` of shape (2, 4, n).

    ``t_k`` is (4, 4, n) (from, to, child) and ``p_drift`` (4, n). Engagement moves first,
    given the capacity at the start of the month, as in the dynamics.
    """
    engaged, drifting = alpha[0], alpha[1]
    flow = engaged * p_drift - drifting * np.float32(params.E_SETTLE)
    keep = frozen | back_now
    new_engaged = np.where(keep, engaged, engaged - flow)
    new_drifting = np.where(keep, drifting, drifting + flow)
    # an episode that ended this month leaves the pupil drifting
    new_drifting = np.where(back_now, engaged + drifting, new_drifting)
    new_engaged = np.where(back_now, np.float32(0.0), new_engaged)
    moved = np.stack([new_engaged, new_drifting])
    out: F32Array = np.einsum("ein,ijn->ejn", moved, t_k)
    return out


def monte_carlo(
    pop: Population,
    book: EpisodeBook,
    tl: Timeline,
    areas: Areas,
    m: int,
    children: IntArray,
    reps: int,
    rng: np.random.Generator,
) -> dict[str, FloatArray]:
    """Frequency of each outcome in the 90 days after month ``m`` over ``reps`` simulated
    futures of ``children`` (run with the generator's own :func:`step`)."""
    sub = pop.subset(children, reps)
    rep_idx = np.repeat(np.asarray(children, dtype=np.int64), reps)
    sub_book = EpisodeBook(
        days=book.days[rep_idx].copy(),
        recorded=book.recorded[rep_idx].copy(),
        prev_onset=book.prev_onset[rep_idx].copy(),
        prev_return=book.prev_return[rep_idx].copy(),
    )
    d_day = tl.months[m].end_day
    hit = {d: np.zeros(len(rep_idx), dtype=bool) for d in (*DOMAINS, "any")}
    comp_domain = np.asarray([DOMAINS.index(c.domain) for c in COMPONENTS])
    for j in range(HORIZON):
        if m + 1 + j >= len(tl.months) or tl.months[m + 1 + j].start_day > d_day + WINDOW_DAYS:
            break
        ev = step(sub, sub_book, tl, areas, m + 1 + j, rng)
        inside = ev.out_day <= d_day + WINDOW_DAYS
        for di, domain in enumerate(DOMAINS):
            sel = inside & (comp_domain[ev.out_component] == di)
            hit[domain][ev.out_child[sel]] = True
            hit["any"][ev.out_child[sel]] = True
    return {d: v.reshape(len(children), reps).mean(axis=1) for d, v in hit.items()}


__all__ = ["WINDOW_DAYS", "OracleResult", "monte_carlo", "oracle"]
