"""Early warning: after each scoring run, a child who rose a tier or newly hit a hard rule.

:func:`detect_alerts` compares a run with the previous one and is pure; it raises one alert
per child per situation, with its reasons (each newly fired hard rule and the tier rise in
Chinese and English, the floor rules that fire, and the model's top factors).
:func:`raise_alerts_for_run` stores them, skipping any already raised (same child, scoring
date, tier and new hard rules: :func:`dedup_key`), so processing a run twice, or scoring a date
again with the same result, raises nothing new, and a hard rule that keeps firing from one
run to the next raises one alert, not one per run. :func:`process_run` is what runs after a
scoring run: tasks for the new tiers (``service.workflow.tasks``), then the alerts.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Integer, func, select
from sqlalchemy.orm import Session

from models.policy import Tier, TierPolicy
from service.db.workflow import Alert, AlertDelivery
from service.workflow.context import parse_rule_labels
from service.workflow.scope import in_area
from service.workflow.tasks import TaskSync, sync_tasks_for_run

logger = logging.getLogger(__name__)

#: Model factors shown with an alert (the run stores more; the page shows them all).
TOP_MODEL_REASONS = 3
_KEY_LENGTH = 255


@dataclass(frozen=True)
class AlertCandidate:
    """An alert :func:`detect_alerts` found, before it is stored."""

    child_id: str
    village_code: str
    township_code: str
    run_id: str
    as_of: date
    tier: Tier
    previous_tier: Tier | None
    tier_rise: bool
    hard_rules: tuple[str, ...]
    reasons: tuple[dict[str, Any], ...]
    policy_version: str
    model_version: int | None

    @property
    def dedup_key(self) -> str:
        """See :func:`dedup_key`."""
        return dedup_key(self.child_id, self.as_of, self.tier, self.hard_rules)


def dedup_key(child_id: str, as_of: date, tier: Tier, hard_rules: Sequence[str]) -> str:
    """The key two alerts about the same situation share.

    Examples
    --------
    >>> from datetime import date
    >>> dedup_key("c-1", date(2025, 6, 30), Tier.T1, ["b", "a"])
    'c-1|2025-06-30|T1|a,b'
    """
    key = f"{child_id}|{as_of.isoformat()}|{tier.value}|{','.join(sorted(hard_rules))}"
    if len(key) > _KEY_LENGTH:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        key = f"{child_id}|{as_of.isoformat()}|{tier.value}|sha256:{digest}"
    return key


def _labels(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and value != value):
        return []
    return [str(v) for v in value]


def _hard_names(labels: list[str]) -> set[str]:
    return {r.name for r in parse_rule_labels(labels) if r.kind == "hard"}


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return pd.Timestamp(value).date()


def _optional_int(value: Any) -> int | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return int(value)


def _reasons(
    policy: TierPolicy,
    tier: Tier,
    previous: Tier | None,
    rise: bool,
    new_hard: Sequence[str],
    labels: list[str],
    model_reasons: Any,
    override_id: int | None = None,
) -> tuple[dict[str, Any], ...]:
    rules = {r.name: r for r in policy.rules}
    out: list[dict[str, Any]] = []
    for name in new_hard:
        rule = rules.get(name)
        out.append(
            {
                "kind": "hard_rule",
                "rule": name,
                "domain": rule.domain if rule else None,
                "zh": rule.zh if rule else name,
                "en": rule.en if rule else name,
            }
        )
    if rise and previous is not None:
        old, new = policy.tier(previous), policy.tier(tier)
        out.append(
            {
                "kind": "tier_rise",
                "from": previous.value,
                "to": tier.value,
                "zh": f"风险等级由{old.zh}升至{new.zh}",
                "en": f"the tier rose from {old.en} to {new.en}",
            }
        )
    if override_id is not None:
        # A reviewer's override, not the engine, set this tier: the caseworker still acts on
        # it, and the reader should know whose decision it was.
        out.append(
            {
                "kind": "override",
                "override_id": override_id,
                "zh": f"该等级由督导员人工调整(调整记录 #{override_id})",
                "en": f"the tier was set by a supervisor's override (override #{override_id})",
            }
        )
    for fired in parse_rule_labels(labels):
        if fired.kind != "floor":
            continue
        rule = rules.get(fired.name)
        out.append(
            {
                "kind": "floor_rule",
                "rule": fired.name,
                "tier": fired.tier.value,
                "domain": rule.domain if rule else None,
                "zh": rule.zh if rule else fired.name,
                "en": rule.en if rule else fired.name,
            }
        )
    shown = 0
    for record in model_reasons if model_reasons is not None else ():
        if shown >= TOP_MODEL_REASONS:
            break
        item = dict(record) if isinstance(record, Mapping) else {}
        if item.get("direction") != "raises":
            continue
        out.append(
            {
                "kind": "model",
                "feature": item.get("feature"),
                "domain": item.get("domain"),
                "zh": item.get("zh"),
                "en": item.get("en"),
            }
        )
        shown += 1
    return tuple(out)


def detect_alerts(
    policy: TierPolicy, current: pd.DataFrame, previous: pd.DataFrame | None
) -> list[AlertCandidate]:
    """The alerts a scoring run raises, compared with the previous run.

    Parameters
    ----------
    policy : TierPolicy
        The tier policy (rule and tier names for the reasons).
    current : DataFrame
        The run: ``child_id``, ``village_code``, ``township_code``, ``tier``, ``rules_fired``,
        ``run_id``, ``as_of``, ``policy_version`` and optionally ``reasons`` (the model's
        factors) and ``model_version``.
    previous : DataFrame or None
        The previous run: ``child_id``, ``tier`` and ``rules_fired`` (or at least
        ``hard_rule_t1``); ``None`` when there was none.

    Returns
    -------
    list of AlertCandidate
        One per child whose tier rose, or on whom a hard rule fired that did not fire in the
        previous run (every hard-rule hit when the child was not scored before). Without
        ``rules_fired`` in ``previous``, a child that was a hard-rule T1 then is taken to
        have had the same hard rules.
    """
    prev_tier: dict[str, Tier] = {}
    prev_hard: dict[str, set[str]] = {}
    if previous is not None and not previous.empty:
        has_rules = "rules_fired" in previous.columns
        has_flag = "hard_rule_t1" in previous.columns
        for row in previous.to_dict("records"):
            child = str(row["child_id"])
            prev_tier[child] = Tier(str(row["tier"]))
            if has_rules:
                prev_hard[child] = _hard_names(_labels(row["rules_fired"]))
            elif has_flag and bool(row["hard_rule_t1"]):
                prev_hard[child] = {"*"}  # every current hard rule counts as continuing
    has_reasons = "reasons" in current.columns
    has_model = "model_version" in current.columns
    has_override = "override_id" in current.columns
    found: list[AlertCandidate] = []
    for row in current.to_dict("records"):
        child = str(row["child_id"])
        tier = Tier(str(row["tier"]))
        labels = _labels(row["rules_fired"])
        hard_now = _hard_names(labels)
        before = prev_hard.get(child, set())
        new_hard = sorted(set() if "*" in before else hard_now - before)
        old = prev_tier.get(child)
        rise = old is not None and tier.level < old.level
        if not rise and not new_hard:
            continue
        found.append(
            AlertCandidate(
                child_id=child,
                village_code=str(row["village_code"]),
                township_code=str(row["township_code"]),
                run_id=str(row["run_id"]),
                as_of=_date(row["as_of"]),
                tier=tier,
                previous_tier=old,
                tier_rise=rise,
                hard_rules=tuple(new_hard),
                reasons=_reasons(
                    policy,
                    tier,
                    old,
                    rise,
                    new_hard,
                    labels,
                    row["reasons"] if has_reasons else None,
                    _optional_int(row["override_id"]) if has_override else None,
                ),
                policy_version=str(row["policy_version"]),
                model_version=_optional_int(row["model_version"]) if has_model else None,
            )
        )
    return found


@dataclass(frozen=True)
class AlertRun:
    """What :func:`raise_alerts_for_run` did."""

    candidates: int
    duplicates: int
    raised: list[Alert] = field(default_factory=list)


def _existing_keys(session: Session, keys: list[str]) -> set[str]:
    existing: set[str] = set()
    # SQLite limits the parameters of one statement; ask in chunks.
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        existing.update(session.scalars(select(Alert.dedup_key).where(Alert.dedup_key.in_(chunk))))
    return existing


def raise_alerts_for_run(
    session: Session,
    policy: TierPolicy,
    current: pd.DataFrame,
    previous: pd.DataFrame | None,
    *,
    now: datetime | None = None,
) -> AlertRun:
    """Store the alerts of a scoring run, skipping those already raised.

    Parameters
    ----------
    session : Session
        The operational database (flushed, not committed).
    policy : TierPolicy
        The tier policy.
    current, previous : DataFrame
        The run and the previous run (see :func:`detect_alerts`).
    now : datetime, optional
        When the alerts are raised (UTC now by default).

    Returns
    -------
    AlertRun
        The candidates found, how many were duplicates, and the alerts raised.
    """
    at = (now or datetime.now(UTC)).astimezone(UTC)
    candidates = detect_alerts(policy, current, previous)
    unique: dict[str, AlertCandidate] = {}
    for candidate in candidates:
        unique.setdefault(candidate.dedup_key, candidate)
    existing = _existing_keys(session, list(unique))
    alerts = [
        Alert(
            dedup_key=key,
            child_id=c.child_id,
            village_code=c.village_code,
            township_code=c.township_code,
            run_id=c.run_id,
            as_of=c.as_of,
            tier=c.tier.value,
            previous_tier=None if c.previous_tier is None else c.previous_tier.value,
            tier_rise=c.tier_rise,
            hard_rules=list(c.hard_rules),
            reasons=list(c.reasons),
            policy_version=c.policy_version,
            model_version=c.model_version,
            raised_at=at,
        )
        for key, c in unique.items()
        if key not in existing
    ]
    session.add_all(alerts)
    session.flush()
    duplicates = len(candidates) - len(alerts)
    logger.info(
        "alerts raised",
        extra={"candidates": len(candidates), "raised": len(alerts), "duplicates": duplicates},
    )
    return AlertRun(candidates=len(candidates), duplicates=duplicates, raised=alerts)


@dataclass(frozen=True)
class RunProcessing:
    """What :func:`process_run` did after a scoring run."""

    run_id: str | None
    tasks: TaskSync
    alerts: AlertRun


def process_run(
    session: Session,
    policy: TierPolicy,
    current: pd.DataFrame,
    previous: pd.DataFrame | None,
    *,
    now: datetime | None = None,
) -> RunProcessing:
    """After a scoring run: open tasks for changed tiers, then raise the run's alerts.

    Parameters
    ----------
    session : Session
        The operational database (flushed, not committed).
    policy : TierPolicy
        The tier policy.
    current, previous : DataFrame
        The run and the previous run (:func:`service.workflow.runs.load_runs` reads both).
    now : datetime, optional
        When the alerts are raised; tasks start at the run's ``scored_at``.

    Returns
    -------
    RunProcessing
    """
    tasks = sync_tasks_for_run(session, policy, current)
    alerts = raise_alerts_for_run(session, policy, current, previous, now=now)
    run_id = str(current["run_id"].iloc[0]) if not current.empty else None
    return RunProcessing(run_id=run_id, tasks=tasks, alerts=alerts)


@dataclass(frozen=True)
class AlertView:
    """An alert with where its webhook delivery stands."""

    alert: Alert
    delivered: bool
    attempts: int


def alert_feed(
    session: Session,
    *,
    area_code: str | None = None,
    child_id: str | None = None,
    after_id: int | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[AlertView]:
    """Alerts, newest first.

    Parameters
    ----------
    session : Session
        The operational database.
    area_code : str, optional
        Only children of this area (the caller's).
    child_id : str, optional
        Only this child.
    after_id : int, optional
        Only alerts newer than this id (a client polling the feed).
    before_id : int, optional
        Only alerts older than this id (paging back).
    limit : int, default=50
        At most this many.

    Returns
    -------
    list of AlertView
    """
    query = select(Alert)
    if area_code is not None:
        query = query.where(in_area(Alert.village_code, area_code))
    if child_id is not None:
        query = query.where(Alert.child_id == child_id)
    if after_id is not None:
        query = query.where(Alert.id > after_id)
    if before_id is not None:
        query = query.where(Alert.id < before_id)
    alerts = list(session.scalars(query.order_by(Alert.id.desc()).limit(limit)))
    if not alerts:
        return []
    stats = {
        alert_id: (bool(ok), int(n))
        for alert_id, ok, n in session.execute(
            select(
                AlertDelivery.alert_id,
                func.max(AlertDelivery.ok.cast(Integer)),
                func.count(AlertDelivery.id),
            )
            .where(AlertDelivery.alert_id.in_([a.id for a in alerts]))
            .group_by(AlertDelivery.alert_id)
        )
    }
    return [AlertView(a, *stats.get(a.id, (False, 0))) for a in alerts]


__all__ = [
    "TOP_MODEL_REASONS",
    "AlertCandidate",
    "AlertRun",
    "AlertView",
    "RunProcessing",
    "alert_feed",
    "dedup_key",
    "detect_alerts",
    "process_run",
    "raise_alerts_for_run",
]
