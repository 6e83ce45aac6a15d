"""Human review: visit outcomes, mandatory reports, supervisors' decisions and fall confirmations.

The process (``docs/human-review.md`` says it in plain words):

- a caseworker records what a visit, phone check, case plan or file update found
  (:func:`record_visit`), and may propose another tier with a reason;
- anyone who reviews logs a mandatory report to the police (:func:`log_mandatory_report`);
- a supervisor decides (:func:`decide`): keeps the engine's tier (*confirm*) or sets another
  (*override*, with a reason code and a written reason), possibly answering a proposal; an
  override is refused below a floor or a hard rule, as ``models.tiers.decide_tier`` decides
  (:func:`service.workflow.context.check_tier`);
- when the engine holds a fall for a person's confirmation, the policy's role confirms it
  (:func:`confirm_fall`); for a T1 caused by a hard rule that is a supervisor: closing it.

Every call appends rows and never changes one; a refusal raises before anything is written.
The functions flush but do not commit: the caller's session (one request) commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from models.policy import Role, Tier, TierPolicy
from service.db.identity import User
from service.db.workflow import Override, Review
from service.workflow.codes import Activity, Decision, ReasonCode, ReviewKind, VisitOutcome
from service.workflow.context import Actor, ChildContext, check_tier, policy_role
from service.workflow.scope import in_area
from service.workflow.tasks import (
    COMPLETED_BY,
    ChildArea,
    TaskKind,
    complete_tasks,
    current_episode,
    open_episode,
)
from shouhu.errors import NotFoundError, PermissionDeniedError, ReviewRefusedError

logger = logging.getLogger(__name__)

#: Longest free text kept (characters); a page form cannot send more.
MAX_TEXT = 4000


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def _area(context: ChildContext) -> ChildArea:
    return ChildArea(context.child_id, context.village_code, context.township_code)


def _text(value: str | None, what: str, *, required: bool = False) -> str:
    text = (value or "").strip()
    if required and not text:
        raise ReviewRefusedError(f"{what} must be written")
    if len(text) > MAX_TEXT:
        raise ReviewRefusedError(f"{what} is longer than {MAX_TEXT} characters")
    return text


def latest_decision(session: Session, child_id: str) -> Review | None:
    """The child's newest supervisor decision, if any."""
    return session.scalars(
        select(Review)
        .where(Review.child_id == child_id, Review.kind == ReviewKind.DECISION.value)
        .order_by(Review.created_at.desc(), Review.id.desc())
        .limit(1)
    ).first()


def tier_in_force(session: Session, context: ChildContext) -> Tier:
    """The child's tier now: a decision made after the latest scoring run, else that run's.

    A decision stays in force until the next run; a run that takes the decisions in force
    (:func:`overrides_for_scoring`) keeps an override from then on, and its tier is the
    override's (``ChildContext.tier_of_run``).
    """
    decision = latest_decision(session, context.child_id)
    if (
        decision is not None
        and decision.decided_tier is not None
        and (context.scored_at is None or decision.created_at > context.scored_at)
    ):
        return Tier(decision.decided_tier)
    return context.tier_of_run


def _review(
    context: ChildContext, actor: Actor, kind: ReviewKind, at: datetime, in_force: Tier
) -> Review:
    return Review(
        child_id=context.child_id,
        village_code=context.village_code,
        township_code=context.township_code,
        kind=kind.value,
        reviewer_id=actor.user_id,
        reviewer_role=str(actor.role),
        created_at=at,
        computed_tier=context.tier.value,
        tier_in_force=in_force.value,
        hard_rule_t1=context.hard_rule_t1,
        rules_fired=list(context.rules_fired),
        run_id=context.run_id,
        girl=context.girl,
        disability=context.disability,
        notes="",
    )


