"""One declarative base, the engine factory and the session factory of the operational database.

SQLite (the default, ``sqlite:///$SHOUHU_HOME/service.db``) is opened in WAL mode with foreign
keys on, so readers never wait for the one writer and an audit insert does not block a page
read; PostgreSQL is used by URL (``SHOUHU_SERVICE__DATABASE_URL=postgresql+psycopg://…``).
Nothing here reads settings: the app factory and the CLI pass the URL in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers and the writer do not block each other. NORMAL sync is durable in WAL mode
    # across application crashes (not power loss of the last commit), and keeps an audit insert
    # at a fraction of a millisecond instead of an fsync per request.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create the engine of the operational database.

    Parameters
    ----------
    url : str
        SQLAlchemy URL: ``sqlite:///path/service.db`` (WAL, foreign keys, a 5 s busy timeout;
        the folder is created) or ``postgresql+psycopg://…``.
    echo : bool, default=False
        Log every statement (debugging only: statements carry pseudonymous ids, never names).

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
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


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
    "Base",
    "UTCDateTime",
    "make_engine",
    "make_session_factory",
    "session_scope",
    "utcnow",
]
