"""Explanations: each score's top factors as sentences a caseworker understands.

Contributions are exact TreeSHAP values of the tree model in log-odds (path-dependent, the
algorithm ``shap.TreeExplainer`` uses for LightGBM, which simply calls LightGBM's own
``pred_contrib``; :func:`contributions_agree` checks the two give the same numbers). Each row's
contributions plus the bias sum to the model's raw margin, before calibration.

A reason is one feature's contribution for one child, rendered from the feature registry
(``features.definitions``: description, unit, domain) and the child's value::

    {"feature": "unexcused_absence_days_90d", "domain": "study_life", "direction": "raises",
     "contribution": 0.41, "value": 7,
     "zh": "近90天无故缺课7天", "en": "7 unexcused absence days in the last 90 days"}

Sentences are never retyped here: they are built from the registry's wording by a few rules on
the unit and the kind of aggregation (see :func:`sentence`), so a new feature gets its sentence
from its declaration.

Scale
-----
Exact TreeSHAP costs about trees × leaves × depth² per row, far more than scoring. Measured
on 2 shared cores (``benchmarks/explain.py``, 99 features): a 200-tree, 31-leaf model (mean
depth 11) takes about 1.4 CPU-ms per row, so a million children need about 25 minutes; a
200-tree, 7-leaf model (depth 5) about 0.13 CPU-ms. The default model has 100 trees of 7
leaves (``models.train.BoosterParams``: on the generated population it ranks children as
well as larger ones), so model shape is the first lever; the second is explaining at scoring
time only the children a person acts on now (``models.scoring.score(explain_tiers=...)``,
T1-T3) and T4 on demand. ``benchmarks/scoring.py`` measures the whole scoring run on a
million children.

:func:`explain_frame` and :func:`top_contributions` work in batches of plain float matrices
(the model's own encoding, no per-row pandas), keep only the top ``k`` reasons per row
(``argpartition``, no full sort), render each distinct (feature, value) sentence once, and run
LightGBM on every core (each row's values are computed independently, so the thread count
never changes them).
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.definitions import DERIVED, DOMAINS, VIEWS, registry_records
from features.schema import TABLES_BY_NAME
from models.bundle import ANY, ModelBundle

if TYPE_CHECKING:
    import duckdb

    from models.policy import TierPolicy

logger = logging.getLogger(__name__)

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int32]
Kind: TypeAlias = Literal["count", "days_since", "measure", "share", "change", "flag", "category"]
Lang: TypeAlias = Literal["zh", "en"]

#: Keys of every reason, in display order.
REASON_KEYS: tuple[str, ...] = (
    "feature",
    "domain",
    "direction",
    "contribution",
    "value",
    "zh",
    "en",
)
#: Domain of a model feature that is not in the registry (never the case for real bundles).
OTHER_DOMAIN = "other"
#: Rows explained per batch: bounds memory (a 50,000-row batch of 100 features is 40 MB of
#: contributions) while keeping LightGBM's per-call overhead negligible.
DEFAULT_BATCH = 50_000

_DIRECTION_TEXT = {"raises": ("升高风险", "raises risk"), "lowers": ("降低风险", "lowers risk")}

# --------------------------------------------------------------------------------------------
# Feature wording
# --------------------------------------------------------------------------------------------

# Measure words for the registry's units. Chinese counts take a classifier (7天, 2次, 3起);
# English needs singular and plural.
_UNIT_ZH = {
    "days": "天",
    "visits": "次",
    "months": "个月",
    "weeks": "周",
    "incidents": "起",
    "records": "条",
    "screenings": "次",
    "changes": "次",
    "subjects": "门",
    "points": "分",
    "years": "岁",
    "grade": "",
    "share": "%",
}
_UNIT_EN = {
    "days": ("day", "days"),
    "visits": ("visit", "visits"),
    "months": ("month", "months"),
    "weeks": ("week", "weeks"),
    "incidents": ("incident", "incidents"),
    "records": ("record", "records"),
    "screenings": ("screening", "screenings"),
    "changes": ("change", "changes"),
    "subjects": ("subject", "subjects"),
    "points": ("point", "points"),
    "years": ("year", "years"),
}
# Chinese descriptions of counts end in "…天数", "…的次数", "…记录数": the ending becomes the
# number and its measure word ("近90天无故缺课天数" → "近90天无故缺课7天").
_ZH_ENDINGS: tuple[tuple[str, str, str], ...] = (
    ("的天数", "", "天"),
    ("天数", "", "天"),
    ("的次数", "", "次"),
    ("次数", "", "次"),
    ("的周数", "", "周"),
    ("周数", "", "周"),
    ("的月数", "", "个月"),
    ("月数", "", "个月"),
    ("记录数", "记录", "条"),
    ("事件数", "事件", "起"),
    ("科目数", "科目", "门"),
)
_TRAILING_NOTE = re.compile(r"^(?P<core>.*?)(?P<note>[(（][^()（）]*[)）])$")
# A short bracket ("年龄(周岁)") qualifies the noun and stays; a longer one is a note for the
# reader and goes after the value.
_SHORT_NOTE = 3


@dataclass(frozen=True)
class FeatureText:
    """How one feature is worded: registry text, unit, domain, and category labels.

    Attributes
    ----------
    name : str
        Feature name.
    domain : str
        One of the four tier-policy domains (``OTHER_DOMAIN`` for a feature outside the
        registry).
    kind : str
        How the value reads: ``count``, ``days_since``, ``measure``, ``share``, ``change``,
        ``flag`` or ``category``.
    unit : str
        The registry's unit (``days``, ``visits``…, ``share``, or empty).
    zh, en : str
        The registry's descriptions.
    labels : mapping of str to (str, str)
        Chinese and English label of each category code (``features.schema``).
    """

    name: str
    domain: str
    kind: Kind
    unit: str
    zh: str
    en: str
    labels: Mapping[str, tuple[str, str]] = field(default_factory=dict)


def _kind(record: Mapping[str, Any], agg: str | None) -> Kind:
    name, dtype, unit = record["name"], record["dtype"], record["unit"]
    if dtype == "boolean":
        return "flag"
    if dtype == "category":
        return "category"
    if agg in ("count", "sum", "empty_periods"):
        return "count"
    if agg == "days_since" or (agg is None and unit == "days" and name.startswith("days_since")):
        return "days_since"
    if agg is None and name.endswith(("_trend", "_change")):
        return "change"
    return "share" if unit == "share" else "measure"


@lru_cache(maxsize=1)
def feature_texts() -> dict[str, FeatureText]:
    """The wording of every feature in the registry, by name.

    Returns
    -------
    dict of str to FeatureText
        Built from ``features.definitions`` and the category codes of ``features.schema``.
    """
    aggs: dict[str, str | None] = {f.name: f.agg for v in VIEWS for f in v.fields}
    aggs.update({d.name: None for d in DERIVED})
    labels: dict[str, dict[str, tuple[str, str]]] = {}
    for view in VIEWS:
        for fld in view.fields:
            if fld.dtype == "category" and fld.column is not None:
                column = TABLES_BY_NAME[view.source].column(fld.column)
                labels[fld.name] = {c.code: (c.zh, c.en) for c in column.codes}
    out: dict[str, FeatureText] = {}
    for rec in registry_records():
        name = rec["name"]
        out[name] = FeatureText(
            name=name,
            domain=rec["domain"],
            kind=_kind(rec, aggs.get(name)),
            unit=rec["unit"],
            zh=rec["zh"],
            en=rec["en"],
            labels=labels.get(name, {}),
        )
    return out


def _text_of(name: str) -> FeatureText:
    text = feature_texts().get(name)
    if text is not None:
        return text
    # A model column outside the registry (a test model): say what we can, never fail.
    return FeatureText(name, OTHER_DOMAIN, "measure", "", name, name.replace("_", " "))


def _number(value: float, *, signed: bool = False) -> str:
    """A value as people write it: whole numbers without decimals, else one decimal."""
    rounded = round(value, 1)
    text = str(int(rounded)) if float(rounded).is_integer() else f"{rounded:.1f}"
    if signed and rounded > 0:
        return "+" + text
    return "0" if text == "-0" else text


def _split_note(zh: str) -> tuple[str, str]:
    match = _TRAILING_NOTE.match(zh)
    if match is None or len(match["note"]) - 2 <= _SHORT_NOTE:
        return zh, ""
    return match["core"], match["note"]


def _zh_sentence(text: FeatureText, value: Any) -> str:
    # "Description：value" keeps the description whole ("困难救助类型(低保、特困)：无"); only
    # sentences that put the number inside move a long bracketed note after it.
    if value is None:
        return f"{text.zh}：无记录"
    if text.kind == "flag":
        return f"{text.zh}：{'是' if value else '否'}"
    if text.kind == "category":
        return f"{text.zh}：{text.labels.get(str(value), (str(value), ''))[0]}"
    core, note = _split_note(text.zh)
    if text.kind == "share":
        return f"{core}为{_number(100 * value)}%{note}"
    if text.kind == "change":
        if text.unit == "share":
            return f"{core}为{_number(100 * value, signed=True)}个百分点{note}"
        return f"{core}为{_number(value, signed=True)}{_UNIT_ZH.get(text.unit, '')}{note}"
    number = _number(value)
    for ending, keep, measure in _ZH_ENDINGS:
        if core.endswith(ending):
            stem = core[: -len(ending)] + keep
            since = "已" if text.kind == "days_since" else ""
            return f"{stem}{since}{number}{measure}{note}"
    return f"{core}为{number}{_UNIT_ZH.get(text.unit, '')}{note}"


def _en_sentence(text: FeatureText, value: Any) -> str:
    desc = text.en
    if value is None:
        return f"{desc}: no record"
    if text.kind == "flag":
        return f"{desc}: {'yes' if value else 'no'}"
    if text.kind == "category":
        return f"{desc}: {text.labels.get(str(value), ('', str(value)))[1]}"
    if text.kind == "share":
        return f"{desc}: {_number(100 * value)}%"
    if text.kind == "change":
        if text.unit == "share":
            return f"{desc}: {_number(100 * value, signed=True)} percentage points"
        return f"{desc}: {_number(value, signed=True)} {text.unit}".rstrip()
    number = _number(value)
    words = _UNIT_EN.get(text.unit)
    if words is None:
        return f"{desc}: {number}"
    singular, plural = words
    word = re.compile(rf"\b{plural}\b")
    # "7 unexcused absence days in the last 90 days": a count whose description names its
    # unit reads best with the number first; otherwise "description: 12 days".
    leads = desc.startswith(plural) or (text.kind == "count" and word.search(desc) is not None)
    if leads:
        body = word.sub(singular, desc, count=1) if number == "1" else desc
        return f"{number} {body}"
    return f"{desc}: {number} {singular if number == '1' else plural}"


@lru_cache(maxsize=262_144)
def sentence(feature: str, value: Any) -> tuple[str, str]:
    """One feature's value as a Chinese and an English sentence.

    Parameters
    ----------
    feature : str
        Feature name.
    value : int, float, bool, str or None
        The child's value: a number, a flag, a category code, or ``None`` when missing.

    Returns
    -------
    (str, str)
        The Chinese and the English sentence.

    Examples
    --------
    >>> sentence("unexcused_absence_days_90d", 7)
    ('近90天无故缺课7天', '7 unexcused absence days in the last 90 days')
    >>> sentence("visits_90d", 1)
    ('近90天走访1次', '1 home visit in the last 90 days')
    >>> sentence("guardianship_capacity", "absent")
    ('监护能力评估：监护缺失', 'assessed guardianship capacity: absent')
    """
    text = _text_of(feature)
    return _zh_sentence(text, value), _en_sentence(text, value)


# --------------------------------------------------------------------------------------------
# Contributions
# --------------------------------------------------------------------------------------------


def _threads(n_threads: int | None) -> int:
    return n_threads if n_threads and n_threads > 0 else (os.cpu_count() or 1)


def _model_frame(bundle: ModelBundle, frame: pd.DataFrame) -> pd.DataFrame:
    missing = [n for n in bundle.feature_names if n not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks feature columns {missing}")
    return frame.loc[:, list(bundle.feature_names)]


def contributions(
    bundle: ModelBundle,
    frame: pd.DataFrame,
    *,
    domain: str = ANY,
    n_threads: int | None = None,
) -> FloatArray:
    """Per-feature log-odds contributions and the bias, as one float matrix.

    Parameters
    ----------
    bundle : ModelBundle
        The models.
    frame : DataFrame
        Rows to explain; must hold every column of ``bundle.feature_names``.
    domain : str, default="any"
        Outcome whose model to explain.
    n_threads : int, optional
        LightGBM threads (default: every core). Each row is computed on its own, so the
        values do not depend on it.

    Returns
    -------
    ndarray of shape (n_rows, n_features + 1)
        Columns in ``bundle.feature_names`` order, then the bias; each row sums to the raw
        margin of the model.

    Raises
    ------
    ValueError
        If the bundle has no model for ``domain`` or a feature column is missing.
    """
    if domain not in bundle.models:
        raise ValueError(f"no model for {domain!r}; the bundle has {list(bundle.outcomes)}")
    model = bundle.models[domain].model
    features = _model_frame(bundle, frame)
    booster = getattr(model, "booster_", None)
    encode = getattr(model, "_matrix", None)
    if booster is not None and encode is not None:
        # The estimator's own encoding (category levels → training codes), then LightGBM
        # directly: RiskClassifier.contributions would run single-threaded (its n_jobs) and
        # wrap the result in a DataFrame.
        matrix = encode(features)
        values = booster.predict(matrix, pred_contrib=True, num_threads=_threads(n_threads))
        return np.asarray(values, dtype=np.float64)
    return np.asarray(bundle.contributions(features, domain).to_numpy(), dtype=np.float64)


@dataclass(frozen=True)
class TopContributions:
    """The ``k`` largest contributions (by absolute value) of each row, as plain arrays.

    This is what a scoring run keeps beside each score: about 100 bytes per child, from which
    :func:`reasons_from_top` renders the sentences at any time.

    Attributes
    ----------
    feature_names : tuple of str
        Model features; ``index`` points into it.
    index : ndarray of shape (n_rows, k), int32
        Feature positions, largest contribution first; -1 pads rows with fewer than ``k``
        non-zero contributions.
    value : ndarray of shape (n_rows, k), float64
        The contributions (log-odds); 0 where padded.
    bias : ndarray of shape (n_rows,)
        The expected margin (same for every row of one model).
    margin : ndarray of shape (n_rows,)
        The raw margin: bias plus every contribution, not only the top ``k``.
    """

    feature_names: tuple[str, ...]
    index: IntArray
    value: FloatArray
    bias: FloatArray
    margin: FloatArray


def _top_k(values: FloatArray, k: int) -> tuple[IntArray, FloatArray]:
    """Positions and values of the ``k`` largest |values| per row, largest first."""
    n_rows, n_features = values.shape
    k = min(k, n_features)
    magnitude = np.abs(values)
    if k < n_features:
        part = np.argpartition(magnitude, n_features - k, axis=1)[:, n_features - k :]
    else:
        part = np.broadcast_to(np.arange(n_features), (n_rows, n_features))
    order = np.argsort(-np.take_along_axis(magnitude, part, axis=1), axis=1, kind="stable")
    index = np.take_along_axis(part, order, axis=1).astype(np.int32)
    top = np.take_along_axis(values, index, axis=1)
    # A feature the row's trees never split on contributes exactly 0: not a reason.
    index[top == 0.0] = -1
    return index, np.where(index >= 0, top, 0.0)


def _batches(n_rows: int, batch_size: int) -> Iterator[slice]:
    size = max(1, int(batch_size))
    for start in range(0, n_rows, size):
        yield slice(start, min(start + size, n_rows))


def top_contributions(
    bundle: ModelBundle,
    features: pd.DataFrame,
    *,
    domain: str = ANY,
    top_k: int = 5,
    batch_size: int = DEFAULT_BATCH,
    n_threads: int | None = None,
) -> TopContributions:
    """The top ``k`` contributions of every row, computed in batches.

    Parameters
    ----------
    bundle : ModelBundle
        The models.
    features : DataFrame
        Rows to explain (every column of ``bundle.feature_names``; others are ignored).
    domain : str, default="any"
        Outcome whose model to explain.
    top_k : int, default=5
        Reasons kept per row.
    batch_size : int, default=50,000
        Rows per batch (memory is about ``batch_size × features × 8`` bytes).
    n_threads : int, optional
        LightGBM threads (default: every core).

    Returns
    -------
    TopContributions
        Arrays aligned with the rows of ``features``.
    """
    n_rows, n_features = len(features), len(bundle.feature_names)
    k = max(0, min(top_k, n_features))
    index = np.full((n_rows, k), -1, dtype=np.int32)
    value = np.zeros((n_rows, k), dtype=np.float64)
    bias = np.zeros(n_rows, dtype=np.float64)
    margin = np.zeros(n_rows, dtype=np.float64)
    for rows in _batches(n_rows, batch_size):
        contrib = contributions(bundle, features.iloc[rows], domain=domain, n_threads=n_threads)
        index[rows], value[rows] = _top_k(contrib[:, :n_features], k)
        bias[rows] = contrib[:, n_features]
        margin[rows] = contrib.sum(axis=1)
    return TopContributions(tuple(bundle.feature_names), index, value, bias, margin)


# --------------------------------------------------------------------------------------------
# Reasons
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Decoder:
    """Feature values of a frame as one float matrix plus what is needed to read them back."""

    matrix: FloatArray
    categories: tuple[tuple[str, ...] | None, ...]
    texts: tuple[FeatureText, ...]

    @classmethod
    def of(cls, frame: pd.DataFrame, names: Sequence[str]) -> _Decoder:
        columns: list[FloatArray] = []
        categories: list[tuple[str, ...] | None] = []
        for name in names:
            col = frame[name]
            if isinstance(col.dtype, pd.CategoricalDtype) or not (
                pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype)
            ):
                cat = (
                    pd.Categorical(col)
                    if not isinstance(col.dtype, pd.CategoricalDtype)
                    else (col.array)
                )
                codes = np.asarray(cat.codes, dtype=np.float64)
                codes[codes < 0] = np.nan
                columns.append(codes)
                categories.append(tuple(str(c) for c in cat.categories))
            else:
                columns.append(np.asarray(col.to_numpy(dtype=np.float64, na_value=np.nan)))
                categories.append(None)
        matrix = np.column_stack(columns) if columns else np.empty((len(frame), 0))
        return cls(matrix, tuple(categories), tuple(_text_of(n) for n in names))

    def value(self, row: int, j: int) -> Any:
        """The plain value of feature ``j`` in ``row`` (None when missing)."""
        return self.decode(j, float(self.matrix[row, j]))

    def decode(self, j: int, raw: float) -> Any:
        """A stored float of feature ``j`` as its plain value (None when missing)."""
        if math.isnan(raw):
            return None
        cats = self.categories[j]
        if cats is not None:
            return cats[int(raw)]
        kind = self.texts[j].kind
        if kind == "flag":
            return bool(raw)
        if kind == "count" or (kind == "days_since" and raw.is_integer()):
            return int(raw)
        return raw


def _reason(text: FeatureText, contribution: float, value: Any) -> dict[str, Any]:
    zh, en = sentence(text.name, value)
    return {
        "feature": text.name,
        "domain": text.domain,
        "direction": "raises" if contribution > 0 else "lowers",
        "contribution": contribution,
        "value": value,
        "zh": zh,
        "en": en,
    }


def _value_text(value: Any) -> str | None:
    """A reason's value as stored text: features mix numbers, flags and category codes."""
    if value is None:
        return None
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def reasons_from_top(
    top: TopContributions, features: pd.DataFrame, *, text_values: bool = False
) -> list[list[dict[str, Any]]]:
    """Render stored top contributions as reasons, with the rows' feature values.

    Parameters
    ----------
    top : TopContributions
        From :func:`top_contributions` on the same rows.
    features : DataFrame
        The rows' feature values (for the sentences).
    text_values : bool, default=False
        Give each ``value`` as text (``"7"``, ``"0.25"``, ``"True"``, a category code, or
        None), the form a scoring run stores; otherwise as the plain value.

    Returns
    -------
    list of list of dict
        Per row, its reasons (keys :data:`REASON_KEYS`), largest contribution first.
    """
    if len(features) != len(top.index):
        raise ValueError(f"{len(features)} feature rows for {len(top.index)} explained rows")
    decoder = _Decoder.of(features, top.feature_names)
    names = top.feature_names
    domains = [t.domain for t in decoder.texts]
    # The values of each row's top features in one gather; the loop below only builds the
    # records (hundreds of thousands of rows: no per-row pandas, no per-reason calls it can
    # avoid, sentences from the cache).
    raw = np.take_along_axis(decoder.matrix, np.maximum(top.index, 0), axis=1).tolist()
    out: list[list[dict[str, Any]]] = []
    for features_i, contribs_i, raw_i in zip(
        top.index.tolist(), top.value.tolist(), raw, strict=True
    ):
        row: list[dict[str, Any]] = []
        for j, c, r in zip(features_i, contribs_i, raw_i, strict=True):
            if j < 0:
                break
            value = decoder.decode(j, r)
            zh, en = sentence(names[j], value)
            row.append(
                {
                    "feature": names[j],
                    "domain": domains[j],
                    "direction": "raises" if c > 0 else "lowers",
                    "contribution": c,
                    "value": _value_text(value) if text_values else value,
                    "zh": zh,
                    "en": en,
                }
            )
        out.append(row)
    return out


