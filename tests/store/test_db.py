"""Engines, migrations and the UTC date-time type on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text

from citywatch.errors import DataError
from citywatch.store.base import Base
from citywatch.store.db import (
    alembic_config,
    current_revision,
    make_engine,
    session_scope,
    upgrade,
)
from citywatch.store.models import ImportBatch

OWN_TABLES = {"incidents", "import_batches"}


def test_default_engine_is_embedded_sqlite_in_wal_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYWATCH_HOME", str(tmp_path / "var"))
    monkeypatch.delenv("CITYWATCH_DB", raising=False)
    engine = make_engine(None)
    assert engine.dialect.name == "sqlite"
    assert Path(engine.url.database or "") == tmp_path / "var" / "citywatch.db"
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    assert (tmp_path / "var" / "citywatch.db").exists()
    engine.dispose()


def test_env_var_selects_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("CITYWATCH_DB", url)
    assert make_engine(None).url.database == str(tmp_path / "other.db")


def test_postgresql_urls_select_psycopg_3() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:5432/test")  # no connection yet
    assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")


def test_bad_urls_are_data_errors() -> None:
    with pytest.raises(DataError, match="not a database URL"):
        make_engine("no such thing")
    with pytest.raises(DataError, match="unsupported database URL"):
        make_engine("oracle+nodriver://x/y")


def test_migration_creates_exactly_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    upgrade(engine)
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert current_revision(engine) == head
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= OWN_TABLES
        # only the incident tables are compared: the other tables belong to other migrations
        context = MigrationContext.configure(conn, opts={"include_object": _ours})
        assert compare_metadata(context, Base.metadata) == []
    upgrade(engine)  # idempotent
    engine.dispose()


def _ours(obj: Any, name: str | None, kind: str, _reflected: bool, _other: Any) -> bool:
    table = name if kind == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table in OWN_TABLES


def test_utc_datetime_round_trip_keeps_the_instant(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine, "0001_incidents")
    new_york = timezone(timedelta(hours=-5))
    started = datetime(2018, 12, 31, 23, 59, 59, 123456, tzinfo=new_york)
    with session_scope(engine) as session:
        batch = ImportBatch(
            source="code",
            file_name="x.csv",
            file_sha256="0" * 64,
            started_at=started,
            rows_read=1,
            rows_imported=1,
            rows_already_present=0,
            rows_merged=0,
            rows_rejected=0,
            rejected_by_reason={"bad_coordinates": 0},
        )
        session.add(batch)
    with session_scope(engine) as session:
        back = session.execute(select(ImportBatch)).scalar_one()
    assert back.started_at == started
    assert back.started_at.tzinfo is not None
    assert back.started_at.utcoffset() == timedelta(0)
    assert back.started_at == datetime(2019, 1, 1, 4, 59, 59, 123456, tzinfo=UTC)
    assert back.rejected_by_reason == {"bad_coordinates": 0}
    engine.dispose()


def test_naive_datetimes_are_refused(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with pytest.raises(Exception, match="naive datetime"), session_scope(engine) as session:
        session.add(
            ImportBatch(
                source="code",
                file_name="x.csv",
                file_sha256="0" * 64,
                started_at=datetime(2020, 1, 1),
                rows_read=0,
                rows_imported=0,
                rows_already_present=0,
                rows_merged=0,
                rows_rejected=0,
                rejected_by_reason={},
            )
        )
    engine.dispose()
