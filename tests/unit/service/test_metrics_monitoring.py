"""``/metrics`` carries the drift and quality figures monitoring writes to ``metrics.prom``.

The file is made by monitoring's own writer (``monitoring.metrics_export.write_metrics``, as
``shouhu monitoring drift`` does); the service reads it without importing monitoring. The whole
route, on a served home, is checked in ``tests/unit/service/test_promotion_page.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from monitoring.metrics_export import write_metrics
from service.metrics import ServiceMetrics
from service.routers.metrics import MONITORING_METRICS_FILE, monitoring_metrics
from tests.unit.monitoring.test_drift_reports import _summary


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_latest_drift_figures_are_appended_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "monitoring"
    own = ServiceMetrics()
    assert monitoring_metrics(folder, own) == ""  # nothing written yet
    path = write_metrics(_summary("2026-01-05T00:00:00+00:00", alarm=True), folder)
    assert path.name == MONITORING_METRICS_FILE
    text = monitoring_metrics(folder, own)
    assert text == path.read_text(encoding="utf-8")
    samples = _samples(text)
    assert samples[("shouhu_drift_alarm", ())] == 1.0
    area = (("area_code", "990101001"), ("level", "township"))
    assert samples[("shouhu_area_alarm", area)] == 1.0
    assert samples[("shouhu_drift_alarm_reasons", (("check", "visit_volume_30d"),))] == 1.0

    # A new report replaces the figures; the service notices the changed file.
    write_metrics(_summary("2026-02-05T00:00:00+00:00", alarm=False), folder)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert _samples(monitoring_metrics(folder, own))[("shouhu_drift_alarm", ())] == 0.0


def test_a_damaged_or_clashing_file_is_left_out_not_served(tmp_path: Path) -> None:
    folder = tmp_path / "monitoring"
    folder.mkdir()
    own = ServiceMetrics()
    path = folder / MONITORING_METRICS_FILE
    path.write_text("shouhu_drift_alarm{broken 1\n", encoding="utf-8")
    assert monitoring_metrics(folder, own) == ""
    # A file that names a metric the service exports would make the scrape ambiguous.
    path.write_text("# TYPE shouhu_model_info gauge\nshouhu_model_info 1.0\n", encoding="utf-8")
    assert monitoring_metrics(folder, own) == ""
    path.write_text("# TYPE shouhu_drift_alarm gauge\nshouhu_drift_alarm 1.0", encoding="utf-8")
    assert monitoring_metrics(folder, own).endswith("shouhu_drift_alarm 1.0\n")
