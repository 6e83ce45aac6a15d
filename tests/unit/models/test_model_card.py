"""Model card: rendered from plain dicts, with intervals, verdicts and the fixed sections."""

from __future__ import annotations

import json
from typing import Any

import pytest

from models.model_card import build_context, render_model_card

MODEL = {
    "name": "shouhu-risk",
    "version": 3,
    "run_id": "abc123",
    "created_at": "2026-11-23T09:30:00+00:00",
    "estimator": "LightGBM, isotonic calibration",
    "outcomes": ["any", "dropout"],
    "feature_names": ["absence_days", "age"],
    "feature_fingerprint": "feat-0123",
    "policy_version": "cq-default-2026.2",
    "policy_fingerprint": "sha256:ab",
    "data_fingerprint": "sha256:cd",
}


def estimate(value: float, low: float, high: float) -> dict[str, Any]:
    return {"value": value, "low": low, "high": high, "level": 0.95, "n_resamples": 200}


def report(**metrics: tuple[float, float, float]) -> dict[str, Any]:
    """An ``EvaluationReport.to_dict()``-shaped dict."""
    return {
        "n_rows": 12000,
        "n_positive": 900,
        "n_clusters": 5100,
        "metrics": {name: estimate(*values) for name, values in metrics.items()},
        "settings": {"n_resamples": 200, "level": 0.95, "resampling_unit": "cluster"},
    }


MODEL_REPORT = report(
    roc_auc=(0.812, 0.79, 0.831),
    pr_auc=(0.281, 0.25, 0.31),
    brier=(0.061, 0.058, 0.064),
    ece=(0.012, 0.008, 0.019),
    precision_at_capacity=(0.342, 0.31, 0.37),
    recall_at_capacity=(0.401, 0.37, 0.43),
)


