"""REST routes of a pursuit (堵控): the analysis of a flight and the dispatch of its plan.

* ``POST /api/v1/incidents/{id}/pursuit``: isochrone rings, hiding-area ranking (with the route
  model's assumptions) and the checkpoint plan with its units, its out-of-sample interception
  share (95 % interval) and the naive plan's share, computed by :mod:`citywatch.pursuit`.  Read
  only: every role that may see the incident (not unit devices); the units are the available
  units of the caller's scope.
* ``POST /api/v1/incidents/{id}/pursuit/dispatch``: the plan's units sent to the incident in
  one transaction through :meth:`DispatchService.assign_many` (the lifecycle code of every
  assignment, one audited ``assignment.created`` each, the checkpoint kept in its event), all
  or none, with a result per unit (in the error's ``details`` when refused).
* ``GET /api/v1/incidents/{id}/pursuit/sightings``: the sightings of the surveillance room
  linked to the incident (hits of the hotlist entries whose alerts opened or joined it, seen
  since the incident) that the caller may see, newest first: what a pursuit may start from.

A pursuit starts from the incident's position and time, or from a **sighting** that replaces
both: a stored one (``sighting.id``, or ``sighting.latest`` for the newest linked one) or one
entered by hand (``lon``, ``lat``, ``at``), with the heading the offender was seen taking
there.  The offender was there at that time, so the reach is computed from there, and the
units' delay counts the time elapsed since then.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from citywatch.api.routes import ERROR_RESPONSES, IncidentId, Service
from citywatch.api.schemas import Identifier, IsoTime, Lat, Location, Lon
from citywatch.api.security import CurrentUser
from citywatch.api.sightings import get_sighting_service
from citywatch.api.surveillance import get_sensor_service
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.lifecycle import UnitStatus
from citywatch.dispatch.service import DispatchService
from citywatch.domain import CLOCK_SKEW_S
from citywatch.errors import PermissionDeniedError, ValidationError
from citywatch.pursuit.analysis import Flight, covered_points, hiding_report, plan_report
from citywatch.pursuit.intercept import DEFAULT_DELAY_S, PursuitUnit
from citywatch.pursuit.reach import HORIZONS_MIN, Incident, reachable
from citywatch.routing.speeds import parse_mode
from citywatch.surveillance.sightings import SightingFix
from citywatch.surveillance.store import SensorService
from citywatch.surveillance.watch import SightingService

__all__ = ["MAX_K", "MAX_MINUTES", "MAX_ROUTES", "MAX_SIGHTINGS", "router"]

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES, tags=["pursuit"])

#: Largest horizon (minutes) and number of rings a request may ask for.
MAX_MINUTES = 30
MAX_RINGS = 6
#: Most checkpoints of one plan, and most simulated routes of one request (CPU bound).
MAX_K = 20
MAX_ROUTES = 5000
DEFAULT_ROUTES = 1000
#: Longest ranking returned.
MAX_TOP = 100
#: Most linked sightings listed for an incident.
MAX_SIGHTINGS = 50


class SightingIn(BaseModel):
    """A later sighting: it moves the origin and the clock.  Exactly one of a stored sighting
    (``id``), the newest sighting linked to the incident (``latest``), or one entered by hand
    (``lon``, ``lat``, ``at``: a report, a camera the registry does not hold)."""

    model_config = ConfigDict(extra="forbid")

    id: StrictInt | None = Field(None, ge=1, le=2**63 - 1, description="a stored sighting")
    latest: bool = Field(False, description="the newest sighting linked to the incident")
    lon: Lon | None = None
    lat: Lat | None = None
    at: IsoTime | None = Field(None, description="when the offender was seen there")
    heading_deg: float | None = Field(
        None, ge=0, le=360, allow_inf_nan=False, description="direction he was seen taking"
    )

    @model_validator(mode="after")
    def _one_form(self) -> SightingIn:
        by_hand = [v is not None for v in (self.lon, self.lat, self.at)]
        if any(by_hand) and not all(by_hand):
            raise ValueError("a sighting entered by hand needs lon, lat and at")
        forms = (self.id is not None) + self.latest + all(by_hand)
        if forms != 1:
            raise ValueError("give exactly one of id, latest or lon/lat/at")
        return self


class PursuitIn(BaseModel):
    """What to compute for an incident's flight."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["foot", "bicycle", "motorcycle", "car"] = Field(
        "motorcycle", description="the offender's mode (bicycle also stands for e-bikes)"
    )
    minutes: list[StrictInt] = Field(
        default_factory=lambda: list(HORIZONS_MIN),
        min_length=1,
        max_length=MAX_RINGS,
        description=f"ring horizons, 1..{MAX_MINUTES} minutes",
    )
    k: StrictInt = Field(6, ge=1, le=MAX_K, description="checkpoints of the plan")
    seed: StrictInt = Field(0, ge=0, le=2**31 - 1, description="seed of the route simulation")
    routes: StrictInt = Field(DEFAULT_ROUTES, ge=100, le=MAX_ROUTES, description="simulated routes")
    heading_deg: float | None = Field(
        None, ge=0, le=360, allow_inf_nan=False, description="direction first seen"
    )
    delay_s: float | None = Field(
        None,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description=f"seconds from the origin's time until units move; default "
        f"{DEFAULT_DELAY_S:g} s plus the time already passed since then",
    )
    cameras: bool = Field(
        True, description="routes avoid streets a working camera of the registry sees"
    )
    top: StrictInt = Field(20, ge=1, le=MAX_TOP, description="places and blocks ranked")
    origin: Location | None = Field(None, description="corrected incident position")
    sighting: SightingIn | None = None


