"""A child's file: registry profile, dated timeline, score history and reviews.

The profile and timeline come from the raw tables of the feature store, each record in its
newest version (a correction is a later-recorded row with the same natural key); the score
history from the score store (the newest run of each scored date); reviews from the workflow
tables. The snapshot holds the first two in memory (``service.repository.records``); when a
store file changed after the snapshot was built, both DuckDB files are opened read-only for
the request and closed at once instead (see ``service.snapshot`` for why nothing is held
open), so the file always shows what the stores hold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any, TypeAlias

import duckdb
import pandas as pd
from sqlalchemy.orm import Session

from features.schema import TABLES_BY_NAME, Column, TableSpec
from service.repository.records import (
    TIMELINE_TABLES,
    ChildRecords,
    has_history,
    history_sql,
    latest_rows_sql,
)
from service.schemas.children import (
    AreaPublic,
    ChildFilePublic,
    ProfilePublic,
    ReviewEntry,
    Scalar,
    ScoreHistoryItem,
    TimelineEvent,
)
from service.schemas.common import Lang
from service.state import ServiceState
from shouhu.errors import NotFoundError

#: Where a child's records are read: the snapshot's records, or a store opened for the request.
Source: TypeAlias = "ChildRecords | duckdb.DuckDBPyConnection"
_HIDDEN = {"child_id", "household_pid", "recorded_at", "_seq", "_file_id", "_row", "_row_hash"}
_PROFILE_FIELDS = (
    "household_pid",
    "sex",
    "birth_date",
    "hukou_status",
    "left_behind_type",
    "disability",
    "serious_illness",
    "poverty_status",
    "status",
    "exit_reason",
    "village_code",
    "school_code",
    "registered_date",
    "recorded_at",
)


def _scalar(value: Any) -> Scalar:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, datetime | date):
        return value.isoformat()[:10]
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _latest(
    source: Source, spec: TableSpec, child_id: str, since: date | None
) -> list[dict[str, Any]]:
    """The child's rows of one table, each natural key in its newest version, newest first."""
    if isinstance(source, ChildRecords):
        return source.rows(spec.name, child_id, since)
    where = ["child_id = $child"]
    params: dict[str, Any] = {"child": child_id}
    if since is not None:
        where.append(f"{spec.event_time} >= $since")
        params["since"] = since
    cursor = source.execute(latest_rows_sql(spec, where), params)
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _label(column: Column, value: Any, lang: Lang) -> str:
    if value is None:
        return "—"
    for code in column.codes:
        if code.code == value:
            return code.zh if lang == "zh" else code.en
    if isinstance(value, bool):
        return ("是" if value else "否") if lang == "zh" else ("yes" if value else "no")
    return str(value)


def _title(spec: TableSpec, row: Mapping[str, Any], lang: Lang) -> str:
    field = TIMELINE_TABLES[spec.name]
    column = spec.column(field)
    head = spec.zh if lang == "zh" else spec.en
    label = column.zh if lang == "zh" else column.en
    return f"{head} · {label}: {_label(column, row.get(field), lang)}"


def timeline(source: Source, child_id: str, since: date | None, lang: Lang) -> list[TimelineEvent]:
    """Every dated record of the child since ``since``, newest first.

    Parameters
    ----------
    source : ChildRecords or duckdb.DuckDBPyConnection
        The snapshot's records, or the feature store (read-only).
    child_id : str
        The child.
    since : date or None
        Oldest event date shown (``None``: all).
    lang : {"zh", "en"}
        Language of the titles.

    Returns
    -------
    list of TimelineEvent
        Visits, guardianship changes, school records and incidents, with their fields as
        stored codes (free-text notes included; names and identity numbers never reach the
        store).
    """
    events: list[TimelineEvent] = []
    for name in TIMELINE_TABLES:
        spec = TABLES_BY_NAME[name]
        for row in _latest(source, spec, child_id, since):
            when = row.get(spec.event_time)
            if not isinstance(when, date):
                continue
            recorded = row.get("recorded_at")
            events.append(
                TimelineEvent(
                    date=when,
                    recorded_at=recorded if isinstance(recorded, date) else None,
                    kind=name,
                    title=_title(spec, row, lang),
                    details={
                        k: _scalar(v)
                        for k, v in row.items()
                        if k not in _HIDDEN and k != spec.event_time
                    },
                )
            )
    events.sort(key=lambda e: (e.date, e.recorded_at or e.date), reverse=True)
    return events


