"""A supervisor's approval of a re-evaluation (``models.promotion.approve_promotion``).

A real local MLflow registry in a temporary folder with tiny bundles (``_bundle_factory``), and
re-evaluation reports written as ``shouhu monitoring reevaluate`` stores them (the JSON keys
the approval reads). The whole re-evaluation that writes such reports is exercised in
``tests/unit/monitoring/test_reevaluation_run.py``; the page and the browser in
``tests/unit/service/test_promotion_page.py`` and ``tests/browser/test_promotion_page.py``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from models.gate import FAILED, GATE_REASON_TAG, GATE_TAG, PASSED
from models.policy import Promotion, TierPolicy, load_policy
from models.promotion import (
    APPROVAL_EVENT,
    approvals_log,
    approve_promotion,
    latest_reevaluation,
    note_path,
    reevaluation_folder,
    reevaluations,
    review_approval,
)
from models.registry import CHAMPION, ModelRegistry
from shouhu.errors import NotFoundError, PromotionRefusedError

from ._bundle_factory import Trained, train_bundle

NOTE = """quarter: 2025Q3
challenger_version: {version}
supervisor: Supervisor Zhao
role: supervisor
signed_on: 2026-01-12
reason: The flagged township rests on nine events; its directors visit every child monthly.
"""


@dataclass(frozen=True)
class World:
    """A registry with a champion, and where reports go."""

    registry: ModelRegistry
    monitoring: Path
    trained: Trained
    policy: TierPolicy
    champion: int


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("approval")
    registry = ModelRegistry.local(root / "home" / "mlflow")
    trained = train_bundle(seed=3)
    shipped = load_policy()
    # A tiny bundle's precision is what it is; the pre-registered minimum is no obstacle here
    # (the registry's own tests check it), so the approval's checks are what these tests see.
    policy = shipped.model_copy(
        update={
            "promotion": Promotion(
                min_precision_at_capacity=0.01, preregistered_on=date(2026, 11, 1)
            )
        }
    )
    first = registry.log_training_run(trained.bundle, run_name="champion", tags={GATE_TAG: PASSED})
    registry.promote(first.version, approver="Li", reason="first champion", policy=policy)
    return World(registry, root / "home" / "monitoring", trained, policy, first.version)


def _challenger(world: World, *, gate: str = PASSED) -> int:
    tags = {GATE_TAG: gate}
    if gate == FAILED:
        tags[GATE_REASON_TAG] = "champion gate failed: 1 of 2 time folds (2 required)"
    return world.registry.log_training_run(world.trained.bundle, tags=tags).version


def _checks(*failed: str) -> list[dict[str, Any]]:
    names = ("gate", "minimum_precision", "better", "no_regression", "fairness")
    return [
        {"name": n, "passed": n not in failed, "blocking": True, "reason": f"{n} figures"}
        for n in names
    ]


def _report(
    world: World,
    quarter: str,
    version: int,
    *,
    failed: tuple[str, ...] = (),
    champion: int | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Write a re-evaluation report's JSON (and a kept note) as the monitoring writer does."""
    folder = reevaluation_folder(world.monitoring, quarter)
    folder.mkdir(parents=True, exist_ok=True)
    kept = None
    if note is not None:
        path = note_path(world.monitoring, quarter, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(note, encoding="utf-8")
        kept = {
            "quarter": quarter,
            "challenger_version": version,
            "supervisor": "Supervisor Zhao",
            "sha256": hashlib.sha256(note.encode("utf-8")).hexdigest(),
        }
    then = world.champion if champion is None else champion
    payload = {
        "quarter": quarter,
        "recommendation": "keep" if failed else "promote",
        "reasons": [f"{'BLOCKS' if c in failed else 'ok'} {c}" for c in ("gate", "fairness")],
        "checks": _checks(*failed),
        "champion": {"version": then},
        "champion_version": then,
        "challenger": {"version": version},
        "note": kept,
        "report": str(folder / "reevaluation.html"),
        "created_at": datetime.now(UTC).isoformat(),
    }
    (folder / "reevaluation.json").write_text(json.dumps(payload), encoding="utf-8")
    return payload


def _state(world: World) -> tuple[dict[str, int], str, str]:
    """Aliases, promotion log and approvals log: what a refusal must leave as it was."""
    log = world.registry.promotion_log
    approvals = approvals_log(world.monitoring)
    return (
        world.registry._aliases(),
        log.read_text() if log.exists() else "",
        approvals.read_text() if approvals.exists() else "",
    )


def _approve(world: World, quarter: str, version: int, reason: str = "read the report") -> Any:
    return approve_promotion(
        world.registry,
        world.policy,
        world.monitoring,
        quarter=quarter,
        version=version,
        approver="Supervisor Zhao",
        reason=reason,
    )


def test_a_keep_is_refused_naming_every_failed_check_and_changes_nothing(world: World) -> None:
    version = _challenger(world)
    _report(world, "2024Q1", version, failed=("gate", "fairness"))
    before = _state(world)
    with pytest.raises(PromotionRefusedError) as refused:
        _approve(world, "2024Q1", version)
    message = refused.value.message
    assert message.startswith(f"version {version} was not promoted")
    assert "recommends keep, not promote (2 blocking checks failed)" in message
    assert "gate: gate figures" in message
    # A fairness block says how to lift it: a supervisor's signed note and a re-run.
    assert "signs a note" in message
    assert f"--quarter 2024Q1 --note FILE --challenger {version}" in message
    assert _state(world) == before


def test_an_approval_promotes_tags_the_basis_and_logs_it(world: World) -> None:
    version = _challenger(world)
    payload = _report(world, "2024Q2", version, note=NOTE.format(version=version))
    review = review_approval(
        payload, current_champion=world.champion, monitoring_dir=world.monitoring
    )
    assert review.approvable and review.blockers == []
    entry = _approve(world, "2024Q2", version, reason="  Better on 2024Q2 and fair.  ")
    champion = world.registry.champion_info()
    assert champion is not None and champion.version == version
    assert champion.tag("promoted_by") == "Supervisor Zhao"
    assert champion.tag("promotion_reason") == "Better on 2024Q2 and fair."
    assert champion.tag("promotion_basis") == "re-evaluation 2024Q2"
    assert world.registry.promotions()[-1]["version"] == version
    lines = approvals_log(world.monitoring).read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[-1]) == entry
    assert entry["event"] == APPROVAL_EVENT and entry["previous_champion"] == world.champion
    assert entry["reevaluation"]["quarter"] == "2024Q2"
    assert entry["reevaluation"]["note_sha256"] == payload["note"]["sha256"]
    # Put the world back: the module's champion is the first version again.
    world.registry.promote(world.champion, approver="Li", reason="reset", policy=world.policy)


