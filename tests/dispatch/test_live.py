"""The in-memory unit state of a worker: ordering of changes, merges, the cached fleet."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.live import LiveUnit, LiveUnits
from citywatch.dispatch.policy import UnitView
from citywatch.dispatch.service import DispatchService

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
STALE_S = 300.0


def _unit(uid: str, **kw: Any) -> LiveUnit:
    base = LiveUnit(
        uid, "patrol_car", "car", "13", "available", frozenset(), 0.0, 0.0, T0, None, None
    )
    return replace(base, **kw)


def _located(u: LiveUnit, now: datetime) -> UnitView:
    fresh = u.position_at is not None and (now - u.position_at).total_seconds() <= STALE_S
    lon, lat = (u.lon, u.lat) if fresh else (-1.0, -1.0)
    return UnitView(u.id, u.unit_type, u.mode, u.station, float(lon or 0), float(lat or 0),
                    status=u.status, position_stale=not fresh)  # fmt: skip


class Store:
    """What the database holds; ``during`` runs while a merge reads it."""

    def __init__(self, units: list[LiveUnit]) -> None:
        self.units = units
        self.reads = 0
        self.during: Any = None

    def load(self) -> list[LiveUnit]:
        self.reads += 1
        rows = [replace(u) for u in self.units]
        if self.during is not None:
            self.during()
        return rows


def _moved(uid: str, lon: float, at: datetime) -> dict[str, Any]:
    return {"type": "unit.moved", "id": None, "unit_id": uid,
            "data": {"lon": lon, "lat": 1.0, "at": at.isoformat()}}  # fmt: skip


def _status(uid: str, to: str, event_id: int, at: datetime = T0) -> dict[str, Any]:
    return {"type": "unit.status", "id": event_id, "unit_id": uid,
            "data": {"to": to, "at": at.isoformat()}}  # fmt: skip


def test_positions_apply_newest_first_and_older_fixes_are_ignored() -> None:
    store = Store([_unit("a")])
    live = LiveUnits(store.load, _located, STALE_S)
    live.refresh()
    live.apply(_moved("a", 5.0, T0 + timedelta(seconds=10)))
    live.apply(_moved("a", 7.0, T0 + timedelta(seconds=5)))  # late: history only
    live.apply(_moved("a", 5.0, T0 + timedelta(seconds=10)))  # delivered twice
    unit = live.get("a")
    assert unit is not None and (unit.lon, unit.position_at) == (5.0, T0 + timedelta(seconds=10))
    assert live.applied == 1


def test_status_changes_apply_in_event_order_whatever_the_delivery_order() -> None:
    store = Store([_unit("a")])
    live = LiveUnits(store.load, _located, STALE_S)
    live.refresh()
    live.apply(_status("a", "out_of_service", 10))
    live.apply(_status("a", "available", 9))  # committed before 10, delivered after
    live.apply(_status("a", "out_of_service", 10))
    assert live.get("a").status == "out_of_service"  # type: ignore[union-attr]
    assigned = {"assigned_at": T0.isoformat()}
    live.apply({"type": "assignment.created", "id": 11, "unit_id": "a", "data": assigned})
    assert live.get("a").status == "dispatched"  # type: ignore[union-attr]
    assert live.fleet(T0).free == []


def test_status_times_and_check_ins_follow_the_events() -> None:
    store = Store([_unit("a", status_at=T0)])
    live = LiveUnits(store.load, _located, STALE_S)
    live.refresh()
    later = T0 + timedelta(seconds=60)
    live.apply(_status("a", "on_scene", 5, at=later))
    live.apply(_status("a", "en_route", 4, at=T0 + timedelta(seconds=30)))  # older change
    unit = live.get("a")
    assert unit is not None and (unit.status, unit.status_at) == ("on_scene", later)

    def checkin(seconds: float) -> dict[str, Any]:
        at = (later + timedelta(seconds=seconds)).isoformat()
        return {"type": "unit.checkin", "id": None, "unit_id": "a", "data": {"at": at}}

    live.apply(checkin(10))
    live.apply(checkin(10))  # this worker's own, echoed by the bus
    live.apply(checkin(5))  # delivered late
    assert live.units()[0].checkin_at == later + timedelta(seconds=10)
    assert (live.applied, store.reads) == (2, 1)
    # A status change whose payload lost its time: the next read merges (the database has it).
    store.units = [_unit("a", status="available", status_at=later + timedelta(seconds=99))]
    live.apply({"type": "unit.status", "id": 6, "unit_id": "a", "data": {"to": "available"}})
    (merged,) = live.units()
    assert store.reads == 2 and merged.status_at == later + timedelta(seconds=99)


def test_a_merge_never_undoes_a_change_applied_while_it_read() -> None:
    store = Store([_unit("a"), _unit("b")])
    live = LiveUnits(store.load, _located, STALE_S)
    live.refresh()
    # The database row of b changed outside the service; a's newer state arrives by event
    # while the merge reads the (older) rows.
    store.units = [_unit("a"), _unit("b", status="out_of_service")]
    store.during = lambda: live.apply(_moved("a", 9.0, T0 + timedelta(seconds=30)))
    live.refresh()
    assert live.get("a").lon == 9.0  # type: ignore[union-attr]
    assert live.get("b").status == "out_of_service"  # type: ignore[union-attr]


def test_an_older_read_ending_last_does_not_drop_a_newer_merges_units() -> None:
    store = Store([_unit("a")])
    live = LiveUnits(store.load, _located, STALE_S)
    live.refresh()
    go = threading.Event()
    store.during = lambda: go.wait(5)  # the first merge read [a], and is slow to finish
    first = threading.Thread(target=live.refresh)
    first.start()
    time.sleep(0.2)  # let it read
    store.during = None
    store.units = [_unit("a"), _unit("x")]  # x created meanwhile (its event asked for a merge)
    second = threading.Thread(target=live.refresh)
    second.start()
    second.join(0.5)  # it waits for the first (one merge at a time) or is done by now
    go.set()
    first.join()
    second.join()
    assert sorted(u.id for u in live.units()) == ["a", "x"]


def test_new_and_unknown_units_make_the_next_read_merge() -> None:
    store = Store([_unit("a")])
    live = LiveUnits(store.load, _located, STALE_S)
    live.fleet(T0)
    assert store.reads == 1
    store.units.append(_unit("c"))
    live.apply({"type": "unit.created", "id": 3, "unit_id": "c", "data": {"id": "c"}})
    assert [u.id for u in live.fleet(T0).free] == ["a", "c"] and store.reads == 2
    live.apply({"type": "unit.created", "id": 3, "unit_id": "c", "data": {"id": "c"}})  # echo
    live.fleet(T0)
    assert store.reads == 2
    live.apply(_moved("zz", 1.0, T0))  # not known here yet
    live.fleet(T0)
    assert store.reads == 3
    live.apply({"type": "incident.created", "id": 4, "data": {}})  # not a unit change
    live.fleet(T0)
    assert store.reads == 3


def test_the_fleet_is_rebuilt_only_on_a_change_or_when_a_position_turns_stale() -> None:
    store = Store([_unit("a"), _unit("b", position_at=T0 + timedelta(seconds=60))])
    live = LiveUnits(store.load, _located, STALE_S)
    first = live.fleet(T0)
    assert live.fleet(T0 + timedelta(seconds=STALE_S)) is first
    later = live.fleet(T0 + timedelta(seconds=STALE_S + 1))  # a's position is stale now
    assert later is not first
    assert [u.position_stale for u in later.free] == [True, False]
    live.apply(_moved("b", 2.0, T0 + timedelta(seconds=90)))
    moved = live.fleet(T0 + timedelta(seconds=STALE_S + 1))
    assert moved is not later and moved.free[1].lon == 2.0


def test_the_service_answers_recommendations_from_memory(service: DispatchService) -> None:
    admin = Principal("admin", Role.ADMIN)
    service.create_unit(admin, id="m1", unit_type="patrol_car", station="13")
    inc, _ = service.create_incident(admin, category="theft", lon=-73.99, lat=40.736)
    assert service.recommend(admin, inc["id"]).candidates[0].eta_s > 0  # at its station
    reads = service.live.merges  # the first recommendation loaded the units once
    service.update_position(admin, "m1", -73.99, 40.736, service.clock())
    rec = service.recommend(admin, inc["id"])
    assert rec.candidates[0].unit_id == "m1" and rec.candidates[0].eta_s == 0.0
    service.set_unit_status(admin, "m1", "out_of_service")
    assert service.recommend(admin, inc["id"]).status == "none_available"
    assert service.live.merges == reads  # every change came from the writes themselves
