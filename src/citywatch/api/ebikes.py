"""REST routes of the e-bike registry: thin wrappers over
:class:`citywatch.surveillance.ebikes.EBikeRegistry`.

Tags travel only in request bodies, never in URLs, so that they stay out of access logs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from citywatch.api.lazy import app_service
from citywatch.api.security import CurrentUser
from citywatch.dispatch.accounts import Role
from citywatch.errors import PermissionDeniedError
from citywatch.incidents.load import load_incidents
from citywatch.surveillance.ebike_stats import EBIKE_CATEGORIES, MOPED_CATEGORY, theft_stats
from citywatch.surveillance.ebike_thefts import LAYER_LIMIT, theft_layer
from citywatch.surveillance.ebikes import READ_ROLES, EBikeRegistry

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/ebikes", tags=["ebikes"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TagIn(_Body):
    """An e-bike named by its tag."""

    tag: str = Field(min_length=4, max_length=64)


class EBikeIn(TagIn):
    """An e-bike to register (only these fields are kept)."""

    station: str | None = Field(default=None, max_length=64)
    make: str | None = Field(default=None, max_length=64)
    colour: str | None = Field(default=None, max_length=32)
    contact: str | None = Field(default=None, max_length=120)


class TheftIn(TagIn):
    """A theft of a registered e-bike."""

    occurred_at: AwareDatetime
    lon: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)
    note: str | None = Field(default=None, max_length=500)


def get_registry(request: Request) -> EBikeRegistry:
    """FastAPI dependency: the registry of the served pack (on the dispatch service's database)."""
    service = request.app.state.service
    return app_service(
        request.app, "ebike_registry", lambda: EBikeRegistry(service.sessions, service.pack)
    )


Registry = Annotated[EBikeRegistry, Depends(get_registry)]


@router.get("")
def list_ebikes(
    who: CurrentUser,
    registry: Registry,
    station: str | None = None,
    bike_status: Annotated[Literal["registered", "stolen"] | None, Query(alias="status")] = None,
) -> list[dict[str, Any]]:
    """Registered e-bikes in the caller's scope (contacts only for its own station)."""
    return registry.bikes(who, station=station, status=bike_status)


@router.post("", status_code=status.HTTP_201_CREATED)
def register_ebike(body: EBikeIn, who: CurrentUser, registry: Registry) -> dict[str, Any]:
    """Register an e-bike (admin, commander, station officer at its own station)."""
    return registry.register(
        who,
        body.tag,
        make=body.make,
        colour=body.colour,
        contact=body.contact,
        station=body.station,
    )


@router.post("/lookup")
def lookup_ebike(body: TagIn, who: CurrentUser, registry: Registry) -> dict[str, Any]:
    """One e-bike by its tag, with its theft reports."""
    return registry.get(who, body.tag)


@router.post("/deregister")
def deregister_ebike(body: TagIn, who: CurrentUser, registry: Registry) -> dict[str, Any]:
    """Delete an e-bike and its owner contact."""
    return registry.deregister(who, body.tag)


@router.post("/thefts", status_code=status.HTTP_201_CREATED)
def report_theft(body: TheftIn, who: CurrentUser, registry: Registry) -> dict[str, Any]:
    """Report a registered e-bike stolen: incident, theft report and hotlist entry."""
    return registry.report_theft(
        who, body.tag, occurred_at=body.occurred_at, lon=body.lon, lat=body.lat, note=body.note
    )


@router.post("/recover")
def recover_ebike(body: TagIn, who: CurrentUser, registry: Registry) -> dict[str, Any]:
    """The stolen e-bike was found: report closed, hotlist entry withdrawn."""
    return registry.recover(who, body.tag)


@router.get("/thefts")
def list_thefts(
    who: CurrentUser,
    registry: Registry,
    report_status: Annotated[Literal["open", "recovered"] | None, Query(alias="status")] = None,
) -> list[dict[str, Any]]:
    """Theft reports in the caller's scope, newest first."""
    return registry.reports(who, status=report_status)


@router.get("/thefts/layer")
def theft_map(
    who: CurrentUser,
    registry: Registry,
    limit: Annotated[int, Query(ge=1, le=LAYER_LIMIT)] = LAYER_LIMIT,
) -> dict[str, Any]:
    """E-bike thefts of the served city on the map (imported and reported), newest first, with
    the make and colour of what was stolen; the registry's readers, in their scope."""
    if who.role not in READ_ROLES:
        raise PermissionDeniedError(f"role {who.role} may not read e-bike thefts")
    return theft_layer(registry.sessions.kw["bind"], registry.pack, who, limit=limit)


@router.get("/stats")
def theft_statistics(
    who: CurrentUser,
    registry: Registry,
    mopeds: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """E-bike thefts of the served city by station area and local hour (aggregates only, so
    analysts may read them; station officers get their own areas)."""
    if who.role is Role.UNIT_DEVICE:
        raise PermissionDeniedError("unit devices may not read theft statistics")
    pack = registry.pack
    categories = list(EBIKE_CATEGORIES) + ([MOPED_CATEGORY] if mopeds else [])
    engine = registry.sessions.kw["bind"]
    frame = load_incidents(engine, categories=categories, pack=pack, start=start, end=end).frame
    areas = [j.id for j in pack.jurisdictions if j.level == "station"]
    doc = theft_stats(frame, pack.timezone, mopeds=mopeds, areas=areas).to_dict()
    if who.role is Role.STATION_OFFICER:
        doc["by_area"] = [a for a in doc["by_area"] if a["area"] == who.scope]
    return doc
