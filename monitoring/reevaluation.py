"""Quarterly re-evaluation: champion against a challenger trained on what was known before.

``shouhu monitoring reevaluate --quarter 2025Q3`` answers one question a supervisor signs
for every quarter: should the model that tiers the children change? It

1. trains a **challenger** with the training recipe (``models.train.train``) on everything
   known before the quarter: as-of dates whose 90-day outcomes had matured by the day
   before the quarter began, labels counted as the ledgers stood on that day
   (``known_by``), so nothing recorded in or after the quarter can leak in. With a short
   history the recipe's rolling time folds may not all fit; the challenger is then trained
   with as many folds as fit, and its champion gate (two folds won) cannot pass;
2. scores **every child registered on the quarter's month ends** with the champion and the
   challenger, and measures both against the outcomes the ledgers recorded in the 90 days
   after each date (``features.labels``, known as of the newest record; never the synthetic
   truth): discrimination (ROC-AUC, PR-AUC), calibration (Brier, ECE, observed/expected),
   precision and recall at capacity exactly as training measures them
   (``models.capacity``), with household-bootstrap intervals, and the paired difference
   challenger minus champion on the same resamples;
3. places both in tiers (``models.train.window_tiers``: rules, then each township's
   capacity bands; no hysteresis, i.e. the tiers each model alone would give) and audits
   them (``models.fairness``, fairlearn's MetricFrame): **false-negative and false-omission
   rate parity first** (aequitas' 0.8-1.25 band from the policy file), then selection rate
   and calibration by group;
4. counts **tier stability**: how many children would change tier on the quarter's last
   date, in which direction, and how many would enter or leave the fortnightly-visit list
   (T1-T2);
5. adds a **backtest** over earlier quarters: both models on the households that neither
   trains nor calibrates on (the split's test households), with the challenger's own
   rolling time folds, so that one lucky quarter is not mistaken for a better model;
6. recommends ``promote`` only when every blocking check passes:

   ===================  ===============================================================
   check                passes when
   ===================  ===============================================================
   champion gate        the challenger's training run passed the gate (two time folds
                        won against the warning-sign count and the village ranker);
                        ``shouhu models promote`` refuses otherwise
   minimum precision    its recorded and its quarter precision at capacity reach the
                        policy's pre-registered minimum
   better               the lower end of the paired interval of precision at capacity
                        (challenger minus champion) is above 0
   no regression        AUC not clearly worse (upper end of its paired interval >= 0)
                        and ECE at most ``ece_tolerance`` above the champion's
   fairness             no FNR or FOR ratio above the band at the cuts the model
                        decides (T1-T2, T1-T3): no group missed more often than the
                        children overall, unless a supervisor's signed note accepts it
   ===================  ===============================================================

   The T1 cut is audited and shown but does not block: only rules put a child in T1, so
   its disparities are the rules', and no model promotion changes them.

Promotion stays a person's decision: the report (HTML and Markdown under
``$SHOUHU_HOME/monitoring/reevaluation/<quarter>/``) gives the recommendation, every reason
and the ``shouhu models promote`` command. A supervisor approves a ``promote`` on the web
pages (``/promotion/<quarter>``) or with ``shouhu monitoring approve``
(:func:`approve_from_settings`); both call ``models.promotion.approve_promotion``, which
reads this report's JSON and refuses a ``keep``, a changed note or a changed champion.

A **signed note** is a small YAML file a supervisor writes after reading a report whose
fairness check blocked promotion::

    quarter: 2025Q3
    challenger_version: 4
    supervisor: 张督导
    role: supervisor
    signed_on: 2026-01-12
    reason: >-
      The FNR flag for township 500229101 rests on 9 events; its caseworkers visit every
      child monthly anyway, and the challenger misses fewer children overall.
    accepts: [township]          # optional: attributes or attribute=group; empty = all

Re-run with ``--note FILE`` (and ``--challenger 4``, to re-evaluate that version rather than
train another); the note is kept beside the report with its SHA-256, and later runs for the
same quarter and version find it there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from models.bundle import ANY, ModelBundle
from models.capacity import area_counts, capacity, capacity_report, t2_band
from models.dataset import AREA_COLUMN, label_column
from models.evaluate import SHORT_NAMES
from models.fairness import (
    BLOCKING_METRICS,
    FairnessReport,
    age_band,
    fairness_audit,
)
from models.metrics import (
    EvaluationReport,
    MetricEstimate,
    TieBreak,
    bootstrap_metric,
    brier,
    cluster_bootstrap_indices,
    expected_calibration_error,
    precision_at_capacity,
    recall_at_capacity,
    roc_auc,
)
from models.policy import Tier, TierPolicy
from models.promotion import (
    NOTES_DIR,
    PROMOTE,
    REEVALUATION_JSON,
    approve_promotion,
    latest_reevaluation,
    note_path,
    reevaluation_folder,
)
from models.splits import assign_groups, rolling_time_folds
from models.train import window_tiers
from monitoring.quarters import Quarter
from shouhu.errors import ConfigError, InsufficientDataError, NotFoundError

if TYPE_CHECKING:
    from features.store import FeatureStore
    from models.registry import ModelRegistry
    from models.train import TrainResult
    from shouhu.settings import Settings

logger = logging.getLogger(__name__)

#: The two recommendations (``PROMOTE`` is the one an approval needs, ``models.promotion``).
KEEP = "keep"
Recommendation = Literal["promote", "keep"]

#: Cuts of the fairness audit; only those the model decides can block (see the docstring).
AUDIT_CUTS: tuple[str, ...] = ("T1", "T2", "T3")
MODEL_CUTS: tuple[str, ...] = ("T1-T2", "T1-T3")
#: The fortnightly-visit list whose entries and exits tier stability counts.
VISIT_TIERS: tuple[str, ...] = ("T1", "T2")
#: The T2-band split's household group that neither trains nor calibrates.
HELD_OUT_GROUP = "test"


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionRule:
    """How the figures turn into a recommendation (see the module docstring).

    Parameters
    ----------
    level : float, default=0.9
        Coverage of the paired household-bootstrap intervals the "better" and "no
        regression" checks read: 0.9 puts 5 % of the resamples beyond each end.
    ece_tolerance : float, default=0.02
        How much higher the challenger's ECE may be than the champion's (probability
        units): calibration errors of a few points move nobody across a capacity cut.
    """

    level: float = 0.9
    ece_tolerance: float = 0.02

    def __post_init__(self) -> None:
        if not 0.0 < self.level < 1.0:
            raise ValueError("level must lie inside (0, 1)")
        if self.ece_tolerance < 0:
            raise ValueError("ece_tolerance must be non-negative")


@dataclass(frozen=True)
class EvaluationSettings:
    """How the quarter and the backtest are measured.

    Parameters
    ----------
    n_resamples : int, default=200
        Household-bootstrap resamples of every interval.
    seed : int, default=0
        Seed of the resamples.
    tie_break : {"stable", "worst", "best"}, default="stable"
        Order of equal scores at the capacity cut, as in training.
    min_group_size, min_events : int
        Fairness rows of smaller groups are ``insufficient_data`` (never flagged).
    rule : DecisionRule
        The decision thresholds.
    """

    n_resamples: int = 200
    seed: int = 0
    tie_break: TieBreak = "stable"
    min_group_size: int = 30
    min_events: int = 5
    rule: DecisionRule = field(default_factory=DecisionRule)


# --------------------------------------------------------------------------------------------
# The supervisor's signed note
# --------------------------------------------------------------------------------------------


class SupervisorNote(BaseModel):
    """A supervisor's signed acceptance of the fairness flags of one challenger and quarter.

    Parameters
    ----------
    quarter : str
        The quarter re-evaluated (``YYYYQn``).
    challenger_version : int
        The registered version the note is about.
    supervisor : str
        Who signs.
    role : {"supervisor"}
        Only a supervisor may accept a disparity.
    signed_on : date
        When; not in the future.
    reason : str
        Why the flagged disparities do not stand in the way (at least 20 characters).
    accepts : list of str
        Attributes (``township``) or groups (``township=500229101``) accepted; empty means
        every blocking flag of this version on this quarter.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    quarter: str
    challenger_version: int = Field(ge=1)
    supervisor: str = Field(min_length=1)
    role: Literal["supervisor"] = "supervisor"
    signed_on: date
    reason: str = Field(min_length=20)
    accepts: list[str] = Field(default_factory=list)

    @field_validator("quarter")
    @classmethod
    def _is_quarter(cls, value: str) -> str:
        return str(Quarter.parse(value))

    @field_validator("supervisor", "reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("signed_on")
    @classmethod
    def _not_future(cls, value: date) -> date:
        if value > datetime.now(UTC).date():
            raise ValueError(f"a note cannot be signed in the future ({value.isoformat()})")
        return value

    def covers(self, attribute: str, group: str) -> bool:
        """Whether the note accepts a flag of ``attribute`` for ``group``."""
        if not self.accepts:
            return True
        return attribute in self.accepts or f"{attribute}={group}" in self.accepts


@dataclass(frozen=True)
class SignedNote:
    """A note as read from its file, with the SHA-256 that identifies the signed text.

    Parameters
    ----------
    note : SupervisorNote
        The validated content.
    text : str
        The file's text, kept verbatim beside the report.
    sha256 : str
        Hex digest of the UTF-8 text.
    source : str
        Where it was read from.
    """

    note: SupervisorNote
    text: str
    sha256: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the reason in full, the signer and the digest).

        Returns
        -------
        dict
            The note's fields plus ``sha256`` and ``source``.
        """
        return {
            **self.note.model_dump(mode="json"),
            "sha256": self.sha256,
            "source": self.source,
        }


def load_note(path: Path) -> SignedNote:
    """Read and validate a supervisor's note.

    Parameters
    ----------
    path : Path
        The YAML file.

    Returns
    -------
    SignedNote
        The note and its digest.

    Raises
    ------
    ConfigError
        If the file cannot be read or does not follow :class:`SupervisorNote`.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the supervisor's note {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a note is a YAML mapping (quarter, challenger_version, ...)")
    try:
        note = SupervisorNote.model_validate(data)
    except (ValidationError, ValueError) as exc:
        raise ConfigError(f"{path}: not a valid supervisor's note: {exc}") from exc
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return SignedNote(note=note, text=text, sha256=digest, source=str(path))


