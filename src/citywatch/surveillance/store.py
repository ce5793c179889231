"""The sensor registry in the database, and the service behind its API routes.

Every write (import, create, status change) is audited in the same transaction, as the dispatch
service audits its writes.  Who may do what: admins and commanders register and change sensors
anywhere; station officers change the status of sensors of their own station (an officer who
finds a camera dark reports it); dispatchers and analysts read; unit devices see nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from citywatch.city import CityPack
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.audit import append_audit
from citywatch.errors import NotFoundError, PermissionDeniedError, ValidationError
from citywatch.store.db import writing
from citywatch.store.models import SensorRow, SensorStatusRow
from citywatch.surveillance.coverage import CameraCoverage
from citywatch.surveillance.registry import snap_sensors
from citywatch.surveillance.sensors import RECORD_FIELDS, Sensor, SensorStatus, StatusChange

__all__ = [
    "REGISTRY_ROLES",
    "SensorService",
    "load_sensor",
    "load_sensors",
    "save_sensors",
    "set_status",
]

#: Roles that may register sensors and change their attributes.
REGISTRY_ROLES = frozenset({Role.ADMIN, Role.COMMANDER})
_FIELDS = RECORD_FIELDS[1:]  # the id is the key


def _row_values(sensor: Sensor) -> dict[str, Any]:
    record = sensor.to_dict()
    return {name: record[name] for name in _FIELDS}


def _sensor(row: SensorRow, history: Sequence[SensorStatusRow]) -> Sensor:
    record = {name: getattr(row, name) for name in RECORD_FIELDS}
    changes = tuple(StatusChange(h.at, SensorStatus(h.status), h.note) for h in history)
    return Sensor.from_record(record, changes)


def save_sensors(
    session: Session,
    pack: str,
    sensors: Sequence[Sensor],
    *,
    actor: str,
    now: datetime | None = None,
) -> tuple[int, int]:
    """Insert or update sensors of a pack; audited.  Returns ``(created, updated)``.

    A changed status is appended to the sensor's history.
    """
    at = now or datetime.now(UTC)
    existing = {
        r.id: r
        for r in session.scalars(
            select(SensorRow).where(
                SensorRow.pack == pack, SensorRow.id.in_([s.id for s in sensors])
            )
        )
    }
    created = updated = 0
    for sensor in sensors:
        values = _row_values(sensor)
        row = existing.get(sensor.id)
        if row is None:
            session.add(SensorRow(pack=pack, id=sensor.id, updated_at=at, **values))
            session.flush()
            _history(session, pack, sensor.id, sensor.status, "registered", actor, at)
            created += 1
            before = None
        else:
            before = {name: getattr(row, name) for name in _FIELDS}
            if before == values:
                continue
            if row.status != values["status"]:
                _history(session, pack, sensor.id, sensor.status, "import", actor, at)
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = at
            updated += 1
        append_audit(
            session,
            actor=actor,
            action="sensor.create" if before is None else "sensor.update",
            entity="sensor",
            entity_id=f"{pack}:{sensor.id}",
            before=before,
            after=values,
            at=at,
        )
    return created, updated


def _history(
    session: Session,
    pack: str,
    sensor_id: str,
    status: SensorStatus,
    note: str | None,
    actor: str,
    at: datetime,
) -> None:
    session.add(
        SensorStatusRow(
            pack=pack, sensor_id=sensor_id, at=at, status=status.value, note=note, actor=actor
        )
    )


def load_sensors(
    session: Session, pack: str, *, station: str | None = None, bureau: str | None = None
) -> list[Sensor]:
    """Sensors of a pack (optionally of one station or bureau), with their history, by id."""
    stmt = select(SensorRow).where(SensorRow.pack == pack).order_by(SensorRow.id)
    if station is not None:
        stmt = stmt.where(SensorRow.station == station)
    if bureau is not None:
        stmt = stmt.where(SensorRow.bureau == bureau)
    rows = list(session.scalars(stmt))
    history: dict[str, list[SensorStatusRow]] = {}
    hist_stmt = (
        select(SensorStatusRow)
        .where(SensorStatusRow.pack == pack)
        .order_by(SensorStatusRow.at, SensorStatusRow.id)
    )
    for h in session.scalars(hist_stmt):
        history.setdefault(h.sensor_id, []).append(h)
    return [_sensor(r, history.get(r.id, [])) for r in rows]


def set_status(
    session: Session,
    pack: str,
    sensor_id: str,
    status: str,
    *,
    actor: str,
    note: str | None = None,
    now: datetime | None = None,
) -> Sensor:
    """Change a sensor's status, append it to the history and audit it."""
    try:
        new = SensorStatus(status)
    except ValueError:
        allowed = ", ".join(s.value for s in SensorStatus)
        raise ValidationError(f"unknown status {status!r}; use {allowed}", field="status") from None
    row = session.get(SensorRow, (pack, sensor_id))
    if row is None:
        raise NotFoundError(f"no sensor {sensor_id!r} in pack {pack}")
    at = now or datetime.now(UTC)
    before = row.status
    row.status = new.value
    row.updated_at = at
    _history(session, pack, sensor_id, new, note, actor, at)
    append_audit(
        session,
        actor=actor,
        action="sensor.status",
        entity="sensor",
        entity_id=f"{pack}:{sensor_id}",
        before={"status": before},
        after={"status": new.value, "note": note},
        at=at,
    )
    session.flush()
    return load_sensor(session, pack, sensor_id)


