"""One declarative base, the engine factory and the session factory of the operational database.

SQLite (the default, ``sqlite:///$SHOUHU_HOME/service.db``) is opened in WAL mode with foreign
keys on, so readers never wait for the one writer and an audit insert does not block a page
read; PostgreSQL is used by URL (``SHOUHU_SERVICE__DATABASE_URL=postgresql+psycopg://…``).
Nothing here reads settings: the app factory and the CLI pass the URL in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

logger = logging.getLogger(__name__)

#: WAL pages a connection of the service may leave before the commit that crosses the mark
#: checkpoints (SQLite's default is 1000). The service checkpoints from a background thread
#: (:class:`WalCheckpointer`) instead, so a request does not pay for copying the WAL into the
#: database file and its fsync; this high mark only bounds the WAL if that thread falls behind.
SERVICE_AUTOCHECKPOINT_PAGES = 20_000

#: Constraint names Alembic can rely on, identical on SQLite and PostgreSQL.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The one declarative base of every operational table (identity, audit, workflow)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite stores no zone, so values are normalised to UTC on the way in and marked UTC on the
    way out; comparing a stored time with ``datetime.now(UTC)`` then works everywhere.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware (UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time in UTC (timezone-aware)."""
    return datetime.now(UTC)


def _sqlite_pragmas(autocheckpoint: int | None) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL: readers and the writer do not block each other. NORMAL sync is durable in WAL
        # mode across application crashes (not power loss of the last commit), and keeps an
        # audit insert at a fraction of a millisecond instead of an fsync per request.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        if autocheckpoint is not None:
            cursor.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
        cursor.close()

    return on_connect


def make_engine(url: str, *, echo: bool = False, wal_autocheckpoint: int | None = None) -> Engine:
    """Create the engine of the operational database.

    Parameters
    ----------
    url : str
        SQLAlchemy URL: ``sqlite:///path/service.db`` (WAL, foreign keys, a 5 s busy timeout;
        the folder is created) or ``postgresql+psycopg://…``.
    echo : bool, default=False
        Log every statement (debugging only: statements carry pseudonymous ids, never names).
    wal_autocheckpoint : int, optional
        SQLite only: WAL pages after which a commit checkpoints (SQLite's 1000 by default).
        The service raises it to :data:`SERVICE_AUTOCHECKPOINT_PAGES` and runs a
        :class:`WalCheckpointer`.

    Returns
    -------
    Engine
        A pooled engine; share one per process.

    Examples
    --------
    >>> engine = make_engine("sqlite://")
    >>> engine.dialect.name
    'sqlite'
    """
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # FastAPI runs sync handlers in a thread pool: a connection may be used by another
        # thread than the one that opened it (never by two at once).
        kwargs["connect_args"] = {"check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(wal_autocheckpoint))
    return engine


def is_sqlite_file(engine: Engine) -> bool:
    """Whether ``engine`` is SQLite on a file (not in memory): WAL and checkpoints apply."""
    if engine.dialect.name != "sqlite":
        return False
    database = engine.url.database or ""
    return database not in ("", ":memory:") and "mode=memory" not in database


class WalCheckpointer:
    """Checkpoint a SQLite WAL from a background thread, off the request path.

    With SQLite's default, the commit that takes the WAL past 1000 pages copies it into the
    database file and fsyncs it, inside whatever request made that commit: with an audit row
    per child read, one request in a few dozen paid tens of milliseconds (more when the disk
    is busy). Here a daemon thread runs ``PRAGMA wal_checkpoint(PASSIVE)`` every ``interval``
    seconds instead; a passive checkpoint never blocks writers or readers, and the sqlite3
    module releases the GIL while it copies and syncs, so requests keep running. The engine's
    connections keep a high ``wal_autocheckpoint`` as a bound should the thread fall behind.

    Parameters
    ----------
    engine : Engine
        A SQLite engine on a file (see :func:`is_sqlite_file`).
    interval : float, default=0.5
        Seconds between checkpoints.
    """

    def __init__(self, engine: Engine, *, interval: float = 0.5) -> None:
        self.engine = engine
        self.interval = interval
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def checkpoint(self) -> tuple[int, int, int]:
        """Run one passive checkpoint now; returns SQLite's (busy, WAL frames, frames copied)."""
        with self.engine.connect() as connection:
            row = connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        self.checkpoints += 1
        return int(row[0]), int(row[1]), int(row[2])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.checkpoint()
            except Exception:  # a failed checkpoint is retried; the requests never see it
                logger.warning("WAL checkpoint failed; retrying", exc_info=True)

    def start(self) -> WalCheckpointer:
        """Start the thread (once); returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="shouhu-wal-checkpoint", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and checkpoint what is left (the WAL is small for the next start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        try:
            self.checkpoint()
        except Exception:  # stopping must not fail because the file is busy
            logger.warning("final WAL checkpoint failed", exc_info=True)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine``.

    Objects stay readable after commit (``expire_on_commit=False``), so a handler can commit
    the audit entry and still return the rows it read.
    """
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error (for CLI commands)."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


__all__ = [
    "NAMING_CONVENTION",
    "SERVICE_AUTOCHECKPOINT_PAGES",
    "Base",
    "UTCDateTime",
    "WalCheckpointer",
    "is_sqlite_file",
    "make_engine",
    "make_session_factory",
    "session_scope",
    "utcnow",
]
