"""The human-review workflow and early warning: tasks, reviews, overrides, alerts, deliveries.

Every table here is append-only, because the tier policy asks that the full history of who
decided what, when and why is kept and shown (``tier-policy.md``: "the override, the reviewer
and the reason are kept for good"; the issue: "nothing is edited in place"):

- a task is never marked done or cancelled in place: a :class:`TaskCompletion` row records
  that a review completed it, and a newer *episode* of tasks (opened when the child's tier
  changes) supersedes the open tasks of the older one (``service.workflow.tasks``);
- a review is never edited: a correction is a new review; a supervisor's decision on a
  caseworker's proposal is a new review that points at it (``answers_review_id``);
- an override is one row per decision that set a tier other than the engine's;
- an alert is raised once (``dedup_key`` is unique); every webhook attempt is a new
  :class:`AlertDelivery` row.

The ORM refuses to flush an update or a delete of these rows (:func:`_refuse_changes`), and
migration ``0002_workflow`` adds database triggers that refuse a hand-typed ``UPDATE`` or
``DELETE`` too. Rows carry the child's pseudonymous id and area codes, never a name.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    event,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from service.db.base import Base, UTCDateTime, utcnow

#: Tier names as stored (``models.policy.Tier`` values).
TIERS: tuple[str, ...] = ("T1", "T2", "T3", "T4")
_TIER_CHECK = "IN ('T1', 'T2', 'T3', 'T4')"


class Task(Base):
    """Something a person must do for a child by a due time, from the tier's response times.

    Attributes
    ----------
    child_id : str
        The child's pseudonymous id.
    village_code, township_code : str
        Where the child lives (area scoping reads ``village_code``).
    kind : str
        ``mandatory_report``, ``first_visit``, ``case_plan``, ``visit``, ``contact``,
        ``phone_check`` or ``file_update`` (``service.workflow.tasks.TaskKind``).
    tier : str
        The tier whose response opened the task.
    episode : int
        Per child, 1, 2, …: a new episode starts whenever the child's tier changes; the open
        tasks of older episodes are superseded (except a mandatory report, which stays due).
    opened_at, due_at : datetime
        When the task was opened and when it falls due (UTC).
    opened_by : str
        ``run:<run_id>`` (a scoring run), ``review:<id>`` (a review completed the previous
        task of a recurring kind, or a decision changed the tier).
    policy_version : str
        The policy whose response times set ``due_at``.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(f"tier {_TIER_CHECK}", name="tier_known"),
        Index("ix_tasks_child_episode", "child_id", "episode"),
        Index("ix_tasks_village_due", "village_code", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_id: Mapped[str] = mapped_column(String(64))
    village_code: Mapped[str] = mapped_column(String(12))
    township_code: Mapped[str] = mapped_column(String(12))
    kind: Mapped[str] = mapped_column(String(24))
    tier: Mapped[str] = mapped_column(String(2))
    episode: Mapped[int] = mapped_column(Integer)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    opened_by: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(64))


