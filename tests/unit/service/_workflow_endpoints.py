"""The workflow's endpoints for the authorisation matrix (endpoint × role × in/out of area).

Import :data:`WORKFLOW_ENDPOINTS` in the matrix test. For each entry and each role:

- a role not in ``roles`` gets **403** (the role guard runs before the child is resolved);
- an allowed role gets **404** for a child outside its area (or an ``area`` outside it, for
  lists), identical to an unknown child;
- an allowed role gets a status in ``ok`` for a child in its area. A write may be refused by
  the tier policy (409) depending on the child's state, which is not an authorisation
  failure, so ``ok`` lists it where it can happen.

``path`` carries ``{child_id}`` for child endpoints; ``body`` is a valid JSON body for any
child with a tier in the run in force. Every request to a child endpoint, allowed or not
found, writes one ``audit_log`` row (``action`` = ``name``); list endpoints write one row for
the list and one per child listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CASEWORKER, SUPERVISOR, ANALYST, ADMIN = "caseworker", "supervisor", "analyst", "admin"
ROLES = (CASEWORKER, SUPERVISOR, ANALYST, ADMIN)
CASEWORK = frozenset({CASEWORKER, SUPERVISOR})


@dataclass(frozen=True)
class Endpoint:
    """One endpoint of the workflow API.

    Attributes
    ----------
    method : str
        HTTP method.
    path : str
        Under ``/api/v1``; ``{child_id}`` for a child endpoint.
    name : str
        Route name (the audit ``action``); the operation id is ``<tag>-<name>``.
    tag : str
        The router's tag.
    roles : frozenset of str
        Roles allowed.
    ok : frozenset of int
        Statuses of an allowed role, in area.
    body : dict or None
        JSON body for a write.
    child : bool
        Whether the path names a child (else a list scoped by ``?area=``).
    """

    method: str
    path: str
    name: str
    tag: str
    roles: frozenset[str]
    ok: frozenset[int]
    body: dict[str, Any] | None = None
    child: bool = True
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def operation_id(self) -> str:
        """The stable OpenAPI operation id."""
        return f"{self.tag}-{self.name}"

    def make_body(self, child_id: str) -> dict[str, Any] | None:
        """The JSON body for a request about ``child_id`` (the same for every child)."""
        return None if self.body is None else dict(self.body)

    @property
    def ok_for_any_child(self) -> int:
        """The one status an allowed role gets in area for a child that is neither T1 nor
        awaiting a fall's confirmation (a matrix test that wants one number per endpoint)."""
        if self.name == "confirm_fall":
            return 409  # no fall awaits confirmation: refused, after the role and area checks
        return min(self.ok)


_REASON = "走访核实,情况与台账不符 (visit found the records out of date)"

_GET_OK = frozenset({200})


def _get(path: str, name: str, tag: str, roles: frozenset[str], **kw: Any) -> Endpoint:
    return Endpoint("GET", path, name, tag, roles, _GET_OK, **kw)


_CHILD = "/api/v1/children/{child_id}"
WORKFLOW_ENDPOINTS: tuple[Endpoint, ...] = (
    _get("/api/v1/tasks", "list_tasks", "tasks", CASEWORK, child=False),
    _get(f"{_CHILD}/tasks", "list_child_tasks", "tasks", CASEWORK),
    _get(f"{_CHILD}/reviews", "list_child_reviews", "reviews", CASEWORK),
    Endpoint(
        "POST",
        f"{_CHILD}/reviews",
        "create_review",
        "reviews",
        CASEWORK,
        frozenset({201}),
        body={"activity": "home_visit", "outcome": "safe", "notes": ""},
    ),
    Endpoint(
        "POST",
        f"{_CHILD}/mandatory-reports",
        "log_mandatory_report",
        "reviews",
        CASEWORK,
        frozenset({201}),
        body={
            "agency": "城关派出所",
            "reference": "JJ-2026-0001",
            "reported_at": "2025-12-31T08:00:00+08:00",
        },
    ),
    # 409 when no fall awaits confirmation; 403 also for a caseworker on a hard-rule T1
    # awaiting a supervisor's closure (the policy's rule, not the role guard): pick another
    # child for the matrix.
    Endpoint(
        "POST",
        f"{_CHILD}/fall-confirmations",
        "confirm_fall",
        "reviews",
        CASEWORK,
        frozenset({201, 409}),
        body={"notes": ""},
    ),
    _get(
        "/api/v1/reviews/pending", "list_pending", "reviews", frozenset({SUPERVISOR}), child=False
    ),
    # 409 when the child is already T1 (the engine's own tier: confirm it instead).
    Endpoint(
        "POST",
        f"{_CHILD}/overrides",
        "create_override",
        "overrides",
        frozenset({SUPERVISOR}),
        frozenset({201, 409}),
        body={"tier": "T1", "reason_code": "visit_found_higher_risk", "reason_text": _REASON},
    ),
    Endpoint(
        "POST",
        f"{_CHILD}/confirmations",
        "confirm_tier",
        "overrides",
        frozenset({SUPERVISOR}),
        frozenset({201}),
        body={},
    ),
    _get(f"{_CHILD}/overrides", "list_child_overrides", "overrides", CASEWORK),
    _get(
        "/api/v1/overrides/stats",
        "override_stats",
        "overrides",
        frozenset({SUPERVISOR, ANALYST}),
        child=False,
        params={"by": "reviewer"},
    ),
    _get("/api/v1/alerts", "list_alerts", "alerts", CASEWORK, child=False),
    _get(f"{_CHILD}/alerts", "list_child_alerts", "alerts", CASEWORK),
)

__all__ = ["ROLES", "WORKFLOW_ENDPOINTS", "Endpoint"]
