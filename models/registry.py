"""MLflow tracking and model registry for Shouhu's risk models.

Local by default: a SQLite backend store and an artifact folder under ``$SHOUHU_HOME/mlflow``
(:meth:`ModelRegistry.local`); a tracking server by URI otherwise. Every location is a plain
argument: this module never reads settings, and it never touches MLflow's process-wide tracking
URI. Each :class:`ModelRegistry` talks through its own ``MlflowClient(tracking_uri=...,
registry_uri=...)``.

What one training run records (:meth:`ModelRegistry.log_training_run`):

- parameters, and metrics flattened to ``<window>.<outcome>.<metric>`` with ``.low``/``.high``
  interval ends (e.g. ``test.any.precision_at_capacity``);
- the feature list and its definitions fingerprint, the tier-policy version and fingerprint, the
  training-data fingerprint (run tags, model-version tags and ``provenance.json``);
- the fairness table (``fairness/fairness.csv`` and ``.json``), plots (``plots/``) and the model
  card (``model_card/model_card.md``, ``.html`` and the ``context.json`` it was rendered from);
- the model itself: a :class:`BundleModel` pyfunc whose artifact is the pickled
  :class:`~models.bundle.ModelBundle`, registered as a new version with alias ``challenger``.

A version becomes ``champion`` only through :meth:`ModelRegistry.promote`, which needs a named
approver and a reason, refuses a version whose training run recorded a failed champion gate
(``models.gate``: it did not beat both simple baselines on precision at capacity in enough time
folds) or whose recorded precision at capacity is below the tier policy's pre-registered
minimum, and records who, why and when both as model-version tags and as a line of an
append-only JSON-lines log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import re
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import mlflow.artifacts
import mlflow.pyfunc
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput, Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.protos.databricks_pb2 import (
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)
from mlflow.pyfunc.model import PythonModel

from models.bundle import ANY, ModelBundle
from models.model_card import ModelCard, build_context, render_model_card
from models.policy import TierPolicy
from models.promotion import check_champion_gate
from shouhu.errors import NotFoundError, PromotionRefusedError, RegistryError

logger = logging.getLogger(__name__)

CHAMPION = "champion"
"""Alias of the version that scores children."""

CHALLENGER = "challenger"
"""Alias of the newest trained version awaiting review."""

DEFAULT_MODEL_NAME = "shouhu-risk"
DEFAULT_EXPERIMENT_NAME = "shouhu"

PRECISION_METRIC = f"test.{ANY}.precision_at_capacity"
"""The run metric :meth:`ModelRegistry.promote` compares with the policy's minimum."""

BUNDLE_FILE = "bundle.pkl"
TAG_PREFIX = "shouhu."

# Third-party distributions the pickled bundle needs. Listed explicitly because MLflow's
# inference runs the model in a subprocess (~2.9 s against ~0.07 s). The bundle's own classes
# come from the shouhu package itself, recorded as the shouhu_version tag.
_RUNTIME_DISTRIBUTIONS = ("mlflow", "cloudpickle", "lightgbm", "scikit-learn", "numpy", "pandas")

_PROJECT_ROOT = Path(__file__).resolve().parent.parent

# MLflow's batch limits (metrics, params, tags per log_batch call).
_BATCH = 100
_METRIC_KEY = re.compile(r"[^0-9A-Za-z_\-. /]")


# --------------------------------------------------------------------------------------------
# The pyfunc wrapper
# --------------------------------------------------------------------------------------------


