"""Engines, migrations and sessions for SQLite (embedded, the default) and PostgreSQL.

The same code runs on both: models use portable types only, and dialect differences are
confined to the bulk insert (``ON CONFLICT DO NOTHING`` constructs) in
:mod:`citywatch.incidents.storage`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from citywatch.errors import DataError
from citywatch.paths import default_db_path

__all__ = [
    "ENV_VAR",
    "alembic_config",
    "current_revision",
    "engine_scope",
    "libpq_url",
    "make_engine",
    "session_factory",
    "session_scope",
    "upgrade",
    "writing",
]

#: Environment variable holding a database URL that replaces the default.
ENV_VAR: Final = "CITYWATCH_DB"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the dashboard read while an import writes; NORMAL sync is safe with WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(
    url: str | None = None, *, echo: bool = False, pool_size: int | None = None
) -> Engine:
    """Create an engine for ``url``.

    Parameters
    ----------
    url
        A SQLAlchemy URL (``sqlite:///path.db``, ``postgresql+psycopg://user@host/db``, or
        ``postgresql://...`` which selects psycopg 3). ``None`` uses ``$CITYWATCH_DB`` if set,
        else the embedded SQLite file :func:`citywatch.paths.default_db_path` (``var/citywatch.db``
        in a checkout; its folder is created).
    echo
        Log SQL statements.
    pool_size
        Connections kept open (PostgreSQL; as many again may be opened in bursts); the
        SQLAlchemy default (5) when not given.

    Returns
    -------
    sqlalchemy.Engine
        For SQLite files: WAL journal, foreign keys on, 30 s busy timeout.

    Raises
    ------
    DataError
        If the URL is malformed or names a database driver that is not installed.
    """
    if url is None:
        url = os.environ.get(ENV_VAR) or None
    if url is None:
        path = default_db_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DataError(f"not a database URL: {url!r}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    pool: dict[str, int] = {}
    if pool_size is not None and parsed.drivername.startswith("postgresql"):
        pool = {"pool_size": pool_size, "max_overflow": pool_size}
    try:
        engine = create_engine(parsed, echo=echo, **pool)
    except (NoSuchModuleError, ImportError) as exc:
        raise DataError(f"unsupported database URL {url!r}: {exc}") from None
    if engine.dialect.name == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def libpq_url(engine: Engine) -> str:
    """The PostgreSQL engine's URL as psycopg connects with it directly (its own ``LISTEN``
    and writer connections, outside the pool), password included."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def engine_scope(engine_or_url: Engine | str | None) -> Iterator[Engine]:
    """An engine for the block: the given one, or one made from the URL and disposed after."""
    if isinstance(engine_or_url, Engine):
        yield engine_or_url
        return
    engine = make_engine(engine_or_url)
    try:
        yield engine
    finally:
        engine.dispose()


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration that runs this package's migrations on ``engine``."""
    config = Config()
    config.set_main_option("script_location", "citywatch.store:migrations")
    config.attributes["engine"] = engine
    return config


def upgrade(engine_or_url: Engine | str | None = None, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: the newest), creating it if needed.

    Raises
    ------
    DataError
        If the database cannot be reached.
    """
    with engine_scope(engine_or_url) as engine:
        try:
            command.upgrade(alembic_config(engine), revision)
        except OperationalError as exc:
            raise DataError(f"cannot migrate {engine.url!r}: {exc.orig}") from None


def current_revision(engine_or_url: Engine | str | None = None) -> str | None:
    """The Alembic revision the database is at (``None`` for a database never migrated)."""
    with engine_scope(engine_or_url) as engine, engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return MigrationContext.configure(conn).get_current_revision()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine`` (objects stay usable after commit)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def writing(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A writing transaction of ``sessions``: commits when the block ends, rolls back if it
    raises.  On SQLite it takes the database's write lock at once (``BEGIN IMMEDIATE``):
    Python's driver otherwise begins a transaction only at its first write, so what the block
    read before (the audit chain's head) may be stale by then, and two appenders would take
    the same sequence number (seen: the hourly sightings purge against the per-second seal
    of the AVL fixes)."""
    with sessions.begin() as session:
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("BEGIN IMMEDIATE"))
        yield session


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A writing session (:func:`writing`) of ``engine``."""
    with writing(session_factory(engine)) as session:
        yield session
