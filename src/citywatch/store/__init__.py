"""Persistence infrastructure: SQLAlchemy models, Alembic migrations, engines for SQLite and
PostgreSQL.

Model modules derive from :class:`citywatch.store.base.Base`; ``make_engine(None)`` is the
embedded SQLite database ``var/citywatch.db`` (WAL); ``upgrade`` runs the migrations.  The store
knows no domain rules: each room reads and writes its own tables (incidents:
:mod:`citywatch.incidents.storage`).
"""

from citywatch.store.base import Base, UTCDateTime
from citywatch.store.db import make_engine, session_scope, upgrade

__all__ = [
    "Base",
    "UTCDateTime",
    "make_engine",
    "session_scope",
    "upgrade",
]