def record_visit(
    session: Session,
    policy: TierPolicy,
    context: ChildContext,
    actor: Actor,
    *,
    activity: Activity,
    outcome: VisitOutcome,
    notes: str = "",
    proposed_tier: Tier | None = None,
    reason_code: ReasonCode | None = None,
    reason_text: str | None = None,
    now: datetime | None = None,
) -> Review:
    """Record a visit (or phone check, case plan, file update) and what it found.

    Completes the child's open tasks the activity covers and opens the next of each recurring
    one. A proposed tier goes to a supervisor (:func:`pending_proposals`); it is refused at
    once when no supervisor could set it (below a floor or a hard rule).

    Parameters
    ----------
    session : Session
        The operational database (flushed, not committed).
    policy : TierPolicy
        The tier policy.
    context : ChildContext
        The child's latest scoring.
    actor : Actor
        A caseworker or supervisor.
    activity : Activity
        What was done.
    outcome : VisitOutcome
        What was found.
    notes : str
        Free text.
    proposed_tier : Tier, optional
        A tier the caseworker proposes instead of the one in force.
    reason_code, reason_text : optional
        Required with a proposal: a code and a written reason.
    now : datetime, optional
        When (UTC now by default).

    Returns
    -------
    Review
        The stored review.

    Raises
    ------
    PermissionDeniedError
        If the actor does not review children.
    ReviewRefusedError
        A proposal without a reason, equal to the tier in force, or below a floor or a hard
        rule.
    """
    policy_role(actor)
    at = _now(now)
    in_force = tier_in_force(session, context)
    review = _review(context, actor, ReviewKind.VISIT, at, in_force)
    review.activity = Activity(activity).value
    review.outcome = VisitOutcome(outcome).value
    review.notes = _text(notes, "the notes")
    if proposed_tier is not None:
        if reason_code is None:
            raise ReviewRefusedError("a proposed tier needs a reason code")
        review.reason_text = _text(reason_text, "the reason for the proposed tier", required=True)
        if proposed_tier is in_force:
            raise ReviewRefusedError(f"{proposed_tier} is already the tier in force")
        # The proposal is checked with a supervisor's authority: the supervisor decides it,
        # and may close a hard-rule T1 the caseworker could not.
        check = check_tier(policy, context, proposed_tier, Role.SUPERVISOR)
        if not check.allowed:
            raise ReviewRefusedError(check.explain(policy))
        review.proposed_tier = proposed_tier.value
        review.reason_code = ReasonCode(reason_code).value
    elif reason_code is not None or (reason_text or "").strip():
        raise ReviewRefusedError("a reason is given only with a proposed tier")
    session.add(review)
    session.flush()
    complete_tasks(
        session,
        policy,
        _area(context),
        COMPLETED_BY[Activity(activity)],
        review_id=review.id,
        at=at,
    )
    logger.info(
        "visit recorded",
        extra={
            "child_id": context.child_id,
            "review_id": review.id,
            "proposal": bool(proposed_tier),
        },
    )
    return review


def log_mandatory_report(
    session: Session,
    policy: TierPolicy,
    context: ChildContext,
    actor: Actor,
    *,
    agency: str,
    reference: str,
    reported_at: datetime,
    notes: str = "",
    now: datetime | None = None,
) -> Review:
    """Log that a mandatory report was made to the police, completing the open report task.

    Parameters
    ----------
    session : Session
        The operational database (flushed, not committed).
    policy : TierPolicy
        The tier policy.
    context : ChildContext
        The child's latest scoring.
    actor : Actor
        A caseworker or supervisor.
    agency : str
        To whom (the police station or office).
    reference : str
        The receipt or case number the police gave.
    reported_at : datetime
        When the report was made (not in the future).
    notes : str
        Free text.
    now : datetime, optional
        When it is logged (UTC now by default).

    Returns
    -------
    Review

    Raises
    ------
    PermissionDeniedError
        If the actor does not review children.
    ReviewRefusedError
        Without an agency or a reference, or with a report time in the future.
    """
    policy_role(actor)
    at = _now(now)
    if reported_at.tzinfo is None:
        raise ReviewRefusedError("the report time must carry a time zone")
    if reported_at.astimezone(UTC) > at:
        raise ReviewRefusedError("the report time is in the future")
    review = _review(
        context, actor, ReviewKind.MANDATORY_REPORT, at, tier_in_force(session, context)
    )
    review.report_agency = _text(agency, "the agency reported to", required=True)[:128]
    review.report_reference = _text(reference, "the report's reference", required=True)[:64]
    review.reported_at = reported_at.astimezone(UTC)
    review.notes = _text(notes, "the notes")
    session.add(review)
    session.flush()
    complete_tasks(
        session, policy, _area(context), [TaskKind.MANDATORY_REPORT], review_id=review.id, at=at
    )
    logger.info(
        "mandatory report logged", extra={"child_id": context.child_id, "review_id": review.id}
    )
    return review


