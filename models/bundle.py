"""The model bundle: everything scoring needs, in one picklable object.

A :class:`ModelBundle` holds one calibrated model per outcome (``any`` adverse event in the next
90 days, and each of the four domain outcomes), the feature columns in the order the models were
fitted on, and the provenance every stored score must carry (style rule 12): the fingerprint of
the feature definitions, the tier-policy version and fingerprint it was trained under, the
fingerprint of the training data, its evaluation metrics and when it was built.

The bundle reads no settings and logs nothing; :mod:`models.registry` stores and loads it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from models.calibration import CalibratedModel, model_scores

ANY = "any"
"""The outcome the tiers use: any adverse event (its probability is ``p_any``)."""

OUTCOMES: tuple[str, ...] = (
    ANY,
    "serious_harm",
    "dropout",
    "guardianship_breakdown",
    "mental_health",
)
"""Every outcome a bundle may hold a model for, in the order of the score columns."""

BUNDLE_FORMAT = 1
"""Version of the bundle's layout; bumped when a field changes meaning."""


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """A SHA-256 of a frame's column names, dtypes and values (row order matters).

    Stored with a model as the fingerprint of its training data, so two models can be seen to
    come from identical rows. The index is ignored: only the content counts.

    Parameters
    ----------
    frame : DataFrame
        The training frame (features, labels and keys).

    Returns
    -------
    str
        ``"sha256:"`` followed by 64 hex digits.

    Examples
    --------
    >>> a = pd.DataFrame({"x": [1, 2]})
    >>> frame_fingerprint(a) == frame_fingerprint(a.set_axis([5, 6]))
    True
    >>> frame_fingerprint(a) == frame_fingerprint(a.iloc[::-1])
    False
    """
    digest = hashlib.sha256()
    for name, dtype in frame.dtypes.items():
        digest.update(f"{name}\x1f{dtype}\x1e".encode())
    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    digest.update(rows.tobytes())
    return "sha256:" + digest.hexdigest()


def _fitted_names(model: CalibratedModel) -> tuple[str, ...] | None:
    names = getattr(model.model, "feature_names_in_", None)
    return None if names is None else tuple(str(n) for n in names)


