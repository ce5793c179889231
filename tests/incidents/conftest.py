"""Database fixtures (see :mod:`tests.store.databases`)."""

from tests.store.databases import db_url, pg_url, sqlite_url

__all__ = ["db_url", "pg_url", "sqlite_url"]
