"""NENA EIDO (NENA-STA-021.1, JSON) <-> CityWatch incidents, as pure conversions.

An :class:`EidoIncident` is what CityWatch knows about one incident: the canonical record
(:class:`citywatch.incidents.record.Incident`) plus, for a live incident, its status, the
units sent to it, its notes and timeline, caution notes and merges. :func:`to_eido` turns it
into one EIDO document (a JSON-ready ``dict``); :func:`from_eido` reads one back, so that
``from_eido(to_eido(x)) == x`` for every incident. The field mapping is the table in
``docs/incidents.md`` ("EIDO"). Validation against the standard's schema is in
:mod:`citywatch.incidents.eido_schema`.

Canonical fields EIDO 1.0 has no element for (``source``, ``source_id``, ``time_precision``,
``arrived_at``, ``cleared_at``; ``dispatched_at`` too, since the dispatch component may also
exist for units without it) travel in one additional-data component whose value is a small
JSON object (:data:`CITYWATCH_DATA`); a foreign EIDO without it still imports.

Every further caller of a merged incident is a call component of its own (after the first
call, the incident's), with its call taker, its notes and the location it gave; the incident it
first created travels in an additional-data component of the call (:data:`CALLER_DATA`).  A
caution's expiry, for which EIDO 1.0's caution component has no element, is an additional-data
component linked to the caution by the standard's ``cautionReference``
(:data:`CAUTION_EXPIRY`).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

from citywatch.errors import DataError
from citywatch.incidents.record import Incident

__all__ = [
    "CALLER_DATA",
    "CAUTION_EXPIRY",
    "CITYWATCH_DATA",
    "DEFAULT_AGENCY",
    "EIDO_VERSION",
    "MERGE_DIRECTIONS",
    "SEVERITIES",
    "EidoCaller",
    "EidoCaution",
    "EidoIncident",
    "EidoMerge",
    "EidoNote",
    "EidoUnit",
    "from_eido",
    "from_live",
    "pidf_point",
    "read_pidf_point",
    "to_eido",
]

EIDO_VERSION: Final = "1.0"
#: ``urlPurpose`` of the additional-data component carrying the fields EIDO has no element for.
CITYWATCH_DATA: Final = "urn:citywatch:incident-record"
#: ``urlPurpose`` of a further call's additional data: ``{"original_incident_id": ...}``.
CALLER_DATA: Final = "urn:citywatch:caller-record"
#: ``urlPurpose`` of a caution's expiry (``additionalDataByValue``: an ISO 8601 date-time, the
#: component's ``cautionReference`` naming the caution).
CAUTION_EXPIRY: Final = "urn:citywatch:caution-expiry"
#: EIDO's five-level scale (call ``priorityIdentifier``, ``cautionSeverity``); index + 1 is
#: CityWatch's priority 1 (highest) .. 5.
SEVERITIES: Final = ("highest", "high", "normal", "low", "lowest")
MERGE_DIRECTIONS: Final = ("REPLACING", "REPLACED", "SPLIT")
DEFAULT_AGENCY: Final = "citywatch.invalid"
# CityWatch's taxonomy has no mapping to NENA's Incident Type registry: the category code goes
# to incidentTypeInternalCode and this generic value fills the required registry element.
COMMON_INCIDENT_TYPE: Final = "Law Enforcement"
RESOURCE_TYPE: Final = "Law Enforcement Unit"
# CityWatch assignment step -> NENA Primary Unit Status registry value (latest step wins)
_UNIT_STEPS: Final = (
    ("assigned", "Dispatched"),
    ("en_route", "Enroute"),
    ("on_scene", "On Scene"),
    ("ended", "Available"),
)
_PIDF: Final = "urn:ietf:params:xml:ns:pidf"
_GP: Final = "urn:ietf:params:xml:ns:pidf:geopriv10"
_DM: Final = "urn:ietf:params:xml:ns:pidf:data-model"
_GML: Final = "http://www.opengis.net/gml"
_WGS84: Final = "urn:ogc:def:crs:EPSG::4326"
_LEVELS: Final = ("bureau", "station", "zone")


@dataclass(frozen=True, slots=True)
class EidoUnit:
    """A unit sent to the incident (an EIDO emergency resource), with its assignment times."""

    unit_id: str
    assigned_at: datetime
    en_route_at: datetime | None = None
    on_scene_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None
    eta_s: float | None = None

    @property
    def status(self) -> str:
        """The NENA primary unit status of the latest step reached."""
        reached = [status for step, status in _UNIT_STEPS if getattr(self, f"{step}_at")]
        return reached[-1]


@dataclass(frozen=True, slots=True)
class EidoNote:
    """A note or timeline entry: text, when, by whom (an EIDO notes component)."""

    text: str
    at: datetime
    author: str | None = None


@dataclass(frozen=True, slots=True)
class EidoCaution:
    """A caution note on the incident's location (an EIDO caution component).

    ``severity`` is one of :data:`SEVERITIES`.  EIDO 1.0's caution has no expiry element:
    ``expires_at`` travels in an additional-data component that names the caution in its
    ``cautionReference`` (:data:`CAUTION_EXPIRY`).
    """

    kind: str
    severity: str
    text: str
    started_at: datetime | None = None
    source: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EidoCaller:
    """A further call about the incident (a merged duplicate's caller): an EIDO call component.

    ``taken_by`` is the call taker (the call's agent), ``notes`` what the caller said (a notes
    component of the call), ``location_text`` and ``lon``/``lat`` the location they gave (a
    location component of the call), ``original_incident_id`` the incident the call first
    created.
    """

    received_at: datetime
    taken_by: str | None = None
    notes: str | None = None
    location_text: str | None = None
    lon: float | None = None
    lat: float | None = None
    original_incident_id: str | None = None


@dataclass(frozen=True, slots=True)
class EidoMerge:
    """A merge with another incident: ``REPLACING`` (this one absorbed it), ``REPLACED``,
    ``SPLIT``."""

    incident_id: str
    direction: str
    at: datetime


@dataclass(frozen=True, slots=True)
class EidoIncident:
    """Everything CityWatch exchanges about one incident in an EIDO."""

    incident: Incident
    status: str | None = None
    units: tuple[EidoUnit, ...] = ()
    notes: tuple[EidoNote, ...] = ()
    cautions: tuple[EidoCaution, ...] = ()
    merges: tuple[EidoMerge, ...] = ()
    agency: str = DEFAULT_AGENCY
    #: The console's human-readable incident number (``MAN-2026-000123``), when it has one.
    number: str | None = None
    #: The location as the call taker typed it (an address or cross streets), when given.
    location_text: str | None = None
    #: Every call after the first (the incident's own), oldest first.
    callers: tuple[EidoCaller, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)


# ---- export ---------------------------------------------------------------------------------


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _ref(target: str) -> dict[str, str]:
    return {"$ref": target}


def to_eido(item: EidoIncident) -> dict[str, Any]:
    """One EIDO document (JSON-ready) for ``item``.

    Parameters
    ----------
    item
        The incident and what the live service knows about it.

    Returns
    -------
    dict
        An ``EmergencyIncidentDataObjectType`` instance; every component's
        ``lastUpdateTimeStamp`` comes from the incident's own times, so the same incident
        always gives the same document.
    """
    inc = item.incident
    base = f"urn:emergency:uid:incidentid:{quote(inc.id, safe='')}:{item.agency}"
    stamp = _ts(_latest(item))

    def prologue(suffix: str, at: str = stamp, agent: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "$id": f"{base}{suffix}",
            "lastUpdateTimeStamp": at,
            "updatedByAgencyReference": _ref(item.agency),
        }
        if agent is not None:
            out["updatedByAgentReference"] = _ref(agent)
        return out

    doc: dict[str, Any] = prologue("")
    doc["$id"] = base
    doc["eidoVersion"] = EIDO_VERSION
    doc["issuingElementIdentification"] = item.agency
    doc["agencyComponent"] = [_agency(item.agency, stamp)]
    location = prologue(":location")
    doc["locationComponent"] = [{**location, **_location_body(inc)}]
    if item.location_text:
        doc["locationComponent"][0]["locationDescriptionText"] = item.location_text
    extra = prologue(":citywatch")
    extra.update(urlPurpose=CITYWATCH_DATA, additionalDataByValue=_citywatch_value(inc))
    doc["additionalDataComponent"] = [extra]
    call = prologue(":call", _ts(inc.received_at))
    call.update(
        standardPrimaryCallType="emergency",
        direction="incoming",
        callStartTimestamp=_ts(inc.received_at),
        callStateRegistryText="callAnswered",
        locationReference=[_ref(location["$id"])],
        additionalDataReference=[_ref(extra["$id"])],
    )
    if inc.priority is not None:
        call["priorityIdentifier"] = SEVERITIES[inc.priority - 1]
    doc["callComponent"] = [call]
    for n, caller in enumerate(item.callers, 2):
        _add_call(doc, caller, prologue(f":call:{n}", _ts(caller.received_at), caller.taken_by))
    notes = [
        {**prologue(f":note:{n}", _ts(note.at), note.author), "notesActionComments": note.text}
        for n, note in enumerate(item.notes, 1)
    ]
    incident = prologue(":incident")
    incident.update(_incident_body(item, location["$id"]))
    if notes:
        doc["notesComponent"] = notes + doc.get("notesComponent", [])
        incident["notesReference"] = [_ref(n["$id"]) for n in notes]
    doc["incidentComponent"] = incident
    agents = sorted(
        {n.author for n in item.notes if n.author is not None}
        | {c.taken_by for c in item.callers if c.taken_by is not None}
    )
    if agents:
        doc["agentComponent"] = [_agent(a, item.agency, stamp) for a in agents]
    resources = [
        {**prologue(f":unit:{n}", _ts(_unit_latest(u))), **_resource_body(u)}
        for n, u in enumerate(item.units, 1)
    ]
    if resources:
        doc["emergencyResourceComponent"] = resources
    if inc.dispatched_at is not None or resources:
        first = inc.dispatched_at or min(u.assigned_at for u in item.units)
        dispatch = prologue(":dispatch", _ts(first))
        dispatch["agencyReference"] = _ref(item.agency)
        if resources:
            dispatch["emergencyResourceReference"] = [_ref(r["$id"]) for r in resources]
        doc["dispatchComponent"] = [dispatch]
    if item.cautions:
        doc["cautionComponent"] = []
        for n, c in enumerate(item.cautions, 1):
            caution = {**prologue(f":caution:{n}"), **_caution_body(c)}
            doc["cautionComponent"].append(caution)
            if c.expires_at is not None:
                expiry = prologue(f":caution:{n}:expiry")
                expiry.update(
                    urlPurpose=CAUTION_EXPIRY,
                    additionalDataByValue=_ts(c.expires_at),
                    cautionReference=[_ref(caution["$id"])],
                )
                doc["additionalDataComponent"].append(expiry)
    if item.merges:
        doc["mergeComponent"] = [
            {
                **prologue(f":merge:{n}", _ts(m.at)),
                "incidentTrackingIdentifier": m.incident_id,
                "incidentMergeDirectionCode": m.direction,
            }
            for n, m in enumerate(item.merges, 1)
        ]
    return doc


def _add_call(doc: dict[str, Any], caller: EidoCaller, call: dict[str, Any]) -> None:
    """Append a further caller's call component to ``doc``, with its note, location and
    CityWatch data as components of their own, referenced by the call."""
    base, stamp, prologue = call["$id"], call["lastUpdateTimeStamp"], dict(call)

    def component(suffix: str) -> dict[str, Any]:
        return {**prologue, "$id": f"{base}:{suffix}"}

    call.update(
        standardPrimaryCallType="emergency",
        direction="incoming",
        callStartTimestamp=stamp,
        callStateRegistryText="callAnswered",
    )
    if caller.taken_by is not None:
        call["agentReference"] = [_ref(caller.taken_by)]
    if caller.notes is not None:
        note = component("note")
        note["notesActionComments"] = caller.notes
        doc.setdefault("notesComponent", []).append(note)
        call["notesReference"] = [_ref(note["$id"])]
    if caller.location_text is not None or caller.lon is not None:
        location = component("location")
        location["locationTypeDescriptionRegistryText"] = "Incident"
        if caller.lon is not None and caller.lat is not None:
            location["locationByValue"] = pidf_point(caller.lon, caller.lat)
        if caller.location_text is not None:
            location["locationDescriptionText"] = caller.location_text
        doc["locationComponent"].append(location)
        call["locationReference"] = [_ref(location["$id"])]
    if caller.original_incident_id is not None:
        data = component("citywatch")
        data.update(
            urlPurpose=CALLER_DATA,
            additionalDataByValue=json.dumps(
                {"original_incident_id": caller.original_incident_id}, ensure_ascii=False
            ),
        )
        doc["additionalDataComponent"].append(data)
        call["additionalDataReference"] = [_ref(data["$id"])]
    doc["callComponent"].append(call)


def _latest(item: EidoIncident) -> datetime:
    inc = item.incident
    times = [inc.received_at, inc.dispatched_at, inc.arrived_at, inc.cleared_at]
    times += [n.at for n in item.notes] + [m.at for m in item.merges]
    times += [c.received_at for c in item.callers]
    times += [_unit_latest(u) for u in item.units]
    return max(t for t in times if t is not None)


def _unit_latest(unit: EidoUnit) -> datetime:
    times = (unit.assigned_at, unit.en_route_at, unit.on_scene_at, unit.ended_at)
    return max(t for t in times if t is not None)


def _agency(agency: str, stamp: str) -> dict[str, Any]:
    return {
        "$id": agency,
        "lastUpdateTimeStamp": stamp,
        "updatedByAgencyReference": _ref(agency),
        "agencyRoleDescriptionRegistryText": ["Dispatch"],
        "agencyType": ["police"],
        "incidentOwningAgencyIndicator": True,
    }


def _agent(agent: str, agency: str, stamp: str) -> dict[str, Any]:
    return {
        "$id": agent,
        "lastUpdateTimeStamp": stamp,
        "updatedByAgencyReference": _ref(agency),
        "agentRoleRegistryText": ["Dispatcher"],
        "agencyReference": _ref(agency),
    }


def _location_body(inc: Incident) -> dict[str, Any]:
    body: dict[str, Any] = {"locationTypeDescriptionRegistryText": "Incident"}
    if inc.lon is not None and inc.lat is not None:
        body["locationByValue"] = pidf_point(inc.lon, inc.lat)
    ids = [f"{level}:{getattr(inc, level)}" for level in _LEVELS if getattr(inc, level)]
    if ids:
        body["localIdentifier"] = ids
    return body


def _citywatch_value(inc: Incident) -> str:
    value: dict[str, Any] = {
        "source": inc.source,
        "source_id": inc.source_id,
        "time_precision": inc.time_precision,
    }
    for name in ("dispatched_at", "arrived_at", "cleared_at"):
        at = getattr(inc, name)
        if at is not None:
            value[name] = _ts(at)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _incident_body(item: EidoIncident, location_id: str) -> dict[str, Any]:
    inc = item.incident
    body: dict[str, Any] = {
        "internalIncidentId": inc.id,
        "incidentTypeInternalCode": inc.category,
        "incidentTypeCommonRegistryText": COMMON_INCIDENT_TYPE,
        "locationReference": [_ref(location_id)],
    }
    label = item.extra.get("category_label")
    if isinstance(label, str):
        body["incidentTypeInternalText"] = label
    if inc.priority is not None:
        body["incidentCommonPriorityNumber"] = inc.priority
    if item.number:
        # EIDO 1.0 has no element of its own for a CAD's human-readable incident number
        # (internalIncidentId carries the CityWatch id): the incident's report number
        body["reportNumberType"] = item.number
    if item.status is not None:
        body["incidentStatusInternalText"] = [item.status]
    if inc.zone is not None:
        body["beatOrDispatchGroupText"] = inc.zone
    if inc.disposition is not None or inc.solved is not None:
        disposition: dict[str, Any] = {
            "$id": f"urn:emergency:uid:incidentid:{quote(inc.id, safe='')}:disposition",
            "lastUpdateTimeStamp": _ts(inc.cleared_at or inc.received_at),
            "updatedByAgencyReference": _ref(item.agency),
            "dispositionCommonRegistryCode": "Other",
            "dispositionPrimaryIndicator": True,
        }
        if inc.disposition is not None:
            disposition["dispositionDescriptionText"] = inc.disposition
        if inc.solved is not None:
            disposition["dispositionCategoryText"] = "solved" if inc.solved else "unsolved"
        body["dispositionComponent"] = [disposition]
    return body


def _resource_body(unit: EidoUnit) -> dict[str, Any]:
    internal = [
        f"{step}@{_ts(getattr(unit, f'{step}_at'))}"
        for step, _ in _UNIT_STEPS
        if getattr(unit, f"{step}_at") is not None
    ]
    if unit.outcome is not None:
        internal.append(f"outcome={unit.outcome}")
    body: dict[str, Any] = {
        "emergencyResourceName": unit.unit_id,
        "emergencyResourceTypeCommonRegistryText": RESOURCE_TYPE,
        "resourceAttributeRegistryText": [],
        "primaryUnitStatusRegistryText": unit.status,
        "secondaryUnitStatusRegistryText": [],
        "unitStatusInternal": internal,
        "agentReference": [],
    }
    if unit.eta_s is not None:
        body["eta"] = _ts(unit.assigned_at + timedelta(seconds=unit.eta_s))
        # the ETA in seconds as well: the date-time rounds it to microseconds
        internal.append(f"eta_s={unit.eta_s!r}")
    return body


def _caution_body(caution: EidoCaution) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cautionTypeInternalText": caution.text,
        "cautionTypeCommonRegistryText": caution.kind,
        "cautionSeverity": caution.severity,
    }
    if caution.started_at is not None:
        body["startDate"] = _ts(caution.started_at)
    if caution.source is not None:
        body["cautionSource"] = caution.source
    return body


def pidf_point(lon: float, lat: float) -> str:
    """A PIDF-LO document (RFC 4119/5491) with a WGS-84 GML point, latitude first."""
    ET.register_namespace("", _PIDF)
    for prefix, uri in (("gp", _GP), ("dm", _DM), ("gml", _GML)):
        ET.register_namespace(prefix, uri)
    presence = ET.Element(f"{{{_PIDF}}}presence", entity="pres:incident@citywatch.invalid")
    device = ET.SubElement(presence, f"{{{_DM}}}device", id="incident")
    geopriv = ET.SubElement(device, f"{{{_GP}}}geopriv")
    info = ET.SubElement(geopriv, f"{{{_GP}}}location-info")
    point = ET.SubElement(info, f"{{{_GML}}}Point", srsName=_WGS84)
    # repr(): the shortest text that reads back as the same float
    ET.SubElement(point, f"{{{_GML}}}pos").text = f"{lat!r} {lon!r}"
    return ET.tostring(presence, encoding="unicode")


# ---- import ---------------------------------------------------------------------------------


def from_eido(doc: Mapping[str, Any], *, default_category: str = "other") -> EidoIncident:
    """Read one EIDO document back into an :class:`EidoIncident`.

    Parameters
    ----------
    doc
        A parsed EIDO (``EmergencyIncidentDataObjectType``), CityWatch's or another system's.
    default_category
        Category of an EIDO without ``incidentTypeInternalCode`` (the sample call transfer).

    Returns
    -------
    EidoIncident
        For a foreign EIDO without CityWatch's additional data: ``source = "eido"``,
        ``source_id`` the internal incident id (else the document's ``$id``), received at the
        first call's start (else the incident's or document's last update).

    Raises
    ------
    DataError
        If the document is not a JSON object or an element has the wrong type or an
        unreadable date-time, location or priority.
    """
    if not isinstance(doc, Mapping):
        raise DataError("an EIDO must be a JSON object")
    incident = _mapping(doc.get("incidentComponent") or {}, "incidentComponent")
    calls = _list(doc, "callComponent")
    call = calls[0] if calls else {}
    cw = _citywatch_data(doc)
    internal_id = _opt_str(incident.get("internalIncidentId"))
    source_id = str(cw.get("source_id") or internal_id or incident.get("$id") or doc.get("$id"))
    source = str(cw.get("source") or "eido")
    received = call.get("callStartTimestamp") or incident.get("lastUpdateTimeStamp")
    received = received or doc.get("lastUpdateTimeStamp")
    lon, lat, levels, location_text = _location(doc, incident)
    disposition = _first(incident, "dispositionComponent")
    dispatch = _first(doc, "dispatchComponent")
    category = _opt_str(incident.get("incidentTypeInternalCode")) or default_category
    record = Incident(
        id=internal_id or f"{source}:{source_id}",
        source=source,
        source_id=source_id,
        received_at=_parse_ts(received, "callStartTimestamp"),
        time_precision=str(cw.get("time_precision") or "exact"),
        category=category,
        priority=_priority(incident, call),
        lon=lon,
        lat=lat,
        bureau=levels.get("bureau"),
        station=levels.get("station"),
        zone=levels.get("zone") or _opt_str(incident.get("beatOrDispatchGroupText")),
        # CityWatch's own record says whether it had a dispatch time (the component may only
        # be there for its units); another system's dispatch component dates the dispatch
        dispatched_at=_opt_ts(
            cw.get("dispatched_at") if cw else dispatch.get("lastUpdateTimeStamp"),
            "dispatched_at",
        ),
        arrived_at=_opt_ts(cw.get("arrived_at"), "arrived_at"),
        cleared_at=_opt_ts(cw.get("cleared_at"), "cleared_at"),
        disposition=_opt_str(disposition.get("dispositionDescriptionText")),
        solved={"solved": True, "unsolved": False}.get(
            str(disposition.get("dispositionCategoryText"))
        ),
    )
    statuses = incident.get("incidentStatusInternalText") or []
    # the notes of the further calls are theirs, not the incident's
    of_calls = {ref for c in calls[1:] for ref in _refs(c, "notesReference")}
    expiries = _caution_expiries(doc)
    return EidoIncident(
        incident=record,
        status=str(statuses[-1]) if statuses else None,
        units=tuple(_unit(r) for r in _list(doc, "emergencyResourceComponent")),
        notes=tuple(_note(n) for n in _list(doc, "notesComponent") if n.get("$id") not in of_calls),
        cautions=tuple(
            _caution(c, expiries.get(str(c.get("$id")))) for c in _list(doc, "cautionComponent")
        ),
        merges=tuple(_merge(m) for m in _list(doc, "mergeComponent")),
        agency=str(doc.get("issuingElementIdentification") or DEFAULT_AGENCY),
        number=_opt_str(incident.get("reportNumberType")),
        location_text=location_text,
        callers=_callers(doc, calls[1:]),
    )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DataError(f"EIDO {where} must be a JSON object")
    return value


def _list(doc: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = doc.get(key) or []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise DataError(f"EIDO {key} must be an array")
    return [_mapping(v, key) for v in value]


def _refs(component: Mapping[str, Any], key: str) -> list[str]:
    """The ``$ref`` values of a component's array of references ``key``."""
    value = component.get(key) or []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise DataError(f"EIDO {key} must be an array")
    return [str(r["$ref"]) for r in value if isinstance(r, Mapping) and "$ref" in r]


def _by_id(doc: Mapping[str, Any], key: str) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("$id")): c for c in _list(doc, key)}


