"""Domain objects of the workflow as API responses (``service.schemas.workflow``).

Kept apart from the domain modules so the schemas can import the codes without a cycle; the
routers and pages call these.
"""

from __future__ import annotations

from service.db.workflow import Override
from service.schemas.common import Lang
from service.schemas.workflow import (
    AlertPublic,
    ClosurePublic,
    OverridePublic,
    RatePublic,
    ReviewPublic,
    TaskPublic,
)
from service.workflow.alerts import AlertView
from service.workflow.context import ChildContext
from service.workflow.reviews import ReviewEntry
from service.workflow.stats import RateRow
from service.workflow.tasks import KIND_LABELS, TaskKind, TaskView


def task_public(view: TaskView, lang: Lang = "zh") -> TaskPublic:
    """A task and its status, labelled in ``lang``."""
    task = view.task
    zh, en = KIND_LABELS[TaskKind(task.kind)]
    return TaskPublic.model_validate(
        {
            "id": task.id,
            "child_id": task.child_id,
            "village_code": task.village_code,
            "kind": task.kind,
            "tier": task.tier,
            "status": view.status,
            "opened_at": task.opened_at,
            "due_at": task.due_at,
            "overdue": view.overdue,
            "days_overdue": round(view.days_overdue, 3),
            "completed_at": view.completed_at,
            "review_id": view.review_id,
            "label": en if lang == "en" else zh,
        }
    )


def override_public(override: Override, reviewer: str) -> OverridePublic:
    """An override with the reviewer's user name."""
    return OverridePublic.model_validate(
        {
            "id": override.id,
            "review_id": override.review_id,
            "child_id": override.child_id,
            "computed_tier": override.computed_tier,
            "tier_before": override.tier_before,
            "tier": override.tier,
            "rule_tier": override.rule_tier,
            "reason_code": override.reason_code,
            "reason_text": override.reason_text,
            "reviewer": reviewer,
            "reviewer_role": override.reviewer_role,
            "created_at": override.created_at,
            "policy_version": override.policy_version,
        }
    )


def review_public(entry: ReviewEntry) -> ReviewPublic:
    """One review of a child's history, with its override."""
    review = entry.review
    return ReviewPublic.model_validate(
        {
            "id": review.id,
            "child_id": review.child_id,
            "kind": review.kind,
            "activity": review.activity,
            "outcome": review.outcome,
            "notes": review.notes or "",
            "reviewer": entry.reviewer,
            "reviewer_role": review.reviewer_role,
            "created_at": review.created_at,
            "computed_tier": review.computed_tier,
            "tier_in_force": review.tier_in_force,
            "hard_rule_t1": review.hard_rule_t1,
            "rules_fired": list(review.rules_fired or []),
            "run_id": review.run_id,
            "proposed_tier": review.proposed_tier,
            "reason_code": review.reason_code,
            "reason_text": review.reason_text,
            "answers_review_id": review.answers_review_id,
            "decision": review.decision,
            "decided_tier": review.decided_tier,
            "report_agency": review.report_agency,
            "report_reference": review.report_reference,
            "reported_at": review.reported_at,
            "override": (
                None if entry.override is None else override_public(entry.override, entry.reviewer)
            ),
        }
    )


def closure_public(context: ChildContext) -> ClosurePublic:
    """A hard-rule T1 waiting to be closed."""
    return ClosurePublic(
        child_id=context.child_id,
        village_code=context.village_code,
        tier=context.tier.value,
        rules_fired=list(context.rules_fired),
        as_of=context.as_of,
        run_id=context.run_id,
    )


def rate_public(row: RateRow) -> RatePublic:
    """One cell of the override statistics."""
    return RatePublic(
        week=row.week,
        week_start=row.week_start,
        group=row.group,
        decisions=row.decisions,
        overrides=row.overrides,
        raised=row.raised,
        lowered=row.lowered,
        rate=round(row.rate, 6),
    )


def alert_public(view: AlertView) -> AlertPublic:
    """An alert with its delivery status."""
    alert = view.alert
    return AlertPublic.model_validate(
        {
            "id": alert.id,
            "child_id": alert.child_id,
            "village_code": alert.village_code,
            "township_code": alert.township_code,
            "tier": alert.tier,
            "previous_tier": alert.previous_tier,
            "tier_rise": alert.tier_rise,
            "hard_rules": list(alert.hard_rules or []),
            "reasons": list(alert.reasons or []),
            "as_of": alert.as_of,
            "run_id": alert.run_id,
            "policy_version": alert.policy_version,
            "model_version": alert.model_version,
            "raised_at": alert.raised_at,
            "delivered": view.delivered,
            "delivery_attempts": view.attempts,
        }
    )


__all__ = [
    "alert_public",
    "closure_public",
    "override_public",
    "rate_public",
    "review_public",
    "task_public",
]