class Review(Base):
    """One act of human review of a child, never edited (a correction is a new review).

    Attributes
    ----------
    kind : str
        ``visit`` (a caseworker records what was done and seen, and may propose a tier),
        ``mandatory_report`` (a report to the police was made), ``decision`` (a supervisor
        confirms or overrides the tier) or ``fall_confirmation`` (a person confirms a fall
        the policy holds for confirmation; for a hard-rule T1 this closes the case).
    activity : str or None
        For a visit: ``home_visit``, ``phone_check``, ``case_plan`` or ``file_update``.
    outcome : str or None
        For a visit: the outcome code (``service.workflow.codes.VisitOutcome``).
    notes : str
        Free text.
    reviewer_id, reviewer_role : int, str
        Who, and with which role at the time.
    computed_tier : str
        The tier the latest scoring run decided when the review was made.
    tier_in_force : str
        The tier in force when the review was made (an earlier override may differ from the
        computed tier).
    hard_rule_t1 : bool
        The child's T1 came from a hard rule.
    rules_fired : list of str
        The rule labels of that scoring run (``hard:<rule>``, ``floor:<tier>:<rule>``).
    run_id : str or None
        The scoring run those came from.
    proposed_tier, reason_code, reason_text : str or None
        A visit's proposed tier with its reason; a decision's reason.
    answers_review_id : int or None
        The proposal a decision answers.
    decision : str or None
        ``confirm`` or ``override`` (decisions only).
    decided_tier : str or None
        The tier a decision set.
    report_agency, report_reference, reported_at : str, str, datetime or None
        A mandatory report: to whom (e.g. the police station), the receipt or case number,
        and when it was made.
    girl, disability : bool or None
        The child's groups when reviewed (``None`` when unknown), for override-rate
        statistics by group.
    """

    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('visit', 'mandatory_report', 'decision', 'fall_confirmation')",
            name="kind_known",
        ),
        CheckConstraint("decision IS NULL OR decision IN ('confirm', 'override')", name="decision"),
        CheckConstraint(f"computed_tier {_TIER_CHECK}", name="computed_tier_known"),
        CheckConstraint(
            f"proposed_tier IS NULL OR proposed_tier {_TIER_CHECK}", name="proposed_tier_known"
        ),
        CheckConstraint(
            f"decided_tier IS NULL OR decided_tier {_TIER_CHECK}", name="decided_tier_known"
        ),
        Index("ix_reviews_child_created", "child_id", "created_at"),
        Index("ix_reviews_village_kind", "village_code", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_id: Mapped[str] = mapped_column(String(64))
    village_code: Mapped[str] = mapped_column(String(12))
    township_code: Mapped[str] = mapped_column(String(12))
    kind: Mapped[str] = mapped_column(String(24))
    activity: Mapped[str | None] = mapped_column(String(24), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    reviewer_role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    computed_tier: Mapped[str] = mapped_column(String(2))
    tier_in_force: Mapped[str] = mapped_column(String(2))
    hard_rule_t1: Mapped[bool] = mapped_column(Boolean, default=False)
    rules_fired: Mapped[list[str]] = mapped_column(JSON, default=list)
    run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    proposed_tier: Mapped[str | None] = mapped_column(String(2), nullable=True)
    reason_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    answers_review_id: Mapped[int | None] = mapped_column(
        ForeignKey("reviews.id"), nullable=True, index=True
    )
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)
    decided_tier: Mapped[str | None] = mapped_column(String(2), nullable=True)
    report_agency: Mapped[str | None] = mapped_column(String(128), nullable=True)
    report_reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    girl: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    disability: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class TaskCompletion(Base):
    """A review completed a task (one row per task; the task row itself never changes).

    The increasing ``id`` lets a reader catch up with completions since the last one it saw
    (``service.workflow.tasks.OpenTaskIndex``).
    """

    __tablename__ = "task_completions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), unique=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), index=True)
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Override(Base):
    """A decision that set a tier other than the one the engine computed: data, kept for good.

    Attributes
    ----------
    review_id : int
        The decision (a :class:`Review` of kind ``decision``).
    computed_tier, tier_before, tier : str
        The engine's tier, the tier in force before, and the tier the reviewer set.
    rule_tier : str or None
        The most severe tier the rules required then (a floor the override could not cross).
    reason_code, reason_text : str
        Why, as a code (``service.workflow.codes.ReasonCode``) and in the reviewer's words.
    reviewer_id, reviewer_role, created_at : int, str, datetime
        Who and when.
    girl, disability, township_code
        The child's groups, for the override-rate statistics.
    policy_version : str
        The policy whose floors and hard rules were checked.
    """

    __tablename__ = "overrides"
    __table_args__ = (
        CheckConstraint(f"tier {_TIER_CHECK}", name="tier_known"),
        CheckConstraint(f"computed_tier {_TIER_CHECK}", name="computed_tier_known"),
        CheckConstraint("length(trim(reason_text)) > 0", name="reason_written"),
        Index("ix_overrides_child_created", "child_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), unique=True)
    child_id: Mapped[str] = mapped_column(String(64))
    village_code: Mapped[str] = mapped_column(String(12))
    township_code: Mapped[str] = mapped_column(String(12))
    computed_tier: Mapped[str] = mapped_column(String(2))
    tier_before: Mapped[str] = mapped_column(String(2))
    tier: Mapped[str] = mapped_column(String(2))
    rule_tier: Mapped[str | None] = mapped_column(String(2), nullable=True)
    reason_code: Mapped[str] = mapped_column(String(32))
    reason_text: Mapped[str] = mapped_column(Text)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    reviewer_role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    girl: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    disability: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    policy_version: Mapped[str] = mapped_column(String(64))


class Alert(Base):
    """An early warning: after a scoring run a child rose a tier or a hard rule newly fired.

    Attributes
    ----------
    dedup_key : str
        ``<child_id>|<as_of>|<tier>|<new hard rules>``: the same situation found again (the
        same run processed twice, or the same date scored again) never raises a second alert.
    child_id, village_code, township_code : str
        The child and where it lives.
    run_id, as_of : str, date
        The scoring run that found it.
    tier, previous_tier : str, str or None
        The tier now and in the previous run (``None`` when the child was not scored then).
    tier_rise : bool
        The tier rose.
    hard_rules : list of str
        The hard rules that newly fired (rule names).
    reasons : list of dict
        What to show: each newly fired hard rule and the tier rise, in Chinese and English,
        then the model's top factors of the run.
    raised_at : datetime
        When the alert was raised.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(f"tier {_TIER_CHECK}", name="tier_known"),
        Index("ix_alerts_village_raised", "village_code", "raised_at"),
        Index("ix_alerts_child", "child_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    child_id: Mapped[str] = mapped_column(String(64))
    village_code: Mapped[str] = mapped_column(String(12))
    township_code: Mapped[str] = mapped_column(String(12))
    run_id: Mapped[str] = mapped_column(String(32), index=True)
    as_of: Mapped[date] = mapped_column(Date)
    tier: Mapped[str] = mapped_column(String(2))
    previous_tier: Mapped[str | None] = mapped_column(String(2), nullable=True)
    tier_rise: Mapped[bool] = mapped_column(Boolean)
    hard_rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    policy_version: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class AlertDelivery(Base):
    """One attempt to POST an alert to the webhook (every attempt is a row of its own).

    Attributes
    ----------
    alert_id : int
        The alert.
    attempt : int
        1 for the first attempt of a delivery round, then 2, 3, … for its retries.
    attempted_at : datetime
        When.
    ok : bool
        The receiver answered 2xx.
    status_code : int or None
        The HTTP status (``None`` when no answer came).
    error : str
        What went wrong (a status line or the kind of network error), empty when ``ok``.
    duration_ms : int
        How long the attempt took.
    """

    __tablename__ = "alert_deliveries"
    __table_args__ = (Index("ix_alert_deliveries_alert_ok", "alert_id", "ok"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(String(255), default="")
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


#: Tables whose rows are only ever inserted.
APPEND_ONLY: tuple[type[Base], ...] = (
    Task,
    TaskCompletion,
    Review,
    Override,
    Alert,
    AlertDelivery,
)


@event.listens_for(Session, "before_flush")
def _refuse_changes(session: Session, _context: Any, _instances: Any) -> None:
    """Refuse to flush an update or a delete of a workflow row (history is append-only)."""
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, APPEND_ONLY) and (obj in session.deleted or session.is_modified(obj)):
            raise PermissionError(
                f"{type(obj).__tablename__} is append-only: rows cannot change; record a new one"
            )


__all__ = [
    "APPEND_ONLY",
    "TIERS",
    "Alert",
    "AlertDelivery",
    "Override",
    "Review",
    "Task",
    "TaskCompletion",
]