def test_a_signed_note_changed_or_gone_since_the_report_blocks(world: World) -> None:
    version = _challenger(world)
    _report(world, "2024Q3", version, note=NOTE.format(version=version))
    kept = note_path(world.monitoring, "2024Q3", version)
    kept.write_text(NOTE.format(version=version) + "accepts: [township]\n", encoding="utf-8")
    before = _state(world)
    with pytest.raises(PromotionRefusedError, match="changed since the re-evaluation"):
        _approve(world, "2024Q3", version)
    kept.unlink()
    with pytest.raises(PromotionRefusedError, match=r"signed note .* is missing"):
        _approve(world, "2024Q3", version)
    assert _state(world) == before


def test_a_report_about_another_champion_or_version_is_refused(world: World) -> None:
    version = _challenger(world)
    _report(world, "2024Q4", version, champion=world.champion + 100)
    before = _state(world)
    with pytest.raises(PromotionRefusedError, match="champion changed since the re-evaluation"):
        _approve(world, "2024Q4", version)
    with pytest.raises(PromotionRefusedError, match=f"is about version {version}"):
        _approve(world, "2024Q4", version + 1)
    with pytest.raises(NotFoundError, match="no re-evaluation of 2019Q1"):
        _approve(world, "2019Q1", version)
    with pytest.raises(NotFoundError, match="YYYYQn"):
        _approve(world, "../../mlflow", version)
    assert _state(world) == before


def test_the_registry_still_refuses_a_failed_gate_behind_a_promote(world: World) -> None:
    # A report that recommends promote for a version whose run failed the champion gate (a
    # hand-edited JSON, say): the registry's own check refuses it.
    version = _challenger(world, gate=FAILED)
    _report(world, "2023Q4", version)
    before = _state(world)
    with pytest.raises(PromotionRefusedError, match="1 of 2 time folds"):
        _approve(world, "2023Q4", version)
    assert _state(world) == before
    assert world.registry._aliases()[CHAMPION] == world.champion


def test_reports_are_listed_newest_quarter_first(world: World) -> None:
    listed = [p["quarter"] for p in reevaluations(world.monitoring)]
    assert listed == sorted(listed, reverse=True) and len(listed) >= 4
    newest = reevaluations(world.monitoring)[0]
    found = latest_reevaluation(world.monitoring, newest["challenger"]["version"])
    assert found is not None and found["quarter"] == newest["quarter"]
    assert latest_reevaluation(world.monitoring, 10_000) is None
