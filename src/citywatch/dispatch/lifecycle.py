"""Unit and incident status lifecycles: every transition is validated and time-stamped.

An illegal transition raises :class:`citywatch.errors.ConflictError` (HTTP 409) whose message
lists the transitions allowed from the current status; an unknown status raises
:class:`citywatch.errors.ValidationError` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from citywatch.errors import ConflictError, ValidationError

__all__ = [
    "INCIDENT_LIFECYCLE",
    "UNIT_ASSIGNED",
    "UNIT_LIFECYCLE",
    "IncidentStatus",
    "Lifecycle",
    "Transition",
    "UnitStatus",
]


class UnitStatus(StrEnum):
    """Where a unit stands in its duty cycle."""

    AVAILABLE = "available"
    DISPATCHED = "dispatched"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    RETURNING = "returning"
    OUT_OF_SERVICE = "out_of_service"


class IncidentStatus(StrEnum):
    """Where an incident stands from the call to its end."""

    RECEIVED = "received"
    DISPATCHED = "dispatched"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    CLEARED = "cleared"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Transition:
    """One validated status change and when it happened (UTC)."""

    entity: str
    old: str
    new: str
    at: datetime


@dataclass(frozen=True)
class Lifecycle:
    """A finite set of statuses and the transitions allowed between them."""

    entity: str
    field: str
    allowed: Mapping[str, frozenset[str]]

    @property
    def statuses(self) -> tuple[str, ...]:
        """Every status, in lifecycle order."""
        return tuple(self.allowed)

    @property
    def active(self) -> tuple[str, ...]:
        """The statuses that are not final (some transition leaves them), in lifecycle order."""
        return tuple(s for s in self.statuses if self.allowed[s])

    def as_dict(self) -> dict[str, list[str]]:
        """Each status with the statuses reachable from it in one step (for API clients)."""
        return {s: list(self.next_statuses(s)) for s in self.statuses}

    def parse(self, status: str) -> str:
        """Check that ``status`` is one of the lifecycle's statuses and return it.

        Parameters
        ----------
        status : str
            A status name.

        Returns
        -------
        str
            The same status.

        Raises
        ------
        ValidationError
            If the status is unknown (the message lists the known ones).
        """
        if status not in self.allowed:
            known = ", ".join(self.statuses)
            raise ValidationError(
                f"unknown {self.entity} status {status!r}; known: {known}", field=self.field
            )
        return status

    def next_statuses(self, current: str) -> tuple[str, ...]:
        """The statuses reachable in one step from ``current``, in lifecycle order."""
        options = self.allowed[self.parse(current)]
        return tuple(s for s in self.statuses if s in options)

    def transition(self, current: str, new: str, at: datetime | None = None) -> Transition:
        """Validate the change ``current -> new`` and time-stamp it.

        Parameters
        ----------
        current, new : str
            The present status and the requested one.
        at : datetime, optional
            When the change happened (timezone-aware); now (UTC) by default.

        Returns
        -------
        Transition
            The validated change.

        Raises
        ------
        ValidationError
            If either status is unknown or ``at`` is naive.
        ConflictError
            If the change is not allowed; the message lists the allowed ones.
        """
        self.parse(new)
        options = self.next_statuses(current)
        if new not in options:
            allowed = ", ".join(options) if options else f"none ({current} is final)"
            raise ConflictError(
                f"{self.entity} cannot go from {current} to {new}; "
                f"allowed from {current}: {allowed}",
                field=self.field,
            )
        when = at or datetime.now(UTC)
        if when.tzinfo is None:
            raise ValidationError("transition time must be timezone-aware", field="at")
        return Transition(self.entity, current, new, when.astimezone(UTC))


def _lifecycle(entity: str, edges: Mapping[StrEnum, tuple[StrEnum, ...]]) -> Lifecycle:
    return Lifecycle(
        entity, "status", {str(k): frozenset(str(v) for v in vs) for k, vs in edges.items()}
    )


_U = UnitStatus
#: available -> dispatched -> en_route -> on_scene -> returning -> available; a dispatch can be
#: called off before arrival; a returning unit can be re-tasked; out of service and back.
UNIT_LIFECYCLE = _lifecycle(
    "unit",
    {
        _U.AVAILABLE: (_U.DISPATCHED, _U.OUT_OF_SERVICE),
        _U.DISPATCHED: (_U.EN_ROUTE, _U.ON_SCENE, _U.AVAILABLE, _U.OUT_OF_SERVICE),
        _U.EN_ROUTE: (_U.ON_SCENE, _U.AVAILABLE, _U.OUT_OF_SERVICE),
        _U.ON_SCENE: (_U.RETURNING, _U.AVAILABLE),
        _U.RETURNING: (_U.AVAILABLE, _U.OUT_OF_SERVICE),
        _U.OUT_OF_SERVICE: (_U.AVAILABLE,),
    },
)

#: Unit statuses in which a unit holds an incident (its assignment is active).
UNIT_ASSIGNED: frozenset[str] = frozenset({_U.DISPATCHED, _U.EN_ROUTE, _U.ON_SCENE})

_I = IncidentStatus
#: received -> dispatched -> en_route -> on_scene -> cleared, or cancelled before arrival;
#: an incident whose units were all called off returns to received.
INCIDENT_LIFECYCLE = _lifecycle(
    "incident",
    {
        _I.RECEIVED: (_I.DISPATCHED, _I.CANCELLED),
        _I.DISPATCHED: (_I.EN_ROUTE, _I.ON_SCENE, _I.RECEIVED, _I.CANCELLED),
        _I.EN_ROUTE: (_I.ON_SCENE, _I.RECEIVED, _I.CANCELLED),
        _I.ON_SCENE: (_I.CLEARED,),
        _I.CLEARED: (),
        _I.CANCELLED: (),
    },
)
