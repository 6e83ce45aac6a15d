"""Tasks from the tier policy's response times: what is due for a child, by when, and overdue.

Each tier's ``response`` in the policy file names deadlines (``first_visit_within``,
``case_plan_within``) and cadences (``visit_every``, ``contact_every``, ``phone_check_every``,
``file_update_every``); ``report_to_police_at_once`` asks for a mandatory report at once.
:func:`planned_tasks` turns them into tasks with due times; nothing here knows a number.
Attendance checks (the school's daily duty) and re-scoring (the machine's) are not tasks of a
person in the service.

A child's tasks come in *episodes*: when the child's tier changes (a scoring run, or a
supervisor's decision), a new episode opens with the new tier's tasks, and the still-open
tasks of the older episode are superseded — except a mandatory report, which stays due until
it is logged. A review completes the current tasks its activity covers
(:data:`COMPLETED_BY`), and a completed recurring task opens the next one, due one period
after the review. Rows are never changed (``service.db.workflow``): "done" is a
:class:`~service.db.workflow.TaskCompletion` row, "superseded" is a newer episode.
"""

from __future__ import annotations

import bisect
import calendar
import logging
import math
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pandas as pd
from sqlalchemy import Engine, Select, and_, func, insert, or_, select
from sqlalchemy.orm import Session, aliased

from models.policy import Period, Response, Tier, TierPolicy
from service.db.workflow import Task, TaskCompletion
from service.workflow.codes import Activity
from service.workflow.scope import in_area, prefix_upper_bound

logger = logging.getLogger(__name__)


class TaskKind(StrEnum):
    """What a task asks for."""

    MANDATORY_REPORT = "mandatory_report"
    FIRST_VISIT = "first_visit"
    CASE_PLAN = "case_plan"
    VISIT = "visit"
    CONTACT = "contact"
    PHONE_CHECK = "phone_check"
    FILE_UPDATE = "file_update"


#: The response field of the policy that sets each kind's deadline or cadence.
RESPONSE_FIELDS: dict[TaskKind, str] = {
    TaskKind.FIRST_VISIT: "first_visit_within",
    TaskKind.CASE_PLAN: "case_plan_within",
    TaskKind.VISIT: "visit_every",
    TaskKind.CONTACT: "contact_every",
    TaskKind.PHONE_CHECK: "phone_check_every",
    TaskKind.FILE_UPDATE: "file_update_every",
}

#: Kinds that come back: once done, the next is due one period later.
RECURRING: frozenset[TaskKind] = frozenset(
    {TaskKind.VISIT, TaskKind.CONTACT, TaskKind.PHONE_CHECK, TaskKind.FILE_UPDATE}
)

#: Which tasks a reviewed activity completes. A home visit is also a contact; a phone check
#: is a contact but not a visit. A mandatory report is completed by its own review.
COMPLETED_BY: dict[Activity, frozenset[TaskKind]] = {
    Activity.HOME_VISIT: frozenset({TaskKind.FIRST_VISIT, TaskKind.VISIT, TaskKind.CONTACT}),
    Activity.PHONE_CHECK: frozenset({TaskKind.PHONE_CHECK, TaskKind.CONTACT}),
    Activity.CASE_PLAN: frozenset({TaskKind.CASE_PLAN}),
    Activity.FILE_UPDATE: frozenset({TaskKind.FILE_UPDATE}),
}

#: Labels of the kinds (Chinese, English).
KIND_LABELS: dict[TaskKind, tuple[str, str]] = {
    TaskKind.MANDATORY_REPORT: ("向公安机关强制报告", "mandatory report to the police"),
    TaskKind.FIRST_VISIT: ("上门核查", "on-site visit"),
    TaskKind.CASE_PLAN: ("制定个案计划", "individual case plan"),
    TaskKind.VISIT: ("入户走访", "home visit"),
    TaskKind.CONTACT: ("联系儿童及家庭", "contact with the child and family"),
    TaskKind.PHONE_CHECK: ("电话回访", "phone check"),
    TaskKind.FILE_UPDATE: ("更新档案", "file update"),
}


