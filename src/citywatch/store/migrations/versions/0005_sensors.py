"""Sensor registry: cameras and readers per city pack, with their status history.

Revision ID: 0005_sensors
Revises: 0004_live_core
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from citywatch.store.base import UTCDateTime

revision = "0005_sensors"
down_revision = "0004_live_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``sensors`` and ``sensor_status_history``."""
    op.create_table(
        "sensors",
        sa.Column("pack", sa.String(200), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("owner", sa.String(32), nullable=False),
        sa.Column("direction_deg", sa.Float(), nullable=True),
        sa.Column("fov_deg", sa.Float(), nullable=True),
        sa.Column("range_m", sa.Float(), nullable=True),
        sa.Column("power_off", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("snap_lon", sa.Float(), nullable=True),
        sa.Column("snap_lat", sa.Float(), nullable=True),
        sa.Column("snap_m", sa.Float(), nullable=True),
        sa.Column("bureau", sa.String(64), nullable=True),
        sa.Column("station", sa.String(64), nullable=True),
        sa.Column("zone", sa.String(64), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('fixed_camera', 'ptz', 'plate_reader', 'ebike_tag_reader')",
            name=op.f("ck_sensors_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('online', 'offline', 'maintenance')", name=op.f("ck_sensors_status")
        ),
        sa.PrimaryKeyConstraint("pack", "id", name=op.f("pk_sensors")),
    )
    op.create_index("ix_sensors_pack_station", "sensors", ["pack", "station"])
    op.create_table(
        "sensor_status_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pack", sa.String(200), nullable=False),
        sa.Column("sensor_id", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["pack", "sensor_id"],
            ["sensors.pack", "sensors.id"],
            name=op.f("fk_sensor_status_history_pack_sensors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensor_status_history")),
    )
    op.create_index(
        "ix_sensor_status_history_sensor", "sensor_status_history", ["pack", "sensor_id", "at"]
    )


def downgrade() -> None:
    """Drop the sensor tables."""
    op.drop_index("ix_sensor_status_history_sensor", table_name="sensor_status_history")
    op.drop_table("sensor_status_history")
    op.drop_index("ix_sensors_pack_station", table_name="sensors")
    op.drop_table("sensors")
