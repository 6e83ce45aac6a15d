"""Drift and data-quality figures as Prometheus metrics.

Each stored drift report rewrites ``$SHOUHU_HOME/monitoring/metrics.prom`` (Prometheus text
exposition format, version 0.0.4): the service appends the file's text to its own ``/metrics``
answer, or node_exporter's textfile collector reads it, without importing this package. An
alert rule on ``shouhu_drift_alarm == 1`` is the alert when a policy threshold is crossed (see
docs/monitoring.md).

Label values are feature names, check names, area and school codes and dates: never a child.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest

#: File name of the latest figures, in the monitoring folder.
METRICS_FILE = "metrics.prom"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def registry_from_summary(summary: dict[str, Any]) -> CollectorRegistry:
    """A registry holding one drift report's figures.

    Parameters
    ----------
    summary : dict
        A drift summary (``shouhu monitoring drift --json``).

    Returns
    -------
    CollectorRegistry
        Gauges named ``shouhu_drift_*``, ``shouhu_quality_*`` and ``shouhu_area_*``. Figures
        that are absent (no scores, an area missing on one date) are left out, not zero.
    """
    registry = CollectorRegistry(auto_describe=True)

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, list(labels), registry=registry)

    gauge("shouhu_drift_alarm", "1 when the latest drift report crossed a policy threshold").set(
        int(bool(summary.get("alarm")))
    )
    info = gauge(
        "shouhu_drift_report_info",
        "The latest drift report's dates and policy (value 1)",
        ("reference", "current", "policy_version"),
    )
    info.labels(
        str(summary.get("reference")),
        str(summary.get("current")),
        str(summary.get("policy_version")),
    ).set(1)
    created = summary.get("created_at")
    if isinstance(created, str):
        gauge(
            "shouhu_drift_report_timestamp_seconds", "When the latest drift report was written"
        ).set(datetime.fromisoformat(created).timestamp())
    gauge("shouhu_drift_dataset_drift", "1 when the feature frame as a whole drifted").set(
        int(bool(summary.get("dataset_drift")))
    )
    if _finite(summary.get("share_drifted")):
        gauge("shouhu_drift_share_drifted_features", "Share of features that drifted").set(
            float(summary["share_drifted"])
        )
    feature_gauge = gauge(
        "shouhu_drift_feature_drifted", "1 when a feature's drift test failed", ("feature",)
    )
    score_gauge = gauge(
        "shouhu_drift_feature_score", "A feature's drift score (see method)", ("feature", "method")
    )
    for column in summary.get("features", []):
        feature_gauge.labels(str(column["feature"])).set(int(bool(column.get("drifted"))))
        if _finite(column.get("score")):
            score_gauge.labels(str(column["feature"]), str(column.get("method"))).set(
                float(column["score"])
            )
    reasons = gauge(
        "shouhu_drift_alarm_reasons", "Checks that crossed a threshold, by check", ("check",)
    )
    for check, count in Counter(r["check"] for r in summary.get("reasons", [])).items():
        reasons.labels(str(check)).set(count)

    prediction = summary.get("prediction") or {}
    if prediction.get("available"):
        gauge("shouhu_drift_prediction_drift", "1 when p_any drifted").set(
            int(bool(prediction.get("drift")))
        )
        mean = gauge("shouhu_drift_p_any_mean", "Mean calibrated risk", ("side",))
        for side in ("reference", "current"):
            if _finite(prediction.get(f"mean_{side}")):
                mean.labels(side).set(float(prediction[f"mean_{side}"]))
    tiers = summary.get("tier_shift") or {}
    share = gauge("shouhu_drift_tier_share", "Share of children per tier", ("tier", "side"))
    for side in ("reference", "current"):
        for tier, value in (tiers.get(side) or {}).items():
            share.labels(str(tier), side).set(float(value))

    quality = summary.get("quality") or {}
    if _finite(quality.get("unmapped_area_share")):
        gauge(
            "shouhu_quality_unmapped_area_share",
            "Share of children whose village the area table does not place",
        ).set(float(quality["unmapped_area_share"]))
    jumps = gauge(
        "shouhu_quality_missing_rate_jump",
        "Rise of a feature's missing share beyond the policy limit",
        ("feature", "scope"),
    )
    for jump in quality.get("missing_rate_jumps", []):
        jumps.labels(str(jump["subject"]), str(jump["scope"])).set(float(jump["value"]))
    schools = gauge(
        "shouhu_quality_school_days_without_report",
        "School days since a school's last weekly absence report",
        ("school_code", "area_code"),
    )
    for school in quality.get("schools", []):
        if _finite(school.get("value")):
            schools.labels(str(school["subject"]), str(school["scope"])).set(float(school["value"]))

    labels = ("area_code", "level")
    area_alarm = gauge(
        "shouhu_area_alarm", "1 when a check of the area crossed a threshold", labels
    )
    children = gauge("shouhu_area_children", "Registered children on the current date", labels)
    visits = gauge(
        "shouhu_area_visit_ratio",
        "Recorded visits per child, current / reference",
        (*labels, "window"),
    )
    recent = gauge(
        "shouhu_area_recent_record_ratio",
        "Share of children with a record in 30 days, current / reference",
        labels,
    )
    entrants = gauge(
        "shouhu_area_entrant_share", "Share of children registered in the last 90 days", labels
    )
    for area in summary.get("areas", []):
        key = (str(area["area_code"]), str(area["level"]))
        area_alarm.labels(*key).set(int(bool(area.get("alarm"))))
        children.labels(*key).set(int(area.get("children_current") or 0))
        for window in ("30d", "90d"):
            if _finite(area.get(f"visit_ratio_{window}")):
                visits.labels(*key, window).set(float(area[f"visit_ratio_{window}"]))
        if _finite(area.get("recent_record_ratio")):
            recent.labels(*key).set(float(area["recent_record_ratio"]))
        if _finite(area.get("entrants_current")):
            entrants.labels(*key).set(float(area["entrants_current"]))
    return registry


def render_metrics(summary: dict[str, Any]) -> str:
    """The Prometheus text of one drift report's figures."""
    return generate_latest(registry_from_summary(summary)).decode("utf-8")


def write_metrics(summary: dict[str, Any], monitoring_dir: Path) -> Path:
    """Replace ``<monitoring_dir>/metrics.prom`` with this report's figures (atomically).

    Returns
    -------
    Path
        The file written.
    """
    monitoring_dir.mkdir(parents=True, exist_ok=True)
    path = monitoring_dir / METRICS_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(render_metrics(summary), encoding="utf-8")
    partial.replace(path)
    return path


def read_metrics(monitoring_dir: Path) -> str | None:
    """The latest figures' text (what the service appends to ``/metrics``), if any."""
    path = monitoring_dir / METRICS_FILE
    return path.read_text(encoding="utf-8") if path.is_file() else None


__all__ = [
    "METRICS_FILE",
    "read_metrics",
    "registry_from_summary",
    "render_metrics",
    "write_metrics",
]
