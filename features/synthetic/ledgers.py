"""What the ledgers record each month, from the month's state and events.

Ledgers see the world partially and late: visits happen when the village gets round to them
and only see what is in front of the visitor; guardianship changes are filed weeks after they
happen, or only at the quarterly update; schools report absence weekly, results each term and
dropout episodes once they pass a week; incidents reach a ledger only if someone reports them,
which for village-sourced reports depends on whether anyone visited. Every row carries the day
it was entered (``_rec``), which decides its delivery batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from features.synthetic import codes, params
from features.synthetic.areas import Areas
from features.synthetic.dynamics import EpisodeBook, MonthEvents, birthday16, sorted_unique
from features.synthetic.hazards import COMPONENTS, DOMAIN_COMPONENTS, MENTAL_KINDS
from features.synthetic.population import NA_DAY, NEVER, YEAR, Population, school_year_of
from features.synthetic.rows import NA_CODE, NA_INT, RowBlock
from features.synthetic.scenarios import ScenarioPlan
from features.synthetic.schooling import schooling
from features.synthetic.timeline import Timeline

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

NEEDS: tuple[str, ...] = (
    "学习辅导",
    "心理疏导",
    "生活照料",
    "安全教育",
    "医疗救助",
    "亲情陪伴",
    "经济帮扶",
    "监护指导",
)
ACTIONS: tuple[str, ...] = (
    "开展安全教育",
    "联系父母沟通",
    "转介社工跟进",
    "报告乡镇督导员",
    "协调临时监护",
    "申请救助",
    "约定下次走访",
    "告知学校关注",
)
#: Visitor roles by village habit: usual villages, and the new township's.
ROLE_MIX = (
    (0.62, 0.06, 0.25, 0.04, 0.03),
    (0.15, 0.05, 0.55, 0.05, 0.20),
)
#: Probability the ledger's capacity assessment says (normal, insufficient, improper, absent)
#: given the true capacity: assessors miss much of what is wrong.
ASSESSED_CAPACITY = np.array(
    [
        [0.988, 0.009, 0.003, 0.00],
        [0.25, 0.65, 0.08, 0.02],
        [0.20, 0.25, 0.55, 0.00],
        [0.02, 0.10, 0.03, 0.85],
    ]
)
#: For each harm kind: probability it is recorded at all, reported to police, and the source
#: systems (police, health, school, village) it comes through.
HARM_RECORDING: dict[str, tuple[float, float, tuple[float, float, float, float]]] = {
    "domestic_violence": (0.55, 0.8, (0.45, 0.05, 0.15, 0.35)),
    "abuse": (0.55, 0.85, (0.3, 0.1, 0.25, 0.35)),
    "sexual_abuse": (0.45, 0.95, (0.7, 0.15, 0.1, 0.05)),
    "unlawful_harm": (0.6, 0.9, (0.7, 0.1, 0.1, 0.1)),
    "serious_injury": (0.8, 0.4, (0.1, 0.7, 0.15, 0.05)),
    "drowning": (0.9, 0.6, (0.35, 0.6, 0.0, 0.05)),
    "missing": (0.8, 1.0, (0.85, 0.0, 0.05, 0.1)),
    "begging": (0.6, 0.9, (0.6, 0.0, 0.0, 0.4)),
    "living_alone": (0.55, 0.7, (0.25, 0.0, 0.1, 0.65)),
    "no_guardian": (0.55, 0.7, (0.25, 0.0, 0.1, 0.65)),
    "suicide_attempt": (0.7, 0.3, (0.05, 0.8, 0.15, 0.0)),
    "self_harm": (0.6, 0.1, (0.0, 0.6, 0.4, 0.0)),
    "mental_crisis": (0.65, 0.1, (0.0, 0.75, 0.25, 0.0)),
    "accidental_injury": (params.INJURY_RECORDED, 0.05, (0.0, 0.7, 0.3, 0.0)),
}
_SOURCE_ORDER = ("police", "health", "school", "village")
#: The reporting unit each source system usually names.
_REPORTER_OF_SOURCE = {
    "police": ("police", "family", "village"),
    "health": ("clinic",),
    "school": ("school",),
    "village": ("village", "social_work"),
}
DOMAIN_TABLE = {
    "harm": "incidents",
    "breakdown": "incidents",
    "mental": "incidents",
    "dropout": "school_events",
}


@dataclass
class OutcomeLinks:
    """How each of the month's outcome events reached a ledger (aligned with ``ev.out_*``)."""

    recorded: BoolArray
    table: list[str]
    record_id: list[str]
    rec_day: IntArray
    kind: list[str]


@dataclass
class InjuryLinks:
    """Accidental injuries of the month and whether a ledger shows them."""

    recorded: BoolArray
    record_id: list[str]


@dataclass
class MonthLedgers:
    """Rows made this month (whatever month they are entered in) and their truth links."""

    blocks: dict[str, list[RowBlock]] = field(default_factory=dict)
    outcomes: OutcomeLinks | None = None
    injuries: InjuryLinks | None = None
    suspected: list[tuple[IntArray, IntArray, IntArray, IntArray]] = field(default_factory=list)

    def add(self, block: RowBlock) -> None:
        """Keep a block (empty blocks are dropped)."""
        if len(block):
            self.blocks.setdefault(block.table, []).append(block)


def _weekday(day: IntArray) -> IntArray:
    """0 = Monday (1970-01-01 was a Thursday)."""
    return (np.asarray(day) + 3) % 7