# ---------------------------------------------------------------------------------------------
# Pure planning


def _add_months(start: datetime, months: int) -> datetime:
    # Calendar months: 31 January + 1 month is the last day of February, not 3 March.
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def add_period(start: datetime, period: Period) -> datetime:
    """``start`` plus one ``period`` of the policy (calendar months for month/quarter/year).

    Examples
    --------
    >>> from datetime import datetime
    >>> add_period(datetime(2025, 1, 31, 9), Period(every=1, unit="month"))
    datetime.datetime(2025, 2, 28, 9, 0)
    >>> add_period(datetime(2025, 1, 1), Period(every=24, unit="hour"))
    datetime.datetime(2025, 1, 2, 0, 0)
    """
    n = period.every
    match period.unit:
        case "hour":
            return start + timedelta(hours=n)
        case "day":
            return start + timedelta(days=n)
        case "week":
            return start + timedelta(weeks=n)
        case "month":
            return _add_months(start, n)
        case "quarter":
            return _add_months(start, 3 * n)
        case "year":
            return _add_months(start, 12 * n)
    raise ValueError(f"unknown period unit {period.unit!r}")  # pragma: no cover - Literal


def period_of(response: Response, kind: TaskKind) -> Period | None:
    """The deadline or cadence ``response`` sets for ``kind`` (``None``: not asked for)."""
    field = RESPONSE_FIELDS.get(kind)
    if field is None:
        return None
    period: Period | None = getattr(response, field)
    return period


@dataclass(frozen=True)
class PlannedTask:
    """A task a tier asks for: its kind and due time."""

    kind: TaskKind
    due_at: datetime


def planned_tasks(policy: TierPolicy, tier: Tier, start: datetime) -> tuple[PlannedTask, ...]:
    """The tasks a child entering ``tier`` at ``start`` gets, earliest due first.

    Parameters
    ----------
    policy : TierPolicy
        The tier policy; each tier's ``response`` sets the kinds and due times.
    tier : Tier
        The child's tier.
    start : datetime
        When the tier took effect (UTC).

    Returns
    -------
    tuple of PlannedTask
        A mandatory report due at ``start`` when the tier asks for one at once; each deadline
        and cadence of the response due one period after ``start``.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> from models.policy import load_policy
    >>> plan = planned_tasks(load_policy(), Tier.T1, datetime(2025, 3, 1, 8, tzinfo=UTC))
    >>> [(t.kind.value, t.due_at.strftime("%d %H:%M")) for t in plan][:2]
    [('mandatory_report', '01 08:00'), ('first_visit', '02 08:00')]
    """
    response = policy.tier(tier).response
    plan: list[PlannedTask] = []
    if response.report_to_police_at_once:
        plan.append(PlannedTask(TaskKind.MANDATORY_REPORT, start))
    for kind in RESPONSE_FIELDS:
        period = period_of(response, kind)
        if period is not None:
            plan.append(PlannedTask(kind, add_period(start, period)))
    order = list(TaskKind)
    return tuple(sorted(plan, key=lambda t: (t.due_at, order.index(t.kind))))


def next_due(policy: TierPolicy, tier: Tier, kind: TaskKind, done_at: datetime) -> datetime | None:
    """When the next task of a recurring ``kind`` falls due after one done at ``done_at``.

    Returns ``None`` when ``kind`` does not recur in ``tier`` (a deadline, or a cadence the
    tier does not ask for).
    """
    if kind not in RECURRING:
        return None
    period = period_of(policy.tier(tier).response, kind)
    return None if period is None else add_period(done_at, period)


def days_overdue(due_at: datetime, now: datetime) -> float:
    """How many days past ``due_at`` ``now`` is (0 when not yet due).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> days_overdue(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 3, 12, tzinfo=UTC))
    2.5
    """
    return max(0.0, (now - due_at).total_seconds() / 86400.0)


# ---------------------------------------------------------------------------------------------
# Views


