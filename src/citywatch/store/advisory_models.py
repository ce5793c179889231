"""SQLAlchemy models of near-repeat tables and advisories (migration ``0010_advisories``).

``near_repeat_tables`` is append-only: every nightly refresh adds one row per city pack and
category with its evidence (the Knox table, its p-values, the date range), so that an advisory
always points at the table it was drawn from.  ``advisories`` holds the near-repeat windows
flagged when a live incident of an enabled category is recorded (see
:mod:`citywatch.analytics.advisories`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from citywatch.store.base import Base, UTCDateTime

__all__ = ["AdvisoryRow", "NearRepeatTableRow"]


class NearRepeatTableRow(Base):
    """One near-repeat Knox table of a pack's incidents of one category (append-only)."""

    __tablename__ = "near_repeat_tables"
    __table_args__ = (Index("ix_near_repeat_tables_latest", "pack", "category", "computed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pack: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64))
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    computed_by: Mapped[str] = mapped_column(String(64))
    first_day: Mapped[date | None] = mapped_column(Date)
    last_day: Mapped[date | None] = mapped_column(Date)
    events: Mapped[int] = mapped_column(Integer)
    #: ``NearRepeatResult.as_dict()``: rows, columns, observed, expected, knox_ratio, p_value ...
    table: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The window drawn from the table (``NearRepeatWindow.as_dict()`` and its kind), or null.
    window: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Why there is no table (too few events), when ``table`` is null.
    note: Mapped[str | None] = mapped_column(String(500))


class AdvisoryRow(Base):
    """A near-repeat window flagged around a live incident, with the table it came from."""

    __tablename__ = "advisories"
    __table_args__ = (
        Index("ix_advisories_expires_at", "expires_at"),
        Index("ix_advisories_station", "station"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), unique=True)
    table_id: Mapped[int] = mapped_column(ForeignKey("near_repeat_tables.id"))
    pack: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    radius_m: Mapped[float] = mapped_column(Float)
    days: Mapped[int] = mapped_column(Integer)
    bureau: Mapped[str | None] = mapped_column(String(64))
    station: Mapped[str | None] = mapped_column(String(64))
    zone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Earlier incidents of the category inside the window (id, metres, days before).
    linked: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
