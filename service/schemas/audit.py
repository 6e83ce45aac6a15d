"""The audit log as supervisors page through it."""

from __future__ import annotations

from datetime import datetime

from service.schemas.common import OutputModel


class AuditEntryPublic(OutputModel):
    """Who did what to which child, when, from where."""

    id: int
    at: datetime
    username: str
    role: str
    child_id: str | None
    area_code: str | None
    action: str
    outcome: str
    method: str
    path: str
    client: str


class AuditPage(OutputModel):
    """A page of the audit log, newest first; pass ``next_before_id`` for the next page."""

    area_code: str
    items: list[AuditEntryPublic]
    next_before_id: int | None


__all__ = ["AuditEntryPublic", "AuditPage"]