def load_sensor(session: Session, pack: str, sensor_id: str) -> Sensor:
    """One sensor of a pack with its history.

    Raises
    ------
    NotFoundError
        When the pack has no such sensor.
    """
    row = session.get(SensorRow, (pack, sensor_id))
    if row is None:
        raise NotFoundError(f"no sensor {sensor_id!r} in pack {pack}")
    history = session.scalars(
        select(SensorStatusRow)
        .where(SensorStatusRow.pack == pack, SensorStatusRow.sensor_id == sensor_id)
        .order_by(SensorStatusRow.at, SensorStatusRow.id)
    )
    return _sensor(row, list(history))


class SensorService:
    """The registry of one pack, with role and scope checks (used by the API routes)."""

    def __init__(self, sessions: sessionmaker[Session], pack: CityPack) -> None:
        self.sessions = sessions
        self.pack = pack
        self._lock = threading.Lock()
        self._coverage: tuple[tuple[int, Any], CameraCoverage] | None = None

    def _check_read(self, who: Principal) -> None:
        if who.role is Role.UNIT_DEVICE:
            raise PermissionDeniedError("unit devices may not read the sensor registry")

    def _check_scope(self, who: Principal, sensor: Sensor) -> None:
        if not who.sees(sensor.bureau, sensor.station):
            raise PermissionDeniedError(
                f"sensor {sensor.id} belongs to station {sensor.station}, outside your scope"
            )

    def sensors(self, who: Principal, station: str | None = None) -> list[Sensor]:
        """Sensors the caller may see, optionally of one station."""
        self._check_read(who)
        with self.sessions() as s:
            sensors = load_sensors(s, self.pack.name, station=station)
        return [x for x in sensors if who.sees(x.bureau, x.station)]

    def list(self, who: Principal, station: str | None = None) -> list[dict[str, Any]]:
        """:meth:`sensors` as JSON-ready records."""
        return [x.to_dict() for x in self.sensors(who, station)]

    def sees_area(self, who: Principal, station: str) -> bool:
        """Whether the caller's scope holds a station area (``"unassigned"``: admins only)."""
        try:
            bureau = self.pack.jurisdiction(station).parent
        except NotFoundError:
            bureau = None
        return who.sees(bureau, station)

    def coverage(self, who: Principal) -> CameraCoverage:
        """Coverage of the whole registry (cameras of a neighbouring station see streets of
        this one too), rebuilt only when the registry has changed."""
        self._check_read(who)
        with self.sessions() as s:
            state = s.execute(
                select(func.count(), func.max(SensorRow.updated_at)).where(
                    SensorRow.pack == self.pack.name
                )
            ).one()
            key = (int(state[0]), state[1])
            with self._lock:
                if self._coverage is None or self._coverage[0] != key:
                    sensors = load_sensors(s, self.pack.name)
                    self._coverage = (key, CameraCoverage.build(self.pack, sensors))
                return self._coverage[1]

    def get(self, who: Principal, sensor_id: str) -> dict[str, Any]:
        """One sensor with its status history."""
        self._check_read(who)
        with self.sessions() as s:
            sensor = load_sensor(s, self.pack.name, sensor_id)
        self._check_scope(who, sensor)
        return sensor.to_dict()

    def register(self, who: Principal, sensor: Sensor) -> dict[str, Any]:
        """Register (or replace) a sensor: snapped to the street, jurisdictions filled."""
        if who.role not in REGISTRY_ROLES:
            raise PermissionDeniedError(f"role {who.role} may not register sensors")
        placed = snap_sensors([sensor], self.pack)
        if placed.refused:
            raise ValidationError(f"sensor {sensor.id}: {placed.refused[0][1]}", field="location")
        with writing(self.sessions) as s:
            save_sensors(s, self.pack.name, placed.sensors, actor=who.username)
        return self.get(who, sensor.id)

    def set_status(
        self, who: Principal, sensor_id: str, status: str, note: str | None = None
    ) -> dict[str, Any]:
        """Change a sensor's status (station officers: only in their own scope)."""
        if not who.can_write:
            raise PermissionDeniedError(f"role {who.role} may not change sensor status")
        self.get(who, sensor_id)  # exists, and within the caller's scope
        with writing(self.sessions) as s:
            set_status(s, self.pack.name, sensor_id, status, actor=who.username, note=note)
        return self.get(who, sensor_id)
