"""The e-bike registry (电动车物联网): tagged e-bikes, their theft reports, the hotlist link.

A city registers e-bikes by the id of the tag fitted to them; roadside tag readers are sensors
of kind ``ebike_tag_reader`` in the sensor registry (:mod:`citywatch.surveillance.store`).
Reporting a theft marks the bike stolen, records the theft (time, place, the station whose area
holds it) as an incident of category ``ebike_theft`` (source ``ebike_registry``, so the
statistics count it with the imported thefts) and puts the tag on the ``stolen_ebikes`` hotlist
(:func:`citywatch.surveillance.hotlists.add_entry`), all in one transaction: a tag reader's
read of that tag is then a hotlist hit, and the sightings service alerts the station whose area
holds the reader.  Recovering the bike withdraws the entry.

**Data minimisation.**  The registry keeps what finding a stolen bike needs and no more (see
:mod:`citywatch.store.ebike_models`): the tag only as its keyed hash (the sightings value key:
a read matches it, nobody can list the tags) plus its last four characters; the make and colour;
the station; and at most one owner contact, a telephone number or an e-mail address, optional.
No names, identity numbers, addresses or pictures.  The contact is shown only to admins,
commanders and the officers of the bike's station, never written to the audit trail (the audit
says whether one was given), and deleted with the bike when it is deregistered.

**Roles.**  Admins, commanders and station officers (in their own area) register, report,
recover and deregister; dispatchers read bikes and reports without contacts; analysts see only
the aggregate statistics (:mod:`citywatch.surveillance.ebike_stats`); unit devices see nothing.
Every change is audited in the same transaction (``ebike.*``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from citywatch.city import CityPack
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.audit import append_audit
from citywatch.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from citywatch.incidents.storage import insert_incidents
from citywatch.store.db import writing
from citywatch.store.ebike_models import EBikeRow, EBikeTheftReportRow
from citywatch.store.theft_models import TheftDescriptionRow
from citywatch.surveillance.ebike_thefts import REGISTRY_KIND, describe
from citywatch.surveillance.hotlists import NewEntry, add_entry, withdraw_entry
from citywatch.surveillance.matching import HotlistReason, SightingKind, ValueKey, normalise

__all__ = [
    "CHANGE_ROLES",
    "EBIKE_CATEGORY",
    "EBIKE_SOURCE",
    "READ_ROLES",
    "EBikeRegistry",
    "check_contact",
]

#: The incident category and source of a theft reported to the registry.
EBIKE_CATEGORY: Final = "ebike_theft"
EBIKE_SOURCE: Final = "ebike_registry"
#: Who may change the registry (station officers only in their own area) and who may read it.
CHANGE_ROLES: Final = frozenset({Role.ADMIN, Role.COMMANDER, Role.STATION_OFFICER})
READ_ROLES: Final = CHANGE_ROLES | {Role.DISPATCHER}
_HINT = 4
_PHONE = re.compile(r"^\+?[0-9][0-9 ()\-]{5,22}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[A-Za-z]{2,}$")
_LIMITS: Final = {"make": 64, "colour": 32, "note": 500}


def check_contact(contact: str | None) -> str | None:
    """The owner contact, trimmed: a telephone number or an e-mail address, or None.

    Raises
    ------
    ValidationError
        For anything else (a name, an address...): the registry keeps nothing else.
    """
    if contact is None or not contact.strip():
        return None
    text = contact.strip()
    if len(text) <= 120 and (_PHONE.match(text) or _EMAIL.match(text)):
        return text
    raise ValidationError(
        "the owner contact must be one telephone number or e-mail address (nothing else is kept)",
        field="contact",
    )


def _text(value: str | None, name: str) -> str | None:
    if value is None or not value.strip():
        return None
    text = " ".join(value.split())
    if len(text) > _LIMITS[name]:
        raise ValidationError(f"{name} is longer than {_LIMITS[name]} characters", field=name)
    return text


@dataclass(frozen=True)
class _Bike:
    row: EBikeRow

    def to_dict(self, with_contact: bool) -> dict[str, Any]:
        r = self.row
        return {
            "id": r.id,
            "tag_hint": r.tag_hint,
            "make": r.make,
            "colour": r.colour,
            "contact": r.contact if with_contact else None,
            "has_contact": r.contact is not None,
            "bureau": r.bureau,
            "station": r.station,
            "status": r.status,
            "registered_at": r.registered_at.isoformat(),
            "updated_at": r.updated_at.isoformat(),
        }


def _report_dict(
    r: EBikeTheftReportRow, items: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A theft report; ``items`` is what was stolen (make and colour at the time of the theft,
    :func:`citywatch.surveillance.ebike_thefts.describe`)."""
    return {
        "id": r.id,
        "ebike_id": r.ebike_id,
        "tag_hint": r.tag_hint,
        "occurred_at": r.occurred_at.isoformat(),
        "reported_at": r.reported_at.isoformat(),
        "lon": r.lon,
        "lat": r.lat,
        "bureau": r.bureau,
        "station": r.station,
        "status": r.status,
        "incident_id": r.incident_id,
        "hotlist_entry_id": r.hotlist_entry_id,
        "recovered_at": None if r.recovered_at is None else r.recovered_at.isoformat(),
        "items": items or [],
    }