@dataclass(frozen=True)
class ModelBundle:
    """Calibrated models per outcome, their feature list and their provenance.

    Parameters
    ----------
    models : mapping of str to CalibratedModel
        One calibrated model per outcome; keys are names from :data:`OUTCOMES` and must
        include ``"any"``, whose calibrator must have bootstrap maps (for ``p_low``/``p_high``).
    feature_names : sequence of str
        Feature columns, in the order every model was fitted on.
    feature_fingerprint : str
        Fingerprint of the feature definitions the columns were computed with.
    policy_version : str
        Version of the tier policy the models were trained and evaluated under.
    policy_fingerprint : str
        Fingerprint of that policy's content (``TierPolicy.fingerprint()``).
    data_fingerprint : str
        Fingerprint of the training data (e.g. :func:`frame_fingerprint`).
    metrics : mapping of str to dict, optional
        Test-window evaluation per outcome, as ``EvaluationReport.to_dict()``.
    created_at : datetime, optional
        When the bundle was built (timezone-aware); now, in UTC, by default.

    Attributes
    ----------
    outcomes : tuple of str
        The outcomes the bundle scores, in :data:`OUTCOMES` order.
    format_version : int
        Layout version of the bundle (:data:`BUNDLE_FORMAT`).

    Raises
    ------
    ValueError
        If ``"any"`` is missing, an outcome is unknown, feature names are empty or repeated,
        a model was fitted on other columns, or ``created_at`` has no timezone.
    """

    models: Mapping[str, CalibratedModel]
    feature_names: tuple[str, ...]
    feature_fingerprint: str
    policy_version: str
    policy_fingerprint: str
    data_fingerprint: str
    metrics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    format_version: int = BUNDLE_FORMAT

    def __post_init__(self) -> None:
        unknown = sorted(set(self.models) - set(OUTCOMES))
        if unknown:
            raise ValueError(f"unknown outcomes {unknown}; outcomes are {list(OUTCOMES)}")
        if ANY not in self.models:
            raise ValueError(f"a bundle needs a model for {ANY!r} (its p_any sets the tier)")
        names = tuple(str(n) for n in self.feature_names)
        if not names:
            raise ValueError("a bundle needs at least one feature name")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"feature names are repeated: {repeated}")
        for outcome, model in self.models.items():
            fitted = _fitted_names(model)
            if fitted is not None and fitted != names:
                raise ValueError(
                    f"the {outcome!r} model was fitted on columns {list(fitted)}, "
                    f"not the bundle's {list(names)}"
                )
        if not self.models[ANY].calibrator.bootstrap_maps_:
            raise ValueError(
                f"the {ANY!r} model's calibrator has no bootstrap maps; fit it with "
                "n_bootstrap > 0 so scores carry p_low and p_high"
            )
        for label in (
            "feature_fingerprint",
            "policy_version",
            "policy_fingerprint",
            "data_fingerprint",
        ):
            if not str(getattr(self, label)).strip():
                raise ValueError(f"{label} must not be empty")
        unknown_metrics = sorted(set(self.metrics) - set(self.models))
        if unknown_metrics:
            raise ValueError(f"metrics given for outcomes without a model: {unknown_metrics}")
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        # Plain dicts in outcome order: picklable (a MappingProxyType is not) and stable.
        ordered = {o: self.models[o] for o in OUTCOMES if o in self.models}
        object.__setattr__(self, "models", ordered)
        object.__setattr__(self, "feature_names", names)
        object.__setattr__(self, "metrics", {k: dict(v) for k, v in self.metrics.items()})

    # -- views ------------------------------------------------------------------------------

    @property
    def outcomes(self) -> tuple[str, ...]:
        """The outcomes the bundle scores, ``"any"`` first."""
        return tuple(self.models)

    @property
    def score_columns(self) -> tuple[str, ...]:
        """Columns of :meth:`predict`: ``p_any, p_low, p_high`` then ``p_<domain>``."""
        domains = tuple(f"p_{o}" for o in self.outcomes if o != ANY)
        return ("p_any", "p_low", "p_high", *domains)

    def metric(self, name: str, outcome: str = ANY) -> float | None:
        """The point value of one recorded test metric, or ``None`` if not recorded.

        Parameters
        ----------
        name : str
            Metric name, e.g. ``"precision_at_capacity"``.
        outcome : str, default="any"
            Outcome whose evaluation to read.

        Returns
        -------
        float or None
            The value; ``None`` when the metric is absent or undefined (NaN).
        """
        entry = self.metrics.get(outcome, {}).get("metrics", {}).get(name)
        value = entry.get("value") if isinstance(entry, Mapping) else entry
        if value is None:
            return None
        number = float(value)
        return None if math.isnan(number) else number

    def describe(self) -> dict[str, Any]:
        """Provenance as plain JSON-ready values (no models, no metrics).

        Returns
        -------
        dict
            Outcomes, feature names, fingerprints, policy version, creation time, format.
        """
        return {
            "outcomes": list(self.outcomes),
            "feature_names": list(self.feature_names),
            "feature_fingerprint": self.feature_fingerprint,
            "policy_version": self.policy_version,
            "policy_fingerprint": self.policy_fingerprint,
            "data_fingerprint": self.data_fingerprint,
            "created_at": self.created_at.isoformat(),
            "format_version": self.format_version,
        }

    # -- scoring ----------------------------------------------------------------------------

    def _features(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"scoring needs a DataFrame, got {type(frame).__name__}")
        missing = [n for n in self.feature_names if n not in frame.columns]
        if missing:
            raise ValueError(f"the frame lacks feature columns {missing}")
        # Select by name so keys (child_id, as_of) and column order do not matter.
        return frame.loc[:, list(self.feature_names)]

    def _shared_encoding(self) -> bool:
        """Whether every model is a LightGBM tree model reading the same encoded matrix.

        Models trained together (``models.train``) share the training frame, hence the
        feature order and the category levels, so one encoding serves them all.
        """
        main = self.models[ANY].model
        levels = getattr(main, "category_levels_", None)
        for calibrated in self.models.values():
            model = calibrated.model
            if (
                getattr(model, "booster_", None) is None
                or getattr(model, "_matrix", None) is None
                or getattr(model, "category_levels_", None) != levels
            ):
                return False
        return True

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Calibrated probabilities per outcome, with the interval of ``p_any``.

        Parameters
        ----------
        frame : DataFrame
            Rows to score; must hold every column of ``feature_names`` (others are ignored).

        Returns
        -------
        DataFrame
            Indexed like ``frame``, with columns :attr:`score_columns`: ``p_any``, its band
            ``p_low <= p_any <= p_high``, then ``p_<domain>`` for each domain model.

        Raises
        ------
        ValueError
            If a feature column is missing or the frame is empty.
        """
        X = self._features(frame)  # noqa: N806 - scikit-learn's name
        main = self.models[ANY]
        margins: dict[str, Any] = {}
        if self._shared_encoding():
            # Encode once for all the models (the encoding costs about as much as a model's
            # trees); the margins are exactly each model's decision_function.
            matrix = main.model._matrix(X)
            for outcome, calibrated in self.models.items():
                model = calibrated.model
                margins[outcome] = np.asarray(
                    model.booster_.predict(matrix, raw_score=True, num_threads=model.n_jobs),
                    dtype=np.float64,
                )
        else:
            margins = {o: model_scores(m.model, X) for o, m in self.models.items()}
        # One pass of the trees gives both the point probability and its band.
        p_low, p_high = main.calibrator.predict_interval(margins[ANY])
        columns: dict[str, Any] = {
            "p_any": main.calibrator.predict(margins[ANY]),
            "p_low": p_low,
            "p_high": p_high,
        }
        for outcome, model in self.models.items():
            if outcome != ANY:
                columns[f"p_{outcome}"] = model.calibrator.predict(margins[outcome])
        return pd.DataFrame(columns, index=frame.index)

    def contributions(self, frame: pd.DataFrame, domain: str = ANY) -> pd.DataFrame:
        """Per-feature log-odds contributions of one outcome's model, before calibration.

        Parameters
        ----------
        frame : DataFrame
            Rows to explain; must hold every column of ``feature_names``.
        domain : str, default="any"
            Outcome whose model to explain.

        Returns
        -------
        DataFrame
            One column per feature plus ``bias``, indexed like ``frame`` (see
            ``RiskClassifier.contributions``).

        Raises
        ------
        ValueError
            If the bundle has no model for ``domain`` or a feature column is missing.
        TypeError
            If that model's estimator cannot explain its scores.
        """
        if domain not in self.models:
            raise ValueError(f"no model for {domain!r}; the bundle has {list(self.outcomes)}")
        estimator = self.models[domain].model
        explain = getattr(estimator, "contributions", None)
        if explain is None:
            raise TypeError(f"{type(estimator).__name__} gives no per-feature contributions")
        result = explain(self._features(frame))
        if not isinstance(result, pd.DataFrame):
            raise TypeError("contributions must be returned as a DataFrame")
        return result


__all__ = [
    "ANY",
    "BUNDLE_FORMAT",
    "OUTCOMES",
    "ModelBundle",
    "frame_fingerprint",
]
