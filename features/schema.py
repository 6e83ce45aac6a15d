"""The canonical data model: every ledger table, its fields, types and allowed values.

One declaration serves every stage: the synthetic generator writes ledgers with these Chinese
headers and labels, ingestion maps a county's headers and values onto these canonical names
and validates rows against them, the store creates its tables from them, and
``docs/data-model.md`` is generated from them (``shouhu features datamodel``). Nobody retypes a
field list.

Conventions
-----------
* Every table carries the date the event happened (``TableSpec.event_time``, named per table)
  and ``recorded_at``, the date the row was entered in the ledger. Late entry is normal.
* Categorical fields hold an English code in the store; ledgers carry the Chinese label.
* Fields tagged ``pii`` never reach the store: identity numbers are replaced by a keyed hash
  (``pseudonym.py``) and names are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DType = Literal["str", "int", "float", "date", "bool", "category", "text"]
Pii = Literal["id_number", "name", "household"]


@dataclass(frozen=True)
class Code:
    """One allowed value of a categorical field: the stored code and its ledger label."""

    code: str
    zh: str
    en: str


@dataclass(frozen=True)
class Column:
    """One canonical field of a ledger table."""

    name: str
    zh: str
    dtype: DType
    en: str
    required: bool = True
    codes: tuple[Code, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    pii: Pii | None = None
    multi: bool = False  # a ';'-separated list of codes (e.g. home hazards)

    def code_set(self) -> frozenset[str]:
        """The allowed stored codes of a categorical field."""
        return frozenset(c.code for c in self.codes)


@dataclass(frozen=True)
class TableSpec:
    """One ledger table: the file kind a county delivers, and the raw table in the store."""

    name: str
    zh: str
    en: str
    event_time: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = field(default=())  # natural key of a record (a later row corrects it)
    recorded_time: str = "recorded_at"

    def column(self, name: str) -> Column:
        """Return the column called ``name``; raise ``KeyError`` if there is none."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def column_names(self) -> tuple[str, ...]:
        """Canonical column names in ledger order."""
        return tuple(c.name for c in self.columns)


def _codes(*triples: tuple[str, str, str]) -> tuple[Code, ...]:
    return tuple(Code(*t) for t in triples)


