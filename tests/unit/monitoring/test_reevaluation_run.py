"""The whole re-evaluation on a real store and registry: training cut, report, note, approval.

The approval's own checks are tested in ``tests/unit/models/test_promotion_approval.py``; here
the re-evaluation's real report is what ``shouhu monitoring approve`` reads.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from models.cli import registry_from_settings
from models.policy import DEFAULT_POLICY_RESOURCE
from models.promotion import approvals_log
from monitoring.cli import app
from monitoring.quarters import Quarter
from monitoring.reevaluation import (
    approve_from_settings,
    known_by_of,
    reevaluate_from_settings,
)
from shouhu.errors import (
    ConfigError,
    InsufficientDataError,
    NotFoundError,
    PromotionRefusedError,
)
from shouhu.settings import Settings, TrainSettings, get_settings
from tests._trained_model import KEY, Prepared, prepared

QUARTER = Quarter.parse("2025Q3")
#: Small models: these tests check what is trained on which dates and what is written.
FAST = TrainSettings(n_estimators=40, n_bootstrap=10, n_resamples=10)
CONTRACT = ("champion", "challenger", "recommendation", "reasons", "report")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """The shared small population and its trained model."""
    return prepared(tmp_path_factory)


def _settings(home: Path, **extra: Any) -> Settings:
    return Settings(home=home, pseudonym_key=KEY, train=FAST, **extra)


@pytest.fixture(scope="module")
def first_run(trained: Prepared, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A home with the shared store and an empty registry, re-evaluated once on 2025Q3."""
    home = tmp_path_factory.mktemp("reevaluate") / "home"
    home.mkdir()
    shutil.copy(trained.store_path, home / "features.duckdb")
    payload = reevaluate_from_settings(_settings(home), QUARTER, n_resamples=10)
    return home, payload


def test_the_challenger_learns_only_from_records_before_the_quarter(
    first_run: tuple[Path, dict],
) -> None:
    home, payload = first_run
    registry = registry_from_settings(_settings(home))
    version = payload["challenger"]["version"]
    assert known_by_of(registry, version) == date(2025, 6, 30)
    assert payload["challenger_known_by"] == "2025-06-30"
    assert registry.version_info(version).aliases == ("challenger",)
    # Its rolling folds end before the quarter: the last test window ends 90 days before the cut.
    folds = payload["gate"]["folds"]
    assert folds and folds[-1]["test_window"]["end"] == "2025-04-01"


def test_the_json_follows_the_cli_contract_and_explains_a_keep(
    first_run: tuple[Path, dict],
) -> None:
    _, payload = first_run
    assert set(CONTRACT) <= set(payload)
    assert payload["champion"] is None  # the shared model was never promoted
    assert payload["champion_version"] is None
    assert payload["recommendation"] == "keep"
    # 24 months of ledgers hold one fold before 2025Q3, so the gate cannot pass.
    assert any(r.startswith("BLOCKS gate") and "1 fold(s)" in r for r in payload["reasons"])
    assert any("1 of the 2 rolling time folds" in n for n in payload["notes"])
    challenger = payload["challenger"]
    assert challenger["rows"] > 8000 and 0.6 < challenger["auc"] < 0.95
    assert set(challenger["tier_mix"]) == {"T1", "T2", "T3", "T4"}
    assert [b["quarter"] for b in payload["backtest"]] == ["2025Q2", "2025Q1"]
    assert set(payload["baselines"]) == {"warning_signs", "village_rate"}
    assert payload["promote_command"].startswith(f"shouhu models promote {challenger['version']}")


def test_the_report_is_written_in_three_forms_under_the_quarter(
    first_run: tuple[Path, dict],
) -> None:
    home, payload = first_run
    folder = home / "monitoring" / "reevaluation" / "2025Q3"
    assert Path(payload["report"]) == folder / "reevaluation.html"
    saved = json.loads((folder / "reevaluation.json").read_text(encoding="utf-8"))
    assert saved["recommendation"] == "keep" and saved["report"] == payload["report"]
    markdown = (folder / "reevaluation.md").read_text(encoding="utf-8")
    assert "## Recommendation: **KEEP**" in markdown
    assert f"shouhu models promote {payload['challenger']['version']}" in markdown
    html = (folder / "reevaluation.html").read_text(encoding="utf-8")
    assert "Recommendation: <strong>KEEP</strong>" in html and "<script" not in html


