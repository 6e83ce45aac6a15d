"""The model card of every registered version, in Markdown and HTML.

The card is rendered from plain dicts (:func:`build_context`), never from live objects, so the
same card can be rebuilt later from what a training run logged (``model_card/context.json``).
Both formats come from Jinja2 templates in ``docs/templates/``: ``model-card.md.j2`` and
``model-card.html.j2``. The HTML has its own template rather than a Markdown converter, so no
extra dependency is needed and the HTML is escaped by Jinja2.

The fixed sections (intended use, limitations, human review) are written in the templates, not
passed in: a card without them cannot be produced.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from models.metrics import LOWER_IS_BETTER, compare_to_oracle

#: Where the templates live: ``docs/templates`` at the repository root.
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "docs" / "templates"
MARKDOWN_TEMPLATE = "model-card.md.j2"
HTML_TEMPLATE = "model-card.html.j2"

#: Metrics in the order the card shows them, with their labels.
METRIC_LABELS: dict[str, str] = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC (average precision)",
    "precision_at_capacity": "Precision at capacity (T2 visits, children not already in T1)",
    "recall_at_capacity": "Recall at capacity (same selection)",
    "roc_auc_t2_band": "ROC-AUC among children not already in T1",
    "precision_at_capacity_all_children": "Precision at capacity (all children)",
    "brier": "Brier score (lower is better)",
    "ece": "Expected calibration error (lower is better)",
}

#: Columns of a fairness audit (``FairnessReport.to_frame()``) the card shows, in order.
FAIRNESS_COLUMNS = ("attribute", "group", "threshold", "metric", "value", "ratio", "status")
#: Audit status of a group too small to publish figures for.
INSUFFICIENT = "insufficient_data"

#: The metrics that decide whether boosting earns its place over the logistic scorecard.
_DECIDING = ("roc_auc", "precision_at_capacity")
SCORECARD = "scorecard"


@dataclass(frozen=True)
class ModelCard:
    """A rendered model card.

    Parameters
    ----------
    markdown : str
        The card in Markdown.
    html : str
        The same card as a standalone HTML page.
    """

    markdown: str
    html: str


# --------------------------------------------------------------------------------------------
# Context: plain, JSON-ready data
# --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A JSON-ready copy: mappings and sequences copied, NaN and infinities become None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def build_context(
    *,
    model: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]],
    data: Mapping[str, Any] | None = None,
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
    comparison: Mapping[str, Any] | None = None,
    oracle: Mapping[str, Any] | None = None,
    fairness: Mapping[str, Any] | None = None,
    promotion: Mapping[str, Any] | None = None,
    limitations: Sequence[str] = (),
) -> dict[str, Any]:
    """Collect everything a model card shows into one JSON-ready dict.

    Parameters
    ----------
    model : mapping
        ``name`` and ``version`` (required); optionally ``run_id``, ``created_at``,
        ``estimator``, ``outcomes``, ``feature_names``, ``feature_fingerprint``,
        ``policy_version``, ``policy_fingerprint``, ``data_fingerprint`` (what
        ``ModelBundle.describe()`` gives).
    metrics : mapping of str to dict
        Test-window evaluation per outcome (``EvaluationReport.to_dict()``); ``"any"`` first.
    data : mapping, optional
        ``description`` (str), ``synthetic`` (bool, default true), ``windows`` (window name to
        a mapping such as ``{"start", "end", "rows", "children", "positives"}``) and any other
        facts (shown as a list).
    baselines : mapping of str to dict, optional
        Baseline name (``"scorecard"``, ``"warning_signs"``, ``"village_rate"``) to its report
        on the same test rows and outcome ``any``.
    comparison : mapping, optional
        Paired bootstrap differences, model minus scorecard: metric name to an estimate
        (``{"value", "low", "high"}``). Used for the boosting verdict when given; otherwise
        the verdict compares the two intervals.
    oracle : mapping, optional
        The oracle's report (true risk of the synthetic population) on the same rows.
    fairness : mapping, optional
        ``rows`` (list of dicts, one per group and metric), optionally ``band`` (``[low,
        high]``, the policy's disparity band), ``reference`` and ``note``.
    promotion : mapping, optional
        ``min_precision_at_capacity`` and ``preregistered_on`` from the tier policy.
    limitations : sequence of str, default=()
        Limitations beyond the standing ones the template always lists.

    Returns
    -------
    dict
        Plain data (str, numbers, bool, None, lists, dicts), safe to log as JSON.

    Raises
    ------
    ValueError
        If the model's name or version is missing, or no metrics are given.
    """
    if not model.get("name") or model.get("version") in (None, ""):
        raise ValueError("the model card needs the model's name and version")
    if not metrics:
        raise ValueError("the model card needs test metrics for at least one outcome")
    context = {
        "model": dict(model),
        "metrics": dict(metrics),
        "data": dict(data or {}),
        "baselines": dict(baselines or {}),
        "comparison": None if comparison is None else dict(comparison),
        "oracle": None if oracle is None else dict(oracle),
        "fairness": None if fairness is None else dict(fairness),
        "promotion": None if promotion is None else dict(promotion),
        "limitations": [str(item) for item in limitations],
    }
    plain: dict[str, Any] = _plain(context)
    json.dumps(plain)  # fail here, not when logging, if something is not JSON
    return plain


# --------------------------------------------------------------------------------------------
# View: formatted rows for the templates
# --------------------------------------------------------------------------------------------


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def _estimate(entry: Any) -> dict[str, Any]:
    """Value and interval of a metric given as an estimate dict or a bare number."""
    if isinstance(entry, Mapping):
        return {
            "value": entry.get("value"),
            "low": entry.get("low"),
            "high": entry.get("high"),
            "level": entry.get("level"),
        }
    return {"value": entry, "low": None, "high": None, "level": None}


def _with_interval(entry: Any) -> str:
    est = _estimate(entry)
    text = _num(est["value"])
    if est["low"] is not None and est["high"] is not None:
        text += f" ({_num(est['low'])}–{_num(est['high'])})"
    return text


def _report_metrics(report: Mapping[str, Any]) -> dict[str, Any]:
    inner = report.get("metrics", report)
    return dict(inner) if isinstance(inner, Mapping) else {}


def _metric_names(*reports: Mapping[str, Any]) -> list[str]:
    present: set[str] = set()
    for report in reports:
        present.update(_report_metrics(report))
    known = [name for name in METRIC_LABELS if name in present]
    return known + sorted(present - set(METRIC_LABELS))


def _level(report: Mapping[str, Any]) -> str:
    level = report.get("settings", {}).get("level")
    if level is None:
        for entry in _report_metrics(report).values():
            if isinstance(entry, Mapping) and entry.get("level") is not None:
                level = entry["level"]
                break
    return "95 %" if level is None else f"{float(level) * 100:g} %"


def _metrics_view(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    sections = []
    for outcome, report in metrics.items():
        rows = []
        values = _report_metrics(report)
        for name in _metric_names(report):
            est = _estimate(values[name])
            rows.append(
                {
                    "label": METRIC_LABELS.get(name, name),
                    "value": _num(est["value"]),
                    "interval": (
                        f"{_num(est['low'])}–{_num(est['high'])}"
                        if est["low"] is not None and est["high"] is not None
                        else "–"
                    ),
                }
            )
        sections.append(
            {
                "outcome": outcome,
                "rows": rows,
                "level": _level(report),
                "n_rows": _num(report.get("n_rows")),
                "n_positive": _num(report.get("n_positive")),
                "n_clusters": _num(report.get("n_clusters")),
                "unit": report.get("settings", {}).get("resampling_unit", "cluster"),
            }
        )
    return sections


def _compare(model: Any, other: Any, name: str) -> str:
    """ "better", "worse" or "unclear" for the model against another, by intervals."""
    a, b = _estimate(model), _estimate(other)
    if None in (a["low"], a["high"], b["low"], b["high"]):
        return "unclear"
    higher = name not in LOWER_IS_BETTER
    above = a["low"] > b["high"]
    below = a["high"] < b["low"]
    if above:
        return "better" if higher else "worse"
    if below:
        return "worse" if higher else "better"
    return "unclear"


def _compare_paired(difference: Any, name: str) -> str:
    """Verdict from a paired difference (model minus scorecard) and its interval."""
    est = _estimate(difference)
    if est["low"] is None or est["high"] is None:
        return "unclear"
    higher = name not in LOWER_IS_BETTER
    if est["low"] > 0:
        return "better" if higher else "worse"
    if est["high"] < 0:
        return "worse" if higher else "better"
    return "unclear"


def _baselines_view(context: Mapping[str, Any]) -> dict[str, Any] | None:
    baselines: Mapping[str, Any] = context["baselines"]
    model_report = context["metrics"].get("any")
    if not baselines or model_report is None:
        return None
    names = _metric_names(model_report, *baselines.values())
    model_values = _report_metrics(model_report)
    rows = []
    for name in names:
        cells = [_with_interval(model_values.get(name))]
        cells += [_with_interval(_report_metrics(b).get(name)) for b in baselines.values()]
        rows.append({"label": METRIC_LABELS.get(name, name), "cells": cells})
    verdicts = []
    scorecard = baselines.get(SCORECARD)
    comparison = context.get("comparison") or {}
    if scorecard is not None:
        score_values = _report_metrics(scorecard)
        for name in _DECIDING:
            if name in comparison:
                verdict = _compare_paired(comparison[name], name)
                basis = f"paired difference {_with_interval(comparison[name])}"
            elif name in model_values and name in score_values:
                verdict = _compare(model_values[name], score_values[name], name)
                basis = (
                    f"model {_with_interval(model_values[name])} against scorecard "
                    f"{_with_interval(score_values[name])}"
                )
            else:
                continue
            verdicts.append(
                {"label": METRIC_LABELS.get(name, name), "verdict": verdict, "basis": basis}
            )
    outcomes = {v["verdict"] for v in verdicts}
    if not verdicts:
        summary = None
    elif "better" in outcomes and "worse" not in outcomes:
        summary = "earns"
    elif "worse" in outcomes:
        summary = "worse"
    else:
        summary = "not_shown"
    return {
        "columns": ["model", *baselines],
        "rows": rows,
        "verdicts": verdicts,
        "summary": summary,
    }


def _oracle_view(context: Mapping[str, Any]) -> dict[str, Any] | None:
    oracle = context.get("oracle")
    model_report = context["metrics"].get("any")
    if not oracle or model_report is None:
        return None
    model_values = _report_metrics(model_report)
    oracle_values = _report_metrics(oracle)
    ratios = compare_to_oracle(model_values, oracle_values)
    rows = [
        {
            "label": METRIC_LABELS.get(name, name),
            "model": _with_interval(model_values[name]),
            "oracle": _with_interval(oracle_values[name]),
            "ratio": _num(ratios.get(name), 2),
        }
        for name in _metric_names(model_report, oracle)
        if name in model_values and name in oracle_values
    ]
    lift = ratios.get("roc_auc_lift")
    return {"rows": rows, "auc_lift": None if lift is None else _num(lift, 2)}


def _table(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    body = [[_num(row.get(c)) for c in columns] for row in rows]
    return {"columns": columns, "rows": body}


def _fairness_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The audit's rows as shown: the main columns, no figures for too-small groups."""
    if not rows or not all(k in rows[0] for k in ("group", "metric", "ratio")):
        return [dict(row) for row in rows]
    shown = [c for c in FAIRNESS_COLUMNS if c in rows[0]]
    out = []
    for row in rows:
        entry = {c: row.get(c) for c in shown}
        if row.get("status") == INSUFFICIENT:
            # A small group's rates can point at individual children: show the status only.
            entry.update({c: None for c in ("value", "ratio") if c in entry})
        out.append(entry)
    return out


def _fairness_view(context: Mapping[str, Any]) -> dict[str, Any] | None:
    fairness = context.get("fairness")
    if not fairness:
        return None
    band = fairness.get("band")
    return {
        **_table(_fairness_rows(fairness.get("rows") or [])),
        "band": None if not band else f"{_num(band[0], 2)}–{_num(band[1], 2)}",
        "reference": fairness.get("reference"),
        "note": fairness.get("note"),
    }


def _data_view(context: Mapping[str, Any]) -> dict[str, Any]:
    data: Mapping[str, Any] = context["data"]
    windows = data.get("windows") or {}
    window_rows = [{"window": name, **dict(spec)} for name, spec in windows.items()]
    facts = [
        {"name": str(k).replace("_", " "), "value": _num(v)}
        for k, v in data.items()
        if k not in ("description", "synthetic", "windows") and not isinstance(v, dict | list)
    ]
    return {
        "description": data.get("description"),
        "synthetic": bool(data.get("synthetic", True)),
        "windows": _table(window_rows) if window_rows else None,
        "facts": facts,
    }


def _promotion_view(context: Mapping[str, Any]) -> dict[str, Any] | None:
    promotion = context.get("promotion")
    if not promotion or promotion.get("min_precision_at_capacity") is None:
        return None
    minimum = float(promotion["min_precision_at_capacity"])
    entry = _report_metrics(context["metrics"].get("any", {})).get("precision_at_capacity")
    value = _estimate(entry)["value"]
    return {
        "minimum": _num(minimum),
        "preregistered_on": promotion.get("preregistered_on"),
        "value": _num(value),
        "meets": None if value is None else bool(value >= minimum),
    }


def _view(context: Mapping[str, Any]) -> dict[str, Any]:
    model = dict(context["model"])
    features = model.get("feature_names") or []
    return {
        "model": model,
        "n_features": len(features),
        "features": features,
        "outcomes": model.get("outcomes") or list(context["metrics"]),
        "data": _data_view(context),
        "metrics": _metrics_view(context["metrics"]),
        "oracle": _oracle_view(context),
        "baselines": _baselines_view(context),
        "fairness": _fairness_view(context),
        "promotion": _promotion_view(context),
        "limitations": list(context.get("limitations") or []),
    }


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _markdown_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell (pipes escaped, one line)."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _environment(template_dir: Path) -> jinja2.Environment:
    if not (template_dir / MARKDOWN_TEMPLATE).is_file():
        raise FileNotFoundError(f"model-card templates not found in {template_dir}")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        # Escape the HTML card only; Markdown has its own cell filter.
        autoescape=lambda name: name is not None and name.endswith(".html.j2"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cell"] = _markdown_cell
    return env


def render_model_card(context: Mapping[str, Any], *, template_dir: Path | None = None) -> ModelCard:
    """Render a model card from a context built by :func:`build_context`.

    Parameters
    ----------
    context : mapping
        The card's data (as logged in ``model_card/context.json``).
    template_dir : Path, optional
        Folder of ``model-card.md.j2`` and ``model-card.html.j2``; ``docs/templates`` by
        default.

    Returns
    -------
    ModelCard
        Markdown and HTML.

    Raises
    ------
    FileNotFoundError
        If the templates are missing.
    """
    env = _environment(template_dir or TEMPLATE_DIR)
    view = _view(context)
    return ModelCard(
        markdown=env.get_template(MARKDOWN_TEMPLATE).render(**view),
        html=env.get_template(HTML_TEMPLATE).render(**view),
    )


__all__ = [
    "HTML_TEMPLATE",
    "MARKDOWN_TEMPLATE",
    "METRIC_LABELS",
    "TEMPLATE_DIR",
    "ModelCard",
    "build_context",
    "render_model_card",
]
