"""Tables of the e-bike registry (migration ``0008_ebikes``; see citywatch.surveillance.ebikes).

Data minimisation: a registered e-bike is its tag's *keyed hash* (``tag_key``, the same value
key the sightings service matches reads on) with the tag's last four characters as a hint, a
make, a colour, the registering station and at most one owner contact (a telephone number or
an e-mail address, optional).  No owner name, identity number, address or photograph is kept;
deregistering a bike deletes its row and with it the contact.  Theft reports keep the time,
place and jurisdiction of the theft and link to the incident and the hotlist entry they made.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from citywatch.store.base import Base, UTCDateTime

__all__ = ["EBIKE_STATUSES", "REPORT_STATUSES", "EBikeRow", "EBikeTheftReportRow"]

#: Statuses of a registered e-bike and of a theft report.
EBIKE_STATUSES = ("registered", "stolen")
REPORT_STATUSES = ("open", "recovered")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class EBikeRow(Base):
    """One registered e-bike of a city pack."""

    __tablename__ = "ebikes"
    __table_args__ = (
        UniqueConstraint("pack", "tag_key"),
        CheckConstraint(_in("status", EBIKE_STATUSES), name="status"),
        Index("ix_ebikes_pack_station", "pack", "station"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pack: Mapped[str] = mapped_column(String(200))
    tag_key: Mapped[str] = mapped_column(String(64))
    tag_hint: Mapped[str] = mapped_column(String(8))
    make: Mapped[str | None] = mapped_column(String(64))
    colour: Mapped[str | None] = mapped_column(String(32))
    contact: Mapped[str | None] = mapped_column(String(120))
    bureau: Mapped[str | None] = mapped_column(String(64))
    station: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    registered_by: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EBikeTheftReportRow(Base):
    """One theft of a registered e-bike, with the incident and hotlist entry it made."""

    __tablename__ = "ebike_theft_reports"
    __table_args__ = (
        CheckConstraint(_in("status", REPORT_STATUSES), name="status"),
        Index("ix_ebike_theft_reports_pack_station", "pack", "station"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pack: Mapped[str] = mapped_column(String(200))
    ebike_id: Mapped[int | None] = mapped_column(ForeignKey("ebikes.id", ondelete="SET NULL"))
    tag_hint: Mapped[str] = mapped_column(String(8))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    bureau: Mapped[str | None] = mapped_column(String(64))
    station: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    incident_id: Mapped[str] = mapped_column(String(200))
    hotlist_entry_id: Mapped[int | None] = mapped_column(Integer)
    reported_by: Mapped[str] = mapped_column(String(64))
    recovered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