class CheckpointIn(BaseModel):
    """One assignment of the plan: a unit and the checkpoint it holds."""

    model_config = ConfigDict(extra="forbid")

    unit_id: Identifier
    lon: Lon
    lat: Lat
    eta_s: float | None = Field(None, ge=0, le=86_400, allow_inf_nan=False)


class PursuitDispatchIn(BaseModel):
    """The plan to apply (the checkpoints as the pursuit answer listed them)."""

    model_config = ConfigDict(extra="forbid")

    checkpoints: list[CheckpointIn] = Field(min_length=1, max_length=MAX_K)


Sensors = Annotated[SensorService, Depends(get_sensor_service)]
Watch = Annotated[SightingService, Depends(get_sighting_service)]


def _units(service: DispatchService, who: Principal) -> list[PursuitUnit]:
    """The available units of the caller's scope at their located positions."""
    out = []
    for u in service.list_units(who, status=UnitStatus.AVAILABLE):
        lon, lat = u["located"]["lon"], u["located"]["lat"]
        if math.isfinite(lon) and math.isfinite(lat):
            out.append(PursuitUnit(u["id"], u["unit_type"], parse_mode(u["mode"]), lon, lat))
    return out


def _sighting(
    service: DispatchService,
    watch: SightingService,
    who: Principal,
    incident: dict[str, Any],
    s: SightingIn,
) -> tuple[float, float, datetime, dict[str, Any]]:
    """Position, time and description of the sighting a pursuit starts from."""
    if s.lon is not None and s.lat is not None and s.at is not None:
        lon, lat, at = s.lon, s.lat, s.at
        about: dict[str, Any] = {"by": "hand"}
    else:
        if s.id is not None:
            fix = _usable(watch, who, s.id)
            by = "id"
        else:
            fixes = _linked(watch, who, incident, limit=1)
            if not fixes:
                raise ValidationError(
                    f"incident {incident['id']} has no linked sighting you may see",
                    field="sighting",
                )
            fix, by = fixes[0], "latest"
        lon, lat, at = fix.lon, fix.lat, fix.seen_at
        about = {"by": by, **fix.as_dict()}
    if (at - service.clock()).total_seconds() > CLOCK_SKEW_S:
        raise ValidationError("a sighting cannot be in the future", field="sighting")
    return lon, lat, at, {**about, "heading_deg": s.heading_deg}


def _usable(watch: SightingService, who: Principal, sighting_id: int) -> SightingFix:
    """A stored sighting the caller may start from (404/403 name the ``sighting`` field)."""
    try:
        return watch.pursuit_sighting(who, sighting_id)
    except PermissionDeniedError as exc:
        raise PermissionDeniedError(exc.message, field="sighting") from None


def _linked(
    watch: SightingService, who: Principal, incident: dict[str, Any], limit: int
) -> list[SightingFix]:
    """The incident's linked sightings the caller may see (none when its role reads no list)."""
    received: datetime = incident["received_at"]
    return watch.incident_sightings(who, str(incident["id"]), received, limit=limit)


def _origin(
    service: DispatchService,
    watch: SightingService,
    who: Principal,
    incident: dict[str, Any],
    body: PursuitIn,
) -> tuple[Incident, dict[str, Any] | None]:
    lon, lat = incident["lon"], incident["lat"]
    if body.origin is not None:
        lon, lat = body.origin.lon, body.origin.lat
    received: datetime = incident["received_at"]
    inc = Incident(lon, lat, received, parse_mode(body.mode), body.heading_deg)
    sighting = None
    if body.sighting is not None:
        if body.heading_deg is not None:
            raise ValidationError(
                "heading_deg is the direction first seen at the incident; with a sighting "
                "give the direction seen there as sighting.heading_deg",
                field="heading_deg",
            )
        s_lon, s_lat, s_at, sighting = _sighting(service, watch, who, incident, body.sighting)
        try:
            inc = inc.sighted(s_lon, s_lat, s_at, body.sighting.heading_deg)
        except ValidationError as exc:
            raise ValidationError(exc.message, field="sighting") from None
    if not service.pack.contains(inc.lon, inc.lat):
        raise ValidationError(
            f"({inc.lon}, {inc.lat}) is outside the city pack {service.pack.name}",
            field="sighting" if body.sighting is not None else "origin",
        )
    return inc, sighting


