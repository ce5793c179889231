"""Live core: keyed audit chain, AVL batches, partitioned history, lockout, token deny-list.

* ``audit_log.key_id`` (the HMAC key that signed a record); ``TRUNCATE`` refused on PostgreSQL;
  on SQLite an insert that would replace a record (``INSERT OR REPLACE``) is refused.
* ``position_batches``: one row per accepted set of AVL fixes with the digest of its fixes,
  sealed into the audit chain by ``positions.sealed`` records; ``unit_positions.batch_id``.
* PostgreSQL: ``unit_positions`` becomes a table partitioned by the fix time (daily partitions
  made ahead by the service, a default partition so that no fix is ever refused).
* ``users.failed_logins`` and ``users.locked_until`` (lockout); ``revoked_tokens`` (the ids of
  access tokens revoked at logout, shared by every worker).

Revision ID: 0004_live_core
Revises: 0003_refresh_tokens
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from citywatch.store.base import UTCDateTime

revision = "0004_live_core"
down_revision = "0003_refresh_tokens"
branch_labels = None
depends_on = None

_APPEND_ONLY = "audit_log is append-only"


def _partition_history() -> None:
    op.execute("ALTER TABLE unit_positions RENAME TO unit_positions_unpartitioned")
    op.execute(
        "ALTER TABLE unit_positions_unpartitioned "
        "RENAME CONSTRAINT pk_unit_positions TO pk_unit_positions_unpartitioned"
    )
    op.execute(
        "CREATE TABLE unit_positions ("
        " id BIGSERIAL NOT NULL, unit_id VARCHAR(64) NOT NULL, at TIMESTAMPTZ NOT NULL,"
        " lon DOUBLE PRECISION NOT NULL, lat DOUBLE PRECISION NOT NULL,"
        " received_at TIMESTAMPTZ NOT NULL, batch_id BIGINT,"
        " CONSTRAINT pk_unit_positions PRIMARY KEY (id, at)"
        ") PARTITION BY RANGE (at)"
    )
    op.execute("CREATE TABLE unit_positions_default PARTITION OF unit_positions DEFAULT")
    op.execute(
        "INSERT INTO unit_positions (id, unit_id, at, lon, lat, received_at)"
        " SELECT id, unit_id, at, lon, lat, received_at FROM unit_positions_unpartitioned"
    )
    op.execute(
        "SELECT setval(pg_get_serial_sequence('unit_positions', 'id'),"
        " (SELECT coalesce(max(id), 0) + 1 FROM unit_positions), false)"
    )
    op.execute("DROP TABLE unit_positions_unpartitioned")
    op.execute("CREATE INDEX ix_unit_positions_unit_at ON unit_positions (unit_id, at)")
    op.execute("CREATE INDEX ix_unit_positions_batch_id ON unit_positions (batch_id)")


def upgrade() -> None:
    """Add the tables, columns and triggers listed in the module docstring."""
    pg = op.get_bind().dialect.name == "postgresql"
    op.add_column("audit_log", sa.Column("key_id", sa.String(16), nullable=True))
    if pg:
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION citywatch_audit_append_only()"
        )
    else:
        # REPLACE deletes the conflicting row without firing DELETE triggers: refuse it first.
        op.execute(
            "CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log "
            "WHEN EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.seq OR hash = NEW.hash) "
            f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
        )
    op.create_table(
        "position_batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("fixes", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("first_at", UTCDateTime(), nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_position_batches")),
    )
    op.create_index("ix_position_batches_audit_seq", "position_batches", ["audit_seq"])
    if pg:
        _partition_history()
    else:
        op.add_column("unit_positions", sa.Column("batch_id", sa.Integer(), nullable=True))
        op.create_index("ix_unit_positions_batch_id", "unit_positions", ["batch_id"])
    op.add_column(
        "users",
        sa.Column("failed_logins", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("users", sa.Column("locked_until", UTCDateTime(), nullable=True))
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.String(32), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_revoked_tokens")),
    )
    op.create_index("ix_revoked_tokens_expires_at", "revoked_tokens", ["expires_at"])


def downgrade() -> None:
    """Back to 0003 (the history table stays partitioned on PostgreSQL; its batch ids go)."""
    pg = op.get_bind().dialect.name == "postgresql"
    op.drop_table("revoked_tokens")
    op.execute("ALTER TABLE users DROP COLUMN locked_until")
    op.execute("ALTER TABLE users DROP COLUMN failed_logins")
    op.execute("DROP INDEX ix_unit_positions_batch_id")
    op.execute("ALTER TABLE unit_positions DROP COLUMN batch_id")
    op.drop_table("position_batches")
    if pg:
        op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
    else:
        op.execute("DROP TRIGGER audit_log_no_replace")
    op.execute("ALTER TABLE audit_log DROP COLUMN key_id")
