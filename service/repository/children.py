"""A child's file: registry profile, dated timeline, score history and reviews.

The profile and timeline come from the raw tables of the feature store, each record in its
newest version (a correction is a later-recorded row with the same natural key); the score
history from the score store (the newest run of each scored date); reviews from the workflow
tables. Both DuckDB files are opened read-only for the request and closed at once (see
``service.snapshot`` for why nothing is held open).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
from sqlalchemy.orm import Session

from features.rawstore import raw_table, stored_columns
from features.schema import TABLES_BY_NAME, Column, TableSpec
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

#: Tables on the timeline, with the field that names what happened; attendance weeks only
#: when a day was missed without reason.
TIMELINE_TABLES: dict[str, str] = {
    "guardianship": "caregiver_relation",
    "visits": "visitor_role",
    "enrolments": "enrol_status",
    "attendance": "unexcused_days",
    "results": "average_score",
    "school_events": "kind",
    "screenings": "positive",
    "incidents": "incident_type",
}
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
    con: duckdb.DuckDBPyConnection, spec: TableSpec, child_id: str, since: date | None
) -> list[dict[str, Any]]:
    """The child's rows of one table, each natural key in its newest version, newest first."""
    columns = [name for name, _ in stored_columns(spec)]
    keys = [c for c in (_stored(spec, k) for k in spec.key) if c]
    event = spec.event_time
    partition = ", ".join(keys) if keys else "_seq"
    where = ["child_id = $child"]
    params: dict[str, Any] = {"child": child_id}
    if since is not None:
        where.append(f"{event} >= $since")
        params["since"] = since
    if spec.name == "attendance":
        where.append("unexcused_days > 0")
    query = (
        f"SELECT {', '.join(columns)} FROM {raw_table(spec)} WHERE {' AND '.join(where)} "
        f"QUALIFY row_number() OVER (PARTITION BY {partition} "
        "ORDER BY recorded_at DESC, _seq DESC) = 1 "
        f"ORDER BY {event} DESC, recorded_at DESC"
    )
    cursor = con.execute(query, params)
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _stored(spec: TableSpec, name: str) -> str | None:
    from features.rawstore import stored_name

    return stored_name(spec.column(name))


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


def timeline(
    con: duckdb.DuckDBPyConnection, child_id: str, since: date | None, lang: Lang
) -> list[TimelineEvent]:
    """Every dated record of the child since ``since``, newest first.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The feature store, read-only.
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
        for row in _latest(con, spec, child_id, since):
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


def profile(
    con: duckdb.DuckDBPyConnection, state: ServiceState, child_id: str, today: date
) -> ProfilePublic:
    """The child's registry file in its newest version, with the current guardianship.

    Raises
    ------
    NotFoundError
        If the registry has no row for the child.
    """
    registry = _latest(con, TABLES_BY_NAME["children"], child_id, None)
    if not registry:
        raise NotFoundError(f"child {child_id} not found")
    newest = max(
        registry, key=lambda r: (r.get("registered_date") or date.min, r.get("recorded_at"))
    )
    guardianship = _latest(con, TABLES_BY_NAME["guardianship"], child_id, None)
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
    con: duckdb.DuckDBPyConnection | None, child_id: str, lang: Lang
) -> list[ScoreHistoryItem]:
    """The child's score in the newest run of every scored date, newest first."""
    if con is None:
        return []
    exists = con.execute(
        "SELECT COUNT(*) FROM duckdb_tables() WHERE table_name IN ('scores', 'scoring_runs')"
    ).fetchall()
    if int(exists[0][0]) < 2:
        return []
    table = con.sql(
        "SELECT s.as_of, s.run_id, s.scored_at, s.tier, s.tier_source, s.p_any, s.p_low, "
        "s.p_high, s.rules_fired, s.reasons, s.model_name, s.model_version, s.policy_version "
        "FROM scores s JOIN (SELECT run_id FROM scoring_runs QUALIFY row_number() OVER "
        "(PARTITION BY as_of ORDER BY scored_at DESC) = 1) r USING (run_id) "
        "WHERE s.child_id = $child ORDER BY s.as_of DESC",
        params={"child": child_id},
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


def child_file(
    state: ServiceState, session: Session, child_id: str, lang: Lang, months: int
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

    Returns
    -------
    ChildFilePublic
        Profile, run in force, timeline, score history and reviews.
    """
    today = state.snapshot.as_of or date.today()
    since = today - timedelta(days=round(months * 30.44))
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


__all__ = ["child_file", "history_item", "profile", "reviews", "score_history", "timeline"]
