"""``GET /api/v1/health``: can the service answer, and with which model (no sign-in needed)."""

from __future__ import annotations

import time

from fastapi import APIRouter
from sqlalchemy import text

from service.deps import StateDep
from service.schemas.health import HealthPublic

router = APIRouter(prefix="/health", tags=["health"])


@router.get("", name="get_health", response_model=HealthPublic)
def get_health(state: StateDep) -> HealthPublic:
    """Model, policy and run in use; ``degraded`` when the registry or database does not
    answer (the service keeps scoring with the model it holds)."""
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database = True
    except Exception:  # any database failure is reported, not raised
        database = False
    snapshot = state.snapshot
    reachable = state.registry_status.reachable
    return HealthPublic(
        status="ok" if reachable and database else "degraded",
        model_name=state.model_name,
        model_version=state.model_version,
        policy_version=state.policy_version,
        as_of=snapshot.as_of,
        run_id=None if snapshot.run is None else snapshot.run.run_id,
        children=len(snapshot.frame),
        registry_reachable=reachable,
        database=database,
        snapshot_age_seconds=round(max(0.0, time.time() - snapshot.built_at), 1),
        uptime_seconds=round(time.time() - state.started_at, 1),
    )
