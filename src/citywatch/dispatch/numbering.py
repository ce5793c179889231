"""Human-readable incident numbers and the console row of a new incident, inside its transaction.

:func:`open_console` is called by :meth:`DispatchService.create_incident` in the transaction
that creates the incident, so an incident never exists without its number and first caller
record.  The number comes from one atomic upsert of ``incident_counters``
(``INSERT ... ON CONFLICT (pack, year) DO UPDATE SET last = last + 1 RETURNING last``): on
PostgreSQL the conflicting row is locked until the transaction ends, on SQLite the writer holds
the database lock, so concurrent calls always get distinct, gap-free numbers (a rolled-back
transaction gives its number back).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from citywatch.dispatch.duplicates import ConsoleConfig, format_number
from citywatch.store.console_models import CallerRecord, IncidentConsole, IncidentCounter
from citywatch.store.models import IncidentRow

__all__ = ["next_number", "open_console"]


def next_number(session: Session, pack: str, year: int) -> int:
    """The next sequence number of ``pack`` in ``year`` (1 for the first), atomically."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(IncidentCounter)
        .values(pack=pack, year=year, last=1)
        .on_conflict_do_update(
            index_elements=[IncidentCounter.pack, IncidentCounter.year],
            set_={"last": IncidentCounter.last + 1},
        )
        .returning(IncidentCounter.last)
    )
    value = session.execute(stmt).scalar_one()
    return int(value)


def open_console(
    session: Session,
    row: IncidentRow,
    *,
    pack: str,
    timezone: str,
    config: ConsoleConfig,
    taken_by: str,
    caller_notes: str | None,
    location_text: str | None,
) -> dict[str, Any]:
    """Number the new incident ``row`` and record its first caller; the fields to add to it."""
    received: datetime = row.received_at
    year = received.astimezone(ZoneInfo(timezone)).year
    seq = next_number(session, pack, year)
    number = format_number(config.prefix(pack), year, seq, config.number_digits)
    session.add(IncidentConsole(incident_id=row.id, number=number, location_text=location_text))
    session.add(
        CallerRecord(
            incident_id=row.id,
            original_incident_id=row.id,
            received_at=received,
            taken_by=taken_by,
            notes=caller_notes,
            location_text=location_text,
            lon=row.lon,
            lat=row.lat,
        )
    )
    session.flush()
    return {"number": number, "location_text": location_text, "merged_into": None}
