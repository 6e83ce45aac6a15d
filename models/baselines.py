"""The two simple baselines every evaluation table shows beside the model.

- :class:`WarningSignCounter`: how many configured warning signs a child shows (attendance,
  visits, guardianship flags), the kind of checklist a caseworker already uses ("ABC" flags in
  dropout early warning).
- :class:`VillageRateRanker`: every child in a village gets the village's past event rate,
  shrunk towards the overall rate. Area-level targeting does about as well as individual scores
  in some early-warning evaluations (Perdomo et al. on Wisconsin DEWS), so a model must beat it.

Both are fitted on training rows only, read only their configured columns from a feature frame,
and give ``predict_proba`` so they go through the same evaluation as the model.
"""

# scikit-learn's convention names the feature matrix X.
# ruff: noqa: N803

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

FloatArray: TypeAlias = npt.NDArray[np.float64]
Comparison: TypeAlias = Literal[">", ">=", "<", "<=", "==", "!="]

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class WarningSign:
    """One warning sign: a column compared with a threshold.

    Parameters
    ----------
    column : str
        Feature column, e.g. ``"unexcused_absence_days_30d"``.
    op : {">", ">=", "<", "<=", "==", "!="}
        Comparison; the sign is present when ``column op threshold`` holds.
    threshold : float, bool or str
        Value compared with, e.g. ``5`` or ``True``.

    Examples
    --------
    >>> sign = WarningSign("absent_days", ">=", 5)
    >>> sign.present(pd.DataFrame({"absent_days": [2, 5, None]})).tolist()
    [False, True, False]
    """

    column: str
    op: Comparison
    threshold: float | bool | str

    def present(self, X: pd.DataFrame) -> npt.NDArray[np.bool_]:
        """Whether the sign is present in each row; a missing value counts as absent.

        Parameters
        ----------
        X : DataFrame
            Frame holding ``column``.

        Returns
        -------
        ndarray of bool, shape (n_rows,)
            True where the comparison holds.
        """
        if self.op not in _OPERATORS:
            raise ValueError(f"unknown comparison {self.op!r} for {self.column!r}")
        values = X[self.column]
        # Missing is "not recorded", not "present": a count of signs only counts what was seen.
        known = values.notna().to_numpy(dtype=np.bool_)
        holds = _OPERATORS[self.op](values, self.threshold)
        holds_array = np.asarray(pd.Series(holds).fillna(False), dtype=np.bool_)
        return known & holds_array


def _check_columns(X: Any, columns: Sequence[str], who: str) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"{who} reads named columns and needs a DataFrame, got {type(X).__name__}")
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise ValueError(f"{who}: columns {missing} are not in the frame")
    if len(X) == 0:
        raise ValueError(f"{who}: the frame has no rows")
    return X


def _binary(y: Any, n_rows: int) -> tuple[FloatArray, npt.NDArray[Any]]:
    values = np.asarray(y)
    if values.shape != (n_rows,):
        raise ValueError(f"y must have shape ({n_rows},), got {values.shape}")
    classes = np.unique(values)
    if len(classes) != 2:
        raise ValueError(f"Only binary classification is supported; y has classes {classes}")
    return (values == classes[1]).astype(np.float64), classes