def _first(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    items = _list(doc, key)
    return items[0] if items else {}


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _parse_ts(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise DataError(f"EIDO {where}: a date-time is required")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise DataError(f"EIDO {where}: {value!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise DataError(f"EIDO {where}: {value!r} has no UTC offset")
    return parsed.astimezone(UTC)


def _opt_ts(value: Any, where: str) -> datetime | None:
    return None if value is None else _parse_ts(value, where)


def _citywatch_data(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    for item in _list(doc, "additionalDataComponent"):
        if item.get("urlPurpose") == CITYWATCH_DATA:
            return _json_data(item, "CityWatch additional data")
    return {}


def _json_data(item: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    """The JSON object an additional-data component carries by value."""
    try:
        value = json.loads(str(item.get("additionalDataByValue")))
    except json.JSONDecodeError:
        raise DataError(f"EIDO: {what} is not JSON") from None
    return _mapping(value, what)


def _priority(incident: Mapping[str, Any], call: Mapping[str, Any]) -> int | None:
    number = incident.get("incidentCommonPriorityNumber")
    if number is not None:
        if not isinstance(number, int) or isinstance(number, bool):
            raise DataError(f"EIDO incidentCommonPriorityNumber {number!r} is not an integer")
        return number
    level = call.get("priorityIdentifier")
    return None if level not in SEVERITIES else SEVERITIES.index(level) + 1


def _location(
    doc: Mapping[str, Any], incident: Mapping[str, Any]
) -> tuple[float | None, float | None, dict[str, str], str | None]:
    """Coordinates and jurisdiction ids of the incident's first location with a GML point, and
    the first location's description text (the address as typed)."""
    refs = {r.get("$ref") for r in incident.get("locationReference") or [] if isinstance(r, dict)}
    locations = _list(doc, "locationComponent")
    ordered = [loc for loc in locations if loc.get("$id") in refs] or locations
    levels: dict[str, str] = {}
    for loc in ordered:
        for text in loc.get("localIdentifier") or []:
            level, _, value = str(text).partition(":")
            if level in _LEVELS and value:
                levels.setdefault(level, value)
    text, point = _text_and_point(ordered)
    if point is not None:
        return point[0], point[1], levels, text
    return None, None, levels, text


def _text_and_point(
    locations: Sequence[Mapping[str, Any]],
) -> tuple[str | None, tuple[float, float] | None]:
    """The first description text and the first GML point among ``locations``."""
    described = [loc.get("locationDescriptionText") for loc in locations]
    text = next((str(d) for d in described if d not in (None, "")), None)
    for loc in locations:
        pidf = loc.get("locationByValue")
        if isinstance(pidf, str):
            point = read_pidf_point(pidf)
            if point is not None:
                return text, point
    return text, None


def read_pidf_point(text: str) -> tuple[float, float] | None:
    """``(lon, lat)`` of the first GML point of a PIDF-LO document, ``None`` if it has none.

    Only WGS-84 points are read (``EPSG::4326``, latitude first); a civic address is not
    geocoded here.
    """
    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError as exc:
        raise DataError(f"EIDO locationByValue is not XML: {exc}") from None
    for point in root.iter(f"{{{_GML}}}Point"):
        srs = point.get("srsName", _WGS84)
        pos = point.find(f"{{{_GML}}}pos")
        if pos is None or pos.text is None or not srs.endswith("4326"):
            continue
        try:
            lat, lon = (float(v) for v in pos.text.split())
        except ValueError:
            raise DataError(f"EIDO gml:pos {pos.text!r} is not 'lat lon'") from None
        return lon, lat
    return None


def _unit(resource: Mapping[str, Any]) -> EidoUnit:
    name = _opt_str(resource.get("emergencyResourceName")) or str(resource.get("$id"))
    steps: dict[str, Any] = {}
    for text in resource.get("unitStatusInternal") or []:
        key, at_sign, at = str(text).partition("@")
        if at_sign and key in dict(_UNIT_STEPS):
            steps[f"{key}_at"] = _parse_ts(at, "unitStatusInternal")
        elif text.startswith("outcome="):
            steps["outcome"] = text.removeprefix("outcome=")
        elif text.startswith("eta_s="):
            steps["eta_s"] = float(text.removeprefix("eta_s="))
    if "assigned_at" not in steps:
        # another system's resource: its last update is the best dispatch time we have
        steps["assigned_at"] = _parse_ts(resource.get("lastUpdateTimeStamp"), "resource")
    return EidoUnit(unit_id=name, **steps)


def _note(note: Mapping[str, Any]) -> EidoNote:
    agent = note.get("updatedByAgentReference")
    return EidoNote(
        text=str(note.get("notesActionComments", "")),
        at=_parse_ts(note.get("lastUpdateTimeStamp"), "notesComponent"),
        author=_opt_str(agent.get("$ref")) if isinstance(agent, Mapping) else None,
    )


def _caution(caution: Mapping[str, Any], expires_at: datetime | None = None) -> EidoCaution:
    return EidoCaution(
        kind=str(caution.get("cautionTypeCommonRegistryText", "")),
        severity=str(caution.get("cautionSeverity", "normal")),
        text=str(caution.get("cautionTypeInternalText", "")),
        started_at=_opt_ts(caution.get("startDate"), "cautionComponent"),
        source=_opt_str(caution.get("cautionSource")),
        expires_at=expires_at,
    )


def _caution_expiries(doc: Mapping[str, Any]) -> dict[str, datetime]:
    """Caution ``$id`` -> its expiry, from the :data:`CAUTION_EXPIRY` additional data."""
    out = {}
    for item in _list(doc, "additionalDataComponent"):
        if item.get("urlPurpose") == CAUTION_EXPIRY:
            at = _parse_ts(item.get("additionalDataByValue"), "caution expiry")
            for ref in _refs(item, "cautionReference"):
                out[ref] = at
    return out


def _callers(doc: Mapping[str, Any], calls: Sequence[Mapping[str, Any]]) -> tuple[EidoCaller, ...]:
    """Further call components as caller records (each: its first agent, note and location)."""
    notes = _by_id(doc, "notesComponent")
    locations = _by_id(doc, "locationComponent")
    extra = _by_id(doc, "additionalDataComponent")
    out = []
    for call in calls:
        agents = _refs(call, "agentReference")
        said = [notes[r] for r in _refs(call, "notesReference") if r in notes]
        places = [locations[r] for r in _refs(call, "locationReference") if r in locations]
        text, point = _text_and_point(places)
        original = None
        for ref in _refs(call, "additionalDataReference"):
            item = extra.get(ref, {})
            if item.get("urlPurpose") == CALLER_DATA:
                value = _json_data(item, "CityWatch caller data")
                original = _opt_str(value.get("original_incident_id"))
        out.append(
            EidoCaller(
                received_at=_parse_ts(call.get("callStartTimestamp"), "callStartTimestamp"),
                taken_by=agents[0] if agents else None,
                notes=str(said[0].get("notesActionComments", "")) if said else None,
                location_text=text,
                lon=None if point is None else point[0],
                lat=None if point is None else point[1],
                original_incident_id=original,
            )
        )
    return tuple(out)


def _merge(merge: Mapping[str, Any]) -> EidoMerge:
    direction = str(merge.get("incidentMergeDirectionCode"))
    if direction not in MERGE_DIRECTIONS:
        raise DataError(f"EIDO merge direction {direction!r} is not one of {MERGE_DIRECTIONS}")
    return EidoMerge(
        incident_id=str(merge.get("incidentTrackingIdentifier")),
        direction=direction,
        at=_parse_ts(merge.get("lastUpdateTimeStamp"), "mergeComponent"),
    )


# ---- the live service's view ----------------------------------------------------------------


def from_live(detail: Mapping[str, Any], *, agency: str = DEFAULT_AGENCY) -> EidoIncident:
    """The :class:`EidoIncident` of a live incident's detail (``DispatchService.get_incident``).

    Assignments become units; the caller's notes, the notes appended by dispatchers
    (``notes``) and every timeline event become notes (the event type, its unit and data as
    text, by its actor, at its time); every further caller of a merged incident (``callers``
    after the first) becomes an :class:`EidoCaller` (a call component of its own).
    The console's ``merges`` become merge components (``REPLACING``: this incident absorbed the
    other; ``REPLACED``: it was merged into the other) and its ``cautions`` caution components
    (with their expiry, :data:`CAUTION_EXPIRY`); its ``number``
    (``MAN-2026-000123``) becomes the incident's ``reportNumberType`` and its typed address
    (``location_text``) the location's ``locationDescriptionText``. The live service keeps no
    disposition or solved flag.
    """
    incident_id = str(detail["id"])
    source, _, source_id = incident_id.partition(":")
    record = Incident(
        id=incident_id,
        source=source if source_id else "live",
        source_id=source_id or incident_id,
        received_at=detail["received_at"],
        time_precision="exact",
        category=str(detail["category"]),
        priority=detail.get("priority"),
        lon=detail.get("lon"),
        lat=detail.get("lat"),
        bureau=detail.get("bureau"),
        station=detail.get("station"),
        zone=detail.get("zone"),
        dispatched_at=detail.get("dispatched_at"),
        arrived_at=detail.get("arrived_at"),
        cleared_at=detail.get("cleared_at"),
    )
    notes: list[EidoNote] = []
    if detail.get("caller_notes"):
        notes.append(
            EidoNote(str(detail["caller_notes"]), record.received_at, detail.get("created_by"))
        )
    for note in detail.get("notes") or []:
        notes.append(EidoNote(str(note["text"]), note["at"], note.get("author")))
    callers = tuple(
        EidoCaller(
            received_at=c["received_at"],
            taken_by=c.get("taken_by") or None,
            notes=c.get("notes") or None,
            location_text=c.get("location_text") or None,
            lon=c.get("lon"),
            lat=c.get("lat"),
            original_incident_id=c.get("original_incident_id") or None,
        )
        for c in (detail.get("callers") or [])[1:]
    )
    for event in detail.get("timeline") or []:
        text = str(event["type"])
        if event.get("unit_id"):
            text += f" unit={event['unit_id']}"
        if event.get("data"):
            text += " " + json.dumps(event["data"], ensure_ascii=False, sort_keys=True, default=str)
        notes.append(EidoNote(text, event["at"], event.get("actor")))
    units = tuple(
        EidoUnit(
            unit_id=str(a["unit_id"]),
            assigned_at=a["assigned_at"],
            en_route_at=a.get("en_route_at"),
            on_scene_at=a.get("on_scene_at"),
            ended_at=a.get("ended_at"),
            outcome=a.get("outcome"),
            eta_s=a.get("eta_s"),
        )
        for a in detail.get("assignments") or []
    )
    cautions = tuple(
        EidoCaution(
            kind=str(c["kind"]),
            severity=str(c["severity"]),
            text=str(c["text"]),
            started_at=c.get("created_at"),
            source=c.get("created_by"),
            expires_at=c.get("expires_at"),
        )
        for c in detail.get("cautions") or []
    )
    merges = tuple(
        EidoMerge(incident_id=str(m["incident_id"]), direction=str(m["direction"]), at=m["at"])
        for m in detail.get("merges") or []
    )
    label = (detail.get("category_label") or {}).get("en")
    return EidoIncident(
        incident=record,
        status=detail.get("status"),
        units=units,
        notes=tuple(notes),
        cautions=cautions,
        merges=merges,
        agency=agency,
        number=detail.get("number") or None,
        location_text=detail.get("location_text") or None,
        callers=callers,
        extra={"category_label": label} if label else {},
    )
