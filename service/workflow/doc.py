"""Render the policy-dependent parts of ``docs/human-review.md``, so they never drift.

The document is written by hand except for the part between :data:`BEGIN` and :data:`END`,
which ``shouhu review doc`` rewrites from the tier policy (tiers, tasks and due times, who
confirms a fall and who closes a hard-rule T1, the hard and floor rules) and from the codes a
review records. A test fails when the committed document differs from this rendering.
"""

from __future__ import annotations

from pathlib import Path

from models.policy import Period, TierPolicy
from service.workflow.codes import LABELS, Activity, ReasonCode, VisitOutcome
from service.workflow.tasks import COMPLETED_BY, KIND_LABELS, RECURRING, TaskKind, period_of

BEGIN = "<!-- BEGIN GENERATED FROM THE TIER POLICY (shouhu review doc) -->"
END = "<!-- END GENERATED FROM THE TIER POLICY -->"

_UNITS_ZH = {
    "hour": "小时",
    "day": "天",
    "week": "周",
    "month": "个月",
    "quarter": "个季度",
    "year": "年",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _span_en(period: Period) -> str:
    unit = period.unit
    return f"{period.every} {unit}s" if period.every != 1 else f"1 {unit}"


def _span_zh(period: Period) -> str:
    return f"{period.every}{_UNITS_ZH[period.unit]}"


def _task_line(kind: TaskKind, period: Period | None) -> str:
    zh, en = KIND_LABELS[kind]
    if period is None:
        return f"{en} ({zh}): at once (立即)"
    if kind in RECURRING:
        if period.every == 1:
            return f"{en} ({zh}): every {period.unit} (每{_UNITS_ZH[period.unit]})"
        return f"{en} ({zh}): every {_span_en(period)} (每{_span_zh(period)})"
    return f"{en} ({zh}): within {_span_en(period)} ({_span_zh(period)}内)"


def render_policy_section(policy: TierPolicy) -> str:
    """The generated section of ``docs/human-review.md`` for ``policy``.

    Parameters
    ----------
    policy : TierPolicy
        The tier policy in force.

    Returns
    -------
    str
        Markdown between :data:`BEGIN` and :data:`END` (markers included).
    """
    rules = policy.hysteresis
    lines = [
        BEGIN,
        "",
        f"Policy **{policy.version}** ({policy.title.en} · {policy.title.zh}), fingerprint "
        f"`{policy.fingerprint()}`.",
        "",
        "### Tiers and the tasks each one opens",
        "",
        "A task's due time counts from the moment the tier took effect (the scoring run, or the "
        "supervisor's decision). A recurring task, once done, opens the next one, due one "
        "period after the review that did it.",
        "",
        "| tier | 中文 | what the policy asks | tasks opened (due) | closed by |",
        "|---|---|---|---|---|",
    ]
    for spec in policy.tiers:
        response = spec.response
        tasks = []
        if response.report_to_police_at_once:
            tasks.append(_task_line(TaskKind.MANDATORY_REPORT, None))
        for kind in TaskKind:
            period = period_of(response, kind)
            if period is not None:
                tasks.append(_task_line(kind, period))
        lines.append(
            f"| {spec.id.value} · {_cell(spec.en)} | {_cell(spec.zh)} | "
            f"{_cell(response.summary.en)} | {'<br>'.join(_cell(t) for t in tasks)} | "
            f"{response.closed_by.value} |"
        )
    needs = (
        f"after {rules.fall_after_consecutive_below} consecutive scorings below it"
        if rules.hard_rule_t1_needs_consecutive_below
        else "at the next scoring below it"
    )
    lines += [
        "",
        "### Who confirms a fall, who closes a T1",
        "",
        f"- A tier rises at once ({rules.rise}). It falls only after "
        f"{rules.fall_after_consecutive_below} consecutive scorings below it, and then only "
        f"once a **{rules.fall_confirmed_by.value}** confirms the fall.",
        f"- A T1 caused by a hard rule falls {needs}, and only once a "
        f"**{rules.hard_rule_t1_closed_by.value}** closes it. While a hard rule still fires, "
        "nobody can lower the tier.",
        "- A scoring without a model score "
        + (
            "counts towards a fall."
            if rules.count_scorings_without_model
            else "does not count towards a fall (an outage is no evidence a child is safer)."
        ),
        "",
        "### Hard rules: T1 and a mandatory report, whatever any model says",
        "",
        "| rule | 中文 | English | domain |",
        "|---|---|---|---|",
    ]
    for rule in policy.hard_rules:
        lines.append(f"| `{rule.name}` | {_cell(rule.zh)} | {_cell(rule.en)} | {rule.domain} |")
    lines += [
        "",
        "### Floor rules: no tier, and no override, below these",
        "",
        "| floor | rule | 中文 | English |",
        "|---|---|---|---|",
    ]
    for floor in sorted(policy.floor_rules, key=lambda r: r.tier.level):
        lines.append(
            f"| {floor.tier.value} | `{floor.name}` | {_cell(floor.zh)} | {_cell(floor.en)} |"
        )
    lines += [
        "",
        "### What a review records",
        "",
        "| activity | 中文 | completes these tasks |",
        "|---|---|---|",
    ]
    for activity in Activity:
        zh, en = LABELS[activity]
        kinds = ", ".join(k.value for k in TaskKind if k in COMPLETED_BY[activity])
        lines.append(f"| `{activity.value}` · {en} | {zh} | {kinds} |")
    lines.append("| (mandatory report logged) | 强制报告登记 | mandatory_report |")
    lines += ["", "| outcome | 中文 | English |", "|---|---|---|"]
    for outcome in VisitOutcome:
        zh, en = LABELS[outcome]
        lines.append(f"| `{outcome.value}` | {zh} | {en} |")
    lines += ["", "| reason code | 中文 | English |", "|---|---|---|"]
    for code in ReasonCode:
        zh, en = LABELS[code]
        lines.append(f"| `{code.value}` | {zh} | {en} |")
    lines += ["", END]
    return "\n".join(lines)


def updated_document(text: str, policy: TierPolicy) -> str:
    """``text`` with its generated section replaced by a fresh rendering.

    Raises
    ------
    ValueError
        If the document lacks the markers.
    """
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError("the document has no generated-section markers")
    return text[:start] + render_policy_section(policy) + text[end + len(END) :]


def write_review_doc(path: Path, policy: TierPolicy) -> bool:
    """Rewrite the generated section of the document at ``path``; whether it changed."""
    text = path.read_text(encoding="utf-8")
    fresh = updated_document(text, policy)
    if fresh != text:
        path.write_text(fresh, encoding="utf-8")
    return fresh != text


__all__ = ["BEGIN", "END", "render_policy_section", "updated_document", "write_review_doc"]
