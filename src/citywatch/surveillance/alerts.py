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
from dataclasses import dataclass, field
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
    "AlertChanges",
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


def _roles(session: Session, names: set[str]) -> dict[str, list[str]]:
    """The roles that may read each of the hotlists ``names`` (none for an unknown list)."""
    found = session.execute(
        select(HotlistRow.name, HotlistRow.read_roles).where(HotlistRow.name.in_(sorted(names)))
    )
    roles = {name: list(read) for name, read in found}
    return {name: roles.get(name, []) for name in names}


def alert_dicts(
    session: Session,
    rows: Sequence[SightingAlertRow],
    *,
    entries: dict[int, HotlistEntryRow] | None = None,
) -> list[dict[str, Any]]:
    """JSON-ready alerts with their entry's reason, label and case reference, recipients and
    the audience that may see them (``entries``: the alerts' entries when already loaded)."""
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
    if entries is None:
        entries = {
            e.id: e
            for e in session.scalars(
                select(HotlistEntryRow).where(HotlistEntryRow.id.in_({r.entry_id for r in rows}))
            )
        }
    roles = _roles(session, {r.list_name for r in rows})
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


@dataclass(frozen=True)
class AlertChanges:
    """What :func:`raise_alerts` did: the alerts ``created`` and ``extended`` (ids), the alert
    of each sighting, and the new alerts as :func:`alert_dict` shows them."""

    created: list[int]
    extended: list[int]
    alert_of: dict[int, int]
    alerts: list[dict[str, Any]]


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


@dataclass(slots=True)
class _Draft:
    """An alert being created or extended by one batch (written once, after the batch)."""

    entry: HotlistEntryRow
    station: str | None
    id: int | None  # None until inserted
    last_seen_at: datetime
    first: Hit | None = None  # the first sighting of a new alert
    last: Hit | None = None  # the latest sighting this batch adds
    added: int = 0
    hits: list[Hit] = field(default_factory=list)

    @property
    def alert_id(self) -> int:
        """The id, once the alert is in the database."""
        assert self.id is not None, "a new alert is inserted before it is linked"
        return self.id


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
) -> AlertChanges:
    """Create or extend the alerts of ``hits`` (in time order) and link the sightings to them.

    A fixed number of statements per batch, whatever the number of hits: the entries are
    locked, the open alerts of their entries read, the hits grouped onto them in memory (a hit
    joins the latest alert of its entry and station area whose last sighting is at most
    :data:`COALESCE_S` earlier, possibly one created by an earlier hit of the batch), then the
    new alerts and their recipients are inserted, the extended ones updated and the sightings
    linked, each with one statement.  Every change is staged on ``sink`` as an
    :data:`ALERT_EVENT` event carrying its audience.  The caller audits the alerts with the
    batch (one chain append per batch, not per alert).
    """
    if not hits:
        return AlertChanges([], [], {}, [])
    entries = {
        e.id: e
        for e in session.scalars(
            select(HotlistEntryRow)
            .where(HotlistEntryRow.id.in_(sorted({h.entry_id for h in hits})))
            .order_by(HotlistEntryRow.id)
            .with_for_update()  # two workers seeing one subject at once make one alert
        )
    }
    ordered = sorted(hits, key=lambda h: (h.seen_at, h.sighting_id))
    drafts = _group(ordered, entries, _open_alerts(session, pack, entries, ordered[0].seen_at))
    new = [d for d in drafts if d.id is None]
    _insert_alerts(session, pack, new, areas, now, recommend)
    _extend_alerts(session, [d for d in drafts if d.first is None], now)
    links = [{"sid": h.sighting_id, "aid": d.alert_id} for d in drafts for h in d.hits]
    table = _table(SightingRow)
    session.execute(
        update(table).where(table.c.id == bindparam("sid")).values(alert_id=bindparam("aid")), links
    )
    changed = {d.alert_id: "created" if d.first is not None else "updated" for d in drafts}
    rows = list(
        session.scalars(
            select(SightingAlertRow)
            .where(SightingAlertRow.id.in_(list(changed)))
            .order_by(SightingAlertRow.id)
        )
    )
    dicts = alert_dicts(session, rows, entries=entries)
    for alert in dicts:
        if sink is not None:
            sink.stage(session, alert_event(alert, changed[alert["id"]], actor, now))
    return AlertChanges(
        created=[d.alert_id for d in new],
        extended=[d.alert_id for d in drafts if d.first is None],
        alert_of={link["sid"]: link["aid"] for link in links},
        alerts=[a for a in dicts if changed[a["id"]] == "created"],
    )


