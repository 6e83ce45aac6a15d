"""Insert raw ledger rows straight into a store created by ``features.rawstore.connect``.

Tests state only what matters to them (``factory.visit("c-1", "2024-03-01", child_seen=False)``);
every other column gets a plausible default, ``recorded_at`` defaults to the event date and
``_seq`` comes from the store's own sequence unless a test pins it.
"""

from __future__ import annotations

import hashlib
from datetime import date
from itertools import count
from pathlib import Path
from typing import Any

import duckdb

from features.rawstore import connect, raw_table, stored_columns
from features.schema import TABLES_BY_NAME

Day = date | str


def as_date(value: Day | None) -> date | None:
    """Accept ``date`` or ISO text."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(value)


_DEFAULTS: dict[str, dict[str, Any]] = {
    "areas": {
        "level": "village",
        "area_name": "某村",
        "parent_code": None,
        "effective_date": "2015-01-01",
    },
    "children": {
        "household_pid": "h-0",
        "sex": "female",
        "birth_date": "2014-05-01",
        "ethnicity": "han",
        "hukou_status": "rural",
        "village_code": "500101001001",
        "school_code": "S1",
        "left_behind_type": "both_away",
        "disability": False,
        "serious_illness": False,
        "poverty_status": "none",
        "status": "active",
        "exit_reason": None,
    },
    "guardianship": {
        "caregiver_relation": "grandparent",
        "caregiver_age": 66,
        "caregiver_health": "fair",
        "capacity": "normal",
        "agreement_signed": True,
        "parent_contact": "weekly",
        "parent_last_visit": None,
        "adult_woman_in_household": True,
        "living_arrangement": "with_caregiver",
    },
    "visits": {
        "visitor_role": "child_director",
        "child_seen": True,
        "living_arrangement": "with_caregiver",
        "guardian_present": True,
        "guardian_capable": True,
        "home_hazards": "none",
        "injury_signs": False,
        "neglect_signs": False,
        "emotional_state": "good",
        "needs": None,
        "actions": None,
    },
    "enrolments": {"school_code": "S1", "grade": 4, "boarding": False, "enrol_status": "enrolled"},
    "attendance": {"school_code": "S1", "school_days": 5, "excused_days": 0, "unexcused_days": 1},
    "results": {"school_code": "S1", "average_score": 75.0, "failed_subjects": 0},
    "school_events": {"school_code": "S1", "kind": "suspected_dropout", "absent_days": 6},
    "screenings": {
        "screener": "school",
        "depression_score": 10,
        "anxiety_score": 12,
        "suicidal_ideation": False,
        "positive": False,
    },
    "incidents": {
        "incident_type": "accidental_injury",
        "reporter": "school",
        "source_system": "school",
        "reported_to_police": False,
        "police_receipt": None,
        "outcome": "resolved",
    },
}


class RawFactory:
    """Writes raw rows with defaults; one instance per store connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._ids = count(1)

    @classmethod
    def create(cls, path: Path) -> RawFactory:
        """A factory over a new store file."""
        return cls(connect(path))

    def add(self, table: str, *, seq: int | None = None, **values: Any) -> int:
        """Insert one row of ``raw_<table>``; return its ``_seq``."""
        spec = TABLES_BY_NAME[table]
        row: dict[str, Any] = dict(_DEFAULTS[table])
        row.update(values)
        if row.get("recorded_at") is None:
            row["recorded_at"] = row[spec.event_time]
        columns = [name for name, _ in stored_columns(spec)]
        unknown = set(row) - set(columns)
        if unknown:
            raise KeyError(f"{table} has no stored columns {sorted(unknown)}")
        for name, sql_type in stored_columns(spec):
            if sql_type == "DATE":
                row[name] = as_date(row.get(name))
        if seq is None:
            fetched = self.con.execute("SELECT nextval('raw_seq')").fetchone()
            assert fetched is not None
            seq = int(fetched[0])
        digest = hashlib.sha256(repr(sorted(row.items())).encode()).hexdigest()
        placeholders = ", ".join("?" for _ in range(len(columns) + 4))
        self.con.execute(
            f"INSERT INTO {raw_table(spec)} ({', '.join(columns)}, _seq, _file_id, _row, "
            f"_row_hash) VALUES ({placeholders})",
            [*(row.get(c) for c in columns), seq, 1, next(self._ids), digest],
        )
        return seq

    # -- one helper per ledger, with the arguments tests vary most -----------------------------
    def area(self, code: str, level: str, parent: str | None, **kw: Any) -> int:
        """An area row (``recorded_at`` defaults to its effective date)."""
        return self.add("areas", area_code=code, level=level, parent_code=parent, **kw)

    def hierarchy(
        self, village: str = "500101001001", township: str = "500101001", county: str = "500101"
    ) -> None:
        """A county, a township and a village, effective since 2015."""
        self.area(county, "county", "500100")
        self.area(township, "township", county)
        self.area(village, "village", township)

    def child(self, pid: str, registered: Day = "2020-01-01", **kw: Any) -> int:
        """A registry version of a child's file."""
        return self.add("children", child_id=pid, registered_date=registered, **kw)

    def guardianship(self, pid: str, change_date: Day, **kw: Any) -> int:
        """A guardianship state beginning on ``change_date``."""
        return self.add("guardianship", child_id=pid, change_date=change_date, **kw)

    def visit(self, pid: str, visit_date: Day, visit_id: str | None = None, **kw: Any) -> int:
        """A home visit (a fresh ``visit_id`` unless a correction names one)."""
        vid = visit_id or f"v-{next(self._ids)}"
        return self.add("visits", visit_id=vid, child_id=pid, visit_date=visit_date, **kw)

    def enrolment(self, pid: str, change_date: Day, **kw: Any) -> int:
        """An enrolment state from ``change_date``."""
        return self.add("enrolments", child_id=pid, change_date=change_date, **kw)

    def absence(self, pid: str, week_start: Day, **kw: Any) -> int:
        """A weekly absence report row."""
        return self.add("attendance", child_id=pid, week_start=week_start, **kw)

    def result(self, pid: str, term_end: Day, **kw: Any) -> int:
        """A term result."""
        return self.add("results", child_id=pid, term_end=term_end, **kw)

    def school_event(
        self, pid: str, event_date: Day, event_id: str | None = None, **kw: Any
    ) -> int:
        """A dropout-control record."""
        eid = event_id or f"e-{next(self._ids)}"
        return self.add("school_events", event_id=eid, child_id=pid, event_date=event_date, **kw)

    def screening(self, pid: str, screen_date: Day, **kw: Any) -> int:
        """A psychological screening."""
        return self.add("screenings", child_id=pid, screen_date=screen_date, **kw)

    def incident(self, pid: str, event_date: Day, incident_id: str | None = None, **kw: Any) -> int:
        """An incident or mandatory report."""
        iid = incident_id or f"i-{next(self._ids)}"
        return self.add("incidents", incident_id=iid, child_id=pid, event_date=event_date, **kw)

    def clear(self) -> None:
        """Empty every raw table and drop what the feature store derived from them.

        Raw tables only ever grow in a real store, which is what the feature store's
        freshness stamps rely on; emptying them makes a new store, so its derived tables go too.
        """
        for spec in TABLES_BY_NAME.values():
            self.con.execute(f"DELETE FROM {raw_table(spec)}")
        derived = self.con.sql(
            "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'pit\\_%' ESCAPE '\\'"
        ).fetchall()
        for (name,) in derived:
            self.con.execute(f"DROP TABLE {name}")
