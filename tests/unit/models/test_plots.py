"""Explanation plots: the bars say what the numbers say, and Chinese needs a Chinese font."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from models import plots
from models.explain import sentence
from models.plots import (
    DOMAIN_COLOURS,
    LOWERS_COLOUR,
    RAISES_COLOUR,
    importance_figure,
    importance_png,
    plot_language,
    waterfall_figure,
    waterfall_png,
)

FACTORS = [
    ("unexcused_absence_days_90d", 7, 0.9),
    ("visits_90d", 3, -0.4),
    ("guardianship_capacity", "improper", 0.3),
    ("latest_screen_positive", True, 0.2),
    ("age_years", 12.0, -0.05),
]


def _explanation() -> dict[str, Any]:
    contributions = []
    for feature, value, contribution in FACTORS:
        zh, en = sentence(feature, value)
        contributions.append({"feature": feature, "contribution": contribution, "zh": zh, "en": en})
    bias = -2.5
    return {
        "child_id": "c-0123456789abcdef",
        "as_of": "2025-06-30",
        "model_name": "shouhu-risk",
        "model_version": 3,
        "score": {"bias": bias, "margin": bias + sum(c for *_, c in FACTORS), "p_any": 0.21},
        "contributions": contributions,
    }


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _bars(fig: Any) -> list[Any]:
    return list(fig.axes[0].patches)


def test_waterfall_draws_one_bar_per_factor_from_the_average_to_the_child() -> None:
    fig = waterfall_figure(_explanation(), lang="en", max_display=3)
    bars = _bars(fig)
    assert len(bars) == 4  # three factors and "2 other factors"
    # Bottom-up: the rest first, from the average; the largest factor last, ending at the margin.
    score = _explanation()["score"]
    ends = [
        bar.get_x()
        + (bar.get_width() if to_hex(bar.get_facecolor()) == RAISES_COLOUR.lower() else 0.0)
        for bar in bars
    ]
    assert bars[0].get_x() == pytest.approx(score["bias"])  # the rest add up to +0.15
    assert ends[-1] == pytest.approx(score["margin"])
    colours = [to_hex(b.get_facecolor()) for b in bars]
    assert colours == [
        RAISES_COLOUR.lower(),
        RAISES_COLOUR.lower(),
        LOWERS_COLOUR.lower(),
        RAISES_COLOUR.lower(),
    ]
    labels = [t.get_text().replace("\n", " ") for t in fig.axes[0].get_yticklabels()]
    assert labels[-1] == "7 unexcused absence days in the last 90 days"
    assert labels[0] == "2 other factors"


def test_importance_colours_each_feature_by_its_domain() -> None:
    importance = pd.DataFrame(
        {
            "feature": ["a", "b", "c", "d"],
            "domain": ["health", "study_life", "guardianship", "safety"],
            "mean_abs": [0.4, 0.3, 0.2, 0.1],
            "zh": ["甲", "乙", "丙", "丁"],
            "en": ["alpha", "beta", "gamma", "delta"],
        }
    )
    fig = importance_figure(importance, lang="en", top=3)
    bars = _bars(fig)
    assert [to_hex(b.get_facecolor()) for b in bars] == [
        DOMAIN_COLOURS[d].lower() for d in ("guardianship", "study_life", "health")
    ]
    np.testing.assert_allclose([b.get_width() for b in bars], [0.2, 0.3, 0.4])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["physical and mental health", "study and daily life", "family guardianship"]


def test_pngs_are_written_for_supervisors_and_the_model_card(tmp_path: Path) -> None:
    path, lang = waterfall_png(_explanation(), tmp_path / "child" / "waterfall.png", lang="en")
    assert lang == "en"
    width, height = _png_size(path)
    assert width > 600 and height > 200
    importance = pd.DataFrame(
        {"feature": ["a"], "domain": ["health"], "mean_abs": [0.4], "zh": ["甲"], "en": ["alpha"]}
    )
    path, _ = importance_png(importance, tmp_path / "importance.png", lang="en")
    assert _png_size(path)[0] > 400


def test_plots_fall_back_to_english_without_a_chinese_font(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(plots, "cjk_font", lambda: None)
    assert plot_language("zh") == "en"
    assert plot_language("en") == "en"
    _, lang = waterfall_png(_explanation(), tmp_path / "w.png", lang="zh")
    assert lang == "en"


def test_plots_use_chinese_labels_when_a_chinese_font_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(plots, "cjk_font", lambda: "DejaVu Sans")
    assert plot_language("zh") == "zh"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # DejaVu lacks the glyphs: boxes are fine
        fig = waterfall_figure(_explanation(), lang="zh", max_display=2)
    labels = [t.get_text().replace("\n", "") for t in fig.axes[0].get_yticklabels()]
    assert labels[-1] == "近90天无故缺课7天"
    assert labels[0] == "其他 3 项因素"
    assert fig.axes[0].get_yticklabels()[0].get_fontfamily() == ["DejaVu Sans"]


def test_the_font_probe_ignores_placeholder_fonts() -> None:
    found = plots.cjk_font()
    assert found is None or "Last Resort" not in found


def test_a_chinese_font_installed_after_matplotlibs_cache_is_still_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from matplotlib import font_manager

    plots.cjk_font.cache_clear()
    installed = plots.cjk_font()
    plots.cjk_font.cache_clear()
    if installed is None:
        pytest.skip("no font with Chinese glyphs on this machine")
    # The on-disk cache written before the font was installed: Latin fonts only.
    files = {e.fname for e in font_manager.fontManager.ttflist if e.name == installed}
    latin = [e for e in font_manager.fontManager.ttflist if e.fname not in files]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", latin)
    try:
        found = plots.cjk_font()
        assert found is not None
        assert {e.fname for e in font_manager.fontManager.ttflist if e.name == found} <= files
    finally:
        plots.cjk_font.cache_clear()
