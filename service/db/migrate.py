"""Bring the operational database to the newest migration (service start, ``shouhu users``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

#: The Alembic script folder inside the package (no alembic.ini needed).
SCRIPT_LOCATION = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic configuration for ``url`` pointing at the package's migrations.

    Parameters
    ----------
    url : str
        SQLAlchemy URL of the operational database.

    Returns
    -------
    alembic.config.Config
        Usable with ``alembic.command`` (``upgrade``, ``downgrade``, ``revision``).
    """
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    # ConfigParser interpolates '%': a password with one would break the URL otherwise.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision of the package's migrations."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {SCRIPT_LOCATION}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` before the first migration)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Apply every pending migration to the database behind ``engine``.

    Parameters
    ----------
    engine : Engine
        From :func:`service.db.base.make_engine`.

    Returns
    -------
    str
        The revision the database is at afterwards (the head).
    """
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    revision = current_revision(engine)
    logger.info("operational database at revision %s", revision)
    return revision or ""


@contextmanager
def migrated_session(url: str) -> Iterator[Session]:
    """A session on the database at ``url``, migrated first; committed on success.

    What command-line jobs (``shouhu users``, ``shouhu review``, the demo) use; the service
    itself keeps one engine for its lifetime.

    Parameters
    ----------
    url : str
        SQLAlchemy URL of the operational database.

    Yields
    ------
    Session
        Committed when the block ends without an error, rolled back otherwise.
    """
    from service.db.base import make_engine, make_session_factory, session_scope

    engine = make_engine(url)
    try:
        upgrade(engine)
        with session_scope(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


__all__ = [
    "SCRIPT_LOCATION",
    "alembic_config",
    "current_revision",
    "head_revision",
    "migrated_session",
    "upgrade",
]