SEX = _codes(("male", "男", "male"), ("female", "女", "female"))
AREA_LEVEL = _codes(
    ("city", "市", "city"),
    ("county", "区县", "county"),
    ("township", "乡镇", "township"),
    ("village", "村(社区)", "village"),
)
ETHNICITY = _codes(
    ("han", "汉族", "Han"),
    ("tujia", "土家族", "Tujia"),
    ("miao", "苗族", "Miao"),
    ("yi", "彝族", "Yi"),
    ("other", "其他民族", "other"),
)
HUKOU = _codes(
    ("rural", "农业户口", "rural household registration"),
    ("urban", "非农业户口", "urban household registration"),
    ("none", "无户籍", "no household registration"),
)
LEFT_BEHIND_TYPE = _codes(
    ("both_away", "父母双方外出务工", "both parents away for work"),
    (
        "one_away_other_incapable",
        "一方外出另一方无监护能力",
        "one parent away, the other incapable",
    ),
)
POVERTY = _codes(
    ("none", "无", "none"),
    ("dibao", "低保", "minimum-income support"),
    ("tekun", "特困", "extreme-poverty support"),
)
REGISTRY_STATUS = _codes(("active", "在册", "registered"), ("exited", "退出", "exited"))
EXIT_REASON = _codes(
    ("parents_returned", "父母返乡", "parents returned"),
    ("aged_out", "年满16周岁", "reached 16"),
    ("moved", "迁出", "moved away"),
    ("other", "其他", "other"),
)
RELATION = _codes(
    ("grandparent", "祖父母或外祖父母", "grandparent"),
    ("relative", "其他亲属", "other relative"),
    ("parent", "父母一方", "one parent"),
    ("entrusted", "受委托人", "entrusted adult"),
    ("none", "无", "nobody"),
)
HEALTH = _codes(
    ("good", "良好", "good"),
    ("fair", "一般", "fair"),
    ("poor", "较差", "poor"),
    ("critical", "重病或失能", "critically ill or disabled"),
)
CAPACITY = _codes(
    ("normal", "正常", "normal"),
    ("insufficient", "监护不足", "insufficient"),
    ("improper", "监护失当", "improper"),
    ("absent", "监护缺失", "absent"),
)
CONTACT = _codes(
    ("weekly", "每周", "weekly"),
    ("monthly", "每月", "monthly"),
    ("quarterly", "每季度", "quarterly"),
    ("yearly", "每年", "yearly"),
    ("never", "从不", "never"),
)
LIVING = _codes(
    ("with_caregiver", "与监护人同住", "with the caregiver"),
    ("boarding", "学校寄宿", "boarding at school"),
    ("alone", "独自居住", "living alone"),
    ("unknown", "不详", "unknown"),
)
VISITOR_ROLE = _codes(
    ("child_director", "儿童主任", "village child director"),
    ("child_supervisor", "儿童督导员", "township child supervisor"),
    ("village_cadre", "村干部", "village cadre"),
    ("social_worker", "社工", "social worker"),
    ("teacher", "教师", "teacher"),
)
HAZARD = _codes(
    ("none", "无", "none"),
    ("water", "临近水域", "open water nearby"),
    ("electricity", "用电隐患", "electrical hazard"),
    ("fire", "用火隐患", "fire hazard"),
    ("building", "危房", "unsafe building"),
    ("traffic", "交通隐患", "traffic hazard"),
)
EMOTION = _codes(
    ("good", "良好", "good"),
    ("fair", "一般", "fair"),
    ("low", "低落", "low"),
    ("severe", "明显异常", "clearly abnormal"),
)
ENROL_STATUS = _codes(
    ("enrolled", "在读", "enrolled"),
    ("suspended", "休学", "suspended"),
    ("transferred", "转出", "transferred out"),
    ("dropped_out", "辍学", "dropped out"),
)
SCHOOL_EVENT = _codes(
    ("suspected_dropout", "疑似辍学", "suspected dropout (unexcused absence over a week)"),
    ("dropout", "辍学", "dropout (over a month)"),
    ("persuasion", "劝返", "persuasion to return"),
    ("written_report", "书面报告", "written report to the education bureau"),
    ("returned", "复学", "returned to school"),
)
SCREENER = _codes(("school", "学校", "school"), ("health", "卫生健康部门", "health service"))
INCIDENT_TYPE = _codes(
    ("living_alone", "独自居住无人监护", "living alone without a guardian"),
    ("no_guardian", "事实无人监护", "no de facto guardian"),
    ("missing", "失踪或离家出走", "missing or run away"),
    ("begging", "流浪乞讨", "begging"),
    ("domestic_violence", "家庭暴力", "domestic violence"),
    ("abuse", "虐待", "abuse"),
    ("sexual_abuse", "性侵害", "sexual abuse"),
    ("unlawful_harm", "其他不法侵害", "other unlawful harm"),
    ("serious_injury", "严重伤害", "serious injury"),
    ("accidental_injury", "意外伤害", "accidental injury"),
    ("drowning", "溺水", "drowning"),
    ("suicide_attempt", "自杀未遂", "suicide attempt"),
    ("self_harm", "自伤", "self-harm"),
    ("mental_crisis", "严重心理危机", "severe mental-health crisis"),
)
REPORTER = _codes(
    ("school", "学校", "school"),
    ("kindergarten", "幼儿园", "kindergarten"),
    ("clinic", "医疗机构", "clinic or hospital"),
    ("village", "村(居)委会", "village committee"),
    ("social_work", "社会工作机构", "social-work agency"),
    ("police", "公安机关", "police"),
    ("family", "家属", "family member"),
)
SOURCE_SYSTEM = _codes(
    ("police", "公安", "police"),
    ("health", "卫生健康", "health"),
    ("school", "教育", "education (school roll)"),
    ("village", "民政(村)", "civil affairs (village)"),
)
OUTCOME = _codes(
    ("resolved", "已处置", "resolved"),
    ("referred", "已转介", "referred"),
    ("ongoing", "跟进中", "ongoing"),
)

_RECORDED = Column("recorded_at", "录入日期", "date", "date the row was entered in the ledger")
_ID = Column("id_number", "身份证号", "str", "child's identity number", pii="id_number")
_SCHOOL = Column("school_code", "学校代码", "str", "school code")

AREAS = TableSpec(
    name="areas",
    zh="行政区划",
    en="administrative areas",
    event_time="effective_date",
    key=("area_code",),
    columns=(
        Column("area_code", "区划代码", "str", "statistical area code (12 digits for villages)"),
        Column("level", "层级", "category", "level in the hierarchy", codes=AREA_LEVEL),
        Column("area_name", "名称", "str", "area name"),
        Column("parent_code", "上级区划代码", "str", "code of the enclosing area", required=False),
        Column("effective_date", "启用日期", "date", "date the area joined the platform"),
        _RECORDED,
    ),
)

