"""Unit and incident lifecycles and the dispatch recommendation policies (no HTTP, no SQL)."""

from citywatch.dispatch.lifecycle import (
    INCIDENT_LIFECYCLE,
    UNIT_LIFECYCLE,
    IncidentStatus,
    Lifecycle,
    Transition,
    UnitStatus,
)
from citywatch.dispatch.policy import (
    Candidate,
    IncidentView,
    Policy,
    Recommendation,
    Requirement,
    RequirementRules,
    TravelFn,
    UnitView,
    load_requirements,
    nearest,
    recommend,
    router_travel,
    station_first,
)

__all__ = [
    "INCIDENT_LIFECYCLE",
    "UNIT_LIFECYCLE",
    "Candidate",
    "IncidentStatus",
    "IncidentView",
    "Lifecycle",
    "Policy",
    "Recommendation",
    "Requirement",
    "RequirementRules",
    "Transition",
    "TravelFn",
    "UnitStatus",
    "UnitView",
    "load_requirements",
    "nearest",
    "recommend",
    "router_travel",
    "station_first",
]
