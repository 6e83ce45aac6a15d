"""Pages to read: sign-in, the watch list, a child's file with its explanation, the model and
policy, the monitoring reports, and the one page to act on a report: a supervisor's approval
of a re-evaluation's challenger (``/promotion/<quarter>``).

Each handler checks the role with the API's guard (``require_page_role``), resolves a child
with :data:`~service.deps.PageVisibleChild` (404 outside the caller's area, one audit entry
either way) and then calls the API's own handler or repository function, so the page shows
what the JSON API answers and is audited alike.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from models.promotion import (
    APPROVAL_EVENT,
    approvals,
    approve_promotion,
    read_reevaluation,
    reevaluations,
    review_approval,
)
from service import audit
from service.areas import area_level
from service.deps import (
    FILE_READERS,
    SCORE_READERS,
    SIGN_IN_PATH,
    CsrfDep,
    OptionalPagePrincipalDep,
    PageVisibleChild,
    Principal,
    Role,
    SessionDep,
    StateDep,
    access_of,
    page_csrf_token,
    require_page_role,
    sign_in,
    sign_out,
)
from service.i18n import as_lang
from service.pages.common import Page, PageDep, is_htmx, rule_names
from service.pages.rendering import LANG_COOKIE, page_lang, render, safe_next
from service.repository.children import child_file
from service.repository.explanations import explanation, waterfall_png
from service.repository.model import model_public, policy_public
from service.routers.tasks import list_child_tasks
from service.routers.watchlist import get_watchlist
from service.schemas.common import TierCode
from service.workflow.context import context_for
from service.workflow.reviews import tier_in_force
from shouhu.errors import (
    NotFoundError,
    PermissionDeniedError,
    PromotionRefusedError,
    RegistryError,
)

router = APIRouter(include_in_schema=False)

ScoreReaderPage = Depends(require_page_role(*SCORE_READERS))
FileReaderPage = Depends(require_page_role(*FILE_READERS))
#: Who reads a re-evaluation's approval page (no child data on it); only some may approve.
PromotionReaderPage = Depends(require_page_role(Role.SUPERVISOR, Role.ANALYST, Role.ADMIN))
SupervisorPage = Depends(require_page_role(Role.SUPERVISOR))

#: Rows per watch-list page: a phone screen scrolls through about ten, a desk sees more.
PAGE_SIZE = 25
#: What a form just recorded, shown as a notice on the child's file (``?done=review``).
DONE_NOTICES = ("review", "decision", "closure", "report")
#: Files of the monitoring folder listed on the reports page.
REPORT_SUFFIXES = (".html", ".json", ".md", ".csv", ".png")
#: Folder depths listed: drift reports one level down, re-evaluations two
#: (``reevaluation/<quarter>/reevaluation.html``).
REPORT_GLOBS = ("*", "*/*", "*/*/*")
#: One model tiers every child of the data home's county: only a supervisor whose area is a
#: county or the city above it approves a new one (a township supervisor sees part of it).
APPROVER_LEVELS = ("city", "county")
QUARTER_PATTERN = r"^[0-9]{4}Q[1-4]$"


# --------------------------------------------------------------------------------------------
# Signing in and out, language
# --------------------------------------------------------------------------------------------


def _home_for(role: Role) -> str:
    # Administrators manage accounts and read no child data: their first page is the model.
    return "/model" if role is Role.ADMIN else "/watchlist"


@router.get("/", name="page_home")
def page_home(principal: OptionalPagePrincipalDep) -> RedirectResponse:
    """Signed in: the role's first page; otherwise the sign-in page."""
    if principal is None:
        return RedirectResponse(SIGN_IN_PATH, status_code=303)
    return RedirectResponse(_home_for(principal.role), status_code=303)


def _sign_in_page(
    request: Request,
    state: StateDep,
    *,
    next_path: str,
    username: str = "",
    failed: bool = False,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "signin.html",
        {"next": next_path, "username": username, "failed": failed},
        lang=page_lang(request, None, state.settings.service.default_lang),
        csrf=page_csrf_token(request),
        status_code=status_code,
    )


