"""E-bike registry: registered e-bikes (tag keys, minimal owner data) and their theft reports.

Revision ID: 0008_ebikes
Revises: 0007_sightings
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from citywatch.store.base import UTCDateTime

revision = "0008_ebikes"
# Written against 0005_sensors; chained after 0007_sightings on this branch, which merged
# the hotlists (`sight`) that a theft report writes to.
down_revision = "0007_sightings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``ebikes`` and ``ebike_theft_reports``."""
    op.create_table(
        "ebikes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pack", sa.String(200), nullable=False),
        sa.Column("tag_key", sa.String(64), nullable=False),
        sa.Column("tag_hint", sa.String(8), nullable=False),
        sa.Column("make", sa.String(64), nullable=True),
        sa.Column("colour", sa.String(32), nullable=True),
        sa.Column("contact", sa.String(120), nullable=True),
        sa.Column("bureau", sa.String(64), nullable=True),
        sa.Column("station", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("registered_by", sa.String(64), nullable=False),
        sa.Column("registered_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("status IN ('registered', 'stolen')", name=op.f("ck_ebikes_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ebikes")),
        sa.UniqueConstraint("pack", "tag_key", name=op.f("uq_ebikes_pack_tag_key")),
    )
    op.create_index("ix_ebikes_pack_station", "ebikes", ["pack", "station"])
    op.create_table(
        "ebike_theft_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pack", sa.String(200), nullable=False),
        sa.Column("ebike_id", sa.Integer(), nullable=True),
        sa.Column("tag_hint", sa.String(8), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("reported_at", UTCDateTime(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("bureau", sa.String(64), nullable=True),
        sa.Column("station", sa.String(64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("incident_id", sa.String(200), nullable=False),
        sa.Column("hotlist_entry_id", sa.Integer(), nullable=True),
        sa.Column("reported_by", sa.String(64), nullable=False),
        sa.Column("recovered_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'recovered')", name=op.f("ck_ebike_theft_reports_status")
        ),
        sa.ForeignKeyConstraint(
            ["ebike_id"],
            ["ebikes.id"],
            name=op.f("fk_ebike_theft_reports_ebike_id_ebikes"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ebike_theft_reports")),
    )
    op.create_index(
        "ix_ebike_theft_reports_pack_station", "ebike_theft_reports", ["pack", "station"]
    )


def downgrade() -> None:
    """Drop the e-bike registry tables."""
    op.drop_index("ix_ebike_theft_reports_pack_station", table_name="ebike_theft_reports")
    op.drop_table("ebike_theft_reports")
    op.drop_index("ix_ebikes_pack_station", table_name="ebikes")
    op.drop_table("ebikes")