# --------------------------------------------------------------------------------------------
# Evaluating one model on one window
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationWindow:
    """Rows of a window with how capacity, the T2 band and the bootstrap apply to them.

    Parameters
    ----------
    rows : DataFrame
        Rows of :func:`models.dataset.build_training_data` (features, labels, capacity area),
        indexed 0..n-1.
    counts : Series
        Registered children per (area, as-of date) of the whole population.
    keys : ndarray
        Capacity key of each row (``<township>|<date>``).
    slots : dict of str to int
        T2 visits per key, scaled to the rows' share of the population.
    band : ndarray of bool
        Rows no rule puts in T1.
    """

    rows: pd.DataFrame
    counts: pd.Series
    keys: npt.NDArray[np.object_]
    slots: dict[str, int]
    band: npt.NDArray[np.bool_]

    @classmethod
    def of(
        cls, rows: pd.DataFrame, policy: TierPolicy, counts: pd.Series | None = None
    ) -> EvaluationWindow:
        """Build a window; ``counts`` defaults to the rows themselves (a whole population).

        Parameters
        ----------
        rows : DataFrame
            The evaluated rows.
        policy : TierPolicy
            Capacity and rules.
        counts : Series, optional
            Registered children per (area, date) when ``rows`` is a sample of them.

        Returns
        -------
        EvaluationWindow
            The window.
        """
        rows = rows.reset_index(drop=True)
        counts = area_counts(rows) if counts is None else counts
        keys, slots = capacity(rows, counts, policy)
        return cls(rows, counts, keys, slots, t2_band(rows, policy))

    @property
    def y(self) -> npt.NDArray[np.int64]:
        """Any adverse event in the 90 days after each row's date."""
        return self.rows[label_column(ANY)].to_numpy(dtype=np.int64)

    @property
    def households(self) -> npt.NDArray[np.object_]:
        """The bootstrap's clusters."""
        return np.asarray(self.rows["household_pid"].astype(str).to_numpy(), dtype=object)


def _json(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 6)


