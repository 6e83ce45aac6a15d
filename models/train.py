"""Training: one function from (configuration, training rows) to an evaluated, registered model.

:func:`train` is the only code that writes to the model registry (style rule 9). Given the rows
of :func:`models.dataset.build_training_data` it

1. splits them by time **and** household (``models.splits.rolling_time_folds``): in every fold
   the models are fitted on the earliest as-of dates, calibrated on a later disjoint window of
   other households, and tested on the latest window whose labels have matured; no child or
   household is on two sides; the last fold is the model that gets registered;
2. screens out features that are constant in the training window (feature selection sees the
   training window only) and checks that no protected attribute is among them;
3. fits one LightGBM model per outcome (``any`` and the four domains) with monotone
   constraints where domain knowledge is certain, and a regularised logistic scorecard for
   ``any``; calibrates each on the calibration window (Platt scaling, which keeps the
   ranking; with a household-bootstrap band for ``p_any``);
4. evaluates on the test window, with household-bootstrap intervals: every outcome model, the
   scorecard and the two simple baselines (a count of warning signs and a village ranker),
   the uncalibrated model, and the paired difference model minus scorecard ("does boosting
   earn its place?");
5. runs the champion gate on every fold (``models.gate``): the model must beat both simple
   baselines on precision at capacity in at least two folds;
6. assigns tiers on the test window (hard and floor rules, capacity bands) and audits them for
   group disparities (``models.fairness``), protected attributes included;
7. draws the global importance (``models.explain`` contributions, ``models.plots``) and
   reliability plots, and logs everything with a model card through
   ``ModelRegistry.log_training_run``; the version becomes ``challenger``.

Precision and recall **at capacity** follow the tier policy (``models.capacity``): in each
township and on each as-of date they rank the children no rule already puts in T1 (the T2 band
population) and select the top ``k``, where ``k`` is the township's T2 capacity scaled to the
share of its registered children in the evaluated rows (a test window holds about a quarter of
the households, so a quarter of the visits). Ranking every child is kept as
``precision_at_capacity_all_children``.

Training never reads the synthetic truth: the oracle comparison is ``models.evaluate``'s job.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.definitions import (
    definitions_fingerprint,
    model_feature_names,
    protected_feature_names,
)
from models.baselines import VillageRateRanker, WarningSign, WarningSignCounter
from models.bundle import ANY, ModelBundle, frame_fingerprint
from models.calibration import CalibratedModel, CalibrationMethod, calibrate
from models.capacity import (
    area_counts,
    band_precision,
    capacity,
    capacity_report,
    t2_band,
)
from models.dataset import AREA_COLUMN, OUTCOMES, label_column
from models.estimator import RiskClassifier, ScorecardClassifier
from models.fairness import FairnessReport, age_band, fairness_audit
from models.gate import GATE_REASON_TAG, GATE_TAG, ChampionGate, GateFold
from models.metrics import (
    EvaluationReport,
    MetricEstimate,
    TieBreak,
    bootstrap_metric,
    cluster_bootstrap_indices,
    precision_at_capacity,
    roc_auc,
)
from models.policy import AreaCapacity, TierPolicy
from models.scoring import INPUT_PROFILE_KEY, missing_rates
from models.splits import TimeHouseholdSplit, rolling_time_folds
from models.tiers import assign_tiers
from shouhu.errors import InsufficientDataError

if TYPE_CHECKING:
    from models.registry import LoggedVersion, ModelRegistry
    from shouhu.settings import Settings

logger = logging.getLogger(__name__)

DOMAINS: tuple[str, ...] = tuple(o for o in OUTCOMES if o != ANY)

#: Columns every training frame must hold besides the features and labels.
KEY_COLUMNS: tuple[str, ...] = ("child_id", "as_of", "household_pid", "village_code")

# --------------------------------------------------------------------------------------------
# Domain knowledge
# --------------------------------------------------------------------------------------------

_ABSENCE = (
    "unexcused_absence_days_30d",
    "unexcused_absence_days_90d",
    "unexcused_absence_days_180d",
    "unexcused_absence_days_365d",
    "unexcused_absence_days_current_term",
    "unexcused_absence_days_previous_term",
    "unexcused_absence_rate_30d",
    "unexcused_absence_rate_90d",
    "unexcused_absence_rate_365d",
    "unexcused_absence_rate_current_term",
    "unexcused_absence_rate_previous_term",
    # A rising absence rate is itself the classic early-warning sign (on-track indicators).
    "unexcused_absence_trend",
    "absence_weeks_90d",
    "absence_weeks_365d",
)

#: Monotone constraints (+1: the risk never falls as the feature rises), only where domain
#: knowledge is certain: more unexcused absence, more recorded incidents of a kind, more
#: worrying visit findings, higher symptom scores never make a child safer. Counts of visits
#: or "days since" features are left free: more visits can mean more worry or more care.
MONOTONE: dict[str, tuple[str, ...]] = {
    "dropout": (
        *_ABSENCE,
        "suspected_dropout_records_90d",
        "suspected_dropout_records_365d",
        "dropout_records_365d",
        "max_consecutive_absent_days_365d",
    ),
    "serious_harm": (
        "harm_incidents_365d",
        "missing_or_begging_365d",
        "visits_injury_signs_90d",
        "visits_injury_signs_365d",
        "visits_child_unattended_90d",
        "visits_child_unattended_365d",
    ),
    "guardianship_breakdown": (
        "guardianship_gap_records_365d",
        "guardianship_incidents_365d",
        "visits_living_alone_90d",
        "visits_living_alone_365d",
        "visits_guardian_incapable_90d",
        "visits_guardian_incapable_365d",
        "visits_neglect_signs_90d",
        "visits_neglect_signs_365d",
    ),
    "mental_health": (
        "mental_health_crises_365d",
        "suicide_attempts_365d",
        "self_harm_incidents_365d",
        "positive_screens_365d",
        "suicidal_ideation_screens_365d",
        "visits_low_mood_90d",
        "visits_low_mood_365d",
        "visits_abnormal_mood_365d",
        "latest_depression_score",
        "latest_anxiety_score",
    ),
}
# Any adverse event: what raises one domain's risk never lowers the risk of any of them.
MONOTONE[ANY] = tuple(dict.fromkeys(f for names in MONOTONE.values() for f in names))

#: The caseworker's checklist the warning-sign baseline counts ("ABC"-style flags: attendance,
#: behaviour and course failure, plus the care and safety signs a village visit records).
WARNING_SIGNS: tuple[WarningSign, ...] = (
    WarningSign("unexcused_absence_days_30d", ">", 5),
    WarningSign("suspected_dropout_records_90d", ">=", 1),
    WarningSign("last_term_failed_subjects", ">=", 2),
    WarningSign("guardianship_gap_records_365d", ">=", 1),
    WarningSign("visits_guardian_incapable_90d", ">=", 1),
    WarningSign("days_since_last_visit", ">", 60),
    WarningSign("incidents_365d", ">=", 1),
    WarningSign("latest_screen_positive", "==", True),
)


SCORECARD, WARNING, VILLAGE = "scorecard", "warning_signs", "village_rate"

# --------------------------------------------------------------------------------------------
# Configuration and result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoosterParams:
    """Hyperparameters of every LightGBM model (see ``models.estimator.RiskClassifier``).

    Small trees by default. On the default synthetic population (last two time folds, test
    ROC-AUC / precision at capacity) 100 trees of 7 leaves rank better than 400 of 31, which
    overfits: 0.751 / 0.29 and 0.764 / 0.41 against 0.708 / 0.26 and 0.724 / 0.37; a stronger L2
    penalty, fewer or more leaves, slower learning or larger leaves change ROC-AUC by at most
    0.002 (``docs/models.md``). Exact tree explanations cost about trees × leaves × depth² per
    child and scoring every outcome model costs trees × rows, so the small model scores and
    explains a million children in under two minutes (``benchmarks/scoring.py``).
    """

    n_estimators: int = 100
    learning_rate: float = 0.1
    num_leaves: int = 7
    min_child_samples: int = 100
    reg_lambda: float = 1.0
    colsample: float = 0.7
    n_jobs: int = 1


@dataclass(frozen=True)
class TrainConfig:
    """Everything :func:`train` needs besides the rows.

    Parameters
    ----------
    policy : TierPolicy
        Capacity (sizes precision at capacity and the tiers), rules, fairness band, promotion.
    registry : ModelRegistry, optional
        Where to log and register; ``None`` trains and evaluates without registering.
    known_by : date, optional
        The date the data were cut; default the frame's ``known_by``.
    horizon_days : int, default=90
        Days a label looks forward.
    test_days, calib_days : int, default=90
        Length of each fold's test and calibration windows, in as-of days.
    n_folds : int, default=2
        Rolling time folds; the last one is the registered model.
    embargo_days : int, optional
        Gap between windows; default the label horizon.
    calib_share, test_share : float, default=0.25
        Shares of households calibrating and testing.
    salt : str, default="shouhu-split-v1"
        Key of the household assignment.
    seed : int, default=0
        Seed of every random choice (LightGBM, calibration bootstrap, metric bootstrap).
    booster : BoosterParams
        LightGBM hyperparameters.
    scorecard_c : float, default=0.05
        Inverse L2 penalty of the logistic scorecard.
    calibration_method : {"isotonic", "sigmoid"}, default="sigmoid"
        Calibration map. Platt scaling by default: it keeps the booster's ranking intact,
        while isotonic plateaus tie the children at the top of the ranking, and ties at the
        capacity cut cost precision (measured on the default synthetic population, last fold:
        precision at capacity 0.409 with Platt against 0.394 isotonic, about the same ECE).
    n_bootstrap : int, default=200
        Household-bootstrap refits of the ``p_any`` calibration (its ``p_low``/``p_high``).
    interval : float, default=0.9
        Nominal coverage of ``[p_low, p_high]``.
    n_resamples : int, default=200
        Household-bootstrap resamples of every metric.
    tie_break : {"stable", "worst", "best"}, default="stable"
        Order of equal scores at the capacity cut. Rows are in pseudonymous-id order within
        a date, so ``"stable"`` is a draw unrelated to the outcome, as a caseworker choosing
        among equally flagged children would make. ``"worst"`` (the triage convention) gives
        coarse scores such as a count of warning signs a precision near zero from ties alone,
        which would make the baselines, and so the champion gate, too easy to beat.
    synthetic : bool, default=True
        The rows come from the synthetic population (said on the model card).
    data_description : str, optional
        One paragraph about the data for the model card.
    """

    policy: TierPolicy
    registry: ModelRegistry | None = None
    known_by: date | None = None
    horizon_days: int = 90
    test_days: int = 90
    calib_days: int = 90
    n_folds: int = 2
    embargo_days: int | None = None
    calib_share: float = 0.25
    test_share: float = 0.25
    salt: str = "shouhu-split-v1"
    seed: int = 0
    booster: BoosterParams = field(default_factory=BoosterParams)
    scorecard_c: float = 0.05
    calibration_method: CalibrationMethod = "sigmoid"
    n_bootstrap: int = 200
    interval: float = 0.9
    n_resamples: int = 200
    tie_break: TieBreak = "stable"
    synthetic: bool = True
    data_description: str | None = None

    def params(self) -> dict[str, Any]:
        """The configuration as plain, JSON-ready parameters (logged with the run).

        Returns
        -------
        dict
            Every setting except the policy object and the registry (the policy's version and
            fingerprint stand for it).
        """
        out = {
            k: v
            for k, v in asdict(self).items()
            if k not in ("policy", "registry", "booster", "data_description")
        }
        out["known_by"] = None if self.known_by is None else self.known_by.isoformat()
        out["booster"] = asdict(self.booster)
        out["policy_version"] = self.policy.version
        return out


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    Parameters
    ----------
    bundle : ModelBundle
        The calibrated models (``any`` and the four domains) with provenance.
    version : LoggedVersion or None
        The registered version (alias ``challenger``); ``None`` without a registry.
    test : dict of str to EvaluationReport
        Test-window evaluation of each outcome's calibrated model.
    baselines : dict of str to EvaluationReport
        Test-window evaluation, outcome ``any``, of the scorecard and the two simple baselines.
    uncalibrated : EvaluationReport
        The ``any`` model's raw probabilities on the test window.
    comparison : dict of str to MetricEstimate
        Paired bootstrap differences, model minus scorecard (ROC-AUC, precision at capacity).
    gate : ChampionGate
        The champion gate over every fold.
    fairness : FairnessReport
        Group audit of the test window's tiers.
    tier_mix : dict of str to float
        Share of test-window rows in each tier (capacity scaled to the test households).
    split : dict
        Windows, row counts and drops of the registered model's split.
    features : tuple of str
        Feature columns of the models.
    screened_out : tuple of str
        Model features left out because they were constant in the training window.
    test_predictions : DataFrame
        One row per test row: keys, capacity area and ``k``, labels, every score.
    seconds : float
        Wall time.
    """

    bundle: ModelBundle
    version: LoggedVersion | None
    test: dict[str, EvaluationReport]
    baselines: dict[str, EvaluationReport]
    uncalibrated: EvaluationReport
    comparison: dict[str, MetricEstimate]
    gate: ChampionGate
    fairness: FairnessReport
    tier_mix: dict[str, float]
    split: dict[str, Any]
    features: tuple[str, ...]
    screened_out: tuple[str, ...]
    test_predictions: pd.DataFrame
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The ``shouhu models train --json`` object (cli.md), with extra fields.

        Returns
        -------
        dict
            ``model_version``, ``metrics`` (``test`` per outcome, ``baseline`` per baseline,
            ``uncalibrated``, ``comparison``), ``fairness`` (summary and flagged rows), then
            ``gate``, ``tier_mix``, ``split``, ``features`` and timing.
        """
        fairness = self.fairness.to_dict()
        flags = self.fairness.flags()
        return {
            "model_version": None if self.version is None else self.version.version,
            "model_name": None if self.version is None else self.version.name,
            "run_id": None if self.version is None else self.version.run_id,
            "metrics": {
                "test": {o: r.to_dict() for o, r in self.test.items()},
                "baseline": {n: r.to_dict() for n, r in self.baselines.items()},
                "uncalibrated": self.uncalibrated.to_dict(),
                "comparison": {k: v.to_dict() for k, v in self.comparison.items()},
            },
            "fairness": {
                "n_rows": fairness["n_rows"],
                "n_events": fairness["n_events"],
                "summary": fairness["summary"],
                "blocking": fairness["blocking"],
                "insufficient": fairness["insufficient"],
                "flags": flags[["attribute", "group", "threshold", "metric", "ratio"]]
                .astype(object)
                .where(flags[["attribute", "group", "threshold", "metric", "ratio"]].notna())
                .to_dict(orient="records"),
            },
            "gate": self.gate.to_dict(),
            "tier_mix": self.tier_mix,
            "split": self.split,
            "n_features": len(self.features),
            "screened_out": list(self.screened_out),
            "seconds": round(self.seconds, 1),
        }


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def model_features(frame: pd.DataFrame) -> list[str]:
    """The model's candidate features: the registry's model features present in ``frame``.

    Protected attributes are never among them (``features.definitions.model_feature_names``
    leaves them out, and this checks again so that a registry change cannot slip one in).

    Parameters
    ----------
    frame : DataFrame
        A training or scoring frame.

    Returns
    -------
    list of str
        Feature names in registry order.

    Raises
    ------
    ValueError
        If a protected attribute would be a feature, or a registry feature is missing.
    """
    names = model_feature_names()
    protected = set(protected_feature_names())
    leaked = sorted(protected & set(names))
    if leaked:
        raise ValueError(f"protected attributes must never be model features: {leaked}")
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks model features {missing}")
    return names


def _screen(train_rows: pd.DataFrame, features: Sequence[str]) -> tuple[list[str], list[str]]:
    """Keep features that vary in the training window (missing counts as a value)."""
    kept: list[str] = []
    dropped: list[str] = []
    for name in features:
        (kept if train_rows[name].nunique(dropna=False) > 1 else dropped).append(name)
    return kept, dropped


def _check_frame(frame: pd.DataFrame) -> None:
    needed = [*KEY_COLUMNS, AREA_COLUMN, *(label_column(o) for o in OUTCOMES)]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"the training frame lacks columns {missing}")
    if frame.empty:
        raise InsufficientDataError("the training frame has no rows")


def _known_by(cfg: TrainConfig, frame: pd.DataFrame) -> date:
    if cfg.known_by is not None:
        return cfg.known_by
    if "known_by" not in frame.columns or frame["known_by"].isna().all():
        raise ValueError("give TrainConfig.known_by or a frame with a known_by column")
    return pd.Timestamp(frame["known_by"].max()).date()


def _folds(cfg: TrainConfig, frame: pd.DataFrame, known_by: date) -> list[TimeHouseholdSplit]:
    try:
        return rolling_time_folds(
            frame,
            n_folds=cfg.n_folds,
            test_days=cfg.test_days,
            calib_days=cfg.calib_days,
            data_end=known_by,
            horizon_days=cfg.horizon_days,
            embargo_days=cfg.embargo_days,
            calib_share=cfg.calib_share,
            test_share=cfg.test_share,
            salt=cfg.salt,
        )
    except ValueError as exc:
        raise InsufficientDataError(
            f"cannot form {cfg.n_folds} time folds from the matured history up to "
            f"{known_by.isoformat()}: {exc}"
        ) from exc


def _labels(rows: pd.DataFrame, outcome: str) -> npt.NDArray[np.int64]:
    return rows[label_column(outcome)].to_numpy(dtype=np.int64)


def _both_classes(y: npt.NDArray[np.int64], outcome: str, window: str) -> None:
    if len(y) == 0 or y.min() == y.max():
        raise InsufficientDataError(
            f"the {window} window has {'no rows' if len(y) == 0 else 'only one outcome'} for "
            f"{outcome!r}; more history (or more children) is needed"
        )


def _booster(cfg: TrainConfig, outcome: str, features: Sequence[str]) -> RiskClassifier:
    present = set(features)
    constraints = {name: 1 for name in MONOTONE.get(outcome, ()) if name in present}
    b = cfg.booster
    return RiskClassifier(
        learning_rate=b.learning_rate,
        num_leaves=b.num_leaves,
        n_estimators=b.n_estimators,
        min_child_samples=b.min_child_samples,
        reg_lambda=b.reg_lambda,
        colsample=b.colsample,
        monotone_constraints=constraints,
        random_state=cfg.seed,
        n_jobs=b.n_jobs,
    )


def _fit_calibrated(
    cfg: TrainConfig,
    outcome: str,
    train_rows: pd.DataFrame,
    calib_rows: pd.DataFrame,
    features: Sequence[str],
    *,
    n_bootstrap: int,
) -> CalibratedModel:
    """Fit one outcome's booster on the training window and calibrate it on the next."""
    y_train, y_calib = _labels(train_rows, outcome), _labels(calib_rows, outcome)
    _both_classes(y_train, outcome, "training")
    _both_classes(y_calib, outcome, "calibration")
    started = time.perf_counter()
    model = _booster(cfg, outcome, features).fit(train_rows[list(features)], y_train)
    calibrated = calibrate(
        model,
        calib_rows[list(features)],
        y_calib,
        groups=calib_rows["household_pid"].to_numpy(dtype=object),
        method=cfg.calibration_method,
        n_bootstrap=n_bootstrap,
        interval=cfg.interval,
        random_state=cfg.seed,
    )
    logger.info(
        "fitted model",
        extra={
            "outcome": outcome,
            "rows": len(train_rows),
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    return calibrated


@dataclass(frozen=True)
class _Baselines:
    scorecard: CalibratedModel
    warning: WarningSignCounter
    village: VillageRateRanker

    def scores(self, rows: pd.DataFrame, features: Sequence[str]) -> dict[str, npt.NDArray[Any]]:
        return {
            SCORECARD: self.scorecard.predict_proba(rows[list(features)])[:, 1],
            WARNING: self.warning.predict_proba(rows)[:, 1],
            VILLAGE: self.village.predict_proba(rows)[:, 1],
        }


def _fit_baselines(
    cfg: TrainConfig, train_rows: pd.DataFrame, calib_rows: pd.DataFrame, features: Sequence[str]
) -> _Baselines:
    y_train = _labels(train_rows, ANY)
    scorecard = ScorecardClassifier(C=cfg.scorecard_c, random_state=cfg.seed).fit(
        train_rows[list(features)], y_train
    )
    # The scorecard gets the same calibration as the model, so Brier and ECE compare fairly.
    calibrated = calibrate(
        scorecard,
        calib_rows[list(features)],
        _labels(calib_rows, ANY),
        method=cfg.calibration_method,
        n_bootstrap=0,
        random_state=cfg.seed,
    )
    warning = WarningSignCounter(signs=WARNING_SIGNS).fit(train_rows, y_train)
    village = VillageRateRanker(area_column="village_code").fit(train_rows, y_train)
    return _Baselines(calibrated, warning, village)


@dataclass(frozen=True)
class _Window:
    """The evaluated rows of one test window and how capacity applies to them."""

    rows: pd.DataFrame
    keys: npt.NDArray[np.object_]
    slots: dict[str, int]
    band: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, rows: pd.DataFrame, counts: pd.Series, policy: TierPolicy) -> _Window:
        keys, slots = capacity(rows, counts, policy)
        return cls(rows, keys, slots, t2_band(rows, policy))

    @property
    def households(self) -> npt.NDArray[np.object_]:
        return np.asarray(self.rows["household_pid"].to_numpy(dtype=object), dtype=object)


def _evaluate(
    cfg: TrainConfig, y: npt.NDArray[np.int64], p: npt.NDArray[Any], window: _Window
) -> EvaluationReport:
    return capacity_report(
        y,
        p,
        clusters=window.households,
        keys=window.keys,
        slots=window.slots,
        band=window.band,
        n_resamples=cfg.n_resamples,
        seed=cfg.seed,
        tie_break=cfg.tie_break,
    )


def _paired(
    cfg: TrainConfig,
    y: npt.NDArray[np.int64],
    p_model: npt.NDArray[Any],
    p_other: npt.NDArray[Any],
    window: _Window,
) -> dict[str, MetricEstimate]:
    """Model minus another score on the same household resamples (a paired bootstrap).

    ROC-AUC on every row; precision at capacity in the T2 band population, as reported.
    """
    resamples = cluster_bootstrap_indices(
        window.households, n_resamples=cfg.n_resamples, seed=cfg.seed
    )
    band = window.band
    keys, slots = window.keys, window.slots

    def precision(p: npt.NDArray[Any], i: npt.NDArray[np.intp]) -> float:
        inside = i[band[i]]
        return precision_at_capacity(
            y[inside], p[inside], keys[inside], slots, tie_break=cfg.tie_break
        )

    metrics: dict[str, Callable[[npt.NDArray[np.intp]], float]] = {
        "roc_auc": lambda i: roc_auc(y[i], p_model[i]) - roc_auc(y[i], p_other[i]),
        "precision_at_capacity": lambda i: precision(p_model, i) - precision(p_other, i),
    }
    return {
        name: bootstrap_metric(fn, resamples, len(y), level=0.95) for name, fn in metrics.items()
    }


def _window_summary(rows: pd.DataFrame, window: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "start": window.get("start"),
        "end": window.get("end"),
        "rows": len(rows),
        "children": int(rows["child_id"].nunique()),
        "households": int(rows["household_pid"].nunique()),
        "positives": int(rows[label_column(ANY)].sum()),
    }


def window_tiers(rows: pd.DataFrame, counts: pd.Series, policy: TierPolicy) -> pd.DataFrame:
    """Tiers of evaluated rows, each as-of date ranked with capacity scaled to the sample.

    Parameters
    ----------
    rows : DataFrame
        Rows of one window with ``p_any``, ``p_low``, ``p_high``, the rules' features and
        :data:`~models.dataset.AREA_COLUMN`.
    counts : Series
        Registered children per (area, as-of date) in the whole population.
    policy : TierPolicy
        The tier policy.

    Returns
    -------
    DataFrame
        ``models.tiers.assign_tiers`` output, indexed like ``rows``.
    """
    parts = []
    for as_of, part in rows.groupby("as_of", sort=True):
        overrides: dict[str, AreaCapacity] = {}
        for area in part[AREA_COLUMN].astype(str).unique():
            n_all = int(counts[(area, as_of)])
            k2, k3 = policy.capacity.for_area(str(area)).slots(n_all)
            t2 = min(k2 / n_all, 1.0)
            t3 = min(k3 / n_all, 1.0 - t2)
            # A share of the sample's children: the sample gets its share of the visits.
            overrides[str(area)] = AreaCapacity(basis="share", t2=t2, t3=t3)
        # model_copy skips validation: the overrides are valid AreaCapacity objects, and an
        # unresolved area's key is not a digit code.
        capacity = policy.capacity.model_copy(update={"overrides": overrides})
        scaled = policy.model_copy(update={"capacity": capacity})
        frame = part.assign(**{policy.capacity.area_column: part[AREA_COLUMN].astype(str)})
        parts.append(assign_tiers(frame, scaled, id_column="child_id"))
    return pd.concat(parts).loc[rows.index]


def _fairness(cfg: TrainConfig, rows: pd.DataFrame, tiers: pd.DataFrame) -> FairnessReport:
    frame = pd.DataFrame(
        {
            "y": _labels(rows, ANY),
            "p": rows["p_any"].to_numpy(dtype=np.float64),
            "tier": tiers["tier"].astype(str).to_numpy(),
            "household": rows["household_pid"].astype(str).to_numpy(),
        }
    )
    groups: dict[str, Any] = {
        "sex": rows["sex"].astype("object").to_numpy(),
        "age_band": age_band(rows["age_years"].astype("float64")).astype("object").to_numpy(),
        "disability": rows["disability"].astype("object").to_numpy(),
        "no_household_registration": rows["no_household_registration"].astype("object").to_numpy(),
        "ethnicity": rows["ethnicity"].astype("object").to_numpy(),
        "township": rows[AREA_COLUMN].astype("object").to_numpy(),
    }
    return fairness_audit(
        frame,
        y_true="y",
        score="p",
        tier="tier",
        groups=groups,
        thresholds=["T1", "T2", "T3"],
        band=cfg.policy.fairness.disparity_band,
        clusters="household",
        n_resamples=cfg.n_resamples,
        seed=cfg.seed,
    )


#: Test rows averaged for the global importance plot: exact tree contributions cost about a
#: millisecond per row, and the ranking of features is stable well before every row counts.
IMPORTANCE_SAMPLE = 3000


@dataclass(frozen=True)
class _PlotInputs:
    bundle: ModelBundle
    test_features: pd.DataFrame
    y: npt.NDArray[np.int64]
    p_raw: npt.NDArray[Any]
    p_cal: npt.NDArray[Any]
    seed: int


def _plots(folder: Path, inputs: _PlotInputs) -> list[Path]:
    """The global importance of the ``any`` model and a reliability diagram, as PNG files."""
    # Figure without pyplot: no global state, Agg rendering by file type, no display needed.
    from matplotlib.figure import Figure

    from models.explain import global_importance
    from models.plots import importance_png

    features = inputs.test_features
    sample = features.sample(n=min(IMPORTANCE_SAMPLE, len(features)), random_state=inputs.seed)
    importance = global_importance(inputs.bundle, sample, domain=ANY, n_threads=1)
    path, _ = importance_png(importance, folder / "importance_any.png", lang="zh")

    fig = Figure(figsize=(6, 6), layout="constrained")
    ax = fig.subplots()
    edges = np.quantile(inputs.p_cal, np.linspace(0, 1, 11))
    for label, p in (("uncalibrated", inputs.p_raw), ("calibrated", inputs.p_cal)):
        bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
        means = pd.DataFrame({"bin": bins, "p": p, "y": inputs.y}).groupby("bin").mean()
        ax.plot(means["p"], means["y"], marker="o", label=label)
    top_p = float(max(inputs.p_raw.max(), inputs.p_cal.max()))
    ax.plot([0, top_p], [0, top_p], linestyle="--", color="grey", label="perfect")
    ax.set_xlabel("predicted probability (deciles of the calibrated one)")
    ax.set_ylabel("observed rate")
    ax.set_title("Reliability on the test window (any adverse event)")
    ax.legend()
    reliability = folder / "reliability_any.png"
    fig.savefig(reliability, dpi=110)
    return [path, reliability]


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def train(cfg: TrainConfig, frame: pd.DataFrame) -> TrainResult:
    """Fit, calibrate, evaluate, gate, audit and register the risk models.

    Parameters
    ----------
    cfg : TrainConfig
        Policy, registry, windows, seed and hyperparameters.
    frame : DataFrame
        Training rows from :func:`models.dataset.build_training_data` (keys, features,
        ``capacity_area``, ``y_<outcome>`` labels, ``known_by``), every registered child of
        every as-of date, all households.

    Returns
    -------
    TrainResult
        The bundle, the registered version (with a registry) and every evaluation.

    Raises
    ------
    InsufficientDataError
        If the folds cannot be formed or a window lacks one of the outcomes.
    RegistryError
        If the registry refuses a write.
    """
    started = time.perf_counter()
    _check_frame(frame)
    known_by = _known_by(cfg, frame)
    folds = _folds(cfg, frame, known_by)
    candidates = model_features(frame)
    counts = area_counts(frame)

    gate_folds: list[GateFold] = []
    for index, split in enumerate(folds[:-1]):
        train_rows, calib_rows, test_rows = split.frames(frame)
        features, _ = _screen(train_rows, candidates)
        model = _fit_calibrated(cfg, ANY, train_rows, calib_rows, features, n_bootstrap=0)
        baselines = _fit_baselines(cfg, train_rows, calib_rows, features)
        gate_folds.append(
            _gate_fold(index, split, model, baselines, test_rows, features, counts, cfg)
        )

    split = folds[-1]
    train_rows, calib_rows, test_rows = split.frames(frame)
    features, screened_out = _screen(train_rows, candidates)
    models = {
        outcome: _fit_calibrated(
            cfg,
            outcome,
            train_rows,
            calib_rows,
            features,
            n_bootstrap=cfg.n_bootstrap if outcome == ANY else 0,
        )
        for outcome in (ANY, *DOMAINS)
    }
    baselines = _fit_baselines(cfg, train_rows, calib_rows, features)
    gate_folds.append(
        _gate_fold(len(folds) - 1, split, models[ANY], baselines, test_rows, features, counts, cfg)
    )
    gate = ChampionGate(tuple(gate_folds))

    # -- evaluation on the test window of the registered model's split ----------------------
    window = _Window.of(test_rows, counts, cfg.policy)
    X_test = test_rows[features]  # noqa: N806 - scikit-learn's name
    predictions = _test_predictions(window, models, X_test)
    reports = {
        outcome: _evaluate(
            cfg, _labels(test_rows, outcome), predictions[f"p_{outcome}"].to_numpy(), window
        )
        for outcome in (ANY, *DOMAINS)
    }
    y_any = _labels(test_rows, ANY)
    p_any = predictions["p_any"].to_numpy()
    p_raw = models[ANY].model.predict_proba(X_test)[:, 1]
    predictions["p_any_uncalibrated"] = p_raw
    uncalibrated = _evaluate(cfg, y_any, p_raw, window)
    baseline_scores = baselines.scores(test_rows, features)
    baseline_reports = {}
    for name, score in baseline_scores.items():
        predictions[f"score_{name}"] = score
        baseline_reports[name] = _evaluate(cfg, y_any, score, window)
    comparison = _paired(cfg, y_any, p_any, baseline_scores[SCORECARD], window)

    # -- tiers and fairness on the test window ----------------------------------------------
    scored = test_rows.assign(
        p_any=p_any, p_low=predictions["p_low"].to_numpy(), p_high=predictions["p_high"].to_numpy()
    )
    tiers = window_tiers(scored, counts, cfg.policy)
    predictions["tier"] = tiers["tier"].astype(str).to_numpy()
    predictions["borderline"] = tiers["borderline"].to_numpy(dtype=bool)
    shares = tiers["tier"].astype(str).value_counts(normalize=True)
    tier_mix = {t: round(float(shares.get(t, 0.0)), 4) for t in ("T1", "T2", "T3", "T4")}
    fairness = _fairness(cfg, scored, tiers)

    # -- the bundle --------------------------------------------------------------------------
    metrics: dict[str, dict[str, Any]] = {o: r.to_dict() for o, r in reports.items()}
    reference = frame.loc[
        (frame["as_of"] >= pd.Timestamp(split.test_window.start or split.test_window.end))
        & (frame["as_of"] <= pd.Timestamp(split.test_window.end))
    ]
    metrics[ANY][INPUT_PROFILE_KEY] = {
        "missing_rates": missing_rates(reference, features),
        "window": split.test_window.to_dict(),
        "rows": len(reference),
    }
    bundle = ModelBundle(
        models=models,
        feature_names=tuple(features),
        feature_fingerprint=definitions_fingerprint(),
        policy_version=cfg.policy.version,
        policy_fingerprint=cfg.policy.fingerprint(),
        data_fingerprint=frame_fingerprint(
            train_rows[[*KEY_COLUMNS, *features, *(label_column(o) for o in OUTCOMES)]]
        ),
        metrics=metrics,
    )

    windows = {
        "train": _window_summary(train_rows, split.train_window.to_dict()),
        "calibration": _window_summary(calib_rows, split.calib_window.to_dict()),
        "test": _window_summary(test_rows, split.test_window.to_dict()),
    }
    split_summary = {**split.to_dict(), "summary": windows, "known_by": known_by.isoformat()}
    version = None
    if cfg.registry is not None:
        version = _register(
            cfg,
            bundle,
            baseline_reports=baseline_reports,
            uncalibrated=uncalibrated,
            comparison=comparison,
            gate=gate,
            fairness=fairness,
            tier_mix=tier_mix,
            windows=windows,
            split_summary=split_summary,
            predictions=predictions,
            screened_out=screened_out,
            plot_inputs=_PlotInputs(bundle, X_test, y_any, p_raw, p_any, cfg.seed),
        )
    seconds = time.perf_counter() - started
    logger.info(
        "training finished",
        extra={
            "version": None if version is None else version.version,
            "gate": gate.status,
            "seconds": round(seconds, 1),
        },
    )
    return TrainResult(
        bundle=bundle,
        version=version,
        test=reports,
        baselines=baseline_reports,
        uncalibrated=uncalibrated,
        comparison=comparison,
        gate=gate,
        fairness=fairness,
        tier_mix=tier_mix,
        split=split_summary,
        features=tuple(features),
        screened_out=tuple(screened_out),
        test_predictions=predictions,
        seconds=seconds,
    )


def _gate_fold(
    index: int,
    split: TimeHouseholdSplit,
    model: CalibratedModel,
    baselines: _Baselines,
    test_rows: pd.DataFrame,
    features: Sequence[str],
    counts: pd.Series,
    cfg: TrainConfig,
) -> GateFold:
    window = _Window.of(test_rows, counts, cfg.policy)
    y = _labels(test_rows, ANY)
    scores = {
        "model": model.predict_proba(test_rows[list(features)])[:, 1],
        **baselines.scores(test_rows, features),
    }
    precision = {
        name: band_precision(
            y,
            score,
            keys=window.keys,
            slots=window.slots,
            band=window.band,
            tie_break=cfg.tie_break,
        )
        for name, score in scores.items()
    }
    return GateFold(
        index=index,
        test_window=split.test_window.to_dict(),
        model=precision["model"],
        baselines={name: precision[name] for name in (WARNING, VILLAGE, SCORECARD)},
    )


def _test_predictions(
    window: _Window,
    models: Mapping[str, CalibratedModel],
    X: pd.DataFrame,  # noqa: N803 - scikit-learn's name
) -> pd.DataFrame:
    """Keys, capacity, band, labels and calibrated scores of every test row (for evaluate)."""
    rows = window.rows
    out = pd.DataFrame(
        {
            "child_id": rows["child_id"].astype(str).to_numpy(),
            "as_of": pd.to_datetime(rows["as_of"]).to_numpy(),
            "household_pid": rows["household_pid"].astype(str).to_numpy(),
            AREA_COLUMN: rows[AREA_COLUMN].astype(str).to_numpy(),
            "area_key": window.keys,
            "capacity": [window.slots[k] for k in window.keys],
            "t2_band": window.band,
        }
    )
    for outcome in OUTCOMES:
        out[label_column(outcome)] = _labels(rows, outcome)
    main = models[ANY]
    out["p_any"] = main.predict_proba(X)[:, 1]
    out["p_low"], out["p_high"] = main.predict_interval(X)
    for outcome in DOMAINS:
        out[f"p_{outcome}"] = models[outcome].predict_proba(X)[:, 1]
    return out


def _card_context(
    cfg: TrainConfig,
    *,
    baseline_reports: Mapping[str, EvaluationReport],
    comparison: Mapping[str, MetricEstimate],
    gate: ChampionGate,
    tier_mix: Mapping[str, float],
    windows: Mapping[str, Any],
    known_by: str,
    screened_out: Sequence[str],
) -> dict[str, Any]:
    description = cfg.data_description or (
        "Rows are children registered on each month end, with point-in-time features and the "
        f"adverse outcomes the ledgers recorded in the next {cfg.horizon_days} days."
    )
    limitations = [
        "Labels are outcomes the ledgers recorded, not everything that happened: outcomes "
        "caseworkers record themselves are seen only where someone visited, so the model "
        "partly learns whom the staff already watch.",
        "Precision and recall at capacity count only the children no rule already puts in "
        "T1 (those are visited whatever a model says); among them, a small share of "
        "children ranked highest in each township is a noisy sample: compare intervals, "
        "not point values.",
    ]
    if not gate.passed:
        limitations.append(gate.reason() + ": this version must not become champion.")
    facts: dict[str, Any] = {
        "champion_gate": gate.reason(),
        "labels_known_by": known_by,
        "tier_mix_test_window": ", ".join(f"{t} {s:.1%}" for t, s in tier_mix.items()),
        "features_left_out_as_constant": ", ".join(screened_out) or "none",
    }
    return {
        "data": {
            "description": description,
            "synthetic": cfg.synthetic,
            "windows": windows,
            **{k: v for k, v in facts.items() if v is not None},
        },
        "baselines": {name: r.to_dict() for name, r in baseline_reports.items()},
        "comparison": {name: e.to_dict() for name, e in comparison.items()},
        "fairness": {
            "band": [
                float(cfg.policy.fairness.disparity_band.low),
                float(cfg.policy.fairness.disparity_band.high),
            ],
            "reference": "overall",
            "note": "Tiers of the test window, capacity scaled to its households; ethnicity "
            "is audited and never a feature.",
        },
        "promotion": {
            "min_precision_at_capacity": cfg.policy.promotion.min_precision_at_capacity,
            "preregistered_on": cfg.policy.promotion.preregistered_on.isoformat(),
        },
        "limitations": limitations,
    }


def _register(
    cfg: TrainConfig,
    bundle: ModelBundle,
    *,
    baseline_reports: Mapping[str, EvaluationReport],
    uncalibrated: EvaluationReport,
    comparison: Mapping[str, MetricEstimate],
    gate: ChampionGate,
    fairness: FairnessReport,
    tier_mix: Mapping[str, float],
    windows: Mapping[str, Any],
    split_summary: Mapping[str, Any],
    predictions: pd.DataFrame,
    screened_out: Sequence[str],
    plot_inputs: _PlotInputs,
) -> LoggedVersion:
    registry = cfg.registry
    assert registry is not None
    with tempfile.TemporaryDirectory(prefix="shouhu-train-") as tmp:
        folder = Path(tmp)
        plots = _plots(folder, plot_inputs)
        version = registry.log_training_run(
            bundle,
            params={**cfg.params(), "screened_out": list(screened_out)},
            metrics={
                "baseline": {name: r.to_dict() for name, r in baseline_reports.items()},
                "uncalibrated": {ANY: uncalibrated.to_dict()},
                "comparison": {"scorecard": {k: v.to_dict() for k, v in comparison.items()}},
                "gate": {
                    "folds_passed": gate.folds_passed,
                    "passed": gate.passed,
                    **{
                        f"fold{f.index}": {"model": f.model, **dict(f.baselines)}
                        for f in gate.folds
                    },
                },
                "tier_mix": dict(tier_mix),
                "split": dict(split_summary),
            },
            fairness=fairness.to_frame(),
            plots=plots,
            model_card=_card_context(
                cfg,
                baseline_reports=baseline_reports,
                comparison=comparison,
                gate=gate,
                tier_mix=tier_mix,
                windows=windows,
                known_by=str(split_summary.get("known_by")),
                screened_out=screened_out,
            ),
            run_name="train",
            tags={GATE_TAG: gate.status, GATE_REASON_TAG: gate.reason()},
        )
        # The test rows' scores, so `shouhu models evaluate` recomputes the very same figures
        # (and joins the oracle) without rebuilding features. Pseudonymous ids only.
        table = folder / "test_predictions.parquet"
        predictions.to_parquet(table, index=False)
        registry.client.log_artifact(version.run_id, str(table), "evaluation")
    return version


# --------------------------------------------------------------------------------------------
# Entry point for the CLI
# --------------------------------------------------------------------------------------------


def train_config_from_settings(
    settings: Settings,
    policy: TierPolicy,
    registry: ModelRegistry | None,
    *,
    known_by: date,
    n_folds: int | None = None,
    data_description: str | None = None,
) -> TrainConfig:
    """The training configuration of ``settings.train``, as every entrypoint that trains uses it.

    Parameters
    ----------
    settings : Settings
        Training settings (windows, shares, booster, bootstrap) and demo mode.
    policy : TierPolicy
        The tier policy in force.
    registry : ModelRegistry or None
        Where the trained version is registered (``None``: not registered).
    known_by : date
        Only records entered by this date are used.
    n_folds : int, optional
        Time folds (default ``settings.train.n_folds``).
    data_description : str, optional
        The model card's description of the data (the default description if unset).

    Returns
    -------
    TrainConfig
    """
    ts = settings.train
    return TrainConfig(
        policy=policy,
        registry=registry,
        known_by=known_by,
        horizon_days=ts.horizon_days,
        test_days=ts.test_days,
        calib_days=ts.calib_days,
        n_folds=ts.n_folds if n_folds is None else n_folds,
        calib_share=ts.calib_share,
        test_share=ts.test_share,
        seed=ts.seed,
        booster=BoosterParams(
            n_estimators=ts.n_estimators,
            num_leaves=ts.num_leaves,
            learning_rate=ts.learning_rate,
            n_jobs=ts.n_jobs,
        ),
        n_bootstrap=ts.n_bootstrap,
        n_resamples=ts.n_resamples,
        synthetic=settings.demo_mode,
        data_description=data_description,
    )


def train_from_settings(settings: Settings) -> TrainResult:
    """Build the training rows from the feature store and train, as ``shouhu models train``.

    Parameters
    ----------
    settings : Settings
        Data home, store, registry, policy and training settings.

    Returns
    -------
    TrainResult
        The registered version and its evaluation.
    """
    from features.rawstore import connect
    from features.store import FeatureStore
    from models.cli import registry_from_settings
    from models.dataset import build_training_data, newest_record, training_dates
    from models.policy import load_policy

    ts = settings.train
    policy = load_policy(settings.policy.file)
    con = connect(
        settings.store_path,
        read_only=True,
        threads=settings.store.threads,
        memory_limit=settings.store.memory_limit,
    )
    try:
        known_by = newest_record(con)
        dates = training_dates(
            con,
            known_by=known_by,
            cadence_months=ts.cadence_months,
            warmup_months=ts.warmup_months,
            horizon_days=ts.horizon_days,
        )
        data = build_training_data(
            FeatureStore(con), dates, known_by=known_by, horizon_days=ts.horizon_days
        )
    finally:
        con.close()
    cfg = train_config_from_settings(
        settings, policy, registry_from_settings(settings), known_by=known_by
    )
    result = train(cfg, data.frame)
    logger.info("training data", extra=data.summary())
    return result


__all__ = [
    "DOMAINS",
    "MONOTONE",
    "WARNING_SIGNS",
    "BoosterParams",
    "TrainConfig",
    "TrainResult",
    "model_features",
    "train",
    "train_config_from_settings",
    "train_from_settings",
    "window_tiers",
]
