"""Near-repeat tables per pack and category, and the advisories flagged from them.

Revision ID: 0010_advisories
Revises: 0005_sensors
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from citywatch.store.base import UTCDateTime

revision = "0010_advisories"
down_revision = "0009_board"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``near_repeat_tables`` and ``advisories``."""
    op.create_table(
        "near_repeat_tables",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pack", sa.String(200), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.Column("computed_by", sa.String(64), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=True),
        sa.Column("last_day", sa.Date(), nullable=True),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("table", sa.JSON(), nullable=True),
        sa.Column("window", sa.JSON(), nullable=True),
        sa.Column("note", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_near_repeat_tables")),
    )
    op.create_index(
        "ix_near_repeat_tables_latest", "near_repeat_tables", ["pack", "category", "computed_at"]
    )
    op.create_table(
        "advisories",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("incident_id", sa.String(255), nullable=False),
        sa.Column("table_id", sa.Integer(), nullable=False),
        sa.Column("pack", sa.String(200), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("radius_m", sa.Float(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("bureau", sa.String(64), nullable=True),
        sa.Column("station", sa.String(64), nullable=True),
        sa.Column("zone", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("linked", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_advisories_incident_id_incidents")
        ),
        sa.ForeignKeyConstraint(
            ["table_id"],
            ["near_repeat_tables.id"],
            name=op.f("fk_advisories_table_id_near_repeat_tables"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_advisories")),
        sa.UniqueConstraint("incident_id", name=op.f("uq_advisories_incident_id")),
    )
    op.create_index("ix_advisories_expires_at", "advisories", ["expires_at"])
    op.create_index("ix_advisories_station", "advisories", ["station"])


def downgrade() -> None:
    """Drop the advisory tables."""
    op.drop_index("ix_advisories_station", table_name="advisories")
    op.drop_index("ix_advisories_expires_at", table_name="advisories")
    op.drop_table("advisories")
    op.drop_index("ix_near_repeat_tables_latest", table_name="near_repeat_tables")
    op.drop_table("near_repeat_tables")
