"""REST routes of sightings, hotlists and alerts: thin wrappers over
:class:`citywatch.surveillance.watch.SightingService`.

``POST /api/v1/sightings`` takes batches from recognition systems (``sensor_feed`` accounts);
every other route needs an ordinary account and applies the roles of the hotlists and the
recipients of the alerts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from citywatch.api.lazy import app_service
from citywatch.api.routes import ERROR_RESPONSES
from citywatch.api.schemas import IsoTime, Lat, Lon
from citywatch.api.security import CurrentUser, FeedUser
from citywatch.dispatch.accounts import Role
from citywatch.domain import HOTLIST_REASONS, PRIORITY_DEFAULT, PRIORITY_RANGE
from citywatch.errors import PermissionDeniedError
from citywatch.surveillance.hotlists import NewEntry
from citywatch.surveillance.sightings import MAX_BATCH_SIGHTINGS, Read
from citywatch.surveillance.watch import SightingService, WatchConfig

__all__ = [
    "PURGE_DELAY_S",
    "PURGE_INTERVAL_S",
    "get_sighting_service",
    "keep_sightings",
    "router",
    "sighting_service",
]

log = logging.getLogger("citywatch.api.sightings")
router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
#: Seconds between two runs of the retention purge in a running service.
PURGE_INTERVAL_S = 3600.0
#: Seconds after start of the first purge.
PURGE_DELAY_S = 30.0

_Kind = Literal["plate", "ebike_tag", "subject_ref"]
_Text = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00]+$")]
_Purpose = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\x00]+$")]
_Ref = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00]+$")]
_Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
_Priority = Annotated[int, Field(ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])]
_Reason = Literal["stolen_vehicle", "stolen_ebike", "wanted_person", "repeat_offender"]
assert set(_Reason.__args__) == set(HOTLIST_REASONS)  # type: ignore[attr-defined]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SightingIn(_In):
    """One read of a recognition system."""

    sensor_id: _Id = Field(description="a registered sensor of the served pack")
    seen_at: IsoTime = Field(description="when it was read (ISO 8601 with offset)")
    kind: _Kind
    value: _Text = Field(description="plate, tag or external subject reference, or its hash")
    hashed: bool = Field(False, description="the value is a hex hash made by the reader")
    confidence: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    lon: Lon | None = Field(None, description="position of a mobile (car-mounted) reader")
    lat: Lat | None = None


class SightingBatchIn(_In):
    """Reads of one or more sensors, at most 1,000."""

    sightings: list[SightingIn] = Field(min_length=1, max_length=MAX_BATCH_SIGHTINGS)


class EntryIn(_In):
    """A reference to put on a hotlist, and why you are doing it."""

    kind: _Kind
    value: _Text
    hashed: bool = False
    reason: _Reason
    owner: _Ref = Field(description="the unit or agency that owns the entry")
    legal_basis: Annotated[str, Field(min_length=1, max_length=2000, pattern=r"^[^\x00]+$")]
    case_ref: _Ref | None = Field(None, description="external case reference")
    label: Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")] | None = None
    priority: _Priority = PRIORITY_DEFAULT
    expires_at: IsoTime | None = None
    list: Annotated[str, Field(max_length=32)] | None = Field(
        None, description="the hotlist (default: the list of the reason)"
    )
    synthetic: bool = Field(False, description="a made-up entry (demos, replays), labelled so")
    purpose: _Purpose = Field(description="why (kept in the audit trail)")


class EntryChangeIn(_In):
    """Changes to an entry, and why."""

    label: Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")] | None = None
    legal_basis: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    priority: _Priority | None = None
    expires_at: IsoTime | None = None
    case_ref: _Ref | None = None
    owner: _Ref | None = None
    purpose: _Purpose


class PurposeIn(_In):
    """The stated purpose of an operation (audited)."""

    purpose: _Purpose


class AlertStatusIn(_In):
    """Acknowledge or close an alert."""

    status: Literal["acknowledged", "closed"]


def get_sighting_service(request: Request) -> SightingService:
    """FastAPI dependency: the sightings service of the served pack and database."""
    return sighting_service(request.app)


def sighting_service(app: FastAPI) -> SightingService:
    """The application's sightings service (made on first use)."""

    def make() -> SightingService:
        settings = app.state.settings
        config = WatchConfig(
            store_values=settings.sightings_store_values,
            retention_days=settings.sightings_retention_days,
        )
        return SightingService(app.state.service, config=config)

    return app_service(app, "sighting_service", make)


Watch = Annotated[SightingService, Depends(get_sighting_service)]
EntryId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("/sightings", tags=["sightings"])
def post_sightings(body: SightingBatchIn, who: FeedUser, service: Watch) -> dict[str, Any]:
    """Reads of recognition systems, matched against the hotlists and stored in one
    transaction.  200 even when some reads were refused: see ``refused`` and each result
    (request order); a hit says which alert it raised or joined."""
    reads = [
        Read(r.sensor_id, r.seen_at, r.kind, r.value, r.confidence, r.hashed, r.lon, r.lat)
        for r in body.sightings
    ]
    return service.post(who, reads).as_dict()


