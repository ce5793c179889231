"""Table of the unit roster board: out-of-service reasons, welfare check-ins, move-up covers.

One row per unit (migration ``0009_board``), written by :mod:`citywatch.dispatch.board`.  Each
value is tied to the unit's status change it belongs to: a reason or a check-in is read only
while it is not older than the unit's ``status_at`` (a later status change makes it lapse), so
no other code path needs to clear it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citywatch.store.base import Base, UTCDateTime

__all__ = ["UnitBoard"]


class UnitBoard(Base):
    """What the roster board knows of a unit beyond its status."""

    __tablename__ = "unit_board"

    unit_id: Mapped[str] = mapped_column(
        ForeignKey("units.id", ondelete="CASCADE"), primary_key=True
    )
    #: Why the unit is out of service (a code of ``citywatch.dispatch.board.OutOfService``).
    oos_reason: Mapped[str | None] = mapped_column(String(32))
    oos_note: Mapped[str | None] = mapped_column(Text)
    oos_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The last welfare check-in (restarts the unit's status timer).
    checkin_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checkin_by: Mapped[str | None] = mapped_column(String(64))
    #: Station the unit was moved up to cover, and when (lapses at its next status change).
    cover_station: Mapped[str | None] = mapped_column(String(32))
    cover_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
