"""Risk classifiers: LightGBM boosted trees and a logistic-regression scorecard baseline.

Both follow scikit-learn's estimator contract (style rule 8): ``__init__`` only stores
hyperparameters, ``fit`` learns everything (including the category levels of categorical and
string columns) and returns ``self``, and every scoring method starts with ``check_is_fitted``.
Neither keeps training rows, reads settings or logs runs.

Categorical columns are handled the same way by both models. At ``fit`` the levels seen in
training are stored, sorted, in ``category_levels_``. At scoring each value is mapped to its
training level; a missing value *or a level never seen in training* becomes missing, so a new
village type or a typo never gets a made-up effect. Levels are compared as strings, and a float
column whose values are all whole numbers is read as integers first, so ``3`` and ``3.0`` are
the same level (a column of codes gains a float dtype as soon as it holds a missing value).

Categorical handling needs a :class:`pandas.DataFrame`. A plain array is read as all-numeric,
which is what scikit-learn's generic estimator checks feed in.
"""

# scikit-learn's convention names the feature matrix X and the inverse penalty C.
# ruff: noqa: N803

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Self, TypeAlias

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import (
    check_is_fitted,
    check_random_state,
    column_or_1d,
    validate_data,
)

FloatArray: TypeAlias = npt.NDArray[np.float64]
CategoricalSpec: TypeAlias = Literal["auto"] | Sequence[str]

BIAS_COLUMN = "bias"
"""Name of the intercept column in the frames returned by ``contributions``."""


# --------------------------------------------------------------------------------------------
# Input handling shared by both classifiers
# --------------------------------------------------------------------------------------------


def _is_categorical_dtype(series: pd.Series[Any]) -> bool:
    """Whether a column holds levels rather than quantities (category, string or object)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return False
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
    )


def _level_strings(series: pd.Series[Any]) -> pd.Series[Any]:
    """Values of a categorical column as strings, missing values as ``pd.NA``."""
    if pd.api.types.is_float_dtype(series.dtype):
        present = series.dropna()
        # Codes stored as floats (because of a missing value) must match their integer form.
        if bool((present == np.round(present)).all()):
            series = series.astype("Int64")
    return series.astype("string")


def _numeric_values(series: pd.Series[Any], name: str) -> FloatArray:
    """A numeric or boolean column as float64 with NaN for missing values."""
    if pd.api.types.is_bool_dtype(series.dtype):
        series = series.astype("Float64")
    if not pd.api.types.is_numeric_dtype(series.dtype):
        raise ValueError(
            f"column {name!r} has dtype {series.dtype}, which is neither numeric, boolean nor "
            "categorical; declare it in categorical_features or convert it"
        )
    return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _resolve_categorical(
    X: pd.DataFrame, names: Sequence[str], spec: CategoricalSpec
) -> tuple[str, ...]:
    """Names of the columns to treat as categorical, in column order."""
    if isinstance(spec, str):
        if spec != "auto":
            raise ValueError(
                f"categorical_features must be 'auto' or a list of names, not {spec!r}"
            )
        return tuple(
            name
            for name, col in zip(names, X.columns, strict=True)
            if _is_categorical_dtype(X[col])
        )
    unknown = sorted(set(spec) - set(names))
    if unknown:
        raise ValueError(f"categorical_features names columns not in X: {unknown}")
    wanted = set(spec)
    return tuple(name for name in names if name in wanted)


def _fit_levels(
    X: pd.DataFrame, names: Sequence[str], categorical: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """Sorted training levels of each categorical column (sorted so refits are reproducible)."""
    position = {name: i for i, name in enumerate(names)}
    levels: dict[str, tuple[str, ...]] = {}
    for name in categorical:
        values = _level_strings(X.iloc[:, position[name]])
        levels[name] = tuple(sorted(str(v) for v in values.dropna().unique()))
    return levels


def _encode(
    X: pd.DataFrame | FloatArray,
    names: Sequence[str],
    levels: Mapping[str, tuple[str, ...]],
) -> FloatArray:
    """Encode a validated frame to float64: categorical columns become level codes or NaN."""
    if not isinstance(X, pd.DataFrame):
        return np.asarray(X, dtype=np.float64)
    out = np.empty((len(X), len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        column = X.iloc[:, j]
        if name in levels:
            known = pd.Index(list(levels[name]), dtype="string")
            codes = known.get_indexer(pd.Index(_level_strings(column)))
            # Code -1 means missing or never seen in training: both go to LightGBM's missing.
            out[:, j] = np.where(codes >= 0, codes, np.nan)
        else:
            out[:, j] = _numeric_values(column, name)
    return out


def _validated_frame(estimator: BaseEstimator, X: Any, *, reset: bool) -> pd.DataFrame | FloatArray:
    """Check X (names and width against fit) and return a DataFrame or a float64 array.

    A DataFrame is kept as is so categorical columns survive; anything else goes through
    scikit-learn's ``check_array`` and must be numeric.
    """
    if isinstance(X, pd.DataFrame):
        out = validate_data(estimator, X, reset=reset, skip_check_array=True)
        if len(out) == 0:
            # LightGBM crashes on an empty batch; fail with scikit-learn's wording instead.
            raise ValueError(
                f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required."
            )
        return out  # type: ignore[no-any-return]
    array = validate_data(
        estimator, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan"
    )
    return np.asarray(array, dtype=np.float64)


def _sigmoid(margin: FloatArray) -> FloatArray:
    """Logistic function written with tanh, which never overflows for large margins."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * margin)), dtype=np.float64)