class LedgerBuilder:
    """Turns each month's state and events into ledger rows."""

    def __init__(
        self,
        pop: Population,
        areas: Areas,
        tl: Timeline,
        plan: ScenarioPlan,
        rng: np.random.Generator,
    ) -> None:
        self.pop, self.areas, self.tl, self.plan, self.rng = pop, areas, tl, plan, rng
        counts = np.bincount(pop.c_hh, minlength=pop.n_households)
        self.hh_first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.hh_size = counts.astype(np.int64)
        self.serial = {"visits": 0, "school_events": 0, "incidents": 0, "receipt": 0}
        self.b16 = birthday16(pop.c_birth)

    # -- helpers ---------------------------------------------------------------------------
    def _lag(self, village: IntArray, scale: float = 1.0, sigma: float = 0.7) -> IntArray:
        median = self.areas.village_lag_median[village] * scale
        return np.round(np.exp(self.rng.normal(np.log(median), sigma))).astype(np.int64)

    def _after_registry(self, child: IntArray, rec: IntArray, day: IntArray) -> IntArray:
        """Entered no earlier than the event, nor than the child's registry row."""
        return np.maximum(np.maximum(rec, day), self.pop.c_reg_rec[child])

    def _serial(self, kind: str, n: int, month_label: int) -> IntArray:
        start = self.serial[kind]
        self.serial[kind] += n
        return month_label * 10_000_000 + start + np.arange(n, dtype=np.int64)

    def _present(self, child: IntArray, day: IntArray) -> BoolArray:
        pop = self.pop
        return (
            (pop.c_entry[child] <= day) & (day < pop.c_exit[child]) & (pop.c_reg_rec[child] < NEVER)
        )

    def _children_of(self, hh: IntArray) -> tuple[IntArray, IntArray]:
        """Every child of each household in ``hh``: (child, position in ``hh``)."""
        sizes = self.hh_size[hh]
        pos = np.repeat(np.arange(len(hh)), sizes)
        offset = np.arange(len(pos)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        return self.hh_first[hh][pos] + offset, pos

    def _out_on(self, child: IntArray, day: IntArray, book: EpisodeBook) -> BoolArray:
        pop = self.pop
        now = (pop.c_onset[child] <= day) & (day < pop.c_return[child])
        before = (book.prev_onset[child] <= day) & (day < book.prev_return[child])
        return now | before

    def _k_on(self, hh: IntArray, day: IntArray, ev: MonthEvents) -> IntArray:
        return np.where(day >= ev.k_change_day[hh], self.pop.hh_k[hh], ev.k_start[hh])

    # -- the month -----------------------------------------------------------------------------
    def month(self, m: int, ev: MonthEvents, book: EpisodeBook) -> MonthLedgers:
        """All rows made in month ``m``."""
        out = MonthLedgers()
        mo = self.tl.months[m]
        label = mo.year * 100 + mo.month
        if m == 0:
            out.add(self._areas(new=False, day=mo.start_day))
        if self.plan.new_township_day is not None and m == self.plan.start_month:
            out.add(self._areas(new=True, day=self.plan.start_day))
        self._joins(out, ev, m)
        self._registry_changes(out, ev, m)
        harm_day = self._harm_days(ev)
        self._visits(out, ev, book, m, label, harm_day)
        self._guardianship(out, ev, book, m)
        self._enrolments(out, ev, m)
        self._attendance(out, ev, book, m)
        self._results(out, ev, book, m)
        self._school_events(out, ev, m, label)
        self._screenings(out, ev, book, m)
        self._incidents(out, ev, m, label)
        _one_row_per_key(out, "guardianship", "change_date")
        return out

    # -- areas ---------------------------------------------------------------------------------
    def _areas(self, new: bool, day: int) -> RowBlock:
        a = self.areas
        t_sel = np.flatnonzero(a.township_new == new)
        v_sel = np.flatnonzero(np.isin(a.village_township, t_sel))
        area_codes: list[str] = []
        levels: list[int] = []
        names: list[str] = []
        parents: list[str] = []
        villages: list[int] = []
        if not new:
            for i, code in enumerate(a.city_code):
                area_codes.append(str(code))
                levels.append(codes.CITY)
                names.append(str(a.city_name[i]))
                parents.append("")
                villages.append(-1)
            for k, code in enumerate(a.county_code):
                area_codes.append(str(code))
                levels.append(codes.COUNTY)
                names.append(str(a.county_name[k]))
                parents.append(str(a.city_code[a.county_city[k]]))
                villages.append(-1)
        for t in t_sel:
            area_codes.append(str(a.township_code[t]))
            levels.append(codes.TOWNSHIP)
            names.append(str(a.township_name[t]))
            parents.append(str(a.county_code[a.township_county[t]]))
            villages.append(-1)
        for v in v_sel:
            area_codes.append(str(a.village_code[v]))
            levels.append(codes.VILLAGE)
            names.append(str(a.village_name[v]))
            parents.append(str(a.township_code[a.village_township[v]]))
            villages.append(int(v))
        n = len(area_codes)
        effective = day if new else day - 366
        rec = day + self.rng.integers(0, 3 if not new else 6, n)
        return RowBlock(
            "areas",
            {
                "area_code": np.asarray(area_codes, dtype=object),
                "level": np.asarray(levels, dtype=np.int64),
                "area_name": np.asarray(names, dtype=object),
                "parent_code": np.asarray(parents, dtype=object),
                "effective_date": np.full(n, effective, dtype=np.int64),
                "recorded_at": rec,
                "_child": np.full(n, -1, dtype=np.int64),
                "_village": np.asarray(villages, dtype=np.int64),
                "_rec": rec,
                "_evt": np.full(n, effective, dtype=np.int64),
            },
        )

    # -- registry ----------------------------------------------------------------------------
    def _registry_block(
        self,
        child: IntArray,
        version_day: IntArray,
        rec: IntArray,
        status: int,
        exit_reason: IntArray | None = None,
        school: IntArray | None = None,
    ) -> RowBlock:
        pop = self.pop
        hh = pop.c_hh[child]
        n = len(child)
        return RowBlock(
            "children",
            {
                "id_number": child,
                "name": child,
                "household_no": hh,
                "sex": np.where(pop.c_male[child], codes.MALE, codes.FEMALE),
                "birth_date": pop.c_birth[child],
                "ethnicity": pop.c_ethnic[child],
                "hukou_status": pop.c_hukou[child],
                "village_code": pop.hh_village[hh],
                "school_code": pop.c_reg_school[child] if school is None else school,
                "left_behind_type": pop.hh_lbt[hh],
                "disability": pop.c_disability[child].astype(np.int64),
                "serious_illness": pop.c_illness[child].astype(np.int64),
                "poverty_status": pop.hh_poverty[hh],
                "status": np.full(n, status, dtype=np.int64),
                "exit_reason": np.full(n, NA_CODE, dtype=np.int64)
                if exit_reason is None
                else exit_reason,
                "registered_date": version_day,
                "recorded_at": rec,
                "_child": child,
                "_village": pop.hh_village[hh],
                "_rec": rec,
                "_evt": version_day,
            },
        )

    def _joins(self, out: MonthLedgers, ev: MonthEvents, m: int) -> None:
        pop, tl = self.pop, self.tl
        child = ev.activated
        if len(child) == 0:
            return
        mo = tl.months[m]
        hh = pop.c_hh[child]
        village = pop.hh_village[hh]
        first_load = pop.c_group[child] == 0
        # the first day's population is the county's existing file, imported in the first
        # fortnight; later registrations are entered after the village has checked them
        rec = np.where(
            first_load,
            mo.start_day + self.rng.integers(0, 14, len(child)),
            pop.c_entry[child] + self._lag(village, 1.5),
        )
        rec = np.maximum(rec, pop.c_entry[child])
        # siblings are registered together
        rec = np.maximum.reduceat(rec, np.r_[0, np.flatnonzero(np.diff(hh)) + 1])[
            np.cumsum(np.r_[0, np.diff(hh) != 0])
        ]
        pop.c_reg_rec[child] = rec
        day = np.maximum(pop.c_entry[child], tl.first_day)
        school = schooling(pop, child, int(day.max()), self.areas, tl.first_day)
        pop.c_reg_school[child] = school.school
        pop.c_reg_poverty[child] = pop.hh_poverty[hh]
        out.add(self._registry_block(child, pop.c_reg_date[child], rec, codes.ACTIVE))
        # the current guardianship state and school enrolment come with the file
        since = np.maximum(pop.hh_k_since[hh], pop.c_birth[child])
        since = np.minimum(since, pop.c_reg_date[child])
        g_rec = rec + self.rng.integers(0, 4, len(child))
        out.add(self._guardianship_block(child, since, g_rec, pop.hh_k[hh], day))
        enrolled = np.flatnonzero(school.enrolled)
        sept = np.datetime64(f"{int(school_year_of(int(day.max())))}-09-01").astype(np.int64)
        e_rec = rec[enrolled] + self.rng.integers(0, 6, len(enrolled))
        out.add(
            self._enrolment_block(
                child[enrolled],
                np.full(len(enrolled), sept),
                e_rec,
                school.school[enrolled],
                school.grade[enrolled],
                school.boarding[enrolled],
                np.full(len(enrolled), codes.ENROLLED),
            )
        )

    def _registry_changes(self, out: MonthLedgers, ev: MonthEvents, m: int) -> None:
        pop, tl = self.pop, self.tl
        mo = tl.months[m]
        # exits
        child = ev.exit_child
        if len(child):
            village = pop.hh_village[pop.c_hh[child]]
            aged = ev.exit_reason == codes.EXIT_AGED_OUT
            rec = ev.exit_day + np.where(
                aged, self.rng.integers(0, 15, len(child)), self._lag(village, 2.0)
            )
            rec = self._after_registry(child, rec, ev.exit_day)
            out.add(self._registry_block(child, ev.exit_day, rec, codes.EXITED, ev.exit_reason))
        # poverty support granted or withdrawn
        if len(ev.poverty_hh):
            kids, pos = self._children_of(ev.poverty_hh)
            day = ev.poverty_day[pos]
            ok = self._present(kids, day)
            kids, day = kids[ok], day[ok]
            rec = self._after_registry(
                kids, day + self._lag(pop.hh_village[pop.c_hh[kids]], 2.0), day
            )
            pop.c_reg_poverty[kids] = pop.hh_poverty[pop.c_hh[kids]]
            out.add(self._registry_block(kids, day, rec, codes.ACTIVE))
        # a new school year: some files get the new school, others stay out of date
        if mo.month == 9:
            active = np.flatnonzero(pop.c_active)
            school = schooling(pop, active, mo.start_day + 14, self.areas, tl.first_day)
            changed = (school.school != pop.c_reg_school[active]) & (
                self.rng.random(len(active)) < 0.6
            )
            kids = active[changed]
            pop.c_reg_school[kids] = school.school[changed]
            day = mo.start_day + self.rng.integers(0, 30, len(kids))
            rec = self._after_registry(kids, day + self._lag(pop.hh_village[pop.c_hh[kids]]), day)
            out.add(self._registry_block(kids, day, rec, codes.ACTIVE))

    # -- guardianship --------------------------------------------------------------------------
    def _guardianship_block(
        self, child: IntArray, day: IntArray, rec: IntArray, k_true: IntArray, board_day: IntArray
    ) -> RowBlock:
        pop, rng = self.pop, self.rng
        hh = pop.c_hh[child]
        n = len(child)
        cum = np.cumsum(ASSESSED_CAPACITY[k_true], axis=1)
        assessed = (rng.random(n)[:, None] > cum).sum(axis=1)
        relation = pop.hh_relation[hh]
        nobody = relation == codes.NOBODY
        age = np.floor((day - pop.hh_cg_birth[hh]) / YEAR)
        age = np.where(nobody | ~np.isfinite(age), NA_INT, np.nan_to_num(age)).astype(np.int64)
        health = np.where(
            rng.random(n) < 0.1,
            np.clip(pop.hh_cg_health[hh] + rng.choice([-1, 1], n), 0, 3),
            pop.hh_cg_health[hh],
        )
        health = np.where(nobody, NA_CODE, health)
        contact = np.where(
            rng.random(n) < 0.08,
            np.clip(pop.hh_contact[hh] + rng.choice([-1, 1], n), 0, 4),
            pop.hh_contact[hh],
        )
        visit = np.where(
            pop.hh_parent_visit[hh] <= day,
            pop.hh_parent_visit[hh],
            np.where(pop.hh_parent_prev[hh] <= day, pop.hh_parent_prev[hh], NA_DAY),
        )
        school = schooling(
            pop, child, int(np.max(board_day)) if n else 0, self.areas, self.tl.first_day
        )
        living = np.where(
            k_true == codes.K_ABSENT,
            np.where(school.boarding, codes.BOARDING, codes.ALONE),
            np.where(school.boarding, codes.BOARDING, codes.WITH_CAREGIVER),
        )
        living = np.where(rng.random(n) < 0.02, codes.LIVING_UNKNOWN, living)
        agreement = pop.hh_agreement[hh] & ~nobody
        return RowBlock(
            "guardianship",
            {
                "id_number": child,
                "change_date": day,
                "caregiver_relation": relation,
                "caregiver_age": age,
                "caregiver_health": health,
                "capacity": assessed,
                "agreement_signed": agreement.astype(np.int64),
                "parent_contact": contact,
                "parent_last_visit": visit,
                "adult_woman_in_household": pop.hh_adult_woman[hh].astype(np.int64),
                "living_arrangement": living,
                "recorded_at": rec,
                "_child": child,
                "_village": pop.hh_village[hh],
                "_rec": rec,
                "_evt": day,
            },
        )

    def _guardianship(self, out: MonthLedgers, ev: MonthEvents, book: EpisodeBook, m: int) -> None:
        pop, rng, tl = self.pop, self.rng, self.tl
        mo = tl.months[m]
        del book
        # changes of capacity, filed weeks later (if at all)
        if len(ev.k_hh):
            kids, pos = self._children_of(ev.k_hh)
            day = ev.k_day[pos]
            ok = self._present(kids, day)
            kids, pos, day = kids[ok], pos[ok], day[ok]
            cause = ev.k_cause[pos]
            village = pop.hh_village[pop.c_hh[kids]]
            quality = self.areas.village_quality[village]
            p = np.select(
                [cause == 1, cause == 2], [0.8 * np.sqrt(quality), 0.85], default=0.6 * quality
            )
            filed = rng.random(len(kids)) < p
            kids, day, pos = kids[filed], day[filed], pos[filed]
            rec = self._after_registry(
                kids, day + self._lag(pop.hh_village[pop.c_hh[kids]], 4.0), day
            )
            out.add(self._guardianship_block(kids, day, rec, ev.k_new[pos], day))
            pop.hh_k_known[pop.c_hh[kids]] = ev.k_new[pos]
        # the quarterly update of every file
        if mo.review_month:
            active = np.flatnonzero(pop.c_active)
            village = pop.hh_village[pop.c_hh[active]]
            p = self.areas.village_review[village] * self.plan.visit_factor(
                self.areas.village_township[village], m
            )
            hh = pop.c_hh[active]
            # one decision per household: the whole family's file is updated together
            u = rng.random(pop.n_households)[hh]
            kids = active[u < p]
            hh = pop.c_hh[kids]
            day = (
                mo.start_day
                + 14
                + (rng.random(pop.n_households)[hh] * (mo.days - 15)).astype(np.int64)
            )
            ok = self._present(kids, day)
            kids, hh, day = kids[ok], hh[ok], day[ok]
            rec = self._after_registry(kids, day + self._lag(pop.hh_village[hh]), day)
            out.add(self._guardianship_block(kids, day, rec, self._k_on(hh, day, ev), day))
            pop.hh_k_known[hh] = self._k_on(hh, day, ev)

    # -- visits --------------------------------------------------------------------------------
    def _harm_days(self, ev: MonthEvents) -> IntArray:
        harm = np.isin(ev.out_component, DOMAIN_COMPONENTS["harm"])
        days = np.full(self.pop.n_children, NEVER, dtype=np.int64)
        np.minimum.at(days, ev.out_child[harm], ev.out_day[harm])
        return days

    def _visits(
        self,
        out: MonthLedgers,
        ev: MonthEvents,
        book: EpisodeBook,
        m: int,
        label: int,
        harm_day: IntArray,
    ) -> None:
        pop, rng, areas = self.pop, self.rng, self.areas
        mo = self.tl.months[m]
        ms, me = mo.start_day, mo.end_day
        seen_now = np.flatnonzero(
            (pop.c_entry <= me) & (pop.c_exit >= ms) & (pop.c_reg_rec < NEVER)
        )
        hh = sorted_unique(pop.c_hh[seen_now])
        village = pop.hh_village[hh]
        factor = self.plan.visit_factor(areas.village_township[village], m)
        lo = np.maximum(ms, pop.hh_entry[hh] + 1)
        hi = np.minimum(me, pop.hh_exit[hh] - 1)
        ok = hi >= lo
        routine = ok & (rng.random(len(hh)) < areas.village_compliance[village] * factor)
        alert = np.zeros(pop.n_households, dtype=np.int64) + NA_DAY
        np.maximum.at(alert, pop.c_hh[seen_now], pop.c_last_alert[seen_now])
        key = (pop.hh_k_known[hh] >= codes.K_IMPROPER) | (alert[hh] >= ms - 60)
        extra = ok & key & (rng.random(len(hh)) < 0.6 * factor)
        v_hh = np.concatenate([hh[routine], hh[extra]])
        span = hi - lo + 1
        day_r = lo[routine] + (rng.random(routine.sum()) * span[routine]).astype(np.int64)
        day_x = lo[extra] + (rng.random(extra.sum()) * span[extra]).astype(np.int64)
        v_day = np.concatenate([day_r, day_x])
        mix = np.asarray(ROLE_MIX)[areas.village_role_mix[pop.hh_village[hh[routine]]]]
        role_r = (rng.random(len(mix))[:, None] > np.cumsum(mix, axis=1)).sum(axis=1)
        role_x = np.where(rng.random(extra.sum()) < 0.5, codes.SUPERVISOR, codes.SOCIAL_WORKER)
        v_role = np.minimum(np.concatenate([role_r, role_x]), 4)
        serial = self._serial("visits", len(v_hh), label)

        child, pos = self._children_of(v_hh)
        day = v_day[pos]
        here = self._present(child, day)
        child, pos, day = child[here], pos[here], day[here]
        hh_c = pop.c_hh[child]
        n = len(child)
        k_day = self._k_on(hh_c, day, ev)
        school = schooling(pop, child, (ms + me) // 2, areas, self.tl.first_day)
        out_school = self._out_on(child, day, book)
        weekday = _weekday(day) < 5
        term = self.tl.is_school_day[self.tl.offset(day).clip(0, len(self.tl.is_school_day) - 1)]
        away = school.boarding & weekday & term & ~out_school
        seen = rng.random(n) < np.where(away, 0.25, 0.9)
        alone = (k_day == codes.K_ABSENT) & ~school.boarding
        living = np.where(
            alone, codes.ALONE, np.where(school.boarding, codes.BOARDING, codes.WITH_CAREGIVER)
        )
        living = np.where(rng.random(n) < 0.03, codes.LIVING_UNKNOWN, living)
        nobody = pop.hh_relation[hh_c] == codes.NOBODY
        present = rng.random(n) < np.where(nobody & (k_day == codes.K_ABSENT), 0.05, 0.85)
        incapable_p = np.asarray([0.04, 0.45, 0.45, 0.95])[k_day]
        capable = rng.random(n) >= incapable_p
        hazards = pop.hh_hazards[hh_c] & ((rng.random((n, 6)) < 0.6) * (1 << np.arange(6))).sum(
            axis=1
        )
        hazards = np.where(hazards == 0, 1 << codes.HAZ_NONE, hazards)
        x = ev.x_start[child]
        recent = ((pop.c_last_injury[child] <= day) & (pop.c_last_injury[child] >= day - 30)) | (
            (harm_day[child] <= day) & (harm_day[child] >= day - 30)
        )
        injury = seen & (rng.random(n) < np.where(recent, 0.5, 0.01 + 0.04 * (k_day == 2)))
        neglect_p = np.asarray([0.02, 0.12, 0.35, 0.55])[k_day] + 0.03 * (x > 1.5)
        neglect = rng.random(n) < neglect_p
        latent = x + 0.3 * (k_day != codes.K_NORMAL) + 0.4 * out_school + rng.normal(0, 0.8, n)
        emotion = np.searchsorted(np.array([0.6, 1.4, 2.3]), latent)
        emotion = np.where(
            seen, emotion, codes.EMO_FAIR
        )  # an unseen child is written down as "fair"
        need = np.select(
            [neglect, emotion >= codes.EMO_LOW, out_school, hazards != 1 << codes.HAZ_NONE],
            [2, 1, 0, 3],
            default=rng.integers(0, len(NEEDS), n),
        )
        need = np.where(rng.random(n) < 0.45, NA_CODE, need)
        action = np.select(
            [alone, injury, emotion >= codes.EMO_LOW, out_school],
            [4, 3, 2, 7],
            default=rng.integers(0, len(ACTIONS), n),
        )
        action = np.where(rng.random(n) < 0.4, NA_CODE, action)
        village = pop.hh_village[hh_c]
        batch = areas.village_batch_entry[village]
        rec = np.where(batch, me - 5 + rng.integers(0, 8, n), day + self._lag(village))
        rec = rec + np.where(rng.random(n) < 0.03, rng.integers(30, 90, n), 0)
        rec = self._after_registry(child, rec, day)
        np.maximum.at(pop.c_last_visit, child, day)
        out.add(
            RowBlock(
                "visits",
                {
                    "visit_id": serial[pos],
                    "id_number": child,
                    "visit_date": day,
                    "visitor_role": v_role[pos],
                    "child_seen": seen.astype(np.int64),
                    "living_arrangement": living,
                    "guardian_present": present.astype(np.int64),
                    "guardian_capable": capable.astype(np.int64),
                    "home_hazards": hazards,
                    "injury_signs": injury.astype(np.int64),
                    "neglect_signs": neglect.astype(np.int64),
                    "emotional_state": emotion,
                    "needs": need,
                    "actions": action,
                    "recorded_at": rec,
                    "_child": child,
                    "_village": village,
                    "_rec": rec,
                    "_evt": day,
                },
            )
        )
        # what a visit finds out becomes a known problem that draws the next visits
        flagged = child[neglect | injury | alone | (emotion == codes.EMO_SEVERE)]
        pop.c_last_alert[flagged] = np.maximum(pop.c_last_alert[flagged], me)

    # -- school --------------------------------------------------------------------------------
    def _enrolment_block(
        self,
        child: IntArray,
        day: IntArray,
        rec: IntArray,
        school: IntArray,
        grade: IntArray,
        boarding: BoolArray,
        status: IntArray,
    ) -> RowBlock:
        village = self.pop.hh_village[self.pop.c_hh[child]]
        return RowBlock(
            "enrolments",
            {
                "id_number": child,
                "school_code": school,
                "grade": grade,
                "boarding": boarding.astype(np.int64),
                "enrol_status": status,
                "change_date": day,
                "recorded_at": rec,
                "_child": child,
                "_village": village,
                "_rec": rec,
                "_evt": day,
            },
        )

    def _school_lag(self, school: IntArray, base: float, sigma: float = 0.6) -> IntArray:
        median = self.areas.school_lag_median[np.maximum(school, 0)] * base
        return np.round(np.exp(self.rng.normal(np.log(median), sigma))).astype(np.int64)

    def _enrolments(self, out: MonthLedgers, ev: MonthEvents, m: int) -> None:
        pop, tl = self.pop, self.tl
        mo = tl.months[m]
        if mo.month == 9 and m > 0:
            active = np.flatnonzero(pop.c_active & (pop.c_reg_rec < mo.start_day))
            before = schooling(pop, active, mo.start_day - 20, self.areas, tl.first_day)
            now = schooling(pop, active, mo.start_day + 14, self.areas, tl.first_day)
            start = mo.term_starts[0] if mo.term_starts else mo.start_day
            moved = now.enrolled & (
                (now.grade != before.grade) | (now.school != before.school) | ~before.enrolled
            )
            kids = active[moved]
            day = np.full(len(kids), start, dtype=np.int64)
            rec = self._after_registry(kids, day + self._school_lag(now.school[moved], 5.0), day)
            out.add(
                self._enrolment_block(
                    kids,
                    day,
                    rec,
                    now.school[moved],
                    now.grade[moved],
                    now.boarding[moved],
                    np.full(len(kids), codes.ENROLLED),
                )
            )
            left = before.enrolled & ~now.enrolled
            kids = active[left]
            day = np.full(len(kids), mo.start_day, dtype=np.int64)
            rec = self._after_registry(kids, day + self._school_lag(before.school[left], 5.0), day)
            out.add(
                self._enrolment_block(
                    kids,
                    day,
                    rec,
                    before.school[left],
                    before.grade[left],
                    before.boarding[left],
                    np.full(len(kids), codes.TRANSFERRED),
                )
            )
        # dropout over a month, and the return of a pupil who had dropped out
        drop = ev.school_kind == codes.SE_DROPOUT
        back = (ev.school_kind == codes.SE_RETURNED) & pop.c_drop_recorded[ev.school_child]
        sel = drop | back
        if sel.any():
            kids, day = ev.school_child[sel], ev.school_day[sel]
            sch = schooling(pop, kids, mo.start_day + 14, self.areas, tl.first_day)
            status = np.where(drop[sel], codes.DROPPED_OUT, codes.ENROLLED)
            rec = self._after_registry(kids, day + self._school_lag(sch.school, 3.0), day)
            out.add(
                self._enrolment_block(kids, day, rec, sch.school, sch.grade, sch.boarding, status)
            )
            pop.c_drop_recorded[kids] = drop[sel]

    def _attendance(self, out: MonthLedgers, ev: MonthEvents, book: EpisodeBook, m: int) -> None:
        pop, rng, tl = self.pop, self.rng, self.tl
        mo = tl.months[m]
        ms, me = mo.start_day, mo.end_day
        cand = np.flatnonzero((pop.c_entry <= me) & (pop.c_exit > ms) & (pop.c_reg_rec < NEVER))
        school = schooling(pop, cand, (ms + me) // 2, self.areas, tl.first_day)
        keep = school.compulsory
        cand = cand[keep]
        sch = school.school[keep]
        e = ev.e_start[cand]
        x = ev.x_start[cand]
        k_bad = pop.hh_k[pop.c_hh[cand]] != codes.K_NORMAL
        illness = pop.c_disability[cand] | pop.c_illness[cand]
        first_monday = ms + (7 - _weekday(np.asarray(ms))) % 7
        for monday in range(int(first_monday), me + 1, 7):
            days = int(tl.school_days_between(np.asarray([monday]), np.asarray([monday + 5]))[0])
            if days == 0:
                continue
            here = self._present(cand, np.full(len(cand), monday))
            dropped = (book.days[cand, 3] <= monday) & self._out_on(
                cand, np.full(len(cand), monday), book
            )
            here &= ~dropped
            n = len(cand)
            lo_ep = np.maximum(pop.c_onset[cand], monday)
            hi_ep = np.minimum(pop.c_return[cand], monday + 5)
            out_days = tl.school_days_between(lo_ep, hi_ep)
            lo_prev = np.maximum(book.prev_onset[cand], monday)
            hi_prev = np.minimum(book.prev_return[cand], monday + 5)
            out_days = out_days + tl.school_days_between(lo_prev, hi_prev)
            p_unexc = 1.0 / (
                1.0 + np.exp(-np.where(e == 1, -0.9 + 0.5 * x, -4.4 + 0.5 * x + 0.3 * k_bad))
            )
            extra = rng.random(n) < p_unexc
            unexc = np.where(extra, 1 + rng.binomial(days - 1, 0.25, n), 0)
            unexc = np.minimum(np.maximum(unexc, out_days), days)
            p_exc = 0.035 + 0.1 * illness
            exc = np.where(rng.random(n) < p_exc, 1 + rng.binomial(days - 1, 0.25, n), 0)
            exc = np.minimum(exc, days - unexc)
            row = here & ((exc + unexc) > 0)
            row &= ~self.plan.attendance_blocked(sch, monday)
            sel = np.flatnonzero(row)
            kids = cand[sel]
            friday = monday + 4
            rec = friday + 1 + self._school_lag(sch[sel], 1.0)
            rec = np.where(rng.random(len(sel)) < 0.05, me + rng.integers(1, 20, len(sel)), rec)
            rec = self._after_registry(kids, rec, np.full(len(sel), friday))
            out.add(
                RowBlock(
                    "attendance",
                    {
                        "id_number": kids,
                        "school_code": sch[sel],
                        "week_start": np.full(len(sel), monday, dtype=np.int64),
                        "school_days": np.full(len(sel), days, dtype=np.int64),
                        "excused_days": exc[sel],
                        "unexcused_days": unexc[sel],
                        "recorded_at": rec,
                        "_child": kids,
                        "_village": pop.hh_village[pop.c_hh[kids]],
                        "_rec": rec,
                        "_evt": np.full(len(sel), monday, dtype=np.int64),
                    },
                )
            )

    def _results(self, out: MonthLedgers, ev: MonthEvents, book: EpisodeBook, m: int) -> None:
        pop, rng, tl = self.pop, self.rng, self.tl
        for end in tl.months[m].term_ends:
            cand = np.flatnonzero(
                (pop.c_entry <= end) & (pop.c_exit > end) & (pop.c_reg_rec < NEVER)
            )
            school = schooling(pop, cand, end, self.areas, tl.first_day)
            keep = school.compulsory & ~self._out_on(cand, np.full(len(cand), end), book)
            kids = cand[keep]
            n = len(kids)
            missed = np.minimum(
                tl.school_days_between(
                    np.maximum(pop.c_onset[kids], end - 120), np.minimum(pop.c_return[kids], end)
                ),
                100,
            )
            score = (
                72
                + 9 * pop.c_ability[kids]
                - 6 * (ev.e_start[kids] == 1)
                - 3 * ev.x_start[kids]
                - 0.25 * missed
                + rng.normal(0, 5, n)
            )
            score = np.round(np.clip(score, 0, 100), 1)
            subjects = np.where(school.grade[keep] >= 7, 9, 6)
            fail_p = 1.0 / (1.0 + np.exp(-(60.0 - score) / 5.0))
            failed = rng.binomial(subjects, fail_p)
            rec = end + 3 + self._school_lag(school.school[keep], 4.0)
            rec = self._after_registry(kids, rec, np.full(n, end))
            out.add(
                RowBlock(
                    "results",
                    {
                        "id_number": kids,
                        "school_code": school.school[keep],
                        "term_end": np.full(n, end, dtype=np.int64),
                        "average_score": score,
                        "failed_subjects": failed.astype(np.int64),
                        "recorded_at": rec,
                        "_child": kids,
                        "_village": pop.hh_village[pop.c_hh[kids]],
                        "_rec": rec,
                        "_evt": np.full(n, end, dtype=np.int64),
                    },
                )
            )

    def _school_events(self, out: MonthLedgers, ev: MonthEvents, m: int, label: int) -> None:
        pop, rng, tl = self.pop, self.rng, self.tl
        if len(ev.school_child) == 0:
            return
        kids, day = ev.school_child, ev.school_day
        n = len(kids)
        sch = schooling(pop, kids, tl.months[m].start_day + 14, self.areas, tl.first_day)
        school = np.where(sch.school >= 0, sch.school, pop.c_reg_school[kids])
        rec = day + self._school_lag(school, 1.5)
        rec = self._after_registry(kids, rec, day)
        absent = np.where(rng.random(n) < 0.05, NA_INT, ev.school_absent)
        serial = self._serial("school_events", n, label)
        out.add(
            RowBlock(
                "school_events",
                {
                    "event_id": serial,
                    "id_number": kids,
                    "school_code": school,
                    "event_date": day,
                    "kind": ev.school_kind,
                    "absent_days": absent,
                    "recorded_at": rec,
                    "_child": kids,
                    "_village": pop.hh_village[pop.c_hh[kids]],
                    "_rec": rec,
                    "_evt": day,
                },
            )
        )
        sus = ev.school_kind == codes.SE_SUSPECTED
        out.suspected.append((kids[sus], day[sus], serial[sus], rec[sus]))

    # -- screening -----------------------------------------------------------------------------
    def _screen_block(
        self, kids: IntArray, day: IntArray, rec: IntArray, x: FloatArray, screener: int
    ) -> RowBlock:
        pop, rng = self.pop, self.rng
        n = len(kids)
        hh = pop.c_hh[kids]
        low_contact = np.isin(pop.hh_contact[hh], [codes.YEARLY, codes.NEVER])
        latent = (
            0.8 * (x - 0.03)
            + 0.35 * pop.c_zm[kids]
            + 0.25 * ~pop.c_male[kids]
            + 0.3 * (pop.hh_k[hh] != codes.K_NORMAL)
            + 0.25 * low_contact
            + rng.normal(0, 0.75, n)
        )
        dep = np.clip(np.round(9.4 + 7.5 * latent), 0, 60).astype(np.int64)
        anx = np.clip(np.round(17.0 + 9.0 * (0.7 * latent + rng.normal(0, 0.7, n))), 0, 82).astype(
            np.int64
        )
        ideation = rng.random(n) < 1.0 / (1.0 + np.exp(-(-3.9 + 1.3 * latent)))
        positive = (dep >= 30) | (ideation & (dep >= 24)) | (anx >= 55)
        return RowBlock(
            "screenings",
            {
                "id_number": kids,
                "screen_date": day,
                "screener": np.full(n, screener, dtype=np.int64),
                "depression_score": dep,
                "anxiety_score": anx,
                "suicidal_ideation": ideation.astype(np.int64),
                "positive": positive.astype(np.int64),
                "recorded_at": rec,
                "_child": kids,
                "_village": pop.hh_village[hh],
                "_rec": rec,
                "_evt": day,
            },
        )

    def _screenings(self, out: MonthLedgers, ev: MonthEvents, book: EpisodeBook, m: int) -> None:
        pop, rng, tl = self.pop, self.rng, self.tl
        mo = tl.months[m]
        if not mo.screening_month:
            return
        cand = np.flatnonzero(
            (pop.c_entry <= mo.end_day) & (pop.c_exit > mo.start_day) & (pop.c_reg_rec < NEVER)
        )
        school = schooling(pop, cand, (mo.start_day + mo.end_day) // 2, self.areas, tl.first_day)
        keep = school.compulsory & (school.grade >= 4)
        cand, sch = cand[keep], school.school[keep]
        # each school picks one school day in the month for its round
        offset = rng.integers(5, max(6, mo.days - 5), len(self.areas.school_code))
        day_of_school = mo.start_day + offset
        for _ in range(7):
            pos = tl.offset(day_of_school).clip(0, len(tl.is_school_day) - 1)
            day_of_school = np.where(tl.is_school_day[pos], day_of_school, day_of_school + 1)
        day = day_of_school[sch]
        take = (
            self._present(cand, day)
            & ~self._out_on(cand, day, book)
            & (rng.random(len(cand)) < 0.88)
        )
        kids, day = cand[take], day[take]
        rec = day + rng.integers(5, 31, len(kids))
        rec = self._after_registry(kids, rec, day)
        out.add(self._screen_block(kids, day, rec, ev.x_start[kids], codes.SCREEN_SCHOOL))

    # -- incidents -----------------------------------------------------------------------------
    def _incidents(self, out: MonthLedgers, ev: MonthEvents, m: int, label: int) -> None:
        pop, rng = self.pop, self.rng
        n_out = len(ev.out_child)
        comp = np.asarray([c.name for c in COMPONENTS], dtype=object)[ev.out_component]
        domain = np.asarray([c.domain for c in COMPONENTS], dtype=object)[ev.out_component]
        child, day = ev.out_child, ev.out_day
        hh = pop.c_hh[child]
        school = schooling(
            pop, child, self.tl.months[m].start_day + 14, self.areas, self.tl.first_day
        )
        kind = comp.copy()
        breakdown = domain == "breakdown"
        alone = (pop.hh_relation[hh] == codes.NOBODY) & ~school.boarding
        kind[breakdown] = np.where(alone[breakdown], "living_alone", "no_guardian")
        mental = domain == "mental"
        names = np.asarray([k for k, _ in MENTAL_KINDS], dtype=object)
        shares = np.asarray([s for _, s in MENTAL_KINDS])
        kind[mental] = names[rng.choice(len(names), int(mental.sum()), p=shares)]
        # accidental injuries follow the same recording path
        inj_child, inj_day = ev.injury_child, ev.injury_day
        all_child = np.concatenate([child, inj_child])
        all_day = np.concatenate([day, inj_day])
        all_kind = np.concatenate(
            [kind, np.full(len(inj_child), "accidental_injury", dtype=object)]
        )
        is_dropout = np.concatenate([domain == "dropout", np.zeros(len(inj_child), dtype=bool)])
        n = len(all_child)
        base_p = np.asarray(
            [HARM_RECORDING[k][0] if k in HARM_RECORDING else 0.0 for k in all_kind]
        )
        police_p = np.asarray(
            [HARM_RECORDING[k][1] if k in HARM_RECORDING else 0.0 for k in all_kind]
        )
        source_p = np.asarray(
            [HARM_RECORDING[k][2] if k in HARM_RECORDING else (1, 0, 0, 0) for k in all_kind]
        ).reshape(n, 4)
        source = (rng.random(n)[:, None] > np.cumsum(source_p, axis=1)).sum(axis=1)
        source = np.minimum(source, 3)
        village = pop.hh_village[pop.c_hh[all_child]]
        quality = self.areas.village_quality[village]
        visited = pop.c_last_visit[all_child] >= all_day - params.RECORD_VISIT_WINDOW
        village_src = source == _SOURCE_ORDER.index("village")
        p = (
            base_p
            * np.sqrt(quality)
            * np.where(village_src & ~visited, params.RECORD_UNVISITED_FACTOR, 1.0)
        )
        p = np.where(village_src & visited, np.minimum(1.0, p * 1.3), p)
        rec_ok = (rng.random(n) < p) & ~is_dropout
        sel = np.flatnonzero(rec_ok)
        s_child, s_day, s_kind, s_src = all_child[sel], all_day[sel], all_kind[sel], source[sel]
        k = len(sel)
        lag = np.select(
            [s_src == 0, s_src == 1, s_src == 2],
            [rng.integers(0, 6, k), rng.integers(0, 8, k), rng.integers(1, 11, k)],
            default=self._lag(village[sel], 1.5) if k else np.zeros(0, dtype=np.int64),
        )
        rec = self._after_registry(s_child, s_day + lag, s_day)
        police = (s_src == 0) | (rng.random(k) < police_p[sel])
        receipt = self._serial("receipt", k, label)
        receipt = np.where(police & (rng.random(k) < 0.9), receipt, NA_INT)
        reporter_names = [
            _REPORTER_OF_SOURCE[_SOURCE_ORDER[s]][
                int(rng.integers(0, len(_REPORTER_OF_SOURCE[_SOURCE_ORDER[s]])))
            ]
            for s in s_src
        ]
        reporter = np.asarray([codes.REPORTERS[r] for r in reporter_names], dtype=np.int64)
        reporter = np.where(
            (reporter == codes.REPORTERS["school"])
            & (np.floor((s_day - pop.c_birth[s_child]) / YEAR) < 6),
            codes.REPORTERS["kindergarten"],
            reporter,
        )
        sources = np.asarray([codes.SOURCES[_SOURCE_ORDER[s]] for s in s_src], dtype=np.int64)
        outcome = rng.choice(
            [codes.OUT_RESOLVED, codes.OUT_REFERRED, codes.OUT_ONGOING], k, p=[0.25, 0.35, 0.4]
        )
        types = np.asarray([codes.INCIDENT_TYPES[t] for t in s_kind], dtype=np.int64)
        serial = self._serial("incidents", k, label)
        out.add(
            RowBlock(
                "incidents",
                {
                    "incident_id": serial,
                    "id_number": s_child,
                    "event_date": s_day,
                    "incident_type": types,
                    "reporter": reporter,
                    "source_system": sources,
                    "reported_to_police": police.astype(np.int64),
                    "police_receipt": receipt,
                    "outcome": outcome,
                    "recorded_at": rec,
                    "_child": s_child,
                    "_village": village[sel],
                    "_rec": rec,
                    "_evt": s_day,
                },
            )
        )
        pop.c_last_alert[s_child] = np.maximum(pop.c_last_alert[s_child], s_day)
        # the health service screens children after a recorded mental-health crisis
        mental_rec = np.isin(s_kind, [k for k, _ in MENTAL_KINDS]) & (rng.random(k) < 0.6)
        f_child = s_child[mental_rec]
        f_day = s_day[mental_rec] + rng.integers(7, 41, len(f_child))
        f_rec = self._after_registry(f_child, f_day + rng.integers(1, 15, len(f_child)), f_day)
        out.add(
            self._screen_block(f_child, f_day, f_rec, pop.c_x[f_child] + 0.5, codes.SCREEN_HEALTH)
        )

        # truth links for the month's outcome events
        recorded = np.zeros(n_out, dtype=bool)
        rec_day = np.full(n_out, NEVER, dtype=np.int64)
        record_id = [""] * n_out
        table = [""] * n_out
        inc_ids = _format_ids("SJ", serial)
        for j, pos in enumerate(sel):
            if pos < n_out:
                recorded[pos] = True
                rec_day[pos] = rec[j]
                record_id[pos] = inc_ids[j]
                table[pos] = "incidents"
        out.outcomes = OutcomeLinks(recorded, table, record_id, rec_day, [str(v) for v in kind])
        inj_rec = np.zeros(len(inj_child), dtype=bool)
        inj_ids = [""] * len(inj_child)
        for j, pos in enumerate(sel):
            if pos >= n_out:
                inj_rec[pos - n_out] = rec[j] <= self.tl.period_end_day
                inj_ids[pos - n_out] = inc_ids[j]
        out.injuries = InjuryLinks(inj_rec, inj_ids)


def _one_row_per_key(out: MonthLedgers, table: str, date_column: str) -> None:
    """Keep the first of the month's rows for a child and date.

    A file written on joining, a filed change and a quarterly update can fall on the same day;
    the ledger's natural key (child, date) would read the later ones as corrections of the
    first, so only the first is kept.
    """
    blocks = out.blocks.get(table)
    if not blocks:
        return
    block = RowBlock.concat(table, blocks)
    key = block["_child"].astype(np.int64) * 10_000_000 + block[date_column].astype(np.int64)
    first = np.sort(np.unique(key, return_index=True)[1])
    out.blocks[table] = [block.take(first)]


def _format_ids(prefix: str, serial: IntArray) -> list[str]:
    return [f"{prefix}{int(s)}" for s in serial]


ID_PREFIX = {"visits": "ZF", "school_events": "KB", "incidents": "SJ", "receipt": "J"}

__all__ = ["ACTIONS", "ID_PREFIX", "NEEDS", "LedgerBuilder", "MonthLedgers", "OutcomeLinks"]
