"""SQLAlchemy models of incidents and import batches (migration ``0001_incidents``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from citywatch.domain import PRIORITY_RANGE
from citywatch.store.base import Base, UTCDateTime

__all__ = ["Base", "ImportBatch", "IncidentRow", "SensorRow", "SensorStatusRow"]


class ImportBatch(Base):
    """One run of ``citywatch incidents import``: what was read, imported and rejected."""

    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    file_name: Mapped[str] = mapped_column(Text)
    file_sha256: Mapped[str] = mapped_column(String(64))
    pack: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    rows_imported: Mapped[int] = mapped_column(Integer, default=0)
    rows_already_present: Mapped[int] = mapped_column(Integer, default=0)
    rows_merged: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    rejected_by_reason: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rejected_path: Mapped[str | None] = mapped_column(Text)


class IncidentRow(Base):
    """One incident: the canonical record of ``citywatch.incidents.record``."""

    __tablename__ = "incidents"
    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        CheckConstraint("time_precision IN ('exact', 'day', 'month')", name="time_precision"),
        CheckConstraint("priority BETWEEN {} AND {}".format(*PRIORITY_RANGE), name="priority"),
        Index("ix_incidents_received_at", "received_at"),
        Index("ix_incidents_category_received_at", "category", "received_at"),
        Index("ix_incidents_station", "station"),
        Index("ix_incidents_batch_id", "batch_id"),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    time_precision: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int | None] = mapped_column(SmallInteger)
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    bureau: Mapped[str | None] = mapped_column(String(64))
    station: Mapped[str | None] = mapped_column(String(64))
    zone: Mapped[str | None] = mapped_column(String(64))
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disposition: Mapped[str | None] = mapped_column(Text)
    solved: Mapped[bool | None] = mapped_column(Boolean)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id"))


class SensorRow(Base):
    """One sensor of a city's registry (migration ``0005_sensors``; see citywatch.surveillance)."""

    __tablename__ = "sensors"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('fixed_camera', 'ptz', 'plate_reader', 'ebike_tag_reader')", name="kind"
        ),
        CheckConstraint("status IN ('online', 'offline', 'maintenance')", name="status"),
        Index("ix_sensors_pack_station", "pack", "station"),
    )

    pack: Mapped[str] = mapped_column(String(200), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(Text)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    owner: Mapped[str] = mapped_column(String(32))
    direction_deg: Mapped[float | None] = mapped_column(Float)
    fov_deg: Mapped[float | None] = mapped_column(Float)
    range_m: Mapped[float | None] = mapped_column(Float)
    power_off: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(64))
    snap_lon: Mapped[float | None] = mapped_column(Float)
    snap_lat: Mapped[float | None] = mapped_column(Float)
    snap_m: Mapped[float | None] = mapped_column(Float)
    bureau: Mapped[str | None] = mapped_column(String(64))
    station: Mapped[str | None] = mapped_column(String(64))
    zone: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SensorStatusRow(Base):
    """One entry of a sensor's status history (append-only)."""

    __tablename__ = "sensor_status_history"
    __table_args__ = (
        ForeignKeyConstraint(
            ["pack", "sensor_id"], ["sensors.pack", "sensors.id"], ondelete="CASCADE"
        ),
        Index("ix_sensor_status_history_sensor", "pack", "sensor_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pack: Mapped[str] = mapped_column(String(200))
    sensor_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))
