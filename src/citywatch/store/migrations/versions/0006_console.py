"""Dispatcher's console: incident numbers, caller records, notes, merges, location cautions.

Revision ID: 0006_console
Revises: 0005_sensors
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from citywatch.store.base import UTCDateTime

revision = "0006_console"
down_revision = "0005_sensors"
branch_labels = None
depends_on = None


def _incident_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["incident_id"],
        ["incidents.id"],
        name=op.f(f"fk_{table}_incident_id_incidents"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    """Create the console tables."""
    op.create_table(
        "incident_counters",
        sa.Column("pack", sa.String(200), nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("pack", "year", name=op.f("pk_incident_counters")),
    )
    op.create_table(
        "incident_console",
        sa.Column("incident_id", sa.String(255), nullable=False),
        sa.Column("number", sa.String(40), nullable=False),
        sa.Column("location_text", sa.Text(), nullable=True),
        sa.Column("merged_into", sa.String(255), nullable=True),
        sa.Column("merged_at", UTCDateTime(), nullable=True),
        sa.Column("merged_by", sa.String(64), nullable=True),
        _incident_fk("incident_console"),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_incident_console")),
        sa.UniqueConstraint("number", name=op.f("uq_incident_console_number")),
    )
    op.create_index(op.f("ix_incident_console_merged_into"), "incident_console", ["merged_into"])
    op.create_table(
        "caller_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.String(255), nullable=False),
        sa.Column("original_incident_id", sa.String(255), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("taken_by", sa.String(64), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("location_text", sa.Text(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        _incident_fk("caller_records"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_caller_records")),
    )
    op.create_index(op.f("ix_caller_records_incident_id"), "caller_records", ["incident_id"])
    op.create_table(
        "incident_notes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.String(255), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        _incident_fk("incident_notes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_notes")),
    )
    op.create_index(op.f("ix_incident_notes_incident_id"), "incident_notes", ["incident_id"])
    op.create_table(
        "location_cautions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pack", sa.String(200), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("radius_m", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("station", sa.String(64), nullable=True),
        sa.Column("bureau", sa.String(64), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_location_cautions")),
    )
    op.create_index("ix_location_cautions_pack_lat", "location_cautions", ["pack", "lat"])


def downgrade() -> None:
    """Drop the console tables."""
    op.drop_index("ix_location_cautions_pack_lat", table_name="location_cautions")
    op.drop_table("location_cautions")
    op.drop_index(op.f("ix_incident_notes_incident_id"), table_name="incident_notes")
    op.drop_table("incident_notes")
    op.drop_index(op.f("ix_caller_records_incident_id"), table_name="caller_records")
    op.drop_table("caller_records")
    op.drop_index(op.f("ix_incident_console_merged_into"), table_name="incident_console")
    op.drop_table("incident_console")
    op.drop_table("incident_counters")