class TaskStatus(StrEnum):
    """Where a task stands (derived; task rows never change)."""

    OPEN = "open"
    DONE = "done"
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class TaskView:
    """A task with its derived status.

    Attributes
    ----------
    task : Task
        The stored row.
    status : TaskStatus
        Open, done, or superseded by a newer episode.
    overdue : bool
        Open and past due at the time asked.
    days_overdue : float
        Days past due (0 when not overdue).
    completed_at : datetime or None
        When a review completed it.
    review_id : int or None
        That review.
    """

    task: Task
    status: TaskStatus
    overdue: bool
    days_overdue: float
    completed_at: datetime | None = None
    review_id: int | None = None


@dataclass(frozen=True)
class OverdueSummary:
    """A child's overdue tasks, for ranking the watch list (overdue children rise)."""

    child_id: str
    overdue_tasks: int
    max_days_overdue: float
    oldest_due_at: datetime
    kinds: tuple[str, ...]


def _latest_episode() -> Any:
    """Per child, the newest episode number (a correlated scalar subquery)."""
    inner = aliased(Task)
    return (
        select(func.max(inner.episode))
        .where(inner.child_id == Task.child_id)
        .correlate(Task)
        .scalar_subquery()
    )


def _open_tasks_query() -> Select[Task]:
    return (
        select(Task)
        .outerjoin(TaskCompletion, TaskCompletion.task_id == Task.id)
        .where(TaskCompletion.task_id.is_(None))
        .where(or_(Task.kind == TaskKind.MANDATORY_REPORT.value, Task.episode == _latest_episode()))
    )


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def open_tasks(
    session: Session,
    *,
    area_code: str | None = None,
    child_id: str | None = None,
    now: datetime | None = None,
    overdue_only: bool = False,
    limit: int | None = None,
) -> list[TaskView]:
    """Open tasks, soonest due first.

    Parameters
    ----------
    session : Session
        The operational database.
    area_code : str, optional
        Only children whose village code starts with it (the caller's area).
    child_id : str, optional
        Only this child.
    now : datetime, optional
        The time overdue is judged at (UTC now by default).
    overdue_only : bool, default=False
        Only tasks past due.
    limit : int, optional
        At most this many.

    Returns
    -------
    list of TaskView
    """
    at = _now(now)
    query = _open_tasks_query()
    if area_code is not None:
        query = query.where(in_area(Task.village_code, area_code))
    if child_id is not None:
        query = query.where(Task.child_id == child_id)
    if overdue_only:
        query = query.where(Task.due_at < at)
    query = query.order_by(Task.due_at, Task.id)
    if limit is not None:
        query = query.limit(limit)
    return [
        TaskView(
            task=t,
            status=TaskStatus.OPEN,
            overdue=t.due_at < at,
            days_overdue=days_overdue(t.due_at, at),
        )
        for t in session.scalars(query)
    ]


def overdue_by_child(
    session: Session,
    *,
    now: datetime | None = None,
    area_code: str | None = None,
    child_ids: Iterable[str] | None = None,
) -> dict[str, OverdueSummary]:
    """Each child's overdue open tasks, for the watch list's "days overdue" ordering.

    Parameters
    ----------
    session : Session
        The operational database.
    now : datetime, optional
        The time overdue is judged at (UTC now by default).
    area_code : str, optional
        Only children of this area.
    child_ids : iterable of str, optional
        Only these children.

    Returns
    -------
    dict
        Child id → :class:`OverdueSummary`; children with nothing overdue are absent.
    """
    at = _now(now)
    # Aggregated in SQL (one row per child and kind): the watch list asks this on every
    # request, for a whole county, and building a Task object per overdue row costs tens of
    # milliseconds there.
    query = (
        select(Task.child_id, Task.kind, func.count(), func.min(Task.due_at))
        .outerjoin(TaskCompletion, TaskCompletion.task_id == Task.id)
        .where(TaskCompletion.task_id.is_(None), Task.due_at < at)
        .where(or_(Task.kind == TaskKind.MANDATORY_REPORT.value, Task.episode == _latest_episode()))
        .group_by(Task.child_id, Task.kind)
    )
    if area_code is not None:
        query = query.where(in_area(Task.village_code, area_code))
    if child_ids is not None:
        ids = list(child_ids)
        if not ids:
            return {}
        query = query.where(Task.child_id.in_(ids))
    counts: dict[str, int] = {}
    oldest: dict[str, datetime] = {}
    kinds: dict[str, list[str]] = {}
    for child, kind, n, due in session.execute(query):
        due_at = due if isinstance(due, datetime) else datetime.fromisoformat(str(due))
        due_at = due_at.replace(tzinfo=UTC) if due_at.tzinfo is None else due_at
        counts[child] = counts.get(child, 0) + int(n)
        oldest[child] = min(oldest.get(child, due_at), due_at)
        kinds.setdefault(child, []).append(kind)
    return {
        child: OverdueSummary(
            child_id=child,
            overdue_tasks=counts[child],
            max_days_overdue=days_overdue(oldest[child], at),
            oldest_due_at=oldest[child],
            kinds=tuple(sorted(kinds[child])),
        )
        for child in counts
    }


