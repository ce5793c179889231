"""REST routes under ``/api/v1``: thin wrappers that hand over to :class:`DispatchService`."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Header, Path, Query, Request, Response, status

from citywatch.api.schemas import (
    AssignmentIn,
    AssignmentOut,
    ErrorOut,
    Identifier,
    IncidentIn,
    IncidentOut,
    IncidentStatusIn,
    IsoTime,
    RecommendationOut,
    RefreshIn,
    StatusChangeOut,
    TokenOut,
    UnitIn,
    UnitOut,
    UnitStatusIn,
)
from citywatch.api.security import CurrentUser, login, logout, oauth2_scheme, refresh
from citywatch.dispatch.intake import ConsoleService
from citywatch.dispatch.kpis import GROUPINGS
from citywatch.dispatch.lifecycle import IncidentStatus, UnitStatus
from citywatch.dispatch.policy import PolicyName
from citywatch.dispatch.service import DispatchService
from citywatch.errors import ValidationError

__all__ = ["ERROR_RESPONSES", "UNIT_ID_PATTERN", "router"]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


#: The error answers every authenticated route may give (documented in the OpenAPI).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _error("not authenticated: missing, invalid or expired token, or account disabled"),
    403: _error("forbidden: the role or jurisdiction scope does not allow this"),
    404: _error("not found: no such incident, unit or user"),
    409: _error("conflict with the current state (illegal transition, unit busy, ...)"),
    413: _error("request body too large"),
    422: _error("validation error: the field at fault is named"),
}
_PUBLIC_RESPONSES: dict[int | str, dict[str, Any]] = {
    k: v for k, v in ERROR_RESPONSES.items() if k in (401, 413, 422)
}
_PUBLIC_RESPONSES[429] = _error("too many login attempts: wait Retry-After seconds")

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
IncidentId = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:-]+$")]
#: A unit id in a path.
UNIT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
UnitId = Annotated[str, Path(min_length=1, max_length=64, pattern=UNIT_ID_PATTERN)]
#: Seconds, finite and positive (no ``inf``), at most a day.
Seconds = Annotated[float, Query(gt=0, le=86_400, allow_inf_nan=False)]


async def get_service(request: Request) -> DispatchService:
    """FastAPI dependency: the application's dispatch service (async: no thread hop)."""
    service: DispatchService = request.app.state.service
    return service


Service = Annotated[DispatchService, Depends(get_service)]


@router.get("/health", tags=["service"])
def health(service: Service) -> dict[str, Any]:
    """Liveness: the pack served, the database dialect and the answering worker's process id."""
    return {
        "status": "ok",
        "pack": service.pack.name,
        "database": service.sessions.kw["bind"].dialect.name,
        "pid": os.getpid(),
    }


@router.post("/auth/token", response_model=TokenOut, tags=["auth"], responses=_PUBLIC_RESPONSES)
async def token(
    request: Request,
    username: Annotated[str, Form(min_length=1, max_length=64)],
    password: Annotated[str, Form(min_length=1, max_length=200)],
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
) -> dict[str, Any]:
    """OAuth2 password flow: exchange a user name and password for a short-lived access token.

    Failed logins back off per client and per account (429 with ``Retry-After``); 10 in a row
    lock the account for 15 minutes (``citywatch users unlock`` ends it)."""
    return await login(request, username, password)


@router.post("/auth/refresh", response_model=TokenOut, tags=["auth"], responses=_PUBLIC_RESPONSES)
def refresh_token(request: Request, body: RefreshIn) -> dict[str, Any]:
    """Spend a single-use refresh token for a new access token and a new refresh token."""
    return refresh(request, body.refresh_token)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"])
