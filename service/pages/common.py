"""What every signed-in page needs: the :class:`Page` dependency and the policy's labels.

A route takes ``page: PageDep`` and calls ``page.render(template, context, section=...)``; the
page knows its principal, language, CSRF token and the service state. Role checks use
``service.deps.require_page_role`` in the route's ``dependencies`` (they run before the
path's child is resolved and audited).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from features.schema import TABLES_BY_NAME
from models.policy import TierPolicy
from service.deps import PagePrincipalDep, Principal, StateDep, page_csrf_token
from service.i18n import Lang, catalogue
from service.pages.rendering import page_lang, render
from service.state import ServiceState
from service.workflow.codes import LABELS, label


@dataclass(frozen=True)
class TierLabel:
    """How a tier is shown: its short and full name in the page language and its colour."""

    tier: str
    short: str
    name: str
    colour: str
    ink: str
    response: str


def _ink(hex_colour: str) -> str:
    """Black or white text, whichever reads better on ``hex_colour`` (WCAG luminance)."""
    red, green, blue = (int(hex_colour[i : i + 2], 16) / 255.0 for i in (1, 3, 5))

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    luminance = 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)
    return "#1d2430" if luminance > 0.35 else "#ffffff"


def tier_labels(policy: TierPolicy, lang: Lang) -> dict[str, TierLabel]:
    """Every tier of the policy as the pages show it (names and colours come from the policy
    file, so a county that renames its tiers sees its own names)."""
    out: dict[str, TierLabel] = {}
    for spec in policy.tiers:
        name = spec.zh if lang == "zh" else spec.en
        summary = spec.response.summary
        out[spec.id.value] = TierLabel(
            tier=spec.id.value,
            short=name.split("·")[0].strip(),
            name=name,
            colour=spec.colour.hex,
            ink=_ink(spec.colour.hex),
            response=summary.zh if lang == "zh" else summary.en,
        )
    return out


def domain_names(policy: TierPolicy, lang: Lang) -> dict[str, str]:
    """The policy's domains in the page language, in policy order."""
    return {k: (v.zh if lang == "zh" else v.en) for k, v in policy.domains.items()}


def rule_names(policy: TierPolicy, lang: Lang) -> dict[str, str]:
    """Every rule label (``hard:<rule>``, ``floor:<tier>:<rule>``) with its text."""
    out: dict[str, str] = {}
    for rule in policy.rules:
        out[policy.fired(rule).label] = rule.zh if lang == "zh" else rule.en
    return out


def code_labels(lang: Lang) -> dict[str, str]:
    """The review codes (activities, outcomes, decisions, reasons) with their labels."""
    return {str(code.value): label(code, lang) for code in LABELS}


def coded(table: str, column: str, value: object, lang: Lang) -> str:
    """A stored ledger code as people read it (``female`` → ``女``); ``–`` when missing.

    Parameters
    ----------
    table, column : str
        The canonical table and field (``children``, ``sex``).
    value : object
        The stored value.
    lang : {"zh", "en"}
        Language of the label.

    Returns
    -------
    str
        The code's label, or the value itself when the field has no such code.
    """
    if value is None or value == "":
        return "–"
    spec = TABLES_BY_NAME[table].column(column)
    for code in spec.codes:
        if code.code == value:
            return code.zh if lang == "zh" else code.en
    return str(value)


@dataclass(frozen=True)
class Page:
    """One signed-in page request: who, in which language, with which CSRF token."""

    request: Request
    principal: Principal
    state: ServiceState
    lang: Lang
    csrf: str

    def text(self, key: str, **params: Any) -> str:
        """A message in the page's language (for notices built in Python)."""
        return catalogue().text(self.lang, key, **params)

    @property
    def tiers(self) -> dict[str, TierLabel]:
        """The policy's tiers in the page language."""
        return tier_labels(self.state.policy, self.lang)

    def render(
        self,
        template: str,
        context: Mapping[str, Any],
        *,
        section: str = "",
        status_code: int = 200,
        notices: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        """Render ``template`` for this request (see :func:`service.pages.rendering.render`)."""
        values: dict[str, Any] = {
            "tiers": self.tiers,
            "domain_names": domain_names(self.state.policy, self.lang),
            "code_labels": code_labels(self.lang),
            "coded": lambda table, column, value: coded(table, column, value, self.lang),
        }
        values.update(context)
        return render(
            self.request,
            template,
            values,
            lang=self.lang,
            principal=self.principal,
            csrf=self.csrf,
            section=section,
            area_name=self.state.snapshot.areas.name(self.principal.area_code),
            notices=notices,
            status_code=status_code,
            headers=headers,
        )


def get_page(request: Request, principal: PagePrincipalDep, state: StateDep) -> Page:
    """The :class:`Page` of a signed-in request (401, hence the sign-in page, otherwise)."""
    return Page(
        request=request,
        principal=principal,
        state=state,
        lang=page_lang(request, principal, state.settings.service.default_lang),
        csrf=page_csrf_token(request),
    )


PageDep = Annotated[Page, Depends(get_page)]


def is_htmx(request: Request) -> bool:
    """Whether htmx sent the request (it then wants a fragment, not a whole page)."""
    return request.headers.get("HX-Request") == "true"


__all__ = [
    "Page",
    "PageDep",
    "TierLabel",
    "code_labels",
    "coded",
    "domain_names",
    "get_page",
    "is_htmx",
    "rule_names",
    "tier_labels",
]