CHILDREN = TableSpec(
    name="children",
    zh="留守儿童基本信息",
    en="child registry",
    event_time="registered_date",
    # A file has versions: a status change is a new version dated by registered_date.
    key=("id_number", "registered_date"),
    columns=(
        _ID,
        Column("name", "姓名", "str", "child's name", pii="name"),
        Column(
            "household_no", "户编号", "str", "household number (siblings share it)", pii="household"
        ),
        Column("sex", "性别", "category", "sex", codes=SEX),
        Column("birth_date", "出生日期", "date", "date of birth"),
        Column(
            "ethnicity",
            "民族",
            "category",
            "ethnicity (audited, never a model feature)",
            codes=ETHNICITY,
        ),
        Column("hukou_status", "户籍状况", "category", "household registration", codes=HUKOU),
        Column("village_code", "所在村(社区)代码", "str", "area code of the home village"),
        Column("school_code", "就读学校代码", "str", "school attended", required=False),
        Column(
            "left_behind_type", "留守类型", "category", "left-behind type", codes=LEFT_BEHIND_TYPE
        ),
        Column("disability", "是否残疾", "bool", "has a disability"),
        Column("serious_illness", "是否患重病", "bool", "has a serious illness"),
        Column(
            "poverty_status",
            "困难救助类型",
            "category",
            "minimum-income or extreme-poverty support",
            codes=POVERTY,
        ),
        Column("status", "建档状态", "category", "registry status", codes=REGISTRY_STATUS),
        Column(
            "exit_reason",
            "退出原因",
            "category",
            "why the file was closed",
            required=False,
            codes=EXIT_REASON,
        ),
        Column("registered_date", "建档日期", "date", "date of this version of the file"),
        _RECORDED,
    ),
)

GUARDIANSHIP = TableSpec(
    name="guardianship",
    zh="监护情况",
    en="guardianship records",
    event_time="change_date",
    key=("id_number", "change_date"),
    columns=(
        _ID,
        Column("change_date", "变更日期", "date", "date this guardianship state began"),
        Column(
            "caregiver_relation",
            "实际监护人关系",
            "category",
            "who cares for the child",
            codes=RELATION,
        ),
        Column(
            "caregiver_age",
            "监护人年龄",
            "int",
            "caregiver's age",
            required=False,
            minimum=14,
            maximum=105,
        ),
        Column(
            "caregiver_health",
            "监护人健康状况",
            "category",
            "caregiver's health",
            required=False,
            codes=HEALTH,
        ),
        Column(
            "capacity", "监护能力评估", "category", "assessed guardianship capacity", codes=CAPACITY
        ),
        Column(
            "agreement_signed",
            "是否签订委托监护协议",
            "bool",
            "entrusted-guardianship agreement signed",
        ),
        Column(
            "parent_contact",
            "父母联系频次",
            "category",
            "how often parents phone the child",
            codes=CONTACT,
        ),
        Column(
            "parent_last_visit",
            "父母最近返乡日期",
            "date",
            "when a parent last came home",
            required=False,
        ),
        Column(
            "adult_woman_in_household",
            "家中是否有成年女性",
            "bool",
            "an adult woman lives in the household",
        ),
        Column(
            "living_arrangement",
            "居住方式",
            "category",
            "where and with whom the child lives",
            codes=LIVING,
        ),
        _RECORDED,
    ),
)

VISITS = TableSpec(
    name="visits",
    zh="走访记录",
    en="home visits",
    event_time="visit_date",
    # One household visit is one visit_id with a row for each child seen or asked about.
    key=("visit_id", "id_number"),
    columns=(
        Column("visit_id", "走访编号", "str", "visit record number"),
        _ID,
        Column("visit_date", "走访日期", "date", "date of the visit"),
        Column("visitor_role", "走访人员类别", "category", "who visited", codes=VISITOR_ROLE),
        Column("child_seen", "是否见到儿童", "bool", "the child was seen"),
        Column(
            "living_arrangement",
            "居住方式",
            "category",
            "living arrangement observed",
            codes=LIVING,
        ),
        Column("guardian_present", "监护人是否在场", "bool", "the guardian was present"),
        Column(
            "guardian_capable", "监护人是否具备监护能力", "bool", "the guardian appeared capable"
        ),
        Column(
            "home_hazards", "安全隐患", "category", "home hazards seen", codes=HAZARD, multi=True
        ),
        Column("injury_signs", "是否有受伤迹象", "bool", "signs of injury"),
        Column("neglect_signs", "是否有疏于照料迹象", "bool", "signs of neglect"),
        Column("emotional_state", "情绪状态", "category", "child's emotional state", codes=EMOTION),
        Column("needs", "主要需求", "text", "needs noted (free text, no names)", required=False),
        Column(
            "actions", "采取措施", "text", "actions taken (free text, no names)", required=False
        ),
        _RECORDED,
    ),
)

ENROLMENTS = TableSpec(
    name="enrolments",
    zh="学籍信息",
    en="school enrolment",
    event_time="change_date",
    key=("id_number", "change_date"),
    columns=(
        _ID,
        _SCHOOL,
        Column(
            "grade", "年级", "int", "grade (0 = pre-school, 1-9 compulsory)", minimum=0, maximum=12
        ),
        Column("boarding", "是否寄宿", "bool", "boards at school"),
        Column("enrol_status", "学籍状态", "category", "enrolment status", codes=ENROL_STATUS),
        Column("change_date", "变动日期", "date", "date of this enrolment state"),
        _RECORDED,
    ),
)