def _open_alerts(
    session: Session, pack: str, entries: dict[int, HotlistEntryRow], earliest: datetime
) -> dict[tuple[int, str | None], list[_Draft]]:
    """The alerts of ``entries`` still collecting sightings at ``earliest`` (one query), by
    entry and station area, newest first."""
    table = _table(SightingAlertRow)
    rows = session.execute(
        select(table.c.id, table.c.entry_id, table.c.station, table.c.last_seen_at)
        .where(
            table.c.pack == pack,
            table.c.entry_id.in_(sorted(entries)),
            table.c.status.in_(("open", "acknowledged")),
            table.c.last_seen_at >= earliest - timedelta(seconds=COALESCE_S),
        )
        .order_by(table.c.id.desc())
    )
    out: dict[tuple[int, str | None], list[_Draft]] = {}
    for alert_id, entry_id, station, last_seen_at in rows:
        draft = _Draft(entries[entry_id], station, int(alert_id), last_seen_at)
        out.setdefault((entry_id, station), []).append(draft)
    return out


def _group(
    ordered: Sequence[Hit],
    entries: dict[int, HotlistEntryRow],
    candidates: dict[tuple[int, str | None], list[_Draft]],
) -> list[_Draft]:
    """The alerts the hits (in time order) join or raise, in order of their first hit: a hit
    joins the newest alert of its entry and area seen at most :data:`COALESCE_S` before it."""
    drafts: list[_Draft] = []
    for hit in ordered:
        since = hit.seen_at - timedelta(seconds=COALESCE_S)
        group = candidates.setdefault((hit.entry_id, hit.station), [])
        draft = next((d for d in group if d.last_seen_at >= since), None)
        if draft is None:
            draft = _Draft(entries[hit.entry_id], hit.station, None, hit.seen_at, first=hit)
            group.insert(0, draft)  # newest first, as the ids will be
        draft.added += 1
        draft.last = hit
        draft.last_seen_at = max(draft.last_seen_at, hit.seen_at)
        draft.hits.append(hit)
        if draft.added == 1:
            drafts.append(draft)
    return drafts


def _insert_alerts(
    session: Session,
    pack: str,
    drafts: Sequence[_Draft],
    areas: AreaGraph,
    now: datetime,
    recommend: Recommender | None,
) -> None:
    """Insert the new alerts (one statement, ids set on the drafts) and their recipients."""
    if not drafts:
        return
    values = [_new_alert(pack, d, now, recommend) for d in drafts]
    table = _table(SightingAlertRow)
    ids = session.execute(
        insert(table).returning(table.c.id, sort_by_parameter_order=True), values
    ).scalars()
    recipients: list[dict[str, Any]] = []
    for draft, alert_id in zip(drafts, ids, strict=True):
        draft.id = int(alert_id)
        recipients += [
            {"alert_id": draft.id, "station": s, "bureau": areas.bureau_of.get(s), "role": r}
            for s, r in areas.recipients(draft.station, draft.entry.reason)
        ]
    if recipients:
        session.execute(insert(_table(AlertRecipientRow)), recipients)


def _extend_alerts(session: Session, drafts: Sequence[_Draft], now: datetime) -> None:
    """Add the batch's sightings to existing alerts: count, latest sighting, sensor, place."""
    if not drafts:
        return
    table = _table(SightingAlertRow)
    session.execute(
        update(table)
        .where(table.c.id == bindparam("aid"))
        .values(
            sightings=table.c.sightings + bindparam("added"),
            last_sighting_id=bindparam("sid"),
            sensor_id=bindparam("sensor"),
            last_seen_at=bindparam("seen"),  # read under the entry's lock, maxed in memory
            lon=bindparam("lon"),
            lat=bindparam("lat"),
            updated_at=now,
        ),
        [
            {
                "aid": d.id,
                "added": d.added,
                "sid": d.last.sighting_id,
                "sensor": d.last.sensor_id,
                "seen": d.last_seen_at,
                "lon": d.last.lon,
                "lat": d.last.lat,
            }
            for d in drafts
            if d.last is not None
        ],
    )


def _new_alert(
    pack: str, draft: _Draft, now: datetime, recommend: Recommender | None
) -> dict[str, Any]:
    """The row of a new alert: its first sighting, the batch's latest, the units recommended
    at the first one."""
    entry, first, last = draft.entry, draft.first, draft.last
    assert first is not None and last is not None
    watch = entry.reason == HotlistReason.REPEAT_OFFENDER.value
    units: list[dict[str, Any]] = []
    if recommend is not None and first.lon is not None and first.lat is not None:
        units = recommend(
            first.lon, first.lat, first.station, INCIDENT_CATEGORY[entry.reason], entry.priority
        )
    return {
        "pack": pack,
        "kind": "area_entry" if watch else "hotlist_hit",
        "entry_id": entry.id,
        "list_name": entry.list_name,
        "sighting_id": first.sighting_id,
        "last_sighting_id": last.sighting_id,
        "sightings": draft.added,
        "sensor_id": last.sensor_id,
        "first_seen_at": first.seen_at,
        "last_seen_at": draft.last_seen_at,
        "priority": entry.priority,
        "bureau": first.bureau,
        "station": first.station,
        "lon": last.lon,
        "lat": last.lat,
        "status": "open",
        "recommended": units,
        "incident_id": None,
        "created_at": now,
        "updated_at": now,
        "updated_by": None,
    }