def explain_frame(
    bundle: ModelBundle,
    features: pd.DataFrame,
    *,
    domain: str = ANY,
    top_k: int = 5,
    batch_size: int = DEFAULT_BATCH,
    n_threads: int | None = None,
    text_values: bool = False,
) -> list[list[dict[str, Any]]]:
    """The top reasons of every row: feature, domain, direction, contribution and sentences.

    Parameters
    ----------
    bundle : ModelBundle
        The models.
    features : DataFrame
        Rows to explain (every column of ``bundle.feature_names``; others are ignored).
    domain : str, default="any"
        Outcome whose model to explain.
    top_k : int, default=5
        Reasons per row, by absolute contribution; features contributing exactly nothing
        are never reasons, so a row may have fewer.
    batch_size : int, default=50,000
        Rows per batch.
    n_threads : int, optional
        LightGBM threads (default: every core).
    text_values : bool, default=False
        Values as stored text (see :func:`reasons_from_top`).

    Returns
    -------
    list of list of dict
        Per row, its reasons with keys :data:`REASON_KEYS`: ``direction`` is ``"raises"`` for
        a positive contribution (log-odds) and ``"lowers"`` for a negative one; ``value`` is
        the child's value (a category code, a flag, a number, or None when missing); ``zh``
        and ``en`` are the sentences.

    Examples
    --------
    >>> reasons = explain_frame(bundle, frame, top_k=3)  # doctest: +SKIP
    >>> reasons[0][0]["zh"]  # doctest: +SKIP
    '近90天无故缺课7天'
    """
    out: list[list[dict[str, Any]]] = []
    for rows in _batches(len(features), batch_size):
        part = features.iloc[rows]
        top = top_contributions(
            bundle, part, domain=domain, top_k=top_k, batch_size=batch_size, n_threads=n_threads
        )
        out.extend(reasons_from_top(top, part, text_values=text_values))
    return out


