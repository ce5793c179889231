"""The dispatcher's console over the live service: intake checks, notes, merges, cautions.

:class:`ConsoleService` wraps a :class:`~citywatch.dispatch.service.DispatchService` and uses its
transactions, scope checks and :meth:`_emit` (timeline + audit + streams), so every change here
is recorded and audited like the service's own.  Incident numbers and the first caller record are
written by the service when it creates the incident (:mod:`citywatch.dispatch.numbering`).

* :meth:`ConsoleService.check`: at intake, the possible duplicates (active incidents of a
  compatible category within R metres and T minutes, :func:`~citywatch.dispatch.duplicates.
  find_duplicates`), the premise history (earlier incidents near the location within the
  category's look-back) and the active caution notes there.
* :meth:`ConsoleService.merge`: a duplicate is merged into the kept incident (EIDO merge
  semantics: the kept one is ``REPLACING``, the duplicate ``REPLACED`` and cancelled); every
  caller record moves to the kept incident, both timelines stay and are shown together.
* Notes with author and time; caution notes on locations (type, severity, expiry), shown at
  intake, in the incident detail and to the assigned units.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from citywatch.city.geocode import DEFAULT_LIMIT, geocoder_for
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.core import ACTIVE_INCIDENT, as_utc
from citywatch.dispatch.duplicates import CAUTION_SEVERITIES, distance_m, find_duplicates
from citywatch.dispatch.lifecycle import IncidentStatus
from citywatch.dispatch.service import DispatchService
from citywatch.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from citywatch.store.console_models import (
    CallerRecord,
    IncidentConsole,
    IncidentNote,
    LocationCaution,
)
from citywatch.store.dispatch_models import Assignment, IncidentDispatch
from citywatch.store.models import IncidentRow

__all__ = ["ConsoleService"]

_M_PER_DEG = 111_195.0
#: Longest note or caution text.
MAX_TEXT = 2000


def _box(lat: float, radius_m: float) -> tuple[float, float]:
    """Half-sizes (degrees of lon, lat) of a box holding a circle of ``radius_m``."""
    dlat = radius_m / _M_PER_DEG
    return dlat / max(math.cos(math.radians(lat)), 1e-6), dlat


@dataclass(frozen=True, slots=True)
class _Call:
    """A call checked at intake: who takes it, where, its category, when, and the incident it
    already is (``exclude``: left out of its own checks)."""

    who: Principal
    lon: float
    lat: float
    category: str
    at: datetime
    exclude: str | None


class ConsoleService:
    """Intake checks, notes, merges and cautions over one :class:`DispatchService`."""

    def __init__(self, service: DispatchService) -> None:
        self.service = service
        self.config = service.console

    # ------------------------------------------------------------------ geocoding
    def prepare(self) -> None:
        """Build the pack's street index now (the service's start) rather than during the
        first geocode, which would otherwise wait for it (about 0.6 s for Baltimore's 7,805
        streets on an idle core, more on a busy one)."""
        geocoder_for(self.service.pack.network)

    def geocode(self, query: str, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
        """Candidates for an address, a crossing or coordinates, over the pack's own names.

        Candidates outside the city pack are dropped.  ``has_names`` is false when the pack's
        network carries no street names (then only coordinates or a map click locate a call).
        """
        geocoder = geocoder_for(self.service.pack.network)
        found = [
            c.as_dict()
            for c in geocoder.geocode(query, limit=limit)
            if self.service.pack.contains(c.lon, c.lat)
        ]
        return {
            "pack": self.service.pack.name,
            "has_names": geocoder.has_names,
            "streets": geocoder.street_count,
            "query": query,
            "candidates": found,
        }

    def preview(
        self,
        who: Principal,
        *,
        lon: float,
        lat: float,
        category: str,
        priority: int | None = None,
        k: int = 5,
        policy: str = "nearest",
    ) -> dict[str, Any]:
        """The recommendation for a call not yet created (the same policy, rules and travel
        times as ``GET /incidents/{id}/recommendations``): shown as soon as the location of a
        call being taken is known."""
        self._check_call(who, lon, lat, category)
        svc = self.service
        svc._check_on_network(lon, lat, "car", field="location")
        where = svc._jurisdictions(lon, lat)
        out = svc.recommend_at(
            lon,
            lat,
            category=category,
            priority=svc.taxonomy.priority(category) if priority is None else priority,
            station=where["station"],
            k=k,
            ref="preview",
            policy=policy,
            place_kinds=frozenset(svc._place_kinds(lon, lat)),
        ).as_dict()
        out["incident_id"] = None
        return out

    # ------------------------------------------------------------------ views
    def decorate(self, incidents: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add number, typed address and merge target to incident dicts (one query)."""
        ids = [str(i["id"]) for i in incidents]
        if not ids:
            return incidents
        with self.service.sessions() as s:
            rows = {
                c.incident_id: c
                for c in s.scalars(
                    select(IncidentConsole).where(IncidentConsole.incident_id.in_(ids))
                )
            }
        for item in incidents:
            c = rows.get(str(item["id"]))
            item["number"] = c.number if c else None
            item["location_text"] = c.location_text if c else None
            item["merged_into"] = c.merged_into if c else None
        return incidents

    def _visible(self, who: Principal) -> Any:
        """Extra WHERE clause limiting incidents to a station officer's scope (or True)."""
        if who.role is Role.STATION_OFFICER:
            return (IncidentRow.station == who.scope) | (IncidentRow.bureau == who.scope)
        return True

    def _reader(self, who: Principal) -> None:
        if who.role is Role.UNIT_DEVICE:
            raise PermissionDeniedError("a unit device may only post its own position and status")

    # ------------------------------------------------------------------ intake checks
    def check(
        self,
        who: Principal,
        *,
        lon: float,
        lat: float,
        category: str,
        at: datetime | None = None,
        exclude: str | None = None,
    ) -> dict[str, Any]:
        """What the dispatcher must see before creating a call at ``(lon, lat)``."""
        self._check_call(who, lon, lat, category)
        svc = self.service
        now = as_utc(at, "at") if at is not None else svc.clock()
        call = _Call(who, lon, lat, category, now, exclude)
        with svc.sessions() as s:
            duplicates = self._duplicates(s, call)
            premise = self._premise(s, call)
            cautions = self._cautions_at(s, who, lon, lat, now)
        return {
            "location": {"lon": lon, "lat": lat, **svc._jurisdictions(lon, lat)},
            "duplicates": duplicates,
            "premise": premise,
            "cautions": cautions,
        }

    def _check_call(self, who: Principal, lon: float, lat: float, category: str) -> None:
        """A call being taken: ``who`` may read incidents, the category is known and the
        location lies in the pack."""
        self._reader(who)
        if category not in self.service.taxonomy.categories:
            raise ValidationError(f"unknown category {category!r}", field="category")
        self.service._validate_point(lon, lat, field="location")

    def _near(
        self, call: _Call, radius_m: float, since: datetime, until: datetime
    ) -> Select[IncidentRow, IncidentConsole]:
        """The one query of the intake checks: incidents received in ``[since, until]`` in the
        box around the circle of ``radius_m`` at the call (the caller measures the exact
        distance), in the call taker's scope, the call's own incident left out, each with its
        console record (``None`` for an incident that has none, such as an imported one)."""
        lon, lat = call.lon, call.lat
        dlon, dlat = _box(lat, radius_m)
        query = (
            select(IncidentRow, IncidentConsole)
            .join(IncidentConsole, IncidentConsole.incident_id == IncidentRow.id, isouter=True)
            .where(
                IncidentRow.received_at >= since,
                IncidentRow.received_at <= until,
                IncidentRow.lon.between(lon - dlon, lon + dlon),
                IncidentRow.lat.between(lat - dlat, lat + dlat),
                self._visible(call.who),
            )
        )
        return query if call.exclude is None else query.where(IncidentRow.id != call.exclude)

    def _duplicates(self, s: Session, call: _Call) -> dict[str, Any]:
        cfg = self.config
        window = timedelta(seconds=cfg.duplicate_window_s)
        query = (
            self._near(call, cfg.duplicate_radius_m, call.at - window, call.at + window)
            .add_columns(IncidentDispatch)
            .join(IncidentDispatch, IncidentDispatch.incident_id == IncidentRow.id)
            .where(IncidentDispatch.status.in_([str(x) for x in ACTIVE_INCIDENT]))
        )
        found: dict[str, tuple[IncidentRow, IncidentDispatch, IncidentConsole | None]] = {}
        active = []
        for row, console, state in s.execute(query):
            if row.lon is None or row.lat is None:
                continue
            if console is not None and console.merged_into:
                continue
            found[row.id] = (row, state, console)
            active.append((row.id, row.lon, row.lat, row.category, row.received_at))
        matches = find_duplicates(
            (call.lon, call.lat, call.category, call.at), active, cfg, self.service.taxonomy
        )
        out = []
        for m in matches:
            row, state, known = found[m.incident_id]
            item = self.service._incident_dict(row, state)
            item["number"] = known.number if known else None
            item["distance_m"] = round(m.distance_m, 1)
            item["age_s"] = round(m.age_s, 1)
            out.append(item)
        return {
            "radius_m": cfg.duplicate_radius_m,
            "window_min": cfg.duplicate_window_s / 60.0,
            "incidents": out,
        }

    def _premise(self, s: Session, call: _Call) -> dict[str, Any]:
        cfg = self.config
        days = cfg.lookback_days(call.category, self.service.taxonomy)
        since = call.at - timedelta(days=days)
        query = self._near(call, cfg.premise_radius_m, since, call.at).order_by(
            IncidentRow.received_at.desc()
        )
        hits = []
        for row, console in s.execute(query):
            if row.lon is None or row.lat is None:
                continue
            d = distance_m(call.lon, call.lat, row.lon, row.lat)
            if d <= cfg.premise_radius_m:
                hits.append((row, console.number if console else None, d))
        tax = self.service.taxonomy
        listed = [
            {
                "id": row.id,
                "number": number,
                "source": row.source,
                "category": row.category,
                "category_label": {
                    "en": tax.label(row.category, "en") if row.category in tax else row.category,
                    "zh": tax.label(row.category, "zh") if row.category in tax else row.category,
                },
                "received_at": row.received_at,
                "distance_m": round(d, 1),
            }
            for row, number, d in hits[: cfg.premise_max_listed]
        ]
        return {
            "count": len(hits),
            "radius_m": cfg.premise_radius_m,
            "lookback_days": days,
            "incidents": listed,
        }

    # ------------------------------------------------------------------ cautions
    def _caution_dict(
        self, c: LocationCaution, lon: float | None = None, lat: float | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": c.id,
            "lon": c.lon,
            "lat": c.lat,
            "radius_m": c.radius_m,
            "kind": c.kind,
            "severity": c.severity,
            "text": c.text,
            "station": c.station,
            "created_by": c.created_by,
            "created_at": c.created_at,
            "expires_at": c.expires_at,
            "revoked_at": c.revoked_at,
        }
        if lon is not None and lat is not None:
            out["distance_m"] = round(distance_m(lon, lat, c.lon, c.lat), 1)
        return out

    def _may_revoke(self, who: Principal, c: LocationCaution) -> bool:
        """Whether ``who`` may revoke the caution (what :meth:`revoke_caution` checks)."""
        return who.can_write and self.service._in_scope(who, c.station)

    def _viewed(
        self,
        who: Principal,
        c: LocationCaution,
        lon: float | None = None,
        lat: float | None = None,
    ) -> dict[str, Any]:
        """A caution as ``who`` reads it: with ``may_revoke``, so that a page offers **Revoke**
        only to whom the server allows it."""
        return {**self._caution_dict(c, lon, lat), "may_revoke": self._may_revoke(who, c)}

    def _cautions_at(
        self, s: Session, who: Principal, lon: float, lat: float, now: datetime
    ) -> list[dict[str, Any]]:
        """Active cautions whose circle holds ``(lon, lat)``, most severe first, as ``who``
        reads them."""
        widest = 2000.0
        dlon, dlat = _box(lat, widest)
        rows = s.scalars(
            select(LocationCaution).where(
                LocationCaution.pack == self.service.pack.name,
                LocationCaution.revoked_at.is_(None),
                LocationCaution.lat.between(lat - dlat, lat + dlat),
                LocationCaution.lon.between(lon - dlon, lon + dlon),
            )
        )
        out = [
            self._viewed(who, c, lon, lat)
            for c in rows
            if (c.expires_at is None or c.expires_at > now)
            and distance_m(lon, lat, c.lon, c.lat) <= c.radius_m
        ]
        out.sort(key=lambda c: (CAUTION_SEVERITIES.index(c["severity"]), c["distance_m"], c["id"]))
        return out

    def create_caution(
        self,
        who: Principal,
        *,
        lon: float,
        lat: float,
        kind: str,
        severity: str,
        text: str,
        radius_m: float | None = None,
        expires_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Record a caution note on a location (audited)."""
        svc = self.service
        svc._require_write(who)
        svc._validate_point(lon, lat, field="location")
        if kind not in self.config.caution_kinds:
            raise ValidationError(
                f"unknown caution kind {kind!r}; one of {', '.join(self.config.caution_kinds)}",
                field="kind",
            )
        if severity not in CAUTION_SEVERITIES:
            raise ValidationError(
                f"severity must be one of {', '.join(CAUTION_SEVERITIES)}", field="severity"
            )
        text = text.strip()
        if not 1 <= len(text) <= MAX_TEXT:
            raise ValidationError(f"text must be 1 to {MAX_TEXT} characters", field="text")
        radius = self.config.caution_radius_m if radius_m is None else float(radius_m)
        if not 0 < radius <= 2000:
            raise ValidationError("radius_m must be in (0, 2000]", field="radius_m")
        now = svc.clock()
        expires = None
        if expires_at is not None:
            expires = as_utc(expires_at, "expires_at")
            if expires <= now:
                raise ValidationError("expires_at must be in the future", field="expires_at")
        where = svc._jurisdictions(lon, lat)
        svc._check_scope(who, where["station"], "the caution's location")
        with svc._write() as s:
            c = LocationCaution(
                pack=svc.pack.name,
                lon=lon,
                lat=lat,
                radius_m=radius,
                kind=kind,
                severity=severity,
                text=text,
                station=where["station"],
                bureau=where["bureau"],
                created_by=who.username,
                created_at=now,
                expires_at=expires,
            )
            s.add(c)
            s.flush()
            out = self._caution_dict(c)
            svc._emit(s, who.username, "caution.created", station=c.station, data=out)
        return out

    def list_cautions(
        self, who: Principal, *, lon: float | None = None, lat: float | None = None
    ) -> list[dict[str, Any]]:
        """Active cautions at a point, or every active caution of the pack in the caller's scope."""
        self._reader(who)
        now = self.service.clock()
        with self.service.sessions() as s:
            if lon is not None and lat is not None:
                return self._cautions_at(s, who, lon, lat, now)
            rows = s.scalars(
                select(LocationCaution)
                .where(
                    LocationCaution.pack == self.service.pack.name,
                    LocationCaution.revoked_at.is_(None),
                )
                .order_by(LocationCaution.id)
            )
            return [
                self._viewed(who, c)
                for c in rows
                if (c.expires_at is None or c.expires_at > now) and who.sees(c.bureau, c.station)
            ]

    def revoke_caution(self, who: Principal, caution_id: int) -> dict[str, Any]:
        """End a caution note before its expiry (audited)."""
        svc = self.service
        svc._require_write(who)
        with svc._write() as s:
            c = s.get(LocationCaution, caution_id, with_for_update=True)
            if c is None or c.pack != svc.pack.name:
                raise NotFoundError(f"no caution {caution_id}", field="caution_id")
            svc._check_scope(who, c.station, f"caution {caution_id}")
            if c.revoked_at is not None:
                raise ConflictError(f"caution {caution_id} is already revoked")
            before = self._caution_dict(c)
            c.revoked_at, c.revoked_by = svc.clock(), who.username
            out = self._caution_dict(c)
            svc._emit(
                s, who.username, "caution.revoked", station=c.station, data=out, before=before
            )
        return out

    def unit_cautions(self, who: Principal, unit_id: str) -> dict[str, Any]:
        """The cautions at the location of the unit's current incident (a device: its own)."""
        svc = self.service
        with svc.sessions() as s:
            unit = svc._get_unit(s, unit_id)
            if who.role is Role.UNIT_DEVICE:
                if who.unit_id != unit.id:
                    raise PermissionDeniedError(
                        f"this device speaks for unit {who.unit_id}, not {unit.id}"
                    )
            else:
                svc._check_scope(who, unit.station, f"unit {unit.id}")
            if unit.incident_id is None:
                return {"unit_id": unit.id, "incident_id": None, "cautions": []}
            row = s.get(IncidentRow, unit.incident_id)
            if row is None or row.lon is None or row.lat is None:
                return {"unit_id": unit.id, "incident_id": unit.incident_id, "cautions": []}
            return {
                "unit_id": unit.id,
                "incident_id": row.id,
                "cautions": self._cautions_at(s, who, row.lon, row.lat, svc.clock()),
            }

    # ------------------------------------------------------------------ notes
    def add_note(self, who: Principal, incident_id: str, text: str) -> dict[str, Any]:
        """Append a note to an incident, with author and time (timeline + audit)."""
        svc = self.service
        svc._require_write(who)
        text = text.strip()
        if not 1 <= len(text) <= MAX_TEXT:
            raise ValidationError(f"text must be 1 to {MAX_TEXT} characters", field="text")
        with svc._write() as s:
            svc._get_incident(s, who, incident_id)
            row, _state = svc._lock_incident(s, incident_id)
            note = IncidentNote(
                incident_id=incident_id, at=svc.clock(), author=who.username, text=text
            )
            s.add(note)
            s.flush()
            out = {
                "id": note.id,
                "incident_id": incident_id,
                "at": note.at,
                "author": note.author,
                "text": text,
            }
            svc._emit(
                s,
                who.username,
                "incident.note",
                incident_id=incident_id,
                station=row.station,
                data=out,
            )
        return out

    # ------------------------------------------------------------------ merge
    def merge(self, who: Principal, keep_id: str, duplicate_id: str) -> dict[str, Any]:
        """Merge ``duplicate_id`` into ``keep_id``: its callers move over, it is cancelled.

        Both incidents are locked in id order (the service's lock order for incidents); the
        duplicate must be active, have no unit assigned and not be merged already, the kept one
        must be active.  Recorded on both timelines (``incident.merged``) and audited.
        """
        svc = self.service
        svc._require_write(who)
        if keep_id == duplicate_id:
            raise ValidationError("an incident cannot be merged into itself", field="duplicate_id")
        now = svc.clock()
        with svc._write() as s:
            for iid in (keep_id, duplicate_id):
                svc._get_incident(s, who, iid)
            locked = {iid: svc._lock_incident(s, iid) for iid in sorted((keep_id, duplicate_id))}
            keep_row, keep_state = locked[keep_id]
            dup_row, dup_state = locked[duplicate_id]
            for iid, state in ((keep_id, keep_state), (duplicate_id, dup_state)):
                if state.status not in ACTIVE_INCIDENT:
                    raise ConflictError(f"incident {iid} is {state.status}: it cannot be merged")
            consoles = {
                c.incident_id: c
                for c in s.scalars(
                    select(IncidentConsole)
                    .where(IncidentConsole.incident_id.in_([keep_id, duplicate_id]))
                    .with_for_update()
                )
            }
            for iid in (keep_id, duplicate_id):
                c = consoles.get(iid)
                if c is None:
                    raise ConflictError(
                        f"incident {iid} has no console record: it cannot be merged"
                    )
                if c.merged_into:
                    raise ConflictError(f"incident {iid} is already merged into {c.merged_into}")
            busy = s.scalar(
                select(Assignment.unit_id).where(
                    Assignment.incident_id == duplicate_id, Assignment.active
                )
            )
            if busy is not None:
                raise ConflictError(
                    f"incident {duplicate_id} has unit {busy} assigned: release it before merging"
                )
            moved = list(
                s.scalars(select(CallerRecord).where(CallerRecord.incident_id == duplicate_id))
            )
            for rec in moved:
                rec.incident_id = keep_id
            dup_console = consoles[duplicate_id]
            dup_console.merged_into, dup_console.merged_at, dup_console.merged_by = (
                keep_id,
                now,
                who.username,
            )
            svc._set_incident_status(s, who, dup_row, dup_state, IncidentStatus.CANCELLED, now)
            data = {
                "kept": keep_id,
                "kept_number": consoles[keep_id].number,
                "replaced": duplicate_id,
                "replaced_number": dup_console.number,
                "callers_moved": len(moved),
                "at": now,
            }
            svc._emit(
                s,
                who.username,
                "incident.merged",
                incident_id=keep_id,
                station=keep_row.station,
                data={**data, "direction": "REPLACING"},
            )
            svc._emit(
                s,
                who.username,
                "incident.merged",
                incident_id=duplicate_id,
                station=dup_row.station,
                data={**data, "direction": "REPLACED"},
                before={"merged_into": None},
            )
        return data

    # ------------------------------------------------------------------ detail
    def detail(self, who: Principal, incident_id: str) -> dict[str, Any]:
        """The incident with number, callers, notes, merges, cautions and the timelines of every
        incident merged into it (each event names its incident)."""
        svc = self.service
        out = svc.get_incident(who, incident_id)
        self.decorate([out])
        with svc.sessions() as s:
            merged = list(
                s.scalars(select(IncidentConsole).where(IncidentConsole.merged_into == incident_id))
            )
            out["callers"] = [
                {
                    "id": c.id,
                    "received_at": c.received_at,
                    "taken_by": c.taken_by,
                    "notes": c.notes,
                    "location_text": c.location_text,
                    "lon": c.lon,
                    "lat": c.lat,
                    "original_incident_id": c.original_incident_id,
                }
                for c in s.scalars(
                    select(CallerRecord)
                    .where(CallerRecord.incident_id == incident_id)
                    .order_by(CallerRecord.received_at, CallerRecord.id)
                )
            ]
            out["notes"] = [
                {"id": n.id, "at": n.at, "author": n.author, "text": n.text}
                for n in s.scalars(
                    select(IncidentNote)
                    .where(IncidentNote.incident_id == incident_id)
                    .order_by(IncidentNote.id)
                )
            ]
            merges = [
                {
                    "incident_id": m.incident_id,
                    "number": m.number,
                    "direction": "REPLACING",
                    "at": m.merged_at,
                }
                for m in merged
            ]
            own = s.get(IncidentConsole, incident_id)
            if own is not None and own.merged_into:
                target = s.get(IncidentConsole, own.merged_into)
                merges.append(
                    {
                        "incident_id": own.merged_into,
                        "number": target.number if target else None,
                        "direction": "REPLACED",
                        "at": own.merged_at,
                    }
                )
            out["merges"] = merges
            if out.get("lon") is not None and out.get("lat") is not None:
                out["cautions"] = self._cautions_at(s, who, out["lon"], out["lat"], svc.clock())
            else:
                out["cautions"] = []
        for event in out["timeline"]:
            event.setdefault("incident_id", incident_id)
        for m in merged:
            other = svc.get_incident(who, m.incident_id)
            for event in other["timeline"]:
                out["timeline"].append({**event, "incident_id": m.incident_id})
        out["timeline"].sort(key=lambda e: e["at"])
        return out

    def numbers_of(self, ids: Iterable[str]) -> dict[str, str]:
        """Incident id -> number, for the ids that have one."""
        wanted = list(ids)
        with self.service.sessions() as s:
            return {
                c.incident_id: c.number
                for c in s.scalars(
                    select(IncidentConsole).where(IncidentConsole.incident_id.in_(wanted))
                )
            }
