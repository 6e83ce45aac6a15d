"""The codes a review records, each with a Chinese and an English label.

Codes are what the statistics count and what the pages offer in drop-downs; the labels are what
people read. The free text beside a code says the rest.
"""

from __future__ import annotations

from enum import StrEnum


class ReviewKind(StrEnum):
    """What a review records."""

    VISIT = "visit"
    MANDATORY_REPORT = "mandatory_report"
    DECISION = "decision"
    FALL_CONFIRMATION = "fall_confirmation"


class Activity(StrEnum):
    """What a caseworker did (a visit review)."""

    HOME_VISIT = "home_visit"
    PHONE_CHECK = "phone_check"
    CASE_PLAN = "case_plan"
    FILE_UPDATE = "file_update"


class VisitOutcome(StrEnum):
    """What a caseworker found."""

    SAFE = "safe"
    CONCERNS = "concerns"
    URGENT = "urgent"
    NOT_FOUND = "not_found"
    REFUSED = "refused"
    DONE = "done"


class Decision(StrEnum):
    """A supervisor's decision: keep the engine's tier, or set another one."""

    CONFIRM = "confirm"
    OVERRIDE = "override"


class ReasonCode(StrEnum):
    """Why a tier should differ from the engine's (a proposal or an override)."""

    VISIT_FOUND_LOWER_RISK = "visit_found_lower_risk"
    VISIT_FOUND_HIGHER_RISK = "visit_found_higher_risk"
    RECORDS_OUTDATED = "records_outdated"
    NEW_INFORMATION = "new_information"
    GUARDIANSHIP_ARRANGED = "guardianship_arranged"
    SUPPORT_IN_PLACE = "support_in_place"
    PROFESSIONAL_JUDGEMENT = "professional_judgement"
    OTHER = "other"


#: Chinese and English label of every code, for pages and the generated documentation.
LABELS: dict[StrEnum, tuple[str, str]] = {
    ReviewKind.VISIT: ("走访记录", "visit record"),
    ReviewKind.MANDATORY_REPORT: ("强制报告登记", "mandatory report logged"),
    ReviewKind.DECISION: ("督导审核", "supervisor's decision"),
    ReviewKind.FALL_CONFIRMATION: ("确认降级", "fall confirmed"),
    Activity.HOME_VISIT: ("入户走访", "home visit"),
    Activity.PHONE_CHECK: ("电话回访", "phone check"),
    Activity.CASE_PLAN: ("制定个案计划", "case plan made"),
    Activity.FILE_UPDATE: ("更新档案", "file updated"),
    VisitOutcome.SAFE: ("见到儿童,情况安全", "child seen and safe"),
    VisitOutcome.CONCERNS: ("发现问题,需跟进", "concerns found, follow-up needed"),
    VisitOutcome.URGENT: ("情况紧急,需立即干预", "urgent: immediate intervention needed"),
    VisitOutcome.NOT_FOUND: ("未见到儿童", "child not found"),
    VisitOutcome.REFUSED: ("监护人拒绝配合", "guardian refused"),
    VisitOutcome.DONE: ("已完成", "done"),
    Decision.CONFIRM: ("确认", "confirmed"),
    Decision.OVERRIDE: ("调整等级", "overridden"),
    ReasonCode.VISIT_FOUND_LOWER_RISK: (
        "走访核实风险低于评估",
        "the visit found lower risk than scored",
    ),
    ReasonCode.VISIT_FOUND_HIGHER_RISK: (
        "走访发现风险高于评估",
        "the visit found higher risk than scored",
    ),
    ReasonCode.RECORDS_OUTDATED: ("台账信息过时或有误", "the records are out of date or wrong"),
    ReasonCode.NEW_INFORMATION: (
        "有尚未录入台账的新情况",
        "new information not yet in the records",
    ),
    ReasonCode.GUARDIANSHIP_ARRANGED: ("已落实有效监护", "effective guardianship arranged"),
    ReasonCode.SUPPORT_IN_PLACE: ("帮扶措施已落实", "support services in place"),
    ReasonCode.PROFESSIONAL_JUDGEMENT: ("专业判断(须说明)", "professional judgement (explained)"),
    ReasonCode.OTHER: ("其他(须说明)", "other (explained)"),
}


def label(code: StrEnum, lang: str = "zh") -> str:
    """The label of ``code`` in ``lang`` (``zh`` or ``en``).

    Examples
    --------
    >>> label(ReasonCode.OTHER, "en")
    'other (explained)'
    """
    zh, en = LABELS[code]
    return en if lang == "en" else zh


__all__ = [
    "LABELS",
    "Activity",
    "Decision",
    "ReasonCode",
    "ReviewKind",
    "VisitOutcome",
    "label",
]