def _feature_names(estimator: BaseEstimator) -> tuple[str, ...]:
    """Feature names seen in fit, or ``x0, x1, ...`` when fit was given a plain array."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return tuple(str(n) for n in names)
    return tuple(f"x{i}" for i in range(int(estimator.n_features_in_)))


def _sample_weights(sample_weight: Any, n_rows: int) -> FloatArray | None:
    """Validated non-negative row weights, or None when none were given."""
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.ndim == 0:
        weights = np.full(n_rows, float(weights))
    if weights.shape != (n_rows,):
        raise ValueError(f"sample_weight has shape {weights.shape}, expected ({n_rows},)")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("sample_weight must be finite and non-negative")
    if not np.any(weights > 0):
        raise ValueError("sample weights are all zero; at least one must be positive")
    return weights


def _binary_target(
    y: Any, n_rows: int, sample_weight: FloatArray | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[Any]]:
    """Return (0/1 target, classes_) for a binary y; raise for anything else."""
    y_arr = column_or_1d(y, warn=True)
    if len(y_arr) != n_rows:
        raise ValueError(f"X has {n_rows} rows but y has {len(y_arr)} labels")
    y_type = type_of_target(y_arr, input_name="y", raise_unknown=True)
    # "binary" also covers a single class, which gets its own message below.
    if y_type != "binary":
        raise ValueError(
            f"Only binary classification is supported. The type of the target is {y_type}."
        )
    # Rows with zero weight do not count: a class present only there cannot be learnt.
    present = y_arr if sample_weight is None else y_arr[sample_weight > 0]
    classes = np.unique(present)
    if len(classes) < 2:
        raise ValueError(
            "Classifier can't train when only one class is present: y needs both an adverse "
            f"outcome and its absence, got class {classes.tolist()}."
        )
    return (y_arr == classes[1]).astype(np.float64), classes


# --------------------------------------------------------------------------------------------
# LightGBM
# --------------------------------------------------------------------------------------------


class RiskClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Gradient-boosted trees (LightGBM) giving a probability of an adverse event.

    Parameters
    ----------
    learning_rate : float, default=0.05
        Shrinkage applied to each tree.
    num_leaves : int, default=31
        Maximum number of leaves per tree.
    n_estimators : int, default=200
        Number of boosting rounds. There is no early stopping: the later windows are reserved
        for calibration and testing (style rule 10), not for choosing the number of trees.
    min_child_samples : int, default=20
        Minimum number of rows in a leaf (LightGBM ``min_data_in_leaf``).
    reg_lambda : float, default=1.0
        L2 penalty on leaf values.
    colsample : float, default=1.0
        Share of features sampled for each tree (LightGBM ``feature_fraction``).
    monotone_constraints : mapping of str to int, optional
        Feature name to ``1`` (the prediction never falls as the feature rises), ``-1`` (never
        rises) or ``0``. For example ``{"unexcused_absence_days_30d": 1}``. Enforced with
        LightGBM's ``basic`` method, which guarantees monotonicity. Categorical features
        cannot be constrained.
    categorical_features : "auto" or sequence of str, default="auto"
        Columns to treat as categorical. ``"auto"`` takes category, string and object columns
        of a DataFrame. Boolean columns are numeric 0/1.
    cat_smooth : float, default=10.0
        LightGBM's smoothing of per-level statistics in categorical splits.
    min_data_per_group : int, default=100
        Minimum rows per level group in a categorical split; small values overfit rare levels.
    random_state : int, RandomState instance or None, default=0
        Seed of every random choice in LightGBM. With a fixed seed and ``n_jobs``, two fits on
        the same data give identical predictions.
    n_jobs : int, default=1
        LightGBM threads. Fixed rather than "all cores" so results do not depend on the machine.

    Attributes
    ----------
    booster_ : lightgbm.Booster
        The fitted trees (no training rows are kept).
    classes_ : ndarray of shape (2,)
        Class labels; ``classes_[1]`` is the adverse outcome.
    feature_names_in_ : ndarray of str
        Column names seen in fit (only when X was a DataFrame with string column names).
    n_features_in_ : int
        Number of features seen in fit.
    categorical_features_ : tuple of str
        Columns treated as categorical.
    category_levels_ : dict of str to tuple of str
        Sorted training levels of each categorical column; code ``i`` is ``levels[i]``.
    """

    def __init__(
        self,
        *,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        n_estimators: int = 200,
        min_child_samples: int = 20,
        reg_lambda: float = 1.0,
        colsample: float = 1.0,
        monotone_constraints: Mapping[str, int] | None = None,
        categorical_features: CategoricalSpec = "auto",
        cat_smooth: float = 10.0,
        min_data_per_group: int = 100,
        random_state: int | np.random.RandomState | None = 0,
        n_jobs: int = 1,
    ) -> None:
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.n_estimators = n_estimators
        self.min_child_samples = min_child_samples
        self.reg_lambda = reg_lambda
        self.colsample = colsample
        self.monotone_constraints = monotone_constraints
        self.categorical_features = categorical_features
        self.cat_smooth = cat_smooth
        self.min_data_per_group = min_data_per_group
        self.random_state = random_state
        self.n_jobs = n_jobs

    def __sklearn_tags__(self) -> Any:
        """Declare missing values allowed and binary-only targets."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: Any = None) -> Self:
        """Fit the trees on a feature frame.

        Parameters
        ----------
        X : DataFrame of shape (n_rows, n_features)
            Features. A plain numeric array is accepted and read as all-numeric.
        y : array-like of shape (n_rows,)
            Binary outcome; the larger label (after sorting) is the adverse event.
        sample_weight : array-like of shape (n_rows,), optional
            Row weights.

        Returns
        -------
        RiskClassifier
            The fitted estimator.

        Raises
        ------
        ValueError
            If y is not binary, a constraint names an unknown or categorical column, or X is
            empty.
        """
        data = _validated_frame(self, X, reset=True)
        names = _feature_names(self)
        if isinstance(data, pd.DataFrame):
            categorical = _resolve_categorical(data, names, self.categorical_features)
            levels = _fit_levels(data, names, categorical)
        else:
            if not isinstance(self.categorical_features, str):
                raise ValueError("categorical_features by name needs X as a DataFrame")
            categorical, levels = (), {}
        weights = _sample_weights(sample_weight, len(data))
        target, classes = _binary_target(y, len(data), weights)
        matrix = _encode(data, names, levels)

        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        params: dict[str, Any] = {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "lambda_l2": self.reg_lambda,
            "feature_fraction": self.colsample,
            "cat_smooth": self.cat_smooth,
            "min_data_per_group": self.min_data_per_group,
            "monotone_constraints": self._constraint_vector(names, categorical),
            "monotone_constraints_method": "basic",
            "seed": seed,
            # Reproducibility: same seed, same threads and row-wise histograms give the same trees.
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.n_jobs,
            "verbosity": -1,
        }
        dataset = lgb.Dataset(
            matrix,
            label=target,
            weight=weights,
            feature_name=list(names),
            categorical_feature=[names.index(c) for c in categorical],
            free_raw_data=True,
        )
        # keep_training_booster=False (the default) frees the Dataset: the model keeps no rows.
        self.booster_ = lgb.train(params, dataset, num_boost_round=self.n_estimators)
        self.classes_ = classes
        self.categorical_features_ = categorical
        self.category_levels_ = levels
        return self

    def _constraint_vector(self, names: Sequence[str], categorical: Sequence[str]) -> list[int]:
        """Monotone constraints as LightGBM's per-column list, checked against the columns."""
        constraints = dict(self.monotone_constraints or {})
        unknown = sorted(set(constraints) - set(names))
        if unknown:
            raise ValueError(f"monotone_constraints names columns not in X: {unknown}")
        on_categorical = sorted(set(constraints) & set(categorical))
        if on_categorical:
            raise ValueError(
                f"categorical columns cannot be monotone-constrained: {on_categorical}"
            )
        bad = {k: v for k, v in constraints.items() if v not in (-1, 0, 1)}
        if bad:
            raise ValueError(f"monotone constraints must be -1, 0 or 1, got {bad}")
        return [int(constraints.get(name, 0)) for name in names]

    def _matrix(self, X: Any) -> FloatArray:
        check_is_fitted(self)
        data = _validated_frame(self, X, reset=False)
        return _encode(data, _feature_names(self), self.category_levels_)

    def decision_function(self, X: pd.DataFrame) -> FloatArray:
        """Raw margin (log-odds of the adverse outcome) for each row.

        Parameters
        ----------
        X : DataFrame of shape (n_rows, n_features)
            Features with the columns seen in fit.

        Returns
        -------
        ndarray of shape (n_rows,)
            Log-odds before calibration.
        """
        check_is_fitted(self)
        matrix = self._matrix(X)
        return np.asarray(self.booster_.predict(matrix, raw_score=True), dtype=np.float64)

    def predict_proba(self, X: pd.DataFrame) -> FloatArray:
        """Uncalibrated probabilities of each class.

        Parameters
        ----------
        X : DataFrame of shape (n_rows, n_features)
            Features with the columns seen in fit.

        Returns
        -------
        ndarray of shape (n_rows, 2)
            Column 1 is the probability of the adverse outcome (``classes_[1]``).
        """
        check_is_fitted(self)
        p = _sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> npt.NDArray[Any]:
        """Most likely class (margin above zero); tiers use probabilities, not this.

        Parameters
        ----------
        X : DataFrame of shape (n_rows, n_features)
            Features with the columns seen in fit.

        Returns
        -------
        ndarray of shape (n_rows,)
            Class labels from ``classes_``.
        """
        check_is_fitted(self)
        return np.asarray(self.classes_[(self.decision_function(X) > 0).astype(int)])

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Exact per-feature contributions to the log-odds (TreeSHAP, path-dependent).

        LightGBM's ``pred_contrib``, which is what ``shap.TreeExplainer`` returns for these
        models. Each row sums, with the ``bias`` column, to the raw margin.

        Parameters
        ----------
        X : DataFrame of shape (n_rows, n_features)
            Features with the columns seen in fit.

        Returns
        -------
        DataFrame of shape (n_rows, n_features + 1)
            One column per feature plus ``bias`` (the expected margin), indexed like X.
        """
        check_is_fitted(self)
        matrix = self._matrix(X)
        values = np.asarray(self.booster_.predict(matrix, pred_contrib=True), dtype=np.float64)
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame(values, columns=[*_feature_names(self), BIAS_COLUMN], index=index)


# --------------------------------------------------------------------------------------------
# Logistic-regression scorecard
# --------------------------------------------------------------------------------------------


class ScorecardClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Regularised logistic-regression scorecard, the transparent baseline.

    The pipeline imputes numeric columns with the training median plus a missing-value
    indicator, one-hot encodes categorical levels (missing and unseen levels share one
    "missing" column), standardises every design column and fits an unweighted logistic
    regression. A feature's contribution is the sum over its design columns of
    ``coef × standardised value``: the log-odds it adds relative to an average training row.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularisation strength.
    l1_ratio : float, default=0.0
        0 is a pure L2 penalty (lbfgs), 1 a pure L1 penalty, in between elastic net (saga).
    categorical_features : "auto" or sequence of str, default="auto"
        Columns to treat as categorical, as for :class:`RiskClassifier`.
    max_iter : int, default=1000
        Solver iteration limit.
    tol : float, default=1e-4
        Solver tolerance.
    random_state : int, RandomState instance or None, default=0
        Seed for the saga solver (the lbfgs path is deterministic).

    Attributes
    ----------
    pipeline_ : sklearn.pipeline.Pipeline
        Imputation, encoding, scaling and the logistic regression.
    classes_ : ndarray of shape (2,)
        Class labels; ``classes_[1]`` is the adverse outcome.
    feature_names_in_ : ndarray of str
        Column names seen in fit (only for a DataFrame with string column names).
    n_features_in_ : int
        Number of features seen in fit.
    categorical_features_ : tuple of str
        Columns treated as categorical.
    category_levels_ : dict of str to tuple of str
        Sorted training levels of each categorical column.
    design_feature_index_ : ndarray of int
        For each design column, the position of the input feature it came from.
    n_iter_ : int
        Solver iterations used.
    """

    def __init__(
        self,
        *,
        C: float = 1.0,
        l1_ratio: float = 0.0,
        categorical_features: CategoricalSpec = "auto",
        max_iter: int = 1000,
        tol: float = 1e-4,
        random_state: int | np.random.RandomState | None = 0,
    ) -> None:
        self.C = C
        self.l1_ratio = l1_ratio
        self.categorical_features = categorical_features
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        """Declare missing values allowed and binary-only targets."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: Any = None) -> Self:
        """Fit the scorecard on a feature frame.

        Parameters
        ----------
        X : DataFrame of shape (n_rows, n_features)
            Features. A plain numeric array is accepted and read as all-numeric.
        y : array-like of shape (n_rows,)
            Binary outcome; the larger label (after sorting) is the adverse event.
        sample_weight : array-like of shape (n_rows,), optional
            Row weights used by the scaler and the logistic regression (imputation medians
            are unweighted).

        Returns
        -------
        ScorecardClassifier
            The fitted estimator.

        Raises
        ------
        ValueError
            If y is not binary or X is empty.
        """
        data = _validated_frame(self, X, reset=True)
        names = _feature_names(self)
        if isinstance(data, pd.DataFrame):
            categorical = _resolve_categorical(data, names, self.categorical_features)
            levels = _fit_levels(data, names, categorical)
        else:
            if not isinstance(self.categorical_features, str):
                raise ValueError("categorical_features by name needs X as a DataFrame")
            categorical, levels = (), {}
        weights = _sample_weights(sample_weight, len(data))
        target, classes = _binary_target(y, len(data), weights)
        matrix = _encode(data, names, levels)

        numeric_idx = [j for j, n in enumerate(names) if n not in levels]
        categorical_idx = [j for j, n in enumerate(names) if n in levels]
        parts: list[tuple[str, Any, list[int]]] = []
        groups: list[int] = []
        if numeric_idx:
            # An indicator on *every* numeric column (features="all") keeps the design layout
            # independent of which columns happened to have gaps in training; gaps can carry
            # signal (no visit recorded at all).
            numeric = FeatureUnion(
                [
                    ("value", SimpleImputer(strategy="median", keep_empty_features=True)),
                    ("missing", MissingIndicator(features="all")),
                ]
            )
            parts.append(("numeric", numeric, numeric_idx))
            groups += numeric_idx + numeric_idx
        if categorical_idx:
            # Code -1 stands for "missing or unseen"; listing it keeps one fixed column for it.
            encoder = Pipeline(
                [
                    (
                        "impute",
                        SimpleImputer(
                            strategy="constant", fill_value=-1.0, keep_empty_features=True
                        ),
                    ),
                    (
                        "onehot",
                        OneHotEncoder(
                            categories=[
                                [-1.0, *map(float, range(len(levels[names[j]])))]
                                for j in categorical_idx
                            ],
                            handle_unknown="ignore",
                            sparse_output=False,
                        ),
                    ),
                ]
            )
            parts.append(("categorical", encoder, categorical_idx))
            for j in categorical_idx:
                groups += [j] * (len(levels[names[j]]) + 1)
        solver = "lbfgs" if self.l1_ratio == 0 else "saga"
        self.pipeline_ = Pipeline(
            [
                ("encode", ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)),
                ("scale", StandardScaler()),
                (
                    "logreg",
                    LogisticRegression(
                        C=self.C,
                        l1_ratio=self.l1_ratio,
                        solver=solver,
                        max_iter=self.max_iter,
                        tol=self.tol,
                        class_weight=None,
                        random_state=self.random_state,
                    ),
                ),
            ]
        )
        fit_params = (
            {}
            if weights is None
            else {"scale__sample_weight": weights, "logreg__sample_weight": weights}
        )
        self.pipeline_.fit(matrix, target, **fit_params)
        self.classes_ = classes
        self.categorical_features_ = categorical
        self.category_levels_ = levels
        self.design_feature_index_ = np.asarray(groups, dtype=np.intp)
        self.n_iter_ = int(np.max(self.pipeline_[-1].n_iter_))
        return self

    def _matrix(self, X: Any) -> FloatArray:
        check_is_fitted(self)
        data = _validated_frame(self, X, reset=False)
        return _encode(data, _feature_names(self), self.category_levels_)

    def decision_function(self, X: pd.DataFrame) -> FloatArray:
        """Log-odds of the adverse outcome for each row.

        Parameters
        ----------
        X : DataFrame of shape (n_rows, n_features)
            Features with the columns seen in fit.

        Returns
        -------
        ndarray of shape (n_rows,)
            Log-odds before calibration.
        """
        check_is_fitted(self)
        margin = self.pipeline_.decision_function(self._matrix(X))
        return np.asarray(margin, dtype=np.float64)

    def predict_proba(self, X: pd.DataFrame) -> FloatArray:
        """Uncalibrated probabilities of each class.

        Parameters
        ----------
        X : DataFrame of shape (n_rows, n_features)
            Features with the columns seen in fit.

        Returns
        -------
        ndarray of shape (n_rows, 2)
            Column 1 is the probability of the adverse outcome (``classes_[1]``).
        """
        check_is_fitted(self)
        p = _sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> npt.NDArray[Any]:
        """Most likely class (log-odds above zero).

        Parameters
        ----------
        X : DataFrame of shape (n_rows, n_features)
            Features with the columns seen in fit.

        Returns
        -------
        ndarray of shape (n_rows,)
            Class labels from ``classes_``.
        """
        check_is_fitted(self)
        return np.asarray(self.classes_[(self.decision_function(X) > 0).astype(int)])

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-feature log-odds contributions: coefficient × standardised value, summed.

        Parameters
        ----------
        X : DataFrame of shape (n_rows, n_features)
            Features with the columns seen in fit.

        Returns
        -------
        DataFrame of shape (n_rows, n_features + 1)
            One column per feature plus ``bias`` (the intercept, the log-odds of an average
            training row); each row sums to the decision function.
        """
        check_is_fitted(self)
        design = np.asarray(self.pipeline_[:-1].transform(self._matrix(X)), dtype=np.float64)
        logreg = self.pipeline_[-1]
        per_column = design * logreg.coef_[0]
        n_features = int(self.n_features_in_)
        # A 0/1 matrix sums design columns back to the feature they came from.
        to_feature = np.zeros((len(self.design_feature_index_), n_features))
        to_feature[np.arange(len(self.design_feature_index_)), self.design_feature_index_] = 1.0
        values = np.column_stack(
            [per_column @ to_feature, np.full(len(design), float(logreg.intercept_[0]))]
        )
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame(values, columns=[*_feature_names(self), BIAS_COLUMN], index=index)


__all__ = ["BIAS_COLUMN", "RiskClassifier", "ScorecardClassifier"]
