"""Fixtures: the API servers of tests/api (SQLite and PostgreSQL) and a migrated database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from citywatch.store.db import make_engine, upgrade
from tests.api.conftest import db_url, manhattan, pytest_generate_tests, server
from tests.store.databases import pg_url, sqlite_url

__all__ = [
    "db_url",
    "engine",
    "manhattan",
    "pg_url",
    "pytest_generate_tests",
    "server",
    "sqlite_url",
]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A migrated database, on SQLite and on PostgreSQL (a fresh schema)."""
    url = str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))
    eng = make_engine(url)
    upgrade(eng)
    yield eng
    eng.dispose()
