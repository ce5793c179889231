"""The sightings service behind the API: ingest, hotlists, alerts, tracks, retention.

Role checks and visibility live here (the API routes are thin wrappers):

* posting sightings: recognition systems (``sensor_feed`` accounts) and admins, commanders,
  dispatchers; nobody else;
* hotlists: each list's read and write roles (:data:`~citywatch.surveillance.hotlists.
  DEFAULT_LISTS`); every creation, change, withdrawal and search is audited with its purpose;
* alerts, their sightings and tracks: the roles that read the alert's list, and of station
  officers only those the alert was sent to (:func:`~citywatch.surveillance.alerts.visible`);
* searching the sightings that matched nothing (a plate's movements): admins and commanders,
  with a purpose, audited;
* an alert's one click "open an incident" creates the incident through the dispatch service
  (its own checks and audit) and links it to the alert.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.audit import append_audit
from citywatch.dispatch.service import DispatchService
from citywatch.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from citywatch.store.db import writing
from citywatch.store.sightings_models import (
    AlertRecipientRow,
    HotlistEntryRow,
    SightingAlertRow,
    SightingRow,
)
from citywatch.surveillance import hotlists
from citywatch.surveillance.alerts import (
    RECOMMENDED_UNITS,
    alert_dicts,
    alert_event,
    visible,
)
from citywatch.surveillance.matching import SightingKind, ValueKey
from citywatch.surveillance.sightings import (
    DEFAULT_RETENTION_DAYS,
    IngestResult,
    PurgeResult,
    Read,
    SightingFix,
    ingest,
    purge_sightings,
    sighting_fix,
    sighting_fixes,
)

__all__ = ["FEED_ROLES", "SEARCH_ROLES", "SightingService", "WatchConfig"]

#: Who may post sightings.
FEED_ROLES: Final = frozenset({Role.SENSOR_FEED, Role.ADMIN, Role.COMMANDER, Role.DISPATCHER})
#: Who may search every sighting (hits and non-hits) by value.
SEARCH_ROLES: Final = frozenset({Role.ADMIN, Role.COMMANDER})
#: Alert status changes a caller may make (``incident`` is set by :meth:`open_incident`).
_MANUAL = {"open": ("acknowledged", "closed"), "acknowledged": ("closed",), "incident": ("closed",)}


@dataclass(frozen=True)
class WatchConfig:
    """Settings of the sightings service."""

    #: Keep plates, tags and references themselves (not only their keyed hashes).
    store_values: bool = False
    #: Days a sighting that matched nothing is kept.
    retention_days: int = DEFAULT_RETENTION_DAYS


class SightingService:
    """Sightings, hotlists and alerts of the dispatch service's pack and database."""

    def __init__(
        self,
        dispatch: DispatchService,
        *,
        key: ValueKey | None = None,
        config: WatchConfig | None = None,
    ) -> None:
        self.dispatch = dispatch
        self.sessions = dispatch.sessions
        self.pack = dispatch.pack
        self.key = key or ValueKey.open()
        self.config = config or WatchConfig()
        with writing(self.sessions) as s:
            hotlists.ensure_lists(s)

    # ------------------------------------------------------------------ ingest
    def _recommend(
        self, lon: float, lat: float, station: str | None, category: str, priority: int
    ) -> list[dict[str, Any]]:
        rec = self.dispatch.recommend_at(
            lon, lat, category=category, priority=priority, station=station, k=RECOMMENDED_UNITS
        )
        keep = ("rank", "unit_id", "unit_type", "station", "eta_s", "metres")
        return [{k: c[k] for k in keep} for c in rec.as_dict()["candidates"]]

    def post(self, who: Principal, reads: Sequence[Read]) -> IngestResult:
        """Ingest a batch of reads (see :func:`citywatch.surveillance.sightings.ingest`)."""
        if who.role not in FEED_ROLES:
            raise PermissionDeniedError(f"role {who.role} may not post sightings")
        with writing(self.sessions) as s:
            return ingest(
                s,
                self.pack,
                reads,
                actor=who.username,
                key=self.key,
                now=self.dispatch.clock(),
                store_values=self.config.store_values,
                recommend=self._recommend,
                sink=self.dispatch.sink,
            )

    def purge(self, actor: str = "system") -> PurgeResult:
        """Apply the retention now (the service runs it every hour)."""
        return purge_sightings(
            self.sessions,
            retention_days=self.config.retention_days,
            actor=actor,
            now=self.dispatch.clock(),
        )

    # ------------------------------------------------------------------ hotlists
    def lists(self, who: Principal) -> list[str]:
        """The hotlists the caller may read."""
        with self.sessions() as s:
            return hotlists.readable_lists(s, who)

    def add_entry(self, who: Principal, entry: hotlists.NewEntry, purpose: str) -> dict[str, Any]:
        """Put a reference on a hotlist (the list's write roles), audited with the purpose."""
        with writing(self.sessions) as s:
            out = hotlists.add_entry(
                s,
                entry,
                actor=who.username,
                purpose=purpose,
                who=who,
                key=self.key,
                store_values=self.config.store_values,
                now=self.dispatch.clock(),
            )
        return out.to_dict()

    def update_entry(
        self, who: Principal, entry_id: int, changes: dict[str, Any], purpose: str
    ) -> dict[str, Any]:
        """Change an entry, audited with the purpose."""
        with writing(self.sessions) as s:
            out = hotlists.update_entry(
                s, entry_id, changes, actor=who.username, purpose=purpose, who=who,
                now=self.dispatch.clock(),
            )  # fmt: skip
        return out.to_dict()

    def withdraw_entry(self, who: Principal, entry_id: int, purpose: str) -> dict[str, Any]:
        """Take an entry off its list, audited with the purpose."""
        with writing(self.sessions) as s:
            out = hotlists.withdraw_entry(
                s, entry_id, actor=who.username, purpose=purpose, who=who,
                now=self.dispatch.clock(),
            )  # fmt: skip
        return out.to_dict()

    def search_entries(self, who: Principal, purpose: str, **filters: Any) -> list[dict[str, Any]]:
        """Search the hotlists the caller may read, audited with the purpose."""
        with writing(self.sessions) as s:
            found = hotlists.search_entries(
                s, actor=who.username, purpose=purpose, who=who, key=self.key,
                now=self.dispatch.clock(), **filters,
            )  # fmt: skip
        return [e.to_dict() for e in found]

    # ------------------------------------------------------------------ alerts
    def _alert_query(self, s: Session, who: Principal) -> Any:
        readable = hotlists.readable_lists(s, who)
        stmt = select(SightingAlertRow).where(
            SightingAlertRow.pack == self.pack.name, SightingAlertRow.list_name.in_(readable)
        )
        if who.role is Role.STATION_OFFICER:
            mine = select(AlertRecipientRow.alert_id).where(
                or_(AlertRecipientRow.station == who.scope, AlertRecipientRow.bureau == who.scope)
            )
            stmt = stmt.where(SightingAlertRow.id.in_(mine))
        return stmt

    def alerts(
        self, who: Principal, *, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Alerts the caller may see, newest first."""
        with self.sessions() as s:
            stmt = self._alert_query(s, who)
            if status is not None:
                stmt = stmt.where(SightingAlertRow.status == status)
            stmt = stmt.order_by(SightingAlertRow.id.desc()).limit(max(1, min(limit, 1000)))
            return alert_dicts(s, list(s.scalars(stmt)))

    def alert(self, who: Principal, alert_id: int) -> dict[str, Any]:
        """One alert with its sightings (the track in that area)."""
        with self.sessions() as s:
            row = s.get(SightingAlertRow, alert_id)
            if row is None or row.pack != self.pack.name:
                raise NotFoundError(f"no alert {alert_id}")
            (out,) = alert_dicts(s, [row])
            if not visible(who, out["audience"]):
                raise PermissionDeniedError(f"alert {alert_id} is not addressed to you")
            seen = s.scalars(
                select(SightingRow)
                .where(SightingRow.alert_id == alert_id)
                .order_by(SightingRow.seen_at, SightingRow.id)
            )
            out["track"] = [_sighting(x) for x in seen]
        return out

    def set_alert_status(self, who: Principal, alert_id: int, status: str) -> dict[str, Any]:
        """Acknowledge or close an alert (audited; announced on the stream)."""
        if not who.can_write:
            raise PermissionDeniedError(f"role {who.role} may not change alerts")
        self.alert(who, alert_id)  # exists and addressed to the caller
        with writing(self.sessions) as s:
            row = s.get(SightingAlertRow, alert_id, with_for_update=True)
            assert row is not None
            allowed = _MANUAL.get(row.status, ())
            if status not in allowed:
                raise ConflictError(
                    f"alert {alert_id} is {row.status}; it may become: {', '.join(allowed) or '-'}"
                )
            self._change(s, who, row, status=status)
        return self.alert(who, alert_id)

    def open_incident(self, who: Principal, alert_id: int) -> dict[str, Any]:
        """Open an incident at the alert's latest sighting (the category of its hotlist
        reason) and link it to the alert; returns the incident."""
        alert = self.alert(who, alert_id)
        if alert["incident_id"] is not None:
            raise ConflictError(f"alert {alert_id} already opened incident {alert['incident_id']}")
        if alert["status"] == "closed":
            raise ConflictError(f"alert {alert_id} is closed")
        if alert["lon"] is None or alert["lat"] is None:
            raise ValidationError(f"alert {alert_id} has no position", field="location")
        notes = f"hotlist alert {alert_id}: {alert['reason']}"
        if alert["case_ref"]:
            notes += f", case {alert['case_ref']}"
        if alert["label"]:
            notes += f", {alert['label']}"
        incident, _ = self.dispatch.create_incident(
            who,
            category=alert["incident_category"],
            lon=alert["lon"],
            lat=alert["lat"],
            priority=alert["priority"],
            caller_notes=notes,
        )
        with writing(self.sessions) as s:
            row = s.get(SightingAlertRow, alert_id, with_for_update=True)
            assert row is not None
            self._change(s, who, row, status="incident", incident_id=incident["id"])
        return incident

    def _change(
        self,
        s: Session,
        who: Principal,
        row: SightingAlertRow,
        *,
        status: str,
        incident_id: str | None = None,
    ) -> None:
        now = self.dispatch.clock()
        before = {"status": row.status, "incident_id": row.incident_id}
        row.status, row.updated_at, row.updated_by = status, now, who.username
        if incident_id is not None:
            row.incident_id = incident_id
        s.flush()
        (out,) = alert_dicts(s, [row])
        append_audit(
            s,
            actor=who.username,
            action="sighting_alert.status",
            entity="sighting_alert",
            entity_id=str(row.id),
            before=before,
            after={"status": status, "incident_id": row.incident_id},
            at=now,
        )
        self.dispatch.sink.stage(s, alert_event(out, "status", who.username, now))

    # ------------------------------------------------------------------ pursuit hand-off
    def pursuit_sighting(self, who: Principal, sighting_id: int) -> SightingFix:
        """A stored sighting to start a pursuit from, if the caller may see it: a hit through
        its alert (the roles of its hotlist; a station officer: alerts sent to its area), a
        sighting that matched nothing only to those who may search sightings."""
        with self.sessions() as s:
            fix = sighting_fix(s, self.pack.name, sighting_id)
        if fix.alert_id is not None:
            self.alert(who, fix.alert_id)  # raises unless the caller may see that alert
        elif who.role not in SEARCH_ROLES:
            raise PermissionDeniedError(
                f"sighting {sighting_id} is not a hotlist hit; role {who.role} may not use it"
            )
        return fix

    def incident_sightings(
        self, who: Principal, incident_id: str, since: datetime, limit: int = 50
    ) -> list[SightingFix]:
        """The sightings linked to an incident, newest first: the hits, seen at or after
        ``since`` (the incident's time), of the hotlist entries whose alerts opened or joined
        it, limited to the alerts the caller may see."""
        with self.sessions() as s:
            linked = select(SightingAlertRow.entry_id).where(
                SightingAlertRow.pack == self.pack.name,
                SightingAlertRow.incident_id == incident_id,
            )
            entries = sorted({int(e) for e in s.scalars(linked)})
            if not entries:
                return []
            query = self._alert_query(s, who).where(SightingAlertRow.entry_id.in_(entries))
            alerts = [a.id for a in s.scalars(query)]
            return sighting_fixes(
                s, self.pack.name, entry_ids=entries, alert_ids=alerts, since=since, limit=limit
            )

    # ------------------------------------------------------------------ tracks and searches
    def track(self, who: Principal, entry_id: int) -> dict[str, Any]:
        """The hits of one hotlist entry as a GeoJSON line (time order) and points, limited to
        the alerts the caller may see."""
        with self.sessions() as s:
            entry = hotlists.get_entry(s, entry_id, who=who)
            alerts = self._alert_query(s, who).where(SightingAlertRow.entry_id == entry_id)
            ids = [a.id for a in s.scalars(alerts)]
            seen = list(
                s.scalars(
                    select(SightingRow)
                    .where(SightingRow.entry_id == entry_id, SightingRow.alert_id.in_(ids))
                    .order_by(SightingRow.seen_at, SightingRow.id)
                )
            )
        points = [x for x in seen if x.lon is not None and x.lat is not None]
        features: list[dict[str, Any]] = []
        if len(points) >= 2:
            features.append(
                {
                    "type": "Feature",
                    "geometry": {
                        "type": "LineString",
                        "coordinates": [[p.lon, p.lat] for p in points],
                    },
                    "properties": {"entry_id": entry_id, "reason": entry.reason},
                }
            )
        features += [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [p.lon, p.lat]},
                "properties": _sighting(p),
            }
            for p in points
        ]
        return {"type": "FeatureCollection", "entry_id": entry_id, "features": features}

    def search_sightings(
        self,
        who: Principal,
        *,
        kind: str,
        value: str,
        purpose: str,
        hashed: bool = False,
        since: datetime | None = None,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        """Every stored sighting of one value (hits and non-hits): admins and commanders only,
        with a purpose; audited (``sightings.search``) with the number returned."""
        if who.role not in SEARCH_ROLES:
            raise PermissionDeniedError(f"role {who.role} may not search sightings")
        why = hotlists.check_purpose(purpose)
        try:
            parsed = SightingKind(kind)
        except ValueError:
            raise ValidationError(f"unknown kind {kind!r}", field="kind") from None
        value_key = self.key.of(parsed, value, hashed=hashed)
        with writing(self.sessions) as s:
            stmt = select(SightingRow).where(
                SightingRow.value_key == value_key, SightingRow.pack == self.pack.name
            )
            if since is not None:
                stmt = stmt.where(SightingRow.seen_at >= since)
            stmt = stmt.order_by(SightingRow.seen_at.desc()).limit(max(1, min(limit, 5000)))
            found = [_sighting(x) for x in s.scalars(stmt)]
            append_audit(
                s,
                actor=who.username,
                action="sightings.search",
                entity="sightings",
                entity_id=None,
                after={"purpose": why, "kind": kind, "since": since, "returned": len(found)},
                at=self.dispatch.clock(),
            )
        return found

    def counts(self, who: Principal) -> dict[str, Any]:
        """Sightings stored, hits and active hotlist entries the caller may read."""
        if who.role not in SEARCH_ROLES:
            raise PermissionDeniedError(f"role {who.role} may not read sighting statistics")
        with self.sessions() as s:
            total, hits = s.execute(
                select(func.count(), func.count().filter(SightingRow.hit.is_(True))).where(
                    SightingRow.pack == self.pack.name
                )
            ).one()
            entries = s.scalar(
                select(func.count())
                .select_from(HotlistEntryRow)
                .where(HotlistEntryRow.status == "active")
            )
        return {
            "sightings": int(total),
            "hits": int(hits),
            "active_entries": int(entries or 0),
            "at": datetime.now(UTC).isoformat(),
        }


def _sighting(row: SightingRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "sensor_id": row.sensor_id,
        "kind": row.kind,
        "value": row.value,
        "confidence": row.confidence,
        "seen_at": row.seen_at.isoformat(),
        "lon": row.lon,
        "lat": row.lat,
        "station": row.station,
        "hit": row.hit,
        "entry_id": row.entry_id,
        "alert_id": row.alert_id,
    }