def confirm_fall(
    session: Session,
    policy: TierPolicy,
    context: ChildContext,
    actor: Actor,
    *,
    notes: str = "",
    now: datetime | None = None,
) -> Review:
    """Confirm a fall the engine holds for a person's confirmation (closing a hard-rule T1).

    The next scoring run lets the tier fall (:func:`confirmations_for_scoring`).

    Parameters
    ----------
    session : Session
        The operational database (flushed, not committed).
    policy : TierPolicy
        The tier policy: ``hysteresis.fall_confirmed_by`` confirms an ordinary fall,
        ``hysteresis.hard_rule_t1_closed_by`` closes a T1 a hard rule caused.
    context : ChildContext
        The child's latest scoring; it must be awaiting confirmation.
    actor : Actor
        Who confirms.
    notes : str
        Free text.
    now : datetime, optional
        When (UTC now by default).

    Returns
    -------
    Review

    Raises
    ------
    PermissionDeniedError
        If the actor's role may not confirm this fall (a caseworker closing a hard-rule T1).
    ReviewRefusedError
        If no fall awaits confirmation.
    """
    role = policy_role(actor)
    if not context.awaiting_confirmation:
        raise ReviewRefusedError(f"no fall of child {context.child_id} awaits confirmation")
    rules = policy.hysteresis
    required = rules.hard_rule_t1_closed_by if context.hard_rule_t1 else rules.fall_confirmed_by
    if not role.may_act_as(required):
        what = "a T1 caused by a hard rule is closed" if context.hard_rule_t1 else "this fall is"
        raise PermissionDeniedError(f"{what} confirmed only by a {required.value}")
    at = _now(now)
    review = _review(
        context, actor, ReviewKind.FALL_CONFIRMATION, at, tier_in_force(session, context)
    )
    review.notes = _text(notes, "the notes")
    session.add(review)
    session.flush()
    logger.info("fall confirmed", extra={"child_id": context.child_id, "review_id": review.id})
    return review


@dataclass(frozen=True)
class DecisionResult:
    """A supervisor's decision: the review, and the override when the tier differs."""

    review: Review
    override: Override | None


def _proposal(session: Session, context: ChildContext, proposal_id: int) -> Review:
    proposal = session.get(Review, proposal_id)
    if (
        proposal is None
        or proposal.child_id != context.child_id
        or proposal.kind != ReviewKind.VISIT.value
        or proposal.proposed_tier is None
    ):
        raise NotFoundError(f"child {context.child_id} has no proposal {proposal_id}")
    decided = session.scalars(
        select(Review.id).where(
            Review.child_id == context.child_id,
            Review.kind == ReviewKind.DECISION.value,
            Review.created_at >= proposal.created_at,
        )
    ).first()
    if decided is not None:
        raise ReviewRefusedError(f"proposal {proposal_id} was already decided (review {decided})")
    return proposal