def _share(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")


@dataclass(frozen=True)
class ModelEvaluation:
    """One model on one window: metrics with intervals, tiers and the fairness audit.

    Parameters
    ----------
    role : {"champion", "challenger"}
        Which model.
    version : int or None
        Registered version (``None`` for an unregistered bundle).
    report : EvaluationReport
        Capacity-aware metrics with household-bootstrap intervals.
    p_any : ndarray
        Calibrated probabilities, row order of the window.
    tiers : Series or None
        Tier of each row (``None`` when tiers were not computed, as in the backtest).
    fairness : FairnessReport or None
        Group audit of the tiers.
    """

    role: str
    version: int | None
    report: EvaluationReport
    p_any: npt.NDArray[np.float64]
    tiers: pd.Series | None = None
    fairness: FairnessReport | None = None

    def metrics(self) -> dict[str, float | None]:
        """cli.md's short metric names with calibration extras, point values only.

        Returns
        -------
        dict
            ``auc``, ``pr_auc``, ``brier``, ``ece``, ``precision_at_capacity``,
            ``recall_at_capacity``, ``auc_t2_band``, ``precision_at_capacity_all_children``,
            ``calibration_ratio`` (observed/expected events), ``mean_predicted``,
            ``event_rate``.
        """
        values = self.report.values()
        out = {short: _json(values.get(name)) for name, short in SHORT_NAMES.items()}
        events = float(self.report.n_positive)
        out["calibration_ratio"] = _json(_share(events, float(self.p_any.sum())))
        out["mean_predicted"] = _json(float(self.p_any.mean()) if len(self.p_any) else None)
        out["event_rate"] = _json(_share(events, float(self.report.n_rows)))
        return out

    def blocking(self) -> pd.DataFrame:
        """Flagged FNR and FOR rows at the cuts the model decides (T1-T2, T1-T3).

        Returns
        -------
        DataFrame
            Rows of the fairness table (empty without an audit).
        """
        if self.fairness is None:
            return pd.DataFrame(columns=["attribute", "group", "threshold", "metric", "ratio"])
        flags = self.fairness.flags()
        # The intervention helps the child, so harm is a group missed MORE often than
        # children overall (ratio above the band). A group missed less often (e.g. every child
        # with a disability is floored into T1-T3, so its FNR is 0) is shown, never blocking.
        chosen = (
            flags["metric"].isin(BLOCKING_METRICS)
            & flags["threshold"].isin(MODEL_CUTS)
            & (flags["ratio"] > 1.0)
        )
        return flags.loc[chosen].reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (cli.md's ``champion``/``challenger`` objects).

        Returns
        -------
        dict
            ``version``, the short metrics, ``intervals`` (full report), ``tier_mix`` and
            ``fairness`` (summary, blocking rows, all flags).
        """
        out: dict[str, Any] = {"version": self.version, **self.metrics()}
        out["rows"] = self.report.n_rows
        out["events"] = self.report.n_positive
        out["intervals"] = self.report.to_dict()
        if self.tiers is not None:
            shares = self.tiers.astype(str).value_counts(normalize=True)
            out["tier_mix"] = {t: round(float(shares.get(t, 0.0)), 4) for t in _TIERS}
        if self.fairness is not None:
            audit = self.fairness.to_dict()
            out["fairness"] = {
                "summary": audit["summary"],
                "blocking": _records(self.blocking()),
                "flags": _records(self.fairness.flags()),
                "insufficient": audit["insufficient"],
                "n_rows": audit["n_rows"],
            }
        return out


_TIERS = ("T1", "T2", "T3", "T4")
_FLAG_COLUMNS = (
    "attribute",
    "group",
    "threshold",
    "metric",
    "value",
    "ratio",
    "ratio_low",
    "ratio_high",
    "n",
    "events",
)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for record in frame.to_dict(orient="records"):
        row: dict[str, Any] = {}
        for key in _FLAG_COLUMNS:
            value = record.get(key)
            if isinstance(value, float | np.floating):
                row[key] = _json(float(value))
            elif isinstance(value, np.integer):
                row[key] = int(value)
            else:
                row[key] = None if value is None or value is pd.NA else value
        out.append(row)
    return out


def fairness_groups(rows: pd.DataFrame) -> dict[str, npt.NDArray[Any]]:
    """The audited attributes of each row, as training audits them.

    Parameters
    ----------
    rows : DataFrame
        Rows with ``sex``, ``age_years``, ``disability``, ``no_household_registration``,
        ``ethnicity`` and the capacity area.

    Returns
    -------
    dict of str to ndarray
        Attribute name to values in row order (ethnicity is audited and never a feature).
    """
    return {
        "sex": rows["sex"].astype("object").to_numpy(),
        "age_band": age_band(rows["age_years"].astype("float64")).astype("object").to_numpy(),
        "disability": rows["disability"].astype("object").to_numpy(),
        "no_household_registration": rows["no_household_registration"].astype("object").to_numpy(),
        "ethnicity": rows["ethnicity"].astype("object").to_numpy(),
        "township": rows[AREA_COLUMN].astype("object").to_numpy(),
    }


def evaluate_model(
    window: EvaluationWindow,
    bundle: ModelBundle,
    policy: TierPolicy,
    settings: EvaluationSettings,
    *,
    role: str,
    version: int | None,
    with_tiers: bool = True,
) -> ModelEvaluation:
    """Score a window with one model and measure everything the decision reads.

    Parameters
    ----------
    window : EvaluationWindow
        The rows.
    bundle : ModelBundle
        The model.
    policy : TierPolicy
        Capacity, rules and the fairness band.
    settings : EvaluationSettings
        Resamples, seed, tie rule and fairness minimums.
    role : str
        ``"champion"`` or ``"challenger"``.
    version : int or None
        Its registered version.
    with_tiers : bool, default=True
        Also tier the rows and audit fairness.

    Returns
    -------
    ModelEvaluation
        The model's figures on the window.

    Raises
    ------
    ValueError
        If the rows lack a feature the model needs.
    """
    rows = window.rows
    scores = bundle.predict(rows)
    p_any = scores["p_any"].to_numpy(dtype=np.float64)
    report = capacity_report(
        window.y,
        p_any,
        clusters=window.households,
        keys=window.keys,
        slots=window.slots,
        band=window.band,
        n_resamples=settings.n_resamples,
        seed=settings.seed,
        tie_break=settings.tie_break,
    )
    if not with_tiers:
        return ModelEvaluation(role, version, report, p_any)
    scored = rows.assign(
        p_any=p_any,
        p_low=scores["p_low"].to_numpy(dtype=np.float64),
        p_high=scores["p_high"].to_numpy(dtype=np.float64),
    )
    tiers = window_tiers(scored, window.counts, policy)["tier"].astype(str)
    frame = pd.DataFrame(
        {
            "y": window.y,
            "p": p_any,
            "tier": tiers.to_numpy(),
            "household": window.households,
        }
    )
    fairness = fairness_audit(
        frame,
        y_true="y",
        score="p",
        tier="tier",
        groups=fairness_groups(rows),
        thresholds=list(AUDIT_CUTS),
        band=policy.fairness.disparity_band,
        clusters="household",
        min_group_size=settings.min_group_size,
        min_events=settings.min_events,
        n_resamples=settings.n_resamples,
        seed=settings.seed,
    )
    return ModelEvaluation(role, version, report, p_any, tiers.reset_index(drop=True), fairness)


def paired_differences(
    window: EvaluationWindow,
    challenger: npt.NDArray[np.float64],
    champion: npt.NDArray[np.float64],
    settings: EvaluationSettings,
) -> dict[str, MetricEstimate]:
    """Challenger minus champion on the same household resamples (a paired bootstrap).

    Parameters
    ----------
    window : EvaluationWindow
        The rows.
    challenger, champion : ndarray
        Calibrated ``p_any`` of each model, row order of the window.
    settings : EvaluationSettings
        Resamples, seed, tie rule and the interval level.

    Returns
    -------
    dict of str to MetricEstimate
        ``roc_auc``, ``precision_at_capacity`` and ``recall_at_capacity`` (T2 band, as
        reported), ``brier`` and ``ece``; positive means the challenger's figure is higher.
    """
    y = window.y
    band, keys, slots = window.band, window.keys, window.slots
    tie = settings.tie_break
    resamples = cluster_bootstrap_indices(
        window.households, n_resamples=settings.n_resamples, seed=settings.seed
    )

    def at_capacity(
        fn: Callable[..., float], p: npt.NDArray[np.float64], i: npt.NDArray[np.intp]
    ) -> float:
        inside = i[band[i]]
        if len(inside) == 0:
            return float("nan")
        return fn(y[inside], p[inside], keys[inside], slots, tie_break=tie)

    def diff(metric: Callable[[npt.NDArray[np.float64], npt.NDArray[np.intp]], float]) -> Any:
        return lambda i: metric(challenger, i) - metric(champion, i)

    metrics: dict[str, Callable[[npt.NDArray[np.intp]], float]] = {
        "roc_auc": diff(lambda p, i: roc_auc(y[i], p[i])),
        "precision_at_capacity": diff(lambda p, i: at_capacity(precision_at_capacity, p, i)),
        "recall_at_capacity": diff(lambda p, i: at_capacity(recall_at_capacity, p, i)),
        "brier": diff(lambda p, i: brier(y[i], p[i])),
        "ece": diff(lambda p, i: expected_calibration_error(y[i], p[i])),
    }
    level = settings.rule.level
    return {
        name: bootstrap_metric(fn, resamples, len(y), level=level) for name, fn in metrics.items()
    }


def tier_stability(
    rows: pd.DataFrame, champion: pd.Series, challenger: pd.Series
) -> dict[str, Any]:
    """How many children would change tier if the challenger replaced the champion.

    Counted on the window's last as-of date (the list a promotion would change) and over
    every row of the window.

    Parameters
    ----------
    rows : DataFrame
        The window's rows (``as_of``), row order of the tier series.
    champion, challenger : Series
        Tiers of each row.

    Returns
    -------
    dict
        ``as_of``, ``children``, ``changed``, ``up`` (to a more urgent tier), ``down``,
        ``into_visits`` and ``out_of_visits`` (entering or leaving T1-T2), ``matrix``
        (champion tier to challenger tier to count), then ``all_dates`` with the shares.
    """
    a = champion.astype(str).to_numpy()
    b = challenger.astype(str).to_numpy()
    as_of = pd.to_datetime(rows["as_of"]).to_numpy()
    last = as_of.max()

    def counts(mask: npt.NDArray[np.bool_]) -> dict[str, Any]:
        la = np.array([Tier(t).level for t in a[mask]], dtype=np.int64)
        lb = np.array([Tier(t).level for t in b[mask]], dtype=np.int64)
        va, vb = np.isin(a[mask], VISIT_TIERS), np.isin(b[mask], VISIT_TIERS)
        return {
            "children": int(mask.sum()),
            "changed": int((la != lb).sum()),
            "up": int((lb < la).sum()),
            "down": int((lb > la).sum()),
            "into_visits": int((vb & ~va).sum()),
            "out_of_visits": int((va & ~vb).sum()),
        }

    on_last = as_of == last
    matrix = pd.crosstab(
        pd.Series(a[on_last], name="champion"), pd.Series(b[on_last], name="challenger")
    )
    out: dict[str, Any] = {"as_of": pd.Timestamp(last).date().isoformat(), **counts(on_last)}
    out["matrix"] = {
        str(t): {str(u): int(matrix.loc[t, u]) for u in matrix.columns} for t in matrix.index
    }
    overall = counts(np.ones(len(a), dtype=bool))
    n = max(overall["children"], 1)
    out["all_dates"] = {
        **overall,
        "changed_share": round(overall["changed"] / n, 4),
        "up_share": round(overall["up"] / n, 4),
        "down_share": round(overall["down"] / n, 4),
    }
    return out


# --------------------------------------------------------------------------------------------
# The decision
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One step of the decision.

    Parameters
    ----------
    name : str
        ``gate``, ``minimum_precision``, ``better``, ``no_regression`` or ``fairness``.
    passed : bool
        Whether it allows promotion.
    reason : str
        One sentence with the figures.
    blocking : bool, default=True
        Whether a failure stops a "promote" recommendation.
    """

    name: str
    passed: bool
    reason: str
    blocking: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "name": self.name,
            "passed": self.passed,
            "blocking": self.blocking,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class GateStatus:
    """What the challenger's training run recorded about the champion gate.

    Parameters
    ----------
    passed : bool
        The gate passed (``shouhu models promote`` would not refuse on it).
    reason : str
        The recorded explanation.
    recorded_precision : float or None
        The run's ``test.any.precision_at_capacity`` (what ``promote`` compares with the
        policy's minimum).
    folds : list of dict
        Per-fold figures when known.
    """

    passed: bool
    reason: str
    recorded_precision: float | None
    folds: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "passed": self.passed,
            "reason": self.reason,
            "recorded_precision_at_capacity": _json(self.recorded_precision),
            "folds": self.folds,
        }


def _interval(estimate: MetricEstimate) -> str:
    return (
        f"{estimate.value:+.3f} ({estimate.level:.0%} interval "
        f"{estimate.low:+.3f} to {estimate.high:+.3f})"
    )


def decide(
    *,
    quarter: Quarter,
    champion: ModelEvaluation | None,
    challenger: ModelEvaluation,
    differences: Mapping[str, MetricEstimate] | None,
    gate: GateStatus,
    policy: TierPolicy,
    rule: DecisionRule,
    note: SignedNote | None = None,
) -> tuple[Recommendation, list[Check]]:
    """Turn the figures into "promote" or "keep", with one reason per check.

    Parameters
    ----------
    quarter : Quarter
        The quarter evaluated.
    champion : ModelEvaluation or None
        The champion on the quarter (``None``: no champion, or one that cannot score the
        current features).
    challenger : ModelEvaluation
        The challenger on the quarter, with its fairness audit.
    differences : mapping or None
        :func:`paired_differences` (``None`` without a champion).
    gate : GateStatus
        The challenger's recorded champion gate.
    policy : TierPolicy
        The pre-registered minimum and the fairness band.
    rule : DecisionRule
        Interval level and ECE tolerance.
    note : SignedNote, optional
        A supervisor's note accepting fairness flags.

    Returns
    -------
    recommendation : {"promote", "keep"}
        ``promote`` only when every blocking check passed.
    checks : list of Check
        Every check in order, blocking ones first.
    """
    checks: list[Check] = [Check("gate", gate.passed, gate.reason)]
    minimum = policy.promotion.min_precision_at_capacity
    quarter_precision = challenger.metrics()["precision_at_capacity"]
    recorded = gate.recorded_precision
    enough = (
        recorded is not None
        and recorded >= minimum
        and quarter_precision is not None
        and quarter_precision >= minimum
    )
    checks.append(
        Check(
            "minimum_precision",
            enough,
            f"challenger precision at capacity {_fmt(recorded)} on its test window and "
            f"{_fmt(quarter_precision)} on {quarter}, against the minimum {minimum:.3f} "
            f"pre-registered in policy {policy.version}",
        )
    )
    if champion is None or differences is None:
        checks.append(
            Check("better", True, "there is no champion that can score the quarter to beat")
        )
        checks.append(Check("no_regression", True, "there is no champion to regress from"))
    else:
        gain = differences["precision_at_capacity"]
        better = math.isfinite(gain.low) and gain.low > 0
        verdict = "clearly better" if better else "not clearly better"
        checks.append(
            Check(
                "better",
                better,
                f"precision at capacity on {quarter}: challenger "
                f"{_fmt(quarter_precision)}, champion "
                f"{_fmt(champion.metrics()['precision_at_capacity'])}; difference "
                f"{_interval(gain)}: {verdict}",
            )
        )
        auc = differences["roc_auc"]
        auc_ok = not (math.isfinite(auc.high) and auc.high < 0)
        ece_c = challenger.metrics()["ece"]
        ece_k = champion.metrics()["ece"]
        ece_ok = ece_c is None or ece_k is None or ece_c <= ece_k + rule.ece_tolerance
        checks.append(
            Check(
                "no_regression",
                auc_ok and ece_ok,
                f"ROC-AUC difference {_interval(auc)}"
                f"{'' if auc_ok else ' (clearly worse)'}; ECE challenger {_fmt(ece_c, 4)} "
                f"against champion {_fmt(ece_k, 4)} (tolerance +{rule.ece_tolerance:.3f})"
                f"{'' if ece_ok else ': calibration is worse'}",
            )
        )
    checks.append(_fairness_check(quarter, challenger, champion, policy, note))
    blocked = [c for c in checks if c.blocking and not c.passed]
    recommendation: Recommendation = "keep" if blocked else "promote"
    return recommendation, checks


def _flag_key(record: Mapping[Any, Any]) -> tuple[str, str, str, str]:
    return (
        str(record["attribute"]),
        str(record["group"]),
        str(record["threshold"]),
        str(record["metric"]),
    )


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _fairness_check(
    quarter: Quarter,
    challenger: ModelEvaluation,
    champion: ModelEvaluation | None,
    policy: TierPolicy,
    note: SignedNote | None,
) -> Check:
    band = policy.fairness.disparity_band
    flags = challenger.blocking()
    if flags.empty:
        return Check(
            "fairness",
            True,
            f"no false-negative or false-omission rate ratio above [{band.low:g}, "
            f"{band.high:g}] at the cuts T1-T2 and T1-T3 on {quarter}",
        )
    champion_flags: set[tuple[str, str, str, str]] = set()
    if champion is not None:
        for record in champion.blocking().to_dict(orient="records"):
            champion_flags.add(_flag_key(record))
    records = flags.to_dict(orient="records")
    described = []
    for record in records:
        shared = _flag_key(record) in champion_flags
        ratio = record.get("ratio")
        described.append(
            f"{record['metric']} {record['attribute']}={record['group']} at "
            f"{record['threshold']} ratio "
            f"{_fmt(float(ratio) if ratio is not None else None, 2)}"
            f"{' (the champion too)' if shared else ''}"
        )
    listing = "; ".join(described[:8]) + (
        f"; and {len(described) - 8} more" if len(described) > 8 else ""
    )
    valid_note = (
        note is not None
        and note.note.quarter == str(quarter)
        and note.note.challenger_version == challenger.version
    )
    uncovered = [
        r
        for r in records
        if not (
            valid_note
            and note is not None
            and note.note.covers(str(r["attribute"]), str(r["group"]))
        )
    ]
    if not uncovered and note is not None:
        return Check(
            "fairness",
            True,
            f"{len(flags)} blocking disparities outside [{band.low:g}, {band.high:g}] "
            f"({listing}) are accepted by the note signed by {note.note.supervisor} on "
            f"{note.note.signed_on.isoformat()} (sha256 {note.sha256[:12]})",
        )
    why = ""
    if note is not None and not valid_note:
        why = (
            f"; the note given is for {note.note.quarter} version "
            f"{note.note.challenger_version}, not {quarter} version {challenger.version}"
        )
    elif note is not None:
        why = f"; the note does not accept {len(uncovered)} of them"
    return Check(
        "fairness",
        False,
        f"{len(flags)} false-negative or false-omission rate ratios outside "
        f"[{band.low:g}, {band.high:g}] ({listing}): promotion needs a supervisor's signed "
        f"note{why}",
    )


# --------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReevaluationResult:
    """Everything one re-evaluation found, JSON-ready through :meth:`to_dict`.

    Parameters
    ----------
    quarter : Quarter
        The quarter evaluated.
    known_by : date
        Outcomes count records entered up to this date.
    challenger_known_by : date
        The challenger learnt from records entered up to this date (the day before the
        quarter).
    champion : ModelEvaluation or None
        The champion on the quarter.
    challenger : ModelEvaluation
        The challenger on the quarter.
    differences : dict or None
        Paired differences, challenger minus champion.
    stability : dict or None
        :func:`tier_stability`.
    baselines : dict
        The simple baselines' figures on the quarter.
    backtest : list of dict
        Earlier quarters on held-out households.
    gate : GateStatus
        The challenger's recorded champion gate.
    recommendation : {"promote", "keep"}
        The recommendation.
    checks : list of Check
        Its reasons.
    notes : list of str
        Caveats (the champion's data window, features it cannot score, short history).
    note : SignedNote or None
        The supervisor's note applied.
    model_name : str
        The registered model.
    policy_version : str
        The tier policy in force.
    seconds : float
        Wall time.
    created_at : datetime
        When the re-evaluation finished (UTC).
    champion_version : int or None
        The registry's champion when the re-evaluation ran, whether or not it could be
        evaluated (an approval is refused once another version holds the alias).
    """

    quarter: Quarter
    known_by: date
    challenger_known_by: date
    champion: ModelEvaluation | None
    challenger: ModelEvaluation
    differences: dict[str, MetricEstimate] | None
    stability: dict[str, Any] | None
    baselines: dict[str, Any]
    backtest: list[dict[str, Any]]
    gate: GateStatus
    recommendation: Recommendation
    checks: list[Check]
    notes: list[str]
    note: SignedNote | None
    model_name: str
    policy_version: str
    seconds: float = 0.0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    champion_version: int | None = None

    @property
    def reasons(self) -> list[str]:
        """One line per check, failed blocking checks first."""
        ordered = sorted(self.checks, key=lambda c: (c.passed, not c.blocking))
        return [f"{'ok' if c.passed else 'BLOCKS'} {c.name}: {c.reason}" for c in ordered]

    def promote_command(self) -> str:
        """The command that makes the challenger champion (a person runs it)."""
        return (
            f"shouhu models promote {self.challenger.version} --approver NAME "
            f'--reason "re-evaluation {self.quarter}: ..."'
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``shouhu monitoring reevaluate --json`` object (cli.md), with extra fields.

        Returns
        -------
        dict
            ``champion``, ``challenger``, ``recommendation``, ``reasons`` (``report`` is
            added by the writer), then ``champion_version`` (the registry's champion at the
            time), ``quarter``, dates, ``checks``, ``comparison``,
            ``tier_stability``, ``baselines``, ``backtest``, ``gate``, ``note``, ``notes``
            and ``promote_command``.
        """
        return {
            "champion": None if self.champion is None else self.champion.to_dict(),
            "champion_version": self.champion_version,
            "challenger": self.challenger.to_dict(),
            "recommendation": self.recommendation,
            "reasons": self.reasons,
            "quarter": str(self.quarter),
            "quarter_start": self.quarter.start.isoformat(),
            "quarter_end": self.quarter.end.isoformat(),
            "known_by": self.known_by.isoformat(),
            "challenger_known_by": self.challenger_known_by.isoformat(),
            "model_name": self.model_name,
            "policy_version": self.policy_version,
            "checks": [c.to_dict() for c in self.checks],
            "comparison": None
            if self.differences is None
            else {k: v.to_dict() for k, v in self.differences.items()},
            "tier_stability": self.stability,
            "baselines": self.baselines,
            "backtest": self.backtest,
            "gate": self.gate.to_dict(),
            "note": None if self.note is None else self.note.to_dict(),
            "notes": self.notes,
            "promote_command": self.promote_command(),
            "created_at": self.created_at.isoformat(),
            "seconds": round(self.seconds, 1),
        }


def compare(
    window: EvaluationWindow,
    policy: TierPolicy,
    settings: EvaluationSettings,
    *,
    quarter: Quarter,
    challenger: tuple[int | None, ModelBundle],
    champion: tuple[int | None, ModelBundle] | None,
    gate: GateStatus,
    note: SignedNote | None = None,
) -> tuple[
    ModelEvaluation,
    ModelEvaluation | None,
    dict[str, MetricEstimate] | None,
    dict[str, Any] | None,
    Recommendation,
    list[Check],
    list[str],
]:
    """Evaluate both models on the quarter's window and decide.

    Parameters
    ----------
    window : EvaluationWindow
        Every child of the quarter's as-of dates, with matured outcomes.
    policy : TierPolicy
        The tier policy.
    settings : EvaluationSettings
        Resamples, seed, tie rule, fairness minimums, decision rule.
    quarter : Quarter
        The quarter.
    challenger : (version, bundle)
        The challenger.
    champion : (version, bundle) or None
        The champion, if any.
    gate : GateStatus
        The challenger's recorded gate.
    note : SignedNote, optional
        A supervisor's note.

    Returns
    -------
    tuple
        Challenger and champion evaluations, paired differences, tier stability,
        recommendation, checks and caveats.
    """
    notes: list[str] = []
    ours = evaluate_model(
        window, challenger[1], policy, settings, role="challenger", version=challenger[0]
    )
    theirs: ModelEvaluation | None = None
    if champion is not None:
        try:
            theirs = evaluate_model(
                window, champion[1], policy, settings, role="champion", version=champion[0]
            )
        except ValueError as exc:
            # The feature definitions changed since the champion was trained: it cannot
            # score today's rows, so the challenger is judged on its own figures.
            notes.append(f"the champion (version {champion[0]}) cannot score {quarter}: {exc}")
    differences = stability = None
    if theirs is not None:
        differences = paired_differences(window, ours.p_any, theirs.p_any, settings)
        assert theirs.tiers is not None and ours.tiers is not None
        stability = tier_stability(window.rows, theirs.tiers, ours.tiers)
    recommendation, checks = decide(
        quarter=quarter,
        champion=theirs,
        challenger=ours,
        differences=differences,
        gate=gate,
        policy=policy,
        rule=settings.rule,
        note=note,
    )
    return ours, theirs, differences, stability, recommendation, checks, notes


# --------------------------------------------------------------------------------------------
# Baselines and backtest
# --------------------------------------------------------------------------------------------


def baseline_figures(
    history: pd.DataFrame,
    window: EvaluationWindow,
    settings: EvaluationSettings,
    challenger: ModelEvaluation,
) -> dict[str, Any]:
    """The gate's simple baselines, fitted on the history, on the quarter's window.

    Parameters
    ----------
    history : DataFrame
        The challenger's training rows (everything known before the quarter).
    window : EvaluationWindow
        The quarter.
    settings : EvaluationSettings
        Tie rule.
    challenger : ModelEvaluation
        The challenger on the window (for "beats").

    Returns
    -------
    dict
        Per baseline ``precision_at_capacity`` and ``auc``, and whether the challenger's
        precision at capacity is higher than each (informative: the gate is the training
        run's).
    """
    from models.baselines import VillageRateRanker, WarningSignCounter
    from models.train import WARNING_SIGNS

    y_hist = history[label_column(ANY)].to_numpy(dtype=np.int64)
    warning = WarningSignCounter(signs=WARNING_SIGNS).fit(history, y_hist)
    village = VillageRateRanker(area_column="village_code").fit(history, y_hist)
    scores = {
        "warning_signs": warning.predict_proba(window.rows)[:, 1],
        "village_rate": village.predict_proba(window.rows)[:, 1],
    }
    ours = challenger.metrics()["precision_at_capacity"]
    out: dict[str, Any] = {}
    y = window.y
    for name, p in scores.items():
        inside = window.band
        precision = precision_at_capacity(
            y[inside], p[inside], window.keys[inside], window.slots, tie_break=settings.tie_break
        )
        out[name] = {
            "precision_at_capacity": _json(precision),
            "auc": _json(roc_auc(y, p)),
            "challenger_beats": bool(
                ours is not None and math.isfinite(precision) and ours > precision
            ),
        }
    return out


def held_out_households(keys: pd.DataFrame, *, calib_share: float, test_share: float) -> set[str]:
    """Households that the split's assignment puts in the test group.

    Parameters
    ----------
    keys : DataFrame
        ``child_id`` and ``household_pid`` pairs seen in any window (the assignment links
        households through children who moved, so all pairs are given at once).
    calib_share, test_share : float
        Household shares of the calibration and test groups (training settings); the
        assignment's key is the training default.

    Returns
    -------
    set of str
        Household ids that neither train nor calibrate any fold.
    """
    pairs = keys[["child_id", "household_pid"]].drop_duplicates().reset_index(drop=True)
    group = assign_groups(pairs, calib_share=calib_share, test_share=test_share)
    return set(pairs.loc[group.to_numpy() == HELD_OUT_GROUP, "household_pid"].astype(str))


def backtest_quarter(
    rows: pd.DataFrame,
    held_out: set[str],
    policy: TierPolicy,
    settings: EvaluationSettings,
    *,
    quarter: Quarter,
    models: Mapping[str, tuple[int | None, ModelBundle]],
) -> dict[str, Any]:
    """Both models on one earlier quarter, held-out households only (point values).

    Parameters
    ----------
    rows : DataFrame
        Every child of the quarter's as-of dates, matured outcomes.
    held_out : set of str
        Households neither model trains or calibrates on.
    policy : TierPolicy
        Capacity (scaled to the held-out share) and rules.
    settings : EvaluationSettings
        Tie rule.
    quarter : Quarter
        The quarter.
    models : mapping of str to (version, bundle)
        ``champion`` and ``challenger``.

    Returns
    -------
    dict
        ``quarter``, ``rows``, ``events`` and per model ``auc``, ``precision_at_capacity``,
        ``recall_at_capacity``, ``ece`` (``None`` for a model that cannot score them).
    """
    counts = area_counts(rows)
    sample = rows.loc[rows["household_pid"].astype(str).isin(held_out)]
    out: dict[str, Any] = {"quarter": str(quarter), "rows": len(sample)}
    if sample.empty:
        out["events"] = 0
        return out
    window = EvaluationWindow.of(sample, policy, counts)
    out["events"] = int(window.y.sum())
    point = EvaluationSettings(
        n_resamples=0, seed=settings.seed, tie_break=settings.tie_break, rule=settings.rule
    )
    for role, (version, bundle) in models.items():
        try:
            figures = evaluate_model(
                window, bundle, policy, point, role=role, version=version, with_tiers=False
            ).metrics()
        except ValueError:
            out[role] = None
            continue
        out[role] = {
            k: figures[k] for k in ("auc", "precision_at_capacity", "recall_at_capacity", "ece")
        }
    return out


# --------------------------------------------------------------------------------------------
# Reading the registry
# --------------------------------------------------------------------------------------------


def gate_status(registry: ModelRegistry, version: int) -> GateStatus:
    """The champion gate and recorded precision of a registered version's training run.

    Parameters
    ----------
    registry : ModelRegistry
        The registry.
    version : int
        The version.

    Returns
    -------
    GateStatus
        Passed when the run's gate tag says so (a run without the tag was not trained by
        ``models.train`` and is let through, as ``shouhu models promote`` does).
    """
    from models.gate import GATE_REASON_TAG, GATE_TAG, PASSED
    from models.registry import PRECISION_METRIC

    info = registry.version_info(version)
    if info.run_id is None:
        return GateStatus(True, "the version has no training run to read a gate from", None)
    run = registry.client.get_run(info.run_id)
    tags = dict(run.data.tags)
    status = tags.get(GATE_TAG)
    precision = run.data.metrics.get(PRECISION_METRIC)
    recorded = None if precision is None or math.isnan(float(precision)) else float(precision)
    if status is None:
        return GateStatus(True, "the training run recorded no champion gate", recorded)
    return GateStatus(status == PASSED, tags.get(GATE_REASON_TAG, status), recorded)


def known_by_of(registry: ModelRegistry, version: int) -> date | None:
    """The date the version's training data were cut (its run's ``known_by`` parameter).

    Parameters
    ----------
    registry : ModelRegistry
        The registry.
    version : int
        The version.

    Returns
    -------
    date or None
        ``None`` when the run did not record it.
    """
    info = registry.version_info(version)
    if info.run_id is None:
        return None
    value = registry.client.get_run(info.run_id).data.params.get("known_by")
    try:
        return None if value in (None, "null", "") else date.fromisoformat(str(value))
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# Training the challenger
# --------------------------------------------------------------------------------------------


def folds_that_fit(
    frame: pd.DataFrame,
    *,
    n_folds: int,
    test_days: int,
    calib_days: int,
    known_by: date,
    horizon_days: int,
    calib_share: float,
    test_share: float,
) -> int:
    """The most rolling time folds (at most ``n_folds``) the history can hold; 0 if none.

    Parameters
    ----------
    frame : DataFrame
        Training rows.
    n_folds, test_days, calib_days, horizon_days : int
        The recipe's windows.
    known_by : date
        The data cut.
    calib_share, test_share : float
        Household shares.

    Returns
    -------
    int
        Number of folds that can be formed.
    """
    for n in range(n_folds, 0, -1):
        try:
            rolling_time_folds(
                frame,
                n_folds=n,
                test_days=test_days,
                calib_days=calib_days,
                data_end=known_by,
                horizon_days=horizon_days,
                calib_share=calib_share,
                test_share=test_share,
            )
        except ValueError:
            continue
        return n
    return 0


def train_challenger(
    settings: Settings,
    history: pd.DataFrame,
    *,
    known_by: date,
    registry: ModelRegistry | None,
    policy: TierPolicy,
) -> tuple[TrainResult, int]:
    """Train with the recipe of ``shouhu models train`` on the rows known by ``known_by``.

    ``models.train.train_from_settings`` always cuts at the newest record; this is the same
    configuration (keep the two in step) with an earlier cut and, when the history is short,
    fewer folds.

    Parameters
    ----------
    settings : Settings
        Training settings (windows, seed, booster, bootstrap).
    history : DataFrame
        Training rows built with labels known by ``known_by``.
    known_by : date
        The cut.
    registry : ModelRegistry or None
        Registers the challenger when given.
    policy : TierPolicy
        The tier policy.

    Returns
    -------
    result : TrainResult
        The trained (and registered) challenger.
    folds : int
        The folds used.

    Raises
    ------
    InsufficientDataError
        If not even one fold fits in the history.
    """
    from models.train import train, train_config_from_settings

    ts = settings.train
    folds = folds_that_fit(
        history,
        n_folds=ts.n_folds,
        test_days=ts.test_days,
        calib_days=ts.calib_days,
        known_by=known_by,
        horizon_days=ts.horizon_days,
        calib_share=ts.calib_share,
        test_share=ts.test_share,
    )
    if folds == 0:
        raise InsufficientDataError(
            f"the history known by {known_by.isoformat()} is too short to train a challenger "
            f"(one fold needs a training, a calibration and a test window of matured outcomes)"
        )
    cfg = train_config_from_settings(
        settings,
        policy,
        registry,
        known_by=known_by,
        n_folds=folds,
        data_description=(
            "Quarterly re-evaluation challenger: children registered on each month end up "
            f"to {known_by.isoformat()} minus the label horizon, outcomes recorded by "
            f"{known_by.isoformat()}."
        ),
    )
    return train(cfg, history), folds


# --------------------------------------------------------------------------------------------
# The whole re-evaluation
# --------------------------------------------------------------------------------------------


def _stage(name: str, started: float, **counts: Any) -> None:
    """Log how far a long re-evaluation has come (counts and seconds, no child data)."""
    logger.info(name, extra={"seconds": round(time.perf_counter() - started, 1), **counts})


def _matured_dates(quarter: Quarter, known_by: date, horizon_days: int) -> list[date]:
    dates = quarter.month_ends()
    last = dates[-1] + timedelta(days=horizon_days)
    if last > known_by:
        raise InsufficientDataError(
            f"the outcomes of {quarter} have not matured: its last as-of date "
            f"{dates[-1].isoformat()} needs ledgers up to {last.isoformat()}, and they reach "
            f"{known_by.isoformat()}"
        )
    return dates


def _quarter_rows(
    store: FeatureStore, quarter: Quarter, known_by: date, horizon_days: int
) -> pd.DataFrame:
    from models.dataset import build_training_data

    dates = _matured_dates(quarter, known_by, horizon_days)
    data = build_training_data(store, dates, known_by=known_by, horizon_days=horizon_days)
    if data.frame.empty or data.frame[label_column(ANY)].nunique() < 2:
        raise InsufficientDataError(
            f"{quarter} has no children with both outcomes recorded; nothing to evaluate"
        )
    return data.frame


def reevaluate(
    settings: Settings,
    quarter: Quarter,
    *,
    note: SignedNote | None = None,
    challenger_version: int | None = None,
    backtest_quarters: int = 2,
    evaluation: EvaluationSettings | None = None,
) -> ReevaluationResult:
    """Re-evaluate the champion against a challenger on ``quarter`` (the CLI's library call).

    Parameters
    ----------
    settings : Settings
        Data home, store, registry, policy and training settings.
    quarter : Quarter
        The quarter to evaluate on.
    note : SignedNote, optional
        A supervisor's note accepting fairness flags.
    challenger_version : int, optional
        Re-evaluate this registered version instead of training a new challenger (it must
        have been trained on data known before the quarter).
    backtest_quarters : int, default=2
        Earlier quarters to backtest on held-out households.
    evaluation : EvaluationSettings, optional
        Resamples and decision rule; by default the training settings' resamples and seed.

    Returns
    -------
    ReevaluationResult
        The figures, the recommendation and its reasons.

    Raises
    ------
    InsufficientDataError
        If the quarter's outcomes have not matured, or the history before it is too short.
    ConfigError
        If the given challenger version learnt from data inside the quarter, or the note is
        for another quarter.
    """
    from features.rawstore import connect
    from features.store import FeatureStore
    from models.cli import registry_from_settings
    from models.dataset import (
        build_training_data,
        earliest_record,
        newest_record,
        training_dates,
    )
    from models.policy import load_policy

    started = time.perf_counter()
    ts = settings.train
    evaluation = evaluation or EvaluationSettings(n_resamples=ts.n_resamples, seed=ts.seed)
    policy = load_policy(settings.policy.file)
    registry = registry_from_settings(settings)
    cutoff = quarter.start - timedelta(days=1)
    if note is not None and note.note.quarter != str(quarter):
        raise ConfigError(f"the note is about {note.note.quarter}, not {quarter}")
    champion_info = registry.champion_info()
    if challenger_version is not None:
        if champion_info is not None and champion_info.version == challenger_version:
            raise ConfigError(
                f"version {challenger_version} is already the champion; nothing to re-evaluate"
            )
        trained_to = known_by_of(registry, challenger_version)
        if trained_to is None or trained_to > cutoff:
            raise ConfigError(
                f"version {challenger_version} learnt from records up to "
                f"{'an unknown date' if trained_to is None else trained_to.isoformat()}; a "
                f"challenger for {quarter} may use only records up to {cutoff.isoformat()}"
            )
    con = connect(
        settings.store_path,
        read_only=True,
        threads=settings.store.threads,
        memory_limit=settings.store.memory_limit,
    )
    try:
        store = FeatureStore(con)
        known_by = newest_record(con)
        rows = _quarter_rows(store, quarter, known_by, ts.horizon_days)
        dates = training_dates(
            con,
            known_by=cutoff,
            cadence_months=ts.cadence_months,
            warmup_months=ts.warmup_months,
            horizon_days=ts.horizon_days,
        )
        history = build_training_data(
            store, dates, known_by=cutoff, horizon_days=ts.horizon_days
        ).frame
        # Earlier quarters back to the month the ledgers begin (a quarter before it has no
        # children registered and stops the walk).
        first = earliest_record(con)
        earlier: list[tuple[Quarter, pd.DataFrame]] = []
        previous = quarter.previous()
        while len(earlier) < backtest_quarters and previous.end >= first:
            try:
                frame = _quarter_rows(store, previous, known_by, ts.horizon_days)
            except InsufficientDataError:
                break
            earlier.append((previous, frame))
            previous = previous.previous()
    finally:
        con.close()
    _stage("rows built", started, rows=len(rows), history=len(history), earlier=len(earlier))

    notes: list[str] = []
    if challenger_version is None:
        result, folds = train_challenger(
            settings, history, known_by=cutoff, registry=registry, policy=policy
        )
        assert result.version is not None
        version = result.version.version
        bundle = result.bundle
        gate = GateStatus(
            result.gate.passed,
            result.gate.reason(),
            _json(result.test[ANY].values().get("precision_at_capacity")),
            [f.to_dict() for f in result.gate.folds],
        )
        if folds < ts.n_folds:
            notes.append(
                f"the history before {quarter} holds {folds} of the {ts.n_folds} rolling time "
                "folds of the training recipe, so the challenger's champion gate cannot pass"
            )
    else:
        version = challenger_version
        bundle = registry.load_bundle(version)
        gate = gate_status(registry, version)
    champion: tuple[int | None, ModelBundle] | None = None
    if champion_info is not None:
        champion = (champion_info.version, registry.load_bundle(champion_info.version))
        champion_cut = known_by_of(registry, champion_info.version)
        if champion_cut is not None and champion_cut >= quarter.start:
            notes.append(
                f"the champion (version {champion_info.version}) learnt from records up to "
                f"{champion_cut.isoformat()}, after {quarter} began: some of its training, "
                "calibration or model-selection rows may come from the quarter, which can only "
                "flatter it"
            )
    else:
        notes.append("there is no champion yet: the challenger is judged on its own figures")
    if note is None:
        note = stored_note(settings, quarter, version)
    _stage("challenger ready", started, version=version)

    window = EvaluationWindow.of(rows, policy)
    ours, theirs, differences, stability, recommendation, checks, caveats = compare(
        window,
        policy,
        evaluation,
        quarter=quarter,
        challenger=(version, bundle),
        champion=champion,
        gate=gate,
        note=note,
    )
    notes.extend(caveats)
    _stage("quarter evaluated", started)
    baselines = baseline_figures(history, window, evaluation, ours)
    backtest: list[dict[str, Any]] = []
    if earlier:
        keys = pd.concat(
            [history[["child_id", "household_pid"]], rows[["child_id", "household_pid"]]]
            + [frame[["child_id", "household_pid"]] for _, frame in earlier]
        )
        held_out = held_out_households(keys, calib_share=ts.calib_share, test_share=ts.test_share)
        models: dict[str, tuple[int | None, ModelBundle]] = {"challenger": (version, bundle)}
        if champion is not None:
            models["champion"] = champion
        for q, frame in earlier:
            backtest.append(
                backtest_quarter(frame, held_out, policy, evaluation, quarter=q, models=models)
            )
    else:
        notes.append(f"no earlier quarter with matured outcomes to backtest before {quarter}")
    outcome = ReevaluationResult(
        quarter=quarter,
        known_by=known_by,
        challenger_known_by=cutoff,
        champion=theirs,
        challenger=ours,
        differences=differences,
        stability=stability,
        baselines=baselines,
        backtest=backtest,
        gate=gate,
        recommendation=recommendation,
        checks=checks,
        notes=notes,
        note=note,
        model_name=registry.model_name,
        policy_version=policy.version,
        seconds=time.perf_counter() - started,
        champion_version=None if champion_info is None else champion_info.version,
    )
    logger.info(
        "re-evaluated",
        extra={
            "quarter": str(quarter),
            "challenger": version,
            "champion": None if theirs is None else theirs.version,
            "recommendation": recommendation,
            "seconds": round(outcome.seconds, 1),
        },
    )
    return outcome


# --------------------------------------------------------------------------------------------
# Reports, notes and approval
# --------------------------------------------------------------------------------------------


def report_folder(settings: Settings, quarter: Quarter) -> Path:
    """``$SHOUHU_HOME/monitoring/reevaluation/<quarter>`` (where the approval reads it)."""
    return reevaluation_folder(settings.monitoring_dir, str(quarter))


def stored_note(settings: Settings, quarter: Quarter, version: int) -> SignedNote | None:
    """The note kept beside an earlier report for this quarter and version, if any.

    Parameters
    ----------
    settings : Settings
        The data home.
    quarter : Quarter
        The quarter.
    version : int
        The challenger version.

    Returns
    -------
    SignedNote or None
        The stored note.
    """
    path = note_path(settings.monitoring_dir, str(quarter), version)
    return load_note(path) if path.is_file() else None


def write_reevaluation_report(result: ReevaluationResult, folder: Path) -> dict[str, Path]:
    """Write ``reevaluation.json``, ``.md`` and ``.html`` (and keep the note) in ``folder``.

    Parameters
    ----------
    result : ReevaluationResult
        The re-evaluation.
    folder : Path
        The quarter's report folder.

    Returns
    -------
    dict of str to Path
        ``json``, ``markdown``, ``html`` and, with a note, ``note``.
    """
    from monitoring.rendering import render

    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": folder / REEVALUATION_JSON,
        "markdown": folder / "reevaluation.md",
        "html": folder / "reevaluation.html",
    }
    payload = result.to_dict()
    payload["report"] = str(paths["html"])
    if result.note is not None:
        kept = folder / NOTES_DIR / f"v{result.challenger.version}.yaml"
        kept.parent.mkdir(parents=True, exist_ok=True)
        if not kept.is_file() or kept.read_text(encoding="utf-8") != result.note.text:
            kept.write_text(result.note.text, encoding="utf-8")
        paths["note"] = kept
    # The JSON first: the figures took long to compute and must survive a template error.
    paths["json"].write_text(json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8")
    context = {"r": payload}
    paths["markdown"].write_text(render("reevaluation.md.j2", context), encoding="utf-8")
    paths["html"].write_text(render("reevaluation.html.j2", context), encoding="utf-8")
    return paths


def reevaluate_from_settings(
    settings: Settings,
    quarter: Quarter,
    *,
    note_file: Path | None = None,
    challenger_version: int | None = None,
    backtest_quarters: int = 2,
    n_resamples: int | None = None,
) -> dict[str, Any]:
    """Run a re-evaluation and write its report, as ``shouhu monitoring reevaluate`` does.

    Parameters
    ----------
    settings : Settings
        The process settings.
    quarter : Quarter
        The quarter.
    note_file : Path, optional
        A supervisor's note (YAML).
    challenger_version : int, optional
        Re-evaluate a registered version (default: the note's version, else train one).
    backtest_quarters : int, default=2
        Earlier quarters to backtest.
    n_resamples : int, optional
        Bootstrap resamples (default: the training settings').

    Returns
    -------
    dict
        cli.md's object: ``champion``, ``challenger``, ``recommendation``, ``reasons``,
        ``report`` and the extra fields of :meth:`ReevaluationResult.to_dict`.
    """
    note = None if note_file is None else load_note(note_file)
    if note is not None and challenger_version is None:
        challenger_version = note.note.challenger_version
    ts = settings.train
    evaluation = EvaluationSettings(
        n_resamples=ts.n_resamples if n_resamples is None else n_resamples, seed=ts.seed
    )
    result = reevaluate(
        settings,
        quarter,
        note=note,
        challenger_version=challenger_version,
        backtest_quarters=backtest_quarters,
        evaluation=evaluation,
    )
    paths = write_reevaluation_report(result, report_folder(settings, quarter))
    payload = result.to_dict()
    payload["report"] = str(paths["html"])
    payload["files"] = {k: str(v) for k, v in paths.items()}
    return payload


def approve_from_settings(
    settings: Settings,
    version: int,
    approver: str,
    reason: str,
    *,
    quarter: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Approve a re-evaluation's challenger, as ``shouhu monitoring approve`` does.

    A thin call of ``models.promotion.approve_promotion`` (the function the web pages call
    too) with the registry and policy of ``settings``.

    Parameters
    ----------
    settings : Settings
        Data home, registry and policy.
    version : int
        The challenger to make champion.
    approver : str
        The supervisor.
    reason : str
        Why; required.
    quarter : str, optional
        The re-evaluation approved (default: the newest whose challenger is ``version``).
    now : datetime, optional
        Time of the approval (UTC now by default).

    Returns
    -------
    dict
        The line appended to ``$SHOUHU_HOME/monitoring/approvals.jsonl``.

    Raises
    ------
    PromotionRefusedError
        If the re-evaluation does not recommend promote, its note changed, the champion
        changed since, or the registry refuses (gate, minimum precision, blank reason).
    NotFoundError
        If no re-evaluation has this challenger, or the version does not exist.
    """
    from models.cli import registry_from_settings
    from models.policy import load_policy

    if quarter is None:
        basis = latest_reevaluation(settings.monitoring_dir, version)
        if basis is None:
            raise NotFoundError(f"no stored re-evaluation has version {version} as challenger")
        quarter = str(basis["quarter"])
    return approve_promotion(
        registry_from_settings(settings),
        load_policy(settings.policy.file),
        settings.monitoring_dir,
        quarter=quarter,
        version=version,
        approver=approver,
        reason=reason,
        now=now,
    )


__all__ = [
    "AUDIT_CUTS",
    "KEEP",
    "MODEL_CUTS",
    "PROMOTE",
    "Check",
    "DecisionRule",
    "EvaluationSettings",
    "EvaluationWindow",
    "GateStatus",
    "ModelEvaluation",
    "ReevaluationResult",
    "SignedNote",
    "SupervisorNote",
    "approve_from_settings",
    "backtest_quarter",
    "baseline_figures",
    "compare",
    "decide",
    "evaluate_model",
    "fairness_groups",
    "folds_that_fit",
    "gate_status",
    "held_out_households",
    "known_by_of",
    "load_note",
    "paired_differences",
    "reevaluate",
    "reevaluate_from_settings",
    "report_folder",
    "stored_note",
    "tier_stability",
    "train_challenger",
    "write_reevaluation_report",
]
