"""The discrete-event engine: incidents, dispatch by the live policy, travel, service, return.

Events, in time order (ties in the order they were scheduled):

* an incident is **received**; after its call-handling time it is **ready** for dispatch;
* at **ready** the dispatch policy (:func:`citywatch.dispatch.policy.recommend`, unchanged)
  ranks the available units; its suggested team is sent.  When no unit (or not enough units)
  can be sent, the incident waits in a queue ordered by priority, then by time (or, with
  ``queue = false``, is lost);
* each unit drives to the scene (the policy's travel time, times the congestion factor of the
  hour), stays for the incident's on-scene time, then drives back to its post.  A returning unit
  is available again at once, located at the scene it left until it is back (what a dispatcher
  sees of a unit without AVL); a patrolling unit is at the waypoint of its beat it has reached;
* whenever a unit becomes available the queue is served, highest priority first;
* units join and leave with their shifts; a busy unit finishes its job before going off duty.

Everything random (call handling, on-scene times, synthetic demand, thinning) is drawn up front
from streams of a :class:`numpy.random.SeedSequence` keyed by (seed, replication), so a
replication gives the same numbers whichever process runs it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from citywatch.dispatch.policy import (
    IncidentView,
    Policy,
    RequirementRules,
    UnitView,
    recommend,
)
from citywatch.sim.demand import IncidentBatch
from citywatch.sim.scenario import Scenario
from citywatch.sim.travel import MatrixTravel

__all__ = ["Fleet", "RunResult", "Unit", "build_fleet", "simulate"]

# Event kinds; the number also orders simultaneous events (units free up before new calls).
_SHIFT_OFF, _BACK, _LEAVE, _ON_SCENE, _SHIFT_ON, _READY = range(6)
_OFF, _AVAILABLE, _BUSY = 0, 1, 2


@dataclass
class Unit:
    """One simulated unit: identity, where it waits, and its duty intervals (seconds)."""

    id: str
    unit_type: str
    mode: str
    station: str
    homes: np.ndarray  # location ids: the post, or the waypoints of the patrol beat
    patrol_dwell_s: float | None
    phase: int
    duty: list[tuple[float, float]]


@dataclass(frozen=True)
class Fleet:
    """The units of a scenario and the travel model their locations are registered in."""

    units: tuple[Unit, ...]
    travel: MatrixTravel


def build_fleet(
    scenario: Scenario, pack: Any, rules: RequirementRules, travel: MatrixTravel
) -> Fleet:
    """Create the units of every ``[[fleet]]`` group, with their posts and duty intervals."""
    tz = ZoneInfo(pack.timezone)
    stations = {s.id: s for s in pack.stations}
    horizon = scenario.end + pd.Timedelta(days=2)
    units = []
    numbers: dict[tuple[str, str], int] = {}  # units are numbered per station and type
    for g in scenario.fleet:
        mode = rules.mode_of(g.unit_type)
        if g.shift is None:
            duty = [(0.0, float("inf"))]
        else:
            duty = [
                ((on - scenario.start).total_seconds(), (off - scenario.start).total_seconds())
                for on, off in scenario.shifts[g.shift].intervals(scenario.start, horizon, tz)
            ]
        for sid in g.stations:
            st = stations[sid]
            pts = [(st.lon, st.lat)] if g.idle == "station" else list(g.points)
            locs = travel.register(np.asarray(pts))
            for k in range(g.count):
                n = numbers[sid, g.unit_type] = numbers.get((sid, g.unit_type), 0) + 1
                units.append(
                    Unit(
                        id=f"{sid}-{g.unit_type}-{n}",
                        unit_type=g.unit_type,
                        mode=mode,
                        station=sid,
                        homes=locs if g.idle == "patrol" else locs[[k % len(locs)]],
                        patrol_dwell_s=g.dwell_s if g.idle == "patrol" else None,
                        phase=k,
                        duty=list(duty),
                    )
                )
    return Fleet(tuple(units), travel)


@dataclass(frozen=True)
class RunResult:
    """One replication: per-incident, per-assignment and per-unit records."""

    incidents: pd.DataFrame
    assignments: pd.DataFrame
    units: pd.DataFrame


def simulate(
    scenario: Scenario,
    fleet: Fleet,
    demand: IncidentBatch,
    policy: Policy,
    rules: RequirementRules,
    handling_s: np.ndarray,
    on_scene_s: np.ndarray,
    *,
    place_kinds: list[frozenset[str]] | None = None,
    hourly_factor: np.ndarray | None = None,
) -> RunResult:
    """Run one replication.

    Parameters
    ----------
    scenario : Scenario
        Policy options, queue rule, congestion factors and the window.
    fleet : Fleet
        Units and the travel model.
    demand : IncidentBatch
        The incidents, in time order.
    policy : Policy
        Built by :func:`citywatch.dispatch.policy.nearest` or ``station_first``.
    rules : RequirementRules
        Dispatch requirement rules.
    handling_s, on_scene_s : ndarray
        Call-handling and on-scene time of each incident.
    place_kinds : list of frozenset, optional
        Kinds of place each incident lies in (markets, ...), for the requirement rules.
    hourly_factor : ndarray, optional
        Travel-time factor (congestion) of each hour since the start; 1 when not given.

    Returns
    -------
    RunResult
    """
    travel = fleet.travel
    units = fleet.units
    n_inc = len(demand)
    inc_loc = travel.register(np.c_[demand.lon, demand.lat]) if n_inc else np.zeros(0, np.int64)
    lonlat = travel.lonlat

    def factor(t: float) -> float:
        if hourly_factor is None:
            return 1.0
        return float(hourly_factor[min(int(t // 3600), len(hourly_factor) - 1)])

    # --- state
    status = [_OFF] * len(units)
    position = [int(u.homes[0]) for u in units]
    version = [0] * len(units)
    off_pending = [False] * len(units)
    views: dict[int, UnitView] = {}
    incident_views: dict[int, IncidentView] = {}
    patrolling: set[int] = set()
    index = {u.id: k for k, u in enumerate(units)}

    needed = np.zeros(n_inc, dtype=np.int64)
    sent = np.zeros(n_inc, dtype=np.int64)
    t_ready = np.full(n_inc, np.nan)
    t_dispatch = np.full(n_inc, np.nan)
    t_arrive = np.full(n_inc, np.nan)
    t_clear = np.full(n_inc, np.nan)
    first_unit: list[str | None] = [None] * n_inc
    rec_status: list[str | None] = [None] * n_inc
    lost_reason: list[str | None] = [None] * n_inc
    waited = np.zeros(n_inc, dtype=bool)
    done = np.zeros(n_inc, dtype=bool)  # first unit has left: no more units are sent
    assignments: list[tuple[int, int, float, float, float, float, float]] = []
    open_assign: dict[int, int] = {}  # unit -> row in assignments

    events: list[tuple[float, int, int, int, int, int]] = []
    seq = 0

    def push(t: float, kind: int, a: int, b: int = -1, ver: int = 0) -> None:
        nonlocal seq
        heapq.heappush(events, (t, kind, seq, a, b, ver))
        seq += 1

    for k, u in enumerate(units):
        for on, off in u.duty:
            if off > 0:
                push(max(on, 0.0), _SHIFT_ON, k)
                if np.isfinite(off):
                    push(off, _SHIFT_OFF, k)
    # Arrivals are read from the sorted demand as the clock reaches them rather than all pushed
    # on the heap: same order (a call comes after other events at its instant), smaller heap.
    arrival_t = demand.t.tolist()
    arrival_t.append(float("inf"))
    nxt = 0

    queue: list[tuple[int, float, int]] = []

    def set_view(k: int) -> None:
        u = units[k]
        loc = position[k]
        x, y = lonlat[loc]
        # The location id is the position key: the policy's travel calls index the matrices
        # directly instead of mapping coordinates back to locations.
        views[k] = UnitView(
            u.id, u.unit_type, u.mode, u.station, float(x), float(y), position_key=loc
        )

    def make_available(k: int, t: float) -> None:
        status[k] = _AVAILABLE
        if units[k].patrol_dwell_s is not None and position[k] in units[k].homes:
            patrolling.add(k)
        set_view(k)

    def refresh_patrols(t: float) -> None:
        for k in patrolling:
            u = units[k]
            assert u.patrol_dwell_s is not None
            loc = int(u.homes[(int(t // u.patrol_dwell_s) + u.phase) % len(u.homes)])
            if loc != position[k]:
                position[k] = loc
                set_view(k)

    homes_by_mode: dict[str, list[int]] = {}
    for u in units:
        homes_by_mode.setdefault(u.mode, []).extend(int(h) for h in u.homes)

    def reachable(i: int) -> bool:
        """Whether any unit could reach incident ``i`` from its post, in any duty period."""
        return any(
            np.isfinite(travel.between(homes, int(inc_loc[i]), mode)[0]).any()
            for mode, homes in homes_by_mode.items()
        )

    def dispatch(i: int, t: float) -> bool:
        """Ask the policy for a team and send up to the units still needed; True if any sent."""
        if not views:
            if rec_status[i] is None:
                rec_status[i] = "none_available"
            return False
        refresh_patrols(t)
        travel.factor = factor(t)
        incident = incident_views.get(i)
        if incident is None:  # built once while a queued call may be dispatched again
            loc = int(inc_loc[i])
            incident = incident_views[i] = IncidentView(
                str(demand.id[i]),
                str(demand.category[i]),
                int(demand.priority[i]),
                float(lonlat[loc, 0]),
                float(lonlat[loc, 1]),
                None if demand.station[i] is None else str(demand.station[i]),
                place_kinds[i] if place_kinds is not None else frozenset(),
                position_key=loc,
            )
        rec = recommend(incident, list(views.values()), travel, policy, k=1, rules=rules)
        if rec_status[i] is None or needed[i] == 0:
            rec_status[i] = rec.status
            needed[i] = rec.requirement.units
        team = rec.team[: needed[i] - sent[i]]
        if not team:
            cut_off = rec.status == "none_within_limit" and policy.limit_s is None
            if cut_off and sent[i] == 0 and not reachable(i):
                # Waiting would never help (a piece of network cut off for every unit):
                # report it instead of queueing it forever.
                lost_reason[i] = "no unit of the fleet can reach it by road"
                done[i] = True
            return False
        etas = {c.unit_id: c for c in rec.candidates}
        for uid in team:
            k = index[uid]
            c = etas[uid]
            status[k] = _BUSY
            version[k] += 1
            views.pop(k, None)
            patrolling.discard(k)
            if sent[i] == 0:
                t_dispatch[i] = t
                first_unit[i] = uid
            sent[i] += 1
            open_assign[k] = len(assignments)
            assignments.append((i, k, t, c.eta_s, c.metres, np.nan, np.nan))
            push(t + c.eta_s, _ON_SCENE, k, i, version[k])
        return True

    def serve_queue(t: float) -> None:
        if not queue or not views:
            return
        keep = []
        while queue and views:
            item = heapq.heappop(queue)
            i = item[2]
            if done[i]:
                incident_views.pop(i, None)
                continue
            dispatch(i, t)
            if (sent[i] < needed[i] or sent[i] == 0) and not done[i]:
                keep.append(item)
            else:
                incident_views.pop(i, None)
        for item in keep:
            heapq.heappush(queue, item)

    while events or nxt < n_inc:
        if not events or arrival_t[nxt] < events[0][0]:
            push(arrival_t[nxt] + float(handling_s[nxt]), _READY, nxt)
            nxt += 1
            continue
        t, kind, _, a, b, ver = heapq.heappop(events)
        if kind == _READY:
            t_ready[a] = t
            dispatch(a, t)
            if sent[a] < max(needed[a], 1) and not done[a] and scenario.queue:
                waited[a] = True
                heapq.heappush(queue, (int(demand.priority[a]), t, a))
            else:
                incident_views.pop(a, None)  # kept only while the call waits in the queue
                if sent[a] < max(needed[a], 1) and not done[a] and sent[a] == 0:
                    lost_reason[a] = "no unit available and no queue"
        elif kind == _ON_SCENE:
            if ver != version[a]:
                continue
            i = b
            row = open_assign[a]
            assignments[row] = (*assignments[row][:5], t, t + float(on_scene_s[i]))
            position[a] = int(inc_loc[i])
            if np.isnan(t_arrive[i]):
                t_arrive[i] = t
            push(t + float(on_scene_s[i]), _LEAVE, a, i, version[a])
        elif kind == _LEAVE:
            if ver != version[a]:
                continue
            i = b
            done[i] = True
            t_clear[i] = t if np.isnan(t_clear[i]) else max(t_clear[i], t)
            del open_assign[a]
            if off_pending[a]:
                status[a] = _OFF
                off_pending[a] = False
                position[a] = int(units[a].homes[0])
                continue
            version[a] += 1
            make_available(a, t)
            home = int(units[a].homes[0])
            travel.factor = factor(t)
            back = float(travel.between([position[a]], home, units[a].mode)[0][0])
            push(t + (back if np.isfinite(back) else 0.0), _BACK, a, -1, version[a])
            serve_queue(t)
        elif kind == _BACK:
            if ver != version[a] or status[a] != _AVAILABLE:
                continue
            position[a] = int(units[a].homes[0])
            make_available(a, t)
        elif kind == _SHIFT_ON:
            if status[a] == _BUSY:  # back-to-back shifts: still on the previous job
                off_pending[a] = False
                continue
            if status[a] == _OFF:
                position[a] = int(units[a].homes[0])
                make_available(a, t)
                serve_queue(t)
        elif kind == _SHIFT_OFF:
            if status[a] == _BUSY:
                off_pending[a] = True
            else:
                status[a] = _OFF
                version[a] += 1
                views.pop(a, None)
                patrolling.discard(a)

    for _, _, i in queue:
        if sent[i] == 0 and not done[i]:
            lost_reason[i] = "no unit became available before the simulation ended"
    state = {
        "t_ready": t_ready,
        "t_dispatch": t_dispatch,
        "t_arrive": t_arrive,
        "t_clear": t_clear,
        "needed": needed,
        "sent": sent,
        "first_unit": first_unit,
        "waited": waited,
        "rec_status": rec_status,
        "lost_reason": lost_reason,
        "assignments": assignments,
    }
    return _records(scenario, fleet, demand, state)


def _records(
    scenario: Scenario, fleet: Fleet, demand: IncidentBatch, st: dict[str, Any]
) -> RunResult:
    start = pd.Timestamp(scenario.start).tz_convert("UTC")

    def stamp(x: np.ndarray) -> pd.Series:
        # Microseconds, like the incident store: replayed times come back exactly.
        return pd.Series(start + pd.to_timedelta(x, unit="s")).dt.round("us")

    units = fleet.units
    index = {u.id: k for k, u in enumerate(units)}
    answered = ~np.isnan(st["t_arrive"])
    inc = pd.DataFrame(
        {
            "id": demand.id,
            "category": demand.category,
            "priority": demand.priority,
            "lon": demand.lon,
            "lat": demand.lat,
            "station": demand.station,
            "zone": demand.zone,
            "received_at": stamp(demand.t),
            "ready_at": stamp(st["t_ready"]),
            "dispatched_at": stamp(st["t_dispatch"]),
            "arrived_at": stamp(st["t_arrive"]),
            "cleared_at": stamp(st["t_clear"]),
            "handling_s": st["t_ready"] - demand.t,
            "queue_wait_s": st["t_dispatch"] - st["t_ready"],
            "travel_s": st["t_arrive"] - st["t_dispatch"],
            "response_s": st["t_arrive"] - demand.t,
            "units_needed": st["needed"],
            "units_sent": st["sent"],
            "units": [""] * len(demand),
            "first_unit": st["first_unit"],
            "first_unit_station": [
                None if u is None else units[index[u]].station for u in st["first_unit"]
            ],
            "waited": st["waited"],
            "recommendation": st["rec_status"],
            "status": np.where(answered, "answered", "unanswered"),
            "unanswered_reason": st["lost_reason"],
        }
    )
    asg = pd.DataFrame(
        st["assignments"],
        columns=["incident", "unit", "t_dispatch", "eta_s", "metres", "t_arrive", "t_leave"],
    )
    if len(asg):
        ids = np.asarray([u.id for u in units], dtype=object)
        team = pd.Series(ids[asg["unit"].to_numpy(int)]).groupby(asg["incident"]).agg(";".join)
        inc.loc[team.index, "units"] = team.to_numpy()
    inc["other_station"] = (
        inc["first_unit_station"].notna()
        & (inc["first_unit_station"] != inc["station"])
        & inc["station"].notna()
    )
    assignments = pd.DataFrame(
        {
            "incident_id": demand.id[asg["incident"].to_numpy(int)] if len(asg) else [],
            "unit_id": [units[k].id for k in asg["unit"]],
            "dispatched_at": stamp(asg["t_dispatch"].to_numpy(float)),
            "arrived_at": stamp(asg["t_arrive"].to_numpy(float)),
            "left_at": stamp(asg["t_leave"].to_numpy(float)),
            "travel_s": asg["eta_s"].to_numpy(float),
            "metres": asg["metres"].to_numpy(float),
        }
    )
    horizon = scenario.duration_s
    busy = np.zeros(len(units))
    spans = np.clip(asg["t_leave"].to_numpy(float), None, horizon) - np.clip(
        asg["t_dispatch"].to_numpy(float), None, horizon
    )
    np.add.at(busy, asg["unit"].to_numpy(int), np.maximum(spans, 0.0))
    duty = np.array(
        [sum(max(0.0, min(off, horizon) - max(on, 0.0)) for on, off in u.duty) for u in units]
    )
    unit_frame = pd.DataFrame(
        {
            "unit_id": [u.id for u in units],
            "unit_type": [u.unit_type for u in units],
            "mode": [u.mode for u in units],
            "station": [u.station for u in units],
            "on_duty_s": duty,
            "busy_s": busy,
            "jobs": np.bincount(asg["unit"].to_numpy(int), minlength=len(units)),
        }
    )
    return RunResult(inc, assignments, unit_frame)