def context(**overrides: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {
        "model": MODEL,
        "metrics": {"any": MODEL_REPORT, "dropout": report(roc_auc=(0.7, 0.66, 0.74))},
        "data": {
            "description": "Monthly as-of dates, 2023-2025.",
            "windows": {
                "train": {"start": "2023-01-01", "end": "2024-06-30", "rows": 240000},
                "test": {"start": "2025-01-01", "end": "2025-03-31", "rows": 12000},
            },
            "children": 20000,
        },
        "promotion": {"min_precision_at_capacity": 0.2, "preregistered_on": "2026-11-23"},
    }
    parts.update(overrides)
    return build_context(**parts)


def test_card_shows_every_metric_with_its_interval() -> None:
    card = render_model_card(context())
    assert "| ROC-AUC | 0.812 | 0.790–0.831 |" in card.markdown
    assert (
        "| Precision at capacity (T2 visits, children not already in T1) | 0.342 | 0.310–0.370 |"
        in card.markdown
    )
    assert "| Brier score (lower is better) | 0.061 | 0.058–0.064 |" in card.markdown
    assert "12,000 rows, 900 with the event, 5,100 clusters resampled; 95 % intervals" in (
        card.markdown
    )
    assert "### Outcome: dropout" in card.markdown
    assert '<td class="num">0.812</td><td class="num">0.790–0.831</td>' in card.html
    assert "<h3>Outcome: dropout</h3>" in card.html


def test_card_states_human_review_intended_use_and_limitations() -> None:
    card = render_model_card(context(limitations=["Calibrated on one county only."]))
    for rendered in (card.markdown, card.html):
        # Compare words, not line breaks or emphasis markup.
        text = " ".join(rendered.replace("**", "").split())
        text = text.replace("<strong>", "").replace("</strong>", "")
        assert "Human review (人工复核)" in text
        assert "A person reviews every top-tier (T1) case" in text
        assert "named approver" in text
        assert "prioritise home visits" in text
        assert "never be used to deny, reduce or delay a service" in text
        assert "Modest discrimination" in text
        assert "0.72–0.83" in text
        assert "Recording bias" in text
        assert "Synthetic data" in text
        assert "Calibrated on one county only." in text


def test_card_shows_data_windows_and_sizes() -> None:
    card = render_model_card(context())
    assert "| window | start | end | rows |" in card.markdown
    assert "| train | 2023-01-01 | 2024-06-30 | 240,000 |" in card.markdown
    assert "- children: 20,000" in card.markdown
    assert "**Synthetic data.**" in card.markdown


def test_card_says_boosting_earns_its_place_only_when_clearly_better() -> None:
    clearly_worse_scorecard = report(
        roc_auc=(0.74, 0.72, 0.76), precision_at_capacity=(0.25, 0.22, 0.28)
    )
    card = render_model_card(context(baselines={"scorecard": clearly_worse_scorecard}))
    assert "boosting earns its place over the logistic scorecard" in card.markdown
    assert "| ROC-AUC | 0.812 (0.790–0.831) | 0.740 (0.720–0.760) |" in card.markdown

    close_scorecard = report(roc_auc=(0.80, 0.78, 0.82), precision_at_capacity=(0.33, 0.3, 0.36))
    card = render_model_card(
        context(baselines={"scorecard": close_scorecard, "village_rate": close_scorecard})
    )
    assert "boosting has not shown that it earns its place" in card.markdown
    assert "| Metric | model | scorecard | village_rate |" in card.markdown
    assert "- ROC-AUC: no clear difference" in card.markdown


def test_card_uses_paired_differences_when_given() -> None:
    close_scorecard = report(roc_auc=(0.80, 0.78, 0.82), precision_at_capacity=(0.33, 0.3, 0.36))
    paired = {"roc_auc": estimate(0.012, 0.004, 0.02)}
    card = render_model_card(context(baselines={"scorecard": close_scorecard}, comparison=paired))
    assert "- ROC-AUC: boosting is clearly better (paired difference 0.012 (0.004–0.020))" in (
        card.markdown
    )
    assert "boosting earns its place" in card.markdown


def test_card_compares_with_the_oracle_when_available() -> None:
    oracle = report(roc_auc=(0.85, 0.83, 0.87), precision_at_capacity=(0.4, 0.37, 0.43))
    card = render_model_card(context(oracle=oracle))
    assert "| ROC-AUC | 0.812 (0.790–0.831) | 0.850 (0.830–0.870) | 0.96 |" in card.markdown
    assert (
        "| Precision at capacity (T2 visits, children not already in T1) | 0.342 (0.310–0.370) "
        "| 0.400 (0.370–0.430) | 0.85 |"
    ) in card.markdown
    # (0.812 - 0.5) / (0.85 - 0.5)
    assert "reaches: 0.89" in card.markdown
    assert "oracle" not in render_model_card(context()).markdown.split("## Baselines")[0].lower()


def test_card_shows_fairness_rows_and_hides_figures_of_small_groups() -> None:
    rows = [
        {"attribute": "sex", "group": "girls", "threshold": "T2", "metric": "fnr", "value": 0.41,
         "ratio": 1.12, "status": "within_band", "n": 900, "value_low": 0.3},
        {"attribute": "hukou", "group": "无户籍 | none", "threshold": "T2", "metric": "fnr",
         "value": 0.9, "ratio": 2.4, "status": "insufficient_data", "n": 7, "value_low": 0.1},
    ]  # fmt: skip
    card = render_model_card(context(fairness={"rows": rows, "band": [0.8, 1.25]}))
    assert "within 0.80–1.25" in card.markdown
    assert "| attribute | group | threshold | metric | value | ratio | status |" in card.markdown
    assert "| sex | girls | T2 | fnr | 0.410 | 1.120 | within_band |" in card.markdown
    assert "| hukou | 无户籍 \\| none | T2 | fnr | – | – | insufficient_data |" in card.markdown
    assert "2.400" not in card.markdown and "2.400" not in card.html


def test_card_warns_when_no_fairness_table_was_recorded() -> None:
    card = render_model_card(context())
    assert "No fairness table was recorded for this version" in card.markdown
    assert "No fairness table was recorded for this version" in card.html


def test_html_card_escapes_recorded_text() -> None:
    rows = [{"group": "<script>alert(1)</script>", "metric": "fnr", "ratio": 1.0}]
    card = render_model_card(context(fairness={"rows": rows}))
    assert "<script>" not in card.html
    assert "&lt;script&gt;" in card.html


def test_card_reports_whether_the_preregistered_minimum_is_met() -> None:
    card = render_model_card(context())
    assert "minimum precision at capacity of 0.200 on 2026-11-23" in card.markdown
    assert "test value is 0.342: it meets the minimum." in card.markdown
    strict = context(promotion={"min_precision_at_capacity": 0.5})
    assert "does **not** meet the minimum and cannot be promoted" in (
        render_model_card(strict).markdown
    )


def test_context_is_plain_json_and_renders_the_same_after_a_round_trip() -> None:
    with_nan = report(roc_auc=(float("nan"), 0.7, 0.8))
    ctx = context(baselines={"scorecard": with_nan})
    text = json.dumps(ctx, allow_nan=False)
    assert render_model_card(json.loads(text)) == render_model_card(ctx)
    assert ctx["baselines"]["scorecard"]["metrics"]["roc_auc"]["value"] is None


@pytest.mark.parametrize("model", [{"name": "shouhu-risk"}, {"version": 1}])
def test_context_needs_model_name_and_version(model: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="name and version"):
        build_context(model=model, metrics={"any": MODEL_REPORT})
