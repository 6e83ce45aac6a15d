"""Human review and early warning, as the tier policy requires.

- :mod:`~service.workflow.tasks`: tasks with due dates from each tier's response times,
  completion by reviews, overdue detection;
- :mod:`~service.workflow.reviews`: visit outcomes and proposals, mandatory reports,
  supervisors' confirmations and overrides (never below a floor or a hard rule), fall
  confirmations (a hard-rule T1 closes only by a supervisor), the history, and the overrides
  in force and confirmations the next scoring run takes (``shouhu weekly``);
- :mod:`~service.workflow.stats`: override rates per week by reviewer, tier and group, and
  which of them are high enough to ask about;
- :mod:`~service.workflow.alerts`: alerts after each scoring run, deduplicated, and the feed;
- :mod:`~service.workflow.webhook`: signed webhook delivery with bounded retries;
- :mod:`~service.workflow.doc`: the generated parts of ``docs/human-review.md``.
"""

from service.workflow.alerts import (
    AlertCandidate,
    AlertRun,
    AlertView,
    RunProcessing,
    alert_feed,
    detect_alerts,
    process_run,
    raise_alerts_for_run,
)
from service.workflow.codes import Activity, Decision, ReasonCode, ReviewKind, VisitOutcome
from service.workflow.context import (
    Actor,
    ChildContext,
    Reviewer,
    TierCheck,
    check_tier,
    context_for,
    context_from_score_row,
)
from service.workflow.reviews import (
    DecisionResult,
    ReviewEntry,
    awaiting_closure,
    child_reviews,
    confirm_fall,
    confirmations_for_scoring,
    decide,
    log_mandatory_report,
    overrides_for_scoring,
    pending_proposals,
    record_visit,
    tier_in_force,
)
from service.workflow.runs import load_runs
from service.workflow.stats import GroupBy, RateRow, override_rates
from service.workflow.tasks import (
    OpenTaskIndex,
    OverdueSummary,
    TaskKind,
    TaskStatus,
    TaskView,
    open_tasks,
    overdue_by_child,
    overdue_index,
    planned_tasks,
    sync_tasks_for_run,
    task_history,
)
from service.workflow.webhook import WebhookConfig, deliver_pending, sign, verify_signature

__all__ = [
    "Activity",
    "Actor",
    "AlertCandidate",
    "AlertRun",
    "AlertView",
    "ChildContext",
    "Decision",
    "DecisionResult",
    "GroupBy",
    "OpenTaskIndex",
    "OverdueSummary",
    "RateRow",
    "ReasonCode",
    "ReviewEntry",
    "ReviewKind",
    "Reviewer",
    "RunProcessing",
    "TaskKind",
    "TaskStatus",
    "TaskView",
    "TierCheck",
    "VisitOutcome",
    "WebhookConfig",
    "alert_feed",
    "awaiting_closure",
    "check_tier",
    "child_reviews",
    "confirm_fall",
    "confirmations_for_scoring",
    "context_for",
    "context_from_score_row",
    "decide",
    "deliver_pending",
    "detect_alerts",
    "load_runs",
    "log_mandatory_report",
    "open_tasks",
    "overdue_by_child",
    "overdue_index",
    "override_rates",
    "overrides_for_scoring",
    "pending_proposals",
    "planned_tasks",
    "process_run",
    "raise_alerts_for_run",
    "record_visit",
    "sign",
    "sync_tasks_for_run",
    "task_history",
    "tier_in_force",
    "verify_signature",
]
