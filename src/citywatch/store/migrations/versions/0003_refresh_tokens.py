"""Security follow-ups: refresh tokens, demo accounts marked, idempotency keys per user.

Revision ID: 0003_refresh_tokens
Revises: 0002_dispatch
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from citywatch.store.base import UTCDateTime

revision = "0003_refresh_tokens"
down_revision = "0002_dispatch"
branch_labels = None
depends_on = None

#: The accounts earlier versions of ``citywatch demo`` and ``serve --demo`` created.
_KNOWN_DEMO_USERS = ("demo", "demo-commander", "demo-dispatcher", "demo-officer", "demo-analyst")


def upgrade() -> None:
    """Add ``refresh_tokens`` and ``users.is_demo``; scope idempotency keys to their user."""
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("family", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_refresh_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
    )
    op.create_index("ix_refresh_tokens_user_id", "refresh_tokens", ["user_id"])
    op.create_index("ix_refresh_tokens_family", "refresh_tokens", ["family"])
    op.add_column(
        "users", sa.Column("is_demo", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    users = sa.table("users", sa.column("username", sa.String), sa.column("is_demo", sa.Boolean))
    op.execute(users.update().where(users.c.username.in_(_KNOWN_DEMO_USERS)).values(is_demo=True))
    with op.batch_alter_table("incident_dispatch") as batch:
        batch.drop_constraint("uq_incident_dispatch_idempotency_key", type_="unique")
        batch.create_unique_constraint(
            "uq_incident_dispatch_created_by_idempotency_key", ["created_by", "idempotency_key"]
        )


def downgrade() -> None:
    """Back to global idempotency keys (fails if two users have used one key), no refresh
    tokens, no demo flag."""
    with op.batch_alter_table("incident_dispatch") as batch:
        batch.drop_constraint("uq_incident_dispatch_created_by_idempotency_key", type_="unique")
        batch.create_unique_constraint("uq_incident_dispatch_idempotency_key", ["idempotency_key"])
    # Not a batch rebuild: on SQLite, dropping and recreating ``users`` would cascade-delete
    # every API token (foreign keys are on).  Both databases know DROP COLUMN (SQLite >= 3.35).
    op.execute("ALTER TABLE users DROP COLUMN is_demo")
    op.drop_table("refresh_tokens")