@router.post("/incidents/{incident_id}/pursuit")
def pursuit(
    incident_id: IncidentId,
    body: PursuitIn,
    request: Request,
    who: CurrentUser,
    service: Service,
    watch: Watch,
) -> dict[str, Any]:
    """Where the offender can be (rings), where he may hide (ranking) and the checkpoint plan
    that cuts him off with the available units, against sending the nearest units to the scene.

    The interception share is re-measured on a fresh set of simulated routes (out of sample)
    with a 95 % Wilson interval.  CPU bound: about a second per 1,000 routes on Manhattan.
    """
    if any(not 1 <= m <= MAX_MINUTES for m in body.minutes):
        raise ValidationError(f"minutes must be 1..{MAX_MINUTES}", field="minutes")
    incident = service.get_incident(who, incident_id)  # scope and role checks
    inc, sighting = _origin(service, watch, who, incident, body)
    horizon_s = 60.0 * max(body.minutes)
    covered = None
    if body.cameras:
        cov = get_sensor_service(request).coverage(who)
        covered = covered_points(cov, service.pack.timezone, inc.at)
    flight = Flight.simulate(
        service.pack,
        inc,
        router=service.router,
        n_routes=body.routes,
        horizon_s=horizon_s,
        seed=body.seed,
        covered_xy=covered,
    )
    reach = reachable(service.router, inc, body.minutes)
    hiding = hiding_report(flight, cameras=covered is not None and len(covered) > 0, top=body.top)
    elapsed = max(0.0, (service.clock() - inc.at).total_seconds())
    delay = body.delay_s if body.delay_s is not None else DEFAULT_DELAY_S + elapsed
    units = _units(service, who)
    plan = plan_report(flight, units, body.k, delay_s=delay) if units else None
    return {
        "incident_id": incident_id,
        "origin": {
            "lon": inc.lon,
            "lat": inc.lat,
            "at": inc.at,
            "source": "sighting" if body.sighting else "origin" if body.origin else "incident",
            "heading_deg": inc.heading_deg,
            "sighting": sighting,
        },
        "mode": inc.mode,
        "elapsed_s": round(elapsed, 1),
        "delay_s": round(delay, 1),
        "rings": {"summary": reach.summary(), "geojson": reach.to_geojson()},
        "hiding": {
            "assumptions": hiding["assumptions"],
            "ranking": [
                {k: v for k, v in r.items() if k != "geometry"}
                for r in [*hiding["places"], *hiding["blocks"]]
            ],
            "geojson": hiding["geojson"],
        },
        "units_available": len(units),
        "plan": plan,
    }


@router.get("/incidents/{incident_id}/pursuit/sightings")
def pursuit_sightings(
    incident_id: IncidentId, who: CurrentUser, service: Service, watch: Watch
) -> dict[str, Any]:
    """The sightings linked to the incident that the caller may see, newest first: hits of
    the hotlist entries whose alerts opened or joined it, seen since the incident was
    received (a pursuit may start from any of them, ``sighting.latest`` from the first)."""
    incident = service.get_incident(who, incident_id)  # scope and role checks
    if who.role is Role.UNIT_DEVICE:
        raise PermissionDeniedError("unit devices do not run pursuits")
    fixes = _linked(watch, who, incident, limit=MAX_SIGHTINGS)
    elapsed = [max(0.0, (service.clock() - f.seen_at).total_seconds()) for f in fixes]
    return {
        "incident_id": incident_id,
        "received_at": incident["received_at"],
        "sightings": [
            {**f.as_dict(), "elapsed_s": round(e, 1)} for f, e in zip(fixes, elapsed, strict=True)
        ],
    }


@router.post("/incidents/{incident_id}/pursuit/dispatch", status_code=status.HTTP_201_CREATED)
def dispatch_plan(
    incident_id: IncidentId, body: PursuitDispatchIn, who: CurrentUser, service: Service
) -> dict[str, Any]:
    """Send every unit of a checkpoint plan to the incident, all or none (409 with a result
    per unit in ``error.details`` when one is not available); each assignment is audited and
    keeps its checkpoint."""
    details = [
        {"pursuit_checkpoint": {"lon": c.lon, "lat": c.lat, "eta_s": c.eta_s}}
        for c in body.checkpoints
    ]
    out = service.assign_many(
        who, incident_id, [c.unit_id for c in body.checkpoints], details=details
    )
    return {
        "incident_id": incident_id,
        "assigned": len(out),
        "results": [
            {
                "unit_id": a["unit_id"],
                "result": "assigned",
                "assignment_id": a["id"],
                "eta_s": a["eta_s"],
                "checkpoint": a["detail"]["pursuit_checkpoint"],
            }
            for a in out
        ],
    }