class EBikeRegistry:
    """The e-bike registry of one city pack, with role, scope and audit (module docstring).

    Parameters
    ----------
    sessions : sessionmaker
        Sessions on a migrated database.
    pack : CityPack
        The city: stations and the areas theft locations fall in.
    key : ValueKey, optional
        The sightings key (the tag's hash must match the readers' reads); default
        :meth:`ValueKey.open`.
    """

    def __init__(
        self, sessions: sessionmaker[Session], pack: CityPack, key: ValueKey | None = None
    ) -> None:
        self.sessions = sessions
        self.pack = pack
        self.key = key or ValueKey.open()

    # -- checks ---------------------------------------------------------------------------
    def _tag(self, tag: str) -> tuple[str, str]:
        normal = normalise(SightingKind.EBIKE_TAG, tag)
        if not 4 <= len(normal) <= 64:
            raise ValidationError("an e-bike tag has 4 to 64 characters", field="tag")
        return self.key.of_normal(SightingKind.EBIKE_TAG, normal), normal[-_HINT:]

    def _can_read(self, who: Principal) -> None:
        if who.role not in READ_ROLES:
            raise PermissionDeniedError(f"role {who.role} may not read the e-bike registry")

    def _can_change(self, who: Principal, bureau: str | None, station: str | None) -> None:
        if who.role not in CHANGE_ROLES:
            raise PermissionDeniedError(f"role {who.role} may not change the e-bike registry")
        if not who.sees(bureau, station):
            raise PermissionDeniedError(f"station {station} is outside your scope")

    def _sees_contact(self, who: Principal, row: EBikeRow) -> bool:
        return who.role in CHANGE_ROLES and who.sees(row.bureau, row.station)

    def _station(self, who: Principal, station: str | None) -> tuple[str | None, str]:
        chosen = station or (who.scope if who.role is Role.STATION_OFFICER else None)
        if chosen is None:
            raise ValidationError("name the registering station", field="station")
        return self.pack.jurisdiction(chosen).parent, chosen

    def _bike(self, s: Session, tag: str) -> EBikeRow:
        tag_key, _ = self._tag(tag)
        row = s.scalar(
            select(EBikeRow).where(EBikeRow.pack == self.pack.name, EBikeRow.tag_key == tag_key)
        )
        if row is None:
            raise NotFoundError("no e-bike with that tag is registered")
        return row

    # -- reading --------------------------------------------------------------------------
    def get(self, who: Principal, tag: str) -> dict[str, Any]:
        """One bike by its tag, with its theft reports."""
        self._can_read(who)
        with self.sessions() as s:
            row = self._bike(s, tag)
            if not who.sees(row.bureau, row.station):
                raise PermissionDeniedError("that e-bike is registered outside your scope")
            reports = list(
                s.scalars(
                    select(EBikeTheftReportRow)
                    .where(EBikeTheftReportRow.ebike_id == row.id)
                    .order_by(EBikeTheftReportRow.id)
                )
            )
            items = describe(s, [r.incident_id for r in reports])
            doc = _Bike(row).to_dict(self._sees_contact(who, row))
            doc["theft_reports"] = [_report_dict(r, items.get(r.incident_id)) for r in reports]
            return doc

    def bikes(
        self, who: Principal, *, station: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """Bikes in the caller's scope (optionally of one station or status), by id."""
        self._can_read(who)
        stmt = select(EBikeRow).where(EBikeRow.pack == self.pack.name).order_by(EBikeRow.id)
        if station is not None:
            stmt = stmt.where(EBikeRow.station == station)
        if status is not None:
            stmt = stmt.where(EBikeRow.status == status)
        with self.sessions() as s:
            rows = [r for r in s.scalars(stmt) if who.sees(r.bureau, r.station)]
            return [_Bike(r).to_dict(self._sees_contact(who, r)) for r in rows]

    def reports(self, who: Principal, *, status: str | None = None) -> list[dict[str, Any]]:
        """Theft reports in the caller's scope, newest first."""
        self._can_read(who)
        stmt = select(EBikeTheftReportRow).where(EBikeTheftReportRow.pack == self.pack.name)
        if status is not None:
            stmt = stmt.where(EBikeTheftReportRow.status == status)
        with self.sessions() as s:
            rows = [
                r
                for r in s.scalars(stmt.order_by(EBikeTheftReportRow.id.desc()))
                if who.sees(r.bureau, r.station)
            ]
            items = describe(s, [r.incident_id for r in rows])
            return [_report_dict(r, items.get(r.incident_id)) for r in rows]

    # -- changes --------------------------------------------------------------------------
    def register(
        self,
        who: Principal,
        tag: str,
        *,
        make: str | None = None,
        colour: str | None = None,
        contact: str | None = None,
        station: str | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Register a bike at a station (a station officer's own by default); audited.

        Raises
        ------
        ConflictError
            When the tag is registered already.
        """
        at = now or datetime.now(UTC)
        bureau, station_id = self._station(who, station)
        self._can_change(who, bureau, station_id)
        tag_key, hint = self._tag(tag)
        values = {
            "make": _text(make, "make"),
            "colour": _text(colour, "colour"),
            "contact": check_contact(contact),
        }
        with writing(self.sessions) as s:
            taken = s.scalar(
                select(EBikeRow.id).where(
                    EBikeRow.pack == self.pack.name, EBikeRow.tag_key == tag_key
                )
            )
            if taken is not None:
                raise ConflictError(f"tag …{hint} is registered already (e-bike {taken})")
            row = EBikeRow(
                pack=self.pack.name,
                tag_key=tag_key,
                tag_hint=hint,
                bureau=bureau,
                station=station_id,
                status="registered",
                registered_by=who.username,
                registered_at=at,
                updated_at=at,
                **values,
            )
            s.add(row)
            s.flush()
            self._audit(s, who, "ebike.register", row, None, at)
            return _Bike(row).to_dict(True)

    def deregister(
        self, who: Principal, tag: str, *, now: datetime | None = None
    ) -> dict[str, Any]:
        """Delete a bike and its owner contact (its theft reports stay, unlinked); audited."""
        at = now or datetime.now(UTC)
        with writing(self.sessions) as s:
            row = self._bike(s, tag)
            self._can_change(who, row.bureau, row.station)
            if row.status == "stolen":
                raise ConflictError("a stolen e-bike cannot be deregistered: recover it first")
            before = self._summary(row)
            doc = _Bike(row).to_dict(False)
            s.delete(row)
            append_audit(
                s,
                actor=who.username,
                action="ebike.deregister",
                entity="ebike",
                entity_id=f"{self.pack.name}:{before['id']}",
                before=before,
                after=None,
                at=at,
            )
            return doc

    def report_theft(
        self,
        who: Principal,
        tag: str,
        *,
        occurred_at: datetime,
        lon: float | None = None,
        lat: float | None = None,
        note: str | None = None,
        legal_basis: str = "theft report to the police",
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Report a registered bike stolen: incident, hotlist entry, report; one transaction.

        The theft belongs to the station whose area holds its location (the registering
        station when no location is given); the caller must see that station.

        Raises
        ------
        ConflictError
            When the bike is already reported stolen.
        ValidationError
            For a time in the future or without a time zone, or a location outside the city.
        """
        at = now or datetime.now(UTC)
        if occurred_at.tzinfo is None or occurred_at > at:
            raise ValidationError(
                "the theft time needs a time zone and must not be in the future",
                field="occurred_at",
            )
        with writing(self.sessions) as s:
            row = self._bike(s, tag)
            bureau, station = self._where(lon, lat, row)
            self._can_change(who, bureau, station)
            self._can_change(who, row.bureau, row.station)
            if row.status == "stolen":
                raise ConflictError(f"e-bike {row.id} is already reported stolen")
            report = EBikeTheftReportRow(
                pack=self.pack.name,
                ebike_id=row.id,
                tag_hint=row.tag_hint,
                occurred_at=occurred_at.astimezone(UTC),
                reported_at=at,
                lon=lon,
                lat=lat,
                bureau=bureau,
                station=station,
                note=_text(note, "note"),
                status="open",
                incident_id="",
                reported_by=who.username,
            )
            s.add(report)
            s.flush()
            report.incident_id = self._incident(s, report)
            # what was stolen, as registered at the time of the theft (the bike may change)
            s.add(
                TheftDescriptionRow(
                    incident_id=report.incident_id,
                    item=0,
                    kind=REGISTRY_KIND,
                    make=row.make,
                    colour=row.colour,
                )
            )
            items = [{"kind": REGISTRY_KIND, "make": row.make, "colour": row.colour}]
            label = " ".join(v for v in (row.colour, row.make) if v) or None
            entry = add_entry(
                s,
                NewEntry(
                    kind=SightingKind.EBIKE_TAG.value,
                    value=tag,
                    reason=HotlistReason.STOLEN_EBIKE.value,
                    owner=f"station {station}" if station else "city",
                    legal_basis=legal_basis,
                    case_ref=report.incident_id,
                    label=label,
                    source=EBIKE_SOURCE,
                ),
                actor=who.username,
                purpose=f"stolen e-bike {row.id}, theft report {report.id}",
                who=who,
                key=self.key,
                now=at,
            )
            report.hotlist_entry_id = entry.id
            before = self._summary(row)
            row.status = "stolen"
            row.updated_at = at
            doc = _report_dict(report, items)
            self._audit(s, who, "ebike.theft_report", row, before, at, report=doc)
            return doc

    def recover(self, who: Principal, tag: str, *, now: datetime | None = None) -> dict[str, Any]:
        """The bike was found: close its open report, withdraw the hotlist entry; audited."""
        at = now or datetime.now(UTC)
        with writing(self.sessions) as s:
            row = self._bike(s, tag)
            self._can_change(who, row.bureau, row.station)
            report = s.scalar(
                select(EBikeTheftReportRow).where(
                    EBikeTheftReportRow.ebike_id == row.id, EBikeTheftReportRow.status == "open"
                )
            )
            if row.status != "stolen" or report is None:
                raise ConflictError(f"e-bike {row.id} is not reported stolen")
            if report.hotlist_entry_id is not None:
                withdraw_entry(
                    s,
                    report.hotlist_entry_id,
                    actor=who.username,
                    purpose=f"e-bike {row.id} recovered (theft report {report.id})",
                    who=who,
                    now=at,
                )
            before = self._summary(row)
            report.status = "recovered"
            report.recovered_at = at
            row.status = "registered"
            row.updated_at = at
            doc = _report_dict(report, describe(s, [report.incident_id]).get(report.incident_id))
            self._audit(s, who, "ebike.recover", row, before, at, report=doc)
            return doc

    # -- helpers --------------------------------------------------------------------------
    def _where(
        self, lon: float | None, lat: float | None, row: EBikeRow
    ) -> tuple[str | None, str | None]:
        if lon is None or lat is None:
            if lon is not None or lat is not None:
                raise ValidationError("give both lon and lat, or neither", field="lon")
            return row.bureau, row.station
        located = self.pack.locate_many([lon], [lat]).iloc[0]
        if pd.isna(located["city"]):
            raise ValidationError(f"the theft location is outside {self.pack.name}", field="lon")
        station = None if pd.isna(located["station"]) else str(located["station"])
        bureau = None if pd.isna(located.get("bureau")) else str(located["bureau"])
        return bureau, station

    def _incident(self, s: Session, report: EBikeTheftReportRow) -> str:
        source_id = f"{self.pack.name}:{report.id}"
        frame = pd.DataFrame(
            {
                "id": [f"{EBIKE_SOURCE}:{source_id}"],
                "source": [EBIKE_SOURCE],
                "source_id": [source_id],
                "received_at": [pd.Timestamp(report.occurred_at)],
                "time_precision": ["exact"],
                "category": [EBIKE_CATEGORY],
                "lon": [report.lon],
                "lat": [report.lat],
                "bureau": [report.bureau],
                "station": [report.station],
            }
        )
        insert_incidents(s.connection(), frame)
        return str(frame["id"].iloc[0])

    @staticmethod
    def _summary(row: EBikeRow) -> dict[str, Any]:
        """What the audit keeps of a bike: no contact, only whether there is one."""
        return {
            "id": row.id,
            "tag_hint": row.tag_hint,
            "make": row.make,
            "colour": row.colour,
            "has_contact": row.contact is not None,
            "station": row.station,
            "status": row.status,
        }

    def _audit(
        self,
        s: Session,
        who: Principal,
        action: str,
        row: EBikeRow,
        before: dict[str, Any] | None,
        at: datetime,
        **extra: Any,
    ) -> None:
        append_audit(
            s,
            actor=who.username,
            action=action,
            entity="ebike",
            entity_id=f"{self.pack.name}:{row.id}",
            before=before,
            after={**self._summary(row), **extra},
            at=at,
        )