@dataclass
class _OpenTask:
    child_id: str
    village_code: str
    kind: str
    episode: int
    due: float  # POSIX seconds: compared on every watch-list request


class OpenTaskIndex:
    """The open tasks, held in memory and caught up from the append-only tables.

    :func:`overdue_by_child` asks the database, which scans every task of the area whose due
    time has passed, completed ones included, so its cost grows with the history. The watch
    list asks on every request, for a whole county; this index answers from memory. Because
    tasks and completions are only ever inserted, with increasing ids, catching up is reading
    the rows after the last ids seen: new tasks open (and a newer episode supersedes the
    child's older open tasks, a mandatory report excepted), new completions close. It reads
    through its own connection, so it sees committed rows only.

    Parameters
    ----------
    engine : Engine
        The operational database.

    Examples
    --------
    >>> index = OpenTaskIndex(engine)  # doctest: +SKIP
    >>> index.overdue(now=now, area_code="990101")  # doctest: +SKIP
    """

    #: Ids re-read behind the newest seen: on PostgreSQL a row with a lower id can commit
    #: after one with a higher id (sequences are not transactional).
    LOOKBACK = 1000

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._last_task = 0
        self._last_done = 0
        self._seen_tasks: set[int] = set()
        self._seen_done: set[int] = set()
        self._closed: set[int] = set()
        self._open: dict[int, _OpenTask] = {}
        self._latest: dict[str, int] = {}
        self._ids_of_child: dict[str, set[int]] = {}
        # Per village, per child: the open tasks as (due, id), soonest first. A child that
        # moved may have open tasks in two villages; each counts where it was opened, as in
        # the SQL of overdue_by_child.
        self._due: dict[str, dict[str, list[tuple[float, int]]]] = {}
        self._villages: list[str] = []
        self._villages_dirty = False
        # Bumped by every change; a cached answer is reused while nothing changed and no due
        # time passed.
        self._version = 0
        self._cache: dict[str | None, _Cached] = {}

    # -- catching up -----------------------------------------------------------------------

    def _add(self, task_id: int, task: _OpenTask) -> None:
        if task_id in self._closed:
            return  # its completion was read first (a late commit)
        latest = self._latest.get(task.child_id, 0)
        if task.episode > latest:
            self._latest[task.child_id] = task.episode
            for other in list(self._ids_of_child.get(task.child_id, ())):
                old = self._open[other]
                if old.kind != TaskKind.MANDATORY_REPORT.value and old.episode < task.episode:
                    self._remove(other)
        elif task.episode < latest and task.kind != TaskKind.MANDATORY_REPORT.value:
            return  # already superseded
        self._version += 1
        self._open[task_id] = task
        self._ids_of_child.setdefault(task.child_id, set()).add(task_id)
        village = self._due.get(task.village_code)
        if village is None:
            village = self._due[task.village_code] = {}
            self._villages_dirty = True
        bisect.insort(village.setdefault(task.child_id, []), (task.due, task_id))

    def _remove(self, task_id: int) -> None:
        task = self._open.pop(task_id, None)
        if task is None:
            return
        self._version += 1
        ids = self._ids_of_child[task.child_id]
        ids.discard(task_id)
        if not ids:
            del self._ids_of_child[task.child_id]
        village = self._due[task.village_code]
        entries = village[task.child_id]
        entries.remove((task.due, task_id))
        if not entries:
            del village[task.child_id]

    def refresh(self) -> None:
        """Catch up with the tasks and completions committed since the last call."""
        with self._lock, self._engine.connect() as connection:
            floor_task = self._last_task - self.LOOKBACK
            floor_done = self._last_done - self.LOOKBACK
            # Two counts on the primary keys say whether anything arrived since: the ids
            # seen inside the look-back window are exactly those the counts cover.
            new_tasks = connection.execute(
                select(func.count()).select_from(Task).where(Task.id > floor_task)
            ).scalar_one()
            new_done = connection.execute(
                select(func.count())
                .select_from(TaskCompletion)
                .where(TaskCompletion.id > floor_done)
            ).scalar_one()
            if new_tasks == len(self._seen_tasks) and new_done == len(self._seen_done):
                return
            tasks = connection.execute(
                select(
                    Task.id, Task.child_id, Task.village_code, Task.kind, Task.episode, Task.due_at
                )
                .where(Task.id > floor_task)
                .order_by(Task.id)
            ).all()
            done = connection.execute(
                select(TaskCompletion.id, TaskCompletion.task_id)
                .where(TaskCompletion.id > floor_done)
                .order_by(TaskCompletion.id)
            ).all()
            for task_id, child, village, kind, episode, due in tasks:
                if task_id in self._seen_tasks:
                    continue
                self._seen_tasks.add(task_id)
                self._add(task_id, _OpenTask(child, village, kind, int(episode), due.timestamp()))
                self._last_task = max(self._last_task, task_id)
            for done_id, task_id in done:
                if done_id in self._seen_done:
                    continue
                self._seen_done.add(done_id)
                self._closed.add(task_id)
                self._remove(task_id)
                self._last_done = max(self._last_done, done_id)
            # Only ids inside the look-back window can still arrive late.
            floor_task = self._last_task - self.LOOKBACK
            floor_done = self._last_done - self.LOOKBACK
            self._seen_tasks = {i for i in self._seen_tasks if i > floor_task}
            self._seen_done = {i for i in self._seen_done if i > floor_done}
            self._closed = {i for i in self._closed if i > floor_task}

    # -- reading ----------------------------------------------------------------------------

    def overdue(
        self,
        *,
        now: datetime | None = None,
        area_code: str | None = None,
        child_ids: Iterable[str] | None = None,
    ) -> dict[str, OverdueSummary]:
        """What :func:`overdue_by_child` answers, from memory (committed rows only).

        Parameters
        ----------
        now : datetime, optional
            The time overdue is judged at (UTC now by default).
        area_code : str, optional
            Only children of this area.
        child_ids : iterable of str, optional
            Only these children.

        Returns
        -------
        dict
            Child id → :class:`OverdueSummary`.
        """
        self.refresh()
        at = _now(now)
        cutoff = at.timestamp()
        wanted = None if child_ids is None else set(child_ids)
        with self._lock:
            cached = self._cache.get(area_code) if wanted is None else None
            if (
                cached is not None
                and cached.version == self._version
                and cached.cutoff <= cutoff <= cached.next_due
            ):
                # Nothing was opened or closed and no due time passed since: the same tasks
                # are overdue, only the days overdue grew.
                cells = cached.cells
            else:
                cells, next_due = self._scan(cutoff, area_code, wanted)
                if wanted is None:
                    self._cache[area_code] = _Cached(self._version, cutoff, next_due, cells)
        found: dict[str, OverdueSummary] = {}
        for child, (n, first, kinds) in cells.items():
            found[child] = OverdueSummary(
                child_id=child,
                overdue_tasks=n,
                max_days_overdue=days_overdue(first, at),
                oldest_due_at=first,
                kinds=kinds,
            )
        return found

    def _scan(
        self, cutoff: float, area_code: str | None, wanted: set[str] | None
    ) -> tuple[dict[str, tuple[int, datetime, tuple[str, ...]]], float]:
        """Per child (overdue count, oldest due, kinds), and the next due time to pass."""
        if self._villages_dirty:
            self._villages = sorted(self._due)
            self._villages_dirty = False
        villages = self._villages
        if area_code is not None:
            low = bisect.bisect_left(villages, area_code)
            high = bisect.bisect_left(villages, prefix_upper_bound(area_code))
            villages = villages[low:high]
        counts: dict[str, int] = {}
        oldest: dict[str, float] = {}
        kinds: dict[str, set[str]] = {}
        next_due = math.inf
        for village in villages:
            for child, entries in self._due[village].items():
                if wanted is not None and child not in wanted:
                    continue
                first = entries[0][0]
                if first >= cutoff:
                    next_due = min(next_due, first)
                    continue
                n = bisect.bisect_left(entries, (cutoff, -1))
                if n < len(entries):
                    next_due = min(next_due, entries[n][0])
                counts[child] = counts.get(child, 0) + n
                oldest[child] = min(oldest.get(child, first), first)
                kinds.setdefault(child, set()).update(self._open[t].kind for _, t in entries[:n])
        cells = {
            child: (n, datetime.fromtimestamp(oldest[child], UTC), tuple(sorted(kinds[child])))
            for child, n in counts.items()
        }
        return cells, next_due


