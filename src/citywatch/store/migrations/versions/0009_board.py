"""Unit roster board: out-of-service reasons, welfare check-ins, move-up covers.

Revision ID: 0009_board
Revises: 0005_sensors
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from citywatch.store.base import UTCDateTime

revision = "0009_board"
down_revision = "0008_ebikes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``unit_board``."""
    op.create_table(
        "unit_board",
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("oos_reason", sa.String(32), nullable=True),
        sa.Column("oos_note", sa.Text(), nullable=True),
        sa.Column("oos_at", UTCDateTime(), nullable=True),
        sa.Column("checkin_at", UTCDateTime(), nullable=True),
        sa.Column("checkin_by", sa.String(64), nullable=True),
        sa.Column("cover_station", sa.String(32), nullable=True),
        sa.Column("cover_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["units.id"],
            name=op.f("fk_unit_board_unit_id_units"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("unit_id", name=op.f("pk_unit_board")),
    )


def downgrade() -> None:
    """Drop ``unit_board``."""
    op.drop_table("unit_board")
