"""What was stolen in a theft incident: make and colour per item.

Revision ID: 0011_theft_descriptions
Revises: 0010_advisories
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_theft_descriptions"
down_revision = "0010_advisories"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``theft_descriptions``."""
    op.create_table(
        "theft_descriptions",
        sa.Column("incident_id", sa.String(255), nullable=False),
        sa.Column("item", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(32), nullable=True),
        sa.Column("make", sa.String(64), nullable=True),
        sa.Column("colour", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_theft_descriptions_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", "item", name=op.f("pk_theft_descriptions")),
    )


def downgrade() -> None:
    """Drop ``theft_descriptions``."""
    op.drop_table("theft_descriptions")