class WarningSignCounter(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Score = number of warning signs present; probability = training event rate per count.

    Parameters
    ----------
    signs : sequence of WarningSign, default=()
        The signs to count, e.g.
        ``(WarningSign("unexcused_absence_days_30d", ">=", 5),
        WarningSign("days_since_last_home_visit", ">", 60),
        WarningSign("guardian_unable", "==", True))``.
    prior_strength : float, default=10.0
        Pseudo-rows pulling each count's event rate towards the overall rate, so a count
        seen in few training rows does not get an extreme probability.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        Class labels.
    overall_rate_ : float
        Training event rate.
    rate_by_count_ : ndarray of shape (len(signs) + 1,)
        Shrunk event rate for 0, 1, ... signs, made non-decreasing in the count.
    """

    def __init__(self, *, signs: Sequence[WarningSign] = (), prior_strength: float = 10.0) -> None:
        self.signs = signs
        self.prior_strength = prior_strength

    def fit(self, X: pd.DataFrame, y: Any) -> Self:
        """Learn the event rate for each count of signs on the training rows.

        Parameters
        ----------
        X : DataFrame
            Training features with every sign's column.
        y : array-like of shape (n_rows,)
            Binary outcomes.

        Returns
        -------
        WarningSignCounter
            The fitted baseline.
        """
        if not self.signs:
            raise ValueError("WarningSignCounter needs at least one warning sign")
        frame = _check_columns(X, [s.column for s in self.signs], "WarningSignCounter")
        target, classes = _binary(y, len(frame))
        counts = self._count(frame).astype(np.intp)
        size = len(self.signs) + 1
        overall = float(target.mean())
        events = np.bincount(counts, weights=target, minlength=size)
        rows = np.bincount(counts, minlength=size).astype(np.float64)
        rates = (events + self.prior_strength * overall) / (rows + self.prior_strength)
        # More signs must never mean less risk: the rule's premise, and what a caseworker
        # reading the table expects.
        self.rate_by_count_ = np.maximum.accumulate(rates)
        self.overall_rate_ = overall
        self.classes_ = classes
        return self

    def _count(self, X: pd.DataFrame) -> FloatArray:
        present = np.column_stack([sign.present(X) for sign in self.signs])
        return np.asarray(present.sum(axis=1), dtype=np.float64)

    def decision_function(self, X: pd.DataFrame) -> FloatArray:
        """Number of warning signs present in each row.

        Parameters
        ----------
        X : DataFrame
            Features with every sign's column.

        Returns
        -------
        ndarray of shape (n_rows,)
            Counts (as floats), the ranking score.
        """
        check_is_fitted(self)
        frame = _check_columns(X, [s.column for s in self.signs], "WarningSignCounter")
        return self._count(frame)

    def predict_proba(self, X: pd.DataFrame) -> FloatArray:
        """Training event rate of each row's count of signs.

        Parameters
        ----------
        X : DataFrame
            Features with every sign's column.

        Returns
        -------
        ndarray of shape (n_rows, 2)
            Column 1 is the probability of the event.
        """
        check_is_fitted(self)
        p = self.rate_by_count_[self.decision_function(X).astype(np.intp)]
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> npt.NDArray[Any]:
        """Class with the higher probability.

        Parameters
        ----------
        X : DataFrame
            Features with every sign's column.

        Returns
        -------
        ndarray of shape (n_rows,)
            Class labels.
        """
        return np.asarray(self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(int)])


class VillageRateRanker(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Every child gets their area's training event rate, shrunk towards the overall rate.

    The rate of area ``a`` is ``(events_a + m * overall) / (rows_a + m)`` with ``m`` the
    prior strength: a village with few training rows stays near the overall rate instead of
    jumping to 0 or 1. An area never seen in training, or a missing area, gets the overall rate.

    Parameters
    ----------
    area_column : str, default="village_code"
        Column with the area code.
    prior_strength : float, default=20.0
        Pseudo-rows of shrinkage ``m``.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        Class labels.
    overall_rate_ : float
        Training event rate.
    area_rates_ : dict of str to float
        Shrunk event rate per area code (aggregates only; no rows are kept).
    """

    def __init__(self, *, area_column: str = "village_code", prior_strength: float = 20.0) -> None:
        self.area_column = area_column
        self.prior_strength = prior_strength

    def fit(self, X: pd.DataFrame, y: Any) -> Self:
        """Learn each area's shrunk event rate from the training rows.

        Parameters
        ----------
        X : DataFrame
            Training rows with ``area_column``.
        y : array-like of shape (n_rows,)
            Binary outcomes.

        Returns
        -------
        VillageRateRanker
            The fitted baseline.
        """
        if self.prior_strength < 0:
            raise ValueError(f"prior_strength must be non-negative, got {self.prior_strength}")
        frame = _check_columns(X, [self.area_column], "VillageRateRanker")
        target, classes = _binary(y, len(frame))
        overall = float(target.mean())
        areas = frame[self.area_column].astype("string")
        grouped = pd.DataFrame({"area": areas, "y": target}).dropna(subset=["area"])
        stats = grouped.groupby("area", sort=True)["y"].agg(["sum", "count"])
        rates = (stats["sum"] + self.prior_strength * overall) / (
            stats["count"] + self.prior_strength
        )
        self.area_rates_ = {str(area): float(rate) for area, rate in rates.items()}
        self.overall_rate_ = overall
        self.classes_ = classes
        return self

    def decision_function(self, X: pd.DataFrame) -> FloatArray:
        """Shrunk training event rate of each row's area.

        Parameters
        ----------
        X : DataFrame
            Rows with ``area_column``.

        Returns
        -------
        ndarray of shape (n_rows,)
            The area's rate (the overall rate for unseen or missing areas).
        """
        check_is_fitted(self)
        frame = _check_columns(X, [self.area_column], "VillageRateRanker")
        areas = frame[self.area_column].astype("string")
        rates = areas.map(self.area_rates_).astype("Float64").fillna(self.overall_rate_)
        return np.asarray(rates.to_numpy(dtype=np.float64), dtype=np.float64)

    def predict_proba(self, X: pd.DataFrame) -> FloatArray:
        """Probability of the event: the area's shrunk rate.

        Parameters
        ----------
        X : DataFrame
            Rows with ``area_column``.

        Returns
        -------
        ndarray of shape (n_rows, 2)
            Column 1 is the probability of the event.
        """
        p = self.decision_function(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> npt.NDArray[Any]:
        """Class with the higher probability.

        Parameters
        ----------
        X : DataFrame
            Rows with ``area_column``.

        Returns
        -------
        ndarray of shape (n_rows,)
            Class labels.
        """
        return np.asarray(self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(int)])


__all__ = ["Comparison", "VillageRateRanker", "WarningSign", "WarningSignCounter"]
