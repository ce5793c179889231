"""Persistence: SQLAlchemy models, Alembic migrations, engines for SQLite and PostgreSQL.

Model modules derive from :class:`citywatch.store.base.Base`; ``make_engine(None)`` is the
embedded SQLite database ``var/citywatch.db`` (WAL); ``upgrade`` runs the migrations.
"""

from citywatch.store.base import Base, UTCDateTime
from citywatch.store.db import make_engine, session_scope, upgrade
from citywatch.store.incidents import insert_incidents, load_incidents_frame

__all__ = [
    "Base",
    "UTCDateTime",
    "insert_incidents",
    "load_incidents_frame",
    "make_engine",
    "session_scope",
    "upgrade",
]
