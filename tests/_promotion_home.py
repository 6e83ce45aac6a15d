"""A data home for the approval page's tests: a champion, a challenger and two re-evaluations.

Built from the shared trained home (``tests/_trained_model.py``): its feature store is copied,
and a registry of the test's own (so nothing is written into the shared home) gets the shared
bundle twice: version 1, promoted (the champion the service loads), and version 2, the
challenger. Two re-evaluation reports are stored as ``shouhu monitoring reevaluate`` stores
them (the JSON keys the approval reads, and a page for the report link): 2025Q3 recommends
promoting version 2; 2025Q2 recommends keeping the champion, blocked by the champion gate and
by fairness flags without a signed note. :data:`PromotionHome.accounts` names a supervisor of
the county (who may approve), one of a township (who may not), a caseworker and an analyst;
:func:`add_accounts` creates them in a loaded service.

The county's policy file lowers the pre-registered minimum precision, so the shared 3,000-child
model's figure is not what the page tests depend on (``tests/unit/models/test_registry.py``
checks the minimum); the service applies that policy.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from tests._trained_model import KEY, TRAIN, prepared

PROMOTE_QUARTER = "2025Q3"
KEEP_QUARTER = "2025Q2"
CHECKS = ("gate", "minimum_precision", "better", "no_regression", "fairness")


@dataclass(frozen=True)
class PromotionHome:
    """The home, its settings, the versions and who may sign in."""

    home: Path
    settings: Any
    champion: int
    challenger: int
    accounts: dict[str, tuple[str, str]]  # username: (role, area code)


def add_accounts(state: Any, accounts: dict[str, tuple[str, str]]) -> None:
    """Create the accounts in a loaded service (password ``tests._service_home.PASSWORD``)."""
    from tests._service_home import add_user

    for username, (role, area) in accounts.items():
        add_user(state, username, role, area)


def _checks(failed: tuple[str, ...]) -> list[dict[str, Any]]:
    reasons = {
        "gate": "champion gate failed: 1 of 2 time folds won (2 required)",
        "fairness": "3 false-negative or false-omission rate ratios outside [0.8, 1.25] "
        "(false_negative_rate township=990102007 at T1-T3 ratio 1.31): promotion needs a "
        "supervisor's signed note",
    }
    return [
        {
            "name": name,
            "passed": name not in failed,
            "blocking": True,
            "reason": reasons.get(name, "within the rule") if name in failed else "within the rule",
        }
        for name in CHECKS
    ]


def write_report(
    monitoring: Path, quarter: str, challenger: int, champion: int, failed: tuple[str, ...]
) -> Path:
    """Store a re-evaluation report (JSON and a small page) as the monitoring writer does."""
    folder = monitoring / "reevaluation" / quarter
    folder.mkdir(parents=True, exist_ok=True)
    checks = _checks(failed)
    ordered = sorted(checks, key=lambda c: c["passed"])
    payload = {
        "quarter": quarter,
        "recommendation": "keep" if failed else "promote",
        "reasons": [
            f"{'ok' if c['passed'] else 'BLOCKS'} {c['name']}: {c['reason']}" for c in ordered
        ],
        "checks": checks,
        "champion": {"version": champion},
        "champion_version": champion,
        "challenger": {"version": challenger},
        "note": None,
        "notes": [],
        "report": str(folder / "reevaluation.html"),
        "promote_command": f"shouhu models promote {challenger} --approver NAME --reason ...",
        "created_at": datetime.now(UTC).isoformat(),
    }
    (folder / "reevaluation.html").write_text(
        f"<html><body>Re-evaluation {quarter}</body></html>", encoding="utf-8"
    )
    path = folder / "reevaluation.json"
    path.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return path


def promotion_home(factory: pytest.TempPathFactory, name: str, **service: Any) -> PromotionHome:
    """Build the home (see the module docstring); ``service`` sets ``ServiceSettings`` fields."""
    from models.policy import DEFAULT_POLICY_RESOURCE, load_policy
    from service.accounts import demo_areas
    from service.state import registry_for
    from shouhu.settings import Settings

    trained = prepared(factory)
    root = factory.mktemp(name)
    home = root / "home"
    home.mkdir()
    shutil.copyfile(trained.store_path, home / "features.duckdb")
    shipped = resources.files("models").joinpath(DEFAULT_POLICY_RESOURCE).read_text("utf-8")
    county = re.sub(
        r"min_precision_at_capacity: [0-9.]+", "min_precision_at_capacity: 0.05", shipped
    )
    policy_file = root / "county-policy.yaml"
    policy_file.write_text(county, encoding="utf-8")
    settings = Settings(
        home=home,
        pseudonym_key=KEY,
        train=TRAIN,
        policy={"file": policy_file},
        service={"refresh_seconds": 0, **service},
    )
    registry = registry_for(settings)
    bundle = trained.result.bundle
    first = registry.log_training_run(bundle, params={"known_by": "2025-03-31"}, run_name="v1")
    registry.promote(
        first.version,
        approver="county-admin",
        reason="first champion",
        policy=load_policy(policy_file),
    )
    second = registry.log_training_run(bundle, params={"known_by": "2025-06-30"}, run_name="v2")
    monitoring = settings.monitoring_dir
    write_report(monitoring, PROMOTE_QUARTER, second.version, first.version, ())
    write_report(monitoring, KEEP_QUARTER, second.version, first.version, ("gate", "fairness"))

    areas = demo_areas(settings.store_path)
    accounts = {
        "sup_county": ("supervisor", areas["county"]),
        "sup_town": ("supervisor", areas["township_a"]),
        "cw_town": ("caseworker", areas["township_a"]),
        "analyst": ("analyst", areas["county"]),
    }
    return PromotionHome(home, settings, first.version, second.version, accounts)


__all__ = [
    "KEEP_QUARTER",
    "PROMOTE_QUARTER",
    "PromotionHome",
    "add_accounts",
    "promotion_home",
    "write_report",
]