class BundleModel(PythonModel):
    """An MLflow pyfunc whose only artifact is a pickled :class:`~models.bundle.ModelBundle`.

    ``predict`` returns the bundle's score frame (``p_any``, ``p_low``, ``p_high``,
    ``p_<domain>``), so ``mlflow.pyfunc.load_model(uri).predict(frame)`` and
    ``ModelBundle.predict(frame)`` agree. The bundle is read in :meth:`load_context`, not
    pickled with this object, so the pyfunc itself holds no state.

    Attributes
    ----------
    bundle : ModelBundle
        Set by :meth:`load_context`.
    """

    def load_context(self, context: Any) -> None:
        """Unpickle the bundle from the model's ``bundle`` artifact.

        Parameters
        ----------
        context : mlflow.pyfunc.PythonModelContext
            Gives the local path of the ``bundle`` artifact.
        """
        self.bundle = _read_bundle(Path(context.artifacts["bundle"]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Score a feature frame with the bundle.

        Parameters
        ----------
        context : mlflow.pyfunc.PythonModelContext
            Unused; the bundle was loaded in :meth:`load_context`.
        model_input : DataFrame
            Rows holding the bundle's feature columns.
        params : dict, optional
            Unused.

        Returns
        -------
        DataFrame
            ``ModelBundle.predict(model_input)``.
        """
        return self.bundle.predict(model_input)


def _read_bundle(path: Path) -> ModelBundle:
    with path.open("rb") as handle:
        # Unpickling runs code: load_bundle checks the file's SHA-256 against the registry first.
        bundle = pickle.load(handle)
    if not isinstance(bundle, ModelBundle):
        raise RegistryError(f"{path.name} holds a {type(bundle).__name__}, not a ModelBundle")
    return bundle


def _pip_requirements() -> list[str]:
    pins = []
    for name in _RUNTIME_DISTRIBUTIONS:
        try:
            pins.append(f"{name}=={dist_version(name)}")
        except PackageNotFoundError:
            pins.append(name)
    return pins


def _shouhu_version() -> str:
    try:
        return dist_version("shouhu")
    except PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------------------------
# Flattening metrics and parameters
# --------------------------------------------------------------------------------------------


def _is_estimate(value: Mapping[str, Any]) -> bool:
    return "value" in value and "low" in value and "high" in value


def _is_report(value: Mapping[str, Any]) -> bool:
    return "metrics" in value and "n_rows" in value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        number = float(value)
        return None if math.isnan(number) or math.isinf(number) else number
    return None


def flatten_metrics(nested: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Flatten nested metric dicts to MLflow metric names joined with ``.``.

    An estimate (``MetricEstimate.to_dict()``: ``value``, ``low``, ``high``) becomes its name
    plus ``<name>.low`` and ``<name>.high``; an evaluation report (``EvaluationReport.to_dict()``)
    contributes its row counts and its metrics without the ``metrics`` level, and its
    ``settings`` are left out (they are parameters, not results). Other numbers keep their
    path; strings, missing values and NaN are dropped (MLflow metrics are numbers).

    Parameters
    ----------
    nested : mapping
        For example ``{"test": {"any": report.to_dict()}}``.
    prefix : str, default=""
        Prepended to every name.

    Returns
    -------
    dict of str to float
        Metric name to value.

    Examples
    --------
    >>> flatten_metrics({"test": {"auc": {"value": 0.8, "low": 0.7, "high": 0.9}, "n": 3}})
    {'test.auc': 0.8, 'test.auc.low': 0.7, 'test.auc.high': 0.9, 'test.n': 3.0}
    """
    out: dict[str, float] = {}
    for key, value in nested.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            if _is_estimate(value):
                for suffix, part in (("", "value"), (".low", "low"), (".high", "high")):
                    number = _number(value[part])
                    if number is not None:
                        out[f"{name}{suffix}"] = number
            elif _is_report(value):
                for count in ("n_rows", "n_positive", "n_clusters"):
                    number = _number(value.get(count))
                    if number is not None:
                        out[f"{name}.{count}"] = number
                out.update(flatten_metrics(value["metrics"], name))
            else:
                out.update(flatten_metrics(value, name))
        else:
            number = _number(value)
            if number is not None:
                out[name] = number
    return {_METRIC_KEY.sub("_", k): v for k, v in out.items()}


def _flatten_params(nested: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in nested.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(_flatten_params(value, name))
        elif isinstance(value, str):
            out[name] = value
        else:
            out[name] = json.dumps(value, ensure_ascii=False, default=str)
    return {_METRIC_KEY.sub("_", k): v for k, v in out.items()}


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


def _records(table: pd.DataFrame | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(list(table))
    # Through JSON so numpy scalars and NaN become plain floats and null.
    records: list[dict[str, Any]] = json.loads(
        frame.to_json(orient="records", force_ascii=False, double_precision=15)
    )
    return records


def _card_fairness(
    given: Mapping[str, Any] | None, table: pd.DataFrame | Sequence[Mapping[str, Any]] | None
) -> dict[str, Any] | None:
    """The card's fairness section: the caller's (band, reference, note) plus the logged rows."""
    if given is None and table is None:
        return None
    section = dict(given or {})
    if table is not None:
        section["rows"] = _records(table)
    return section


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedVersion:
    """A training run logged and registered as a new model version.

    Parameters
    ----------
    name : str
        Registered model name.
    version : int
        The new version (alias ``challenger``).
    run_id : str
        The MLflow run holding parameters, metrics and artifacts.
    model_id : str
        MLflow's logged-model id.
    seconds : float
        Wall time of logging and registering.
    """

    name: str
    version: int
    run_id: str
    model_id: str
    seconds: float

    @property
    def model_uri(self) -> str:
        """``models:/<name>/<version>``."""
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version with its aliases and tags.

    Parameters
    ----------
    name : str
        Registered model name.
    version : int
        Version number.
    aliases : tuple of str
        Aliases pointing at this version (``champion``, ``challenger``).
    run_id : str or None
        The training run.
    created_at : datetime
        Registration time (UTC).
    tags : dict of str to str
        Model-version tags (provenance, promotion records).
    """

    name: str
    version: int
    aliases: tuple[str, ...]
    run_id: str | None
    created_at: datetime
    tags: dict[str, str] = field(default_factory=dict)

    def tag(self, key: str) -> str | None:
        """The value of tag ``shouhu.<key>``, or ``None``."""
        return self.tags.get(TAG_PREFIX + key)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict.

        Returns
        -------
        dict
            Name, version, aliases, run id, creation time and tags.
        """
        out = asdict(self)
        out["aliases"] = list(self.aliases)
        out["created_at"] = self.created_at.isoformat()
        return out


@dataclass(frozen=True)
class PromotionRecord:
    """What one promotion changed, as written to the promotion log.

    Parameters
    ----------
    name : str
        Registered model name.
    version : int
        The new champion.
    previous_champion : int or None
        The version that held the alias before.
    approver, reason : str
        Who approved, and why.
    promoted_at : datetime
        When (UTC).
    precision_at_capacity : float
        The version's recorded test precision at capacity.
    min_precision_at_capacity : float
        The policy's pre-registered minimum.
    policy_version, policy_fingerprint : str
        The policy the minimum came from.
    run_id : str or None
        The version's training run.
    """

    name: str
    version: int
    previous_champion: int | None
    approver: str
    reason: str
    promoted_at: datetime
    precision_at_capacity: float
    min_precision_at_capacity: float
    policy_version: str
    policy_fingerprint: str
    run_id: str | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (one promotion-log line).

        Returns
        -------
        dict
            Every field, the time in ISO 8601, plus ``event: "promote"``.
        """
        out: dict[str, Any] = {"event": "promote", **asdict(self)}
        out["promoted_at"] = self.promoted_at.isoformat()
        return out


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


def _not_found(exc: MlflowException) -> bool:
    return bool(exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST))


class ModelRegistry:
    """Log, register, load and promote Shouhu's models in one MLflow store.

    Parameters
    ----------
    tracking_uri : str
        MLflow tracking URI (``sqlite:///…`` or a server's ``http://…``).
    promotion_log : Path
        The append-only JSON-lines log of promotions.
    registry_uri : str, optional
        MLflow registry URI; the tracking URI when omitted.
    model_name : str, default="shouhu-risk"
        Registered model name.
    experiment_name : str, default="shouhu"
        Experiment holding the training runs.
    artifact_location : str, optional
        Artifact root of a new experiment (a ``file://`` URI for the local store); a tracking
        server chooses its own when omitted.
    local_dir : Path, optional
        Folder created before the first connection (the local SQLite file's folder).

    Examples
    --------
    >>> registry = ModelRegistry.local(Path("/tmp/shouhu-home/mlflow"))
    >>> registry.tracking_uri
    'sqlite:////tmp/shouhu-home/mlflow/mlflow.db'
    """

    def __init__(
        self,
        *,
        tracking_uri: str,
        promotion_log: Path,
        registry_uri: str | None = None,
        model_name: str = DEFAULT_MODEL_NAME,
        experiment_name: str = DEFAULT_EXPERIMENT_NAME,
        artifact_location: str | None = None,
        local_dir: Path | None = None,
    ) -> None:
        if not model_name.strip() or "'" in model_name:
            raise ValueError(f"invalid registered model name {model_name!r}")
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.promotion_log = Path(promotion_log)
        self.model_name = model_name
        self.experiment_name = experiment_name
        self.artifact_location = artifact_location
        self.local_dir = local_dir

    @classmethod
    def local(
        cls,
        root: Path,
        *,
        model_name: str = DEFAULT_MODEL_NAME,
        experiment_name: str = DEFAULT_EXPERIMENT_NAME,
    ) -> ModelRegistry:
        """A registry in a local folder: ``mlflow.db``, ``artifacts/`` and ``promotions.jsonl``.

        Parameters
        ----------
        root : Path
            The folder, usually ``$SHOUHU_HOME/mlflow``.
        model_name : str, default="shouhu-risk"
            Registered model name.
        experiment_name : str, default="shouhu"
            Experiment of the training runs.

        Returns
        -------
        ModelRegistry
            Nothing is created on disk until the registry is first used.
        """
        root = Path(root).resolve()
        return cls(
            tracking_uri=f"sqlite:///{(root / 'mlflow.db').as_posix()}",
            promotion_log=root / "promotions.jsonl",
            model_name=model_name,
            experiment_name=experiment_name,
            artifact_location=(root / "artifacts").as_uri(),
            local_dir=root,
        )

    @cached_property
    def client(self) -> MlflowClient:
        """The MLflow client bound to this registry's URIs (created on first use)."""
        if self.local_dir is not None:
            self.local_dir.mkdir(parents=True, exist_ok=True)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    # -- logging a training run -------------------------------------------------------------

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return str(experiment.experiment_id)
        # Without an explicit location a SQLite store would put artifacts under ./mlruns,
        # relative to wherever the command happened to run.
        return str(
            self.client.create_experiment(
                self.experiment_name, artifact_location=self.artifact_location
            )
        )

    def _ensure_registered_model(self) -> None:
        try:
            self.client.create_registered_model(self.model_name)
        except MlflowException as exc:
            if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise

    def log_training_run(
        self,
        bundle: ModelBundle,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        fairness: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
        plots: Sequence[Path] = (),
        model_card: Mapping[str, Any] | None = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> LoggedVersion:
        """Log one training run, register its bundle as a new version, alias it challenger.

        Parameters
        ----------
        bundle : ModelBundle
            The trained models; its provenance and per-outcome test metrics are logged too
            (as ``test.<outcome>.<metric>``).
        params : mapping, optional
            Training configuration; nested keys are joined with ``.``.
        metrics : mapping, optional
            Further results (e.g. ``{"baseline": {"scorecard": report.to_dict()}}``),
            flattened by :func:`flatten_metrics`.
        fairness : DataFrame or sequence of dicts, optional
            The fairness table, one row per group and metric.
        plots : sequence of Path, default=()
            PNG files to store under ``plots/``.
        model_card : mapping, optional
            Extra model-card context (``data``, ``baselines``, ``comparison``, ``oracle``,
            ``fairness`` band and note, ``promotion``, ``limitations``; see
            :func:`models.model_card.build_context`). A card is rendered for every new version,
            with or without it, and logged as Markdown, HTML and the JSON context it came from.
        run_name : str, optional
            MLflow run name.
        tags : mapping of str to str, optional
            Extra run tags.

        Returns
        -------
        LoggedVersion
            The new version, its run and the time taken.

        Raises
        ------
        RegistryError
            If MLflow refuses a write; the run is then marked FAILED.
        """
        started = time.perf_counter()
        provenance = bundle.describe()
        provenance_tags = {
            TAG_PREFIX + key: str(provenance[key])
            for key in (
                "feature_fingerprint",
                "policy_version",
                "policy_fingerprint",
                "data_fingerprint",
                "created_at",
            )
        }
        provenance_tags[TAG_PREFIX + "shouhu_version"] = _shouhu_version()
        all_metrics = flatten_metrics({"test": dict(bundle.metrics)})
        all_metrics.update(flatten_metrics(dict(metrics or {})))
        all_params = _flatten_params(dict(params or {}))
        all_params.setdefault("n_features", str(len(bundle.feature_names)))
        all_params.setdefault("outcomes", ",".join(bundle.outcomes))

        try:
            experiment_id = self._experiment_id()
            run = self.client.create_run(
                experiment_id, run_name=run_name, tags={**provenance_tags, **dict(tags or {})}
            )
        except MlflowException as exc:
            raise RegistryError(f"cannot start a run at {self._where()}: {exc.message}") from exc
        run_id = run.info.run_id
        try:
            self._log_values(run_id, all_params, all_metrics)
            self._log_files(run_id, bundle, provenance, metrics, fairness, plots)
            model_id, sha256 = self._log_model(experiment_id, run_id, bundle)
            self._ensure_registered_model()
            version_tags = {**provenance_tags, TAG_PREFIX + "bundle_sha256": sha256}
            precision = bundle.metric("precision_at_capacity")
            if precision is not None:
                version_tags[TAG_PREFIX + "precision_at_capacity"] = repr(precision)
            logged_model = self.client.get_logged_model(model_id)
            # The artifact location, not models:/<id>: the SQLite registry resolves a
            # models:/ source through MLflow's global tracking URI, which we never set.
            registered = self.client.create_model_version(
                self.model_name,
                source=logged_model.artifact_location,
                run_id=run_id,
                tags=version_tags,
                model_id=model_id,
            )
            version = int(registered.version)
            # Every version gets a card, with whatever extra context the caller gave.
            self._log_model_card(run_id, bundle, version, model_card or {}, fairness)
            # The alias last: a run that failed on the way never becomes the challenger.
            self.client.set_registered_model_alias(self.model_name, CHALLENGER, str(version))
            self.client.set_terminated(run_id, "FINISHED")
        except BaseException as exc:
            self.client.set_terminated(run_id, "FAILED")
            if isinstance(exc, MlflowException):
                raise RegistryError(
                    f"logging run {run_id} at {self._where()} failed: {exc.message}"
                ) from exc
            raise
        seconds = time.perf_counter() - started
        logger.info(
            "registered model version",
            extra={"model": self.model_name, "version": version, "seconds": round(seconds, 3)},
        )
        return LoggedVersion(self.model_name, version, run_id, model_id, seconds)

    def _where(self) -> str:
        # A server URI may embed credentials (https://user:token@host); show the scheme only.
        scheme = self.tracking_uri.split(":", 1)[0]
        return f"the {scheme} tracking store" if self.local_dir is None else str(self.local_dir)

    def _log_values(self, run_id: str, params: dict[str, str], metrics: dict[str, float]) -> None:
        stamp = int(time.time() * 1000)
        param_list = [Param(k, v) for k, v in sorted(params.items())]
        metric_list = [Metric(k, v, stamp, 0) for k, v in sorted(metrics.items())]
        for chunk in _chunks(param_list):
            self.client.log_batch(run_id, params=list(chunk))
        for chunk in _chunks(metric_list):
            self.client.log_batch(run_id, metrics=list(chunk))

    def _log_files(
        self,
        run_id: str,
        bundle: ModelBundle,
        provenance: dict[str, Any],
        metrics: Mapping[str, Any] | None,
        fairness: pd.DataFrame | Sequence[Mapping[str, Any]] | None,
        plots: Sequence[Path],
    ) -> None:
        self.client.log_dict(
            run_id,
            {
                "feature_names": provenance["feature_names"],
                "feature_fingerprint": bundle.feature_fingerprint,
            },
            "features.json",
        )
        self.client.log_dict(run_id, provenance, "provenance.json")
        # The nested metrics keep their intervals and settings; the model card reads these.
        self.client.log_dict(
            run_id, {"test": dict(bundle.metrics), **dict(metrics or {})}, "metrics.json"
        )
        if fairness is not None:
            records = _records(fairness)
            self.client.log_dict(run_id, {"rows": records}, "fairness/fairness.json")
            self.client.log_text(
                run_id, pd.DataFrame(records).to_csv(index=False), "fairness/fairness.csv"
            )
        for plot in plots:
            path = Path(plot)
            if not path.is_file():
                raise FileNotFoundError(f"plot {path} does not exist")
            self.client.log_artifact(run_id, str(path), "plots")

    def _log_model(self, experiment_id: str, run_id: str, bundle: ModelBundle) -> tuple[str, str]:
        logged = self.client.create_logged_model(
            experiment_id,
            name="model",
            source_run_id=run_id,
            tags={TAG_PREFIX + "policy_version": bundle.policy_version},
        )
        with tempfile.TemporaryDirectory() as tmp:
            bundle_path = Path(tmp) / BUNDLE_FILE
            payload = pickle.dumps(bundle, protocol=pickle.HIGHEST_PROTOCOL)
            bundle_path.write_bytes(payload)
            model_dir = Path(tmp) / "model"
            mlflow.pyfunc.save_model(
                path=str(model_dir),
                python_model=BundleModel(),
                artifacts={"bundle": str(bundle_path)},
                pip_requirements=_pip_requirements(),
                # The project's own lock file pins the environment the bundle's classes need;
                # named explicitly so the result does not depend on the working directory.
                uv_project_path=_PROJECT_ROOT if (_PROJECT_ROOT / "uv.lock").is_file() else None,
                mlflow_model=Model(
                    artifact_path=logged.artifact_location,
                    run_id=run_id,
                    model_id=logged.model_id,
                    model_uuid=logged.model_id,
                ),
                metadata={"shouhu": {"bundle_file": BUNDLE_FILE, **bundle.describe()}},
            )
            self.client.log_model_artifacts(logged.model_id, str(model_dir))
        self.client.finalize_logged_model(logged.model_id, "READY")
        self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        return str(logged.model_id), hashlib.sha256(payload).hexdigest()

    def _log_model_card(
        self,
        run_id: str,
        bundle: ModelBundle,
        version: int,
        extra: Mapping[str, Any],
        fairness: pd.DataFrame | Sequence[Mapping[str, Any]] | None,
    ) -> ModelCard:
        context = build_context(
            model={
                "name": self.model_name,
                "version": version,
                "run_id": run_id,
                **bundle.describe(),
            },
            metrics=bundle.metrics,
            **{**dict(extra), "fairness": _card_fairness(extra.get("fairness"), fairness)},
        )
        card = render_model_card(context)
        self.client.log_dict(run_id, context, "model_card/context.json")
        self.client.log_text(run_id, card.markdown, "model_card/model_card.md")
        self.client.log_text(run_id, card.html, "model_card/model_card.html")
        return card

    # -- reading the registry ---------------------------------------------------------------

    def _aliases(self) -> dict[str, int]:
        """Alias to version, read from the registered model (version searches omit aliases)."""
        try:
            model = self.client.get_registered_model(self.model_name)
        except MlflowException as exc:
            if _not_found(exc):
                return {}
            raise RegistryError(f"cannot read {self.model_name}: {exc.message}") from exc
        return {alias: int(v) for alias, v in model.aliases.items()}

    def _model_version(self, alias_or_version: str | int) -> Any:
        text = str(alias_or_version).strip()
        try:
            if text.isdigit():
                return self.client.get_model_version(self.model_name, text)
            return self.client.get_model_version_by_alias(self.model_name, text)
        except MlflowException as exc:
            if _not_found(exc):
                what = f"version {text}" if text.isdigit() else f"alias {text!r}"
                raise NotFoundError(f"model {self.model_name} has no {what}") from exc
            raise RegistryError(f"cannot read {self.model_name}: {exc.message}") from exc

    def _info(self, model_version: Any, aliases: Mapping[str, int]) -> VersionInfo:
        number = int(model_version.version)
        return VersionInfo(
            name=self.model_name,
            version=number,
            aliases=tuple(sorted(a for a, v in aliases.items() if v == number)),
            run_id=model_version.run_id or None,
            created_at=datetime.fromtimestamp(model_version.creation_timestamp / 1000, UTC),
            tags=dict(model_version.tags),
        )

    def version_info(self, alias_or_version: str | int) -> VersionInfo:
        """One version, by number or alias.

        Parameters
        ----------
        alias_or_version : str or int
            ``3``, ``"3"``, ``"champion"`` or ``"challenger"``.

        Returns
        -------
        VersionInfo
            The version with its aliases and tags.

        Raises
        ------
        NotFoundError
            If the model, version or alias does not exist.
        """
        return self._info(self._model_version(alias_or_version), self._aliases())

    def champion_info(self) -> VersionInfo | None:
        """The champion version, or ``None`` when no version has been promoted.

        Returns
        -------
        VersionInfo or None
            The version holding the ``champion`` alias.
        """
        aliases = self._aliases()
        if CHAMPION not in aliases:
            return None
        return self._info(self._model_version(aliases[CHAMPION]), aliases)

    def list_versions(self) -> list[VersionInfo]:
        """Every registered version, newest first, with its aliases.

        Returns
        -------
        list of VersionInfo
            Empty when nothing has been registered.
        """
        aliases = self._aliases()
        if not aliases and not self._model_exists():
            return []
        try:
            found = self.client.search_model_versions(f"name='{self.model_name}'")
        except MlflowException as exc:
            raise RegistryError(f"cannot list {self.model_name}: {exc.message}") from exc
        infos = [self._info(v, aliases) for v in found]
        return sorted(infos, key=lambda info: info.version, reverse=True)

    def _model_exists(self) -> bool:
        try:
            self.client.get_registered_model(self.model_name)
        except MlflowException as exc:
            if _not_found(exc):
                return False
            raise RegistryError(f"cannot read {self.model_name}: {exc.message}") from exc
        return True

    def load_bundle(self, alias_or_version: str | int = CHAMPION) -> ModelBundle:
        """Load the bundle of a version (``models:/<name>@champion`` by default).

        The bundle file's SHA-256 is checked against the one recorded at registration before
        it is unpickled.

        Parameters
        ----------
        alias_or_version : str or int, default="champion"
            Version number or alias.

        Returns
        -------
        ModelBundle
            The bundle, ready to score.

        Raises
        ------
        NotFoundError
            If the model, version or alias does not exist.
        RegistryError
            If the artifacts are missing or the checksum does not match.
        """
        model_version = self._model_version(alias_or_version)
        number = int(model_version.version)
        expected = dict(model_version.tags).get(TAG_PREFIX + "bundle_sha256")
        try:
            uri = self.client.get_model_version_download_uri(self.model_name, str(number))
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=uri,
                        dst_path=tmp,
                        tracking_uri=self.tracking_uri,
                        registry_uri=self.registry_uri,
                    )
                )
                bundle_path = local / "artifacts" / BUNDLE_FILE
                if not bundle_path.is_file():
                    raise RegistryError(
                        f"version {number} of {self.model_name} has no {BUNDLE_FILE} artifact"
                    )
                actual = hashlib.sha256(bundle_path.read_bytes()).hexdigest()
                if expected is None:
                    raise RegistryError(
                        f"version {number} of {self.model_name} has no recorded bundle "
                        "checksum (not registered by Shouhu); refusing to load it"
                    )
                if actual != expected:
                    raise RegistryError(
                        f"version {number} of {self.model_name}: the bundle's checksum does "
                        "not match the one recorded at registration; refusing to load it"
                    )
                pyfunc = mlflow.pyfunc.load_model(str(local))
                wrapper = pyfunc.unwrap_python_model()
        except MlflowException as exc:
            raise RegistryError(
                f"cannot load version {number} of {self.model_name}: {exc.message}"
            ) from exc
        if not isinstance(wrapper, BundleModel):
            raise RegistryError(
                f"version {number} of {self.model_name} is not a Shouhu bundle model"
            )
        return wrapper.bundle

    def model_card(self, alias_or_version: str | int) -> ModelCard:
        """Render a version's model card again from the context its run logged.

        The current templates are used, so an improved template applies to old versions too;
        the figures are those recorded at training time.

        Parameters
        ----------
        alias_or_version : str or int
            Version number or alias.

        Returns
        -------
        ModelCard
            Markdown and HTML.

        Raises
        ------
        NotFoundError
            If the version does not exist or its run logged no card context.
        """
        model_version = self._model_version(alias_or_version)
        run_id = model_version.run_id
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = self.client.download_artifacts(run_id, "model_card/context.json", tmp)
                context = json.loads(Path(path).read_text(encoding="utf-8"))
        except (MlflowException, OSError) as exc:
            raise NotFoundError(
                f"version {model_version.version} of {self.model_name} has no model card context"
            ) from exc
        return render_model_card(context)

    # -- promotion --------------------------------------------------------------------------

    def _recorded_precision(self, model_version: Any) -> float | None:
        run_id = model_version.run_id
        if not run_id:
            return None
        try:
            value = self.client.get_run(run_id).data.metrics.get(PRECISION_METRIC)
        except MlflowException as exc:
            raise RegistryError(f"cannot read run {run_id}: {exc.message}") from exc
        if value is None or math.isnan(float(value)):
            return None
        return float(value)

    def _run_tags(self, model_version: Any) -> dict[str, str]:
        run_id = model_version.run_id
        if not run_id:
            return {}
        try:
            return dict(self.client.get_run(run_id).data.tags)
        except MlflowException as exc:
            raise RegistryError(f"cannot read run {run_id}: {exc.message}") from exc

    def promote(
        self,
        version: int | str,
        *,
        approver: str,
        reason: str,
        policy: TierPolicy,
        now: datetime | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> PromotionRecord:
        """Move the ``champion`` alias to ``version``, with a named approver and a reason.

        The champion gate is checked here, so no caller can forget it: a version whose
        training run recorded that the model did not beat both simple baselines on precision
        at capacity in the required time folds is refused (a version logged without a gate
        record, i.e. not trained by ``models.train``, is judged by the other checks alone).
        Every check happens before anything is written, so a refusal changes nothing: the
        champion alias, the version's tags and the promotion log stay as they were. On success
        the version gets the tags ``shouhu.promoted_by``, ``shouhu.promotion_reason``,
        ``shouhu.promoted_at`` and ``shouhu.promotion_policy_version``, the ``champion`` alias
        moves (and ``challenger`` is removed if it pointed at this version), and one line is
        appended to the promotion log.

        Parameters
        ----------
        version : int or str
            Version number to promote.
        approver : str
            The person who approves (required, not blank).
        reason : str
            Why (required, not blank).
        policy : TierPolicy
            The tier policy whose ``promotion.min_precision_at_capacity`` was pre-registered;
            the minimum comes only from here, so a caller cannot lower it.
        now : datetime, optional
            Time of the promotion (UTC now by default; tests pin it).
        tags : mapping of str to str, optional
            Further version tags written with the promotion's own (as ``shouhu.<key>``), e.g.
            the re-evaluation an approval rests on (``models.promotion.approve_promotion``).

        Returns
        -------
        PromotionRecord
            What was changed, as logged.

        Raises
        ------
        PromotionRefusedError
            If the approver or reason is blank, the version is already champion, its training
            run failed the champion gate, it has no recorded precision at capacity, or its
            precision is below the policy's minimum.
        NotFoundError
            If the version does not exist.
        """
        approver, reason = approver.strip(), reason.strip()
        text = str(version).strip()
        if not text.isdigit():
            raise PromotionRefusedError(f"promote takes a version number, not {text!r}")
        number = int(text)
        label = f"version {number} of {self.model_name}"
        if not approver:
            raise PromotionRefusedError(f"{label} was not promoted: a named approver is required")
        if not reason:
            raise PromotionRefusedError(f"{label} was not promoted: a reason is required")
        model_version = self._model_version(number)
        aliases = self._aliases()
        previous = aliases.get(CHAMPION)
        if previous == number:
            raise PromotionRefusedError(f"{label} is already the champion")
        check_champion_gate(self._run_tags(model_version), number)
        precision = self._recorded_precision(model_version)
        minimum = policy.promotion.min_precision_at_capacity
        if precision is None:
            raise PromotionRefusedError(
                f"{label} was not promoted: it has no recorded {PRECISION_METRIC}"
            )
        if precision < minimum:
            raise PromotionRefusedError(
                f"{label} was not promoted: its precision at capacity {precision:.3f} is below "
                f"the minimum {minimum:.3f} pre-registered in policy {policy.version} "
                f"on {policy.promotion.preregistered_on.isoformat()}"
            )
        record = PromotionRecord(
            name=self.model_name,
            version=number,
            previous_champion=previous,
            approver=approver,
            reason=reason,
            promoted_at=(now or datetime.now(UTC)).astimezone(UTC),
            precision_at_capacity=precision,
            min_precision_at_capacity=minimum,
            policy_version=policy.version,
            policy_fingerprint=policy.fingerprint(),
            run_id=model_version.run_id or None,
        )
        version_tags = {
            **dict(tags or {}),
            "promoted_by": approver,
            "promotion_reason": reason,
            "promoted_at": record.promoted_at.isoformat(),
            "promotion_policy_version": policy.version,
        }
        try:
            for key, value in version_tags.items():
                self.client.set_model_version_tag(
                    self.model_name, str(number), TAG_PREFIX + key, value
                )
            self.client.set_registered_model_alias(self.model_name, CHAMPION, str(number))
            if aliases.get(CHALLENGER) == number:
                # A challenger is a version awaiting review; once champion it is no longer one.
                self.client.delete_registered_model_alias(self.model_name, CHALLENGER)
        except MlflowException as exc:
            raise RegistryError(f"promoting {label} failed: {exc.message}") from exc
        self._append_promotion(record)
        logger.info(
            "promoted model version",
            extra={"model": self.model_name, "version": number, "previous": previous},
        )
        return record

    def _append_promotion(self, record: PromotionRecord) -> None:
        self.promotion_log.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record.to_dict(), ensure_ascii=False, sort_keys=True)
        # Append mode only: earlier lines are never rewritten. fsync so an audit record
        # survives a crash right after the alias moved.
        with self.promotion_log.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def promotions(self) -> list[dict[str, Any]]:
        """Every line of the promotion log, oldest first (empty if there is none).

        Returns
        -------
        list of dict
            The parsed log lines.
        """
        if not self.promotion_log.is_file():
            return []
        lines = self.promotion_log.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DEFAULT_EXPERIMENT_NAME",
    "DEFAULT_MODEL_NAME",
    "PRECISION_METRIC",
    "BundleModel",
    "LoggedVersion",
    "ModelRegistry",
    "PromotionRecord",
    "VersionInfo",
    "flatten_metrics",
]