@router.get(SIGN_IN_PATH, name="page_sign_in", response_model=None)
def page_sign_in(
    request: Request,
    state: StateDep,
    principal: OptionalPagePrincipalDep,
    next_path: Annotated[str | None, Query(alias="next", max_length=512)] = None,
) -> Response:
    """The sign-in form (a signed-in visitor goes straight on)."""
    target = safe_next(next_path, "")
    if principal is not None:
        return RedirectResponse(target or _home_for(principal.role), status_code=303)
    return _sign_in_page(request, state, next_path=target)


@router.post(SIGN_IN_PATH, name="page_sign_in_submit", dependencies=[CsrfDep])
def page_sign_in_submit(
    request: Request,
    state: StateDep,
    session: SessionDep,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    next_path: Annotated[str, Form(alias="next", max_length=512)] = "",
) -> Response:
    """Check the password and start a session; one message for every failure (no hint
    whether the user name exists)."""
    from service.auth.sessions import authenticate
    from service.deps import Principal

    user = authenticate(session, username, password) if username and password else None
    if user is None:
        return _sign_in_page(
            request,
            state,
            next_path=safe_next(next_path, ""),
            username=username[:64],
            failed=True,
            status_code=401,
        )
    target = safe_next(next_path, "") or _home_for(Principal.of(user).role)
    response = RedirectResponse(target, status_code=303)
    sign_in(response, request, state, session, user)
    return response


@router.post("/sign-out", name="page_sign_out", dependencies=[CsrfDep])
def page_sign_out(request: Request, state: StateDep, session: SessionDep) -> RedirectResponse:
    """End the session and go back to the sign-in page."""
    response = RedirectResponse(SIGN_IN_PATH, status_code=303)
    sign_out(response, request, state, session)
    return response


@router.get("/lang/{code}", name="page_language")
def page_language(
    request: Request,
    state: StateDep,
    code: Annotated[str, Path(max_length=5)],
    next_path: Annotated[str | None, Query(alias="next", max_length=512)] = None,
) -> RedirectResponse:
    """Switch the page language (a cookie; the user's stored preference is unchanged)."""
    lang = as_lang(code, as_lang(state.settings.service.default_lang))
    response = RedirectResponse(safe_next(next_path, "/"), status_code=303)
    response.set_cookie(
        LANG_COOKIE,
        lang,
        max_age=365 * 24 * 3600,
        samesite="lax",
        secure=state.settings.service.secure_cookies,
        path="/",
    )
    return response


# --------------------------------------------------------------------------------------------
# Watch list
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AreaOption:
    """An area the watch list can be narrowed to, indented by its depth below the user's."""

    code: str
    name: str
    depth: int


def _area_options(page_state: Any, own: str) -> list[AreaOption]:
    areas = page_state.snapshot.areas
    options: list[AreaOption] = []
    for child in areas.children_of(own):
        options.append(AreaOption(child.code, child.name, 1))
        options.extend(AreaOption(g.code, g.name, 2) for g in areas.children_of(child.code))
    return options


def _overdue_value(value: str | None) -> bool | None:
    return {"yes": True, "no": False}.get(value or "")


