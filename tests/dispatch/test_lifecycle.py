"""Unit and incident status lifecycles."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest

from citywatch.dispatch.lifecycle import INCIDENT_LIFECYCLE, UNIT_LIFECYCLE, UnitStatus
from citywatch.errors import ConflictError, ValidationError


def test_unit_full_cycle_is_allowed_and_time_stamped() -> None:
    path = [
        "available",
        "dispatched",
        "en_route",
        "on_scene",
        "returning",
        "available",
        "out_of_service",
        "available",
    ]
    t0 = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=-5)))
    for i, (old, new) in enumerate(itertools.pairwise(path)):
        tr = UNIT_LIFECYCLE.transition(old, new, t0 + timedelta(minutes=i))
        assert (tr.old, tr.new, tr.entity) == (old, new, "unit")
        assert tr.at == datetime(2026, 1, 1, 17, i, tzinfo=UTC)


def test_illegal_transition_lists_allowed() -> None:
    with pytest.raises(ConflictError) as err:
        UNIT_LIFECYCLE.transition("available", "on_scene")
    assert err.value.message == (
        "unit cannot go from available to on_scene; "
        "allowed from available: dispatched, out_of_service"
    )
    with pytest.raises(ConflictError, match="allowed from cleared: none \\(cleared is final\\)"):
        INCIDENT_LIFECYCLE.transition("cleared", "received")


def test_unknown_status_and_naive_time() -> None:
    with pytest.raises(ValidationError, match="unknown unit status 'parked'") as err:
        UNIT_LIFECYCLE.transition("available", "parked")
    assert err.value.field == "status"
    with pytest.raises(ValidationError, match="timezone-aware"):
        UNIT_LIFECYCLE.transition("available", "dispatched", datetime(2026, 1, 1))


def test_incident_lifecycle_reachability() -> None:
    assert INCIDENT_LIFECYCLE.next_statuses("received") == ("dispatched", "cancelled")
    assert INCIDENT_LIFECYCLE.next_statuses("on_scene") == ("cleared",)
    # Every status of the unit enum is in the lifecycle and can get back to available.
    assert set(UNIT_LIFECYCLE.statuses) == {s.value for s in UnitStatus}
    for status in UNIT_LIFECYCLE.statuses:
        seen, frontier = {status}, [status]
        while frontier:
            for nxt in UNIT_LIFECYCLE.next_statuses(frontier.pop()):
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert "available" in seen


def test_published_rules_and_active_statuses() -> None:
    from citywatch.dispatch.core import ACTIVE_INCIDENT

    assert INCIDENT_LIFECYCLE.active == ("received", "dispatched", "en_route", "on_scene")
    assert INCIDENT_LIFECYCLE.active == ACTIVE_INCIDENT
    doc = UNIT_LIFECYCLE.as_dict()
    assert list(doc) == list(UNIT_LIFECYCLE.statuses)
    assert doc["on_scene"] == ["available", "returning"]  # in lifecycle order
    assert all(set(v) <= set(doc) for v in doc.values())