def profile(source: Source, state: ServiceState, child_id: str, today: date) -> ProfilePublic:
    """The child's registry file in its newest version, with the current guardianship.

    ``source`` is the snapshot's records or the feature store (read-only).

    Raises
    ------
    NotFoundError
        If the registry has no row for the child.
    """
    registry = _latest(source, TABLES_BY_NAME["children"], child_id, None)
    if not registry:
        raise NotFoundError(f"child {child_id} not found")
    newest = max(
        registry, key=lambda r: (r.get("registered_date") or date.min, r.get("recorded_at"))
    )
    guardianship = _latest(source, TABLES_BY_NAME["guardianship"], child_id, None)
    birth = newest.get("birth_date")
    age = None
    if isinstance(birth, date):
        age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    village = str(newest.get("village_code") or state.snapshot.villages.get(child_id) or "")
    areas = [
        AreaPublic(code=a.code, level=a.level, name=a.name)
        for a in state.snapshot.areas.path(village)
    ]
    current = guardianship[0] if guardianship else {}
    return ProfilePublic(
        child_id=child_id,
        household_pid=_text(newest.get("household_pid")),
        sex=_text(newest.get("sex")),
        age_years=age,
        hukou_status=_text(newest.get("hukou_status")),
        left_behind_type=_text(newest.get("left_behind_type")),
        disability=_flag(newest.get("disability")),
        serious_illness=_flag(newest.get("serious_illness")),
        poverty_status=_text(newest.get("poverty_status")),
        status=_text(newest.get("status")),
        exit_reason=_text(newest.get("exit_reason")),
        village_code=village,
        areas=areas,
        school_code=_text(newest.get("school_code")),
        registered_date=_day(newest.get("registered_date")),
        recorded_at=_day(newest.get("recorded_at")),
        guardianship={k: _scalar(v) for k, v in current.items() if k not in _HIDDEN},
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _day(value: Any) -> date | None:
    return value if isinstance(value, date) else None


def _float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _reasons(value: Any, lang: Lang, k: int = 5) -> list[str]:
    out: list[str] = []
    for reason in [] if value is None else list(value):
        text = reason.get(lang) or reason.get("en") or reason.get("feature")
        out.append(str(text))
        if len(out) >= k:
            break
    return out


def history_item(row: Mapping[str, Any], lang: Lang) -> ScoreHistoryItem:
    """One stored score row as the child file shows it."""
    version = row.get("model_version")
    scored = row.get("scored_at")
    if isinstance(scored, pd.Timestamp):
        scored = scored.to_pydatetime()
    return ScoreHistoryItem(
        as_of=row["as_of"],
        run_id=str(row["run_id"]),
        scored_at=scored if isinstance(scored, datetime) else None,
        tier=str(row["tier"]),
        tier_source=_text(row.get("tier_source")),
        p_any=_float(row.get("p_any")),
        p_low=_float(row.get("p_low")),
        p_high=_float(row.get("p_high")),
        rules_fired=[
            str(r) for r in ([] if row.get("rules_fired") is None else row["rules_fired"])
        ],
        reasons=_reasons(row.get("reasons"), lang),
        model_name=_text(row.get("model_name")),
        model_version=None if version is None or pd.isna(version) else int(version),
        policy_version=str(row["policy_version"]),
    )


def score_history(
    source: ChildRecords | duckdb.DuckDBPyConnection | None, child_id: str, lang: Lang
) -> list[ScoreHistoryItem]:
    """The child's score in the newest run of every scored date, newest first.

    ``source`` is the snapshot's records or the score store (``None``: nothing scored).
    """
    if source is None:
        return []
    if isinstance(source, ChildRecords):
        return [history_item(row, lang) for row in source.score_history(child_id)]
    if not has_history(source):
        return []
    table = source.sql(
        history_sql("WHERE s.child_id = $child"), params={"child": child_id}
    ).to_arrow_table()
    return [history_item(row, lang) for row in table.to_pylist()]


def reviews(session: Session, state: ServiceState, child_id: str) -> list[ReviewEntry]:
    """The child's reviews, decisions and overrides, newest first (the workflow's history)."""
    if not state.has_table("reviews"):
        return []
    from service.workflow.reviews import child_reviews

    out: list[ReviewEntry] = []
    for entry in child_reviews(session, child_id):
        review = entry.review
        details: dict[str, Scalar] = {
            "id": review.id,
            "activity": review.activity,
            "outcome": review.outcome,
            "computed_tier": review.computed_tier,
            "tier_in_force": review.tier_in_force,
            "proposed_tier": review.proposed_tier,
            "decision": review.decision,
            "decided_tier": review.decided_tier,
            "reason_code": review.reason_code,
            "reason_text": review.reason_text,
            "notes": review.notes or None,
            "answers_review_id": review.answers_review_id,
            "report_agency": review.report_agency,
            "report_reference": review.report_reference,
            "override_tier": None if entry.override is None else entry.override.tier,
        }
        summary = " · ".join(
            str(v)
            for v in (
                review.kind,
                review.activity,
                review.outcome,
                review.decision,
                review.decided_tier or review.proposed_tier,
            )
            if v
        )
        out.append(
            ReviewEntry(
                kind=review.kind,
                at=review.created_at,
                by=entry.reviewer,
                summary=summary,
                details={k: v for k, v in details.items() if v is not None},
            )
        )
    return out


def current_records(state: ServiceState) -> ChildRecords | None:
    """The snapshot's records if they still hold what the stores hold (``None`` when a store
    file changed since the snapshot was built, or it has none: read the stores)."""
    records = state.snapshot.records
    if records is None or state.stores_changed():
        return None
    return records


def child_file(
    state: ServiceState,
    session: Session,
    child_id: str,
    lang: Lang,
    months: int,
    *,
    records: ChildRecords | None = None,
) -> ChildFilePublic:
    """Everything the caller may see of one child (the caller's area was checked before).

    Parameters
    ----------
    state : ServiceState
        Stores and snapshot.
    session : Session
        The operational database (reviews).
    child_id : str
        The child.
    lang : {"zh", "en"}
        Language of titles and reasons.
    months : int
        How far back the timeline goes from the snapshot's date.
    records : ChildRecords, optional
        Read these (from :func:`current_records`); by default the snapshot's records when
        current, else the stores (DuckDB, read-only, for this request).

    Returns
    -------
    ChildFilePublic
        Profile, run in force, timeline, score history and reviews.
    """
    today = state.snapshot.as_of or date.today()
    since = today - timedelta(days=round(months * 30.44))
    if records is None:
        records = current_records(state)
    if records is not None:
        prof = profile(records, state, child_id, today)
        events = timeline(records, child_id, since, lang)
        history = score_history(records, child_id, lang)
    else:
        # A store changed since the snapshot: read what it holds now.
        with state.feature_store() as con:
            prof = profile(con, state, child_id, today)
            events = timeline(con, child_id, since, lang)
        with state.score_store() as scores_con:
            history = score_history(scores_con, child_id, lang)
    board = state.snapshot.board
    pos = board.row_of.get(child_id)
    current = (
        None
        if pos is None
        else history_item({str(k): v for k, v in board.rows.iloc[pos].items()}, lang)
    )
    return ChildFilePublic(
        child_id=child_id,
        lang=lang,
        profile=prof,
        current=current,
        timeline=events,
        scores=history,
        reviews=reviews(session, state, child_id),
    )


__all__ = [
    "child_file",
    "current_records",
    "history_item",
    "profile",
    "reviews",
    "score_history",
    "timeline",
]
