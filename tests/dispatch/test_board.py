"""The roster board of the live service on a fake clock: timers and check-ins, out-of-service
reasons, team dispatch, live move-up (checked against brute force), the demo fleet's teams."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from citywatch.city import CityPack
from citywatch.demo.calls import CALL_MIX
from citywatch.demo.cli import ensure_fleet
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.moveup import load_coverage_rules, parse_coverage_rules
from citywatch.dispatch.moveup_live import LiveMoveUp, busy_fraction
from citywatch.dispatch.policy import UnitView
from citywatch.dispatch.service import DispatchService
from citywatch.dispatch.timers import (
    TimerLevel,
    TimerWatch,
    load_timer_rules,
    parse_timer_rules,
    timer_state,
)
from citywatch.errors import ConflictError, DataError, PermissionDeniedError, ValidationError
from citywatch.routing import Router
from citywatch.store.dispatch_models import AuditRecord, DispatchEvent
from tests.dispatch.conftest import ADMIN, Clock, make_service
from tests.helpers import sql_statements

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
#: Points inside precinct 25 and precinct 6, on the road network.
HARLEM = (-73.9385, 40.8010)
VILLAGE = (-74.0030, 40.7340)


# ------------------------------------------------------------------ timer rules (pure)
def test_timer_thresholds_per_status_and_unit_type() -> None:
    rules = load_timer_rules()
    car = rules.thresholds("patrol_car", "on_scene")
    foot = rules.thresholds("foot", "on_scene")
    assert (car.warn_s, car.alert_s) == (1200.0, 1800.0)  # on scene > 20 min: check in
    assert (foot.warn_s, foot.alert_s) == (1800.0, 2700.0)  # the foot override
    assert rules.thresholds("patrol_car", "available") is None
    assert rules.thresholds("foot", "dispatched") == rules.thresholds("patrol_car", "dispatched")


@pytest.mark.parametrize(
    ("elapsed", "level"),
    [(0, "ok"), (1199.9, "ok"), (1200, "warning"), (1799, "warning"), (1800, "alert")],
)
def test_timer_levels_at_the_thresholds(elapsed: float, level: str) -> None:
    st = timer_state(
        load_timer_rules(), "patrol_car", "on_scene", T0, None, T0 + timedelta(seconds=elapsed)
    )
    assert st.level == level
    assert st.elapsed_s == pytest.approx(elapsed)


def test_a_check_in_restarts_the_timer_but_not_one_from_an_earlier_status() -> None:
    rules = load_timer_rules()
    now = T0 + timedelta(seconds=1500)
    later = timer_state(rules, "patrol_car", "on_scene", T0, T0 + timedelta(seconds=600), now)
    assert (later.level, later.elapsed_s) == (TimerLevel.OK, 900.0)
    old = timer_state(rules, "patrol_car", "on_scene", T0, T0 - timedelta(seconds=60), now)
    assert (old.level, old.elapsed_s) == (TimerLevel.WARNING, 1500.0)


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ({"status": {"on_scene": {"warn_s": 10, "alert_s": 5}}}, "alert_s must be greater"),
        ({"status": {"on_scen": {"warn_s": 10, "alert_s": 20}}}, "on_scen"),
        ({"status": {"on_scene": {"warn_s": 10, "alert": 20}}}, "alert"),
        ({"unit_type": {"tank": {"on_scene": {"warn_s": 1, "alert_s": 2}}}}, "tank"),
        ({"status": {"on_scene": {"warn_s": -1, "alert_s": 2}}}, "warn_s must be a positive"),
        ({"statuses": {}}, "statuses"),
    ],
)
def test_timer_rules_refuse_bad_files(doc: dict[str, object], named: str) -> None:
    with pytest.raises(DataError, match=named):
        parse_timer_rules(doc, "t.toml")


def test_timer_watch_reports_level_changes_only() -> None:
    rules = load_timer_rules()
    watch = TimerWatch()

    def states(at: float, checkin: datetime | None = None) -> dict[str, object]:
        now = T0 + timedelta(seconds=at)
        return {
            "a": ("13", timer_state(rules, "patrol_car", "on_scene", T0, checkin, now)),
            "b": ("13", timer_state(rules, "patrol_car", "available", T0, None, now)),
        }

    assert watch.tick(states(10), T0) == []  # everything ok: nothing to say
    assert watch.tick(states(1199), T0) == []
    (ev,) = watch.tick(states(1200), T0)
    assert (ev["type"], ev["unit_id"], ev["data"]["from"], ev["data"]["level"]) == (
        "unit.timer",
        "a",
        "ok",
        "warning",
    )
    assert watch.tick(states(1300), T0) == []  # still warning: no repeat
    (alert,) = watch.tick(states(1800), T0)
    assert alert["data"]["level"] == "alert"
    (back,) = watch.tick(states(1810, checkin=T0 + timedelta(seconds=1805)), T0)
    assert (back["data"]["from"], back["data"]["level"], back["data"]["elapsed_s"]) == (
        "alert",
        "ok",
        5.0,
    )


# ------------------------------------------------------------------ the service
@pytest.fixture
def fleet(service: DispatchService) -> DispatchService:
    assert ensure_fleet(service) == 4 * len(service.pack.stations)
    return service


def on_scene(svc: DispatchService, unit_id: str, where: tuple[float, float] = HARLEM) -> str:
    inc, _ = svc.create_incident(ADMIN, category="theft", lon=where[0], lat=where[1])
    svc.assign(ADMIN, inc["id"], unit_id)
    svc.set_unit_status(ADMIN, unit_id, "on_scene")
    return str(inc["id"])


def audit_actions(svc: DispatchService, action: str) -> list[AuditRecord]:
    with svc.sessions() as s:
        return list(
            s.scalars(
                select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.seq)
            )
        )


def test_timer_of_a_unit_on_scene_warns_then_a_check_in_resets_it(
    fleet: DispatchService, clock: Clock
) -> None:
    on_scene(fleet, "25-RMP1")
    watch = TimerWatch()
    assert watch.tick(fleet.timer_states(), clock.now) == []
    clock.advance(1199)
    assert watch.tick(fleet.timer_states(), clock.now) == []
    clock.advance(1)
    (ev,) = watch.tick(fleet.timer_states(), clock.now)
    assert (ev["unit_id"], ev["station"], ev["data"]["level"]) == ("25-RMP1", "25", "warning")
    row = fleet.check_in(Principal("disp", Role.DISPATCHER), "25-RMP1")
    assert row["timer"]["level"] == "ok" and row["checkin_by"] == "disp"
    (reset,) = watch.tick(fleet.timer_states(), clock.now)
    assert reset["data"]["level"] == "ok"
    (record,) = audit_actions(fleet, "unit.checkin")
    assert (record.actor, record.entity_id) == ("disp", "25-RMP1")
    clock.advance(1200)  # 20 minutes after the check-in: due again
    (again,) = watch.tick(fleet.timer_states(), clock.now)
    assert again["data"]["level"] == "warning"


def test_timer_ticks_read_memory_and_follow_another_workers_changes(
    fleet: DispatchService, clock: Clock, tmp_path: Path, manhattan: tuple[CityPack, Router]
) -> None:
    on_scene(fleet, "25-RMP1")
    fleet.set_out_of_service(ADMIN, "6-RMP1", "meal")
    watch = TimerWatch()
    assert watch.tick(fleet.timer_states(), clock.now) == []  # loads the units: one merge
    merges = fleet.live.merges
    # A second worker on the same database; its committed events reach this one as the bus
    # delivers them (fleet.live.apply), never through a read of the database.
    other = make_service(tmp_path, *manhattan, clock)
    bus = other.sink.events  # type: ignore[attr-defined]
    with sql_statements(fleet.sessions.kw["bind"]) as seen:
        clock.advance(1200)
        (warn,) = watch.tick(fleet.timer_states(), clock.now)
        other.check_in(ADMIN, "25-RMP1")
        fleet.live.apply_all(bus)
        (reset,) = watch.tick(fleet.timer_states(), clock.now)
        clock.advance(2400)  # 40 min after the check-in; the meal break is 1 h old
        levels = {
            e["unit_id"]: e["data"]["level"] for e in watch.tick(fleet.timer_states(), clock.now)
        }
        del bus[:]
        other.set_unit_status(ADMIN, "6-RMP1", "available")
        fleet.live.apply_all(bus)
        (back,) = watch.tick(fleet.timer_states(), clock.now)
    assert seen == [] and fleet.live.merges == merges
    assert (warn["unit_id"], warn["data"]["level"], warn["data"]["elapsed_s"]) == (
        "25-RMP1",
        "warning",
        1200.0,
    )
    assert (reset["unit_id"], reset["data"]["level"], reset["data"]["elapsed_s"]) == (
        "25-RMP1",
        "ok",
        0.0,
    )
    assert levels == {"25-RMP1": "alert", "6-RMP1": "warning"}
    assert (back["unit_id"], back["data"]["from"], back["data"]["level"]) == (
        "6-RMP1",
        "warning",
        "ok",
    )
    # The timers of the tick are those the database gives the roster, unit for unit.
    roster = {u["id"]: u["timer"] for u in fleet.roster(ADMIN)["units"]}
    assert {uid: st.as_dict() for uid, (_, st) in fleet.timer_states().items()} == roster


def test_a_unit_device_checks_itself_in_and_no_other(fleet: DispatchService) -> None:
    on_scene(fleet, "25-RMP1")
    device = Principal("tablet", Role.UNIT_DEVICE, unit_id="25-RMP1")
    assert fleet.check_in(device, "25-RMP1")["checkin_by"] == "tablet"
    with pytest.raises(PermissionDeniedError):
        fleet.check_in(device, "25-RMP2")
    with pytest.raises(PermissionDeniedError):
        fleet.check_in(Principal("ana", Role.ANALYST), "25-RMP1")


def test_out_of_service_reason_is_shown_audited_and_lapses(
    fleet: DispatchService, clock: Clock
) -> None:
    row = fleet.set_out_of_service(ADMIN, "6-RMP1", "meal", "at the diner")
    assert (row["status"], row["oos_reason"], row["oos_note"]) == (
        "out_of_service",
        "meal",
        "at the diner",
    )
    (rec,) = audit_actions(fleet, "unit.out_of_service")
    assert rec.after == {"unit_id": "6-RMP1", "reason": "meal", "note": "at the diner"}
    with pytest.raises(ValidationError, match="meal, maintenance, training"):
        fleet.set_out_of_service(ADMIN, "6-RMP2", "nap")
    clock.advance(3600)
    (listed,) = fleet.roster(ADMIN, status="out_of_service")["units"]
    assert (listed["id"], listed["time_in_status_s"], listed["timer"]["level"]) == (
        "6-RMP1",
        3600.0,
        "warning",
    )
    clock.advance(60)
    fleet.set_unit_status(ADMIN, "6-RMP1", "available")
    (back,) = [u for u in fleet.roster(ADMIN, station="6")["units"] if u["id"] == "6-RMP1"]
    assert back["oos_reason"] is None and back["time_in_status_s"] == 0.0


def test_a_unit_on_scene_must_clear_before_going_out_of_service(fleet: DispatchService) -> None:
    on_scene(fleet, "25-RMP1")
    with pytest.raises(ConflictError, match="on_scene"):
        fleet.set_out_of_service(ADMIN, "25-RMP1", "maintenance")


def test_roster_filters_and_scope(fleet: DispatchService) -> None:
    inc = on_scene(fleet, "13-RMP1", VILLAGE)
    roster = fleet.roster(ADMIN)
    assert len(roster["units"]) == 84
    assert roster["counts"] == {"available": 83, "on_scene": 1}
    assert {u["shift"] for u in roster["units"]} == {"tour 2 (07-15)", "tour 3 (15-23)"}
    (unit,) = fleet.roster(ADMIN, status="on_scene")["units"]
    assert unit["incident"]["id"] == inc and unit["incident"]["category"] == "theft"
    special = fleet.roster(ADMIN, unit_type="special_police")["units"]
    assert sorted(u["id"] for u in special) == sorted(f"{s.id}-ESU1" for s in fleet.pack.stations)
    officer = Principal("o13", Role.STATION_OFFICER, "13")
    assert {u["station"] for u in fleet.roster(officer)["units"]} == {"13"}
    assert len(fleet.roster(ADMIN, station="13", unit_type="foot")["units"]) == 1
    with pytest.raises(ValidationError):
        fleet.roster(ADMIN, status="asleep")
    with pytest.raises(ValidationError):
        fleet.roster(ADMIN, unit_type="tank")


# ------------------------------------------------------------------ team dispatch
def test_team_is_assigned_all_or_nothing(fleet: DispatchService) -> None:
    inc, _ = fleet.create_incident(ADMIN, category="shooting", lon=HARLEM[0], lat=HARLEM[1])
    team = list(fleet.recommend(ADMIN, inc["id"]).team)
    on_scene(fleet, team[1])  # one of the team is taken meanwhile
    with pytest.raises(ConflictError, match=team[1]) as refused:
        fleet.assign_many(ADMIN, inc["id"], team)
    assert "on_scene" in refused.value.message
    assert fleet.get_incident(ADMIN, inc["id"])["assignments"] == []
    assert fleet.get_unit(ADMIN, team[0])["status"] == "available"
    with pytest.raises(ValidationError):
        fleet.assign_many(ADMIN, inc["id"], [team[0], team[0]])
    team = list(fleet.recommend(ADMIN, inc["id"]).team)
    out = fleet.assign_many(ADMIN, inc["id"], team)
    assert [a["unit_id"] for a in out] == team
    detail = fleet.get_incident(ADMIN, inc["id"])
    assert detail["status"] == "dispatched"
    assert sorted(a["unit_id"] for a in detail["assignments"] if a["active"]) == sorted(team)
    audited = [r.entity_id for r in audit_actions(fleet, "assignment.created")]
    assert len(audited) == 3  # one for the first on_scene() helper call, one per team member
    with fleet.sessions() as s:
        dispatched = s.scalars(
            select(DispatchEvent).where(
                DispatchEvent.incident_id == inc["id"], DispatchEvent.type == "incident.status"
            )
        ).all()
    assert len(dispatched) == 1  # received -> dispatched once, not once per unit


@pytest.mark.parametrize("category", ["shooting", "robbery", "assault"])
def test_the_demo_fleet_completes_every_team_rule_at_every_station(
    fleet: DispatchService, category: str
) -> None:
    assert category in CALL_MIX
    for station in fleet.pack.stations:
        inc, _ = fleet.create_incident(
            ADMIN, category=category, lon=station.lon, lat=station.lat, priority=1
        )
        rec = fleet.recommend(ADMIN, inc["id"])
        assert rec.status != "short", (station.id, rec.reasons)
        assert len(rec.team) == rec.requirement.units == 2
        if category == "shooting":
            types = {fleet.get_unit(ADMIN, u)["unit_type"] for u in rec.team}
            assert "special_police" in types


# ------------------------------------------------------------------ move-up
def test_broken_rule_gets_the_nearest_spare_donor_and_apply_restores_it(
    fleet: DispatchService, clock: Clock
) -> None:
    on_scene(fleet, "25-RMP1")
    assert fleet.moveup_suggestions(ADMIN)["violations"] == []  # 25-RMP2 still there
    on_scene(fleet, "25-RMP2")
    sug = fleet.moveup_suggestions(ADMIN)
    assert sug["violations"] == [{"station": "25", "unit_type": "patrol_car", "min_available": 1}]
    (rule,) = [m for m in sug["moves"] if m["kind"] == "rule"]
    # Brute force: every available patrol car of another station (all can spare one), by road.
    target = fleet.stations["25"]
    best = min(
        (
            fleet.router.route((s.lon, s.lat), (target.lon, target.lat), "car").seconds,
            f"{s.id}-RMP{k}",
        )
        for s in fleet.pack.stations
        if s.id != "25"
        for k in (1, 2)
    )
    assert rule["unit_id"] == best[1] and rule["eta_s"] == pytest.approx(best[0], abs=1e-6)
    assert rule["gain_share"] is not None and rule["gain_share"] >= 0
    officer = Principal("o1", Role.STATION_OFFICER, "1")
    assert fleet.moveup_suggestions(officer)["moves"] == [
        m for m in sug["moves"] if "1" in (m["to_station"], m["from_station"])
    ]
    with pytest.raises(ConflictError, match="not available"):
        fleet.apply_moveup(ADMIN, "25-RMP1", "26")
    out = fleet.apply_moveup(ADMIN, rule["unit_id"], "25")
    assert (out["to_station"], out["eta_s"]) == ("25", pytest.approx(best[0], abs=1e-6))
    (rec,) = audit_actions(fleet, "unit.moveup")
    assert rec.before == {"cover_station": None} and rec.after["to_station"] == "25"
    assert fleet.moveup_suggestions(ADMIN)["violations"] == []
    # The cover lapses with the unit's next status change.
    clock.advance(5)
    on_scene(fleet, rule["unit_id"])
    assert fleet.roster(ADMIN, status="on_scene")["units"][0]["cover_station"] is None


def views(svc: DispatchService, ids: list[str]) -> list[UnitView]:
    return [
        UnitView(u["id"], u["unit_type"], u["mode"], u["station"], *u["located"].values())
        for u in svc.list_units(ADMIN)
        if u["id"] in ids
    ]


def test_live_dmexclp_move_equals_brute_force(manhattan: tuple[CityPack, Router]) -> None:
    pack, router = manhattan
    stations = {s.id: (s.lon, s.lat) for s in pack.stations}
    rules = parse_coverage_rules({"rule": []}, "none")
    live = LiveMoveUp(router, stations, rules, min_gain_share=0.0)
    rng = np.random.default_rng(4)
    found = 0
    for trial in range(3):
        chosen = rng.choice(sorted(stations), 5, replace=False)
        fleet = [
            UnitView(f"u{i}", "patrol_car", "car", sid, *stations[sid])
            for i, sid in enumerate(chosen)
        ]
        fleet.append(replace(fleet[0], id="busy", status="en_route"))
        q = busy_fraction(fleet)
        assert q == pytest.approx(1 / 6)
        before = live.expected_share(fleet, q)
        best = (0.0, "", "")
        for unit, sid in itertools.product(fleet[:-1], sorted(stations)):
            moved = [
                replace(u, lon=stations[sid][0], lat=stations[sid][1]) if u is unit else u
                for u in fleet
            ]
            secs = router.route((unit.lon, unit.lat), stations[sid], "car").seconds
            if sid == unit.station or secs > live.max_move_s:
                continue
            gain = live.expected_share(moved, q) - before
            if gain > best[0] + 1e-12:
                best = (gain, unit.id, sid)
        (move,) = [m for m in live.suggest(fleet)["moves"] if m.kind == "dmexclp"] or [None]
        if best[0] <= 0:
            assert move is None, trial
            continue
        assert move is not None and (move.unit_id, move.to_station) == best[1:], trial
        assert move.gain_share == pytest.approx(best[0], abs=1e-9)
        found += 1
    assert found >= 2  # five cars for 21 precincts: a move nearly always helps


def test_no_dmexclp_suggestion_below_the_minimum_gain(fleet: DispatchService) -> None:
    # The full demo fleet at its stations: no single move gains 0.5 pp of coverage.
    sug = fleet.moveup_suggestions(ADMIN)
    assert sug["moves"] == [] and sug["violations"] == []
    assert 0.9 < sug["expected_share"] <= 1.0
    assert load_coverage_rules().minimum("25", "patrol_car") == 1


def test_live_moveup_refuses_wrong_demand(manhattan: tuple[CityPack, Router]) -> None:
    _, router = manhattan
    with pytest.raises(ValidationError, match="demand"):
        LiveMoveUp(router, {"1": (0.0, 0.0)}, load_coverage_rules(), demand=np.ones(3))
