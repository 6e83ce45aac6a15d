"""The one typed settings object, read only by entrypoints (CLI commands, the app factory).

Library functions take plain arguments and never read settings. Values come, in order of
precedence, from ``SHOUHU_*`` environment variables (nested sections with ``__``, e.g.
``SHOUHU_STORE__THREADS=2``), then a TOML file (``SHOUHU_CONFIG``, else
``$SHOUHU_HOME/shouhu.toml`` when present), then the defaults below, which make ``make demo``
work on 127.0.0.1.

Why here: ``shouhu`` is the lowest layer, importable by every package without breaking the
one-way flow features → models → service/monitoring (docs/architecture.md).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

#: Demo key for pseudonymising synthetic identity numbers. Refused outside demo mode.
DEMO_PSEUDONYM_KEY = "shouhu-demo-key-not-for-real-data"
#: Demo key for signing session cookies. Refused outside demo mode.
DEMO_SESSION_SECRET = "shouhu-demo-session-secret-not-for-production"


class StoreSettings(BaseModel):
    """The embedded DuckDB feature store."""

    filename: str = "features.duckdb"
    threads: int = Field(default=0, ge=0, description="DuckDB threads; 0 lets DuckDB choose")
    memory_limit: str = Field(default="4GB", description="DuckDB memory_limit for one process")


class IngestSettings(BaseModel):
    """Ledger ingestion."""

    mapping_file: Path | None = Field(
        default=None, description="county header/value mapping (YAML); default mapping if unset"
    )
    max_future_days: int = Field(
        default=1, ge=0, description="how far past the load date a recorded date may lie"
    )


class RegistrySettings(BaseModel):
    """MLflow tracking and model registry.

    Local by default: a SQLite backend store and an artifact folder under
    ``$SHOUHU_HOME/mlflow``. Set ``tracking_uri`` (for example ``http://127.0.0.1:5000``) to use
    a tracking server instead; its own artifact store then applies.
    """

    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; unset means sqlite:///$SHOUHU_HOME/mlflow/mlflow.db",
    )
    registry_uri: str | None = Field(
        default=None, description="MLflow registry URI; unset means the tracking URI"
    )
    model_name: str = Field(
        default="shouhu-risk", min_length=1, description="registered model name"
    )
    experiment_name: str = Field(
        default="shouhu", min_length=1, description="MLflow experiment for training runs"
    )

    @field_validator("tracking_uri", "registry_uri")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        # SHOUHU_REGISTRY__TRACKING_URI= (empty) in an .env file means "use the default".
        if value is None:
            return None
        return value.strip() or None


class PolicySettings(BaseModel):
    """The tier policy in force."""

    file: Path | None = Field(
        default=None, description="tier-policy YAML file; the default policy shipped if unset"
    )


class TrainSettings(BaseModel):
    """Model training (``shouhu models train``): the as-of spine, the windows and the seed.

    Windows are in days of as-of dates, counted back from the last date whose 90-day label
    window has fully passed; see ``models.splits.rolling_time_folds``.
    """

    seed: int = Field(default=0, ge=0, description="seed of every random choice in training")
    cadence_months: int = Field(
        default=1, ge=1, le=12, description="one as-of date (a month end) every this many months"
    )
    warmup_months: int = Field(
        default=0,
        ge=0,
        description="leave out as-of dates in the first months of the ledgers (short history)",
    )
    horizon_days: int = Field(default=90, ge=1, description="days a label looks forward")
    test_days: int = Field(default=90, ge=1, description="as-of days in each test window")
    calib_days: int = Field(default=90, ge=1, description="as-of days in each calibration window")
    n_folds: int = Field(
        default=2, ge=1, description="rolling time folds; the champion gate needs at least two"
    )
    calib_share: float = Field(default=0.25, gt=0.0, lt=1.0, description="households calibrating")
    test_share: float = Field(default=0.25, gt=0.0, lt=1.0, description="households testing")
    n_estimators: int = Field(default=100, ge=1, description="boosting rounds per model")
    num_leaves: int = Field(
        default=7,
        ge=2,
        description="leaves per tree; small trees rank as well here and explain far faster",
    )
    learning_rate: float = Field(default=0.1, gt=0.0, le=1.0, description="boosting shrinkage")
    n_jobs: int = Field(
        default=1,
        ge=1,
        description="LightGBM threads; fixed for reproducibility, and one because OpenMP threads "
        "spin-wait and slow down tenfold on a busy machine",
    )
    n_bootstrap: int = Field(
        default=200, ge=1, description="household-bootstrap refits of the p_any calibration"
    )
    n_resamples: int = Field(default=200, ge=1, description="bootstrap resamples of each metric")


class ScoringSettings(BaseModel):
    """Scoring runs (``shouhu models score``): where scores are kept."""

    database: str = Field(
        default="scores.duckdb", description="DuckDB file of every scoring run, under the home"
    )
    folder: str = Field(default="scores", description="folder of the Parquet files of scores")
    explain_threads: int = Field(
        default=1,
        ge=0,
        description="LightGBM threads for the reasons (0: every core); one is robust on a busy "
        "machine, where spin-waiting OpenMP threads slow down tenfold",
    )
    explain_tiers: list[Literal["T1", "T2", "T3", "T4"]] | None = Field(
        default=None,
        description="tiers whose children get their reasons at once (unset: every child); "
        "e.g. [T1, T2, T3] for a very large run, the others explained on demand",
    )


class ServiceSettings(BaseModel):
    """The web service (``shouhu serve``): API, pages and the operational database."""

    host: str = Field(default="127.0.0.1", description="address to bind")
    port: int = Field(default=8000, ge=1, le=65535, description="port to bind")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the operational database; unset means SQLite (WAL) at "
        "$SHOUHU_HOME/service.db, a postgresql:// URL for PostgreSQL",
    )
    session_secret: SecretStr = Field(
        default=SecretStr(DEMO_SESSION_SECRET),
        description="key that signs session cookies and CSRF tokens; refused outside demo mode",
    )
    session_hours: int = Field(default=12, ge=1, le=24 * 30, description="session lifetime")
    token_days: int = Field(default=30, ge=1, le=365, description="API bearer-token lifetime")
    secure_cookies: bool = Field(
        default=False,
        description="mark cookies Secure (HTTPS only); true in production behind TLS",
    )
    default_lang: str = Field(default="zh", pattern="^(zh|en)$", description="page language")
    webhook_url: str | None = Field(
        default=None, description="early-warning alerts are POSTed here when set"
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key that signs webhook bodies"
    )
    webhook_retries: int = Field(default=3, ge=0, le=10, description="webhook retry attempts")
    refresh_seconds: int = Field(
        default=60,
        ge=0,
        description="how often the service looks for a new scoring run, feature-store change or "
        "champion (0: only at start)",
    )


class MonitoringSettings(BaseModel):
    """Drift, data quality and re-evaluation reports."""

    sample_rows: int = Field(
        default=20_000, ge=100, description="rows sampled per side for drift reports"
    )


class Settings(BaseSettings):
    """Shouhu's settings. See the module docstring for sources and precedence."""

    model_config = SettingsConfigDict(
        env_prefix="SHOUHU_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    home: Path = Field(default=Path(".shouhu"), description="data home: store, registry, reports")
    demo_mode: bool = Field(
        default=True, description="allow the demo pseudonym key; set false for real ledgers"
    )
    pseudonym_key: SecretStr = Field(
        default=SecretStr(DEMO_PSEUDONYM_KEY),
        description="HMAC key that pseudonymises identity numbers before storage",
    )
    log_level: str = "INFO"
    store: StoreSettings = StoreSettings()
    ingest: IngestSettings = IngestSettings()
    registry: RegistrySettings = RegistrySettings()
    policy: PolicySettings = PolicySettings()
    train: TrainSettings = TrainSettings()
    scoring: ScoringSettings = ScoringSettings()
    service: ServiceSettings = ServiceSettings()
    monitoring: MonitoringSettings = MonitoringSettings()

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _refuse_demo_key_for_real_data(self) -> Settings:
        key = self.pseudonym_key.get_secret_value()
        if not self.demo_mode and key == DEMO_PSEUDONYM_KEY:
            raise ValueError(
                "SHOUHU_PSEUDONYM_KEY must be set to a secret key when SHOUHU_DEMO_MODE is false"
            )
        if not self.demo_mode and (
            self.service.session_secret.get_secret_value() == DEMO_SESSION_SECRET
        ):
            raise ValueError(
                "SHOUHU_SERVICE__SESSION_SECRET must be set to a secret when SHOUHU_DEMO_MODE "
                "is false"
            )
        if self.demo_mode and self.service.host not in {"127.0.0.1", "localhost", "::1"}:
            # Demo secrets must never face a network.
            raise ValueError(
                f"demo mode serves on the loopback address only, not {self.service.host}; "
                "set SHOUHU_DEMO_MODE=false with real secrets to bind another address"
            )
        if len(key) < 16:
            raise ValueError("SHOUHU_PSEUDONYM_KEY must be at least 16 characters")
        return self

    @property
    def store_path(self) -> Path:
        """The DuckDB feature-store file."""
        return self.home / self.store.filename

    @property
    def registry_dir(self) -> Path:
        """Folder of the local MLflow store and the promotion log."""
        return self.home / "mlflow"

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI in force (the local SQLite store unless one is set)."""
        if self.registry.tracking_uri is not None:
            return self.registry.tracking_uri
        return f"sqlite:///{(self.registry_dir / 'mlflow.db').as_posix()}"

    @property
    def registry_uri(self) -> str:
        """The MLflow registry URI in force (the tracking URI unless one is set)."""
        return self.registry.registry_uri or self.tracking_uri

    @property
    def artifact_location(self) -> str | None:
        """Artifact folder URI for the local store; ``None`` when a server decides."""
        if self.registry.tracking_uri is not None:
            return None
        return (self.registry_dir / "artifacts").as_uri()

    @property
    def scores_dir(self) -> Path:
        """Folder of the Parquet files written by scoring runs."""
        return self.home / self.scoring.folder

    @property
    def scores_db_path(self) -> Path:
        """The DuckDB file of scoring runs (apart from the feature store, which features own)."""
        return self.home / self.scoring.database

    @property
    def reports_dir(self) -> Path:
        """Folder of evaluation and other reports."""
        return self.home / "reports"

    @property
    def service_database_url(self) -> str:
        """The operational database URL in force (SQLite under the home unless one is set)."""
        if self.service.database_url:
            return self.service.database_url
        return f"sqlite:///{(self.home / 'service.db').as_posix()}"

    @property
    def monitoring_dir(self) -> Path:
        """Folder of drift, quality and re-evaluation reports."""
        return self.home / "monitoring"

    @property
    def promotion_log_path(self) -> Path:
        """The append-only JSON-lines log of champion promotions."""
        return self.registry_dir / "promotions.jsonl"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _config_file()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def _config_file() -> Path | None:
    explicit = os.environ.get("SHOUHU_CONFIG")
    if explicit:
        return Path(explicit)
    candidate = Path(os.environ.get("SHOUHU_HOME", ".shouhu")) / "shouhu.toml"
    return candidate if candidate.is_file() else None


@lru_cache(maxsize=1)
def get_settings(**overrides: Any) -> Settings:
    """Return the process's settings, built once (tests call ``get_settings.cache_clear()``)."""
    return Settings(**overrides)


__all__ = [
    "DEMO_PSEUDONYM_KEY",
    "DEMO_SESSION_SECRET",
    "IngestSettings",
    "MonitoringSettings",
    "PolicySettings",
    "RegistrySettings",
    "ScoringSettings",
    "ServiceSettings",
    "Settings",
    "StoreSettings",
    "TrainSettings",
    "get_settings",
]
