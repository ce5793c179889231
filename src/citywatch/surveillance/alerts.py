"""Alerts: a hotlist hit routed to the station whose area holds the sensor and its neighbours.

A sighting that matches an active hotlist entry (:mod:`citywatch.surveillance.sightings`)
raises an alert:

* ``hotlist_hit`` (a stolen vehicle or e-bike, a wanted person): sent to the station area where
  it was seen and to every station area that borders it (adjacency of the pack's station
  polygons, :class:`AreaGraph`), since the vehicle may be across the line in a minute;
* ``area_entry`` (a watchlist subject, 惯犯进入辖区): sent to the station whose area the subject
  entered, only.

Further sightings of the same entry in the same station area within :data:`COALESCE_S` of the
alert's latest sighting join that alert (its count, latest position and sensor) instead of
raising another one; the alert's sightings are the subject's track there.  A sighting in
another area is a new alert of that area: for a watchlist subject, that is the "entered the
area" moment.

Who sees an alert: the roles that may read its hotlist, and of station officers only those
whose scope (a station, or its bureau) is among the alert's recipients.  The same rule filters
the WebSocket stream (:func:`visible`), the alert list, the tracks and the sightings of alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import shapely
from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from citywatch.city import CityPack
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.core import EventSink
from citywatch.store.sightings_models import (
    AlertRecipientRow,
    HotlistEntryRow,
    HotlistRow,
    SightingAlertRow,
    SightingRow,
)
from citywatch.surveillance.matching import HotlistReason

__all__ = [
    "ALERT_EVENT",
    "COALESCE_S",
    "INCIDENT_CATEGORY",
    "AreaGraph",
    "Hit",
    "Recommender",
    "alert_dict",
    "alert_dicts",
    "raise_alerts",
    "visible",
]

#: A sighting this soon after an alert's latest one, of the same entry in the same station
#: area, joins that alert.
COALESCE_S: Final = 1800.0
#: Type of the events on the stream (``data.change``: ``created`` or ``updated``).
ALERT_EVENT: Final = "sighting.alert"
#: The incident category an alert opens (one click on the dashboard), by hotlist reason.
INCIDENT_CATEGORY: Final = {
    HotlistReason.STOLEN_VEHICLE.value: "vehicle_theft",
    HotlistReason.STOLEN_EBIKE.value: "bicycle_theft",
    HotlistReason.WANTED_PERSON.value: "police_activity",
    HotlistReason.REPEAT_OFFENDER.value: "suspicious",
}
#: Units recommended with an alert.
RECOMMENDED_UNITS: Final = 3
#: Station polygons closer than this (degrees, about 10 m) are neighbours: boundaries drawn
#: separately rarely share their vertices exactly.
_TOUCH_DEG = 1e-4

#: ``(lon, lat, station, category, priority) -> recommended units`` (the dispatch policy).
Recommender = Callable[[float, float, str | None, str, int], list[dict[str, Any]]]


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


@dataclass(frozen=True)
class AreaGraph:
    """Station areas of a pack: each one's bureau and the areas that border it."""

    bureau_of: dict[str, str | None]
    neighbours: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, pack: CityPack) -> AreaGraph:
        """The graph of ``pack`` (computed once per pack object)."""
        cached = _GRAPHS.get(id(pack))
        if cached is None or cached[0] is not pack:
            cached = (pack, _area_graph(pack))
            _GRAPHS[id(pack)] = cached
        return cached[1]

    def recipients(self, station: str | None, reason: str) -> list[tuple[str, str]]:
        """``(station, role)`` pairs an alert of ``reason`` seen in ``station`` goes to: the
        area itself (``home``) and, except for watchlist subjects, its neighbours."""
        if station is None:
            return []
        out = [(station, "home")]
        if reason != HotlistReason.REPEAT_OFFENDER.value:
            out += [(n, "neighbour") for n in self.neighbours.get(station, ())]
        return out


_GRAPHS: dict[int, tuple[CityPack, AreaGraph]] = {}


def _area_graph(pack: CityPack) -> AreaGraph:
    areas = pack.level("station")
    shapes = [shapely.buffer(a.geometry, _TOUCH_DEG / 2) for a in areas]
    tree = shapely.STRtree(shapes)
    neighbours: dict[str, tuple[str, ...]] = {}
    for i, area in enumerate(areas):
        near = tree.query(shapes[i], predicate="intersects")
        neighbours[area.id] = tuple(sorted(areas[j].id for j in near if j != i))
    return AreaGraph({a.id: a.parent for a in areas}, neighbours)


