"""The watch list: the run in force for the caller's area, ranked and filtered.

Ranked by tier (T1 first), then calibrated risk (highest first), then days overdue (most
first), then child id. Days overdue come from the workflow's open tasks past their due date,
held in memory by ``ServiceState.open_tasks`` (``service.workflow.tasks.OpenTaskIndex``, the
same answer as ``overdue_by_child`` without a query over the task history per request).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy.orm import Session

from service.db.base import utcnow
from service.schemas.common import Lang
from service.schemas.watchlist import WatchItem, WatchListPage
from service.snapshot import Board
from service.state import ServiceState


@dataclass(frozen=True)
class Overdue:
    """A child's overdue open tasks: whole days past the earliest due date, and how many."""

    days: int
    tasks: int


def overdue_by_child(
    session: Session, state: ServiceState, scope: str, now: datetime | None = None
) -> dict[str, Overdue]:
    """Children of ``scope`` with open tasks past their due date (the workflow's tasks).

    Answered by the state's in-memory task index, which catches up with the committed rows
    first; an empty mapping while the workflow tables do not exist. ``session`` is kept for
    callers that pass one (the index reads through its own connection).
    """
    index = state.open_tasks()
    if index is None:
        return {}
    found = index.overdue(now=now or utcnow(), area_code=scope)
    return {
        child: Overdue(max(0, int(summary.max_days_overdue)), summary.overdue_tasks)
        for child, summary in found.items()
    }


@dataclass(frozen=True)
class WatchFilters:
    """Filters of a watch-list request (already narrowed to the caller's area)."""

    scope: str
    tiers: frozenset[str] | None = None
    overdue: bool | None = None
    domain: str | None = None
    limit: int = 50
    offset: int = 0


def _domains(bits: int, domains: Sequence[str]) -> list[str]:
    return [name for i, name in enumerate(domains) if bits & (1 << i)]


def watch_list(
    state: ServiceState, filters: WatchFilters, overdue: dict[str, Overdue], lang: Lang
) -> tuple[WatchListPage, list[tuple[str, str]]]:
    """One page of the watch list.

    Parameters
    ----------
    state : ServiceState
        The snapshot's board is read.
    filters : WatchFilters
        Area scope, tiers, overdue, domain, paging.
    overdue : dict of str to Overdue
        From :func:`overdue_by_child`.
    lang : {"zh", "en"}
        Language of the reasons.

    Returns
    -------
    (WatchListPage, list of (child_id, village_code))
        The page, and the children it shows (for the audit log).
    """
    snapshot = state.snapshot
    board: Board = snapshot.board
    domains = list(state.policy.domains)
    positions = board.by_area.get(filters.scope, np.zeros(0, dtype=np.int64))
    keep = np.ones(len(positions), dtype=bool)
    ids = board.ids
    if overdue:
        late = np.array([overdue[c].days if c in overdue else 0 for c in ids[positions]], dtype=int)
    else:
        late = np.zeros(len(positions), dtype=int)
    if filters.domain is not None:
        if filters.domain in domains:
            bit = 1 << domains.index(filters.domain)
            keep &= (board.domain_bits[positions] & bit) != 0
        else:
            keep &= False
    if filters.overdue is not None:
        keep &= (late > 0) if filters.overdue else (late == 0)
    levels = board.tier_level[positions]
    counts = {f"T{t}": int(np.sum(keep & (levels == t))) for t in (1, 2, 3, 4)}
    if filters.tiers is not None:
        wanted = np.array([int(t[1]) for t in sorted(filters.tiers)], dtype=int)
        keep &= np.isin(levels, wanted)
    chosen, late = positions[keep], late[keep]
    if late.any():
        # Overdue days are the third key: re-sort only when some child is overdue.
        risk = np.nan_to_num(-board.p_any[chosen], nan=np.inf)
        order = np.lexsort((ids[chosen], -late, risk, board.tier_level[chosen]))
        chosen, late = chosen[order], late[order]
    page = slice(filters.offset, filters.offset + filters.limit)
    items: list[WatchItem] = []
    shown: list[tuple[str, str]] = []
    records = board.records
    for rank, (pos, days) in enumerate(
        zip(chosen[page].tolist(), late[page].tolist(), strict=True), start=filters.offset + 1
    ):
        rec = records[pos]
        items.append(
            WatchItem(
                rank=rank,
                child_id=rec.child_id,
                tier=rec.tier,
                p_any=rec.p_any,
                p_low=rec.p_low,
                p_high=rec.p_high,
                borderline=rec.borderline,
                hard_rule=rec.hard_rule,
                rules_fired=list(rec.rules_fired),
                top_reasons=list(rec.reasons_zh if lang == "zh" else rec.reasons_en),
                domains=_domains(int(board.domain_bits[pos]), domains),
                village_code=rec.village_code,
                village_name=snapshot.areas.name(rec.village_code),
                township_code=rec.township_code,
                days_overdue=int(days),
                overdue_tasks=overdue[rec.child_id].tasks if rec.child_id in overdue else 0,
            )
        )
        shown.append((rec.child_id, rec.village_code))
    run = snapshot.run
    return (
        WatchListPage(
            as_of=None if run is None else run.as_of,
            run_id=None if run is None else run.run_id,
            scored_at=None if run is None else run.scored_at,
            model_name=None if run is None else run.model_name,
            model_version=None if run is None else run.model_version,
            policy_version=None if run is None else run.policy_version,
            area_code=filters.scope,
            total=len(chosen),
            offset=filters.offset,
            limit=filters.limit,
            lang=lang,
            counts=counts,
            items=items,
        ),
        shown,
    )


__all__ = ["Overdue", "WatchFilters", "overdue_by_child", "watch_list"]
