"""Request and response bodies of the REST API (pydantic models; they make the OpenAPI document)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
)

from citywatch.dispatch.lifecycle import IncidentStatus, UnitStatus
from citywatch.domain import LAT_RANGE, LON_RANGE, PRIORITY_RANGE

__all__ = [
    "MAX_BATCH_FIXES",
    "AssignmentIn",
    "AssignmentOut",
    "Code",
    "ErrorOut",
    "FixIn",
    "FixResult",
    "Identifier",
    "IncidentIn",
    "IncidentOut",
    "IncidentStatusIn",
    "IsoTime",
    "Location",
    "Notes",
    "PositionBatchIn",
    "PositionBatchOut",
    "PositionIn",
    "PositionOut",
    "RecommendationOut",
    "RefreshIn",
    "Secret",
    "Short",
    "StatusChangeOut",
    "TokenOut",
    "UnitIn",
    "UnitOut",
    "UnitStatusIn",
]


#: Most fixes in one ``POST /positions`` request.
MAX_BATCH_FIXES: Final = 1000
#: Years a time stamp may carry at all (the service applies tighter, "plausible" windows).
_YEARS = range(1900, 2200)
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


def _iso_text(value: Any) -> Any:
    # Numbers (``0.5``, ``1e9``) would otherwise be read as seconds since 1970.
    if isinstance(value, str) and _ISO.match(value):
        return value
    if isinstance(value, datetime):
        return value
    raise ValueError("must be an ISO 8601 date-time with offset, e.g. 2026-12-01T09:30:00+01:00")


def _sane_year(value: datetime) -> datetime:
    # Checked before any time-zone arithmetic, which overflows at 0001-01-01 and 9999-12-31.
    if value.year not in _YEARS:
        raise ValueError(f"year must be {_YEARS.start} to {_YEARS.stop - 1}")
    return value


_Clean = AfterValidator(_no_nul)
#: Bounded strings without NUL characters (PostgreSQL cannot store them).
Code = Annotated[str, Field(min_length=1, max_length=64), _Clean]
Short = Annotated[str, Field(min_length=1, max_length=32), _Clean]
Secret = Annotated[str, Field(min_length=1, max_length=200), _Clean]
Notes = Annotated[str, Field(max_length=4000), _Clean]


#: An ISO 8601 date-time with offset, in years 1900-2199.
IsoTime = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_sane_year)]
#: An object id (unit, station, incident): letters, digits and ``_.:-``.
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Lon = Annotated[
    float, Field(ge=LON_RANGE[0], le=LON_RANGE[1], strict=True, description="degrees east")
]
Lat = Annotated[
    float, Field(ge=LAT_RANGE[0], le=LAT_RANGE[1], strict=True, description="degrees north")
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Location(_In):
    """A WGS-84 point."""

    lon: Lon
    lat: Lat


class UnitIn(_In):
    """A unit to register."""

    id: Identifier = Field(description="call sign, e.g. 14-RMP-2")
    unit_type: Short = Field(
        description="patrol_car, motorcycle, foot, bicycle, mounted, special_police"
    )
    station: Short = Field(description="home station id of the city pack")
    shift: Short | None = None
    capabilities: list[Short] = Field(default_factory=list, max_length=16)
    post: Location | None = Field(
        None, description="where the unit is assumed when its position is stale"
    )


class PositionIn(_In):
    """An AVL fix (time of the fix at most a few seconds ahead of the server's clock and at
    most a day old)."""

    lon: Lon
    lat: Lat
    at: IsoTime = Field(description="time of the fix, ISO 8601 with offset")


class FixIn(PositionIn):
    """One AVL fix of a batch: the unit it is for, and the fix."""

    unit_id: Identifier


class PositionBatchIn(_In):
    """AVL fixes of many units, e.g. from a gateway (each is validated like a single PUT)."""

    fixes: list[FixIn] = Field(min_length=1, max_length=MAX_BATCH_FIXES)


class UnitStatusIn(_In):
    """A unit status change."""

    status: UnitStatus = Field(description="the new status (dispatched only by assignment)")


class IncidentIn(_In):
    """A call to create an incident."""

    category: Code = Field(description="category code of the incident taxonomy, e.g. robbery")
    location: Location
    priority: StrictInt | None = Field(
        None,
        ge=PRIORITY_RANGE[0],
        le=PRIORITY_RANGE[1],
        description="{} (highest) .. {}; category default".format(*PRIORITY_RANGE),
    )
    caller_notes: Notes | None = None
    received_at: IsoTime | None = Field(
        None, description="when the call came in (at most a day ago); now by default"
    )
    location_text: Annotated[str, Field(max_length=200), _Clean] | None = Field(
        None, description="the address or cross streets as given by the caller"
    )


class IncidentStatusIn(_In):
    """An incident status change."""

    status: IncidentStatus = Field(description="e.g. cleared, cancelled")


class AssignmentIn(_In):
    """Send a unit."""

    unit_id: Identifier


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorOut(BaseModel):
    """The canonical error body: ``{"error": {status, code, message, field}}``."""

    error: dict[str, Any] = Field(
        description="status (HTTP), code (validation_error, off_network, not_authenticated, "
        "forbidden, not_found, conflict, payload_too_large, request_timeout, "
        "too_many_requests, ...), message, field"
    )


class TokenOut(_Out):
    """OAuth2 token response."""

    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class RefreshIn(_In):
    """A refresh token to spend (``/auth/refresh``) or revoke (``/auth/logout``)."""

    refresh_token: Secret


class UnitOut(_Out):
    """A unit as the dispatcher sees it: ``located`` is its position, or its post or station
    when the position is stale."""

    id: str
    unit_type: str
    mode: str
    station: str | None
    shift: str | None
    capabilities: list[str]
    status: str
    status_at: datetime
    incident_id: str | None
    position: dict[str, Any] | None
    located: dict[str, float]
    position_stale: bool


class PositionOut(_Out):
    """Whether the fix moved the unit (a fix older than the current one only joins the history)."""

    unit_id: str
    applied: bool
    lon: float
    lat: float
    at: datetime


class IncidentOut(_Out):
    """A live incident; the detail view adds ``assignments`` and ``timeline``."""

    id: str
    category: str
    category_label: dict[str, str]
    priority: int | None
    lon: float | None
    lat: float | None
    bureau: str | None
    station: str | None
    zone: str | None
    place_kinds: list[str]
    status: str
    received_at: datetime


class StatusChangeOut(_Out):
    """A validated, time-stamped status change."""

    to: str


class AssignmentOut(_Out):
    """A unit sent to an incident, with its road ETA at the time of dispatch."""

    id: int
    incident_id: str
    unit_id: str
    assigned_at: datetime
    assigned_by: str
    eta_s: float | None
    metres: float | None


class RecommendationOut(_Out):
    """Ranked candidates (every available unit considered), suggested team, and status/reason."""

    incident_id: str
    policy: str
    status: str
    reason: str | None
    #: The same reasons as stable machine codes with parameters (see ``REASON_TEXTS``).
    reasons: list[dict[str, Any]]
    team: list[str]
    candidates: list[dict[str, Any]]


class FixResult(_Out):
    """What became of one fix of a batch: stored (``applied`` when it moved the unit) or
    refused with the error a single PUT would have given."""

    index: int
    unit_id: str
    stored: bool
    applied: bool
    error: dict[str, Any] | None


class PositionBatchOut(_Out):
    """Per-fix results of a batch, in request order, and the counts."""

    batch_id: int | None
    stored: int
    applied: int
    refused: int
    results: list[FixResult]
