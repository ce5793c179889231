"""Tables of the dispatcher's console: incident numbers, caller records, notes, merges, cautions.

* ``incident_counters``: one row per city pack and year; the next incident number is taken by
  one ``INSERT ... ON CONFLICT DO UPDATE SET last = last + 1 RETURNING last`` (atomic on
  PostgreSQL and SQLite alike: concurrent calls never get the same number).
* ``incident_console``: per live incident its human-readable number (``MAN-2026-000123``), the
  address typed at intake, and the incident it was merged into (EIDO ``REPLACED``).
* ``caller_records``: every call that reported the incident (a merge moves the duplicate's
  callers to the kept incident and keeps where each came from).
* ``incident_notes``: notes appended by dispatchers and units, with author and time.
* ``location_cautions``: caution notes on places (EIDO ``caution``: type, severity, expiry).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citywatch.store.base import Base, UTCDateTime

__all__ = [
    "CallerRecord",
    "IncidentConsole",
    "IncidentCounter",
    "IncidentNote",
    "LocationCaution",
]


class IncidentCounter(Base):
    """The last incident number issued for one city pack in one (local) year."""

    __tablename__ = "incident_counters"

    pack: Mapped[str] = mapped_column(String(200), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer)


class IncidentConsole(Base):
    """Console data of a live incident: number, typed address, merge."""

    __tablename__ = "incident_console"

    incident_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[str] = mapped_column(String(40), unique=True)
    location_text: Mapped[str | None] = mapped_column(Text)
    #: The incident this one was merged into (it is then REPLACED by it).
    merged_into: Mapped[str | None] = mapped_column(String(255), index=True)
    merged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    merged_by: Mapped[str | None] = mapped_column(String(64))


class CallerRecord(Base):
    """One call about an incident."""

    __tablename__ = "caller_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    #: The incident the call first created (differs from ``incident_id`` after a merge).
    original_incident_id: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    taken_by: Mapped[str] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text)
    location_text: Mapped[str | None] = mapped_column(Text)
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)


class IncidentNote(Base):
    """A note appended to an incident."""

    __tablename__ = "incident_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    author: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)


class LocationCaution(Base):
    """A caution note on a place: within ``radius_m`` of the point, until ``expires_at``."""

    __tablename__ = "location_cautions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pack: Mapped[str] = mapped_column(String(200))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    radius_m: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    station: Mapped[str | None] = mapped_column(String(64))
    bureau: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_location_cautions_pack_lat", "pack", "lat"),)
