"""Pages to act: record a visit (and propose a tier), log a mandatory report, a supervisor's
decision (confirm, override, answer a proposal), closing a hard-rule T1, the supervisor's
queue and the alerts; and the supervisor's two pages of oversight: override rates by reviewer,
tier and group per week (an unusually high rate highlighted), and the audit log of the area.

Forms are validated by the API's own request schemas (``service.schemas.workflow``) and
written by the API's own handlers (``service.routers.reviews``/``overrides``), so a form can
record nothing the API would refuse. A refusal (a tier below a floor, a missing reason) shows
the form again with the reason; nothing is written. Every form carries the CSRF token; htmx
submits the review and decision forms in place and follows the ``HX-Redirect`` to the child's
file when the record is made.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from models.policy import Tier
from service.deps import (
    FILE_READERS,
    CsrfDep,
    PageVisibleChild,
    Role,
    SessionDep,
    require_page_role,
)
from service.pages.common import Page, PageDep, is_htmx, rule_names
from service.pages.rendering import CHINA
from service.routers.alerts import list_alerts
from service.routers.audit import list_audit_entries
from service.routers.overrides import confirm_tier, create_override, override_stats
from service.routers.reviews import (
    create_fall_confirmation,
    create_mandatory_report,
    create_review,
    list_pending,
)
from service.schemas.workflow import (
    ConfirmationCreate,
    FallConfirmationCreate,
    MandatoryReportCreate,
    OverrideCreate,
    RatePublic,
    ReviewCreate,
)
from service.workflow.codes import Activity, ReasonCode, VisitOutcome, label
from service.workflow.context import check_tier, context_for, policy_role
from service.workflow.reviews import pending_proposals
from service.workflow.stats import (
    FLAG_MIN_DECISIONS,
    FLAG_RATE,
    FLAG_RATIO,
    GroupBy,
    WeekTotal,
    flag_rates,
    week_totals,
)
from shouhu.errors import NotFoundError, ReviewRefusedError

router = APIRouter(include_in_schema=False)

FileReaderPage = Depends(require_page_role(*FILE_READERS))
SupervisorPage = Depends(require_page_role(Role.SUPERVISOR))
#: The roles the API lets read override rates (``GET /api/v1/overrides/stats``) ...
RatesReaderPage = Depends(require_page_role(Role.SUPERVISOR, Role.ANALYST))
#: ... and the audit log (``GET /api/v1/audit``).
AuditReaderPage = Depends(require_page_role(Role.SUPERVISOR, Role.ADMIN))

#: Form fields are short: the same bounds as the API's free text.
Text = Annotated[str, Form(max_length=4000)]
Code = Annotated[str, Form(max_length=40)]
#: The fields a proposal or an override must fill in together with the tier.
REASON_FIELDS = ("reason_code", "reason_text")
#: An area code of the API's form (``AreaCode``), or empty: the form's "all of my area".
AREA_OR_EMPTY = r"^([0-9]{4}([0-9]{2}([0-9]{3}([0-9]{3})?)?)?)?$"
#: Periods the override-rate page offers (weeks back from now; the API allows 1-104).
RATE_WEEKS = (4, 12, 26, 52)
#: The groups of the girl and disability splits (``service.workflow.stats``), as labelled.
RATE_GROUP_VALUES = ("girl", "boy", "yes", "no", "unknown")
#: Audit entries per page: a phone scrolls through them, a desk sees a screenful.
AUDIT_PAGE_SIZE = 50


def _options(codes: type[Any], lang: str) -> list[tuple[str, str]]:
    return [(code.value, label(code, lang)) for code in codes]


def _parse(schema: type[BaseModel], data: Mapping[str, Any]) -> Any:
    """Validate form values with the API's schema (JSON mode: codes arrive as strings)."""
    # An empty field is an absent field: the schema's default applies (or it is required).
    given = {k: v for k, v in data.items() if v is not None and v != ""}
    return schema.model_validate_json(json.dumps(given))


def _field_errors(error: ValidationError, values: Mapping[str, str]) -> list[str]:
    """The form fields an error is about, for the messages beside the form.

    A model-level error (no field named: "a proposal needs a reason") is about the reason
    fields the person left empty.
    """
    fields: list[str] = []
    for item in error.errors():
        loc = [str(part) for part in item.get("loc", ()) if not isinstance(part, int)]
        empty = [f for f in REASON_FIELDS if f in values and not values[f]]
        names = loc[:1] or empty or ["form"]
        fields.extend(name for name in names if name not in fields)
    return fields


