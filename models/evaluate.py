"""Evaluation of a registered version on its test window, and against the oracle.

``shouhu models evaluate`` recomputes, from the test rows a training run logged
(``evaluation/test_predictions.parquet``: pseudonymous keys, matured labels, every score and the
capacity of each row's township and date), the test-window metrics of a version, with the same
household bootstrap and seed as training, so the figures are reproducible exactly. Precision and
recall at capacity rank the T2 band population, as training does (``models.capacity``).

With ``--truth DIR/truth`` it also scores the *same rows* with the oracle: the synthetic
population's true 90-day risk (``truth/risk.parquet``), whose identity numbers are pseudonymised
with the deployment's key to join. The oracle is the best any model could do with perfect
knowledge of each child's state, so ``model / oracle`` says how much of the achievable the model
reaches. This is the only code that may read the truth: training and features never do.

The oracle's probabilities are of *true* adverse events; the labels are the events the ledgers
*recorded*. A model trained on recorded labels can therefore beat the oracle at predicting them
(it learns, for instance, whom caseworkers visit), and a ratio above 1 is possible.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from features.pseudonym import pseudonymise_series
from models.bundle import ANY
from models.capacity import capacity_report
from models.dataset import OUTCOMES, label_column
from models.metrics import EvaluationReport, TieBreak, compare_to_oracle
from shouhu.errors import InsufficientDataError, NotFoundError

if TYPE_CHECKING:
    from models.registry import ModelRegistry

logger = logging.getLogger(__name__)

#: Where a training run keeps its test rows.
TEST_PREDICTIONS = "evaluation/test_predictions.parquet"

#: cli.md's short metric names, from the evaluation report's names.
SHORT_NAMES: dict[str, str] = {
    "roc_auc": "auc",
    "pr_auc": "pr_auc",
    "brier": "brier",
    "ece": "ece",
    "precision_at_capacity": "precision_at_capacity",
    "recall_at_capacity": "recall_at_capacity",
    "roc_auc_t2_band": "auc_t2_band",
    "precision_at_capacity_all_children": "precision_at_capacity_all_children",
}

BASELINE_SCORES: tuple[str, ...] = ("scorecard", "warning_signs", "village_rate")


@dataclass(frozen=True)
class VersionEvaluation:
    """Test-window metrics of one version, optionally beside the oracle's.

    Parameters
    ----------
    name : str
        Registered model name.
    version : int
        The version evaluated.
    model : EvaluationReport
        The calibrated ``p_any`` on the evaluated rows.
    oracle : EvaluationReport or None
        The true risk on the same rows (with ``--truth``).
    baselines : dict of str to EvaluationReport
        The scorecard and the two simple baselines on the same rows.
    domains : dict of str to dict
        Per domain outcome: the model's figures and, with truth, the oracle's and the ratios.
    rows : int
        Rows evaluated (all test rows, or those the truth covers).
    test_rows : int
        Rows the training run logged.
    """

    name: str
    version: int
    model: EvaluationReport
    oracle: EvaluationReport | None
    baselines: dict[str, EvaluationReport]
    domains: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: int = 0
    test_rows: int = 0

    def ratios(self) -> dict[str, float]:
        """Model / oracle for every metric (empty without the oracle).

        Returns
        -------
        dict of str to float
            See :func:`models.metrics.compare_to_oracle`.
        """
        if self.oracle is None:
            return {}
        return compare_to_oracle(self.model, self.oracle)

    def to_dict(self) -> dict[str, Any]:
        """The ``shouhu models evaluate --json`` object (cli.md), with extra fields.

        Returns
        -------
        dict
            ``model`` and ``oracle`` (``auc``, ``pr_auc``, ``brier``, ``ece``,
            ``precision_at_capacity``, ``recall_at_capacity``), ``auc_ratio``,
            ``precision_ratio``, then ``model_version``, ``rows``, ``intervals``, ``ratios``,
            ``baselines`` and ``domains``.
        """
        ratios = self.ratios()
        return {
            "model": _short(self.model),
            "oracle": None if self.oracle is None else _short(self.oracle),
            "auc_ratio": _json(ratios.get("roc_auc")),
            "precision_ratio": _json(ratios.get("precision_at_capacity")),
            "model_name": self.name,
            "model_version": self.version,
            "rows": self.rows,
            "test_rows": self.test_rows,
            "ratios": {k: _json(v) for k, v in ratios.items()},
            "intervals": {
                "model": self.model.to_dict(),
                "oracle": None if self.oracle is None else self.oracle.to_dict(),
            },
            "baselines": {name: _short(r) for name, r in self.baselines.items()},
            "domains": self.domains,
        }


def _json(value: float | None) -> float | None:
    if value is None or np.isnan(value):
        return None
    return round(float(value), 6)


def _short(report: EvaluationReport) -> dict[str, float | None]:
    values = report.values()
    return {short: _json(values.get(name)) for name, short in SHORT_NAMES.items()}


def load_test_predictions(registry: ModelRegistry, run_id: str, version: int) -> pd.DataFrame:
    """The test rows a training run logged.

    Parameters
    ----------
    registry : ModelRegistry
        The registry.
    run_id : str
        The version's training run.
    version : int
        The version, for messages.

    Returns
    -------
    DataFrame
        One row per test row.

    Raises
    ------
    NotFoundError
        If the run logged no test rows (a version not trained by ``models.train``).
    """
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = registry.client.download_artifacts(run_id, TEST_PREDICTIONS, tmp)
            return pd.read_parquet(path)
    except (MlflowException, OSError) as exc:
        raise NotFoundError(
            f"version {version} of {registry.model_name} has no logged test rows "
            f"({TEST_PREDICTIONS}); it was not trained by `shouhu models train`"
        ) from exc


def read_truth(truth_dir: Path, key: str) -> pd.DataFrame:
    """The oracle's probabilities keyed by pseudonymous child id and as-of date.

    Parameters
    ----------
    truth_dir : Path
        ``DIR/truth`` of ``shouhu features synth`` (or ``DIR`` itself).
    key : str
        The pseudonym key the ledgers were ingested with.

    Returns
    -------
    DataFrame
        ``child_id``, ``as_of`` and ``p_<outcome>`` (float64).

    Raises
    ------
    NotFoundError
        If there is no ``risk.parquet``.
    """
    folder = Path(truth_dir)
    path = folder / "risk.parquet"
    if not path.is_file() and (folder / "truth" / "risk.parquet").is_file():
        path = folder / "truth" / "risk.parquet"
    if not path.is_file():
        raise NotFoundError(f"no risk.parquet in {folder}; give the truth folder of a synth run")
    risk = pd.read_parquet(path)
    out = pd.DataFrame(
        {
            "child_id": pseudonymise_series(risk["id_number"], key).astype(str).to_numpy(),
            "as_of": pd.to_datetime(risk["as_of"]).astype("datetime64[us]").to_numpy(),
        }
    )
    for outcome in OUTCOMES:
        out[f"p_{outcome}"] = risk[f"p_{outcome}"].to_numpy(dtype=np.float64)
    return out


def _report(
    rows: pd.DataFrame, y: Any, p: Any, *, n_resamples: int, seed: int, tie_break: TieBreak
) -> EvaluationReport:
    slots = dict(zip(rows["area_key"], rows["capacity"].astype(int), strict=False))
    return capacity_report(
        y,
        p,
        clusters=rows["household_pid"].to_numpy(dtype=object),
        keys=rows["area_key"].to_numpy(dtype=object),
        slots=slots,
        band=rows["t2_band"].to_numpy(dtype=bool),
        n_resamples=n_resamples,
        seed=seed,
        tie_break=tie_break,
    )


@dataclass(frozen=True)
class _RunSettings:
    n_resamples: int
    seed: int
    tie_break: TieBreak


def _run_settings(registry: ModelRegistry, run_id: str) -> _RunSettings:
    """How the training run computed its figures (its logged parameters)."""
    try:
        params: Mapping[str, str] = registry.client.get_run(run_id).data.params
    except MlflowException:
        params = {}
    tie_break: TieBreak = "stable"
    if params.get("tie_break") == "worst":
        tie_break = "worst"
    elif params.get("tie_break") == "best":
        tie_break = "best"
    return _RunSettings(
        n_resamples=int(params.get("n_resamples", 200)),
        seed=int(params.get("seed", 0)),
        tie_break=tie_break,
    )


def evaluate_version(
    registry: ModelRegistry,
    version: int | str = "champion",
    *,
    truth_dir: Path | None = None,
    pseudonym_key: str | None = None,
) -> VersionEvaluation:
    """Recompute a version's test-window metrics, and the oracle's on the same rows.

    Parameters
    ----------
    registry : ModelRegistry
        The registry.
    version : int or str, default="champion"
        Version number or alias.
    truth_dir : Path, optional
        The synthetic population's ``truth`` folder; adds the oracle.
    pseudonym_key : str, optional
        Key that pseudonymised the ledgers (needed with ``truth_dir``).

    Returns
    -------
    VersionEvaluation
        Model, oracle and baselines on identical rows.

    Raises
    ------
    NotFoundError
        If the version, its test rows or the truth file do not exist.
    InsufficientDataError
        If no test row has a true risk (the truth belongs to another population or key).
    """
    info = registry.version_info(version)
    if info.run_id is None:
        raise NotFoundError(f"version {info.version} of {registry.model_name} has no run")
    rows = load_test_predictions(registry, info.run_id, info.version)
    run = _run_settings(registry, info.run_id)
    test_rows = len(rows)
    with_truth = False
    if truth_dir is not None:
        if pseudonym_key is None:
            raise ValueError("the truth joins on pseudonymous ids: give the pseudonym key")
        truth = read_truth(truth_dir, pseudonym_key)
        rows = rows.assign(as_of=pd.to_datetime(rows["as_of"]).astype("datetime64[us]"))
        joined = rows.merge(
            truth.rename(columns={f"p_{o}": f"true_p_{o}" for o in OUTCOMES}),
            on=["child_id", "as_of"],
            how="inner",
            validate="one_to_one",
        )
        if joined.empty:
            raise InsufficientDataError(
                "no test row has a true risk: the truth folder belongs to another population "
                "or the pseudonym key differs from the one the ledgers were ingested with"
            )
        logger.info("joined the truth", extra={"rows": len(joined), "test_rows": test_rows})
        rows, with_truth = joined.reset_index(drop=True), True

    def report(y: Any, column: str, n_resamples: int = run.n_resamples) -> EvaluationReport:
        return _report(
            rows,
            y,
            rows[column].to_numpy(),
            n_resamples=n_resamples,
            seed=run.seed,
            tie_break=run.tie_break,
        )

    y_any = rows[label_column(ANY)].to_numpy()
    model = report(y_any, "p_any")
    oracle = report(y_any, "true_p_any") if with_truth else None
    baselines = {
        name: report(y_any, f"score_{name}")
        for name in BASELINE_SCORES
        if f"score_{name}" in rows.columns
    }
    domains: dict[str, dict[str, Any]] = {}
    for outcome in (o for o in OUTCOMES if o != ANY):
        y = rows[label_column(outcome)].to_numpy()
        # Point values only: the domain intervals are in the training run's metrics.
        mine = report(y, f"p_{outcome}", n_resamples=0)
        entry: dict[str, Any] = {"model": _short(mine)}
        if with_truth:
            true = report(y, f"true_p_{outcome}", n_resamples=0)
            ratios = compare_to_oracle(mine, true)
            entry["oracle"] = _short(true)
            entry["auc_ratio"] = _json(ratios.get("roc_auc"))
            entry["precision_ratio"] = _json(ratios.get("precision_at_capacity"))
        domains[outcome] = entry
    return VersionEvaluation(
        name=registry.model_name,
        version=info.version,
        model=model,
        oracle=oracle,
        baselines=baselines,
        domains=domains,
        rows=len(rows),
        test_rows=test_rows,
    )


__all__ = [
    "BASELINE_SCORES",
    "SHORT_NAMES",
    "TEST_PREDICTIONS",
    "VersionEvaluation",
    "evaluate_version",
    "load_test_predictions",
    "read_truth",
]