def global_importance(
    bundle: ModelBundle,
    features: pd.DataFrame,
    *,
    domain: str = ANY,
    batch_size: int = DEFAULT_BATCH,
    n_threads: int | None = None,
) -> pd.DataFrame:
    """Mean absolute contribution of each feature over a frame (global importance).

    Parameters
    ----------
    bundle : ModelBundle
        The models.
    features : DataFrame
        Rows to average over (a sample of a scoring run is enough).
    domain : str, default="any"
        Outcome whose model to explain.
    batch_size : int, default=50,000
        Rows per batch.
    n_threads : int, optional
        LightGBM threads (default: every core).

    Returns
    -------
    DataFrame
        ``feature``, ``domain``, ``mean_abs`` (log-odds), ``mean`` (signed), ``zh``, ``en``
        (registry descriptions); largest ``mean_abs`` first.
    """
    n_features = len(bundle.feature_names)
    total_abs = np.zeros(n_features)
    total = np.zeros(n_features)
    for rows in _batches(len(features), batch_size):
        contrib = contributions(bundle, features.iloc[rows], domain=domain, n_threads=n_threads)
        total_abs += np.abs(contrib[:, :n_features]).sum(axis=0)
        total += contrib[:, :n_features].sum(axis=0)
    n_rows = max(len(features), 1)
    texts = [_text_of(n) for n in bundle.feature_names]
    frame = pd.DataFrame(
        {
            "feature": list(bundle.feature_names),
            "domain": [t.domain for t in texts],
            "mean_abs": total_abs / n_rows,
            "mean": total / n_rows,
            "zh": [t.zh for t in texts],
            "en": [t.en for t in texts],
        }
    )
    return frame.sort_values("mean_abs", ascending=False, kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# One child
# --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _rules(policy: TierPolicy, record: Mapping[str, Any]) -> list[dict[str, Any]]:
    from models.policy import fired_rules

    by_name = {rule.name: rule for rule in policy.rules}
    out: list[dict[str, Any]] = []
    for fired in fired_rules(policy, record):
        rule = by_name[fired.name]
        out.append(
            {
                "rule": fired.label,
                "kind": fired.kind,
                "name": fired.name,
                "tier": str(fired.tier),
                "domain": rule.domain,
                "zh": rule.zh,
                "en": rule.en,
            }
        )
    return out


def explain_child(
    bundle: ModelBundle,
    features: pd.DataFrame,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    domain: str = ANY,
    top_k: int = 5,
    per_domain: int = 3,
    model_name: str | None = None,
    model_version: int | str | None = None,
    policy: TierPolicy | None = None,
) -> dict[str, Any]:
    """One child's explanation: score, rules fired, reasons by domain, evidence, provenance.

    Parameters
    ----------
    bundle : ModelBundle
        The models.
    features : DataFrame
        One row as ``FeatureStore.as_of_frame`` returns it (``child_id``, ``as_of``, then the
        features).
    con : duckdb.DuckDBPyConnection, optional
        The raw store; when given, every reason cites its source records
        (:func:`features.evidence.evidence_frame`).
    domain : str, default="any"
        Outcome whose model to explain.
    top_k : int, default=5
        Reasons in ``top_reasons``.
    per_domain : int, default=3
        Reasons listed under each of the four domains.
    model_name, model_version : str and int, optional
        The registered model and its version (``shouhu-risk``, 3), recorded as provenance
        exactly as a scoring run stores them.
    policy : TierPolicy, optional
        When given, the hard and floor rules that fire for the child are listed by name,
        whatever the tier (tier-policy.md: every rule that fires is shown).

    Returns
    -------
    dict
        ``child_id``, ``as_of``, ``outcome``, ``model_name``, ``model_version``,
        ``policy_version`` (of the rules evaluated; ``model_policy_version`` is the one the
        model was trained under), ``policy_fingerprint``,
        ``feature_fingerprint``, ``score`` (calibrated probability, its band, raw margin and
        bias), ``rules_fired``, ``top_reasons``, ``domains`` (the four domains in policy order,
        each with its total contribution and top reasons) and ``contributions`` (every
        non-zero contribution, largest first). Reasons carry :data:`REASON_KEYS` plus
        ``evidence`` (a list of records; empty without ``con``). JSON-ready; no identity
        numbers or names: the child is named by its pseudonymous id only.

    Raises
    ------
    ValueError
        If ``features`` is not exactly one row.
    """
    if len(features) != 1:
        raise ValueError(f"explain_child needs exactly one row, got {len(features)}")
    row = features.iloc[0]
    child_id = str(row["child_id"]) if "child_id" in features.columns else None
    as_of = pd.Timestamp(row["as_of"]).date() if "as_of" in features.columns else None

    contrib = contributions(bundle, features, domain=domain, n_threads=1)[0]
    names = bundle.feature_names
    decoder = _Decoder.of(features, names)
    order = np.argsort(-np.abs(contrib[: len(names)]), kind="stable")
    reasons = [
        _reason(decoder.texts[j], float(contrib[j]), decoder.value(0, int(j)))
        for j in order
        if contrib[j] != 0.0
    ]
    top = reasons[:top_k]
    groups: list[dict[str, Any]] = []
    domain_names = [
        *DOMAINS,
        *([OTHER_DOMAIN] if any(r["domain"] == OTHER_DOMAIN for r in reasons) else []),
    ]
    for name in domain_names:
        own = [r for r in reasons if r["domain"] == name]
        total = float(sum(r["contribution"] for r in own))
        zh, en = DOMAINS.get(name, ("其他", "other"))
        groups.append(
            {
                "domain": name,
                "zh": zh,
                "en": en,
                "contribution": total,
                "direction": "raises" if total > 0 else "lowers",
                "reasons": own[:per_domain],
            }
        )
    shown = {r["feature"] for r in top} | {r["feature"] for g in groups for r in g["reasons"]}
    evidence: dict[str, list[dict[str, Any]]] = {f: [] for f in shown}
    if con is not None and child_id is not None and as_of is not None and shown:
        from features.evidence import EVIDENCE_KEYS, evidence_frame

        cited = evidence_frame(con, [child_id], sorted(shown), as_of)
        for rec in cited.to_dict(orient="records"):
            evidence[rec["feature"]].append({k: rec[k] for k in EVIDENCE_KEYS})
    for reason in [*top, *(r for g in groups for r in g["reasons"])]:
        reason["evidence"] = evidence.get(reason["feature"], [])

    scores = bundle.predict(features)
    score: dict[str, Any] = {
        "outcome": domain,
        "margin": float(contrib.sum()),
        "bias": float(contrib[len(names)]),
    }
    if domain == ANY:
        score.update({c: float(scores[c].iloc[0]) for c in ("p_any", "p_low", "p_high")})
    else:
        score[f"p_{domain}"] = float(scores[f"p_{domain}"].iloc[0])
    record = {str(k): _plain(v) for k, v in row.items()}
    return {
        "child_id": child_id,
        "as_of": as_of.isoformat() if as_of is not None else None,
        "outcome": domain,
        "model_name": model_name,
        "model_version": model_version,
        "policy_version": policy.version if policy is not None else bundle.policy_version,
        "policy_fingerprint": (
            policy.fingerprint() if policy is not None else bundle.policy_fingerprint
        ),
        "model_policy_version": bundle.policy_version,
        "feature_fingerprint": bundle.feature_fingerprint,
        "score": score,
        "rules_fired": _rules(policy, record) if policy is not None else [],
        "top_reasons": top,
        "domains": groups,
        "contributions": [
            {
                "feature": r["feature"],
                "domain": r["domain"],
                "contribution": r["contribution"],
                "zh": r["zh"],
                "en": r["en"],
            }
            for r in reasons
        ],
    }


_PHRASES: dict[str, dict[str, str]] = {
    "zh": {
        "title": "儿童 {child} 截至 {as_of} 的风险说明",
        "provenance": "模型 {model} v{version} · 分级方案 {policy}",
        "probability": "未来90天发生不良事件的概率 {p}(区间 {low}–{high})",
        "rules": "触发的规则:",
        "none": " 无",
        "domain": "【{zh}】",
        "no_factor": "  (无影响因素)",
        "evidence": "      证据: {table} {record_id}(发生 {event_date},录入 {recorded_at};"
        "{file} 第{row}行)",
        "more": "      …另有 {n} 条记录",
    },
    "en": {
        "title": "Risk explanation for child {child} as of {as_of}",
        "provenance": "model {model} v{version} · policy {policy}",
        "probability": "probability of an adverse event in the next 90 days {p} "
        "(band {low}–{high})",
        "rules": "rules fired:",
        "none": " none",
        "domain": "[{en}]",
        "no_factor": "  (no factor)",
        "evidence": "      evidence: {table} {record_id} (event {event_date}, recorded "
        "{recorded_at}; {file} row {row})",
        "more": "      …and {n} more",
    },
}


def render_text(explanation: Mapping[str, Any], lang: Lang = "zh", *, evidence: int = 3) -> str:
    """A child's explanation as plain text for a terminal, in Chinese or English.

    Parameters
    ----------
    explanation : mapping
        From :func:`explain_child`.
    lang : {"zh", "en"}, default="zh"
        Language of the sentences and headings.
    evidence : int, default=3
        Records shown per reason (the rest are counted).

    Returns
    -------
    str
        Several lines: who and when, score and provenance, rules fired, then each domain
        with its reasons (direction, sentence, contribution) and their source records.
    """
    words = _PHRASES[lang]
    score = explanation["score"]
    lines = [
        words["title"].format(child=explanation["child_id"], as_of=explanation["as_of"]),
        words["provenance"].format(
            model=explanation.get("model_name"),
            version=explanation.get("model_version"),
            policy=explanation["policy_version"],
        ),
    ]
    if "p_any" in score:
        lines.append(
            words["probability"].format(
                p=f"{score['p_any']:.1%}",
                low=f"{score['p_low']:.1%}",
                high=f"{score['p_high']:.1%}",
            )
        )
    rules = explanation["rules_fired"]
    lines.append(words["rules"] + ("" if rules else words["none"]))
    lines.extend(f"  {rule['rule']}  {rule[lang]}" for rule in rules)
    for group in explanation["domains"]:
        lines.append(words["domain"].format(**group))
        if not group["reasons"]:
            lines.append(words["no_factor"])
        for reason in group["reasons"]:
            arrow = "↑" if reason["direction"] == "raises" else "↓"
            said = _DIRECTION_TEXT[reason["direction"]][0 if lang == "zh" else 1]
            lines.append(f"  {arrow} {said}  {reason[lang]}  ({reason['contribution']:+.2f})")
            records = reason.get("evidence", [])
            lines.extend(words["evidence"].format(**rec) for rec in records[:evidence])
            if len(records) > evidence:
                lines.append(words["more"].format(n=len(records) - evidence))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def contributions_agree(bundle: ModelBundle, frame: pd.DataFrame, *, domain: str = ANY) -> float:
    """Largest difference between ``shap.TreeExplainer`` and LightGBM's ``pred_contrib``.

    Both explain the same encoded rows; the bias is compared with the explainer's
    ``expected_value``.

    Parameters
    ----------
    bundle : ModelBundle
        The models; the ``domain`` model must be a LightGBM ``RiskClassifier``.
    frame : DataFrame
        Rows to compare on.
    domain : str, default="any"
        Outcome whose model to check.

    Returns
    -------
    float
        Max absolute difference over every row, feature and the bias (0.0 with shap 0.51,
        whose path-dependent explainer calls ``pred_contrib`` itself).

    Raises
    ------
    TypeError
        If the model is not a LightGBM tree model.
    """
    with warnings.catch_warnings():
        # Importing shap builds its plot colour maps with matplotlib calls due for deprecation.
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap

    model = bundle.models[domain].model
    booster = getattr(model, "booster_", None)
    encode = getattr(model, "_matrix", None)
    if booster is None or encode is None:
        raise TypeError(f"{type(model).__name__} is not a LightGBM tree model")
    matrix = encode(_model_frame(bundle, frame))
    explainer = shap.TreeExplainer(booster, feature_perturbation="tree_path_dependent")
    with warnings.catch_warnings():
        # shap warns that LightGBM binary output "has changed to a list"; it is one array here.
        warnings.simplefilter("ignore", UserWarning)
        values = np.asarray(explainer.shap_values(matrix), dtype=np.float64)
    own = np.asarray(booster.predict(matrix, pred_contrib=True), dtype=np.float64)
    features_diff = float(np.max(np.abs(values - own[:, :-1]))) if len(own) else 0.0
    bias_diff = float(np.max(np.abs(float(explainer.expected_value) - own[:, -1])))
    return max(features_diff, bias_diff)


__all__ = [
    "DEFAULT_BATCH",
    "OTHER_DOMAIN",
    "REASON_KEYS",
    "FeatureText",
    "TopContributions",
    "contributions",
    "contributions_agree",
    "explain_child",
    "explain_frame",
    "feature_texts",
    "global_importance",
    "reasons_from_top",
    "render_text",
    "sentence",
    "top_contributions",
]
