"""The console's records of stored incidents (numbers, callers, notes, merges) for EIDO export.

``citywatch incidents export --eido`` writes canonical incidents; for live incidents the
console tables (:mod:`citywatch.store.console_models`) add their number, the address as typed,
their notes, every further caller (a call component each) and their merges (``REPLACING``:
this incident absorbed the other; ``REPLACED``: it was merged into the other), as
``GET /api/v1/incidents/{id}/eido`` exports them.  Caution notes belong to locations, not
incidents: the live route exports those at the incident's location.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, inspect, select

from citywatch.incidents.eido import EidoCaller, EidoMerge, EidoNote
from citywatch.store.console_models import CallerRecord, IncidentConsole, IncidentNote
from citywatch.store.db import engine_scope

__all__ = ["console_components"]

_CHUNK = 500


def console_components(
    engine_or_url: Engine | str | None, incident_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Per incident id that has console records: ``{"notes": (EidoNote, ...), "callers":
    (EidoCaller, ...), "merges": (EidoMerge, ...), "number": str | None, "location_text":
    str | None}`` (``callers``: every call after the first); a database without the console
    tables gives ``{}``."""
    ids = [str(i) for i in incident_ids]
    notes: dict[str, list[EidoNote]] = defaultdict(list)
    merges: dict[str, list[EidoMerge]] = defaultdict(list)
    further: dict[str, list[EidoCaller]] = defaultdict(list)
    numbers: dict[str, tuple[str | None, str | None]] = {}
    with engine_scope(engine_or_url) as engine, engine.connect() as conn:
        if not inspect(conn).has_table(IncidentConsole.__tablename__):
            return {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            for n in conn.execute(
                select(IncidentNote)
                .where(IncidentNote.incident_id.in_(chunk))
                .order_by(IncidentNote.id)
            ):
                notes[n.incident_id].append(EidoNote(n.text, n.at, n.author))
            callers: dict[str, list[Any]] = defaultdict(list)
            for c in conn.execute(
                select(CallerRecord)
                .where(CallerRecord.incident_id.in_(chunk))
                .order_by(CallerRecord.received_at, CallerRecord.id)
            ):
                callers[c.incident_id].append(c)
            for iid, rows in callers.items():
                further[iid] = [
                    EidoCaller(
                        received_at=c.received_at,
                        taken_by=c.taken_by or None,
                        notes=c.notes or None,
                        location_text=c.location_text or None,
                        lon=c.lon,
                        lat=c.lat,
                        original_incident_id=c.original_incident_id or None,
                    )
                    for c in rows[1:]
                ]
            for m in conn.execute(
                select(IncidentConsole).where(
                    IncidentConsole.merged_into.in_(chunk) | IncidentConsole.incident_id.in_(chunk)
                )
            ):
                if m.incident_id in chunk:
                    numbers[m.incident_id] = (m.number, m.location_text)
                if m.merged_into is None or m.merged_at is None:
                    continue
                if m.merged_into in chunk:
                    merges[m.merged_into].append(EidoMerge(m.incident_id, "REPLACING", m.merged_at))
                if m.incident_id in chunk:
                    merges[m.incident_id].append(EidoMerge(m.merged_into, "REPLACED", m.merged_at))
    out: dict[str, dict[str, Any]] = {}
    for iid in set(notes) | set(merges) | set(numbers) | set(further):
        number, location_text = numbers.get(iid, (None, None))
        out[iid] = {
            "notes": tuple(sorted(notes.get(iid, []), key=lambda n: n.at)),
            "callers": tuple(further.get(iid, [])),
            "merges": tuple(merges.get(iid, [])),
            "number": number,
            "location_text": location_text,
        }
    return out