def _done(request_page: Page, child_id: str, what: str) -> Response:
    target = f"/children/{child_id}?done={what}"
    if is_htmx(request_page.request):
        # htmx follows this header with a full navigation to the child's file.
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _allowed_tiers(page: Page, child_id: str) -> dict[str, str]:
    """Per tier, ``""`` when the principal may set it, else why not (floor, hard rule)."""
    context = context_for(page.state.snapshot, child_id)
    role = policy_role(page.principal)
    out: dict[str, str] = {}
    for tier in Tier:
        check = check_tier(page.state.policy, context, tier, role)
        out[tier.value] = "" if check.allowed else check.explain(page.state.policy, page.lang)
    return out


# --------------------------------------------------------------------------------------------
# A caseworker's review
# --------------------------------------------------------------------------------------------


def _review_page(
    page: Page,
    child_id: str,
    *,
    values: Mapping[str, str] | None = None,
    errors: list[str] | None = None,
    refused: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    state, lang = page.state, page.lang
    context = context_for(state.snapshot, child_id)
    template = "partials/review_form.html" if is_htmx(page.request) else "review.html"
    return page.render(
        template,
        {
            "child_id": child_id,
            "context": context,
            "rules": rule_names(state.policy, lang),
            "activities": _options(Activity, lang),
            "outcomes": _options(VisitOutcome, lang),
            "reasons": _options(ReasonCode, lang),
            "allowed": _allowed_tiers(page, child_id),
            "values": dict(values or {}),
            "errors": errors or [],
            "refused": refused,
            "now_local": datetime.now(CHINA).strftime("%Y-%m-%dT%H:%M"),
        },
        section="watchlist",
        status_code=status_code,
    )


@router.get("/children/{child_id}/review", name="page_review_form", dependencies=[FileReaderPage])
def page_review_form(page: PageDep, child: PageVisibleChild) -> HTMLResponse:
    """The visit form: what was done and found, and optionally a proposed tier with a reason."""
    return _review_page(page, child.child_id)


@router.post(
    "/children/{child_id}/review",
    name="page_review_submit",
    dependencies=[FileReaderPage, CsrfDep],
)
def page_review_submit(
    page: PageDep,
    child: PageVisibleChild,
    session: SessionDep,
    activity: Code = "",
    outcome: Code = "",
    notes: Text = "",
    proposed_tier: Code = "",
    reason_code: Code = "",
    reason_text: Text = "",
) -> Response:
    """Record the visit through the API's handler; show the form again if it is refused."""
    values = {
        "activity": activity,
        "outcome": outcome,
        "notes": notes,
        "proposed_tier": proposed_tier,
        "reason_code": reason_code,
        "reason_text": reason_text,
    }
    try:
        body = _parse(ReviewCreate, values)
    except ValidationError as exc:
        return _review_page(
            page, child.child_id, values=values, errors=_field_errors(exc, values), status_code=422
        )
    try:
        create_review(body, page.principal, child, page.state, session)
    except ReviewRefusedError as exc:
        session.rollback()
        return _review_page(
            page, child.child_id, values=values, refused=exc.message, status_code=409
        )
    return _done(page, child.child_id, "review")


@router.post(
    "/children/{child_id}/report",
    name="page_report_submit",
    dependencies=[FileReaderPage, CsrfDep],
)
def page_report_submit(
    page: PageDep,
    child: PageVisibleChild,
    session: SessionDep,
    agency: Annotated[str, Form(max_length=128)] = "",
    reference: Annotated[str, Form(max_length=64)] = "",
    reported_at: Annotated[str, Form(max_length=32)] = "",
    notes: Text = "",
) -> Response:
    """Log a mandatory report to the police (agency, receipt number, when; China time)."""
    values = {"agency": agency, "reference": reference, "reported_at": reported_at, "notes": notes}
    when: str | None = None
    if reported_at:
        try:
            when = datetime.fromisoformat(reported_at).replace(tzinfo=CHINA).isoformat()
        except ValueError:
            when = None
    try:
        body = _parse(MandatoryReportCreate, {**values, "reported_at": when or ""})
    except ValidationError as exc:
        return _review_page(
            page,
            child.child_id,
            values={f"report_{k}": v for k, v in values.items()},
            errors=[f if f == "form" else f"report_{f}" for f in _field_errors(exc, values)],
            status_code=422,
        )
    try:
        create_mandatory_report(body, page.principal, child, page.state, session)
    except ReviewRefusedError as exc:
        session.rollback()
        return _review_page(page, child.child_id, refused=exc.message, status_code=409)
    return _done(page, child.child_id, "report")


# --------------------------------------------------------------------------------------------
# A supervisor's decision
# --------------------------------------------------------------------------------------------


def _decision_page(
    page: Page,
    child_id: str,
    session: Any,
    *,
    proposal_id: int | None = None,
    values: Mapping[str, str] | None = None,
    errors: list[str] | None = None,
    refused: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    state, lang = page.state, page.lang
    context = context_for(state.snapshot, child_id)
    proposals = [
        entry
        for entry in pending_proposals(session, area_code=context.village_code)
        if entry.review.child_id == child_id
    ]
    template = "partials/decision_form.html" if is_htmx(page.request) else "decision.html"
    return page.render(
        template,
        {
            "child_id": child_id,
            "context": context,
            "rules": rule_names(state.policy, lang),
            "reasons": _options(ReasonCode, lang),
            "allowed": _allowed_tiers(page, child_id),
            "proposals": proposals,
            "proposal_id": proposal_id,
            "values": dict(values or {}),
            "errors": errors or [],
            "refused": refused,
        },
        section="queue",
        status_code=status_code,
    )


@router.get("/children/{child_id}/decide", name="page_decision_form", dependencies=[SupervisorPage])
def page_decision_form(
    page: PageDep,
    child: PageVisibleChild,
    session: SessionDep,
    proposal: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    """Confirm the engine's tier, override it with a reason, or answer a proposal."""
    return _decision_page(page, child.child_id, session, proposal_id=proposal)


@router.post(
    "/children/{child_id}/decide",
    name="page_decision_submit",
    dependencies=[SupervisorPage, CsrfDep],
)
def page_decision_submit(
    page: PageDep,
    child: PageVisibleChild,
    session: SessionDep,
    action: Annotated[str, Form(pattern="^(confirm|override|accept|decline)$")],
    tier: Code = "",
    reason_code: Code = "",
    reason_text: Text = "",
    notes: Text = "",
    proposal_id: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """Record the decision through the API's handlers (override, or confirm/accept/decline)."""
    values = {
        "tier": tier,
        "reason_code": reason_code,
        "reason_text": reason_text,
        "notes": notes,
    }
    proposal = int(proposal_id) if proposal_id.isdigit() else None
    body: Any
    try:
        if action == "override":
            body = _parse(OverrideCreate, {**values, "proposal_id": proposal})
        else:
            body = _parse(
                ConfirmationCreate,
                {
                    "proposal_id": proposal,
                    "accept_proposal": action == "accept",
                    "notes": notes,
                },
            )
    except ValidationError as exc:
        return _decision_page(
            page,
            child.child_id,
            session,
            proposal_id=proposal,
            values=values,
            errors=_field_errors(exc, values),
            status_code=422,
        )
    try:
        if action == "override":
            create_override(body, page.principal, child, page.state, session)
        else:
            confirm_tier(body, page.principal, child, page.state, session)
    except (ReviewRefusedError, NotFoundError) as exc:
        session.rollback()
        return _decision_page(
            page,
            child.child_id,
            session,
            proposal_id=proposal,
            values=values,
            refused=exc.message,
            status_code=409,
        )
    return _done(page, child.child_id, "decision")


@router.post(
    "/children/{child_id}/close",
    name="page_closure_submit",
    dependencies=[FileReaderPage, CsrfDep],
)
def page_closure_submit(
    page: PageDep, child: PageVisibleChild, session: SessionDep, notes: Text = ""
) -> Response:
    """Confirm a fall the engine holds (for a hard-rule T1: a supervisor closes the case)."""
    body = _parse(FallConfirmationCreate, {"notes": notes})
    # A refusal (nothing awaits closing; a caseworker closing a hard-rule T1) is an error page.
    create_fall_confirmation(body, page.principal, child, page.state, session)
    return _done(page, child.child_id, "closure")


# --------------------------------------------------------------------------------------------
# Queue and alerts
# --------------------------------------------------------------------------------------------


@router.get("/queue", name="page_queue", dependencies=[SupervisorPage])
def page_queue(page: PageDep, session: SessionDep) -> HTMLResponse:
    """Proposals waiting for a decision and hard-rule T1s waiting to be closed."""
    pending = list_pending(page.request, page.principal, page.state, session, area=None, limit=200)
    return page.render(
        "queue.html",
        {
            "pending": pending,
            "rules": rule_names(page.state.policy, page.lang),
        },
        section="queue",
    )


# --------------------------------------------------------------------------------------------
# Oversight: override rates and the audit log
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateCellView:
    """One group's rate in a week, and whether it is flagged for a conversation."""

    row: RatePublic
    flagged: bool


@dataclass(frozen=True)
class RateWeekView:
    """One week of the override-rate page: its groups, newest week first, and its total."""

    total: WeekTotal
    cells: list[RateCellView]

    @property
    def flagged(self) -> bool:
        """Any group of the week is flagged."""
        return any(cell.flagged for cell in self.cells)


def rate_weeks(rows: list[RatePublic]) -> list[RateWeekView]:
    """The API's rate rows grouped by week, newest week first, each group flagged or not.

    Parameters
    ----------
    rows : list of RatePublic
        ``OverrideStats.rows`` (oldest week first, groups in order).

    Returns
    -------
    list of RateWeekView
    """
    flags = flag_rates(rows)
    totals = week_totals(rows)
    cells: dict[str, list[RateCellView]] = {}
    for row, flagged in zip(rows, flags, strict=True):
        cells.setdefault(row.week, []).append(RateCellView(row, flagged))
    return [RateWeekView(totals[week], cells[week]) for week in reversed(list(totals))]


@router.get("/override-rates", name="page_override_rates", dependencies=[RatesReaderPage])
def page_override_rates(
    page: PageDep,
    session: SessionDep,
    by: Annotated[GroupBy, Query()] = GroupBy.REVIEWER,
    weeks: Annotated[int, Query(ge=1, le=104)] = 12,
    area: Annotated[str, Query(pattern=AREA_OR_EMPTY)] = "",
) -> HTMLResponse:
    """Override rates (overrides / decisions) per week in the caller's area, split by reviewer,
    tier or group, through the API's own handler (the same numbers as
    ``GET /api/v1/overrides/stats``); a high rate is highlighted."""
    stats = override_stats(page.principal, session, by=by, weeks=weeks, area=area or None)
    areas = page.state.snapshot.areas
    townships = {r.group for r in stats.rows} if by is GroupBy.TOWNSHIP else set()
    return page.render(
        "override_rates.html",
        {
            "stats": stats,
            "splits": [g.value for g in GroupBy],
            "split_labels": {g.value: page.text(f"rates.by_{g.value}") for g in GroupBy},
            "group_labels": {v: page.text(f"rates.group_{v}") for v in RATE_GROUP_VALUES},
            "weeks": weeks,
            "week_choices": sorted({*RATE_WEEKS, weeks}),
            "chosen_area": area or "",
            "area_options": areas.children_of(page.principal.area_code),
            "weeks_shown": rate_weeks(stats.rows),
            "township_names": {code: areas.name(code) for code in townships},
            "flag_min": FLAG_MIN_DECISIONS,
            "flag_rate": f"{FLAG_RATE:.0%}",
            "flag_ratio": f"{FLAG_RATIO:g}",
            "show_queue_link": page.principal.role is Role.SUPERVISOR,
        },
        section="rates",
    )


@router.get("/audit", name="page_audit", dependencies=[AuditReaderPage])
def page_audit(
    page: PageDep,
    session: SessionDep,
    child_id: Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9_.:-]*$")] = "",
    username: Annotated[str, Query(max_length=64)] = "",
    before: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    """The audit log of the caller's area, newest first, a page at a time, through the API's
    own handler (``GET /api/v1/audit``); filters by child and by user. Children appear by
    their pseudonymous id only: the log holds no name or identity number."""
    chosen_child, chosen_user = child_id.strip(), username.strip()
    listing = list_audit_entries(
        page.principal,
        session,
        area=None,
        child_id=chosen_child or None,
        username=chosen_user or None,
        before_id=before,
        limit=AUDIT_PAGE_SIZE,
    )
    filter_query = [
        (key, value)
        for key, value in (("child_id", chosen_child), ("username", chosen_user))
        if value
    ]
    areas = page.state.snapshot.areas
    return page.render(
        "audit.html",
        {
            "listing": listing,
            "filters": {"child_id": chosen_child, "username": chosen_user},
            "filter_query": filter_query,
            "before": before,
            "area_names": {
                e.area_code: areas.name(e.area_code) for e in listing.items if e.area_code
            },
        },
        section="audit",
    )


@router.get("/alerts", name="page_alerts", dependencies=[FileReaderPage])
def page_alerts(
    page: PageDep,
    session: SessionDep,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    """Early warnings of the caller's area, newest first (a tier rose or a hard rule fired)."""
    feed = list_alerts(
        page.request,
        page.principal,
        session,
        area=None,
        after_id=None,
        before_id=before,
        limit=50,
    )
    return page.render(
        "alerts.html",
        {
            "feed": feed,
            "older": feed.alerts[-1].id if len(feed.alerts) == 50 else None,
            "village_names": {
                a.village_code: page.state.snapshot.areas.name(a.village_code) for a in feed.alerts
            },
        },
        section="alerts",
    )


__all__ = ["router"]