def decide(
    session: Session,
    policy: TierPolicy,
    context: ChildContext,
    actor: Actor,
    *,
    tier: Tier | None = None,
    proposal_id: int | None = None,
    accept_proposal: bool = True,
    reason_code: ReasonCode | None = None,
    reason_text: str | None = None,
    notes: str = "",
    now: datetime | None = None,
) -> DecisionResult:
    """A supervisor confirms the engine's tier or overrides it, possibly answering a proposal.

    The tier set is ``tier`` when given; else the proposal's tier when ``proposal_id`` is given
    and ``accept_proposal``; else the engine's tier (confirming it, and ending any override in
    force). Setting a tier other than the engine's is an override: it needs a reason code and a
    written reason (accepting a proposal takes the caseworker's), and is refused below a floor
    or a hard rule. A change of the tier in force opens a new episode of tasks.

    Parameters
    ----------
    session : Session
        The operational database (flushed, not committed).
    policy : TierPolicy
        The tier policy.
    context : ChildContext
        The child's latest scoring.
    actor : Actor
        A supervisor.
    tier : Tier, optional
        The tier to set.
    proposal_id : int, optional
        The caseworker's proposal this answers.
    accept_proposal : bool, default=True
        With ``proposal_id`` and no ``tier``: set the proposed tier (``False``: decline it
        and keep the engine's).
    reason_code, reason_text : optional
        Why (required for an override unless accepting a proposal).
    notes : str
        Free text.
    now : datetime, optional
        When (UTC now by default).

    Returns
    -------
    DecisionResult

    Raises
    ------
    PermissionDeniedError
        If the actor is not a supervisor.
    NotFoundError
        If ``proposal_id`` is not a proposal about this child.
    ReviewRefusedError
        An override without a reason, below a floor or a hard rule, or a proposal already
        decided.
    """
    role = policy_role(actor)
    if not role.may_act_as(Role.SUPERVISOR):
        raise PermissionDeniedError("only a supervisor confirms or overrides a tier")
    at = _now(now)
    proposal = None if proposal_id is None else _proposal(session, context, proposal_id)
    if tier is not None:
        target = tier
    elif proposal is not None and accept_proposal:
        assert proposal.proposed_tier is not None  # checked by _proposal
        target = Tier(proposal.proposed_tier)
    else:
        target = context.tier
    in_force = tier_in_force(session, context)
    is_override = target is not context.tier

    code: str | None = None
    text = _text(reason_text, "the reason")
    if is_override:
        accepting = proposal is not None and tier is None and accept_proposal
        if accepting and proposal is not None:
            code = reason_code.value if reason_code is not None else proposal.reason_code
            text = text or (proposal.reason_text or "")
        elif reason_code is not None:
            code = reason_code.value
        if code is None:
            raise ReviewRefusedError("an override needs a reason code")
        if not text:
            raise ReviewRefusedError("an override needs a written reason")
        check = check_tier(policy, context, target, role)
        if not check.allowed:
            raise ReviewRefusedError(check.explain(policy))
    else:
        code = None if reason_code is None else reason_code.value

    review = _review(context, actor, ReviewKind.DECISION, at, in_force)
    review.decision = (Decision.OVERRIDE if is_override else Decision.CONFIRM).value
    review.decided_tier = target.value
    review.answers_review_id = None if proposal is None else proposal.id
    review.reason_code = code
    review.reason_text = text or None
    review.notes = _text(notes, "the notes")
    session.add(review)
    session.flush()

    override = None
    if is_override:
        assert code is not None
        override = Override(
            review_id=review.id,
            child_id=context.child_id,
            village_code=context.village_code,
            township_code=context.township_code,
            computed_tier=context.tier.value,
            tier_before=in_force.value,
            tier=target.value,
            rule_tier=None if context.rule_tier is None else context.rule_tier.value,
            reason_code=code,
            reason_text=text,
            reviewer_id=actor.user_id,
            reviewer_role=str(actor.role),
            created_at=at,
            girl=context.girl,
            disability=context.disability,
            policy_version=policy.version,
        )
        session.add(override)
        session.flush()

    episode = current_episode(session, context.child_id)
    if episode is None or episode[1] is not target:
        open_episode(
            session, policy, _area(context), target, start=at, opened_by=f"review:{review.id}"
        )
    logger.info(
        "tier decided",
        extra={"child_id": context.child_id, "review_id": review.id, "decision": review.decision},
    )
    return DecisionResult(review, override)


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class ReviewEntry:
    """One review in a child's history, with its override and the reviewer's user name."""

    review: Review
    reviewer: str
    override: Override | None


def child_reviews(session: Session, child_id: str) -> list[ReviewEntry]:
    """A child's whole review history, newest first (nothing is ever removed from it).

    Parameters
    ----------
    session : Session
        The operational database.
    child_id : str
        The child.

    Returns
    -------
    list of ReviewEntry
    """
    rows = session.execute(
        select(Review, User.username, Override)
        .join(User, User.id == Review.reviewer_id)
        .outerjoin(Override, Override.review_id == Review.id)
        .where(Review.child_id == child_id)
        .order_by(Review.created_at.desc(), Review.id.desc())
    ).all()
    return [ReviewEntry(review, username, override) for review, username, override in rows]


def pending_proposals(
    session: Session, *, area_code: str | None = None, limit: int = 200
) -> list[ReviewEntry]:
    """Caseworkers' proposed tiers that no decision has answered yet, oldest first.

    A proposal counts as answered once any supervisor decision about the child was made at
    or after it.

    Parameters
    ----------
    session : Session
        The operational database.
    area_code : str, optional
        Only children of this area (the supervisor's).
    limit : int, default=200
        At most this many.

    Returns
    -------
    list of ReviewEntry
    """
    later = aliased(Review)
    answered = (
        select(later.id)
        .where(
            later.child_id == Review.child_id,
            later.kind == ReviewKind.DECISION.value,
            later.created_at >= Review.created_at,
        )
        .exists()
    )
    query = (
        select(Review, User.username)
        .join(User, User.id == Review.reviewer_id)
        .where(Review.kind == ReviewKind.VISIT.value, Review.proposed_tier.is_not(None))
        .where(~answered)
    )
    if area_code is not None:
        query = query.where(in_area(Review.village_code, area_code))
    rows = session.execute(query.order_by(Review.created_at, Review.id).limit(limit)).all()
    return [ReviewEntry(review, username, None) for review, username in rows]


