"""Sightings, hotlists and alerts (issue 14 §3).

Revision ID: 0007_sightings
Revises: 0005_sensors
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from citywatch.domain import (
    ALERT_KINDS,
    ALERT_STATUSES,
    HOTLIST_REASONS,
    PRIORITY_RANGE,
    SIGHTING_KINDS,
)
from citywatch.store.base import UTCDateTime

revision = "0007_sightings"
down_revision = "0005_sensors"
branch_labels = None
depends_on = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _in(column: str, values: tuple[str, ...]) -> str:
    return "{} IN ({})".format(column, ", ".join(f"'{v}'" for v in values))


def upgrade() -> None:
    """Create ``hotlists``, ``hotlist_entries``, ``sightings``, ``sighting_alerts`` and
    ``sighting_alert_recipients``."""
    op.create_table(
        "hotlists",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("read_roles", sa.JSON(), nullable=False),
        sa.Column("write_roles", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_hotlists")),
    )
    op.create_table(
        "hotlist_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("list_name", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value_key", sa.String(64), nullable=False),
        sa.Column("value", sa.String(128), nullable=True),
        sa.Column("hashed", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("case_ref", sa.String(100), nullable=True),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(_in("kind", SIGHTING_KINDS), name=op.f("ck_hotlist_entries_kind")),
        sa.CheckConstraint(_in("reason", HOTLIST_REASONS), name=op.f("ck_hotlist_entries_reason")),
        sa.CheckConstraint(
            "status IN ('active', 'withdrawn')", name=op.f("ck_hotlist_entries_status")
        ),
        sa.CheckConstraint(
            "priority BETWEEN {} AND {}".format(*PRIORITY_RANGE),
            name=op.f("ck_hotlist_entries_priority"),
        ),
        sa.ForeignKeyConstraint(
            ["list_name"], ["hotlists.name"], name=op.f("fk_hotlist_entries_list_name_hotlists")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hotlist_entries")),
    )
    op.create_index("ix_hotlist_entries_value_key", "hotlist_entries", ["value_key"])
    op.create_index("ix_hotlist_entries_list_status", "hotlist_entries", ["list_name", "status"])
    op.create_index(
        "uq_hotlist_entries_active_value",
        "hotlist_entries",
        ["list_name", "value_key"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "sightings",
        sa.Column("id", _BIGINT, autoincrement=True, nullable=False),
        sa.Column("pack", sa.String(200), nullable=False),
        sa.Column("sensor_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value_key", sa.String(64), nullable=False),
        sa.Column("value", sa.String(128), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("bureau", sa.String(64), nullable=True),
        sa.Column("station", sa.String(64), nullable=True),
        sa.Column("hit", sa.Boolean(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.CheckConstraint(_in("kind", SIGHTING_KINDS), name=op.f("ck_sightings_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sightings")),
    )
    op.create_index("ix_sightings_seen_at", "sightings", ["seen_at"])
    op.create_index("ix_sightings_value_key_seen_at", "sightings", ["value_key", "seen_at"])
    op.create_index(
        "ix_sightings_pack_station_seen_at", "sightings", ["pack", "station", "seen_at"]
    )
    op.create_index("ix_sightings_alert_id", "sightings", ["alert_id"])
    op.create_index("ix_sightings_entry_id_seen_at", "sightings", ["entry_id", "seen_at"])
    op.create_table(
        "sighting_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pack", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("list_name", sa.String(32), nullable=False),
        sa.Column("sighting_id", _BIGINT, nullable=False),
        sa.Column("last_sighting_id", _BIGINT, nullable=False),
        sa.Column("sightings", sa.Integer(), nullable=False),
        sa.Column("sensor_id", sa.String(64), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("bureau", sa.String(64), nullable=True),
        sa.Column("station", sa.String(64), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("recommended", sa.JSON(), nullable=False),
        sa.Column("incident_id", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
        sa.CheckConstraint(_in("kind", ALERT_KINDS), name=op.f("ck_sighting_alerts_kind")),
        sa.CheckConstraint(_in("status", ALERT_STATUSES), name=op.f("ck_sighting_alerts_status")),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["hotlist_entries.id"],
            name=op.f("fk_sighting_alerts_entry_id_hotlist_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sighting_alerts")),
    )
    op.create_index("ix_sighting_alerts_pack_created_at", "sighting_alerts", ["pack", "created_at"])
    op.create_index(
        "ix_sighting_alerts_entry_station", "sighting_alerts", ["entry_id", "station", "status"]
    )
    op.create_table(
        "sighting_alert_recipients",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("station", sa.String(64), nullable=False),
        sa.Column("bureau", sa.String(64), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["sighting_alerts.id"],
            name=op.f("fk_sighting_alert_recipients_alert_id_sighting_alerts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alert_id", "station", name=op.f("pk_sighting_alert_recipients")),
    )
    op.create_index(
        "ix_sighting_alert_recipients_station",
        "sighting_alert_recipients",
        ["station", "alert_id"],
    )


def downgrade() -> None:
    """Drop the sightings tables."""
    op.drop_index("ix_sighting_alert_recipients_station", table_name="sighting_alert_recipients")
    op.drop_table("sighting_alert_recipients")
    op.drop_index("ix_sighting_alerts_entry_station", table_name="sighting_alerts")
    op.drop_index("ix_sighting_alerts_pack_created_at", table_name="sighting_alerts")
    op.drop_table("sighting_alerts")
    for name in (
        "ix_sightings_entry_id_seen_at",
        "ix_sightings_alert_id",
        "ix_sightings_pack_station_seen_at",
        "ix_sightings_value_key_seen_at",
        "ix_sightings_seen_at",
    ):
        op.drop_index(name, table_name="sightings")
    op.drop_table("sightings")
    op.drop_index("uq_hotlist_entries_active_value", table_name="hotlist_entries")
    op.drop_index("ix_hotlist_entries_list_status", table_name="hotlist_entries")
    op.drop_index("ix_hotlist_entries_value_key", table_name="hotlist_entries")
    op.drop_table("hotlist_entries")
    op.drop_table("hotlists")
