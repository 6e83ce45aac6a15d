"""Explanation plots as PNG files: a waterfall per child and the global importance of features.

Both are drawn with matplotlib's Agg canvas on a private ``Figure`` (no pyplot, so no global
state and no display needed). Labels are the caseworker sentences of ``models.explain`` in
Chinese when a font with Chinese glyphs is installed (``fc-list :lang=zh``; Debian's
``fonts-noto-cjk``), and in English otherwise: matplotlib would draw Chinese text as empty
boxes. Each function returns the language it actually used, so a caller can say so.
"""

from __future__ import annotations

import contextlib
import logging
import textwrap
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

Lang = Literal["zh", "en"]

#: Bar colours: red raises risk, blue lowers it (the tier colours of the policy use red too).
RAISES_COLOUR = "#C0392B"
LOWERS_COLOUR = "#2E86C1"
#: One colour per tier-policy domain in the global importance plot.
DOMAIN_COLOURS: dict[str, str] = {
    "health": "#8E44AD",
    "study_life": "#2980B9",
    "guardianship": "#D35400",
    "safety": "#C0392B",
    "other": "#7F8C8D",
}
_DOMAIN_TEXT = {
    "health": ("身心健康", "physical and mental health"),
    "study_life": ("学习生活", "study and daily life"),
    "guardianship": ("家庭监护", "family guardianship"),
    "safety": ("安全保护", "safety and protection"),
    "other": ("其他", "other"),
}
_PROBE = "留守儿童监护"
# Fonts that claim every code point but draw placeholder boxes.
_PLACEHOLDER_FONTS = ("Last Resort",)


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The family name of an installed font that has Chinese glyphs, or None.

    Matplotlib caches its font list on disk the first time it runs; a font installed after
    that (``make demo`` and ``make test`` install one when it is missing) is not in the cached
    list, so the system's font folders are looked through once more before giving up.

    Returns
    -------
    str or None
        A font family usable in ``fontfamily=``; None when only Latin fonts are installed.
    """
    from matplotlib import font_manager

    found = _chinese_family(font_manager.fontManager.ttflist)
    if found is None:
        known = {entry.fname for entry in font_manager.fontManager.ttflist}
        for path in font_manager.findSystemFonts():
            if path not in known:
                with contextlib.suppress(OSError, RuntimeError, ValueError):
                    font_manager.fontManager.addfont(path)
        found = _chinese_family(font_manager.fontManager.ttflist)
    return found


def _chinese_family(fonts: list[Any]) -> str | None:
    from matplotlib import ft2font

    for entry in fonts:
        if any(bad in entry.name for bad in _PLACEHOLDER_FONTS):
            continue
        try:
            font = ft2font.FT2Font(entry.fname)
        except (OSError, RuntimeError, ValueError):
            continue
        if all(font.get_char_index(ord(ch)) for ch in _PROBE):
            return str(entry.name)
    return None


def plot_language(requested: Lang) -> Lang:
    """The language plots will use: Chinese only when a Chinese font is installed.

    Parameters
    ----------
    requested : {"zh", "en"}
        The language asked for.

    Returns
    -------
    {"zh", "en"}
        ``requested``, or ``"en"`` when Chinese was asked for and no font can draw it.
    """
    if requested == "zh" and cjk_font() is None:
        logger.warning(
            "no font with Chinese glyphs is installed (fc-list :lang=zh is empty); plot labels "
            "fall back to English; install fonts-wqy-microhei for Chinese labels."
        )
        return "en"
    return requested


def _label(text: str, width: int) -> str:
    short = text if len(text) <= 2 * width else text[: 2 * width - 1] + "…"
    return "\n".join(textwrap.wrap(short, width)) or text


def _save(fig: Figure, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=120, bbox_inches="tight")
    return path


def _fonts(lang: Lang) -> dict[str, Any]:
    font = cjk_font() if lang == "zh" else None
    return {"fontfamily": font} if font else {}


def waterfall_figure(
    explanation: Mapping[str, Any], *, lang: Lang = "en", max_display: int = 10
) -> Figure:
    """One child's waterfall: from the model's average log-odds to the child's, factor by factor.

    Parameters
    ----------
    explanation : mapping
        From :func:`models.explain.explain_child` (``contributions``, ``score``, ``child_id``,
        ``as_of``, ``model_name``, ``model_version``).
    lang : {"zh", "en"}, default="en"
        Label language, used as given (see :func:`plot_language`).
    max_display : int, default=10
        Factors drawn one by one (largest first); the rest share one bar.

    Returns
    -------
    matplotlib.figure.Figure
        One horizontal bar per factor, bottom-up from the average; red raises, blue lowers.
    """
    from matplotlib.figure import Figure

    used = lang
    zh = lang == "zh"
    factors = list(explanation["contributions"])
    shown, rest = factors[:max_display], factors[max_display:]
    rows: list[tuple[str, float]] = [(str(f[used]), float(f["contribution"])) for f in shown]
    if rest:
        label = f"其他 {len(rest)} 项因素" if zh else f"{len(rest)} other factors"
        rows.append((label, float(sum(f["contribution"] for f in rest))))
    score = explanation["score"]
    start = float(score["bias"])

    height = 1.2 + 0.55 * max(len(rows), 1)
    fig = Figure(figsize=(10, height))
    ax = fig.add_subplot()
    fonts = _fonts(used)
    position = start
    # Drawn bottom-up from the average, as shap's waterfall: the smallest factors first, so
    # the largest sits at the top and ends at the child's own log-odds.
    for y, (_, value) in enumerate(reversed(rows)):
        left = position if value >= 0 else position + value
        colour = RAISES_COLOUR if value > 0 else LOWERS_COLOUR
        ax.barh(y, abs(value), left=left, color=colour, height=0.6)
        ax.text(left + abs(value), y, f" {value:+.2f}", va="center", fontsize=8)
        position += value
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(
        [_label(lbl, 34 if zh else 60) for lbl, _ in reversed(rows)], **fonts, fontsize=8
    )
    ax.axvline(start, color="#555555", linestyle="--", linewidth=0.8)
    ax.axvline(float(score["margin"]), color="#000000", linewidth=0.8)
    ax.set_xlabel("风险对数几率(校准前)" if zh else "risk log-odds (before calibration)", **fonts)
    probability = score.get("p_any")
    title = (
        f"儿童 {explanation['child_id']} · {explanation['as_of']} · 主要影响因素"
        if zh
        else f"Child {explanation['child_id']} · {explanation['as_of']} · main factors"
    )
    if probability is not None:
        title += f" · p={probability:.1%}"
    ax.set_title(title, **fonts, fontsize=10)
    footer = (
        f"平均 {start:+.2f} → 该儿童 {float(score['margin']):+.2f} · 模型 "
        f"{explanation.get('model_name')} v{explanation.get('model_version')}"
        if zh
        else f"average {start:+.2f} → this child {float(score['margin']):+.2f} · model "
        f"{explanation.get('model_name')} v{explanation.get('model_version')}"
    )
    fig.text(0.01, 0.0, footer, fontsize=7, color="#555555", **fonts)
    return fig


def waterfall_png(
    explanation: Mapping[str, Any],
    path: Path,
    *,
    lang: Lang = "zh",
    max_display: int = 10,
) -> tuple[Path, Lang]:
    """Write one child's waterfall (:func:`waterfall_figure`) as a PNG file.

    Parameters
    ----------
    explanation : mapping
        From :func:`models.explain.explain_child`.
    path : Path
        PNG file to write (folders are created).
    lang : {"zh", "en"}, default="zh"
        Label language; English when no Chinese font is installed.
    max_display : int, default=10
        Factors drawn one by one; the rest share one bar.

    Returns
    -------
    (Path, str)
        The file written and the language used.
    """
    used = plot_language(lang)
    return _save(waterfall_figure(explanation, lang=used, max_display=max_display), path), used


def importance_figure(importance: pd.DataFrame, *, lang: Lang = "en", top: int = 20) -> Figure:
    """Global importance: mean absolute contribution per feature, coloured by domain.

    Parameters
    ----------
    importance : DataFrame
        From :func:`models.explain.global_importance` (``feature``, ``domain``, ``mean_abs``,
        ``zh``, ``en``).
    lang : {"zh", "en"}, default="en"
        Label language, used as given (see :func:`plot_language`).
    top : int, default=20
        Features drawn (largest at the top).

    Returns
    -------
    matplotlib.figure.Figure
        One bar per feature in its domain's colour (:data:`DOMAIN_COLOURS`), with a legend.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    used = lang
    zh = lang == "zh"
    rows = importance.sort_values("mean_abs", ascending=False).head(top).iloc[::-1]
    fig = Figure(figsize=(10, 1.2 + 0.42 * max(len(rows), 1)))
    ax = fig.add_subplot()
    fonts = _fonts(used)
    colours = [DOMAIN_COLOURS.get(str(d), DOMAIN_COLOURS["other"]) for d in rows["domain"]]
    ax.barh(range(len(rows)), rows["mean_abs"].to_numpy(), color=colours, height=0.7)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([_label(str(t), 34 if zh else 60) for t in rows[used]], **fonts, fontsize=8)
    ax.set_xlabel(
        "平均绝对贡献(风险对数几率)" if zh else "mean |contribution| (risk log-odds)", **fonts
    )
    ax.set_title(
        "全局特征重要性(按四个领域着色)" if zh else "Global feature importance, coloured by domain",
        **fonts,
        fontsize=10,
    )
    present = [d for d in DOMAIN_COLOURS if d in set(rows["domain"])]
    handles = [
        Patch(color=DOMAIN_COLOURS[d], label=_DOMAIN_TEXT[d][0 if zh else 1]) for d in present
    ]
    legend = ax.legend(handles=handles, loc="lower right", fontsize=8)
    if fonts:
        for text in legend.get_texts():
            text.set_fontfamily(fonts["fontfamily"])
    return fig


def importance_png(
    importance: pd.DataFrame,
    path: Path,
    *,
    lang: Lang = "zh",
    top: int = 20,
) -> tuple[Path, Lang]:
    """Write the global importance plot (:func:`importance_figure`) as a PNG file.

    Parameters
    ----------
    importance : DataFrame
        From :func:`models.explain.global_importance`.
    path : Path
        PNG file to write (folders are created).
    lang : {"zh", "en"}, default="zh"
        Label language; English when no Chinese font is installed.
    top : int, default=20
        Features drawn.

    Returns
    -------
    (Path, str)
        The file written and the language used.
    """
    used = plot_language(lang)
    return _save(importance_figure(importance, lang=used, top=top), path), used


__all__ = [
    "DOMAIN_COLOURS",
    "LOWERS_COLOUR",
    "RAISES_COLOUR",
    "cjk_font",
    "importance_figure",
    "importance_png",
    "plot_language",
    "waterfall_figure",
    "waterfall_png",
]