def logout_session(
    request: Request,
    body: RefreshIn,
    token: Annotated[str | None, Depends(oauth2_scheme)] = None,
) -> Response:
    """End a login session: its refresh tokens stop working, and so does the access token sent
    in ``Authorization`` (denied on every worker until it expires)."""
    logout(request, body.refresh_token, token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", tags=["auth"])
def me(who: CurrentUser) -> dict[str, Any]:
    """The authenticated caller: user name, role, scope, unit."""
    return {
        "username": who.username,
        "role": who.role.value,
        "scope": who.scope,
        "unit_id": who.unit_id,
    }


# ----------------------------------------------------------------------------- units
@router.post("/units", response_model=UnitOut, status_code=status.HTTP_201_CREATED, tags=["units"])
def create_unit(body: UnitIn, who: CurrentUser, service: Service) -> dict[str, Any]:
    """Register a unit of a station."""
    post = (body.post.lon, body.post.lat) if body.post else None
    return service.create_unit(
        who,
        id=body.id,
        unit_type=body.unit_type,
        station=body.station,
        shift=body.shift,
        capabilities=body.capabilities,
        post=post,
    )


@router.get("/units", response_model=list[UnitOut], tags=["units"])
def list_units(
    who: CurrentUser,
    service: Service,
    status: UnitStatus | None = None,
    station: Annotated[Identifier | None, Query()] = None,
) -> list[dict[str, Any]]:
    """Units in the caller's scope, optionally by status and station."""
    return service.list_units(who, status=status, station=station)


@router.get("/units/{unit_id}", response_model=UnitOut, tags=["units"])
def get_unit(unit_id: UnitId, who: CurrentUser, service: Service) -> dict[str, Any]:
    """One unit, located (its position, or its post or station when the position is stale)."""
    return service.get_unit(who, unit_id)


@router.post("/units/{unit_id}/status", response_model=StatusChangeOut, tags=["units"])
def post_unit_status(
    unit_id: UnitId, body: UnitStatusIn, who: CurrentUser, service: Service
) -> dict[str, Any]:
    """Move a unit along its lifecycle; illegal transitions get 409 listing the allowed ones."""
    return service.set_unit_status(who, unit_id, body.status)


# ----------------------------------------------------------------------------- incidents
def _request_hash(body: IncidentIn) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@router.post(
    "/incidents",
    response_model=IncidentOut,
    status_code=status.HTTP_201_CREATED,
    tags=["incidents"],
)
def create_incident(
    body: IncidentIn,
    who: CurrentUser,
    service: Service,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    """Take a call.  With an ``Idempotency-Key`` header a retry returns the same incident
    (status 200, header ``Idempotent-Replayed: true``) instead of creating a duplicate."""
    incident, created = service.create_incident(
        who,
        category=body.category,
        lon=body.location.lon,
        lat=body.location.lat,
        priority=body.priority,
        caller_notes=body.caller_notes,
        received_at=body.received_at,
        idempotency_key=idempotency_key,
        request_hash=_request_hash(body) if idempotency_key else None,
        location_text=body.location_text,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return incident


@router.get("/incidents", response_model=list[IncidentOut], tags=["incidents"])
def list_incidents(
    who: CurrentUser,
    service: Service,
    status: IncidentStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Live incidents in the caller's scope, newest first, with their numbers."""
    return ConsoleService(service).decorate(service.list_incidents(who, status=status, limit=limit))


@router.get("/incidents/{incident_id}", response_model=IncidentOut, tags=["incidents"])
def get_incident(incident_id: IncidentId, who: CurrentUser, service: Service) -> dict[str, Any]:
    """One incident with its assignments and its timeline (every event, who, when), its
    number, callers, notes, merges (and the timelines of the incidents merged into it) and the
    caution notes at its location."""
    return ConsoleService(service).detail(who, incident_id)


@router.post("/incidents/{incident_id}/status", response_model=StatusChangeOut, tags=["incidents"])
def post_incident_status(
    incident_id: IncidentId, body: IncidentStatusIn, who: CurrentUser, service: Service
) -> dict[str, Any]:
    """Clear or cancel an incident (its units are released), or any other allowed transition."""
    return service.set_incident_status(who, incident_id, body.status)


@router.get(
    "/incidents/{incident_id}/recommendations", response_model=RecommendationOut, tags=["incidents"]
)
def recommendations(
    incident_id: IncidentId,
    who: CurrentUser,
    service: Service,
    k: Annotated[int, Query(ge=1, le=100)] = 5,
    policy: Annotated[PolicyName, Query()] = "nearest",
    threshold_s: Seconds | None = None,
    limit_s: Seconds | None = None,
) -> dict[str, Any]:
    """Every available unit of every station ranked by road travel time to the incident."""
    rec = service.recommend(
        who, incident_id, k=k, policy=policy, threshold_s=threshold_s, limit_s=limit_s
    )
    return rec.as_dict()


@router.post(
    "/incidents/{incident_id}/assignments",
    response_model=AssignmentOut,
    status_code=status.HTTP_201_CREATED,
    tags=["incidents"],
)
def assign(
    incident_id: IncidentId, body: AssignmentIn, who: CurrentUser, service: Service
) -> dict[str, Any]:
    """Dispatch a unit, atomically: a busy unit gets 409 with the reason."""
    return service.assign(who, incident_id, body.unit_id)


# ----------------------------------------------------------------------------- KPIs
@router.get("/kpis", tags=["kpis"])
def kpis(
    request: Request,
    who: CurrentUser,
    service: Service,
    from_: Annotated[
        IsoTime | None, Query(alias="from", description="ISO 8601 with offset; default 24 h ago")
    ] = None,
    to: Annotated[IsoTime | None, Query(description="ISO 8601 with offset; default now")] = None,
    by: Annotated[
        str, Query(pattern=f"^({'|'.join(GROUPINGS)})$", description="grouping of the KPIs")
    ] = "none",
    thresholds: Annotated[
        str | None,
        Query(max_length=100, description="on-scene thresholds in seconds, e.g. 180,600"),
    ] = None,
) -> dict[str, Any]:
    """Response time, call-to-dispatch and travel time (count, mean, p50, p90), shares on scene
    within the thresholds, available units per station and units on the street per km²."""
    end = to or datetime.now(UTC)
    start = from_ or end - timedelta(hours=24)
    if thresholds is None:
        limits = request.app.state.settings.kpi_thresholds_s
    else:
        limits = _thresholds(thresholds)
    return service.kpis(who, start=start, end=end, by=by, thresholds_s=limits)


def _thresholds(text: str) -> tuple[float, ...]:
    """Comma-separated on-scene thresholds: 1 to 8 finite seconds in (0, 86400]."""
    try:
        values = tuple(float(t) for t in text.split(","))
    except ValueError:
        values = ()
    if not 1 <= len(values) <= 8 or not all(0 < v <= 86_400 for v in values):
        raise ValidationError(
            "thresholds must be 1 to 8 comma-separated seconds in (0, 86400]", field="thresholds"
        )
    return values