@dataclass(frozen=True)
class _Cached:
    version: int
    cutoff: float
    next_due: float
    cells: dict[str, tuple[int, datetime, tuple[str, ...]]]


_INDEXES: weakref.WeakKeyDictionary[Engine, OpenTaskIndex] = weakref.WeakKeyDictionary()
_INDEXES_LOCK = threading.Lock()


def overdue_index(engine: Engine) -> OpenTaskIndex:
    """The :class:`OpenTaskIndex` of ``engine`` (one per engine, made on first use).

    The service's watch list calls ``overdue_index(state.engine).overdue(...)``: the same
    answer as :func:`overdue_by_child` for committed data, in about a millisecond.
    """
    with _INDEXES_LOCK:
        index = _INDEXES.get(engine)
        if index is None:
            index = _INDEXES[engine] = OpenTaskIndex(engine)
        return index


def task_history(session: Session, child_id: str, *, now: datetime | None = None) -> list[TaskView]:
    """Every task a child ever had, newest first, with its status.

    Parameters
    ----------
    session : Session
        The operational database.
    child_id : str
        The child.
    now : datetime, optional
        The time overdue is judged at.

    Returns
    -------
    list of TaskView
    """
    at = _now(now)
    rows = session.execute(
        select(Task, TaskCompletion)
        .outerjoin(TaskCompletion, TaskCompletion.task_id == Task.id)
        .where(Task.child_id == child_id)
        .order_by(Task.opened_at.desc(), Task.id.desc())
    ).all()
    latest = max((task.episode for task, _ in rows), default=0)
    views: list[TaskView] = []
    for task, done in rows:
        if done is not None:
            status = TaskStatus.DONE
        elif task.episode == latest or task.kind == TaskKind.MANDATORY_REPORT.value:
            status = TaskStatus.OPEN
        else:
            status = TaskStatus.SUPERSEDED
        is_open = status is TaskStatus.OPEN
        views.append(
            TaskView(
                task=task,
                status=status,
                overdue=is_open and task.due_at < at,
                days_overdue=days_overdue(task.due_at, at) if is_open else 0.0,
                completed_at=None if done is None else done.completed_at,
                review_id=None if done is None else done.review_id,
            )
        )
    return views


