"""``ServiceState``: what the app loads once at start and hands to every request.

Built in the lifespan of ``service.app.create_app`` from :class:`~shouhu.settings.Settings`:
the tier policy, the champion bundle from the registry (the service refuses to start without
one), the operational database (migrated to the newest revision) and a
:class:`~service.snapshot.Snapshot` of the stores. :meth:`ServiceState.refresh` runs every
``service.refresh_seconds``: it reloads the snapshot when a store file changed and the champion
when the registry names another version. If the registry cannot be reached then, the service
keeps serving the model it holds and says so in ``/api/v1/health``.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.bundle import ModelBundle
from models.explain import FeatureText, feature_texts
from models.policy import TierPolicy, load_policy
from service.auth.tokens import VerifiedTokens
from service.db.base import (
    SERVICE_AUTOCHECKPOINT_PAGES,
    WalCheckpointer,
    is_sqlite_file,
    make_engine,
    make_session_factory,
)
from service.scoring import Scorer
from service.snapshot import Snapshot, StoreStamp, build_snapshot
from shouhu.errors import ConfigError, NotFoundError, RegistryError, ShouhuError, StoreError
from shouhu.settings import Settings

if TYPE_CHECKING:
    import duckdb

    from models.registry import ModelRegistry, VersionInfo
    from service.deps import Principal
    from service.workflow.tasks import OpenTaskIndex

logger = logging.getLogger(__name__)


def registry_for(settings: Settings) -> ModelRegistry:
    """The model registry the settings point at (as ``shouhu models`` builds it).

    Built here rather than imported from ``models.cli``, whose commands reach training code
    the service must never import.
    """
    from models.registry import ModelRegistry

    local = settings.registry.tracking_uri is None
    return ModelRegistry(
        tracking_uri=settings.tracking_uri,
        registry_uri=settings.registry_uri,
        promotion_log=settings.promotion_log_path,
        model_name=settings.registry.model_name,
        experiment_name=settings.registry.experiment_name,
        artifact_location=settings.artifact_location,
        local_dir=settings.registry_dir if local else None,
    )


def load_champion(registry: ModelRegistry) -> tuple[VersionInfo, ModelBundle]:
    """The champion's version and bundle.

    Raises
    ------
    ConfigError
        If no version holds the ``champion`` alias.
    RegistryError
        If the registry cannot be read or the bundle fails its checksum.
    """
    try:
        champion = registry.champion_info()
    except ShouhuError:
        raise
    except Exception as exc:  # MLflow raises many kinds when its store is unreachable
        raise RegistryError(f"cannot reach the model registry: {exc}") from exc
    if champion is None:
        raise ConfigError(
            f"no champion model in the registry ({registry.model_name}): the service scores "
            "children only with a promoted model. Train one (`shouhu models train`) and promote "
            "it (`shouhu models promote VERSION --approver NAME --reason TEXT`), or run "
            "`shouhu demo`."
        )
    try:
        bundle = registry.load_bundle(champion.version)
    except NotFoundError as exc:
        raise RegistryError(f"the champion cannot be loaded: {exc.message}") from exc
    return champion, bundle


@dataclass
class RegistryStatus:
    """What the service last learned from the registry."""

    reachable: bool = True
    checked_at: float = field(default_factory=time.time)
    error: str | None = None


class ServiceState:
    """The loaded policy, champion, stores and database of one running service.

    Attributes
    ----------
    settings : Settings
        The process settings.
    policy : TierPolicy
        The tier policy in force (``policy_version`` is its version).
    bundle : ModelBundle
        The champion.
    model_name, model_version : str, int
        The champion's registered name and version.
    engine : Engine
        The operational database.
    sessions : sessionmaker
        Its session factory (``service.deps.SessionDep`` opens one per request).
    snapshot : Snapshot
        Features, the run in force and areas (see ``service.snapshot``).
    scorer : Scorer
        Scores children of ``snapshot`` now.
    registry_status : RegistryStatus
        Whether the registry answered at the last check.
    verified_tokens : VerifiedTokens
        API tokens verified in the last seconds and their principals (``service.deps``).
    db_inline : bool
        Whether requests may run operational-database statements on the event loop: true for
        SQLite, whose statements are local sub-millisecond calls (an audit insert, a token
        lookup), so a thread-pool hop would cost more than the statement; a networked
        database (PostgreSQL) is used from the thread pool.
    checkpointer : WalCheckpointer or None
        The background WAL checkpointer of a SQLite file database (``None`` otherwise).
    """

    def __init__(
        self,
        *,
        settings: Settings,
        policy: TierPolicy,
        registry: ModelRegistry | None,
        champion: VersionInfo,
        bundle: ModelBundle,
        engine: Engine,
        snapshot: Snapshot,
        checkpointer: WalCheckpointer | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.registry = registry
        self.champion = champion
        self.bundle = bundle
        self.engine = engine
        self.sessions: sessionmaker[Session] = make_session_factory(engine)
        self.db_inline = engine.dialect.name == "sqlite"
        self.checkpointer = checkpointer
        self.verified_tokens: VerifiedTokens[Principal] = VerifiedTokens()
        self.texts: dict[str, FeatureText] = feature_texts()
        self.snapshot = snapshot
        self.scorer = Scorer(bundle, policy, snapshot, self.texts)
        self.registry_status = RegistryStatus()
        self.started_at = time.time()
        self._refresh_lock = threading.Lock()
        self._model_card: dict[str, Any] | None = None
        self._tables: dict[str, bool] = {}
        self._open_tasks: OpenTaskIndex | None = None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def load(cls, settings: Settings, *, migrate: bool = True) -> ServiceState:
        """Load everything the service needs, or fail with a clear message.

        Parameters
        ----------
        settings : Settings
            The process settings.
        migrate : bool, default=True
            Bring the operational database to the newest migration first.

        Returns
        -------
        ServiceState
            Ready to serve.

        Raises
        ------
        ConfigError
            If there is no champion, or the policy file is invalid (``PolicyError``).
        RegistryError
            If the registry cannot be reached or the champion cannot be loaded.
        StoreError
            If the feature store is missing or busy.
        """
        policy = load_policy(settings.policy.file)
        registry = registry_for(settings)
        champion, bundle = load_champion(registry)
        engine = make_engine(
            settings.service_database_url, wal_autocheckpoint=SERVICE_AUTOCHECKPOINT_PAGES
        )
        if migrate:
            from service.db.migrate import upgrade

            upgrade(engine)
        snapshot = _snapshot(settings, bundle, policy, champion.version)
        logger.info(
            "service state loaded",
            extra={
                "model_version": champion.version,
                "policy_version": policy.version,
                "children": len(snapshot.frame),
            },
        )
        checkpointer = WalCheckpointer(engine).start() if is_sqlite_file(engine) else None
        state = cls(
            settings=settings,
            policy=policy,
            registry=registry,
            champion=champion,
            bundle=bundle,
            engine=engine,
            snapshot=snapshot,
            checkpointer=checkpointer,
        )
        open_tasks = state.open_tasks()
        if open_tasks is not None:
            open_tasks.refresh()  # read the task history now, not in the first request
        settle_heap()
        return state

    def close(self) -> None:
        """Stop the WAL checkpointer, release the database connections, and hand what
        :func:`settle_heap` froze back to the garbage collector."""
        if self.checkpointer is not None:
            self.checkpointer.stop()
            self.checkpointer = None
        self.engine.dispose()
        gc.unfreeze()

    # -- views -------------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The champion's registered name."""
        return self.champion.name

    @property
    def model_version(self) -> int:
        """The champion's version."""
        return self.champion.version

    @property
    def policy_version(self) -> str:
        """The tier policy's version."""
        return self.policy.version

    def has_table(self, name: str) -> bool:
        """Whether the operational database has table ``name`` (looked up once; migrations run
        before the service starts, so the answer does not change while it runs)."""
        known = self._tables.get(name)
        if known is None:
            from sqlalchemy import inspect

            known = self._tables[name] = bool(inspect(self.engine).has_table(name))
        return known

    def open_tasks(self) -> OpenTaskIndex | None:
        """The open tasks held in memory for the watch list's days overdue (built on first
        use; ``None`` while the workflow tables do not exist).

        The index catches up with the committed tasks and completions on every question, so
        it answers what ``service.workflow.tasks.overdue_by_child`` would, without scanning
        the task history per request.
        """
        if self._open_tasks is None:
            if not self.has_table("tasks"):
                return None
            from service.workflow.tasks import OpenTaskIndex

            self._open_tasks = OpenTaskIndex(self.engine)
        return self._open_tasks

    # -- stores ------------------------------------------------------------------------------

    @contextmanager
    def feature_store(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection to the feature store, closed on exit.

        Raises
        ------
        StoreError
            If the store is missing or a writer holds it (the request can be retried).
        """
        from service.snapshot import _connect

        con = _connect(
            self.settings.store_path,
            threads=1,
            memory_limit=self.settings.store.memory_limit,
        )
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def score_store(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A read-only connection to the score store (``None`` when nothing was scored)."""
        from service.snapshot import _connect

        path = self.settings.scores_db_path
        if not path.exists():
            yield None
            return
        con = _connect(path, threads=1, memory_limit=None)
        try:
            yield con
        finally:
            con.close()

    # -- refresh -----------------------------------------------------------------------------

    def stores_changed(self) -> bool:
        """Whether a store file changed since the snapshot was built."""
        now = (
            StoreStamp.of(self.settings.store_path),
            StoreStamp.of(self.settings.scores_db_path),
        )
        return now != self.snapshot.stamps

    def check_registry(self) -> VersionInfo | None:
        """The champion the registry names now, or ``None`` if it cannot be reached.

        An unreachable registry is logged and recorded in :attr:`registry_status`; the service
        keeps the model it holds.
        """
        if self.registry is None:
            return None
        try:
            champion = self.registry.champion_info()
        except Exception as exc:  # any failure to reach MLflow: keep serving
            self.registry_status = RegistryStatus(False, time.time(), str(exc)[:200])
            logger.warning("model registry unreachable; serving the model held")
            return None
        self.registry_status = RegistryStatus(True, time.time(), None)
        return champion

    def refresh(self, *, force: bool = False) -> bool:
        """Reload the champion and the snapshot when they changed.

        Parameters
        ----------
        force : bool, default=False
            Rebuild the snapshot even if no store file changed.

        Returns
        -------
        bool
            Whether anything was replaced. A failure (registry down, store busy) keeps what
            the service holds and is logged; it never raises.
        """
        if not self._refresh_lock.acquire(blocking=False):
            return False  # a refresh is already running
        try:
            bundle, champion = self.bundle, self.champion
            named = self.check_registry()
            if named is not None and named.version != champion.version:
                try:
                    assert self.registry is not None
                    champion, bundle = named, self.registry.load_bundle(named.version)
                except Exception:
                    logger.exception("new champion could not be loaded; keeping the one held")
                    bundle, champion = self.bundle, self.champion
            model_changed = champion.version != self.champion.version
            if not (force or model_changed or self.stores_changed()):
                return False
            try:
                snapshot = _snapshot(self.settings, bundle, self.policy, champion.version)
            except StoreError as exc:
                logger.warning("snapshot not refreshed: %s", exc.message)
                return False
            scorer = Scorer(bundle, self.policy, snapshot, self.texts)
            # Swapped together: a request reads one consistent (bundle, snapshot, scorer).
            self.bundle, self.champion, self.snapshot, self.scorer = (
                bundle,
                champion,
                snapshot,
                scorer,
            )
            self._model_card = None
            settle_heap()
            logger.info(
                "service state refreshed",
                extra={"model_version": champion.version, "children": len(snapshot.frame)},
            )
            return True
        finally:
            self._refresh_lock.release()

    # -- model card --------------------------------------------------------------------------

    def model_card(self) -> dict[str, Any] | None:
        """The champion's model card (markdown and HTML), read once from the registry.

        Returns ``None`` when the registry cannot give it (unreachable, or no card logged).
        """
        if self._model_card is not None:
            return self._model_card
        if self.registry is None:
            return None
        try:
            card = self.registry.model_card(self.champion.version)
        except Exception:  # unreachable registry or a version without a card
            logger.warning("model card unavailable for version %s", self.champion.version)
            return None
        self._model_card = {"markdown": card.markdown, "html": card.html}
        return self._model_card


def settle_heap() -> None:
    """Collect garbage once, then keep what survives out of later collections (``gc.freeze``).

    The state holds hundreds of thousands of long-lived Python objects (the watch-list board,
    tier states, the records index). A full collection walks all of them and held the GIL
    for 0.1-0.4 s, a pause every request in flight would wait for; frozen, they are skipped.
    Called after the state is loaded or replaced (the objects of a replaced snapshot are
    unfrozen and collected first, so nothing of it is kept).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _snapshot(
    settings: Settings, bundle: ModelBundle, policy: TierPolicy, version: int
) -> Snapshot:
    return build_snapshot(
        bundle,
        policy,
        model_version=version,
        store_path=settings.store_path,
        scores_db=settings.scores_db_path,
        threads=settings.store.threads,
        memory_limit=settings.store.memory_limit,
    )


__all__ = ["RegistryStatus", "ServiceState", "load_champion", "registry_for", "settle_heap"]
