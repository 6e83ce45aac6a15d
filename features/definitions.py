"""Feature definitions: every feature declared once, as frozen data.

A ``FeatureView`` reads one raw table (``raw_<source>``) for one entity and declares
``Field`` s: an aggregation kind over a column, a window (days or a school term), an optional
declarative filter, and a ``Doc`` (Chinese and English caseworker wording, tier-policy
domain, unit, sensitivity). ``Derived`` features are pure functions from
``features.transforms`` applied to aggregated columns. Nothing here runs a query: the DuckDB
store (``features.store``) compiles these declarations to SQL, and the pandas reference
(``features.reference``) interprets the very same declarations, so training, scoring and
monitoring can never disagree about what a feature means.

Fields without a ``Doc`` are internal inputs (a birth date, a school code, the date of the
newest record) used by derived features or to identify the child; they are not features.

Point-in-time semantics (see ``docs/feature-store.md``): as of D a view sees the rows
recorded on or before D; among the rows sharing a ``version_key`` the later recorded one
(then the higher ``_seq``) is the record's version known on D; that version counts only if
its event date is on or before D. "Latest" values order by event date, then recorded date,
then ``_seq``, all descending.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Literal

import pandas as pd

from features import transforms as tf
from features.schema import (
    ATTENDANCE,
    CHILDREN,
    ENROLMENTS,
    GUARDIANSHIP,
    INCIDENTS,
    RESULTS,
    SCHOOL_EVENTS,
    SCREENINGS,
    VISITS,
    TableSpec,
)

Domain = Literal["health", "study_life", "guardianship", "safety"]
Sensitivity = Literal["standard", "protected"]
FeatureDType = Literal["int32", "float64", "boolean", "category", "string", "date"]
Agg = Literal[
    "count",  # records matching, 0 when none
    "sum",  # sum of a column, 0 when none
    "max",  # largest value, missing when none
    "days_since",  # days from the newest date in `column` (default: event date) to D
    "empty_periods",  # periods of `bucket_days`, counted back from D, with no record
    "latest",  # the column's value in the newest record
    "previous",  # the column's value in the record before the newest
]
Op = Literal["eq", "in", "is_true", "is_false", "gt", "contains_any"]
TermWindow = Literal["current_term", "previous_term"]

#: The four domains of the Chongqing plan (tier-policy.md), in the order explanations use.
DOMAINS: dict[str, tuple[str, str]] = {
    "health": ("身心健康", "physical and mental health"),
    "study_life": ("学习生活", "study and daily life"),
    "guardianship": ("家庭监护", "family guardianship"),
    "safety": ("安全保护", "safety and protection from harm"),
}


@dataclass(frozen=True)
class Entity:
    """What a feature row describes, and the stored column that identifies it."""

    name: str
    key: str
    doc: str


@dataclass(frozen=True)
class Filter:
    """One declarative row condition; a field's ``where`` is the AND of its filters.

    A missing value never matches (SQL three-valued logic, mirrored by the reference).
    ``contains_any`` tests a ``;``-separated multi-code column for any of ``values``.
    """

    column: str
    op: Op
    values: tuple[str | int | bool, ...] = ()


@dataclass(frozen=True)
class Window:
    """A look-back window: the last ``days`` days (D included), or a school term.

    ``current_term`` is the term in session on D (or, in a holiday, the last one that ended),
    from its first day to D at the latest; ``previous_term`` is the whole term before it.
    """

    days: int | None = None
    term: TermWindow | None = None

    @property
    def label(self) -> str:
        """Suffix used in column names: ``90d``, ``current_term`` or ``previous_term``."""
        return f"{self.days}d" if self.days is not None else str(self.term)


@dataclass(frozen=True)
class Doc:
    """How a feature is explained to a caseworker, grouped and protected."""

    zh: str
    en: str
    domain: Domain
    unit: str = ""
    sensitivity: Sensitivity = "standard"


@dataclass(frozen=True)
class Field:
    """One aggregated column of a view; a feature when it has a ``doc``."""

    name: str
    agg: Agg
    dtype: FeatureDType
    column: str | None = None
    window: Window | None = None
    where: tuple[Filter, ...] = ()
    bucket_days: int | None = None
    doc: Doc | None = None


@dataclass(frozen=True)
class FeatureView:
    """Fields computed from one raw table for one entity, as of a date.

    ``version_key`` names the stored columns that identify one record: a later-recorded row
    with the same key is a correction and replaces the earlier one. An empty key means every
    row counts on its own (no corrections).
    """

    name: str
    entity: Entity
    source: str
    event_time: str
    version_key: tuple[str, ...]
    fields: tuple[Field, ...]
    available_time: str = "recorded_at"
    doc: str = ""


@dataclass(frozen=True)
class Derived:
    """A feature computed by a pure function of aggregated (or calendar) columns."""

    name: str
    function: Callable[..., pd.Series]
    inputs: tuple[str, ...]
    dtype: FeatureDType
    doc: Doc | None = None
    window: Window | None = None


CHILD = Entity("child", key="child_id", doc="pseudonymised child id")
SCHOOL = Entity("school", key="school_code", doc="school code")

D30, D90, D180, D365 = Window(days=30), Window(days=90), Window(days=180), Window(days=365)
THIS_TERM, LAST_TERM = Window(term="current_term"), Window(term="previous_term")


def _stored_key(spec: TableSpec) -> tuple[str, ...]:
    return tuple("child_id" if k == "id_number" else k for k in spec.key)


def _eq(column: str, value: str | int | bool) -> Filter:
    return Filter(column, "eq", (value,))


def _in(column: str, *values: str) -> Filter:
    return Filter(column, "in", values)


def _true(column: str) -> Filter:
    return Filter(column, "is_true")


def _false(column: str) -> Filter:
    return Filter(column, "is_false")


# --- code groups the features and the labels share -------------------------------------------
HARM_INCIDENTS = ("domestic_violence", "abuse", "sexual_abuse", "unlawful_harm")
INJURY_INCIDENTS = ("serious_injury", "accidental_injury", "drowning")
#: Injuries the tier policy names as serious (a near-drowning is one); an accidental injury
#: is not a mandatory-report situation on its own.
SERIOUS_INJURY_INCIDENTS = ("serious_injury", "drowning")
MENTAL_HEALTH_INCIDENTS = ("suicide_attempt", "self_harm", "mental_crisis")
GUARDIANSHIP_INCIDENTS = ("living_alone", "no_guardian")
MISSING_INCIDENTS = ("missing", "begging")
DROPOUT_EVENTS = ("suspected_dropout", "dropout")
GUARDIANSHIP_GAPS = ("insufficient", "improper", "absent")
HOME_HAZARDS = ("water", "electricity", "fire", "building", "traffic")


def _windowed(
    stem: str,
    windows: tuple[Window, ...],
    agg: Agg,
    zh: str,
    en: str,
    domain: Domain,
    unit: str,
    *,
    column: str | None = None,
    where: tuple[Filter, ...] = (),
    dtype: FeatureDType = "int32",
) -> tuple[Field, ...]:
    """The same aggregation over several day windows (``{n}`` in the texts is the window)."""
    return tuple(
        Field(
            f"{stem}_{w.label}",
            agg,
            dtype,
            column=column,
            window=w,
            where=where,
            doc=Doc(zh.format(n=w.days), en.format(n=w.days), domain, unit),
        )
        for w in windows
    )


REGISTRY = FeatureView(
    name="registry",
    entity=CHILD,
    source=CHILDREN.name,
    event_time=CHILDREN.event_time,
    # Registry rows are dated versions of a child's file (key: child and registered_date).
    version_key=_stored_key(CHILDREN),
    doc="the child's file in the registry (latest version known on D)",
    fields=(
        Field("registry_status", "latest", "string", column="status"),
        Field("birth_date", "latest", "date", column="birth_date"),
        Field("household_pid", "latest", "string", column="household_pid"),
        Field("village_code", "latest", "string", column="village_code"),
        Field("registry_school_code", "latest", "string", column="school_code"),
        Field("days_since_record_registry", "days_since", "float64", column="recorded_at"),
        Field("sex", "latest", "category", column="sex", doc=Doc("性别", "sex", "safety")),
        Field(
            "ethnicity",
            "latest",
            "category",
            column="ethnicity",
            doc=Doc(
                "民族(仅用于公平性审计,不作为模型特征)",
                "ethnicity (for fairness audits only, never a model feature)",
                "guardianship",
                sensitivity="protected",
            ),
        ),
        Field(
            "hukou_status",
            "latest",
            "category",
            column="hukou_status",
            doc=Doc("户籍状况", "household registration", "safety"),
        ),
        Field(
            "left_behind_type",
            "latest",
            "category",
            column="left_behind_type",
            doc=Doc("留守类型", "left-behind type", "guardianship"),
        ),
        Field(
            "disability",
            "latest",
            "boolean",
            column="disability",
            doc=Doc("是否残疾", "has a disability", "health"),
        ),
        Field(
            "serious_illness",
            "latest",
            "boolean",
            column="serious_illness",
            doc=Doc("是否患重病", "has a serious illness", "health"),
        ),
        Field(
            "poverty_status",
            "latest",
            "category",
            column="poverty_status",
            doc=Doc(
                "困难救助类型(低保、特困)",
                "minimum-income or extreme-poverty support",
                "guardianship",
            ),
        ),
    ),
)

ENROLMENT = FeatureView(
    name="enrolment",
    entity=CHILD,
    source=ENROLMENTS.name,
    event_time=ENROLMENTS.event_time,
    version_key=_stored_key(ENROLMENTS),
    doc="school roll: the latest enrolment state known on D",
    fields=(
        Field("enrolled_school_code", "latest", "string", column="school_code"),
        Field("days_since_record_enrolment", "days_since", "float64", column="recorded_at"),
        Field(
            "grade",
            "latest",
            "float64",
            column="grade",
            doc=Doc("年级", "school grade", "study_life", "grade"),
        ),
        Field(
            "boarding",
            "latest",
            "boolean",
            column="boarding",
            doc=Doc("是否寄宿", "boards at school", "study_life"),
        ),
        Field(
            "enrol_status",
            "latest",
            "category",
            column="enrol_status",
            doc=Doc("学籍状态", "enrolment status", "study_life"),
        ),
        Field(
            "days_since_enrolment_change",
            "days_since",
            "float64",
            doc=Doc(
                "距最近一次学籍变动的天数",
                "days since the enrolment last changed",
                "study_life",
                "days",
            ),
        ),
    ),
)

GUARDIAN = FeatureView(
    name="guardianship",
    entity=CHILD,
    source=GUARDIANSHIP.name,
    event_time=GUARDIANSHIP.event_time,
    version_key=_stored_key(GUARDIANSHIP),
    doc="who cares for the child: the latest guardianship state known on D, and its changes",
    fields=(
        Field("days_since_record_guardianship", "days_since", "float64", column="recorded_at"),
        Field(
            "caregiver_relation",
            "latest",
            "category",
            column="caregiver_relation",
            doc=Doc("实际监护人关系", "who cares for the child", "guardianship"),
        ),
        Field(
            "caregiver_age",
            "latest",
            "float64",
            column="caregiver_age",
            doc=Doc("监护人年龄", "caregiver's age", "guardianship", "years"),
        ),
        Field(
            "caregiver_health",
            "latest",
            "category",
            column="caregiver_health",
            doc=Doc("监护人健康状况", "caregiver's health", "guardianship"),
        ),
        Field(
            "guardianship_capacity",
            "latest",
            "category",
            column="capacity",
            doc=Doc("监护能力评估", "assessed guardianship capacity", "guardianship"),
        ),
        Field(
            "agreement_signed",
            "latest",
            "boolean",
            column="agreement_signed",
            doc=Doc(
                "是否签订委托监护协议", "entrusted-guardianship agreement signed", "guardianship"
            ),
        ),
        Field(
            "parent_contact",
            "latest",
            "category",
            column="parent_contact",
            doc=Doc("父母联系频次", "how often the parents phone the child", "guardianship"),
        ),
        Field(
            "adult_woman_in_household",
            "latest",
            "boolean",
            column="adult_woman_in_household",
            doc=Doc("家中是否有成年女性", "an adult woman lives in the household", "guardianship"),
        ),
        Field(
            "living_arrangement",
            "latest",
            "category",
            column="living_arrangement",
            doc=Doc("居住方式", "where and with whom the child lives", "guardianship"),
        ),
        Field(
            "days_since_parent_home_visit",
            "days_since",
            "float64",
            column="parent_last_visit",
            doc=Doc(
                "距父母最近一次返乡的天数",
                "days since a parent last came home",
                "guardianship",
                "days",
            ),
        ),
        Field(
            "days_since_guardianship_change",
            "days_since",
            "float64",
            doc=Doc(
                "距最近一次监护情况变更的天数",
                "days since the guardianship last changed",
                "guardianship",
                "days",
            ),
        ),
        Field(
            "guardianship_changes_365d",
            "count",
            "int32",
            window=D365,
            doc=Doc(
                "近365天监护情况变更次数",
                "guardianship changes in the last 365 days",
                "guardianship",
                "changes",
            ),
        ),
        Field(
            "guardianship_gap_records_365d",
            "count",
            "int32",
            window=D365,
            where=(_in("capacity", *GUARDIANSHIP_GAPS),),
            doc=Doc(
                "近365天监护能力评估为不足、失当或缺失的记录数",
                "guardianship records assessed insufficient, improper or absent in the "
                "last 365 days",
                "guardianship",
                "records",
            ),
        ),
    ),
)

VISIT = FeatureView(
    name="visits",
    entity=CHILD,
    source=VISITS.name,
    event_time=VISITS.event_time,
    version_key=_stored_key(VISITS),
    doc="home visits by village and township staff, social workers and teachers",
    fields=(
        Field("days_since_record_visits", "days_since", "float64", column="recorded_at"),
        *_windowed(
            "visits",
            (D30, D90, D180, D365),
            "count",
            "近{n}天走访次数",
            "home visits in the last {n} days",
            "guardianship",
            "visits",
        ),
        *_windowed(
            "visits_child_not_seen",
            (D90, D365),
            "count",
            "近{n}天走访中未见到儿童的次数",
            "visits in the last {n} days where the child was not seen",
            "safety",
            "visits",
            where=(_false("child_seen"),),
        ),
        *(
            Field(
                f"months_without_visit_{w.label}",
                "empty_periods",
                "int32",
                window=w,
                bucket_days=30,
                doc=Doc(
                    f"近{w.days}天中没有任何走访的月数(每30天计一个月)",
                    f"months (30-day periods) without any home visit in the last {w.days} days",
                    "guardianship",
                    "months",
                ),
            )
            for w in (D90, D180)
        ),
        Field(
            "days_since_last_visit",
            "days_since",
            "float64",
            doc=Doc(
                "距最近一次走访的天数", "days since the last home visit", "guardianship", "days"
            ),
        ),
        Field(
            "days_since_child_seen",
            "days_since",
            "float64",
            where=(_true("child_seen"),),
            doc=Doc(
                "距走访人员最近一次见到儿童的天数",
                "days since a visitor last saw the child",
                "safety",
                "days",
            ),
        ),
        *_windowed(
            "visits_living_alone",
            (D90, D365),
            "count",
            "近{n}天走访发现儿童独自居住的次数",
            "visits in the last {n} days that found the child living alone",
            "guardianship",
            "visits",
            where=(_eq("living_arrangement", "alone"),),
        ),
        *_windowed(
            "visits_guardian_absent",
            (D90, D365),
            "count",
            "近{n}天走访时监护人不在场的次数",
            "visits in the last {n} days where the guardian was not there",
            "guardianship",
            "visits",
            where=(_false("guardian_present"),),
        ),
        Field(
            "days_since_visit_found_alone",
            "days_since",
            "float64",
            where=(_eq("living_arrangement", "alone"),),
            doc=Doc(
                "距最近一次走访发现儿童独自居住的天数",
                "days since a home visit last found the child living alone",
                "guardianship",
                "days",
            ),
        ),
        Field(
            "days_since_visit_found_cared_for",
            "days_since",
            "float64",
            where=(_in("living_arrangement", "with_caregiver", "boarding"),),
            doc=Doc(
                "距最近一次走访发现儿童与监护人同住或在校寄宿的天数",
                "days since a home visit last found the child living with the caregiver or "
                "boarding at school",
                "guardianship",
                "days",
            ),
        ),
        # The child at home, the guardian not there and judged unable to care: the recorded
        # sign of a child left unattended. A guardian merely out (about one visit in seven)
        # is no such sign, nor a visit where the child was away, e.g. at school.
        *_windowed(
            "visits_child_unattended",
            (D90, D365),
            "count",
            "近{n}天走访时儿童在家、监护人不在场且无力监护的次数",
            "visits in the last {n} days that found the child at home with no capable "
            "guardian there",
            "safety",
            "visits",
            where=(_true("child_seen"), _false("guardian_present"), _false("guardian_capable")),
        ),
        *_windowed(
            "visits_guardian_incapable",
            (D90, D365),
            "count",
            "近{n}天走访发现监护人不具备监护能力的次数",
            "visits in the last {n} days where the guardian did not seem capable",
            "guardianship",
            "visits",
            where=(_false("guardian_capable"),),
        ),
        *_windowed(
            "visits_injury_signs",
            (D90, D365),
            "count",
            "近{n}天走访发现受伤迹象的次数",
            "visits in the last {n} days that saw signs of injury",
            "safety",
            "visits",
            where=(_true("injury_signs"),),
        ),
        *_windowed(
            "visits_neglect_signs",
            (D90, D365),
            "count",
            "近{n}天走访发现疏于照料迹象的次数",
            "visits in the last {n} days that saw signs of neglect",
            "guardianship",
            "visits",
            where=(_true("neglect_signs"),),
        ),
        *_windowed(
            "visits_low_mood",
            (D90, D365),
            "count",
            "近{n}天走访发现儿童情绪低落或明显异常的次数",
            "visits in the last {n} days where the child seemed low or clearly abnormal in mood",
            "health",
            "visits",
            where=(_in("emotional_state", "low", "severe"),),
        ),
        Field(
            "visits_abnormal_mood_365d",
            "count",
            "int32",
            window=D365,
            where=(_eq("emotional_state", "severe"),),
            doc=Doc(
                "近365天走访发现儿童情绪明显异常的次数",
                "visits in the last 365 days where the child's mood was clearly abnormal",
                "health",
                "visits",
            ),
        ),
        Field(
            "visits_water_hazard_365d",
            "count",
            "int32",
            window=D365,
            where=(Filter("home_hazards", "contains_any", ("water",)),),
            doc=Doc(
                "近365天走访发现住所临近水域的次数",
                "visits in the last 365 days that noted open water near the home",
                "safety",
                "visits",
            ),
        ),
        Field(
            "visits_any_hazard_365d",
            "count",
            "int32",
            window=D365,
            where=(Filter("home_hazards", "contains_any", HOME_HAZARDS),),
            doc=Doc(
                "近365天走访发现任何安全隐患的次数",
                "visits in the last 365 days that noted any hazard at home",
                "safety",
                "visits",
            ),
        ),
    ),
)

ABSENCE = FeatureView(
    name="attendance",
    entity=CHILD,
    source=ATTENDANCE.name,
    event_time=ATTENDANCE.event_time,
    version_key=_stored_key(ATTENDANCE),
    doc="weekly absence reports (a school sends a row only for weeks with an absence)",
    fields=(
        Field("days_since_record_attendance", "days_since", "float64", column="recorded_at"),
        *_windowed(
            "unexcused_absence_days",
            (D30, D90, D180, D365),
            "sum",
            "近{n}天无故缺课天数",
            "unexcused absence days in the last {n} days",
            "study_life",
            "days",
            column="unexcused_days",
        ),
        *_windowed(
            "excused_absence_days",
            (D90, D365),
            "sum",
            "近{n}天请假天数",
            "excused absence days in the last {n} days",
            "study_life",
            "days",
            column="excused_days",
        ),
        *_windowed(
            "absence_weeks",
            (D90, D365),
            "count",
            "近{n}天有无故缺课的周数",
            "weeks with an unexcused absence in the last {n} days",
            "study_life",
            "weeks",
            where=(Filter("unexcused_days", "gt", (0,)),),
        ),
        Field(
            "unexcused_absence_days_current_term",
            "sum",
            "int32",
            column="unexcused_days",
            window=THIS_TERM,
            doc=Doc("本学期无故缺课天数", "unexcused absence days this term", "study_life", "days"),
        ),
        Field(
            "unexcused_absence_days_previous_term",
            "sum",
            "int32",
            column="unexcused_days",
            window=LAST_TERM,
            doc=Doc("上学期无故缺课天数", "unexcused absence days last term", "study_life", "days"),
        ),
        Field(
            "days_since_unexcused_absence",
            "days_since",
            "float64",
            where=(Filter("unexcused_days", "gt", (0,)),),
            doc=Doc(
                "距最近一次无故缺课(所在周)的天数",
                "days since the week of the last unexcused absence",
                "study_life",
                "days",
            ),
        ),
    ),
)

SCHOOL_REPORTS = FeatureView(
    name="school_reports",
    entity=SCHOOL,
    source=ATTENDANCE.name,
    event_time=ATTENDANCE.event_time,
    # Every delivered report counts as a sign of life from the school, corrections included.
    version_key=(),
    doc="whether the child's school still sends absence reports at all",
    fields=(
        Field(
            "days_since_school_absence_report",
            "days_since",
            "float64",
            column="recorded_at",
            doc=Doc(
                "距所在学校最近一次报送缺勤周报的天数(学校长期不报送时,无缺勤记录并不代表全勤)",
                "days since the child's school last sent any absence report (when a "
                "school stops reporting, no absence rows does not mean full attendance)",
                "study_life",
                "days",
            ),
        ),
    ),
)

DROPOUT_CONTROL = FeatureView(
    name="school_events",
    entity=CHILD,
    source=SCHOOL_EVENTS.name,
    event_time=SCHOOL_EVENTS.event_time,
    version_key=_stored_key(SCHOOL_EVENTS),
    doc="dropout-control records: suspected dropout, persuasion to return, returns",
    fields=(
        Field("days_since_record_school_events", "days_since", "float64", column="recorded_at"),
        *_windowed(
            "suspected_dropout_records",
            (D90, D365),
            "count",
            "近{n}天疑似辍学或辍学记录数",
            "suspected-dropout or dropout records in the last {n} days",
            "study_life",
            "records",
            where=(_in("kind", *DROPOUT_EVENTS),),
        ),
        Field(
            "dropout_records_365d",
            "count",
            "int32",
            window=D365,
            where=(_eq("kind", "dropout"),),
            doc=Doc(
                "近365天辍学(超过一个月)记录数",
                "dropout records (over a month away) in the last 365 days",
                "study_life",
                "records",
            ),
        ),
        Field(
            "persuasion_records_365d",
            "count",
            "int32",
            window=D365,
            where=(_eq("kind", "persuasion"),),
            doc=Doc(
                "近365天劝返记录数",
                "persuade-to-return records in the last 365 days",
                "study_life",
                "records",
            ),
        ),
        Field(
            "returned_to_school_365d",
            "count",
            "int32",
            window=D365,
            where=(_eq("kind", "returned"),),
            doc=Doc(
                "近365天复学记录数",
                "returns to school in the last 365 days",
                "study_life",
                "records",
            ),
        ),
        Field(
            "days_since_suspected_dropout",
            "days_since",
            "float64",
            where=(_in("kind", *DROPOUT_EVENTS),),
            doc=Doc(
                "距最近一次疑似辍学或辍学记录的天数",
                "days since the last suspected-dropout or dropout record",
                "study_life",
                "days",
            ),
        ),
        Field(
            "days_since_dropout_record",
            "days_since",
            "float64",
            where=(_eq("kind", "dropout"),),
            doc=Doc(
                "距最近一次辍学(离校超过一个月)记录的天数",
                "days since the last record of a dropout (over a month away)",
                "study_life",
                "days",
            ),
        ),
        Field(
            "days_since_return_to_school",
            "days_since",
            "float64",
            where=(_eq("kind", "returned"),),
            doc=Doc(
                "距最近一次复学记录的天数",
                "days since the last record of a return to school",
                "study_life",
                "days",
            ),
        ),
        Field(
            "max_consecutive_absent_days_365d",
            "max",
            "float64",
            column="absent_days",
            window=D365,
            doc=Doc(
                "近365天记录的最长连续缺课天数",
                "longest run of school days absent recorded in the last 365 days",
                "study_life",
                "days",
            ),
        ),
    ),
)

TERM_RESULTS = FeatureView(
    name="results",
    entity=CHILD,
    source=RESULTS.name,
    event_time=RESULTS.event_time,
    version_key=_stored_key(RESULTS),
    doc="term results",
    fields=(
        Field("days_since_record_results", "days_since", "float64", column="recorded_at"),
        Field(
            "last_term_average_score",
            "latest",
            "float64",
            column="average_score",
            doc=Doc(
                "最近一个学期的平均成绩",
                "average score in the latest term on record",
                "study_life",
                "points",
            ),
        ),
        Field(
            "previous_term_average_score",
            "previous",
            "float64",
            column="average_score",
            doc=Doc(
                "再前一个学期的平均成绩",
                "average score in the term before that",
                "study_life",
                "points",
            ),
        ),
        Field(
            "last_term_failed_subjects",
            "latest",
            "float64",
            column="failed_subjects",
            doc=Doc(
                "最近一个学期不及格科目数",
                "subjects failed in the latest term on record",
                "study_life",
                "subjects",
            ),
        ),
    ),
)

SCREENING = FeatureView(
    name="screenings",
    entity=CHILD,
    source=SCREENINGS.name,
    event_time=SCREENINGS.event_time,
    version_key=_stored_key(SCREENINGS),
    doc="psychological screenings by schools and health services",
    fields=(
        Field("days_since_record_screenings", "days_since", "float64", column="recorded_at"),
        Field(
            "latest_depression_score",
            "latest",
            "float64",
            column="depression_score",
            doc=Doc(
                "最近一次抑郁量表得分", "latest depression score (CES-DC, 0-60)", "health", "points"
            ),
        ),
        Field(
            "latest_anxiety_score",
            "latest",
            "float64",
            column="anxiety_score",
            doc=Doc(
                "最近一次焦虑量表得分", "latest anxiety score (SCARED, 0-82)", "health", "points"
            ),
        ),
        Field(
            "latest_screen_positive",
            "latest",
            "boolean",
            column="positive",
            doc=Doc("最近一次心理筛查结果为阳性", "the latest screening was positive", "health"),
        ),
        Field(
            "latest_screen_suicidal_ideation",
            "latest",
            "boolean",
            column="suicidal_ideation",
            doc=Doc(
                "最近一次心理筛查发现自杀意念",
                "the latest screening found suicidal thoughts",
                "health",
            ),
        ),
        Field(
            "positive_screens_365d",
            "count",
            "int32",
            window=D365,
            where=(_true("positive"),),
            doc=Doc(
                "近365天心理筛查阳性次数",
                "positive screenings in the last 365 days",
                "health",
                "screenings",
            ),
        ),
        Field(
            "suicidal_ideation_screens_365d",
            "count",
            "int32",
            window=D365,
            where=(_true("suicidal_ideation"),),
            doc=Doc(
                "近365天筛查发现自杀意念的次数",
                "screenings that found suicidal thoughts in the last 365 days",
                "health",
                "screenings",
            ),
        ),
        Field(
            "days_since_screening",
            "days_since",
            "float64",
            doc=Doc(
                "距最近一次心理筛查的天数",
                "days since the last psychological screening",
                "health",
                "days",
            ),
        ),
    ),
)

INCIDENT = FeatureView(
    name="incidents",
    entity=CHILD,
    source=INCIDENTS.name,
    event_time=INCIDENTS.event_time,
    version_key=_stored_key(INCIDENTS),
    doc="incidents and mandatory reports from police, health services, schools and villages",
    fields=(
        Field("days_since_record_incidents", "days_since", "float64", column="recorded_at"),
        *_windowed(
            "incidents",
            (D90, D365),
            "count",
            "近{n}天事件与强制报告记录数",
            "incidents and mandatory reports in the last {n} days",
            "safety",
            "incidents",
        ),
        Field(
            "harm_incidents_365d",
            "count",
            "int32",
            window=D365,
            where=(_in("incident_type", *HARM_INCIDENTS),),
            doc=Doc(
                "近365天家庭暴力、虐待、性侵害或其他不法侵害事件数",
                "domestic violence, abuse, sexual abuse or other unlawful harm in the last "
                "365 days",
                "safety",
                "incidents",
            ),
        ),
        Field(
            "injury_incidents_365d",
            "count",
            "int32",
            window=D365,
            where=(_in("incident_type", *INJURY_INCIDENTS),),
            doc=Doc(
                "近365天严重伤害、意外伤害或溺水事件数",
                "serious injuries, accidental injuries or drownings in the last 365 days",
                "safety",
                "incidents",
            ),
        ),
        Field(
            "mental_health_crises_365d",
            "count",
            "int32",
            window=D365,
            where=(_in("incident_type", *MENTAL_HEALTH_INCIDENTS),),
            doc=Doc(
                "近365天自杀未遂、自伤或严重心理危机事件数",
                "suicide attempts, self-harm or severe mental-health crises in the last 365 days",
                "health",
                "incidents",
            ),
        ),
        Field(
            "guardianship_incidents_365d",
            "count",
            "int32",
            window=D365,
            where=(_in("incident_type", *GUARDIANSHIP_INCIDENTS),),
            doc=Doc(
                "近365天独自居住无人监护或事实无人监护事件数",
                "reports of living alone or no de facto guardian in the last 365 days",
                "guardianship",
                "incidents",
            ),
        ),
        Field(
            "missing_or_begging_365d",
            "count",
            "int32",
            window=D365,
            where=(_in("incident_type", *MISSING_INCIDENTS),),
            doc=Doc(
                "近365天失踪、离家出走或流浪乞讨事件数",
                "missing, run away or begging in the last 365 days",
                "safety",
                "incidents",
            ),
        ),
        Field(
            "incidents_reported_to_police_365d",
            "count",
            "int32",
            window=D365,
            where=(_true("reported_to_police"),),
            doc=Doc(
                "近365天已报警的事件数",
                "incidents reported to the police in the last 365 days",
                "safety",
                "incidents",
            ),
        ),
        Field(
            "days_since_incident",
            "days_since",
            "float64",
            doc=Doc(
                "距最近一次事件或强制报告的天数",
                "days since the last incident or mandatory report",
                "safety",
                "days",
            ),
        ),
        Field(
            "days_since_harm_incident",
            "days_since",
            "float64",
            where=(_in("incident_type", *HARM_INCIDENTS),),
            doc=Doc(
                "距最近一次家庭暴力、虐待或不法侵害事件的天数",
                "days since the last report of violence, abuse or unlawful harm",
                "safety",
                "days",
            ),
        ),
        Field(
            "days_since_mental_health_crisis",
            "days_since",
            "float64",
            where=(_in("incident_type", *MENTAL_HEALTH_INCIDENTS),),
            doc=Doc(
                "距最近一次自杀未遂、自伤或严重心理危机的天数",
                "days since the last suicide attempt, self-harm or mental-health crisis",
                "health",
                "days",
            ),
        ),
        Field(
            "days_since_serious_injury",
            "days_since",
            "float64",
            where=(_in("incident_type", *SERIOUS_INJURY_INCIDENTS),),
            doc=Doc(
                "距最近一次严重伤害或溺水事件的天数",
                "days since the last serious injury or near-drowning",
                "safety",
                "days",
            ),
        ),
        Field(
            "days_since_missing_or_begging",
            "days_since",
            "float64",
            where=(_in("incident_type", *MISSING_INCIDENTS),),
            doc=Doc(
                "距最近一次失踪、离家出走或流浪乞讨事件的天数",
                "days since the child was last missing, ran away or was found begging",
                "safety",
                "days",
            ),
        ),
        Field(
            "suicide_attempts_365d",
            "count",
            "int32",
            window=D365,
            where=(_eq("incident_type", "suicide_attempt"),),
            doc=Doc(
                "近365天自杀未遂事件数",
                "suicide attempts in the last 365 days",
                "health",
                "incidents",
            ),
        ),
        Field(
            "self_harm_incidents_365d",
            "count",
            "int32",
            window=D365,
            where=(_eq("incident_type", "self_harm"),),
            doc=Doc(
                "近365天自伤事件数",
                "self-harm incidents in the last 365 days",
                "health",
                "incidents",
            ),
        ),
        Field(
            "days_since_suicide_attempt",
            "days_since",
            "float64",
            where=(_eq("incident_type", "suicide_attempt"),),
            doc=Doc(
                "距最近一次自杀未遂的天数",
                "days since the last suicide attempt",
                "health",
                "days",
            ),
        ),
        Field(
            "days_since_self_harm",
            "days_since",
            "float64",
            where=(_eq("incident_type", "self_harm"),),
            doc=Doc(
                "距最近一次自伤事件的天数",
                "days since the last self-harm",
                "health",
                "days",
            ),
        ),
        Field(
            "days_since_guardianship_incident",
            "days_since",
            "float64",
            where=(_in("incident_type", *GUARDIANSHIP_INCIDENTS),),
            doc=Doc(
                "距最近一次独自居住或事实无人监护事件的天数",
                "days since the last report of living alone or no de facto guardian",
                "guardianship",
                "days",
            ),
        ),
    ),
)

#: Every feature view, in output order. Views keyed by the school come after child views,
#: because a child's school is itself read from the registry and enrolment views.
VIEWS: tuple[FeatureView, ...] = (
    REGISTRY,
    ENROLMENT,
    GUARDIAN,
    VISIT,
    ABSENCE,
    SCHOOL_REPORTS,
    DROPOUT_CONTROL,
    TERM_RESULTS,
    SCREENING,
    INCIDENT,
)

_RATE_WINDOWS = (D30, D90, D365, THIS_TERM, LAST_TERM)
_RATE_TEXT = {
    "30d": ("近30天", "in the last 30 days"),
    "90d": ("近90天", "in the last 90 days"),
    "365d": ("近365天", "in the last 365 days"),
    "current_term": ("本学期", "this term"),
    "previous_term": ("上学期", "last term"),
}

#: Derived features, computed in this order after aggregation (inputs may name aggregated
#: fields, earlier derived features, ``as_of`` and ``school_days_<window>`` from the calendar).
DERIVED: tuple[Derived, ...] = (
    Derived(
        "age_years",
        tf.age_years,
        ("as_of", "birth_date"),
        "float64",
        Doc("年龄(周岁)", "age in completed years", "safety", "years"),
    ),
    Derived(
        "no_household_registration",
        tf.has_no_household_registration,
        ("hukou_status",),
        "boolean",
        Doc("无户籍", "has no household registration", "safety"),
    ),
    Derived(
        "lives_alone",
        tf.lives_alone,
        (
            "living_arrangement",
            "days_since_guardianship_change",
            "days_since_visit_found_alone",
            "days_since_visit_found_cared_for",
        ),
        "boolean",
        Doc(
            "目前独自居住(最新的监护记录或走访记录显示儿童独自居住)",
            "lives alone now (the newest guardianship record or home visit says so)",
            "guardianship",
        ),
    ),
    Derived(
        "out_of_school",
        tf.is_out_of_school,
        ("days_since_suspected_dropout", "days_since_return_to_school", "enrol_status"),
        "boolean",
        Doc(
            "目前失学(疑似辍学或辍学记录之后尚无复学记录,或学籍为辍学)",
            "out of school now (a suspected-dropout or dropout record and no return since, "
            "or enrolment status dropped out)",
            "study_life",
        ),
    ),
    Derived(
        "out_of_school_over_a_month",
        tf.is_out_of_school,
        ("days_since_dropout_record", "days_since_return_to_school", "enrol_status"),
        "boolean",
        Doc(
            "辍学超过一个月且尚未复学",
            "dropped out over a month ago and not yet back at school",
            "study_life",
        ),
    ),
    Derived(
        "child_not_seen_share_365d",
        tf.share_of,
        ("visits_child_not_seen_365d", "visits_365d"),
        "float64",
        Doc(
            "近365天走访中未见到儿童的比例",
            "share of visits in the last 365 days where the child was not seen",
            "safety",
            "share",
        ),
        window=D365,
    ),
    *(
        Derived(
            f"unexcused_absence_rate_{w.label}",
            tf.absence_rate,
            (f"unexcused_absence_days_{w.label}", f"school_days_{w.label}"),
            "float64",
            Doc(
                f"{_RATE_TEXT[w.label][0]}无故缺课天数占应到校天数的比例",
                f"share of school days {_RATE_TEXT[w.label][1]} missed without excuse",
                "study_life",
                "share",
            ),
            window=w,
        )
        for w in _RATE_WINDOWS
    ),
    Derived(
        "excused_absence_rate_90d",
        tf.absence_rate,
        ("excused_absence_days_90d", "school_days_90d"),
        "float64",
        Doc(
            "近90天请假天数占应到校天数的比例",
            "share of school days in the last 90 days missed with leave",
            "study_life",
            "share",
        ),
        window=D90,
    ),
    Derived(
        "unexcused_absence_trend",
        tf.rate_change,
        ("unexcused_absence_rate_current_term", "unexcused_absence_rate_previous_term"),
        "float64",
        Doc(
            "本学期比上学期无故缺课率的变化(正数表示变差)",
            "change in the unexcused absence rate, this term minus last term (positive = worse)",
            "study_life",
            "share",
        ),
    ),
    Derived(
        "term_score_change",
        tf.score_change,
        ("last_term_average_score", "previous_term_average_score"),
        "float64",
        Doc(
            "最近一个学期比前一个学期平均成绩的变化(负数表示下降)",
            "change in average score, latest term minus the term before (negative = falling)",
            "study_life",
            "points",
        ),
    ),
    Derived(
        "days_since_any_record",
        tf.days_since_any_record,
        tuple(f"days_since_record_{v.name}" for v in VIEWS if v.entity == CHILD),
        "float64",
        Doc(
            "距该儿童任何一条记录最近录入的天数(档案多久没有更新)",
            "days since any record about the child was last entered (how stale the file is)",
            "guardianship",
            "days",
        ),
    ),
)

#: Columns that identify a row rather than describe the child; every frame starts with them.
IDENTIFYING_COLUMNS: tuple[str, ...] = (
    "child_id",
    "as_of",
    "household_pid",
    "village_code",
    "township_code",
    "county_code",
    "school_code",
)


def calendar_windows() -> tuple[Window, ...]:
    """Every window some field or derived feature uses, in a stable order."""
    seen: dict[str, Window] = {}
    for view in VIEWS:
        for fld in view.fields:
            if fld.window is not None:
                seen.setdefault(fld.window.label, fld.window)
    for der in DERIVED:
        if der.window is not None:
            seen.setdefault(der.window.label, der.window)
    return tuple(seen.values())


def _published() -> list[tuple[str, FeatureDType, Doc, Window | None, str]]:
    out: list[tuple[str, FeatureDType, Doc, Window | None, str]] = []
    for view in VIEWS:
        for fld in view.fields:
            if fld.doc is not None:
                out.append((fld.name, fld.dtype, fld.doc, fld.window, view.source))
    for der in DERIVED:
        if der.doc is not None:
            out.append((der.name, der.dtype, der.doc, der.window, _derived_source(der)))
    return out


def _derived_source(derived: Derived) -> str:
    by_field = {f.name: v.source for v in VIEWS for f in v.fields}
    by_derived = {d.name: d for d in DERIVED}
    sources: set[str] = set()
    for name in derived.inputs:
        if name in by_field:
            sources.add(by_field[name])
        elif name in by_derived:
            sources.update(_derived_source(by_derived[name]).split("+"))
        elif name.startswith("school_days_"):
            sources.add("calendar")
    return "+".join(sorted(sources))


def feature_names() -> list[str]:
    """Names of every published feature, in output order (protected ones included)."""
    return [name for name, *_ in _published()]


def model_feature_names() -> list[str]:
    """Feature names a model may use: every published feature except protected ones.

    Protected attributes (ethnicity) stay in the frame for fairness audits only.
    """
    return [name for name, _, doc, *_ in _published() if doc.sensitivity != "protected"]


def protected_feature_names() -> list[str]:
    """Features kept for fairness audits that a model must never use."""
    return [name for name, _, doc, *_ in _published() if doc.sensitivity == "protected"]


def registry_records() -> list[dict[str, Any]]:
    """The feature registry as plain records (CLI ``features list``, UI, model card).

    Returns
    -------
    list of dict
        One per feature: ``name``, ``domain``, ``window_days`` (None for term or unwindowed
        features), ``window`` (``"90d"``, ``"current_term"``… or None), ``zh``, ``en``,
        ``dtype``, ``source`` (raw table, or ``+``-joined inputs of a derived feature),
        ``sensitivity`` and ``unit``.
    """
    return [
        {
            "name": name,
            "domain": doc.domain,
            "window_days": window.days if window is not None else None,
            "window": window.label if window is not None else None,
            "zh": doc.zh,
            "en": doc.en,
            "dtype": dtype,
            "source": source,
            "sensitivity": doc.sensitivity,
            "unit": doc.unit,
        }
        for name, dtype, doc, window, source in _published()
    ]


def describe(name: str, lang: Literal["zh", "en"] = "zh") -> str:
    """The plain-language description of one feature; raise ``KeyError`` if unknown."""
    for rec in registry_records():
        if rec["name"] == name:
            return str(rec[lang])
    raise KeyError(f"unknown feature {name!r}")


def _canonical(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    if callable(value):
        try:
            source = inspect.getsource(value)
        except (OSError, TypeError):
            source = ""
        return {
            "function": f"{value.__module__}.{value.__qualname__}",
            "source_sha256": hashlib.sha256(source.encode()).hexdigest(),
        }
    return value


def definitions_fingerprint() -> str:
    """A stable hash of every declaration (views, fields, derived functions' source).

    Stored with every score as provenance (style rule 12): two scores with the same
    fingerprint were computed from identical feature definitions.
    """
    payload = json.dumps(
        {"views": _canonical(VIEWS), "derived": _canonical(DERIVED)},
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


__all__ = [
    "CHILD",
    "DERIVED",
    "DOMAINS",
    "DROPOUT_EVENTS",
    "GUARDIANSHIP_INCIDENTS",
    "HARM_INCIDENTS",
    "IDENTIFYING_COLUMNS",
    "INJURY_INCIDENTS",
    "MENTAL_HEALTH_INCIDENTS",
    "MISSING_INCIDENTS",
    "SCHOOL",
    "SERIOUS_INJURY_INCIDENTS",
    "VIEWS",
    "Derived",
    "Doc",
    "Entity",
    "FeatureView",
    "Field",
    "Filter",
    "Window",
    "calendar_windows",
    "definitions_fingerprint",
    "describe",
    "feature_names",
    "model_feature_names",
    "protected_feature_names",
    "registry_records",
]
