"""Where monitoring reports live, how they are written, and how pages find the latest.

Layout under ``settings.monitoring_dir`` (``$SHOUHU_HOME/monitoring``)::

    monitoring/
      metrics.prom                       Prometheus text of the latest drift report
      drift_<current>_vs_<reference>_<UTC stamp>/
        summary.json                     the --json object (written last: its presence
                                         means the report is complete)
        index.html                       the overview for supervisors and analysts
        features.html                    Evidently's feature-drift report
        predictions.html                 Evidently's p_any drift report (when scores exist)
      reevaluation/<quarter>/reevaluation.json, performance/performance.json   (other reports)

:func:`latest_reports` lists reports of every kind the same way: a JSON summary
(``summary.json``, or ``<kind>.json`` as the re-evaluation and performance reports name theirs)
gives ``created_at`` (ISO 8601, UTC) and optionally ``kind`` (else the folder's name),
``report`` (its main page; else ``<kind>.html`` or ``index.html`` beside it) and ``alarm``.
Drift reports sit one level under ``monitoring``, where the service's report page looks.
Nothing else is read, so a service can list reports without importing the code that wrote
them. This module imports neither Evidently nor pandas at import time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

if TYPE_CHECKING:
    from monitoring.drift import DriftResult

#: Name of the JSON summary in every report folder.
SUMMARY = "summary.json"
#: The overview page of a drift report.
OVERVIEW = "index.html"
FEATURES_HTML = "features.html"
PREDICTIONS_HTML = "predictions.html"
#: The overview page's template, in :data:`TEMPLATES`.
DRIFT_TEMPLATE = "drift.html.j2"
#: Folder (under the monitoring folder) of drift reports.
DRIFT_KIND = "drift"


@dataclass(frozen=True)
class ReportInfo:
    """One stored report, as the pages list it.

    Attributes
    ----------
    kind : str
        ``"drift"``, or another report kind (``"reevaluation"``, …).
    folder : Path
        The report folder.
    summary_path : Path
        Its ``summary.json``.
    html : Path or None
        The main page (``report`` in the summary), when it exists.
    created_at : datetime
        When it was written (UTC).
    title : str
        A one-line label, e.g. ``"drift 2025-12-31 vs 2024-12-31"``.
    alarm : bool or None
        The report's alarm, for reports that have one.
    """

    kind: str
    folder: Path
    summary_path: Path
    html: Path | None
    created_at: datetime
    title: str
    alarm: bool | None

    def summary(self) -> dict[str, Any]:
        """The report's full JSON summary."""
        loaded: dict[str, Any] = json.loads(self.summary_path.read_text(encoding="utf-8"))
        return loaded


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def drift_folder(
    monitoring_dir: Path, reference: date, current: date, *, now: datetime | None = None
) -> Path:
    """A new folder name for a drift report (not created).

    Parameters
    ----------
    monitoring_dir : Path
        ``settings.monitoring_dir``.
    reference, current : date
        The compared dates.
    now : datetime, optional
        The time stamp (UTC now by default); two reports of the same dates never collide.

    Returns
    -------
    Path
        ``<monitoring_dir>/drift_<current>_vs_<reference>_<stamp>``: one level down, where the
        service's report pages look (``monitoring/*/*``), and named for its kind.
    """
    stamp = _stamp(now or datetime.now(UTC))
    name = f"{DRIFT_KIND}_{current.isoformat()}_vs_{reference.isoformat()}_{stamp}"
    return monitoring_dir / name


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _json_safe(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        value = value.item()  # a numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_drift_report(result: DriftResult, folder: Path) -> dict[str, Any]:
    """Write a drift report's HTML pages and its JSON summary into ``folder``.

    Parameters
    ----------
    result : DriftResult
        From :func:`monitoring.drift.compare`.
    folder : Path
        Created if missing.

    Returns
    -------
    dict
        The summary as written, with ``report`` (the overview page) and ``files``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str | None] = {"summary": str(folder / SUMMARY)}
    features_page = folder / FEATURES_HTML
    result.feature_snapshot.save_html(str(features_page))
    files["features"] = str(features_page)
    if result.prediction_snapshot is not None:
        predictions_page = folder / PREDICTIONS_HTML
        result.prediction_snapshot.save_html(str(predictions_page))
        files["predictions"] = str(predictions_page)
    else:
        files["predictions"] = None
    overview = folder / OVERVIEW
    files["overview"] = str(overview)
    summary = _json_safe(dict(result.summary))
    summary["report"] = str(overview)
    summary["files"] = files
    _write_text(overview, render_drift_html(summary))
    # The summary goes last: a folder with a summary is a complete report.
    _write_text(
        folder / SUMMARY, json.dumps(summary, ensure_ascii=False, indent=1, allow_nan=False)
    )
    written: dict[str, Any] = summary
    return written


def _summaries(root: Path, kind: str | None) -> list[tuple[str, Path]]:
    """Every report summary under ``root``: ``(kind, path)``.

    Layouts read: ``<kind>_<name>/summary.json`` (drift reports: the kind is the summary's
    ``kind``, else the folder name before its first ``_``), and, the folder naming the kind,
    ``<kind>/<name>/summary.json``, ``<kind>/<name>/<kind>.json`` and ``<kind>/<kind>.json``
    (re-evaluation and performance reports).
    """
    found: list[tuple[str, Path]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = folder.name
        if (folder / SUMMARY).is_file():
            found.append((name.split("_", 1)[0], folder / SUMMARY))
            continue
        paths = {*folder.glob(f"*/{SUMMARY}"), *folder.glob(f"*/{name}.json")}
        if (folder / f"{name}.json").is_file():
            paths.add(folder / f"{name}.json")
        found += [(name, path) for path in sorted(paths)]
    return [(k, path) for k, path in found if kind is None or k == kind]


def _page(path: Path, data: dict[str, Any]) -> Path | None:
    html = data.get("report")
    candidates = []
    if isinstance(html, str) and html.endswith((".html", ".htm")):
        page = Path(html)
        candidates.append(page if page.is_absolute() else path.parent / page)
    candidates += [path.with_suffix(".html"), path.parent / OVERVIEW]
    return next((c for c in candidates if c.is_file()), None)


def latest_reports(
    home: Path, kind: str | None = None, limit: int | None = None
) -> list[ReportInfo]:
    """Stored monitoring reports, newest first.

    Parameters
    ----------
    home : Path
        The data home (``settings.home``); reports are read from ``home/monitoring``.
    kind : str, optional
        Only reports of this kind (``"drift"``, ``"reevaluation"``, ``"performance"``, …: the
        folder under ``monitoring`` they are kept in).
    limit : int, optional
        At most this many.

    Returns
    -------
    list of ReportInfo
        Complete reports (a readable JSON summary: see :func:`_summaries` for the layouts),
        newest first by their ``created_at`` (the file's time when they have none). An
        unreadable summary is skipped, never fatal, so one broken folder cannot hide the rest.
    """
    root = Path(home) / "monitoring"
    if not root.is_dir():
        return []
    found: list[ReportInfo] = []
    for folder_kind, path in _summaries(root, None):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                continue
            report_kind = str(data.get("kind", folder_kind))
            if kind is not None and report_kind != kind:
                continue
            stamp = data.get("created_at")
            created = (
                datetime.fromisoformat(stamp)
                if isinstance(stamp, str)
                else datetime.fromtimestamp(path.stat().st_mtime, UTC)
            )
        except (OSError, ValueError):
            continue
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        alarm = data.get("alarm")
        found.append(
            ReportInfo(
                kind=report_kind,
                folder=path.parent,
                summary_path=path,
                html=_page(path, data),
                created_at=created,
                title=_title(report_kind, data),
                alarm=alarm if isinstance(alarm, bool) else None,
            )
        )
    found.sort(key=lambda r: (r.created_at, str(r.folder)), reverse=True)
    return found if limit is None else found[:limit]


def _title(kind: str, data: dict[str, Any]) -> str:
    if isinstance(data.get("title"), str):
        return str(data["title"])
    if "current" in data and "reference" in data:
        return f"{kind} {data['current']} vs {data['reference']}"
    if "quarter" in data:
        return f"{kind} {data['quarter']}"
    return kind


def latest_drift(home: Path) -> dict[str, Any] | None:
    """The newest drift report's summary, or ``None`` when there is none."""
    reports = latest_reports(home, kind=DRIFT_KIND, limit=1)
    return reports[0].summary() if reports else None


# ---------------------------------------------------------------------------------------------
# The overview page


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes / 是" if value else "no / 否"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else "—"
    return str(value)


def _pct(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"{100 * value:.1f}%"
    return "—"


#: Templates of this module's pages (package data, next to the code).
TEMPLATES = Path(__file__).resolve().parent / "templates"
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_ENV.filters["fmt"] = _fmt
_ENV.filters["pct"] = _pct
_ENV.filters["basename"] = lambda p: Path(str(p)).name if p else ""


def render_drift_html(summary: dict[str, Any]) -> str:
    """The overview page of a drift report, from its summary (every value escaped).

    Parameters
    ----------
    summary : dict
        A summary from :func:`write_drift_report` (with ``files``).

    Returns
    -------
    str
        A self-contained HTML page in Chinese and English.
    """
    return _ENV.get_template(DRIFT_TEMPLATE).render(s=summary)


__all__ = [
    "DRIFT_KIND",
    "FEATURES_HTML",
    "OVERVIEW",
    "PREDICTIONS_HTML",
    "SUMMARY",
    "ReportInfo",
    "drift_folder",
    "latest_drift",
    "latest_reports",
    "render_drift_html",
    "write_drift_report",
]