@dataclass(frozen=True, slots=True)
class Hit:
    """A stored sighting that matched an active entry."""

    sighting_id: int
    entry_id: int
    sensor_id: str
    seen_at: datetime
    lon: float | None
    lat: float | None
    station: str | None
    bureau: str | None


def visible(who: Principal, audience: dict[str, Any]) -> bool:
    """Whether ``who`` may see an alert addressed to ``audience`` (``roles`` that may read its
    list, recipient ``stations`` and their ``bureaus``)."""
    if who.role.value not in audience.get("roles", ()):
        return False
    if who.role is not Role.STATION_OFFICER:
        return True
    return who.scope is not None and (
        who.scope in audience.get("stations", ()) or who.scope in audience.get("bureaus", ())
    )


def _roles(session: Session, list_name: str) -> list[str]:
    row = session.get(HotlistRow, list_name)
    return list(row.read_roles) if row is not None else []


def alert_dicts(session: Session, rows: Sequence[SightingAlertRow]) -> list[dict[str, Any]]:
    """JSON-ready alerts with their entry's reason, label and case reference, recipients and
    the audience that may see them."""
    if not rows:
        return []
    ids = [r.id for r in rows]
    recipients: dict[int, list[AlertRecipientRow]] = {}
    for rec in session.scalars(
        select(AlertRecipientRow)
        .where(AlertRecipientRow.alert_id.in_(ids))
        .order_by(AlertRecipientRow.alert_id, AlertRecipientRow.role, AlertRecipientRow.station)
    ):
        recipients.setdefault(rec.alert_id, []).append(rec)
    entries = {
        e.id: e
        for e in session.scalars(
            select(HotlistEntryRow).where(HotlistEntryRow.id.in_({r.entry_id for r in rows}))
        )
    }
    roles = {name: _roles(session, name) for name in {r.list_name for r in rows}}
    return [
        alert_dict(r, entries[r.entry_id], recipients.get(r.id, []), roles[r.list_name])
        for r in rows
    ]


def alert_dict(
    row: SightingAlertRow,
    entry: HotlistEntryRow,
    recipients: Sequence[AlertRecipientRow],
    roles: Sequence[str],
) -> dict[str, Any]:
    """One alert as the API and the event stream show it."""
    stations = [r.station for r in recipients]
    bureaus = sorted({r.bureau for r in recipients if r.bureau})
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "list": row.list_name,
        "entry_id": row.entry_id,
        "reason": entry.reason,
        "entry_kind": entry.kind,
        "value": entry.value,
        "label": entry.label,
        "case_ref": entry.case_ref,
        "synthetic": entry.synthetic,
        "priority": row.priority,
        "station": row.station,
        "bureau": row.bureau,
        "recipients": [{"station": r.station, "role": r.role} for r in recipients],
        "lon": row.lon,
        "lat": row.lat,
        "sensor_id": row.sensor_id,
        "sighting_id": row.sighting_id,
        "sightings": row.sightings,
        "first_seen_at": row.first_seen_at.isoformat(),
        "last_seen_at": row.last_seen_at.isoformat(),
        "recommended": row.recommended,
        "incident_id": row.incident_id,
        "incident_category": INCIDENT_CATEGORY[entry.reason],
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "audience": {"roles": list(roles), "stations": stations, "bureaus": bureaus},
    }


