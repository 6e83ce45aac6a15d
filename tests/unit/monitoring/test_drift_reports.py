"""Drift reports on disk, how pages find the latest, and their Prometheus figures."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitoring.drift import DriftResult
from monitoring.metrics_export import read_metrics, render_metrics, write_metrics
from monitoring.reports import (
    SUMMARY,
    drift_folder,
    latest_drift,
    latest_reports,
    render_drift_html,
    write_drift_report,
)


class _Snapshot:
    """Stands in for an Evidently snapshot: writes a small page."""

    def __init__(self, label: str) -> None:
        self.label = label

    def save_html(self, filename: str) -> None:
        Path(filename).write_text(f"<html>{self.label}</html>", encoding="utf-8")


def _summary(created: str, *, alarm: bool = False, area: str = "990101001") -> dict[str, Any]:
    reasons = (
        [
            {
                "check": "visit_volume_30d",
                "scope": area,
                "subject": "visits_30d",
                "value": 0.02,
                "threshold": 0.5,
                "alarm": True,
                "message": "recorded visits per child in the last 30 days: 0.60 → 0.01",
            }
        ]
        if alarm
        else []
    )
    return {
        "kind": "drift",
        "alarm": alarm,
        "dataset_drift": False,
        "share_drifted": 0.1,
        "drifted_features": ["visits_30d"],
        "prediction_drift": None,
        "tier_shift": {"available": False, "reason": "no scores"},
        "quality": {
            "missing_rate_jumps": [],
            "new_categories": [],
            "vanished_categories": [],
            "unmapped_area_share": 0.05,
            "volume": {
                "children_reference": 100,
                "children_current": 90,
                "visits_30d_per_child_reference": 0.7,
                "visits_30d_per_child_current": 0.01,
                "visits_90d_per_child_reference": 2.0,
                "visits_90d_per_child_current": 1.0,
                "recent_records_reference": 0.9,
                "recent_records_current": 0.3,
                "entrants_reference": 0.02,
                "entrants_current": 0.02,
            },
            "schools": [],
        },
        "areas": [
            {
                "area_code": area,
                "level": "township",
                "alarm": alarm,
                "children_reference": 100,
                "children_current": 90,
                "visit_ratio_30d": 0.02,
                "visit_ratio_90d": 0.5,
                "recent_record_ratio": 0.3,
                "entrants_reference": 0.02,
                "entrants_current": 0.02,
                "top_shifts": [{"feature": "visits_30d", "shift": -1.2, "drifted": True}],
                "reasons": [r["message"] for r in reasons],
            }
        ],
        "reference": "2024-12-31",
        "current": "2025-12-31",
        "reasons": reasons,
        "features": [
            {
                "feature": "visits_30d",
                "method": "Wasserstein distance (normed)",
                "score": 0.4,
                "threshold": 0.1,
                "drifted": True,
                "top_areas": [{"area_code": area, "shift": -1.2}],
            },
            {
                "feature": "age_years",
                "method": "Wasserstein distance (normed)",
                "score": 0.01,
                "threshold": 0.1,
                "drifted": False,
            },
        ],
        "prediction": {"available": False, "reason": "no scores"},
        "season": {
            "reference": {"day": "2024-12-31"},
            "current": {"day": "2025-12-31"},
            "matched": True,
            "mismatch": 0,
            "recency_horizon_days": 365,
            "reference_history_days": 365,
        },
        "rows": {
            "reference": 100,
            "current": 90,
            "sampled_reference": 100,
            "sampled_current": 90,
        },
        "policy_version": "test",
        "created_at": created,
    }


def _write(monitoring: Path, created: datetime, **kwargs: Any) -> dict[str, Any]:
    result = DriftResult(
        _summary(created.isoformat(timespec="seconds"), **kwargs), _Snapshot("features")
    )
    folder = drift_folder(monitoring, date(2024, 12, 31), date(2025, 12, 31), now=created)
    return write_drift_report(result, folder)


def test_a_report_folder_holds_the_pages_and_the_summary_with_their_paths(tmp_path: Path) -> None:
    monitoring = tmp_path / "monitoring"
    summary = _write(monitoring, datetime(2026, 1, 5, 8, 0, tzinfo=UTC), alarm=True)
    folder = Path(summary["report"]).parent
    assert folder.parent == monitoring  # one level down, where the service's pages look
    assert folder.name.startswith("drift_2025-12-31_vs_2024-12-31_20260105T080000")
    assert sorted(p.name for p in folder.iterdir()) == [
        "features.html",
        "index.html",
        "summary.json",
    ]
    stored = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
    assert stored == summary and stored["files"]["predictions"] is None
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert "visit_volume_30d" in page and 'href="features.html"' in page
    assert not list(folder.glob("*.partial"))


def test_figures_straight_out_of_pandas_are_written_as_plain_json(tmp_path: Path) -> None:
    import numpy as np

    summary = _summary("2026-01-05T00:00:00+00:00", alarm=True)
    summary["areas"][0]["visit_ratio_30d"] = np.float64(0.02)
    summary["areas"][0]["alarm"] = np.bool_(True)
    summary["quality"]["volume"]["children_current"] = np.int64(90)
    summary["share_drifted"] = np.float64(np.inf)
    folder = tmp_path / "report"
    written = write_drift_report(DriftResult(summary, _Snapshot("f")), folder)
    stored = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
    assert stored["areas"][0]["alarm"] is True and stored["share_drifted"] is None
    assert (
        stored["quality"]["volume"]["children_current"]
        == 90
        == written["quality"]["volume"]["children_current"]
    )


def test_latest_reports_lists_complete_reports_newest_first(tmp_path: Path) -> None:
    monitoring = tmp_path / "monitoring"
    older = _write(monitoring, datetime(2026, 1, 5, tzinfo=UTC))
    newer = _write(monitoring, datetime(2026, 2, 5, tzinfo=UTC), alarm=True)
    broken = monitoring / "drift_broken"
    broken.mkdir()
    (broken / SUMMARY).write_text("{not json", encoding="utf-8")
    incomplete = monitoring / "drift_incomplete"  # no summary yet: still being written
    incomplete.mkdir()
    # Re-evaluation and performance reports name their JSON after their kind.
    other = monitoring / "reevaluation" / "2025Q4"
    other.mkdir(parents=True)
    (other / "reevaluation.json").write_text(
        json.dumps({"quarter": "2025Q4", "created_at": "2026-03-01T00:00:00+00:00"}),
        encoding="utf-8",
    )
    (other / "reevaluation.html").write_text("<html></html>", encoding="utf-8")
    performance = monitoring / "performance"
    (performance / "performance.json").parent.mkdir()
    (performance / "performance.json").write_text(
        json.dumps({"created_at": "2025-12-01T00:00:00+00:00"}), encoding="utf-8"
    )
    reports = latest_reports(tmp_path)
    assert [r.kind for r in reports] == ["reevaluation", "drift", "drift", "performance"]
    assert reports[0].title == "reevaluation 2025Q4"
    assert reports[0].html == other / "reevaluation.html" and reports[-1].html is None
    drifts = latest_reports(tmp_path, kind="drift")
    assert [str(r.html) for r in drifts] == [newer["report"], older["report"]]
    assert drifts[0].alarm is True and drifts[1].alarm is False
    assert drifts[0].title == "drift 2025-12-31 vs 2024-12-31"
    assert latest_reports(tmp_path, limit=1)[0].kind == "reevaluation"
    latest = latest_drift(tmp_path)
    assert latest is not None and latest["report"] == newer["report"]
    assert latest_reports(tmp_path / "elsewhere") == [] and latest_drift(tmp_path / "x") is None


def test_the_overview_escapes_every_value() -> None:
    summary = _summary("2026-01-05T00:00:00+00:00", alarm=True, area="<script>alert(1)</script>")
    summary["files"] = {"features": "/x/features.html", "predictions": None}
    page = render_drift_html(summary)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_metrics_export_the_alarm_per_area_figures_and_drifted_features(tmp_path: Path) -> None:
    summary = _summary("2026-01-05T00:00:00+00:00", alarm=True)
    text = render_metrics(summary)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("shouhu_drift_alarm", ())] == 1.0
    assert samples[("shouhu_drift_feature_drifted", (("feature", "visits_30d"),))] == 1.0
    assert samples[("shouhu_drift_feature_drifted", (("feature", "age_years"),))] == 0.0
    area = (("area_code", "990101001"), ("level", "township"))
    assert samples[("shouhu_area_alarm", area)] == 1.0
    assert samples[("shouhu_area_visit_ratio", (*area[:1], *area[1:], ("window", "30d")))] == (
        pytest.approx(0.02)
    )
    assert samples[("shouhu_drift_alarm_reasons", (("check", "visit_volume_30d"),))] == 1.0
    # Absent prediction figures are left out rather than written as zero.
    assert not any(name == "shouhu_drift_prediction_drift" for name, _ in samples)
    path = write_metrics(summary, tmp_path / "monitoring")
    assert read_metrics(tmp_path / "monitoring") == path.read_text(encoding="utf-8") == text
    assert read_metrics(tmp_path / "nothing") is None
