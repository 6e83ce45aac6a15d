"""What the workflow needs to know about a child and a reviewer, and the floor check.

A :class:`ChildContext` is the child's latest scoring (the engine's tier and the tier the run
put in force with any override, the rules that fired, whether a hard rule holds it in T1,
whether a fall awaits confirmation) plus its groups; the service's repository builds it from
the score store (:func:`context_from_score_row`). The floor check
(:func:`check_tier`) does not re-implement the tier policy: it asks
``models.tiers.decide_tier`` what an override to the requested tier would give, so an
override can never go below a floor or a hard rule, nor lower a hard-rule T1 without the
policy's closing role, whatever the workflow code around it does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

import pandas as pd

from models.policy import FiredRule, Role, Tier, TierPolicy, most_severe
from models.tiers import Override, TierState, decide_tier
from shouhu.errors import NotFoundError, PermissionDeniedError, PolicyError

#: Service roles that review casework, and the tier-policy authority each carries. Analysts
#: and administrators do not review children (they build models and manage accounts).
POLICY_ROLES: dict[str, Role] = {"caseworker": Role.CASEWORKER, "supervisor": Role.SUPERVISOR}


class Actor(Protocol):
    """Who acts: ``service.deps.Principal`` satisfies this."""

    @property
    def user_id(self) -> int: ...

    @property
    def role(self) -> str: ...


@dataclass(frozen=True)
class Reviewer:
    """A plain :class:`Actor` (for the CLI and tests)."""

    user_id: int
    role: str


def policy_role(actor: Actor) -> Role:
    """The tier-policy authority of ``actor``.

    Raises
    ------
    PermissionDeniedError
        If the actor's role does not review casework (analyst, admin).
    """
    role = POLICY_ROLES.get(str(actor.role))
    if role is None:
        raise PermissionDeniedError(f"the role {actor.role!r} does not review children")
    return role


@dataclass(frozen=True)
class ChildContext:
    """A child's latest scoring and groups: what a review is checked against.

    Attributes
    ----------
    child_id : str
        Pseudonymous id.
    village_code, township_code : str
        Area codes (12 and 9 digits).
    tier : Tier
        The engine's tier in the latest scoring run: rules, model and hysteresis, before any
        override. It is what a supervisor confirms, and what an override differs from.
    rules_fired : tuple of str
        That run's rule labels (``hard:<rule>``, ``floor:<tier>:<rule>``).
    hard_rule_t1 : bool
        The T1 came from a hard rule (now, or held since); it closes only by the policy's role.
    awaiting_confirmation : bool
        The engine would lower the tier but waits for a person's confirmation.
    run_id : str or None
        The run.
    as_of : date or None
        Its scoring date.
    scored_at : datetime or None
        When it ran (UTC); a decision made after this is in force until the next run.
    girl, disability : bool or None
        Group membership for the override statistics (``None``: unknown).
    run_tier : Tier or None
        The tier the run put in force, with the override in force it applied; ``None`` when
        it is ``tier`` (no override, or a run from before runs recorded the engine's tier).
    """

    child_id: str
    village_code: str
    township_code: str
    tier: Tier
    rules_fired: tuple[str, ...] = ()
    hard_rule_t1: bool = False
    awaiting_confirmation: bool = False
    run_id: str | None = None
    as_of: date | None = None
    scored_at: datetime | None = None
    girl: bool | None = None
    disability: bool | None = None
    run_tier: Tier | None = None

    def __post_init__(self) -> None:
        if self.hard_rule_t1 and self.tier is not Tier.T1:
            raise ValueError(f"hard_rule_t1 is set but the tier is {self.tier}")
        parse_rule_labels(self.rules_fired)  # fail early on a malformed label

    @property
    def tier_of_run(self) -> Tier:
        """The tier the latest run put in force (the engine's, or the override it applied)."""
        return self.tier if self.run_tier is None else self.run_tier

    @property
    def hard_rules(self) -> tuple[str, ...]:
        """Names of the hard rules that fired."""
        return tuple(r.name for r in parse_rule_labels(self.rules_fired) if r.kind == "hard")

    @property
    def rule_tier(self) -> Tier | None:
        """The most severe tier the rules require (``None`` when none fired)."""
        return most_severe(*(r.tier for r in parse_rule_labels(self.rules_fired)))


def parse_rule_labels(labels: Iterable[str]) -> tuple[FiredRule, ...]:
    """The fired rules behind ``rules_fired`` labels, as stored by a scoring run.

    Parameters
    ----------
    labels : iterable of str
        ``hard:<rule>`` or ``floor:<tier>:<rule>``.

    Returns
    -------
    tuple of FiredRule

    Raises
    ------
    PolicyError
        If a label has neither form.

    Examples
    --------
    >>> parse_rule_labels(["hard:guardianship_absent", "floor:T2:suspected_dropout"])[1].tier
    <Tier.T2: 'T2'>
    """
    fired: list[FiredRule] = []
    for label in labels:
        parts = str(label).split(":")
        if len(parts) == 2 and parts[0] == "hard" and parts[1]:
            fired.append(FiredRule("hard", parts[1], Tier.T1))
        elif len(parts) == 3 and parts[0] == "floor" and parts[2] and parts[1] in set(Tier):
            fired.append(FiredRule("floor", parts[2], Tier(parts[1])))
        else:
            raise PolicyError(f"{label!r} is not a rule label (hard:<rule> or floor:<tier>:<rule>)")
    return tuple(fired)


def _flag(value: Any) -> bool | None:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    return bool(value)


def context_from_score_row(
    row: Mapping[Any, Any], *, girl: bool | None = None, disability: bool | None = None
) -> ChildContext:
    """A :class:`ChildContext` from one row of the score store (``models.scoring`` columns).

    Parameters
    ----------
    row : mapping
        ``child_id``, ``village_code``, ``township_code``, ``tier``, ``rules_fired``,
        ``hard_rule_t1``, ``awaiting_confirmation`` and optionally ``computed_tier`` (the
        engine's tier before an override; ``tier`` is then the run's), ``run_id``, ``as_of``,
        ``scored_at``.
    girl, disability : bool, optional
        The child's groups, from the child's profile.

    Returns
    -------
    ChildContext
    """
    scored_at = row.get("scored_at")
    if scored_at is not None and not isinstance(scored_at, datetime):
        scored_at = pd.Timestamp(scored_at).to_pydatetime()
    if isinstance(scored_at, datetime) and scored_at.tzinfo is None:
        scored_at = scored_at.replace(tzinfo=UTC)
    as_of = row.get("as_of")
    if as_of is not None and not isinstance(as_of, date):
        as_of = pd.Timestamp(as_of).date()
    elif isinstance(as_of, datetime):
        as_of = as_of.date()
    rules = row.get("rules_fired")
    in_run = Tier(str(row["tier"]))
    computed = row.get("computed_tier")
    # Runs from before the engine's tier was stored hold it as ``tier`` (no override applied).
    engine = in_run if computed is None or _flag(computed) is None else Tier(str(computed))
    return ChildContext(
        child_id=str(row["child_id"]),
        village_code=str(row["village_code"]),
        township_code=str(row["township_code"]),
        tier=engine,
        run_tier=None if engine is in_run else in_run,
        rules_fired=tuple(str(r) for r in (rules if rules is not None else ())),
        hard_rule_t1=bool(_flag(row.get("hard_rule_t1"))),
        awaiting_confirmation=bool(_flag(row.get("awaiting_confirmation"))),
        run_id=None if row.get("run_id") is None else str(row["run_id"]),
        as_of=as_of,
        scored_at=scored_at,
        girl=girl,
        disability=disability,
    )


class _Board(Protocol):
    @property
    def rows(self) -> pd.DataFrame: ...

    @property
    def row_of(self) -> dict[str, int]: ...


class SnapshotLike(Protocol):
    """What :func:`context_for` reads of ``service.snapshot.Snapshot``."""

    @property
    def board(self) -> _Board: ...

    @property
    def frame(self) -> pd.DataFrame: ...

    @property
    def row_of(self) -> dict[str, int]: ...


def context_for(snapshot: SnapshotLike, child_id: str) -> ChildContext:
    """The child's context from the service's snapshot: the run in force and its features.

    Parameters
    ----------
    snapshot : Snapshot
        ``ServiceState.snapshot``.
    child_id : str
        A child the caller may see (checked by ``VisibleChild`` before).

    Returns
    -------
    ChildContext
        With ``girl`` (``sex == "female"``) and ``disability`` from the features.

    Raises
    ------
    NotFoundError
        If the run in force did not score the child (registered since): there is no tier to
        review yet.
    """
    position = snapshot.board.row_of.get(child_id)
    if position is None:
        raise NotFoundError(f"child {child_id} has no tier in the run in force yet")
    row = snapshot.board.rows.iloc[position]
    girl = disability = None
    feature_row = snapshot.row_of.get(child_id)
    if feature_row is not None:
        features = snapshot.frame.iloc[feature_row]
        if "sex" in features.index:
            sex = features["sex"]
            girl = None if _flag(sex) is None else str(sex) == "female"
        if "disability" in features.index:
            disability = _flag(features["disability"])
    return context_from_score_row(row.to_dict(), girl=girl, disability=disability)


@dataclass(frozen=True)
class TierCheck:
    """What the tier policy says about setting a child's tier to ``requested``.

    Attributes
    ----------
    requested : Tier
        The tier asked for.
    final : Tier
        The tier the policy engine gives for that override.
    allowed : bool
        ``final == requested``: nothing raised it.
    floor : Tier or None
        The most severe tier the rules require.
    blocking_rules : tuple of str
        Labels of the rules that require a tier more severe than ``requested``.
    needs_closing_role : bool
        The request lowers a hard-rule T1 and the role may not close one.
    """

    requested: Tier
    final: Tier
    allowed: bool
    floor: Tier | None
    blocking_rules: tuple[str, ...]
    needs_closing_role: bool

    def explain(self, policy: TierPolicy, lang: str = "en") -> str:
        """Why the request was refused, naming each rule in ``lang`` (empty when allowed)."""
        if self.allowed:
            return ""
        names = {r.name: (r.zh if lang == "zh" else r.en) for r in policy.rules}
        parts: list[str] = []
        if self.needs_closing_role:
            role = policy.hysteresis.hard_rule_t1_closed_by.value
            parts.append(f"a T1 caused by a hard rule is closed only by a {role}")
        if self.blocking_rules:
            rules = "; ".join(
                f"{label} ({names.get(label.rsplit(':', 1)[-1], '')})".replace(" ()", "")
                for label in self.blocking_rules
            )
            parts.append(
                f"{self.requested} is below the floor {self.floor} that these rules set: {rules}"
            )
        return f"the tier cannot be set to {self.requested}: " + "; ".join(parts)


def check_tier(policy: TierPolicy, context: ChildContext, requested: Tier, role: Role) -> TierCheck:
    """Ask the tier engine what setting ``context``'s tier to ``requested`` by ``role`` gives.

    Parameters
    ----------
    policy : TierPolicy
        The tier policy in force.
    context : ChildContext
        The child's latest scoring.
    requested : Tier
        The tier a reviewer wants.
    role : Role
        The reviewer's authority.

    Returns
    -------
    TierCheck
        ``allowed`` is false when the engine raised the tier: a floor rule or a hard rule
        fires at a more severe tier, or a hard-rule T1 would be lowered without the policy's
        closing role.
    """
    fired: Sequence[FiredRule] = parse_rule_labels(context.rules_fired)
    previous = TierState(
        tier=context.tier, hard_rule_t1=context.hard_rule_t1 and context.tier is Tier.T1
    )
    decision = decide_tier(
        policy,
        p_any=None,
        fired=fired,
        previous=previous,
        # The engine requires a reviewer and a reason; the check only needs the tier it gives.
        override=Override(tier=requested, role=role, reviewer="check", reason="check"),
    )
    blocking = tuple(r.label for r in fired if r.tier.level < requested.level)
    closer = policy.hysteresis.hard_rule_t1_closed_by
    needs_closer = (
        previous.hard_rule_t1 and requested is not Tier.T1 and not role.may_act_as(closer)
    )
    return TierCheck(
        requested=requested,
        final=decision.tier,
        allowed=not decision.override_limited,
        floor=most_severe(*(r.tier for r in fired)),
        blocking_rules=blocking,
        needs_closing_role=needs_closer,
    )


__all__ = [
    "POLICY_ROLES",
    "Actor",
    "ChildContext",
    "Reviewer",
    "SnapshotLike",
    "TierCheck",
    "check_tier",
    "context_for",
    "context_from_score_row",
    "parse_rule_labels",
    "policy_role",
]
