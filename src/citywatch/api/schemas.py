"""Request and response bodies of the REST API (pydantic models; they make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from citywatch.dispatch.lifecycle import IncidentStatus, UnitStatus
from citywatch.domain import LAT_RANGE, LON_RANGE, PRIORITY_RANGE

__all__ = [
    "AssignmentIn",
    "AssignmentOut",
    "IncidentIn",
    "IncidentOut",
    "IncidentStatusIn",
    "Location",
    "PositionIn",
    "PositionOut",
    "RecommendationOut",
    "RefreshIn",
    "StatusChangeOut",
    "TokenOut",
    "UnitIn",
    "UnitOut",
    "UnitStatusIn",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Location(_In):
    """A WGS-84 point."""

    lon: float = Field(ge=LON_RANGE[0], le=LON_RANGE[1], description="longitude, degrees east")
    lat: float = Field(ge=LAT_RANGE[0], le=LAT_RANGE[1], description="latitude, degrees north")


class UnitIn(_In):
    """A unit to register."""

    id: str = Field(min_length=1, max_length=64, description="call sign, e.g. 14-RMP-2")
    unit_type: str = Field(
        description="patrol_car, motorcycle, foot, bicycle, mounted, special_police"
    )
    station: str = Field(description="home station id of the city pack")
    shift: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    post: Location | None = Field(
        None, description="where the unit is assumed when its position is stale"
    )


class PositionIn(_In):
    """An AVL fix."""

    lon: float = Field(ge=LON_RANGE[0], le=LON_RANGE[1])
    lat: float = Field(ge=LAT_RANGE[0], le=LAT_RANGE[1])
    at: AwareDatetime = Field(description="time of the fix, ISO 8601 with offset")


class UnitStatusIn(_In):
    """A unit status change."""

    status: str = Field(
        description=f"one of {', '.join(UnitStatus)} (dispatched only by an assignment)"
    )


class IncidentIn(_In):
    """A call to create an incident."""

    category: str = Field(description="category code of the incident taxonomy, e.g. robbery")
    location: Location
    priority: int | None = Field(
        None,
        ge=PRIORITY_RANGE[0],
        le=PRIORITY_RANGE[1],
        description="{} (highest) .. {}; category default".format(*PRIORITY_RANGE),
    )
    caller_notes: str | None = Field(None, max_length=4000)
    received_at: AwareDatetime | None = Field(
        None, description="when the call came in; now by default"
    )


class IncidentStatusIn(_In):
    """An incident status change."""

    status: str = Field(description=f"one of {', '.join(IncidentStatus)}")


class AssignmentIn(_In):
    """Send a unit."""

    unit_id: str


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class TokenOut(_Out):
    """OAuth2 token response."""

    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class RefreshIn(_In):
    """A refresh token to spend (``/auth/refresh``) or revoke (``/auth/logout``)."""

    refresh_token: str = Field(min_length=1, max_length=200)


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
