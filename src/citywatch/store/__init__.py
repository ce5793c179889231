"""Persistence: SQLAlchemy models, Alembic migrations, engines for SQLite and PostgreSQL."""