@router.get("/sightings", tags=["sightings"])
def search_sightings(
    who: CurrentUser,
    service: Watch,
    kind: _Kind,
    value: Annotated[str, Query(min_length=1, max_length=128)],
    purpose: Annotated[str, Query(min_length=1, max_length=500)],
    hashed: bool = False,
    since: Annotated[IsoTime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict[str, Any]]:
    """Every stored sighting of one plate, tag or reference (admins and commanders; the
    purpose and the number returned are audited)."""
    return service.search_sightings(
        who, kind=kind, value=value, purpose=purpose, hashed=hashed, since=since, limit=limit
    )


@router.get("/sightings/stats", tags=["sightings"])
def sighting_stats(who: CurrentUser, service: Watch) -> dict[str, Any]:
    """Sightings stored, hits, active hotlist entries (admins and commanders)."""
    return service.counts(who)


@router.post("/sightings/purge", tags=["sightings"])
def purge(who: CurrentUser, service: Watch) -> dict[str, Any]:
    """Apply the retention now (admins): non-hits older than the retention are deleted."""
    if who.role is not Role.ADMIN:
        raise PermissionDeniedError("only admins may purge sightings")
    return service.purge(who.username).as_dict()


@router.get("/sightings/alerts", tags=["sightings"])
def list_alerts(
    who: CurrentUser,
    service: Watch,
    status: Literal["open", "acknowledged", "incident", "closed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Alerts the caller may see (its lists; a station officer: those sent to its area)."""
    return service.alerts(who, status=status, limit=limit)


@router.get("/sightings/alerts/{alert_id}", tags=["sightings"])
def get_alert(alert_id: EntryId, who: CurrentUser, service: Watch) -> dict[str, Any]:
    """One alert with its sightings in order (the track in that area)."""
    return service.alert(who, alert_id)


@router.post("/sightings/alerts/{alert_id}/status", tags=["sightings"])
def post_alert_status(
    alert_id: EntryId, body: AlertStatusIn, who: CurrentUser, service: Watch
) -> dict[str, Any]:
    """Acknowledge or close an alert (audited)."""
    return service.set_alert_status(who, alert_id, body.status)


@router.post(
    "/sightings/alerts/{alert_id}/incident",
    status_code=status.HTTP_201_CREATED,
    tags=["sightings"],
)
def open_incident(alert_id: EntryId, who: CurrentUser, service: Watch) -> dict[str, Any]:
    """Open an incident at the alert's latest sighting and link it (one click)."""
    return service.open_incident(who, alert_id)


@router.get("/sightings/tracks/{entry_id}", tags=["sightings"])
def track(entry_id: EntryId, who: CurrentUser, service: Watch) -> dict[str, Any]:
    """The hits of one hotlist entry as a GeoJSON line and points (alerts you may see)."""
    return service.track(who, entry_id)


@router.get("/hotlists", tags=["hotlists"])
def hotlists(who: CurrentUser, service: Watch) -> list[str]:
    """The hotlists your role may read."""
    return service.lists(who)


@router.post("/hotlists/entries", status_code=status.HTTP_201_CREATED, tags=["hotlists"])
def add_entry(body: EntryIn, who: CurrentUser, service: Watch) -> dict[str, Any]:
    """Put a reference on a hotlist (audited with the purpose)."""
    entry = NewEntry(
        kind=body.kind,
        value=body.value,
        reason=body.reason,
        owner=body.owner,
        legal_basis=body.legal_basis,
        case_ref=body.case_ref,
        label=body.label,
        priority=body.priority,
        expires_at=body.expires_at,
        list_name=body.list,
        hashed=body.hashed,
        synthetic=body.synthetic,
    )
    return service.add_entry(who, entry, body.purpose)


@router.get("/hotlists/entries", tags=["hotlists"])
def search_entries(
    who: CurrentUser,
    service: Watch,
    purpose: Annotated[str, Query(min_length=1, max_length=500)],
    list_: Annotated[list[str] | None, Query(alias="list", max_length=20)] = None,
    kind: _Kind | None = None,
    value: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    hashed: bool = False,
    case_ref: Annotated[str | None, Query(max_length=100)] = None,
    include_inactive: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Search the hotlists you may read (audited with the purpose)."""
    return service.search_entries(
        who,
        purpose,
        lists=list_,
        kind=kind,
        value=value,
        hashed=hashed,
        case_ref=case_ref,
        include_inactive=include_inactive,
        limit=limit,
    )


@router.patch("/hotlists/entries/{entry_id}", tags=["hotlists"])
def change_entry(
    entry_id: EntryId, body: EntryChangeIn, who: CurrentUser, service: Watch
) -> dict[str, Any]:
    """Change an entry's label, legal basis, priority, expiry, case reference or owner."""
    changes = body.model_dump(exclude_unset=True, exclude={"purpose"})
    return service.update_entry(who, entry_id, changes, body.purpose)


@router.post("/hotlists/entries/{entry_id}/withdraw", tags=["hotlists"])
def withdraw_entry(
    entry_id: EntryId, body: PurposeIn, who: CurrentUser, service: Watch
) -> dict[str, Any]:
    """Take an entry off its list (kept with its alerts for the record)."""
    return service.withdraw_entry(who, entry_id, body.purpose)


async def keep_sightings(app: FastAPI) -> None:
    """Apply the retention every :data:`PURGE_INTERVAL_S` while the service runs (the first
    time :data:`PURGE_DELAY_S` after start, off the start-up path)."""
    await asyncio.sleep(PURGE_DELAY_S)
    while True:
        try:
            service = sighting_service(app)
            result = await asyncio.to_thread(service.purge)
            if result.deleted:
                log.info("sightings purge: %d deleted", result.deleted)
        except Exception:  # a database hiccup must not end the retention for good
            log.exception("sightings purge failed; retrying")
        await asyncio.sleep(PURGE_INTERVAL_S)
