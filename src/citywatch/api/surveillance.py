"""REST routes of the sensor registry and camera coverage: thin wrappers over
:class:`citywatch.surveillance.store.SensorService`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from citywatch.api.lazy import app_service
from citywatch.api.security import CurrentUser
from citywatch.surveillance.blindspots import blind_spots
from citywatch.surveillance.maps import STATUS_COLOURS, segments_geojson
from citywatch.surveillance.registry import sensors_geojson
from citywatch.surveillance.sensors import Sensor
from citywatch.surveillance.store import SensorService

__all__ = ["router"]

# Tags per route: a router-level tag would be added to the surveillance routes' own, and
# Swagger UI would list those operations twice.
router = APIRouter(prefix="/api/v1")


class SensorIn(BaseModel):
    """A sensor to register (or replace)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    kind: Literal["fixed_camera", "ptz", "plate_reader", "ebike_tag_reader"]
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    owner: Literal["police", "city", "business", "market", "private_registered"]
    name: str | None = Field(default=None, max_length=200)
    direction_deg: float | None = Field(default=None, ge=0, le=360)
    fov_deg: float | None = Field(default=None, gt=0, le=360)
    range_m: float | None = Field(default=None, gt=0, le=2000)
    power_off: str | None = Field(default=None, max_length=200, examples=["23:00-06:00"])


class SensorStatusIn(BaseModel):
    """A status change of a sensor."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["online", "offline", "maintenance"]
    note: str | None = Field(default=None, max_length=500)


def get_sensor_service(request: Request) -> SensorService:
    """FastAPI dependency: the registry of the served pack (on the dispatch service's database)."""
    service = request.app.state.service
    return app_service(
        request.app, "sensor_service", lambda: SensorService(service.sessions, service.pack)
    )


Sensors = Annotated[SensorService, Depends(get_sensor_service)]


@router.get("/sensors", tags=["sensors"])
def list_sensors(
    who: CurrentUser, service: Sensors, station: str | None = None
) -> list[dict[str, Any]]:
    """Sensors in the caller's scope, optionally of one station."""
    return service.list(who, station=station)


@router.get("/sensors/layer", tags=["sensors"])
def sensors_layer(who: CurrentUser, service: Sensors) -> dict[str, Any]:
    """The dashboard layer: sensors in scope as GeoJSON points, with their status colour."""
    doc = sensors_geojson(service.sensors(who))
    for feature in doc["features"]:
        feature["properties"]["colour"] = STATUS_COLOURS[feature["properties"]["status"]]
    return doc


@router.get("/sensors/{sensor_id}", tags=["sensors"])
def get_sensor(sensor_id: str, who: CurrentUser, service: Sensors) -> dict[str, Any]:
    """One sensor with its status history."""
    return service.get(who, sensor_id)


@router.post("/sensors", status_code=status.HTTP_201_CREATED, tags=["sensors"])
def register_sensor(body: SensorIn, who: CurrentUser, service: Sensors) -> dict[str, Any]:
    """Register a sensor (admin, commander): snapped to the street, jurisdictions filled."""
    sensor = Sensor.from_record({**body.model_dump(), "source": "api"})
    return service.register(who, sensor)


@router.put("/sensors/{sensor_id}/status", tags=["sensors"])
def put_sensor_status(
    sensor_id: str, body: SensorStatusIn, who: CurrentUser, service: Sensors
) -> dict[str, Any]:
    """Report a sensor online, offline or in maintenance; kept in its history and audited."""
    return service.set_status(who, sensor_id, body.status, body.note)


@router.get("/surveillance/blind-spots", tags=["surveillance"])
def blind_spot_layer(
    who: CurrentUser,
    service: Sensors,
    hour: Annotated[int, Query(ge=0, le=23)],
    top: Annotated[int, Query(ge=1, le=2000)] = 300,
) -> dict[str, Any]:
    """The dashboard layer: the longest street stretches no working camera sees at ``hour``
    (local), in the caller's scope, as GeoJSON lines."""
    cov = service.coverage(who)
    table = blind_spots(cov, hours=[hour])
    table = table[[service.sees_area(who, str(a)) for a in table["area"]]]
    table = table.sort_values("uncovered_m", ascending=False, kind="stable").head(top)
    return segments_geojson(cov, table)


@router.get("/surveillance/coverage", tags=["surveillance"])
def coverage_by_hour(who: CurrentUser, service: Sensors) -> dict[str, Any]:
    """Share of street length in view of a working camera by local hour, city-wide and per
    station area in the caller's scope."""
    doc = service.coverage(who).coverage_by_hour().to_dict()
    doc["by_area"] = {k: v for k, v in doc["by_area"].items() if service.sees_area(who, k)}
    return doc
