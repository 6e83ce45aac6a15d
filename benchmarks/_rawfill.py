"""Fill a store's raw tables with plausible random rows, fast, for speed and memory figures.

This is not the synthetic population (``features.synthetic``, with hidden truth and ledger
files): it writes straight into ``raw_<table>`` with vectorised numpy, handed to DuckDB as
Arrow tables, so a million children and twenty million visits take a minute, not an hour.
Shapes follow the real ledgers: about one visit a month, absence-only weekly reports,
occasional corrections (same natural key, recorded later) and late entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class FillSizes:
    """Rows per raw table; the defaults are the 1M-children benchmark."""

    children: int = 1_000_000
    visits: int = 20_000_000
    attendance: int = 7_000_000
    guardianship: int = 2_000_000
    enrolments: int = 1_200_000
    results: int = 3_000_000
    school_events: int = 200_000
    screenings: int = 1_000_000
    incidents: int = 150_000
    villages: int = 5_000
    schools: int = 2_000
    correction_share: float = 0.01

    def scaled(self, factor: float) -> FillSizes:
        """The same shape with every row count multiplied by ``factor``."""

        def n(x: int) -> int:
            return max(int(x * factor), 1)

        return FillSizes(
            children=n(self.children),
            visits=n(self.visits),
            attendance=n(self.attendance),
            guardianship=n(self.guardianship),
            enrolments=n(self.enrolments),
            results=n(self.results),
            school_events=n(self.school_events),
            screenings=n(self.screenings),
            incidents=n(self.incidents),
            villages=max(n(self.villages), 10),
            schools=max(n(self.schools), 5),
            correction_share=self.correction_share,
        )


def _codes(values: list[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


class _Filler:
    def __init__(
        self, con: duckdb.DuckDBPyConnection, sizes: FillSizes, end: date, seed: int
    ) -> None:
        self.con = con
        self.sizes = sizes
        self.rng = np.random.default_rng(seed)
        self.start = end - timedelta(days=730)
        self.days = 730
        self.seq = 0

    def _insert(self, table: str, columns: dict[str, np.ndarray], select: str) -> int:
        n = len(next(iter(columns.values())))
        seq = np.arange(self.seq + 1, self.seq + n + 1, dtype=np.int64)
        self.seq += n
        arrow = pa.table({**columns, "seq": seq})
        self.con.register("_fill", arrow)
        try:
            self.con.execute(
                f"INSERT INTO raw_{table} BY NAME SELECT {select}, seq AS _seq, "
                "1 AS _file_id, CAST(seq % 100000 AS INTEGER) + 2 AS _row, "
                "CAST(seq AS VARCHAR) AS _row_hash FROM _fill"
            )
        finally:
            self.con.unregister("_fill")
        return n

    def _day(self, expr: str) -> str:
        return f"DATE '{self.start.isoformat()}' + CAST({expr} AS INTEGER)"

    def _lag(self, n: int, p: float = 0.15, cap: int = 120) -> np.ndarray:
        return np.minimum(self.rng.geometric(p, n) - 1, cap).astype(np.int32)

    def _child(self, n: int) -> np.ndarray:
        return self.rng.integers(0, self.sizes.children, n, dtype=np.int64)

    def _with_corrections(self, cols: dict[str, np.ndarray], key: str) -> dict[str, np.ndarray]:
        """Append re-recorded copies of a few rows (same key, recorded later, values flipped)."""
        n = len(cols[key])
        pick = self.rng.choice(n, int(n * self.sizes.correction_share), replace=False)
        extra = {k: v[pick].copy() for k, v in cols.items()}
        extra["lag"] = extra["lag"] + self.rng.integers(1, 30, len(pick)).astype(np.int32)
        for k, v in extra.items():
            if v.dtype == np.bool_:
                extra[k] = ~v
        return {k: np.concatenate([cols[k], extra[k]]) for k in cols}

    def areas(self) -> int:
        v, t = self.sizes.villages, max(self.sizes.villages // 20, 1)
        counties = max(t // 20, 1)
        codes = np.arange(counties + t + v, dtype=np.int64)
        level = np.concatenate([np.zeros(counties), np.ones(t), np.full(v, 2)]).astype(np.int8)
        parent = np.concatenate(
            [
                np.full(counties, -1),
                self.rng.integers(0, counties, t),
                counties + self.rng.integers(0, t, v),
            ]
        ).astype(np.int64)
        select = (
            "printf('A%011d', code) AS area_code, ['county', 'township', 'village'][level + 1] "
            "AS level, 'area' AS area_name, CASE WHEN parent >= 0 THEN printf('A%011d', parent) "
            "END AS parent_code, DATE '2015-01-01' AS effective_date, "
            "DATE '2015-01-01' AS recorded_at"
        )
        return self._insert("areas", {"code": codes, "level": level, "parent": parent}, select)

    def children(self) -> int:
        s, rng = self.sizes, self.rng
        first_village = max(s.villages // 20 // 20, 1) + max(s.villages // 20, 1)
        n = s.children
        idx = np.arange(n, dtype=np.int64)
        extra = rng.choice(n, n // 20, replace=False)
        ids = np.concatenate([idx, extra])
        m = len(ids)
        cols = {
            "child": ids,
            "sex": rng.integers(0, 2, m).astype(np.int8),
            "birth": (-rng.integers(3 * 365, 16 * 365, m) + self.days).astype(np.int32),
            "eth": rng.choice(5, m, p=[0.8, 0.08, 0.06, 0.03, 0.03]).astype(np.int8),
            "hukou": rng.choice(3, m, p=[0.9, 0.09, 0.01]).astype(np.int8),
            "village": (first_village + ids % s.villages).astype(np.int64),
            "school": (ids % s.schools).astype(np.int64),
            "lbt": rng.choice(2, m, p=[0.8, 0.2]).astype(np.int8),
            "disability": rng.random(m) < 0.03,
            "illness": rng.random(m) < 0.02,
            "poverty": rng.choice(3, m, p=[0.85, 0.12, 0.03]).astype(np.int8),
            "exited": np.concatenate([np.zeros(n, bool), rng.random(len(extra)) < 0.5]),
            "reg": np.concatenate(
                [rng.integers(-1500, 200, n), rng.integers(200, self.days, len(extra))]
            ).astype(np.int32),
            "lag": self._lag(m),
        }
        select = (
            "printf('c-%016x', child) AS child_id, printf('h-%016x', child // 2) AS "
            "household_pid, ['male', 'female'][sex + 1] AS sex, "
            f"{self._day('birth')} AS birth_date, "
            f"{_codes(['han', 'tujia', 'miao', 'yi', 'other'])}[eth + 1] AS ethnicity, "
            f"{_codes(['rural', 'urban', 'none'])}[hukou + 1] AS hukou_status, "
            "printf('A%011d', village) AS village_code, printf('S%05d', school) AS school_code, "
            f"{_codes(['both_away', 'one_away_other_incapable'])}[lbt + 1] AS left_behind_type, "
            "disability, illness AS serious_illness, "
            f"{_codes(['none', 'dibao', 'tekun'])}[poverty + 1] AS poverty_status, "
            "CASE WHEN exited THEN 'exited' ELSE 'active' END AS status, "
            "CASE WHEN exited THEN 'moved' END AS exit_reason, "
            f"{self._day('reg')} AS registered_date, {self._day('reg + lag')} AS recorded_at"
        )
        return self._insert("children", cols, select)

    def guardianship(self) -> int:
        s, rng = self.sizes, self.rng
        n = s.guardianship
        child = np.concatenate([np.arange(min(n, s.children)), self._child(max(n - s.children, 0))])
        cols = {
            "child": child,
            "day": np.where(
                np.arange(len(child)) < s.children,
                -rng.integers(1, 1500, len(child)),
                rng.integers(0, self.days, len(child)),
            ).astype(np.int32),
            "rel": rng.choice(5, len(child), p=[0.75, 0.1, 0.08, 0.05, 0.02]).astype(np.int8),
            "age": rng.integers(25, 85, len(child)).astype(np.int32),
            "health": rng.choice(4, len(child), p=[0.4, 0.4, 0.15, 0.05]).astype(np.int8),
            "cap": rng.choice(4, len(child), p=[0.8, 0.12, 0.05, 0.03]).astype(np.int8),
            "agreement": rng.random(len(child)) < 0.6,
            "contact": rng.choice(5, len(child), p=[0.5, 0.3, 0.1, 0.07, 0.03]).astype(np.int8),
            "parent_visit": rng.integers(-400, 0, len(child)).astype(np.int32),
            "woman": rng.random(len(child)) < 0.8,
            "living": rng.choice(4, len(child), p=[0.85, 0.1, 0.02, 0.03]).astype(np.int8),
            "lag": self._lag(len(child)),
        }
        cols = self._with_corrections(cols, "child")
        select = (
            "printf('c-%016x', child) AS child_id, "
            f"{self._day('day')} AS change_date, "
            f"{_codes(['grandparent', 'relative', 'parent', 'entrusted', 'none'])}[rel + 1] "
            "AS caregiver_relation, age AS caregiver_age, "
            f"{_codes(['good', 'fair', 'poor', 'critical'])}[health + 1] AS caregiver_health, "
            f"{_codes(['normal', 'insufficient', 'improper', 'absent'])}[cap + 1] AS capacity, "
            "agreement AS agreement_signed, "
            f"{_codes(['weekly', 'monthly', 'quarterly', 'yearly', 'never'])}[contact + 1] "
            f"AS parent_contact, {self._day('day + parent_visit')} AS parent_last_visit, "
            "woman AS adult_woman_in_household, "
            f"{_codes(['with_caregiver', 'boarding', 'alone', 'unknown'])}[living + 1] "
            f"AS living_arrangement, {self._day('day + lag')} AS recorded_at"
        )
        return self._insert("guardianship", cols, select)

    def visits(self) -> int:
        rng, n = self.rng, self.sizes.visits
        cols = {
            "id": np.arange(n, dtype=np.int64),
            "child": self._child(n),
            "day": rng.integers(0, self.days, n).astype(np.int32),
            "role": rng.integers(0, 5, n).astype(np.int8),
            "seen": rng.random(n) < 0.9,
            "living": rng.choice(4, n, p=[0.85, 0.1, 0.02, 0.03]).astype(np.int8),
            "present": rng.random(n) < 0.85,
            "capable": rng.random(n) < 0.9,
            "hazard": rng.choice(5, n, p=[0.8, 0.08, 0.05, 0.04, 0.03]).astype(np.int8),
            "injury": rng.random(n) < 0.01,
            "neglect": rng.random(n) < 0.03,
            "emotion": rng.choice(4, n, p=[0.6, 0.3, 0.08, 0.02]).astype(np.int8),
            "lag": self._lag(n),
        }
        cols = self._with_corrections(cols, "id")
        hazards = _codes(["none", "water", "fire;electricity", "water;building", "traffic"])
        roles = _codes(
            ["child_director", "child_supervisor", "village_cadre", "social_worker", "teacher"]
        )
        select = (
            "printf('v-%d', id) AS visit_id, printf('c-%016x', child) AS child_id, "
            f"{self._day('day')} AS visit_date, "
            f"{roles}[role + 1] AS visitor_role, seen AS child_seen, "
            f"{_codes(['with_caregiver', 'boarding', 'alone', 'unknown'])}[living + 1] "
            "AS living_arrangement, present AS guardian_present, capable AS guardian_capable, "
            f"{hazards}[hazard + 1] AS home_hazards, injury AS injury_signs, "
            "neglect AS neglect_signs, "
            f"{_codes(['good', 'fair', 'low', 'severe'])}[emotion + 1] AS emotional_state, "
            f"NULL AS needs, NULL AS actions, {self._day('day + lag')} AS recorded_at"
        )
        return self._insert("visits", cols, select)

    def attendance(self) -> int:
        rng, n = self.rng, self.sizes.attendance
        monday = (7 - self.start.weekday()) % 7
        child = self._child(n)
        cols = {
            "child": child,
            "week": (monday + 7 * rng.integers(0, self.days // 7 - 1, n)).astype(np.int32),
            "excused": rng.integers(0, 3, n).astype(np.int32),
            "unexcused": rng.choice(4, n, p=[0.3, 0.4, 0.2, 0.1]).astype(np.int32),
            "lag": (self._lag(n, 0.3, 60) + 4).astype(np.int32),
            "school": (child % self.sizes.schools).astype(np.int64),
        }
        select = (
            "printf('c-%016x', child) AS child_id, printf('S%05d', school) AS school_code, "
            f"{self._day('week')} AS week_start, 5 AS school_days, excused AS excused_days, "
            f"unexcused AS unexcused_days, {self._day('week + lag')} AS recorded_at"
        )
        return self._insert("attendance", cols, select)

    def enrolments(self) -> int:
        rng, n = self.rng, self.sizes.enrolments
        child = self._child(n)
        cols = {
            "child": child,
            "day": rng.integers(-300, self.days, n).astype(np.int32),
            "grade": rng.integers(0, 10, n).astype(np.int32),
            "boarding": rng.random(n) < 0.3,
            "status": rng.choice(4, n, p=[0.95, 0.01, 0.03, 0.01]).astype(np.int8),
            "lag": self._lag(n),
            "school": (child % self.sizes.schools).astype(np.int64),
        }
        select = (
            "printf('c-%016x', child) AS child_id, printf('S%05d', school) AS school_code, "
            "grade, boarding, "
            f"{_codes(['enrolled', 'suspended', 'transferred', 'dropped_out'])}[status + 1] "
            f"AS enrol_status, {self._day('day')} AS change_date, "
            f"{self._day('day + lag')} AS recorded_at"
        )
        return self._insert("enrolments", cols, select)

    def results(self) -> int:
        rng, n = self.rng, self.sizes.results
        child = self._child(n)
        cols = {
            "child": child,
            "term": (rng.integers(0, 4, n) * 182 + 5).astype(np.int32),
            "score": rng.normal(72, 12, n).clip(0, 100),
            "failed": rng.poisson(0.4, n).astype(np.int32),
            "lag": self._lag(n),
            "school": (child % self.sizes.schools).astype(np.int64),
        }
        select = (
            "printf('c-%016x', child) AS child_id, printf('S%05d', school) AS school_code, "
            f"{self._day('term')} AS term_end, score AS average_score, "
            f"failed AS failed_subjects, {self._day('term + lag')} AS recorded_at"
        )
        return self._insert("results", cols, select)

    def school_events(self) -> int:
        rng, n = self.rng, self.sizes.school_events
        child = self._child(n)
        cols = {
            "id": np.arange(n, dtype=np.int64),
            "child": child,
            "day": rng.integers(0, self.days, n).astype(np.int32),
            "kind": rng.choice(5, n, p=[0.4, 0.1, 0.3, 0.05, 0.15]).astype(np.int8),
            "absent": rng.integers(5, 60, n).astype(np.int32),
            "lag": self._lag(n),
            "school": (child % self.sizes.schools).astype(np.int64),
        }
        kinds = _codes(["suspected_dropout", "dropout", "persuasion", "written_report", "returned"])
        select = (
            "printf('e-%d', id) AS event_id, printf('c-%016x', child) AS child_id, "
            f"printf('S%05d', school) AS school_code, {self._day('day')} AS event_date, "
            f"{kinds}[kind + 1] AS kind, absent AS absent_days, "
            f"{self._day('day + lag')} AS recorded_at"
        )
        return self._insert("school_events", cols, select)

    def screenings(self) -> int:
        rng, n = self.rng, self.sizes.screenings
        cols = {
            "child": self._child(n),
            "day": rng.integers(0, self.days, n).astype(np.int32),
            "screener": rng.integers(0, 2, n).astype(np.int8),
            "dep": rng.integers(0, 61, n).astype(np.int32),
            "anx": rng.integers(0, 83, n).astype(np.int32),
            "ideation": rng.random(n) < 0.03,
            "positive": rng.random(n) < 0.1,
            "lag": self._lag(n),
        }
        select = (
            "printf('c-%016x', child) AS child_id, "
            f"{self._day('day')} AS screen_date, ['school', 'health'][screener + 1] AS screener, "
            "dep AS depression_score, anx AS anxiety_score, ideation AS suicidal_ideation, "
            f"positive, {self._day('day + lag')} AS recorded_at"
        )
        return self._insert("screenings", cols, select)

    def incidents(self) -> int:
        rng, n = self.rng, self.sizes.incidents
        types = [
            "living_alone",
            "no_guardian",
            "missing",
            "begging",
            "domestic_violence",
            "abuse",
            "sexual_abuse",
            "unlawful_harm",
            "serious_injury",
            "accidental_injury",
            "drowning",
            "suicide_attempt",
            "self_harm",
            "mental_crisis",
        ]
        cols = {
            "id": np.arange(n, dtype=np.int64),
            "child": self._child(n),
            "day": rng.integers(0, self.days, n).astype(np.int32),
            "type": rng.integers(0, len(types), n).astype(np.int8),
            "source": rng.integers(0, 4, n).astype(np.int8),
            "police": rng.random(n) < 0.4,
            "lag": self._lag(n),
        }
        select = (
            "printf('i-%d', id) AS incident_id, printf('c-%016x', child) AS child_id, "
            f"{self._day('day')} AS event_date, {_codes(types)}[type + 1] AS incident_type, "
            "'village' AS reporter, "
            f"{_codes(['police', 'health', 'school', 'village'])}[source + 1] AS source_system, "
            "police AS reported_to_police, NULL AS police_receipt, 'resolved' AS outcome, "
            f"{self._day('day + lag')} AS recorded_at"
        )
        return self._insert("incidents", cols, select)


def fill(
    con: duckdb.DuckDBPyConnection,
    sizes: FillSizes | None = None,
    *,
    end: date = date(2025, 6, 30),
    seed: int = 0,
) -> dict[str, int]:
    """Append random rows to every raw table; return rows written per table.

    Event dates span the two years before ``end``; recorded dates lag them (a few rows are
    recorded after ``end``, as late entries are).
    """
    filler = _Filler(con, sizes or FillSizes(), end, seed)
    return {
        table: getattr(filler, table)()
        for table in (
            "areas",
            "children",
            "guardianship",
            "visits",
            "attendance",
            "enrolments",
            "results",
            "school_events",
            "screenings",
            "incidents",
        )
    }


__all__ = ["FillSizes", "fill"]
