"""Alembic environment: runs CityWatch migrations on the engine that ``upgrade`` passes in.

Every ``*models`` module of :mod:`citywatch.store` is imported, so ``Base.metadata`` holds all
tables (incidents, dispatch, ...) for autogenerate.
"""

from __future__ import annotations

import importlib
import pkgutil

from alembic import context

import citywatch.store
from citywatch.store.base import Base
from citywatch.store.db import make_engine

for _module in pkgutil.iter_modules(citywatch.store.__path__):
    if _module.name.endswith("models"):
        importlib.import_module(f"citywatch.store.{_module.name}")

target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run the migrations in one transaction on the configured engine."""
    engine = context.config.attributes.get("engine") or make_engine(
        context.config.get_main_option("sqlalchemy.url")
    )
    with engine.connect() as connection:
        # batch mode: SQLite cannot ALTER most things; Alembic rebuilds the table instead
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("CityWatch migrations run online only (citywatch.store.db.upgrade)")
run_migrations_online()
