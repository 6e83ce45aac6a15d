"""Reviews and overrides: floors are never undercut, hard-rule T1s close only by a supervisor,
and the whole history is kept (nothing is edited in place)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from models.policy import Role, Tier, TierPolicy, load_policy, most_severe
from service.db.workflow import Override, Review
from service.workflow.codes import Activity, ReasonCode, VisitOutcome
from service.workflow.context import check_tier, context_from_score_row, parse_rule_labels
from service.workflow.reviews import (
    child_reviews,
    confirm_fall,
    confirmations_for_scoring,
    decide,
    overrides_for_scoring,
    pending_proposals,
    record_visit,
    tier_in_force,
)
from shouhu.errors import NotFoundError, PermissionDeniedError, ReviewRefusedError

from ._workflow_helpers import (
    NOW,
    TOWNSHIP,
    add_user,
    child,
    migrated_template,
    policy,
    session,
    sessions,
)

__all__ = ["migrated_template", "policy", "session", "sessions"]

_POLICY = load_policy()
_LABELS = list(_POLICY.rule_labels())
_REASON = "走访核实:祖父母身体好转,已签订委托监护协议"


@st.composite
def _situations(draw: st.DrawFn) -> tuple[tuple[str, ...], Tier, bool, Tier, Role]:
    """Rules that fired, a tier consistent with them, a requested tier and a role."""
    rules = tuple(draw(st.lists(st.sampled_from(_LABELS), unique=True, max_size=4)))
    floor = most_severe(*(r.tier for r in parse_rule_labels(rules))) or Tier.T4
    # The engine never puts a child below its rules; hysteresis may hold it higher.
    tier = Tier.from_level(draw(st.integers(1, floor.level)))
    hard = any(r.startswith("hard:") for r in rules)
    # A hard-rule T1 can be held after its rule stopped firing.
    held_hard = tier is Tier.T1 and (hard or draw(st.booleans()))
    requested = draw(st.sampled_from(list(Tier)))
    role = draw(st.sampled_from(list(Role)))
    return rules, tier, held_hard, requested, role


@settings(max_examples=300, deadline=None)
@given(_situations())
def test_check_tier_never_allows_a_tier_below_a_floor_or_a_hard_rule(
    situation: tuple[tuple[str, ...], Tier, bool, Tier, Role],
) -> None:
    rules, tier, held_hard, requested, role = situation
    context = child(tier=tier, rules=rules, hard_rule_t1=held_hard)
    check = check_tier(_POLICY, context, requested, role)
    floor = most_severe(*(r.tier for r in parse_rule_labels(rules)))
    assert check.final.level <= requested.level  # the engine only ever raises a request
    if floor is not None:
        assert check.final.level <= floor.level
        if requested.level > floor.level:
            assert not check.allowed
            assert check.blocking_rules
    if held_hard and requested is not Tier.T1 and role is Role.CASEWORKER:
        assert not check.allowed
        assert check.final is Tier.T1
    if check.allowed:
        assert check.final is requested
        assert floor is None or requested.level <= floor.level


_ids = count()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(_situations())
def test_overrides_stored_never_undercut_a_floor_or_a_hard_rule(
    sessions: sessionmaker[Session],
    situation: tuple[tuple[str, ...], Tier, bool, Tier, Role],
) -> None:
    rules, tier, held_hard, requested, _ = situation
    with sessions() as session:
        boss = add_user(session, f"sup{next(_ids)}", "supervisor")
        context = child(f"c-{next(_ids)}", tier, rules, hard_rule_t1=held_hard)
        floor = most_severe(*(r.tier for r in parse_rule_labels(rules)))
        try:
            result = decide(
                session,
                _POLICY,
                context,
                boss,
                tier=requested,
                reason_code=ReasonCode.PROFESSIONAL_JUDGEMENT,
                reason_text=_REASON,
                now=NOW,
            )
        except ReviewRefusedError:
            assert floor is not None and requested.level > floor.level
            stored = select(func.count()).where(Override.child_id == context.child_id)
            assert session.scalar(stored) == 0
            session.rollback()
            return
        assert floor is None or requested.level <= floor.level
        assert (result.override is None) == (requested is tier)
        assert tier_in_force(session, context) is requested
        session.commit()


def test_override_below_a_floor_is_refused_naming_the_rule(
    session: Session, policy: TierPolicy
) -> None:
    boss = add_user(session, "sup", "supervisor")
    context = child(tier=Tier.T2, rules=("floor:T2:suspected_dropout",))
    with pytest.raises(ReviewRefusedError, match="suspected_dropout"):
        decide(
            session,
            policy,
            context,
            boss,
            tier=Tier.T3,
            reason_code=ReasonCode.RECORDS_OUTDATED,
            reason_text=_REASON,
            now=NOW,
        )
    assert session.scalar(select(func.count()).select_from(Review)) == 0


def test_an_override_needs_a_reason_code_and_a_written_reason(
    session: Session, policy: TierPolicy
) -> None:
    boss = add_user(session, "sup", "supervisor")
    context = child(tier=Tier.T3)
    with pytest.raises(ReviewRefusedError, match="written reason"):
        decide(session, policy, context, boss, tier=Tier.T4, reason_code=ReasonCode.OTHER)
    with pytest.raises(ReviewRefusedError, match="reason code"):
        decide(session, policy, context, boss, tier=Tier.T4, reason_text=_REASON)
    result = decide(
        session,
        policy,
        context,
        boss,
        tier=Tier.T4,
        reason_code=ReasonCode.OTHER,
        reason_text=_REASON,
        now=NOW,
    )
    assert result.override is not None
    assert (result.override.computed_tier, result.override.tier) == ("T3", "T4")
    assert result.override.reason_text == _REASON
    assert result.review.decision == "override"


def test_only_a_supervisor_decides(session: Session, policy: TierPolicy) -> None:
    worker = add_user(session, "cw", "caseworker")
    analyst = add_user(session, "an", "analyst")
    for actor in (worker, analyst):
        with pytest.raises(PermissionDeniedError):
            decide(
                session,
                policy,
                child(),
                actor,
                tier=Tier.T2,
                reason_code=ReasonCode.OTHER,
                reason_text=_REASON,
            )


def test_a_hard_rule_t1_closes_only_by_a_supervisor(session: Session, policy: TierPolicy) -> None:
    worker = add_user(session, "cw", "caseworker")
    boss = add_user(session, "sup", "supervisor")
    # The hard rule stopped firing two scorings ago; the engine holds T1 for a supervisor.
    held = child(tier=Tier.T1, rules=(), hard_rule_t1=True, awaiting=True, scored_at=NOW)
    with pytest.raises(PermissionDeniedError, match="supervisor"):
        confirm_fall(session, policy, held, worker, now=NOW + timedelta(hours=1))
    # A caseworker's proposal to close it goes to the supervisor, who may accept it.
    proposal = record_visit(
        session,
        policy,
        held,
        worker,
        activity=Activity.HOME_VISIT,
        outcome=VisitOutcome.SAFE,
        proposed_tier=Tier.T3,
        reason_code=ReasonCode.GUARDIANSHIP_ARRANGED,
        reason_text=_REASON,
        now=NOW + timedelta(hours=1),
    )
    assert check_tier(policy, held, Tier.T3, Role.CASEWORKER).needs_closing_role
    closure = confirm_fall(session, policy, held, boss, now=NOW + timedelta(hours=2))
    assert closure.kind == "fall_confirmation"
    confirmations = confirmations_for_scoring(session, since=NOW)
    assert confirmations.to_dict("records") == [
        {"child_id": "c-0001", "confirmed_by": "supervisor", "confirmation_id": closure.id}
    ]
    result = decide(
        session, policy, held, boss, proposal_id=proposal.id, now=NOW + timedelta(hours=3)
    )
    assert result.override is not None and result.override.tier == "T3"
    assert result.override.reason_code == "guardianship_arranged"
    assert pending_proposals(session, area_code=TOWNSHIP) == []


def test_while_the_hard_rule_fires_nobody_lowers_the_t1(
    session: Session, policy: TierPolicy
) -> None:
    worker = add_user(session, "cw", "caseworker")
    boss = add_user(session, "sup", "supervisor")
    firing = child(tier=Tier.T1, rules=("hard:suspected_abuse_or_unlawful_harm",))
    with pytest.raises(ReviewRefusedError, match="suspected_abuse"):
        record_visit(
            session,
            policy,
            firing,
            worker,
            activity=Activity.HOME_VISIT,
            outcome=VisitOutcome.SAFE,
            proposed_tier=Tier.T2,
            reason_code=ReasonCode.OTHER,
            reason_text=_REASON,
        )
    with pytest.raises(ReviewRefusedError):
        decide(
            session,
            policy,
            firing,
            boss,
            tier=Tier.T2,
            reason_code=ReasonCode.OTHER,
            reason_text=_REASON,
        )
    with pytest.raises(ReviewRefusedError, match="no fall"):
        confirm_fall(session, policy, firing, boss)


def test_an_ordinary_fall_is_confirmed_by_a_caseworker(
    session: Session, policy: TierPolicy
) -> None:
    worker = add_user(session, "cw", "caseworker")
    pending = child(tier=Tier.T2, awaiting=True, scored_at=NOW)
    review = confirm_fall(session, policy, pending, worker, now=NOW + timedelta(hours=1))
    assert review.reviewer_role == "caseworker"
    assert confirmations_for_scoring(session, since=NOW + timedelta(hours=2)).empty


def test_history_is_kept_and_never_edited_in_place(
    sessions: sessionmaker[Session], policy: TierPolicy
) -> None:
    with sessions() as session:
        worker = add_user(session, "cw", "caseworker")
        boss = add_user(session, "sup", "supervisor")
        context = child(tier=Tier.T3, scored_at=NOW - timedelta(days=1))
        first = record_visit(
            session,
            policy,
            context,
            worker,
            activity=Activity.HOME_VISIT,
            outcome=VisitOutcome.CONCERNS,
            notes="祖母生病",
            now=NOW,
        )
        decide(
            session,
            policy,
            context,
            boss,
            tier=Tier.T2,
            reason_code=ReasonCode.OTHER,
            reason_text=_REASON,
            now=NOW + timedelta(hours=1),
        )
        # Back to the engine's tier: a new decision, the override stays in the history.
        decide(session, policy, context, boss, now=NOW + timedelta(hours=2))
        session.commit()
        first_id = first.id

        # The ORM refuses to change a stored review or override.
        first.notes = "改写"
        with pytest.raises(PermissionError, match="append-only"):
            session.flush()
        session.rollback()
        stored = session.scalars(select(Override)).one()
        session.delete(stored)
        with pytest.raises(PermissionError, match="append-only"):
            session.flush()
        session.rollback()

    # So does the database, for a hand-typed statement.
    with sessions() as session:
        for statement in (
            "UPDATE reviews SET notes = 'x' WHERE id = :id",
            "DELETE FROM reviews WHERE id = :id",
            "UPDATE overrides SET tier = 'T4'",
            "DELETE FROM tasks",
        ):
            with pytest.raises(DatabaseError, match="append-only"):
                session.execute(text(statement), {"id": first_id})
            session.rollback()

    with sessions() as session:
        history = child_reviews(session, "c-0001")
        assert [(e.review.kind, e.review.decision) for e in history] == [
            ("decision", "confirm"),
            ("decision", "override"),
            ("visit", None),
        ]
        assert history[2].review.notes == "祖母生病"
        assert history[1].override is not None and history[1].override.tier == "T2"
        assert history[1].reviewer == "sup"
        # The confirm ended the override: nothing is in force for the next scoring.
        assert overrides_for_scoring(session).empty
        assert tier_in_force(session, context) is Tier.T3


def test_overrides_for_scoring_hold_the_newest_override_per_child(
    session: Session, policy: TierPolicy
) -> None:
    boss = add_user(session, "sup", "supervisor")
    a = child("c-a", Tier.T3)
    b = child("c-b", Tier.T4)
    decide(
        session,
        policy,
        a,
        boss,
        tier=Tier.T4,
        reason_code=ReasonCode.OTHER,
        reason_text=_REASON,
        now=NOW,
    )
    decide(
        session,
        policy,
        a,
        boss,
        tier=Tier.T2,
        reason_code=ReasonCode.NEW_INFORMATION,
        reason_text=_REASON,
        now=NOW + timedelta(hours=1),
    )
    decide(session, policy, b, boss, now=NOW)
    frame = overrides_for_scoring(session)
    newest = session.scalars(select(Override).where(Override.tier == "T2")).one()
    assert frame.to_dict("records") == [
        {
            "child_id": "c-a",
            "tier": "T2",
            "role": "supervisor",
            "reviewer": f"user:{boss.user_id}",
            "reason": f"new_information: {_REASON}",
            "override_id": newest.id,
        }
    ]


def test_after_a_run_applied_an_override_the_engines_tier_is_what_a_supervisor_confirms(
    session: Session, policy: TierPolicy
) -> None:
    boss = add_user(session, "sup", "supervisor")
    # The run put the override's T2 in force; the engine alone said T4.
    row = {
        "child_id": "c-up",
        "village_code": "990101001001",
        "township_code": "990101001",
        "tier": "T2",
        "computed_tier": "T4",
        "rules_fired": [],
        "hard_rule_t1": False,
        "awaiting_confirmation": False,
        "scored_at": NOW,
    }
    context = context_from_score_row(row)
    assert (context.tier, context.run_tier, context.tier_of_run) == (Tier.T4, Tier.T2, Tier.T2)
    assert tier_in_force(session, context) is Tier.T2
    # Confirming the engine's tier ends the override: the next run no longer applies it.
    ended = decide(session, policy, context, boss, now=NOW + timedelta(hours=1))
    assert (ended.review.decision, ended.review.decided_tier, ended.override) == (
        "confirm",
        "T4",
        None,
    )
    assert ended.review.computed_tier == "T4" and ended.review.tier_in_force == "T2"
    assert overrides_for_scoring(session).empty
    # A run from before the engine's tier was stored reads as a run without an override.
    old = context_from_score_row({k: v for k, v in row.items() if k != "computed_tier"})
    assert (old.tier, old.run_tier, old.tier_of_run) == (Tier.T2, None, Tier.T2)


def test_a_proposal_is_checked_then_decided_once(session: Session, policy: TierPolicy) -> None:
    worker = add_user(session, "cw", "caseworker")
    boss = add_user(session, "sup", "supervisor")
    context = child(tier=Tier.T3, rules=("floor:T3:rare_parent_contact",))
    with pytest.raises(ReviewRefusedError, match="reason"):
        record_visit(
            session,
            policy,
            context,
            worker,
            activity=Activity.HOME_VISIT,
            outcome=VisitOutcome.SAFE,
            proposed_tier=Tier.T2,
        )
    with pytest.raises(ReviewRefusedError, match="already the tier"):
        record_visit(
            session,
            policy,
            context,
            worker,
            activity=Activity.HOME_VISIT,
            outcome=VisitOutcome.SAFE,
            proposed_tier=Tier.T3,
            reason_code=ReasonCode.OTHER,
            reason_text=_REASON,
        )
    with pytest.raises(ReviewRefusedError, match="rare_parent_contact"):
        record_visit(
            session,
            policy,
            context,
            worker,
            activity=Activity.HOME_VISIT,
            outcome=VisitOutcome.SAFE,
            proposed_tier=Tier.T4,
            reason_code=ReasonCode.OTHER,
            reason_text=_REASON,
        )
    proposal = record_visit(
        session,
        policy,
        context,
        worker,
        activity=Activity.HOME_VISIT,
        outcome=VisitOutcome.CONCERNS,
        proposed_tier=Tier.T2,
        reason_code=ReasonCode.VISIT_FOUND_HIGHER_RISK,
        reason_text=_REASON,
        now=NOW,
    )
    pending = pending_proposals(session, area_code=TOWNSHIP)
    assert [(p.review.id, p.reviewer) for p in pending] == [(proposal.id, "cw")]
    assert pending_proposals(session, area_code="990102") == []
    # Declined: the engine's tier is confirmed and the proposal answered.
    result = decide(
        session,
        policy,
        context,
        boss,
        proposal_id=proposal.id,
        accept_proposal=False,
        now=NOW + timedelta(hours=1),
    )
    assert result.review.decision == "confirm" and result.override is None
    assert result.review.answers_review_id == proposal.id
    with pytest.raises(ReviewRefusedError, match="already decided"):
        decide(session, policy, context, boss, proposal_id=proposal.id)
    with pytest.raises(NotFoundError):
        decide(session, policy, child("c-other"), boss, proposal_id=proposal.id)


def test_reviewer_roles_outside_casework_are_refused(session: Session, policy: TierPolicy) -> None:
    admin = add_user(session, "adm", "admin")
    with pytest.raises(PermissionDeniedError):
        record_visit(
            session, policy, child(), admin, activity=Activity.HOME_VISIT, outcome=VisitOutcome.SAFE
        )


def test_a_decision_after_the_run_is_in_force_until_the_next_run(
    session: Session, policy: TierPolicy
) -> None:
    boss = add_user(session, "sup", "supervisor")
    scored = datetime(2026, 3, 1, tzinfo=UTC)
    context = child(tier=Tier.T3, scored_at=scored)
    decide(
        session,
        policy,
        context,
        boss,
        tier=Tier.T2,
        reason_code=ReasonCode.OTHER,
        reason_text=_REASON,
        now=scored + timedelta(hours=5),
    )
    assert tier_in_force(session, context) is Tier.T2
    next_run = child(tier=Tier.T2, scored_at=scored + timedelta(days=7))
    assert tier_in_force(session, next_run) is Tier.T2
    reviews = child_reviews(session, "c-0001")
    assert reviews[0].review.tier_in_force == "T3"
    assert reviews[0].review.computed_tier == "T3"
