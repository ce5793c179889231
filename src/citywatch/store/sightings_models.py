"""Tables of sightings, hotlists and their alerts (migration ``0007_sightings``).

A *sighting* is one read of an external recognition system (a plate reader, an e-bike tag
reader, a subject reference of a video analytics system) at a registered sensor.  CityWatch
stores the read's keyed hash (``value_key``) and only optionally the value itself; it never
stores images or biometrics.  A *hotlist* is a named list of references (stolen vehicles,
stolen e-bikes, wanted persons by external case reference, a station's watchlist), with the
roles that may read and change it; an *alert* is a hotlist hit routed to stations.

The domain words (kinds, reasons, statuses) are defined once in
:mod:`citywatch.surveillance.matching` and checked here by constraints built from the same
tuples.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from citywatch.domain import (
    ALERT_KINDS,
    ALERT_STATUSES,
    HOTLIST_REASONS,
    PRIORITY_RANGE,
    SIGHTING_KINDS,
)
from citywatch.store.base import Base, UTCDateTime

__all__ = [
    "AlertRecipientRow",
    "HotlistEntryRow",
    "HotlistRow",
    "SightingAlertRow",
    "SightingRow",
]

_BIGINT = BigInteger().with_variant(Integer(), "sqlite")


def _in(column: str, values: tuple[str, ...]) -> str:
    return "{} IN ({})".format(column, ", ".join(f"'{v}'" for v in values))


class HotlistRow(Base):
    """A named hotlist and the roles that may read and change it."""

    __tablename__ = "hotlists"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    read_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    write_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HotlistEntryRow(Base):
    """One reference on a hotlist: what to look for, why, on what legal basis, until when."""

    __tablename__ = "hotlist_entries"
    __table_args__ = (
        CheckConstraint(_in("kind", SIGHTING_KINDS), name="kind"),
        CheckConstraint(_in("reason", HOTLIST_REASONS), name="reason"),
        CheckConstraint("status IN ('active', 'withdrawn')", name="status"),
        CheckConstraint("priority BETWEEN {} AND {}".format(*PRIORITY_RANGE), name="priority"),
        Index("ix_hotlist_entries_value_key", "value_key"),
        Index("ix_hotlist_entries_list_status", "list_name", "status"),
        # One active entry per value on a list (a second theft report of the same tag is a
        # conflict, not a duplicate alert source).
        Index(
            "uq_hotlist_entries_active_value",
            "list_name",
            "value_key",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    list_name: Mapped[str] = mapped_column(ForeignKey("hotlists.name"))
    kind: Mapped[str] = mapped_column(String(16))
    #: Keyed hash (HMAC-SHA256, hex) of the normalised value: what sightings are matched on.
    value_key: Mapped[str] = mapped_column(String(64))
    #: The value as given (null when the service stores only hashes).
    value: Mapped[str | None] = mapped_column(String(128))
    #: Whether the value was given already hashed by the recognition system.
    hashed: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(32))
    #: External case reference (the record of the theft report or warrant).
    case_ref: Mapped[str | None] = mapped_column(String(100))
    #: Short description shown with an alert ("red Yadea e-bike"); no personal data.
    label: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(100))
    legal_basis: Mapped[str] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(SmallInteger)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    #: A made-up entry (the replay's seeded hotlist), never a real reference.
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SightingRow(Base):
    """One read of a recognition system at a sensor (non-hits are purged after retention)."""

    __tablename__ = "sightings"
    __table_args__ = (
        CheckConstraint(_in("kind", SIGHTING_KINDS), name="kind"),
        Index("ix_sightings_seen_at", "seen_at"),
        Index("ix_sightings_value_key_seen_at", "value_key", "seen_at"),
        Index("ix_sightings_pack_station_seen_at", "pack", "station", "seen_at"),
        Index("ix_sightings_alert_id", "alert_id"),
        Index("ix_sightings_entry_id_seen_at", "entry_id", "seen_at"),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    pack: Mapped[str] = mapped_column(String(200))
    sensor_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    value_key: Mapped[str] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(String(128))
    confidence: Mapped[float | None] = mapped_column(Float)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    bureau: Mapped[str | None] = mapped_column(String(64))
    station: Mapped[str | None] = mapped_column(String(64))
    #: Whether the read matched an active hotlist entry (hits are kept with their alert).
    hit: Mapped[bool] = mapped_column(Boolean, default=False)
    entry_id: Mapped[int | None] = mapped_column(Integer)
    alert_id: Mapped[int | None] = mapped_column(Integer)
    #: Who posted it (the recognition system's account).
    source: Mapped[str] = mapped_column(String(64))


class SightingAlertRow(Base):
    """A hotlist hit (or a watchlist subject entering a station's area) routed to stations."""

    __tablename__ = "sighting_alerts"
    __table_args__ = (
        CheckConstraint(_in("kind", ALERT_KINDS), name="kind"),
        CheckConstraint(_in("status", ALERT_STATUSES), name="status"),
        Index("ix_sighting_alerts_pack_created_at", "pack", "created_at"),
        Index("ix_sighting_alerts_entry_station", "entry_id", "station", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pack: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    entry_id: Mapped[int] = mapped_column(ForeignKey("hotlist_entries.id"))
    list_name: Mapped[str] = mapped_column(String(32))
    sighting_id: Mapped[int] = mapped_column(_BIGINT)
    last_sighting_id: Mapped[int] = mapped_column(_BIGINT)
    sightings: Mapped[int] = mapped_column(Integer, default=1)
    #: The sensor of the latest sighting, and the times of the first and latest.
    sensor_id: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    priority: Mapped[int] = mapped_column(SmallInteger)
    bureau: Mapped[str | None] = mapped_column(String(64))
    station: Mapped[str | None] = mapped_column(String(64))
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    #: Units recommended at creation (the dispatch policy), as shown on the dashboard.
    recommended: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    incident_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str | None] = mapped_column(String(64))


class AlertRecipientRow(Base):
    """A station an alert is sent to: the area holding the sensor, or a neighbouring one."""

    __tablename__ = "sighting_alert_recipients"
    __table_args__ = (Index("ix_sighting_alert_recipients_station", "station", "alert_id"),)

    alert_id: Mapped[int] = mapped_column(
        ForeignKey("sighting_alerts.id", ondelete="CASCADE"), primary_key=True
    )
    station: Mapped[str] = mapped_column(String(64), primary_key=True)
    bureau: Mapped[str | None] = mapped_column(String(64))
    #: ``home`` (the sensor's area) or ``neighbour``.
    role: Mapped[str] = mapped_column(String(16))