@router.get("/watchlist", name="page_watchlist", dependencies=[ScoreReaderPage])
def page_watchlist(
    page: PageDep,
    session: SessionDep,
    area: Annotated[str | None, Query(max_length=12, pattern=r"^[0-9]*$")] = None,
    tier: Annotated[list[str] | None, Query(max_length=4)] = None,
    overdue: Annotated[str | None, Query(pattern=r"^(|yes|no)$")] = None,
    domain: Annotated[str | None, Query(max_length=32)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    """The ranked watch list of the caller's area, with filters; htmx asks for the rows only."""
    state = page.state
    tiers = [t for t in (tier or []) if t in page.tiers]
    chosen_area = area or None
    chosen_domain = domain if domain in state.policy.domains else None
    listing = get_watchlist(
        page.request,
        page.principal,
        state,
        session,
        area=chosen_area,
        tier=cast(list[TierCode], tiers) or None,  # checked against the policy's tiers
        overdue=_overdue_value(overdue),
        domain=chosen_domain,
        limit=PAGE_SIZE,
        offset=offset,
        lang=page.lang,
    )
    query: list[tuple[str, str]] = []
    if chosen_area:
        query.append(("area", chosen_area))
    query.extend(("tier", t) for t in tiers)
    if overdue:
        query.append(("overdue", overdue))
    if chosen_domain:
        query.append(("domain", chosen_domain))
    context = {
        "listing": listing,
        "filters": {
            "area": chosen_area or "",
            "tiers": tiers,
            "overdue": overdue or "",
            "domain": chosen_domain or "",
        },
        "filter_query": query,
        "area_options": _area_options(state, page.principal.area_code),
        "page_size": PAGE_SIZE,
    }
    if is_htmx(page.request):
        return page.render("partials/watchlist_rows.html", context)
    return page.render("watchlist.html", context, section="watchlist")


# --------------------------------------------------------------------------------------------
# A child's file
# --------------------------------------------------------------------------------------------


@router.get("/children/{child_id}", name="page_child", dependencies=[ScoreReaderPage])
def page_child(
    page: PageDep,
    child: PageVisibleChild,
    session: SessionDep,
    done: Annotated[str | None, Query(max_length=16)] = None,
) -> HTMLResponse:
    """A child's file: tier and risk now, the explanation (rules, reasons by domain with the
    records behind them, the waterfall chart), open tasks, reviews, score history, timeline.

    Analysts read scores and explanations but not the casework file (``FILE_READERS``).
    """
    state, lang = page.state, page.lang
    reading_file = page.principal.role in FILE_READERS
    explained = None
    if child.child_id in state.snapshot.row_of:
        explained = explanation(
            state, child.child_id, lang, top=5, per_domain=3, with_evidence=True
        )
    record = child_file(state, session, child.child_id, lang, 24) if reading_file else None
    tasks = None
    in_force = None
    if reading_file:
        tasks = list_child_tasks(page.principal, child, session, lang=lang).tasks
        if explained is not None:
            # A supervisor's decision since the run is in force until the next run.
            in_force = tier_in_force(session, context_for(state.snapshot, child.child_id)).value
    notices = []
    if done in DONE_NOTICES:
        notices.append({"kind": "ok", "text": page.text(f"child.done_{done}")})
    return page.render(
        "child.html",
        {
            "child": child,
            "explained": explained,
            "record": record,
            "tasks": tasks,
            "in_force": in_force,
            "rules": rule_names(state.policy, lang),
            "can_review": page.principal.role in FILE_READERS,
            "can_decide": page.principal.role is Role.SUPERVISOR,
            "village_name": state.snapshot.areas.name(child.village_code),
        },
        section="watchlist",
        notices=notices,
    )


@router.get(
    "/children/{child_id}/waterfall.png",
    name="page_child_waterfall",
    dependencies=[ScoreReaderPage],
)
def page_child_waterfall(page: PageDep, child: PageVisibleChild) -> Response:
    """The child's waterfall chart (the same PNG as ``/api/v1/children/{id}/explanation.png``)."""
    if child.child_id not in page.state.snapshot.row_of:
        raise NotFoundError(f"child {child.child_id} has no score yet")
    png, used = waterfall_png(page.state, child.child_id, page.lang)
    return Response(
        png,
        media_type="image/png",
        headers={"Content-Language": used, "Cache-Control": "no-store"},
    )


# --------------------------------------------------------------------------------------------
# Model and policy, reports
# --------------------------------------------------------------------------------------------


@router.get("/model", name="page_model")
def page_model(page: PageDep) -> HTMLResponse:
    """The champion, its test metrics and model card, and the tier policy in force."""
    state = page.state
    return page.render(
        "model.html",
        {
            "model": model_public(state),
            "policy": policy_public(state.policy, page.lang),
            "has_card": state.model_card() is not None,
            "run": state.snapshot.run,
        },
        section="model",
    )


@router.get("/model/card", name="page_model_card")
def page_model_card(page: PageDep) -> HTMLResponse:
    """The champion's model card as the registry holds it (a document of its own)."""
    card = page.state.model_card()
    if card is None:
        raise NotFoundError("the model card cannot be read from the registry now")
    return HTMLResponse(
        str(card["html"]),
        headers={
            "Cache-Control": "no-store",
            # The card is shown in a frame of the model page; it runs no script.
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:; frame-ancestors 'self'",
        },
    )


@dataclass(frozen=True)
class ReportFile:
    """A file of the monitoring folder, as listed on the reports page."""

    path: str
    kind: str
    size: int
    modified: datetime


def list_reports(folder: FilePath) -> list[ReportFile]:
    """Files of ``folder`` (and two levels of sub-folders) worth opening, newest first.

    Parameters
    ----------
    folder : Path
        ``$SHOUHU_HOME/monitoring``; a missing folder lists nothing.

    Returns
    -------
    list of ReportFile
        Relative paths with ``/``, their type (``html``, ``json``…), size and time.
    """
    if not folder.is_dir():
        return []
    found: list[ReportFile] = []
    for path in [p for pattern in REPORT_GLOBS for p in folder.glob(pattern)]:
        if path.is_file() and path.suffix.lower() in REPORT_SUFFIXES and not path.is_symlink():
            stat = path.stat()
            found.append(
                ReportFile(
                    path=path.relative_to(folder).as_posix(),
                    kind=path.suffix.lower().lstrip("."),
                    size=stat.st_size,
                    modified=datetime.fromtimestamp(stat.st_mtime, UTC),
                )
            )
    found.sort(key=lambda r: (r.modified, r.path), reverse=True)
    return found


@router.get("/reports", name="page_reports")
def page_reports(page: PageDep) -> HTMLResponse:
    """Drift, data-quality and re-evaluation reports that exist under the monitoring folder,
    with each quarter's re-evaluation and a way to its approval page."""
    folder = page.state.settings.monitoring_dir
    reports = list_reports(folder)
    latest_drift = next(
        (r for r in reports if r.kind == "html" and "drift" in r.path.lower()), None
    )
    return page.render(
        "reports.html",
        {
            "reports": reports,
            "latest_drift": latest_drift,
            "reevaluations": reevaluations(folder),
            "can_review": page.principal.role in {Role.SUPERVISOR, Role.ANALYST, Role.ADMIN},
        },
        section="reports",
    )


# --------------------------------------------------------------------------------------------
# Approving a re-evaluation's challenger
# --------------------------------------------------------------------------------------------


def may_approve(principal: Principal) -> bool:
    """Whether ``principal`` may approve a promotion: a supervisor of a county or above."""
    return principal.role is Role.SUPERVISOR and area_level(principal.area_code) in APPROVER_LEVELS


def _registry_champion(page: Page) -> tuple[int | None, bool]:
    """The registry's champion version now, and whether the registry answered."""
    registry = page.state.registry
    if registry is None:
        return None, False
    try:
        champion = registry.champion_info()
    except Exception:  # any failure to reach MLflow: the page says so instead of failing
        return None, False
    return (None if champion is None else champion.version), True


def _moment(value: object) -> datetime | None:
    """An ISO 8601 time from a report or log line (``None`` when absent or malformed)."""
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _promotion_page(
    page: Page,
    quarter: str,
    *,
    reason: str = "",
    errors: list[str] | None = None,
    refused: str | None = None,
    status_code: int = 200,
    notices: list[dict[str, str]] | None = None,
) -> HTMLResponse:
    state = page.state
    folder = state.settings.monitoring_dir
    payload = read_reevaluation(folder, quarter)
    if payload is None:
        raise NotFoundError(f"no re-evaluation of {quarter}")
    current, reachable = _registry_champion(page)
    review = review_approval(payload, current_champion=current, monitoring_dir=folder)
    version = review.challenger_version
    approved = [
        entry
        for entry in approvals(folder)
        if (entry.get("reevaluation") or {}).get("quarter") == review.quarter
        and entry.get("version") == version
    ]
    last = approved[-1] if approved else None
    listed = {r.path for r in list_reports(folder)}
    report = FilePath(str(review.report or ""))
    relative = report.relative_to(folder).as_posix() if report.is_relative_to(folder) else ""
    return page.render(
        "promotion.html",
        {
            "review": review,
            "checks": payload.get("checks") or [],
            "notes": payload.get("notes") or [],
            "report_href": f"/reports/{relative}" if relative in listed else None,
            "reachable": reachable,
            "approved": last,
            "approved_at": _moment(None if last is None else last.get("promoted_at")),
            "created_at": _moment(review.created_at),
            "served_version": state.model_version,
            "served_name": state.model_name,
            "refresh_seconds": state.settings.service.refresh_seconds,
            "can_approve": may_approve(page.principal) and reachable and review.approvable,
            "approver_role": may_approve(page.principal),
            "reason": reason,
            "errors": errors or [],
            "refused": refused,
        },
        section="reports",
        status_code=status_code,
        notices=notices,
    )


Quarter = Annotated[str, Path(pattern=QUARTER_PATTERN, description="e.g. 2025Q3")]


@router.get("/promotion/{quarter}", name="page_promotion", dependencies=[PromotionReaderPage])
def page_promotion(
    page: PageDep,
    quarter: Quarter,
    done: Annotated[str | None, Query(max_length=16)] = None,
) -> HTMLResponse:
    """A re-evaluation's recommendation, its challenger, what blocks an approval, and (for a
    supervisor of a county or above) the form to approve it with a written reason."""
    notices = []
    if done == "approved":
        notices.append({"kind": "ok", "text": page.text("promotion.done")})
    return _promotion_page(page, quarter, notices=notices)


@router.post(
    "/promotion/{quarter}/{version}",
    name="page_promotion_approve",
    dependencies=[SupervisorPage, CsrfDep],
)
def page_promotion_approve(
    page: PageDep,
    session: SessionDep,
    quarter: Quarter,
    version: Annotated[int, Path(ge=1, le=1_000_000)],
    reason: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Approve the challenger (``models.promotion.approve_promotion``: the same function as
    ``shouhu monitoring approve``) and record it in the audit log; a refusal shows the page
    again with the reason, is audited as ``refused``, and changes nothing."""
    principal, state = page.principal, page.state
    if not may_approve(principal):
        raise PermissionDeniedError("a model is approved by a supervisor of a county or above")
    if state.registry is None:
        raise RegistryError("the model registry is not available to this service")
    if not reason.strip():
        return _promotion_page(page, quarter, errors=["reason_text"], status_code=422)
    access = access_of(page.request)
    try:
        approve_promotion(
            state.registry,
            state.policy,
            state.settings.monitoring_dir,
            quarter=quarter,
            version=version,
            approver=principal.username,
            reason=reason,
        )
    except PromotionRefusedError as exc:
        audit.record(
            session,
            principal,
            access,
            action=APPROVAL_EVENT,
            area_code=principal.area_code,
            outcome="refused",
        )
        return _promotion_page(page, quarter, reason=reason, refused=exc.message, status_code=409)
    audit.record(session, principal, access, action=APPROVAL_EVENT, area_code=principal.area_code)
    return RedirectResponse(f"/promotion/{quarter}?done=approved", status_code=303)


@router.get("/reports/{path:path}", name="page_report_file")
def page_report_file(page: PageDep, path: str) -> FileResponse:
    """One listed report file (only files the listing shows; nothing outside the folder)."""
    folder = page.state.settings.monitoring_dir
    listed = {r.path for r in list_reports(folder)}
    if path not in listed:
        raise NotFoundError("no such report")
    target = (folder / path).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise NotFoundError("no such report")
    media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if media.startswith("text/") or media == "application/json":
        media += "; charset=utf-8"
    return FileResponse(target, media_type=media, headers={"Cache-Control": "no-store"})


__all__ = [
    "APPROVER_LEVELS",
    "DONE_NOTICES",
    "PAGE_SIZE",
    "ReportFile",
    "list_reports",
    "may_approve",
    "router",
]
