"""Tier decisions: hard rules → floors → capacity thresholds → hysteresis → human override.

:func:`decide_tier` decides one child's tier and is pure (style rule 11): everything it needs
comes in as arguments, every reason goes out in the frozen :class:`TierDecision`, and the
policy (``models.policy``) supplies every number. :func:`assign_tiers` does the same for a
whole scoring run at once, and first sizes each township's T2 and T3 bands from its visit
capacity (top-k by the calibrated score among the children no rule already puts in T1). The
unit tests check that both give the same answer for every child.

The order, from ``tier-policy.md``:

1. a hard rule forces T1, whatever any model says;
2. floor rules set a minimum tier;
3. the model's score places the child by the area's capacity thresholds;
4. hysteresis: a rise takes effect at once; a fall needs ``fall_after_consecutive_below``
   consecutive scorings below the current tier and a person's confirmation (a supervisor's for
   a T1 that a hard rule caused);
5. a reviewer's override comes last, and is never allowed below a floor or a hard rule.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api.extensions import ExtensionArray

from models.policy import (
    FiredRule,
    Hysteresis,
    Role,
    Tier,
    TierPolicy,
    fired_rules,
    most_severe,
    rule_hits,
)
from shouhu.errors import PolicyError

logger = logging.getLogger(__name__)

#: Level used in the vectorised code for "no tier" (no rule fired, no model score).
_NONE = 5


class TierSource(StrEnum):
    """What set the final tier."""

    HARD_RULE = "hard_rule"
    FLOOR_RULE = "floor_rule"
    MODEL = "model"
    HYSTERESIS = "hysteresis"
    OVERRIDE = "override"
    NO_MODEL = "no_model"  # no rule fired and no model score: routine care by default


@dataclass(frozen=True)
class AreaThresholds:
    """The score cut-offs of one area's bands, derived from its capacity.

    Attributes
    ----------
    t2, t3 : float or None
        The lowest score admitted to the T2 (T3) band; ``None`` when the band is empty.
    """

    t2: float | None
    t3: float | None

    def tier_of(self, score: float) -> Tier:
        """The band ``score`` falls in (T2, T3 or T4)."""
        if self.t2 is not None and score >= self.t2:
            return Tier.T2
        if self.t3 is not None and score >= self.t3:
            return Tier.T3
        return Tier.T4

    def straddled(self, low: float | None, high: float | None) -> bool:
        """Whether the interval ``(low, high]`` contains a threshold (a borderline score)."""
        if low is None or high is None:
            return False
        return any(t is not None and low < t <= high for t in (self.t2, self.t3))


@dataclass(frozen=True)
class TierState:
    """A child's tier state after the previous scoring, plus any confirmation since.

    Attributes
    ----------
    tier : Tier
        The tier in force.
    consecutive_below : int
        Scorings in a row whose candidate tier was below ``tier``.
    hard_rule_t1 : bool
        ``tier`` is T1 because a hard rule fired (it closes only by the policy's role).
    confirmed_by : Role or None
        A person who confirmed the pending fall since the previous scoring.
    """

    tier: Tier
    consecutive_below: int = 0
    hard_rule_t1: bool = False
    confirmed_by: Role | None = None

    def __post_init__(self) -> None:
        if self.consecutive_below < 0:
            raise ValueError("consecutive_below cannot be negative")
        if self.hard_rule_t1 and self.tier is not Tier.T1:
            raise ValueError(f"hard_rule_t1 is set but the tier is {self.tier}")


@dataclass(frozen=True)
class Override:
    """A reviewer's decision to set a tier, with the written reason kept for good."""

    tier: Tier
    role: Role
    reviewer: str
    reason: str

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError("an override needs a written reason")
        if not self.reviewer.strip():
            raise ValueError("an override needs the reviewer's name")


@dataclass(frozen=True)
class TierDecision:
    """One child's tier with all of its reasons.

    Attributes
    ----------
    tier : Tier
        The final tier.
    source : TierSource
        What set it.
    rules_fired : tuple of str
        Every rule that fired (``hard:<rule>`` / ``floor:<tier>:<rule>``), whatever the tier.
    rule_tier : Tier or None
        The most severe tier the rules require (T1 for a hard rule).
    model_tier : Tier or None
        The model's band; ``None`` when no model score is available.
    model_available : bool
        Whether a model score placed the child.
    candidate_tier : Tier
        Rules and model combined, before hysteresis and override.
    computed_tier : Tier
        The engine's tier: the candidate after hysteresis, before any override (what a
        reviewer confirms or overrides).
    held_by_hysteresis : bool
        The candidate was lower, and the previous tier was kept.
    awaiting_confirmation : bool
        Enough scorings were below; the fall now waits for ``confirmation_role``.
    fall_confirmed : bool
        A fall took effect because ``previous.confirmed_by`` carried the authority it needed.
    confirmation_role : Role or None
        Who must confirm the pending fall.
    consecutive_below : int
        The count to pass to the next scoring.
    hard_rule_t1 : bool
        The tier is T1 because of a hard rule (now or held).
    borderline : bool
        The score's interval straddles a threshold.
    override_applied, override_limited : bool
        An override was given; it was raised to a floor, a hard rule, or the authority
        closing a hard-rule T1 needs.
    policy_version : str
        The policy that decided.
    """

    tier: Tier
    source: TierSource
    rules_fired: tuple[str, ...]
    rule_tier: Tier | None
    model_tier: Tier | None
    model_available: bool
    candidate_tier: Tier
    computed_tier: Tier
    held_by_hysteresis: bool
    awaiting_confirmation: bool
    fall_confirmed: bool
    confirmation_role: Role | None
    consecutive_below: int
    hard_rule_t1: bool
    borderline: bool
    override_applied: bool
    override_limited: bool
    policy_version: str

    def state(self) -> TierState:
        """The state to pass as ``previous`` to the next scoring (no confirmation yet)."""
        return TierState(self.tier, self.consecutive_below, self.hard_rule_t1)


def _checked_score(name: str, value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _hysteresis(
    rules: Hysteresis,
    candidate: Tier,
    model_available: bool,
    previous: TierState | None,
) -> tuple[Tier, bool, bool, Role | None, int]:
    """(tier, held, awaiting confirmation, role to confirm, consecutive-below count)."""
    if previous is None or candidate.level <= previous.tier.level:
        return candidate, False, False, None, 0  # a rise (or no change) takes effect at once
    if not model_available and not rules.count_scorings_without_model:
        return previous.tier, True, False, None, previous.consecutive_below
    count = previous.consecutive_below + 1
    if previous.hard_rule_t1:
        role = rules.hard_rule_t1_closed_by
        needed = (
            rules.fall_after_consecutive_below if rules.hard_rule_t1_needs_consecutive_below else 1
        )
    else:
        role, needed = rules.fall_confirmed_by, rules.fall_after_consecutive_below
    if count < needed:
        return previous.tier, True, False, None, count
    if previous.confirmed_by is not None and previous.confirmed_by.may_act_as(role):
        return candidate, False, False, None, 0
    return previous.tier, True, True, role, count


def decide_tier(
    policy: TierPolicy,
    *,
    p_any: float | None,
    fired: Sequence[FiredRule] | None = None,
    record: Mapping[Any, object] | None = None,
    thresholds: AreaThresholds | None = None,
    model_tier: Tier | None = None,
    previous: TierState | None = None,
    override: Override | None = None,
    p_low: float | None = None,
    p_high: float | None = None,
) -> TierDecision:
    """Decide one child's tier.

    Parameters
    ----------
    policy : TierPolicy
        The tier policy.
    p_any : float or None
        Calibrated probability of any adverse event; ``None`` when no model is available.
    fired : sequence of FiredRule, optional
        The rules that fired for the child. Give this or ``record``.
    record : mapping, optional
        The child's feature record; the policy's rules are evaluated on it.
    thresholds : AreaThresholds, optional
        The child's area cut-offs; needed to place a score unless ``model_tier`` is given.
    model_tier : Tier, optional
        The band a capacity ranking already gave (batch scoring breaks ties by child id,
        which a threshold alone cannot); overrides ``thresholds`` for placement.
    previous : TierState, optional
        The state after the previous scoring, with any confirmation since.
    override : Override, optional
        A reviewer's tier, applied last and never below a floor or a hard rule.
    p_low, p_high : float, optional
        The score's uncertainty interval, for the borderline flag.

    Returns
    -------
    TierDecision
        The tier, every reason, and the state for the next scoring.

    Raises
    ------
    ValueError
        If neither or both of ``fired`` and ``record`` are given, a score is not a probability,
        or a score cannot be placed (neither ``thresholds`` nor ``model_tier``).
    PolicyError
        If ``record`` lacks a feature a rule reads.

    Examples
    --------
    >>> from models.policy import load_policy
    >>> policy = load_policy()
    >>> hit = FiredRule("hard", "guardianship_absent", Tier.T1)
    >>> decide_tier(policy, p_any=0.01, fired=[hit], thresholds=AreaThresholds(0.3, 0.1)).tier
    <Tier.T1: 'T1'>
    """
    if (fired is None) == (record is None):
        raise ValueError("give exactly one of `fired` (rules that fired) or `record` (features)")
    rules = fired_rules(policy, record) if record is not None else tuple(fired or ())
    score = _checked_score("p_any", p_any)
    if score is None:
        if model_tier is not None:
            raise ValueError("model_tier given without a model score")
    elif model_tier is None:
        if thresholds is None:
            raise ValueError("a model score needs the area's thresholds (or model_tier)")
        model_tier = thresholds.tier_of(score)
    elif model_tier is Tier.T1:
        raise ValueError("the model places children in T2-T4 only; T1 comes from rules")
    model_available = model_tier is not None

    hard = any(r.kind == "hard" for r in rules)
    rule_tier = most_severe(*(r.tier for r in rules))
    candidate = most_severe(rule_tier, model_tier, Tier.T4)
    assert candidate is not None  # T4 is always among the arguments
    if hard:
        source = TierSource.HARD_RULE
    elif rule_tier is not None and (model_tier is None or rule_tier.level <= model_tier.level):
        source = TierSource.FLOOR_RULE
    elif model_tier is not None:
        source = TierSource.MODEL
    else:
        source = TierSource.NO_MODEL

    tier, held, awaiting, role, count = _hysteresis(
        policy.hysteresis, candidate, model_available, previous
    )
    if held:
        source = TierSource.HYSTERESIS
    # The only way a candidate below the previous tier is not held is a confirmed fall.
    fell = previous is not None and candidate.level > previous.tier.level and not held
    computed = tier
    hard_t1 = tier is Tier.T1 and (hard or (previous is not None and previous.hard_rule_t1))

    applied = limited = False
    if override is not None:
        applied = True
        requested = override.tier
        closer = policy.hysteresis.hard_rule_t1_closed_by
        if hard_t1 and requested is not Tier.T1 and not override.role.may_act_as(closer):
            requested = Tier.T1  # only the policy's closer may lower a hard-rule T1
        final = most_severe(requested, rule_tier)
        assert final is not None
        limited = final is not override.tier
        if not limited:
            source = TierSource.OVERRIDE
        elif hard:
            source = TierSource.HARD_RULE
        elif final is rule_tier:
            source = TierSource.FLOOR_RULE
        else:
            source = TierSource.HYSTERESIS
        tier, held, awaiting, role, count = final, False, False, None, 0
        hard_t1 = hard_t1 and tier is Tier.T1

    straddles = (
        thresholds is not None
        and score is not None
        and thresholds.straddled(_checked_score("p_low", p_low), _checked_score("p_high", p_high))
    )
    return TierDecision(
        tier=tier,
        source=source,
        rules_fired=tuple(r.label for r in rules),
        rule_tier=rule_tier,
        model_tier=model_tier,
        model_available=model_available,
        candidate_tier=candidate,
        computed_tier=computed,
        held_by_hysteresis=held,
        awaiting_confirmation=awaiting,
        fall_confirmed=fell,
        confirmation_role=role if awaiting else None,
        consecutive_below=count,
        hard_rule_t1=hard_t1,
        borderline=straddles,
        override_applied=applied,
        override_limited=limited,
        policy_version=policy.version,
    )


# ---------------------------------------------------------------------------------------------
# Batch


#: Columns of :func:`assign_tiers`' output after the id and area columns.
OUTPUT_COLUMNS: tuple[str, ...] = (
    "tier",
    "tier_source",
    "rules_fired",
    "rule_tier",
    "model_tier",
    "model_available",
    "candidate_tier",
    "computed_tier",
    "threshold_t2",
    "threshold_t3",
    "borderline",
    "held_by_hysteresis",
    "awaiting_confirmation",
    "fall_confirmed",
    "confirmation_role",
    "consecutive_below",
    "hard_rule_t1",
    "override_applied",
    "override_limited",
    "policy_version",
    "policy_fingerprint",
)


def _text(values: npt.NDArray[Any]) -> ExtensionArray:
    """Text values (``None`` = missing) in pandas' string dtype, whatever they hold.

    Left to inference, a column of only missing values would stay ``object`` while one with
    any text becomes ``str``; every run must give the same dtypes.
    """
    return pd.array(values, dtype="str")


def _levels_to_tiers(levels: npt.NDArray[np.int64]) -> ExtensionArray:
    names = np.array([None, "T1", "T2", "T3", "T4", None], dtype=object)
    return _text(names[levels])


def _tier_levels(values: pd.Series, what: str) -> npt.NDArray[np.int64]:
    bad = sorted({str(v) for v in values.dropna().unique()} - set(Tier))
    if bad:
        raise PolicyError(f"{what}: {bad} are not tiers (T1-T4)")
    return values.map(lambda v: Tier(v).level, na_action="ignore").fillna(_NONE).to_numpy("int64")


def _role_ranks(values: pd.Series, what: str) -> npt.NDArray[np.int64]:
    bad = sorted({str(v) for v in values.dropna().unique()} - set(Role))
    if bad:
        raise PolicyError(f"{what}: {bad} are not roles ({', '.join(Role)})")
    return values.map(lambda v: Role(v).rank, na_action="ignore").fillna(-1).to_numpy("int64")


def _aligned(
    table: pd.DataFrame | None, ids: pd.Series, id_column: str, what: str, required: Sequence[str]
) -> pd.DataFrame | None:
    """``table`` re-indexed to the rows of ``ids`` (missing children get NaN rows)."""
    if table is None:
        return None
    missing = [c for c in (id_column, *required) if c not in table.columns]
    if missing:
        raise PolicyError(f"{what} lacks column(s): {', '.join(missing)}")
    if table[id_column].duplicated().any():
        raise PolicyError(f"{what} lists a child more than once")
    return table.set_index(id_column).reindex(pd.Index(ids, name=id_column))


def _bands(
    policy: TierPolicy,
    areas: pd.Series,
    ids: pd.Series,
    score: npt.NDArray[np.float64],
    forced_t1: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Model levels (``_NONE`` without a score) and each row's area thresholds (NaN = empty)."""
    n = len(areas)
    level = np.full(n, _NONE, dtype=np.int64)
    t2 = np.full(n, np.nan)
    t3 = np.full(n, np.nan)
    has_score = ~np.isnan(score)
    eligible = has_score & ~forced_t1
    position = np.arange(n)
    for area, rows in pd.Series(position).groupby(areas.to_numpy(), sort=True):
        rows_all = rows.to_numpy()
        k2, k3 = policy.capacity.for_area(str(area)).slots(len(rows_all))
        pool = rows_all[eligible[rows_all]]
        # Highest score first; equal scores in child-id order, so every run is repeatable.
        ranked = pd.DataFrame({"row": pool, "score": score[pool], "id": ids.to_numpy()[pool]})
        ranked = ranked.sort_values(["score", "id"], ascending=[False, True], kind="mergesort")
        order = ranked["row"].to_numpy()
        band2, band3 = order[:k2], order[k2 : k2 + k3]
        level[order] = 4
        level[band3] = 3
        level[band2] = 2
        cut2 = float(score[band2[-1]]) if len(band2) else np.nan
        cut3 = float(score[band3[-1]]) if len(band3) else np.nan
        t2[rows_all], t3[rows_all] = cut2, cut3
        # Children a rule already puts in T1 are outside the ranking; their model band is
        # read off the area's cut-offs so the report still shows what the model thought.
        outside = rows_all[forced_t1[rows_all] & has_score[rows_all]]
        with np.errstate(invalid="ignore"):
            level[outside] = np.where(
                score[outside] >= cut2, 2, np.where(score[outside] >= cut3, 3, 4)
            )
    return level, t2, t3


def _probabilities(frame: pd.DataFrame, column: str | None) -> npt.NDArray[np.float64]:
    if column is None or column not in frame.columns:
        return np.full(len(frame), np.nan)
    values = pd.to_numeric(frame[column], errors="raise").astype("float64").to_numpy()
    present = values[~np.isnan(values)]
    if ((present < 0) | (present > 1)).any():
        raise PolicyError(f"column {column!r} must hold probabilities in [0, 1]")
    return np.asarray(values, dtype=np.float64)


def assign_tiers(
    frame: pd.DataFrame,
    policy: TierPolicy,
    previous: pd.DataFrame | None = None,
    *,
    overrides: pd.DataFrame | None = None,
    id_column: str = "child_id",
) -> pd.DataFrame:
    """Decide the tier of every child of one scoring run.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per child: ``id_column``, the policy's area column (``township_code``), every
        feature a rule reads, and the policy's score columns (``p_any``, optionally ``p_low``
        and ``p_high``). Without ``p_any`` (or with it all missing) the run has no model:
        children still get the tiers their rules give, and ``model_available`` says so.
    policy : TierPolicy
        The tier policy.
    previous : pandas.DataFrame, optional
        The previous run's state: ``id_column``, ``tier``, and optionally
        ``consecutive_below``, ``hard_rule_t1`` and ``confirmed_by`` (a role that confirmed a
        pending fall since). This function's output can be passed back as is.
    overrides : pandas.DataFrame, optional
        Reviewers' overrides in force: ``id_column``, ``tier``, ``role``, ``reviewer``,
        ``reason``.
    id_column : str
        The child id column; it also breaks ties between equal scores.

    Returns
    -------
    pandas.DataFrame
        Same index and row order as ``frame``: ``id_column``, the area column, then
        ``OUTPUT_COLUMNS`` (tiers as ``"T1"``..``"T4"``, ``rules_fired`` as lists of labels).

    Raises
    ------
    PolicyError
        If a column the policy needs is missing, a child is listed twice, a child has no area
        code, a score is not a probability, or ``previous``/``overrides`` are malformed.
    """
    area_column, score_column = policy.capacity.area_column, policy.thresholds.score
    for column in (id_column, area_column):
        if column not in frame.columns:
            raise PolicyError(f"the scoring frame lacks column {column!r}")
    ids = frame[id_column].astype("object")
    if ids.isna().any() or ids.duplicated().any():
        raise PolicyError(f"the scoring frame has missing or repeated {id_column} values")
    areas = frame[area_column].astype("object")
    if areas.isna().any():
        raise PolicyError(
            f"{int(areas.isna().sum())} children have no {area_column}; capacity is per area"
        )
    n = len(frame)

    hits = rule_hits(policy, frame)
    fired_matrix = hits.to_numpy(dtype=bool)
    rule_levels = np.array([policy.fired(r).tier.level for r in policy.rules], dtype=np.int64)
    is_hard = np.array([policy.fired(r).kind == "hard" for r in policy.rules], dtype=bool)
    rule_level = (
        np.where(fired_matrix, rule_levels, _NONE).min(axis=1)
        if len(rule_levels)
        else np.full(n, _NONE, dtype=np.int64)
    )
    hard: npt.NDArray[np.bool_] = np.asarray(fired_matrix[:, is_hard].any(axis=1), dtype=bool)
    labels = np.array(hits.columns, dtype=object)
    rules_fired = [list(labels[row]) for row in fired_matrix]

    score = _probabilities(frame, score_column)
    low_col, high_col = policy.thresholds.interval or (None, None)
    p_low, p_high = _probabilities(frame, low_col), _probabilities(frame, high_col)
    model_level, t2, t3 = _bands(policy, areas, ids, score, rule_level == 1)
    available = model_level != _NONE
    if not available.any():
        logger.warning("no model scores: tiers come from rules alone", extra={"children": n})

    candidate = np.minimum(np.minimum(rule_level, model_level), 4)
    source = np.select(
        [hard, (rule_level <= 4) & (rule_level <= model_level), available],
        [TierSource.HARD_RULE.value, TierSource.FLOOR_RULE.value, TierSource.MODEL.value],
        TierSource.NO_MODEL.value,
    ).astype(object)

    level, held, awaiting, role_rank, count, hard_t1, fell = _batch_hysteresis(
        policy.hysteresis,
        candidate,
        available,
        hard,
        _aligned(previous, ids, id_column, "previous tiers", ("tier",)),
    )
    source[held] = TierSource.HYSTERESIS.value
    computed = level.copy()  # the engine's tier, before any override

    override_applied = np.zeros(n, dtype=bool)
    override_limited = np.zeros(n, dtype=bool)
    table = _aligned(overrides, ids, id_column, "overrides", ("tier", "role", "reviewer", "reason"))
    if table is not None:
        given = table["tier"].notna().to_numpy()
        reasons = table["reason"].fillna("").astype(str).str.strip()
        reviewers = table["reviewer"].fillna("").astype(str).str.strip()
        if ((reasons == "") | (reviewers == "")).to_numpy()[given].any():
            raise PolicyError("every override needs a reviewer and a written reason")
        wanted = _tier_levels(table["tier"], "overrides.tier")
        ranks = _role_ranks(table["role"], "overrides.role")
        closer = policy.hysteresis.hard_rule_t1_closed_by.rank
        blocked = given & hard_t1 & (wanted > 1) & (ranks < closer)
        final = np.minimum(np.where(blocked, 1, wanted), rule_level)
        limited = given & (final != wanted)
        source[given & ~limited] = TierSource.OVERRIDE.value
        clamped = given & limited
        source[clamped] = np.where(
            hard[clamped],
            TierSource.HARD_RULE.value,
            np.where(
                final[clamped] == rule_level[clamped],
                TierSource.FLOOR_RULE.value,
                TierSource.HYSTERESIS.value,
            ),
        )
        level = np.where(given, final, level)
        held &= ~given
        awaiting &= ~given
        count = np.where(given, 0, count)
        hard_t1 &= level == 1
        override_applied, override_limited = given, limited

    with np.errstate(invalid="ignore"):
        borderline = ((p_low < t2) & (t2 <= p_high)) | ((p_low < t3) & (t3 <= p_high))
    borderline &= ~np.isnan(score)
    roles = np.array([r.value for r in sorted(Role, key=lambda r: r.rank)], dtype=object)
    confirm_roles = roles[np.maximum(role_rank, 0)]
    confirm_roles[~awaiting] = None

    columns: dict[Hashable, Any] = {
        id_column: frame[id_column].to_numpy(),
        area_column: frame[area_column].to_numpy(),
        "tier": _levels_to_tiers(level),
        "tier_source": _text(source),
        "rules_fired": rules_fired,
        "rule_tier": _levels_to_tiers(rule_level),
        "model_tier": _levels_to_tiers(model_level),
        "model_available": available,
        "candidate_tier": _levels_to_tiers(candidate),
        "computed_tier": _levels_to_tiers(computed),
        "threshold_t2": t2,
        "threshold_t3": t3,
        "borderline": borderline,
        "held_by_hysteresis": held,
        "awaiting_confirmation": awaiting,
        "fall_confirmed": fell,
        "confirmation_role": _text(confirm_roles),
        "consecutive_below": count,
        "hard_rule_t1": hard_t1,
        "override_applied": override_applied,
        "override_limited": override_limited,
        "policy_version": policy.version,
        "policy_fingerprint": policy.fingerprint(),
    }
    out = pd.DataFrame(columns, index=frame.index)
    logger.info(
        "tiers assigned",
        extra={
            "children": n,
            "hard_rule_hits": int(hard.sum()),
            "model_available": int(available.sum()),
            "policy_version": policy.version,
        },
    )
    return out


def _batch_hysteresis(
    rules: Hysteresis,
    candidate: npt.NDArray[np.int64],
    available: npt.NDArray[np.bool_],
    hard: npt.NDArray[np.bool_],
    previous: pd.DataFrame | None,
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.bool_],
    npt.NDArray[np.bool_],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.bool_],
    npt.NDArray[np.bool_],
]:
    """The vectorised twin of :func:`_hysteresis` (the unit tests hold them equal); the last
    array marks the falls a confirmation let through."""
    n = len(candidate)
    if previous is None:
        zeros = np.zeros(n, dtype=bool)
        return (
            candidate,
            zeros,
            zeros.copy(),
            np.full(n, -1),
            np.zeros(n, np.int64),
            (hard & (candidate == 1)),
            zeros.copy(),
        )
    prev_level = _tier_levels(previous["tier"], "previous.tier")
    has_prev = prev_level != _NONE
    prev_count = (
        previous["consecutive_below"].fillna(0).to_numpy("int64")
        if "consecutive_below" in previous.columns
        else np.zeros(n, dtype=np.int64)
    )
    if (prev_count < 0).any():
        raise PolicyError("previous.consecutive_below cannot be negative")
    prev_hard = (
        previous["hard_rule_t1"].astype("boolean").fillna(False).to_numpy(bool)
        if "hard_rule_t1" in previous.columns
        else np.zeros(n, dtype=bool)
    ) & has_prev
    if (prev_hard & (prev_level != 1)).any():
        raise PolicyError("previous.hard_rule_t1 is set on a child whose tier is not T1")
    confirmed = (
        _role_ranks(previous["confirmed_by"], "previous.confirmed_by")
        if "confirmed_by" in previous.columns
        else np.full(n, -1, dtype=np.int64)
    )

    below = has_prev & (candidate > prev_level)
    frozen = below & ~available & (not rules.count_scorings_without_model)
    counting = below & ~frozen
    count = np.where(counting, prev_count + 1, np.where(frozen, prev_count, 0))
    steps = rules.fall_after_consecutive_below
    needed = np.where(prev_hard, steps if rules.hard_rule_t1_needs_consecutive_below else 1, steps)
    role_rank = np.where(
        prev_hard, rules.hard_rule_t1_closed_by.rank, rules.fall_confirmed_by.rank
    ).astype(np.int64)
    due = counting & (count >= needed)
    falls = due & (confirmed >= role_rank)
    awaiting = due & ~falls
    held = below & ~falls
    level = np.where(held, prev_level, candidate)
    count = np.where(falls, 0, count)
    hard_t1 = (level == 1) & (hard | prev_hard)
    return level, held, awaiting, role_rank, count, hard_t1, falls


def state_from_decision(decision: TierDecision, confirmed_by: Role | None = None) -> TierState:
    """The next scoring's ``previous``, with a confirmation recorded since (if any)."""
    return replace(decision.state(), confirmed_by=confirmed_by)


__all__ = [
    "OUTPUT_COLUMNS",
    "AreaThresholds",
    "Override",
    "TierDecision",
    "TierSource",
    "TierState",
    "assign_tiers",
    "decide_tier",
    "state_from_decision",
]
