"""The dispatcher's console routes: geocoding, intake checks, notes, merges, cautions.

Thin wrappers over :class:`citywatch.dispatch.intake.ConsoleService`; the incident number,
callers, notes, merges and cautions also appear in ``GET /incidents/{id}`` (see
:mod:`citywatch.api.routes`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from citywatch.api.routes import ERROR_RESPONSES, IncidentId, Service, UnitId
from citywatch.api.schemas import Code, IsoTime, Location, Notes
from citywatch.api.security import CurrentUser
from citywatch.city.geocode import has_street_names
from citywatch.dispatch.duplicates import CAUTION_SEVERITIES
from citywatch.dispatch.intake import ConsoleService
from citywatch.dispatch.policy import PolicyName
from citywatch.domain import LAT_RANGE, LON_RANGE, PRIORITY_RANGE

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES, tags=["console"])
Lon = Annotated[float, Query(ge=LON_RANGE[0], le=LON_RANGE[1], allow_inf_nan=False)]
Lat = Annotated[float, Query(ge=LAT_RANGE[0], le=LAT_RANGE[1], allow_inf_nan=False)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoteIn(_In):
    """A note appended to an incident."""

    text: Annotated[Notes, Field(min_length=1, max_length=2000)]


class MergeIn(_In):
    """Merge ``duplicate_id`` into the incident of the path (EIDO: it is ``REPLACED``)."""

    duplicate_id: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:-]+$")]


class CautionIn(_In):
    """A caution note on a location (EIDO caution: type, severity; plus radius and expiry)."""

    location: Location
    kind: Code = Field(description="one of the console's caution kinds (GET /intake/config)")
    severity: str = Field(pattern=f"^({'|'.join(CAUTION_SEVERITIES)})$")
    text: Annotated[Notes, Field(min_length=1, max_length=2000)]
    radius_m: float | None = Field(None, gt=0, le=2000, allow_inf_nan=False)
    expires_at: IsoTime | None = None


@router.get("/intake/config")
def intake_config(who: CurrentUser, service: Service) -> dict[str, Any]:
    """What the intake form needs: categories (zh/en, default priority), whether the pack has
    street names, the duplicate and premise rules, the caution kinds and severities.
    (``GET /geocode`` gives the number of indexed streets.)"""
    cfg = service.console
    tax = service.taxonomy
    return {
        "pack": service.pack.name,
        "has_names": has_street_names(service.pack.network),
        "categories": [
            {
                "code": code,
                "en": tax.label(code, "en"),
                "zh": tax.label(code, "zh"),
                "priority": tax.priority(code),
                "parent": tax.category(code).parent,
            }
            for code in tax.codes
        ],
        "duplicates": {
            "radius_m": cfg.duplicate_radius_m,
            "window_min": cfg.duplicate_window_s / 60.0,
        },
        "premise": {"radius_m": cfg.premise_radius_m, "default_days": cfg.premise_default_days},
        "caution_kinds": list(cfg.caution_kinds),
        "caution_severities": list(CAUTION_SEVERITIES),
    }


@router.get("/geocode")
def geocode(
    who: CurrentUser,
    service: Service,
    q: Annotated[str, Query(min_length=1, max_length=200)],
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
) -> dict[str, Any]:
    """Ranked candidates for an address, cross streets (``1 Ave @ 110 St``,
    ``深南大道 / 金田路``) or ``lat, lon``, over the pack's own street names (no internet).
    ``has_names: false``: the pack's network has no street names; locate calls by map click."""
    return ConsoleService(service).geocode(q, limit=limit)


@router.get("/intake/check")
def intake_check(
    who: CurrentUser,
    service: Service,
    lon: Lon,
    lat: Lat,
    category: Annotated[str, Query(min_length=1, max_length=64)],
    exclude: Annotated[str | None, Query(max_length=255)] = None,
) -> dict[str, Any]:
    """Before creating a call: possible duplicates (active incidents of a compatible category
    within R metres and T minutes), premise history (count and list of earlier incidents near
    the location within the category's look-back) and the active caution notes there."""
    return ConsoleService(service).check(who, lon=lon, lat=lat, category=category, exclude=exclude)


@router.get("/intake/recommend")
def intake_recommend(
    who: CurrentUser,
    service: Service,
    lon: Lon,
    lat: Lat,
    category: Annotated[str, Query(min_length=1, max_length=64)],
    priority: Annotated[int | None, Query(ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])] = None,
    k: Annotated[int, Query(ge=1, le=100)] = 5,
    policy: Annotated[PolicyName, Query()] = "nearest",
) -> dict[str, Any]:
    """The recommendation for a call being taken (not yet created): as
    ``GET /incidents/{id}/recommendations``, for a location and category."""
    return ConsoleService(service).preview(
        who, lon=lon, lat=lat, category=category, priority=priority, k=k, policy=policy
    )


@router.post("/incidents/{incident_id}/notes", status_code=status.HTTP_201_CREATED)
def add_note(
    incident_id: IncidentId, body: NoteIn, who: CurrentUser, service: Service
) -> dict[str, Any]:
    """Append a note (author and time recorded, audited, on the timeline)."""
    return ConsoleService(service).add_note(who, incident_id, body.text)


@router.post("/incidents/{incident_id}/merge")
def merge(
    incident_id: IncidentId, body: MergeIn, who: CurrentUser, service: Service
) -> dict[str, Any]:
    """Merge a duplicate into this incident: its callers move here, it is cancelled, both
    timelines stay (EIDO merge: this one ``REPLACING``, the duplicate ``REPLACED``)."""
    return ConsoleService(service).merge(who, incident_id, body.duplicate_id)


@router.post("/cautions", status_code=status.HTTP_201_CREATED)
def create_caution(body: CautionIn, who: CurrentUser, service: Service) -> dict[str, Any]:
    """Record a caution note on a location (audited)."""
    return ConsoleService(service).create_caution(
        who,
        lon=body.location.lon,
        lat=body.location.lat,
        kind=body.kind,
        severity=body.severity,
        text=body.text,
        radius_m=body.radius_m,
        expires_at=body.expires_at,
    )


@router.get("/cautions")
def list_cautions(
    who: CurrentUser, service: Service, lon: Lon | None = None, lat: Lat | None = None
) -> list[dict[str, Any]]:
    """Active cautions at a point (``lon``, ``lat``), or all of them in the caller's scope."""
    return ConsoleService(service).list_cautions(who, lon=lon, lat=lat)


@router.post("/cautions/{caution_id}/revoke")
def revoke_caution(
    caution_id: Annotated[int, Path(ge=1, le=2**31 - 1)], who: CurrentUser, service: Service
) -> dict[str, Any]:
    """End a caution before its expiry (audited)."""
    return ConsoleService(service).revoke_caution(who, caution_id)


@router.get("/units/{unit_id}/cautions")
def unit_cautions(unit_id: UnitId, who: CurrentUser, service: Service) -> dict[str, Any]:
    """The caution notes at the unit's current incident (a unit device may ask for its own)."""
    return ConsoleService(service).unit_cautions(who, unit_id)
