"""Incidents and import batches.

Revision ID: 0001_incidents
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from citywatch.store.base import UTCDateTime

revision = "0001_incidents"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``import_batches`` and ``incidents``."""
    op.create_table(
        "import_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("pack", sa.String(200), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rows_imported", sa.Integer(), nullable=False),
        sa.Column("rows_already_present", sa.Integer(), nullable=False),
        sa.Column("rows_merged", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("rejected_by_reason", sa.JSON(), nullable=False),
        sa.Column("rejected_path", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_batches")),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(200), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("time_precision", sa.String(8), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("bureau", sa.String(64), nullable=True),
        sa.Column("station", sa.String(64), nullable=True),
        sa.Column("zone", sa.String(64), nullable=True),
        sa.Column("dispatched_at", UTCDateTime(), nullable=True),
        sa.Column("arrived_at", UTCDateTime(), nullable=True),
        sa.Column("cleared_at", UTCDateTime(), nullable=True),
        sa.Column("disposition", sa.Text(), nullable=True),
        sa.Column("solved", sa.Boolean(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "time_precision IN ('exact', 'day', 'month')",
            name=op.f("ck_incidents_time_precision"),
        ),
        sa.CheckConstraint("priority BETWEEN 1 AND 5", name=op.f("ck_incidents_priority")),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["import_batches.id"],
            name=op.f("fk_incidents_batch_id_import_batches"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_incidents_source_source_id")),
    )
    op.create_index("ix_incidents_received_at", "incidents", ["received_at"])
    op.create_index("ix_incidents_category_received_at", "incidents", ["category", "received_at"])
    op.create_index("ix_incidents_station", "incidents", ["station"])
    op.create_index("ix_incidents_batch_id", "incidents", ["batch_id"])


def downgrade() -> None:
    """Drop ``incidents`` and ``import_batches``."""
    op.drop_index("ix_incidents_batch_id", table_name="incidents")
    op.drop_index("ix_incidents_station", table_name="incidents")
    op.drop_index("ix_incidents_category_received_at", table_name="incidents")
    op.drop_index("ix_incidents_received_at", table_name="incidents")
    op.drop_table("incidents")
    op.drop_table("import_batches")