def raise_alerts(
    session: Session,
    pack: str,
    hits: Sequence[Hit],
    *,
    areas: AreaGraph,
    actor: str,
    now: datetime,
    recommend: Recommender | None = None,
    sink: EventSink | None = None,
) -> tuple[list[int], list[int], dict[int, int]]:
    """Create or extend the alerts of ``hits`` (in time order) and link the sightings to them.

    Every change is staged on ``sink`` as a :data:`ALERT_EVENT` event carrying its audience.
    The caller audits the alerts with the batch (one chain append per batch, not per alert).
    Returns the ids of the alerts created, of those extended, and the alert of each sighting.
    """
    if not hits:
        return [], [], {}
    entries = {
        e.id: e
        for e in session.scalars(
            select(HotlistEntryRow)
            .where(HotlistEntryRow.id.in_(sorted({h.entry_id for h in hits})))
            .order_by(HotlistEntryRow.id)
            .with_for_update()  # two workers seeing one subject at once make one alert
        )
    }
    created: list[int] = []
    extended: list[int] = []
    changed: dict[int, str] = {}
    links: list[dict[str, int]] = []
    for hit in sorted(hits, key=lambda h: (h.seen_at, h.sighting_id)):
        entry = entries[hit.entry_id]
        row = _open_alert(session, pack, entry.id, hit)
        if row is None:
            row = _new_alert(session, pack, entry, hit, areas, now, recommend)
            created.append(row.id)
            changed[row.id] = "created"
        else:
            row.sightings += 1
            row.last_sighting_id = hit.sighting_id
            row.sensor_id = hit.sensor_id
            row.last_seen_at = max(row.last_seen_at, hit.seen_at)
            row.lon, row.lat, row.updated_at = hit.lon, hit.lat, now
            if row.id not in changed:
                extended.append(row.id)
                changed[row.id] = "updated"
        links.append({"sid": hit.sighting_id, "aid": row.id})
        session.flush()
    table = _table(SightingRow)
    session.execute(
        update(table).where(table.c.id == bindparam("sid")).values(alert_id=bindparam("aid")), links
    )
    rows = list(
        session.scalars(select(SightingAlertRow).where(SightingAlertRow.id.in_(list(changed))))
    )
    for alert in alert_dicts(session, rows):
        if sink is not None:
            sink.stage(session, alert_event(alert, changed[alert["id"]], actor, now))
    return created, extended, {link["sid"]: link["aid"] for link in links}


def alert_event(alert: dict[str, Any], change: str, actor: str, at: datetime) -> dict[str, Any]:
    """The stream event of an alert change (``created``, ``updated``, ``status``)."""
    return {
        "id": None,
        "type": ALERT_EVENT,
        "at": at.isoformat(),
        "incident_id": alert["incident_id"],
        "unit_id": None,
        "station": alert["station"],
        "bureau": alert["bureau"],
        "actor": actor,
        "audience": alert["audience"],
        "data": {**{k: v for k, v in alert.items() if k != "audience"}, "change": change},
    }


def _open_alert(session: Session, pack: str, entry_id: int, hit: Hit) -> SightingAlertRow | None:
    """The alert of this entry in the hit's station area still collecting sightings."""
    since = hit.seen_at - timedelta(seconds=COALESCE_S)
    stmt = (
        select(SightingAlertRow)
        .where(
            SightingAlertRow.pack == pack,
            SightingAlertRow.entry_id == entry_id,
            SightingAlertRow.status.in_(("open", "acknowledged")),
            SightingAlertRow.last_seen_at >= since,
        )
        .order_by(SightingAlertRow.id.desc())
        .limit(1)
    )
    stmt = stmt.where(
        SightingAlertRow.station.is_(None)
        if hit.station is None
        else SightingAlertRow.station == hit.station
    )
    return session.scalar(stmt)


def _new_alert(
    session: Session,
    pack: str,
    entry: HotlistEntryRow,
    hit: Hit,
    areas: AreaGraph,
    now: datetime,
    recommend: Recommender | None,
) -> SightingAlertRow:
    watch = entry.reason == HotlistReason.REPEAT_OFFENDER.value
    units: list[dict[str, Any]] = []
    if recommend is not None and hit.lon is not None and hit.lat is not None:
        units = recommend(
            hit.lon, hit.lat, hit.station, INCIDENT_CATEGORY[entry.reason], entry.priority
        )
    row = SightingAlertRow(
        pack=pack,
        kind="area_entry" if watch else "hotlist_hit",
        entry_id=entry.id,
        list_name=entry.list_name,
        sighting_id=hit.sighting_id,
        last_sighting_id=hit.sighting_id,
        sightings=1,
        sensor_id=hit.sensor_id,
        first_seen_at=hit.seen_at,
        last_seen_at=hit.seen_at,
        priority=entry.priority,
        bureau=hit.bureau,
        station=hit.station,
        lon=hit.lon,
        lat=hit.lat,
        status="open",
        recommended=units,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    recipients = areas.recipients(hit.station, entry.reason)
    if recipients:
        session.execute(
            insert(_table(AlertRecipientRow)),
            [
                {"alert_id": row.id, "station": s, "bureau": areas.bureau_of.get(s), "role": r}
                for s, r in recipients
            ],
        )
    return row
