"""Health of the running service."""

from __future__ import annotations

from datetime import date
from typing import Literal

from service.schemas.common import OutputModel


class HealthPublic(OutputModel):
    """Whether the service can answer, and with what."""

    status: Literal["ok", "degraded"]
    model_name: str
    model_version: int
    policy_version: str
    as_of: date | None
    run_id: str | None
    children: int
    registry_reachable: bool
    database: bool
    snapshot_age_seconds: float
    uptime_seconds: float


__all__ = ["HealthPublic"]