def awaiting_closure(session: Session, contexts: list[ChildContext]) -> list[ChildContext]:
    """Of ``contexts``, the hard-rule T1s whose fall awaits a closure not yet given.

    Parameters
    ----------
    session : Session
        The operational database.
    contexts : list of ChildContext
        Candidates (e.g. the area's T1 children from the latest run).

    Returns
    -------
    list of ChildContext
        Those with ``hard_rule_t1`` and ``awaiting_confirmation`` and no fall confirmation
        made after their scoring run.
    """
    waiting = [c for c in contexts if c.hard_rule_t1 and c.awaiting_confirmation]
    if not waiting:
        return []
    confirmed = {
        child: at
        for child, at in session.execute(
            select(Review.child_id, func.max(Review.created_at))
            .where(
                Review.kind == ReviewKind.FALL_CONFIRMATION.value,
                Review.child_id.in_([c.child_id for c in waiting]),
            )
            .group_by(Review.child_id)
        )
    }
    out = []
    for c in waiting:
        at = confirmed.get(c.child_id)
        if at is None or (c.scored_at is not None and at.replace(tzinfo=UTC) <= c.scored_at):
            out.append(c)
    return out


def overrides_for_scoring(session: Session) -> pd.DataFrame:
    """The overrides in force, in the form ``models.tiers.assign_tiers(overrides=...)`` takes.

    An override is in force while it is the child's newest decision (a later *confirm* ends
    it). The scoring run applies it last, never below a floor or a hard rule.

    Parameters
    ----------
    session : Session
        The operational database.

    Returns
    -------
    DataFrame
        ``child_id``, ``tier``, ``role`` (``caseworker``/``supervisor``), ``reviewer``
        (``user:<id>``, no name), ``reason`` (``<code>: <text>``) and ``override_id`` (the
        run records which override it applied).
    """
    ranked = (
        select(
            Review.id,
            Review.child_id,
            func.row_number()
            .over(
                partition_by=Review.child_id,
                order_by=(Review.created_at.desc(), Review.id.desc()),
            )
            .label("rank"),
        )
        .where(Review.kind == ReviewKind.DECISION.value)
        .subquery()
    )
    rows = session.execute(
        select(Override)
        .join(ranked, ranked.c.id == Override.review_id)
        .where(ranked.c.rank == 1)
        .order_by(Override.child_id)
    ).scalars()
    records = [
        {
            "child_id": o.child_id,
            "tier": o.tier,
            "role": o.reviewer_role,
            "reviewer": f"user:{o.reviewer_id}",
            "reason": f"{o.reason_code}: {o.reason_text}",
            "override_id": o.id,
        }
        for o in rows
    ]
    return pd.DataFrame(
        records, columns=["child_id", "tier", "role", "reviewer", "reason", "override_id"]
    )


def confirmations_for_scoring(session: Session, since: datetime | None) -> pd.DataFrame:
    """Fall confirmations made since the previous run, as ``previous.confirmed_by``.

    Parameters
    ----------
    session : Session
        The operational database.
    since : datetime or None
        The previous run's ``scored_at`` (``None``: every confirmation).

    Returns
    -------
    DataFrame
        ``child_id``, ``confirmed_by`` (the most senior role that confirmed) and
        ``confirmation_id`` (that confirmation's review; the newest of that role), so the run
        records which confirmation it took.
    """
    query = select(Review.id, Review.child_id, Review.reviewer_role).where(
        Review.kind == ReviewKind.FALL_CONFIRMATION.value
    )
    if since is not None:
        query = query.where(Review.created_at > since.astimezone(UTC))
    best: dict[str, tuple[Role, int]] = {}
    for review_id, child, role_name in session.execute(query.order_by(Review.id)):
        role = Role(role_name)
        if child not in best or role.rank >= best[child][0].rank:
            best[child] = (role, review_id)
    return pd.DataFrame(
        {
            "child_id": list(best),
            "confirmed_by": [role.value for role, _ in best.values()],
            "confirmation_id": [review_id for _, review_id in best.values()],
        },
        columns=["child_id", "confirmed_by", "confirmation_id"],
    )


__all__ = [
    "MAX_TEXT",
    "DecisionResult",
    "ReviewEntry",
    "awaiting_closure",
    "child_reviews",
    "confirm_fall",
    "confirmations_for_scoring",
    "decide",
    "latest_decision",
    "log_mandatory_report",
    "overrides_for_scoring",
    "pending_proposals",
    "record_visit",
    "tier_in_force",
]