def test_a_signed_note_reuses_the_challenger_and_is_kept_with_the_report(
    first_run: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, payload = first_run
    version = payload["challenger"]["version"]
    note = tmp_path / "note.yaml"
    note.write_text(
        f"quarter: 2025Q3\nchallenger_version: {version}\nsupervisor: Supervisor Zhao\n"
        f"signed_on: {(date.today() - timedelta(days=1)).isoformat()}\n"
        "reason: Reviewed the flagged groups with the township child directors.\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SHOUHU_HOME", str(home))
    get_settings.cache_clear()
    args = ["reevaluate", "--quarter", "2025Q3", "--note", str(note), "--resamples", "10"]
    args += ["--backtest", "0"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)  # one JSON object and nothing else on stdout
    registry = registry_from_settings(_settings(home))
    assert again["challenger"]["version"] == version  # not trained again
    assert len(registry.list_versions()) == 1
    fairness = next(c for c in again["checks"] if c["name"] == "fairness")
    assert fairness["passed"]
    assert again["note"]["supervisor"] == "Supervisor Zhao" and len(again["note"]["sha256"]) == 64
    kept = home / "monitoring" / "reevaluation" / "2025Q3" / "notes" / f"v{version}.yaml"
    assert kept.read_text(encoding="utf-8") == note.read_text(encoding="utf-8")
    assert again["recommendation"] == "keep"  # the gate still blocks


def test_the_cli_refuses_a_malformed_quarter() -> None:
    result = CliRunner().invoke(app, ["reevaluate", "--quarter", "2025-07"])
    assert result.exit_code == 2
    assert "YYYYQn" in result.output


def test_a_challenger_that_saw_the_quarter_is_refused(first_run: tuple[Path, dict]) -> None:
    home, payload = first_run
    with pytest.raises(ConfigError, match="may use only records up to 2025-03-31"):
        reevaluate_from_settings(
            _settings(home),
            Quarter.parse("2025Q2"),
            challenger_version=payload["challenger"]["version"],
        )


def test_a_quarter_whose_outcomes_have_not_matured_is_refused(
    first_run: tuple[Path, dict],
) -> None:
    home, _ = first_run
    with pytest.raises(InsufficientDataError, match="2025Q4 have not matured"):
        reevaluate_from_settings(_settings(home), Quarter.parse("2025Q4"))


def test_approval_of_a_kept_challenger_is_refused_and_changes_nothing(
    first_run: tuple[Path, dict],
) -> None:
    home, payload = first_run
    settings = _settings(home)
    version = payload["challenger"]["version"]
    with pytest.raises(PromotionRefusedError, match="recommends keep") as refused:
        approve_from_settings(settings, version, "Supervisor Zhao", "why")
    assert "gate: champion gate failed" in refused.value.message
    with pytest.raises(NotFoundError, match="no stored re-evaluation has version 999"):
        approve_from_settings(settings, 999, "Supervisor Zhao", "why")
    assert registry_from_settings(settings).champion_info() is None
    assert not approvals_log(settings.monitoring_dir).exists()


def test_approval_through_the_cli_promotes_and_logs_its_basis(
    trained: Prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    policy_file = tmp_path / "policy.yaml"
    # The shared model's recorded precision is below the shipped minimum: a county policy
    # file with a lower one (every number of the policy is the county's to set).
    shipped = resources.files("models").joinpath(DEFAULT_POLICY_RESOURCE).read_text("utf-8")
    lowered = re.sub(
        r"min_precision_at_capacity: [0-9.]+", "min_precision_at_capacity: 0.10", shipped
    )
    assert lowered != shipped
    policy_file.write_text(lowered, encoding="utf-8")
    settings = _settings(home, policy={"file": policy_file})
    logged = registry_from_settings(settings).log_training_run(
        trained.result.bundle, params={"known_by": "2025-06-30"}, run_name="approve"
    )
    # The report of a re-evaluation that recommended it (what the writer stores, in short).
    folder = home / "monitoring" / "reevaluation" / "2025Q3"
    folder.mkdir(parents=True)
    checks = ("gate", "minimum_precision", "better", "no_regression", "fairness")
    (folder / "reevaluation.json").write_text(
        json.dumps(
            {
                "quarter": "2025Q3",
                "recommendation": "promote",
                "reasons": [f"ok {name}" for name in checks],
                "checks": [{"name": n, "passed": True, "blocking": True} for n in checks],
                "report": str(folder / "reevaluation.html"),
                "champion": None,
                "champion_version": None,
                "challenger": {"version": logged.version},
                "note": None,
                "created_at": datetime.now(UTC).isoformat(),
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("SHOUHU_HOME", str(home))
    monkeypatch.setenv("SHOUHU_POLICY__FILE", str(policy_file))
    get_settings.cache_clear()
    runner = CliRunner()
    args = ["approve", str(logged.version), "--approver", "Supervisor Zhao"]
    blank = runner.invoke(app, [*args, "--reason", "  "])
    assert isinstance(blank.exception, PromotionRefusedError)
    assert "reason is required" in blank.exception.message
    assert not approvals_log(settings.monitoring_dir).exists()
    result = runner.invoke(app, [*args, "--reason", "reviewed the report", "--json"])
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)
    registry = registry_from_settings(settings)
    champion = registry.champion_info()
    assert champion is not None and champion.version == logged.version
    assert champion.tag("promoted_by") == "Supervisor Zhao"
    assert champion.tag("promotion_basis") == "re-evaluation 2025Q3"
    assert registry.promotions()[-1]["reason"] == "reviewed the report"
    lines = approvals_log(settings.monitoring_dir).read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[-1]) == entry
    assert entry["event"] == "approve_promotion"
    assert entry["reevaluation"]["quarter"] == "2025Q3"
    with pytest.raises(ConfigError, match="already the champion"):
        reevaluate_from_settings(settings, QUARTER, challenger_version=logged.version)
