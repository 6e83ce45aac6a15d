"""Households and children: who they are, and their state when they join the registry.

Every child the run will ever register is created up front (the population on the first day,
the monthly new registrations, a scenario's newcomers), each with the day they join; the
dynamics switch them on when that day comes. Arrays hold one value per household (``hh_``) or
per child (``c_``); siblings share their household's guardianship, contact, poverty and
village.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from features.calendar import SPRING_FESTIVAL
from features.synthetic import codes, params
from features.synthetic.areas import CHILDREN_PER_VILLAGE, Areas
from features.synthetic.identity import identity_numbers, names, surnames
from features.synthetic.timeline import SF_ARRIVE_BEFORE, Timeline, to_day

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.str_]

#: A day after every date the generator uses: "never".
NEVER = 10**6
NA_DAY = -(10**6)
YEAR = 365.25


@dataclass
class Population:
    """Every household and child, static attributes and mutable state."""

    # households
    hh_village: IntArray
    hh_no: StrArray
    hh_ethnic: IntArray
    hh_lbt: IntArray
    hh_relation: IntArray
    hh_cg_birth: FloatArray  # caregiver's birth day (NaN when there is none)
    hh_cg_health: IntArray
    hh_adult_woman: BoolArray
    hh_agreement: BoolArray
    hh_k: IntArray
    hh_k_since: IntArray
    hh_k_known: IntArray  # capacity as the village last recorded it
    hh_contact: IntArray
    hh_poverty: IntArray
    hh_hardship: FloatArray
    hh_water: BoolArray
    hh_hazards: IntArray  # bit mask over the HAZARD codes
    hh_parent_visit: IntArray  # last day a parent was home (NA_DAY if never)
    hh_parent_prev: IntArray  # the visit before that, for rows dated before the last one
    hh_sf_year: IntArray  # Spring Festival year whose return is decided
    hh_sf_home: BoolArray
    hh_entry: IntArray
    hh_reg_date: IntArray
    hh_exit: IntArray
    hh_exit_reason: IntArray
    hh_group: IntArray  # 0 first-day population, 1 new registration, 2 new township
    # children
    c_hh: IntArray
    c_male: BoolArray
    c_birth: IntArray
    c_ethnic: IntArray
    c_hukou: IntArray
    c_disability: BoolArray
    c_illness: BoolArray
    c_zc: FloatArray
    c_zh: FloatArray
    c_zd: FloatArray
    c_zm: FloatArray
    c_ability: FloatArray
    c_mu_x: FloatArray  # mean stress, except the part that follows parent contact
    c_x: FloatArray
    c_grade_ref: IntArray  # grade in the school year containing the first day
    c_kindergarten: BoolArray
    c_will_enrol: BoolArray
    c_senior_high: BoolArray
    c_board_primary: BoolArray
    c_board_middle: BoolArray
    c_entry: IntArray
    c_reg_date: IntArray
    c_exit: IntArray
    c_exit_reason: IntArray
    c_active: BoolArray
    c_e: IntArray
    c_onset: IntArray
    c_return: IntArray
    c_drop_recorded: BoolArray  # enrolment already shows dropped_out for the current episode
    c_reg_rec: IntArray  # day the first registry row was entered
    c_reg_school: IntArray  # school the registry shows (may be out of date)
    c_reg_poverty: IntArray
    c_reg_lbt: IntArray
    c_last_visit: IntArray
    c_last_alert: IntArray  # last recorded incident or known problem (draws extra visits)
    c_last_injury: IntArray
    c_id: StrArray
    c_name: StrArray
    c_group: IntArray

    @property
    def n_children(self) -> int:
        """Number of children ever created."""
        return len(self.c_hh)

    @property
    def n_households(self) -> int:
        """Number of households ever created."""
        return len(self.hh_village)

    def subset(self, children: IntArray, reps: int) -> Population:
        """A copy holding ``reps`` replicas of ``children``, each in a household of its own.

        Used to simulate many futures of the same children (the oracle's Monte Carlo check):
        per-child outcome probabilities do not depend on siblings, so giving each replica
        its own copy of its household keeps every marginal the same.
        """
        idx = np.repeat(np.asarray(children, dtype=np.int64), reps)
        hh = self.c_hh[idx]
        values: dict[str, npt.NDArray[np.generic]] = {}
        for f in fields(self):
            arr = getattr(self, f.name)
            if f.name.startswith("hh_"):
                values[f.name] = arr[hh].copy()
            else:
                values[f.name] = arr[idx].copy()
        values["c_hh"] = np.arange(len(idx), dtype=np.int64)
        return Population(**values)  # type: ignore[arg-type]


def school_year_of(day: IntArray | int) -> IntArray:
    """The school year (the calendar year its autumn term starts) a day belongs to."""
    d = np.asarray(day, dtype="datetime64[D]")
    year = d.astype("datetime64[Y]").astype(np.int64) + 1970
    month = (d.astype("datetime64[M]").astype(np.int64) % 12) + 1
    return np.where(month >= 9, year, year - 1)


def _age_years(rng: np.random.Generator, n: int) -> FloatArray:
    """Ages in years (fractional) following the 2018 age bands."""
    ages = np.arange(16)
    probs = np.zeros(16)
    for lo, hi, share in params.AGE_BAND_SHARES:
        probs[lo : hi + 1] = share / (hi - lo + 1)
    whole = rng.choice(ages, size=n, p=probs / probs.sum())
    return whole + rng.random(n)


def _household_sizes(rng: np.random.Generator, n: int) -> IntArray:
    shares = np.asarray(params.HOUSEHOLD_SIZE_SHARES)
    return rng.choice(np.arange(1, len(shares) + 1), size=n, p=shares / shares.sum())


@dataclass
class _Draft:
    """Households to create: village, entry day, children per household, group."""

    village: IntArray
    entry: IntArray
    size: IntArray
    group: IntArray


def _first_day_households(
    n_children: int, areas: Areas, tl: Timeline, rng: np.random.Generator
) -> _Draft:
    size = _household_sizes(rng, n_children)
    cum = np.cumsum(size)
    keep = int(np.searchsorted(cum, n_children, side="left")) + 1
    size = size[:keep].copy()
    size[-1] -= int(size.sum()) - n_children
    size = size[size > 0]
    old = np.flatnonzero(~areas.township_new[areas.village_township])
    weight = rng.gamma(6.0, 1.0, len(old))
    village = old[rng.choice(len(old), size=len(size), p=weight / weight.sum())]
    entry = np.full(len(size), tl.first_day - 1, dtype=np.int64)
    return _Draft(village, entry, size.astype(np.int64), np.zeros(len(size), dtype=np.int64))


def _entrant_households(
    n_children: int,
    areas: Areas,
    tl: Timeline,
    months: int,
    county_factor: FloatArray,
    rng: np.random.Generator,
) -> _Draft:
    """New registrations month by month; ``county_factor`` is (months, counties)."""
    old = np.flatnonzero(~areas.township_new[areas.village_township])
    share = np.full(len(old), 1.0 / len(old))
    mean_size = float(np.dot(np.arange(1, 5), params.HOUSEHOLD_SIZE_SHARES))
    villages: list[IntArray] = []
    entries: list[IntArray] = []
    for m in range(1, months):
        month = tl.months[m]
        factor = params.ENTRY_AFTER_SF_FACTOR if month.after_sf else 1.0
        lam = params.ENTRY_RATE * n_children / mean_size * factor * share
        lam = lam * county_factor[m][areas.village_county[old]]
        counts = rng.poisson(lam)
        v = np.repeat(old, counts)
        villages.append(v)
        entries.append(rng.integers(month.start_day, month.end_day + 1, len(v)))
    village = np.concatenate(villages) if villages else np.zeros(0, dtype=np.int64)
    entry = np.concatenate(entries) if entries else np.zeros(0, dtype=np.int64)
    size = _household_sizes(rng, len(village))
    return _Draft(village, entry, size, np.ones(len(village), dtype=np.int64))


def _new_township_households(areas: Areas, join_day: int, rng: np.random.Generator) -> _Draft:
    new = np.flatnonzero(areas.township_new[areas.village_township])
    if len(new) == 0:
        return _Draft(*(np.zeros(0, dtype=np.int64) for _ in range(4)))
    mean_size = float(np.dot(np.arange(1, 5), params.HOUSEHOLD_SIZE_SHARES))
    n_hh = round(len(new) * CHILDREN_PER_VILLAGE / mean_size)
    village = new[rng.integers(0, len(new), n_hh)]
    # the township's whole file arrives over the first fortnight after it joins
    entry = join_day + rng.integers(0, 14, n_hh)
    size = _household_sizes(rng, n_hh)
    return _Draft(village, entry, size, np.full(n_hh, 2, dtype=np.int64))


def build_population(
    n_children: int,
    areas: Areas,
    tl: Timeline,
    rng: np.random.Generator,
    entrants_rng: np.random.Generator,
    county_entry_factor: FloatArray,
    new_township_day: int | None,
) -> Population:
    """Create every household and child of the run.

    Parameters
    ----------
    n_children
        Registered children on the first day.
    county_entry_factor
        Multiplier of new registrations per (month, county) (a migration shock raises it).
    new_township_day
        Day the new township joins, or ``None`` when the scenario has none.
    """
    drafts = [
        _first_day_households(n_children, areas, tl, rng),
        _entrant_households(
            n_children, areas, tl, tl.n_period_months, county_entry_factor, entrants_rng
        ),
    ]
    if new_township_day is not None:
        drafts.append(_new_township_households(areas, new_township_day, entrants_rng))
    village = np.concatenate([d.village for d in drafts])
    entry = np.concatenate([d.entry for d in drafts])
    size = np.concatenate([d.size for d in drafts])
    group = np.concatenate([d.group for d in drafts])
    return _populate(village, entry, size, group, areas, tl, rng)


def _populate(
    village: IntArray,
    entry: IntArray,
    size: IntArray,
    group: IntArray,
    areas: Areas,
    tl: Timeline,
    rng: np.random.Generator,
) -> Population:
    n_h = len(village)
    county = areas.village_county[village]
    minority = areas.county_minority[county]
    # -- household attributes -------------------------------------------------------------
    ethnic = np.where(
        minority,
        rng.choice(5, n_h, p=params.ETHNICITY_MINORITY_COUNTY),
        rng.choice(5, n_h, p=params.ETHNICITY_OTHER_COUNTY),
    )
    hardship = rng.normal(0.0, 1.0, n_h) + 0.3 * minority
    shares = params.CAREGIVER_SHARES
    rel_codes = np.array([codes.GRANDPARENT, codes.RELATIVE, codes.PARENT, codes.NOBODY])
    relation = rel_codes[
        rng.choice(
            4, n_h, p=[shares["grandparent"], shares["relative"], shares["parent"], shares["none"]]
        )
    ]
    lbt = np.where(relation == codes.PARENT, codes.ONE_AWAY_INCAPABLE, codes.BOTH_AWAY)
    # capacity: the 2016 screening's "poor guardianship" among grandparents and relatives
    u = rng.random(n_h)
    carer_poor = params.POOR_GUARDIANSHIP_SHARE / (shares["grandparent"] + shares["relative"])
    k = np.full(n_h, codes.K_NORMAL)
    family = (relation == codes.GRANDPARENT) | (relation == codes.RELATIVE)
    k[family & (u < carer_poor * params.POOR_IMPROPER_PART)] = codes.K_IMPROPER
    k[family & (u >= carer_poor * params.POOR_IMPROPER_PART) & (u < carer_poor)] = (
        codes.K_INSUFFICIENT
    )
    parent = relation == codes.PARENT
    k[parent] = rng.choice(
        [codes.K_NORMAL, codes.K_INSUFFICIENT, codes.K_IMPROPER], parent.sum(), p=[0.15, 0.75, 0.10]
    )
    k[relation == codes.NOBODY] = codes.K_ABSENT

    def _ages(key: str) -> FloatArray:
        mean, sd, low, high = params.CAREGIVER_AGE[key]
        return np.clip(rng.normal(mean, sd, n_h), low, high)

    cg_age = np.select(
        [relation == codes.GRANDPARENT, relation == codes.RELATIVE, relation == codes.PARENT],
        [_ages("grandparent"), _ages("relative"), _ages("parent")],
        default=np.nan,
    )
    cg_birth = entry - cg_age * YEAR
    health = caregiver_health(k, rng)
    adult_woman = np.select(
        [relation == codes.GRANDPARENT, relation == codes.RELATIVE, relation == codes.PARENT],
        [rng.random(n_h) < 0.85, rng.random(n_h) < 0.75, rng.random(n_h) < 0.5],
        default=False,
    )
    contact = rng.choice(5, n_h, p=params.CONTACT_SHARES)
    # minimum-income and extreme-poverty support go to the hardest-up families
    score = hardship + rng.normal(0.0, 0.5, n_h) + 0.8 * (relation == codes.NOBODY) + 0.5 * parent
    cut_dibao = np.quantile(score, 1.0 - params.SHARE_DIBAO - params.SHARE_TEKUN)
    cut_tekun = np.quantile(score, 1.0 - params.SHARE_TEKUN)
    poverty = np.where(
        score >= cut_tekun, codes.TEKUN, np.where(score >= cut_dibao, codes.DIBAO, codes.POV_NONE)
    )
    water = areas.village_water[village] & (rng.random(n_h) < 0.7)

    def _bit(flag: BoolArray, code: int) -> IntArray:
        return flag.astype(np.int64) << code

    hazards = (
        _bit(water, codes.HAZ_WATER)
        | _bit(rng.random(n_h) < 0.12, codes.HAZ_ELECTRICITY)
        | _bit(rng.random(n_h) < 0.06, codes.HAZ_FIRE)
        | _bit(rng.random(n_h) < 0.08 + 0.05 * (hardship > 1), codes.HAZ_BUILDING)
        | _bit(rng.random(n_h) < 0.15, codes.HAZ_TRAFFIC)
    )
    hh_reg = np.where(group == 0, tl.first_day - rng.integers(30, 6 * 365, n_h), entry)
    k_since = np.where(
        group == 0, np.maximum(hh_reg, tl.first_day - rng.integers(20, 4 * 365, n_h)), entry
    )
    parent_visit = last_parent_visit(entry, contact, group, rng)
    village_serial = np.zeros(n_h, dtype=np.int64)
    order = np.lexsort((np.arange(n_h), village))
    sv = village[order]
    first = np.r_[True, sv[1:] != sv[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(n_h), 0))
    village_serial[order] = np.arange(n_h) - start + 1
    hh_no = np.char.add(
        areas.village_code[village].astype("U12"), np.char.zfill(village_serial.astype("U4"), 4)
    )

    # -- children ---------------------------------------------------------------------------
    c_hh = np.repeat(np.arange(n_h), size)
    n = len(c_hh)
    male = rng.random(n) < params.SHARE_BOYS
    age = _age_years(rng, n)
    c_entry = entry[c_hh]
    ref = np.where(group[c_hh] == 0, tl.first_day, c_entry)
    birth = (ref - np.maximum(age * YEAR, 20)).astype(np.int64)
    ethnic_c = ethnic[c_hh]
    hukou = np.where(rng.random(n_h) < params.SHARE_URBAN_HUKOU, codes.URBAN, codes.RURAL)[c_hh]
    hukou = np.where(rng.random(n) < params.SHARE_NO_HUKOU, codes.NO_HUKOU, hukou)
    disability = rng.random(n) < params.SHARE_DISABLED
    illness = rng.random(n) < params.SHARE_SERIOUSLY_ILL
    zc, zh, zd, zm = (rng.normal(0.0, 1.0, n) for _ in range(4))
    ability = -0.3 * zd + rng.normal(0.0, 0.95, n)
    low_contact = np.isin(contact[c_hh], [codes.YEARLY, codes.NEVER])
    # the contact part of the mean is added by the dynamics, since contact can change
    mu_x = (
        params.STRESS_MEAN_MENTAL * zm
        + params.STRESS_MEAN_INCAPABLE_PARENT * (lbt[c_hh] == codes.ONE_AWAY_INCAPABLE)
        + params.STRESS_MEAN_DISABILITY * disability
    )
    x = mu_x + params.STRESS_MEAN_LOW_CONTACT * low_contact + rng.normal(0.0, params.STRESS_SD, n)
    first_sept = int(np.datetime64(f"{school_year_of(tl.first_day)}-09-01").astype(np.int64))
    age_sept = np.floor((first_sept - birth) / YEAR).astype(np.int64)
    late = rng.random(n) < params.SHARE_LATE_SCHOOL_START
    grade_ref = age_sept - 5 - late
    c_reg = np.maximum(hh_reg[c_hh], birth + rng.integers(30, 200, n))
    c_reg = np.where(group[c_hh] == 0, np.minimum(c_reg, tl.first_day - 1), c_entry)
    county_code = areas.county_code[areas.village_county[village[c_hh]]]
    ids = identity_numbers(county_code, birth, male, rng)
    names_ = names(surnames(minority, rng)[c_hh], male, rng)
    remote = areas.village_remote[village[c_hh]]
    township = areas.village_township[village[c_hh]]
    middle_share = areas.school_boarding[areas.township_middle[township]]
    primary_share = areas.school_boarding[areas.township_primary[township]]
    return Population(
        hh_village=village.astype(np.int64),
        hh_no=hh_no,
        hh_ethnic=ethnic.astype(np.int64),
        hh_lbt=lbt.astype(np.int64),
        hh_relation=relation.astype(np.int64),
        hh_cg_birth=cg_birth.astype(np.float64),
        hh_cg_health=health,
        hh_adult_woman=adult_woman.astype(bool),
        hh_agreement=rng.random(n_h) < 0.35,
        hh_k=k.astype(np.int64),
        hh_k_since=k_since.astype(np.int64),
        hh_k_known=k.astype(np.int64),
        hh_contact=contact.astype(np.int64),
        hh_poverty=poverty.astype(np.int64),
        hh_hardship=hardship,
        hh_water=water,
        hh_hazards=hazards,
        hh_parent_visit=parent_visit.astype(np.int64),
        hh_parent_prev=np.full(n_h, NA_DAY, dtype=np.int64),
        hh_sf_year=np.zeros(n_h, dtype=np.int64),
        hh_sf_home=np.zeros(n_h, dtype=bool),
        hh_entry=entry.astype(np.int64),
        hh_reg_date=hh_reg.astype(np.int64),
        hh_exit=np.full(n_h, NEVER, dtype=np.int64),
        hh_exit_reason=np.full(n_h, -1, dtype=np.int64),
        hh_group=group.astype(np.int64),
        c_hh=c_hh.astype(np.int64),
        c_male=male,
        c_birth=birth,
        c_ethnic=ethnic_c.astype(np.int64),
        c_hukou=hukou.astype(np.int64),
        c_disability=disability,
        c_illness=illness,
        c_zc=zc,
        c_zh=zh,
        c_zd=zd,
        c_zm=zm,
        c_ability=ability,
        c_mu_x=mu_x,
        c_x=x,
        c_grade_ref=grade_ref.astype(np.int64),
        c_kindergarten=rng.random(n) < params.SHARE_KINDERGARTEN,
        c_will_enrol=rng.random(n) < np.where(disability, 0.6, params.SHARE_COMPULSORY_ENROLLED),
        c_senior_high=rng.random(n) < params.SHARE_SENIOR_HIGH,
        c_board_primary=rng.random(n) < primary_share * (1 + 0.5 * remote),
        c_board_middle=rng.random(n) < np.minimum(0.95, middle_share * (1 + 0.3 * remote)),
        c_entry=np.where(group[c_hh] == 0, tl.first_day - 1, c_entry).astype(np.int64),
        c_reg_date=c_reg.astype(np.int64),
        c_exit=np.full(n, NEVER, dtype=np.int64),
        c_exit_reason=np.full(n, -1, dtype=np.int64),
        c_active=np.zeros(n, dtype=bool),
        c_e=np.zeros(n, dtype=np.int64),
        c_onset=np.full(n, NA_DAY, dtype=np.int64),
        c_return=np.full(n, NA_DAY, dtype=np.int64),
        c_drop_recorded=np.zeros(n, dtype=bool),
        c_reg_rec=np.full(n, NEVER, dtype=np.int64),
        c_reg_school=np.full(n, -1, dtype=np.int64),
        c_reg_poverty=poverty[c_hh].astype(np.int64),
        c_reg_lbt=lbt[c_hh].astype(np.int64),
        c_last_visit=np.full(n, NA_DAY, dtype=np.int64),
        c_last_alert=np.full(n, NA_DAY, dtype=np.int64),
        c_last_injury=np.full(n, NA_DAY, dtype=np.int64),
        c_id=ids,
        c_name=names_,
        c_group=group[c_hh].astype(np.int64),
    )


def last_parent_visit(
    entry: IntArray, contact: IntArray, group: IntArray, rng: np.random.Generator
) -> IntArray:
    """The day a parent was last home, for households joining the registry on ``entry``.

    A file that already exists (the first day's population, a joining township's) carries the
    past the dynamics would have made: the latest of a drop-in visit (one a month with the
    contact code's ``PARENT_DROP_IN`` probability, so the months since the last one are
    geometric) and the last of the three previous Spring Festivals the parents came home for
    (each with ``SF_RETURN``); parents home for none of them were last home years ago or
    never on record. A new registration is a family whose parents have just left: they were
    home within the month.
    """
    n = len(entry)
    drop_p = np.asarray(params.PARENT_DROP_IN)[contact]
    months = rng.geometric(np.maximum(drop_p, 1e-9))
    drop_in = np.where(
        drop_p > 0, entry - ((months - 1) * 30.4 + rng.random(n) * 30.4).astype(np.int64), NA_DAY
    )
    festivals = np.asarray(
        [to_day(d) - SF_ARRIVE_BEFORE for _, d in sorted(SPRING_FESTIVAL.items())], dtype=np.int64
    )
    latest = np.searchsorted(festivals, entry, side="right") - 1
    sf_return = np.asarray(params.SF_RETURN)[contact]
    festival = np.full(n, NA_DAY, dtype=np.int64)
    for back in (2, 1, 0):  # oldest first, so a later return overwrites an earlier one
        at = np.clip(latest - back, 0, len(festivals) - 1)
        home = (latest - back >= 0) & (rng.random(n) < sf_return)
        festival = np.where(home, festivals[at] + rng.integers(-3, 4, n), festival)
    old = np.where(rng.random(n) < 0.6, NA_DAY, entry - rng.integers(1100, 1500, n))
    seen = np.maximum(drop_in, festival)
    existing = np.where(seen > NA_DAY, np.minimum(seen, entry - 1), old)
    just_left = entry - rng.integers(1, 31, n)
    out: IntArray = np.where(group == 1, just_left, existing).astype(np.int64)
    return out


def caregiver_health(k: IntArray, rng: np.random.Generator) -> IntArray:
    """A caregiver health grade consistent with the household's guardianship capacity."""
    n = len(k)
    u = rng.random(n)
    normal = np.where(u < 0.55, codes.H_GOOD, codes.H_FAIR)
    insufficient = np.where(
        u < 0.25, codes.H_FAIR, np.where(u < 0.9, codes.H_POOR, codes.H_CRITICAL)
    )
    improper = np.where(u < 0.4, codes.H_GOOD, np.where(u < 0.9, codes.H_FAIR, codes.H_POOR))
    return np.select(
        [k == codes.K_NORMAL, k == codes.K_INSUFFICIENT, k == codes.K_IMPROPER],
        [normal, insufficient, improper],
        default=codes.H_CRITICAL,
    ).astype(np.int64)


__all__ = [
    "NA_DAY",
    "NEVER",
    "YEAR",
    "Population",
    "build_population",
    "caregiver_health",
    "last_parent_visit",
    "school_year_of",
]