# ---------------------------------------------------------------------------------------------
# Writing


@dataclass(frozen=True)
class ChildArea:
    """The child and where it lives: what every task row records."""

    child_id: str
    village_code: str
    township_code: str


def current_episode(session: Session, child_id: str) -> tuple[int, Tier] | None:
    """The child's newest episode number and its tier (``None`` before any task)."""
    row = session.execute(
        select(Task.episode, Task.tier)
        .where(Task.child_id == child_id)
        .order_by(Task.episode.desc(), Task.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (int(row[0]), Tier(row[1]))


def _has_open_mandatory_report(session: Session, child_id: str) -> bool:
    query = (
        select(Task.id)
        .outerjoin(TaskCompletion, TaskCompletion.task_id == Task.id)
        .where(
            Task.child_id == child_id,
            Task.kind == TaskKind.MANDATORY_REPORT.value,
            TaskCompletion.task_id.is_(None),
        )
        .limit(1)
    )
    return session.execute(query).first() is not None


def _task_rows(
    child: ChildArea,
    tier: Tier,
    episode: int,
    plan: Sequence[PlannedTask],
    opened_at: datetime,
    opened_by: str,
    policy_version: str,
) -> list[dict[str, Any]]:
    return [
        {
            "child_id": child.child_id,
            "village_code": child.village_code,
            "township_code": child.township_code,
            "kind": p.kind.value,
            "tier": tier.value,
            "episode": episode,
            "opened_at": opened_at,
            "due_at": p.due_at,
            "opened_by": opened_by,
            "policy_version": policy_version,
        }
        for p in plan
    ]


def open_episode(
    session: Session,
    policy: TierPolicy,
    child: ChildArea,
    tier: Tier,
    *,
    start: datetime,
    opened_by: str,
) -> list[Task]:
    """Open a new episode of tasks for ``child`` entering ``tier`` at ``start``.

    The open tasks of the previous episode are superseded by it (nothing is changed; the
    newer episode number is what supersedes them), except an open mandatory report, which
    stays due; a second one is not opened while it is.

    Parameters
    ----------
    session : Session
        The operational database (flushed, not committed).
    policy : TierPolicy
        The tier policy.
    child : ChildArea
        The child.
    tier : Tier
        The new tier.
    start : datetime
        When it took effect (UTC).
    opened_by : str
        ``run:<run_id>`` or ``review:<id>``.

    Returns
    -------
    list of Task
        The tasks opened.
    """
    latest = current_episode(session, child.child_id)
    episode = 1 if latest is None else latest[0] + 1
    plan = planned_tasks(policy, tier, start)
    if _has_open_mandatory_report(session, child.child_id):
        plan = tuple(p for p in plan if p.kind is not TaskKind.MANDATORY_REPORT)
    if not plan:
        # Only possible when the tier asks for nothing but a mandatory report that is already
        # open: the current episode's tasks stay as they are.
        logger.info("no task to open", extra={"child_id": child.child_id, "tier": tier.value})
        return []
    tasks = [
        Task(**row)
        for row in _task_rows(child, tier, episode, plan, start, opened_by, policy.version)
    ]
    session.add_all(tasks)
    session.flush()
    return tasks


@dataclass(frozen=True)
class TaskSync:
    """What :func:`sync_tasks_for_run` did."""

    children: int
    episodes_opened: int
    tasks_opened: int


def sync_tasks_for_run(
    session: Session,
    policy: TierPolicy,
    scores: pd.DataFrame,
    *,
    start: datetime | None = None,
) -> TaskSync:
    """Open task episodes for every child whose tier in a scoring run differs from its tasks'.

    Parameters
    ----------
    session : Session
        The operational database (flushed, not committed).
    policy : TierPolicy
        The tier policy (response times).
    scores : DataFrame
        One scoring run: ``child_id``, ``village_code``, ``township_code``, ``tier``,
        ``run_id`` and ``scored_at``.
    start : datetime, optional
        When the tiers took effect; the run's ``scored_at`` by default.

    Returns
    -------
    TaskSync
        Counts. Running it twice on the same run opens nothing the second time.
    """
    if scores.empty:
        return TaskSync(0, 0, 0)
    run_id = str(scores["run_id"].iloc[0])
    if start is None:
        start = pd.Timestamp(scores["scored_at"].iloc[0]).to_pydatetime()
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    start = start.astimezone(UTC)

    latest = (
        select(Task.child_id, func.max(Task.episode).label("episode"))
        .group_by(Task.child_id)
        .subquery()
    )
    current: dict[str, tuple[int, str]] = {
        child: (int(episode), tier)
        for child, episode, tier in session.execute(
            select(Task.child_id, Task.episode, Task.tier)
            .join(
                latest,
                and_(latest.c.child_id == Task.child_id, latest.c.episode == Task.episode),
            )
            .distinct()
        )
    }
    open_reports = set(
        session.scalars(
            select(Task.child_id)
            .outerjoin(TaskCompletion, TaskCompletion.task_id == Task.id)
            .where(
                Task.kind == TaskKind.MANDATORY_REPORT.value,
                TaskCompletion.task_id.is_(None),
            )
            .distinct()
        )
    )
    plans = {tier: planned_tasks(policy, tier, start) for tier in Tier}
    rows: list[dict[str, Any]] = []
    episodes = 0
    columns = ["child_id", "village_code", "township_code", "tier"]
    for child_id, village, township, tier_name in scores[columns].itertuples(index=False):
        tier = Tier(str(tier_name))
        seen = current.get(str(child_id))
        if seen is not None and seen[1] == tier.value:
            continue
        plan = plans[tier]
        if str(child_id) in open_reports:
            plan = tuple(p for p in plan if p.kind is not TaskKind.MANDATORY_REPORT)
        child = ChildArea(str(child_id), str(village), str(township))
        episode = 1 if seen is None else seen[0] + 1
        rows += _task_rows(child, tier, episode, plan, start, f"run:{run_id}", policy.version)
        episodes += 1
    if rows:
        # One executemany: a first run opens tasks for every registered child at once.
        session.execute(insert(Task), rows)
        session.flush()
    logger.info(
        "tasks opened for run",
        extra={"run_id": run_id, "episodes": episodes, "tasks": len(rows)},
    )
    return TaskSync(len(scores), episodes, len(rows))


def complete_tasks(
    session: Session,
    policy: TierPolicy,
    child: ChildArea,
    kinds: Iterable[TaskKind],
    *,
    review_id: int,
    at: datetime,
) -> list[Task]:
    """Complete the child's open tasks of ``kinds`` and open the next of each recurring one.

    Parameters
    ----------
    session : Session
        The operational database (flushed, not committed).
    policy : TierPolicy
        The tier policy (cadences).
    child : ChildArea
        The child.
    kinds : iterable of TaskKind
        What the review covered (:data:`COMPLETED_BY`).
    review_id : int
        The review that completed them.
    at : datetime
        When (UTC).

    Returns
    -------
    list of Task
        The tasks completed.
    """
    wanted = {k.value for k in kinds}
    if not wanted:
        return []
    candidates = [
        view.task
        for view in open_tasks(session, child_id=child.child_id, now=at)
        if view.task.kind in wanted
    ]
    if not candidates:
        return []
    session.add_all(
        TaskCompletion(task_id=t.id, review_id=review_id, completed_at=at) for t in candidates
    )
    follow_ups: list[Task] = []
    seen: set[str] = set()
    for task in candidates:
        if task.kind in seen:
            continue
        seen.add(task.kind)
        due = next_due(policy, Tier(task.tier), TaskKind(task.kind), at)
        if due is None:
            continue
        follow_ups.append(
            Task(
                child_id=child.child_id,
                village_code=child.village_code,
                township_code=child.township_code,
                kind=task.kind,
                tier=task.tier,
                episode=task.episode,
                opened_at=at,
                due_at=due,
                opened_by=f"review:{review_id}",
                policy_version=policy.version,
            )
        )
    session.add_all(follow_ups)
    session.flush()
    return candidates


__all__ = [
    "COMPLETED_BY",
    "KIND_LABELS",
    "RECURRING",
    "RESPONSE_FIELDS",
    "ChildArea",
    "OpenTaskIndex",
    "OverdueSummary",
    "PlannedTask",
    "TaskKind",
    "TaskStatus",
    "TaskSync",
    "TaskView",
    "add_period",
    "complete_tasks",
    "current_episode",
    "days_overdue",
    "next_due",
    "open_episode",
    "open_tasks",
    "overdue_by_child",
    "overdue_index",
    "period_of",
    "planned_tasks",
    "sync_tasks_for_run",
    "task_history",
]