ATTENDANCE = TableSpec(
    name="attendance",
    zh="缺勤周报",
    en="weekly absence report",
    event_time="week_start",
    key=("id_number", "week_start"),
    columns=(
        _ID,
        _SCHOOL,
        Column("week_start", "周起始日期", "date", "Monday of the school week"),
        Column("school_days", "应到校天数", "int", "school days that week", minimum=0, maximum=7),
        Column("excused_days", "请假天数", "int", "excused absence days", minimum=0, maximum=7),
        Column(
            "unexcused_days", "无故缺课天数", "int", "unexcused absence days", minimum=0, maximum=7
        ),
        _RECORDED,
    ),
)

RESULTS = TableSpec(
    name="results",
    zh="学业成绩",
    en="term results",
    event_time="term_end",
    key=("id_number", "term_end"),
    columns=(
        _ID,
        _SCHOOL,
        Column("term_end", "学期结束日期", "date", "last day of the term"),
        Column(
            "average_score", "平均成绩", "float", "average score (0-100)", minimum=0, maximum=100
        ),
        Column("failed_subjects", "不及格科目数", "int", "subjects failed", minimum=0, maximum=15),
        _RECORDED,
    ),
)

SCHOOL_EVENTS = TableSpec(
    name="school_events",
    zh="控辍保学记录",
    en="dropout control records",
    event_time="event_date",
    key=("event_id",),
    columns=(
        Column("event_id", "记录编号", "str", "record number"),
        _ID,
        _SCHOOL,
        Column("event_date", "发生日期", "date", "date of the event"),
        Column("kind", "类型", "category", "what happened", codes=SCHOOL_EVENT),
        Column(
            "absent_days",
            "连续缺课天数",
            "int",
            "consecutive school days absent",
            required=False,
            minimum=0,
            maximum=400,
        ),
        _RECORDED,
    ),
)

SCREENINGS = TableSpec(
    name="screenings",
    zh="心理健康筛查",
    en="psychological screening",
    event_time="screen_date",
    key=("id_number", "screen_date"),
    columns=(
        _ID,
        Column("screen_date", "筛查日期", "date", "date of the screening"),
        Column("screener", "筛查机构", "category", "who screened", codes=SCREENER),
        Column(
            "depression_score",
            "抑郁量表得分",
            "int",
            "depression score (CES-DC, 0-60)",
            minimum=0,
            maximum=60,
        ),
        Column(
            "anxiety_score",
            "焦虑量表得分",
            "int",
            "anxiety score (SCARED, 0-82)",
            minimum=0,
            maximum=82,
        ),
        Column("suicidal_ideation", "是否有自杀意念", "bool", "reported suicidal ideation"),
        Column("positive", "筛查结果阳性", "bool", "screen positive: referred for assessment"),
        _RECORDED,
    ),
)

INCIDENTS = TableSpec(
    name="incidents",
    zh="事件与强制报告",
    en="incidents and mandatory reports",
    event_time="event_date",
    key=("incident_id",),
    columns=(
        Column("incident_id", "事件编号", "str", "incident record number"),
        _ID,
        Column("event_date", "发生日期", "date", "date the incident happened"),
        Column("incident_type", "事件类型", "category", "what happened", codes=INCIDENT_TYPE),
        Column("reporter", "报告单位", "category", "who reported it", codes=REPORTER),
        Column(
            "source_system",
            "来源系统",
            "category",
            "system the record came from",
            codes=SOURCE_SYSTEM,
        ),
        Column("reported_to_police", "是否报警", "bool", "reported to the police"),
        Column("police_receipt", "公安回执号", "str", "police receipt number", required=False),
        Column("outcome", "处置结果", "category", "outcome", codes=OUTCOME),
        _RECORDED,
    ),
)

#: Every ledger table, in the order ingestion loads a batch (registry before the records
#: that refer to it).
TABLES: tuple[TableSpec, ...] = (
    AREAS,
    CHILDREN,
    GUARDIANSHIP,
    VISITS,
    ENROLMENTS,
    ATTENDANCE,
    RESULTS,
    SCHOOL_EVENTS,
    SCREENINGS,
    INCIDENTS,
)
TABLES_BY_NAME: dict[str, TableSpec] = {t.name: t for t in TABLES}


def table(name: str) -> TableSpec:
    """Return the table called ``name``; raise ``KeyError`` listing the known tables."""
    try:
        return TABLES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES_BY_NAME)}") from None


__all__ = [
    "TABLES",
    "TABLES_BY_NAME",
    "Code",
    "Column",
    "DType",
    "TableSpec",
    "table",
]
