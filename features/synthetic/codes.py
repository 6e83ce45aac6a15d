"""Integer positions of categorical codes, derived from the canonical schema.

The generator keeps categoricals as small integers (the position of the code in the schema's
``Column.codes``) and turns them into Chinese labels only when writing. Deriving every position
from ``features.schema`` means a reordered or renamed code fails loudly here instead of
silently writing the wrong label.
"""

from __future__ import annotations

from features.schema import TABLES_BY_NAME, Column


def column(table: str, name: str) -> Column:
    """The schema column ``name`` of ``table``."""
    return TABLES_BY_NAME[table].column(name)


def code_index(table: str, name: str, code: str) -> int:
    """Position of ``code`` among the codes of ``table.name``."""
    codes = [c.code for c in column(table, name).codes]
    if code not in codes:
        raise KeyError(f"{table}.{name} has no code {code!r}")
    return codes.index(code)


def _ix(table: str, name: str, *codes: str) -> tuple[int, ...]:
    return tuple(code_index(table, name, c) for c in codes)


MALE, FEMALE = _ix("children", "sex", "male", "female")
HAN, TUJIA, MIAO, YI, OTHER_ETHNIC = _ix(
    "children", "ethnicity", "han", "tujia", "miao", "yi", "other"
)
RURAL, URBAN, NO_HUKOU = _ix("children", "hukou_status", "rural", "urban", "none")
BOTH_AWAY, ONE_AWAY_INCAPABLE = _ix(
    "children", "left_behind_type", "both_away", "one_away_other_incapable"
)
POV_NONE, DIBAO, TEKUN = _ix("children", "poverty_status", "none", "dibao", "tekun")
ACTIVE, EXITED = _ix("children", "status", "active", "exited")
EXIT_PARENTS_RETURNED, EXIT_AGED_OUT, EXIT_MOVED, EXIT_OTHER = _ix(
    "children", "exit_reason", "parents_returned", "aged_out", "moved", "other"
)
GRANDPARENT, RELATIVE, PARENT, ENTRUSTED, NOBODY = _ix(
    "guardianship", "caregiver_relation", "grandparent", "relative", "parent", "entrusted", "none"
)
H_GOOD, H_FAIR, H_POOR, H_CRITICAL = _ix(
    "guardianship", "caregiver_health", "good", "fair", "poor", "critical"
)
K_NORMAL, K_INSUFFICIENT, K_IMPROPER, K_ABSENT = _ix(
    "guardianship", "capacity", "normal", "insufficient", "improper", "absent"
)
WEEKLY, MONTHLY, QUARTERLY, YEARLY, NEVER = _ix(
    "guardianship", "parent_contact", "weekly", "monthly", "quarterly", "yearly", "never"
)
WITH_CAREGIVER, BOARDING, ALONE, LIVING_UNKNOWN = _ix(
    "guardianship", "living_arrangement", "with_caregiver", "boarding", "alone", "unknown"
)
CHILD_DIRECTOR, SUPERVISOR, CADRE, SOCIAL_WORKER, TEACHER = _ix(
    "visits",
    "visitor_role",
    "child_director",
    "child_supervisor",
    "village_cadre",
    "social_worker",
    "teacher",
)
HAZ_NONE, HAZ_WATER, HAZ_ELECTRICITY, HAZ_FIRE, HAZ_BUILDING, HAZ_TRAFFIC = _ix(
    "visits", "home_hazards", "none", "water", "electricity", "fire", "building", "traffic"
)
EMO_GOOD, EMO_FAIR, EMO_LOW, EMO_SEVERE = _ix(
    "visits", "emotional_state", "good", "fair", "low", "severe"
)
ENROLLED, SUSPENDED, TRANSFERRED, DROPPED_OUT = _ix(
    "enrolments", "enrol_status", "enrolled", "suspended", "transferred", "dropped_out"
)
SE_SUSPECTED, SE_DROPOUT, SE_PERSUASION, SE_REPORT, SE_RETURNED = _ix(
    "school_events",
    "kind",
    "suspected_dropout",
    "dropout",
    "persuasion",
    "written_report",
    "returned",
)
SCREEN_SCHOOL, SCREEN_HEALTH = _ix("screenings", "screener", "school", "health")
INCIDENT_TYPES: dict[str, int] = {
    c.code: i for i, c in enumerate(column("incidents", "incident_type").codes)
}
REPORTERS: dict[str, int] = {c.code: i for i, c in enumerate(column("incidents", "reporter").codes)}
SOURCES: dict[str, int] = {
    c.code: i for i, c in enumerate(column("incidents", "source_system").codes)
}
OUT_RESOLVED, OUT_REFERRED, OUT_ONGOING = _ix(
    "incidents", "outcome", "resolved", "referred", "ongoing"
)
CITY, COUNTY, TOWNSHIP, VILLAGE = _ix("areas", "level", "city", "county", "township", "village")

__all__ = ["code_index", "column"]
