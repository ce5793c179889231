"""The discrete-event engine: incidents, dispatch by the live policy, travel, service, return.

Events, in time order (ties in the order they were scheduled):

* an incident is **received**; after its call-handling time it is **ready** for dispatch;
* at **ready** the dispatch policy ranks the available units with the live service's scoring
  kernel (:func:`citywatch.dispatch.kernel.rank_units`, what
  :func:`citywatch.dispatch.policy.recommend` calls); its suggested team is sent.  When no
  unit (or not enough units) can be sent, the incident waits in a queue ordered by priority,
  then by time (or, with ``queue = false``, is lost);
* each unit drives to the scene (the policy's travel time, times the congestion factor of the
  hour), stays for the incident's on-scene time, then drives back to its post.  A returning unit
  is available again at once, located at the scene it left until it is back (what a dispatcher
  sees of a unit without AVL); a patrolling unit is at the waypoint of its beat it has reached;
* whenever a unit becomes available the queue is served, highest priority first;
* units join and leave with their shifts; a busy unit finishes its job before going off duty.

Everything random (call handling, on-scene times, synthetic demand, thinning) is drawn up front
from streams of a :class:`numpy.random.SeedSequence` keyed by (seed, replication), so a
replication gives the same numbers whichever process runs it.

The event loop itself is compiled (:mod:`citywatch.sim.loop`); this module builds its inputs
and turns its state into records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from citywatch.dispatch import kernel
from citywatch.dispatch.policy import IncidentView, Policy, Requirement, RequirementRules
from citywatch.sim import loop
from citywatch.sim.demand import IncidentBatch
from citywatch.sim.scenario import Scenario
from citywatch.sim.travel import TARGET_CACHE_ENTRIES, SearchTravel

__all__ = ["Fleet", "Relocator", "RunResult", "Unit", "build_fleet", "simulate"]


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
    travel: SearchTravel


def build_fleet(
    scenario: Scenario, pack: Any, rules: RequirementRules, travel: SearchTravel
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


class Relocator(Protocol):
    """Where a freed unit goes next: the simulator's move-up policy.

    ``sites`` are the candidate posts (location ids).  Called by the compiled loop when unit
    ``k`` clears a scene at time ``t``, with every unit's status code
    (:data:`citywatch.sim.loop.UNIT_AVAILABLE`, ...) and post (location id), and the unit's
    travel seconds to each site; returns the chosen site's index, or -1 for its own post.
    """

    sites: np.ndarray

    def __call__(
        self, k: int, t: float, status: np.ndarray, post: np.ndarray, to_sites: np.ndarray
    ) -> int: ...


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
    relocate: Relocator | None = None,
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
    relocate : Relocator, optional
        The move-up policy (:class:`citywatch.sim.moveup.MoveUp`): asked where each freed unit
        goes.  ``None``: every unit returns to its post, and the loop never leaves compiled
        code.

    Returns
    -------
    RunResult
    """
    travel = fleet.travel
    inc_loc = (
        travel.register(np.c_[demand.lon, demand.lat]) if len(demand) else np.zeros(0, np.int64)
    )
    sites = None if relocate is None else relocate.sites
    world, max_team, n_trees = _world(
        scenario, fleet, demand, policy, rules, inc_loc, handling_s, on_scene_s, place_kinds, sites
    )
    factors = np.ones(1) if hourly_factor is None else np.asarray(hourly_factor, np.float64)
    world = world._replace(hourly_factor=factors)
    state = loop.new_state(
        len(fleet.units),
        len(demand),
        max_team,
        n_trees,
        travel.graphs,
        len(travel.lonlat),
        TARGET_CACHE_ENTRIES,
    )
    if relocate is None:
        loop.run(world, state)
    else:  # the loop's object-mode block calls the registered policy, for this run only
        loop.RELOCATE[0] = relocate
        try:
            loop.run(world, state)
        finally:
            loop.RELOCATE[0] = None
    return _records(scenario, fleet, demand, state)


def _requirements(
    rules: RequirementRules,
    demand: IncidentBatch,
    place_kinds: list[frozenset[str]] | None,
    type_index: dict[str, int],
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Each incident's row of the requirement tables, and the tables (units, preferred and
    required types, slack): the rules evaluated once per distinct (category, priority, place)."""
    rows: dict[tuple[str, int, frozenset[str]], int] = {}
    found: list[Requirement] = []
    # Distinct (category, priority, place kinds) found on codes, without a Python tuple per
    # incident (300,000 of them cost more in garbage collection than in building them).
    n = len(demand)
    kinds = np.empty(n, dtype=object)
    kinds[:] = place_kinds if place_kinds is not None else [frozenset()] * n
    code = np.zeros(n, np.int64)
    for col in (demand.category, kinds, demand.priority):
        c, distinct = pd.factorize(np.asarray(col, dtype=object), use_na_sentinel=False)
        code = code * len(distinct) + c
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    row_of = np.zeros(len(first), np.int64)
    for j, i in enumerate(first.tolist()):
        key = (str(demand.category[i]), int(demand.priority[i]), kinds[i])
        if key not in rows:
            rows[key] = len(found)
            view = IncidentView("", key[0], key[1], 0.0, 0.0, None, key[2])
            found.append(rules.requirement_for(view))
        row_of[j] = rows[key]
    inc_req = row_of[inverse.reshape(-1)]
    n_types = len(type_index)
    pref = np.zeros((max(len(found), 1), n_types), np.bool_)
    required = np.zeros_like(pref)
    for r, req in enumerate(found):
        pref[r, [type_index[t] for t in req.preferred_types]] = True
        required[r, [type_index[t] for t in req.required_types]] = True
    units = np.array([req.units for req in found] or [1], np.int64)
    slack = np.array([req.prefer_slack_s if req.preferred_types else 0.0 for req in found] or [0.0])
    return inc_req, (units, pref, required, slack)


def _world(
    scenario: Scenario,
    fleet: Fleet,
    demand: IncidentBatch,
    policy: Policy,
    rules: RequirementRules,
    inc_loc: np.ndarray,
    handling_s: np.ndarray,
    on_scene_s: np.ndarray,
    place_kinds: list[frozenset[str]] | None,
    sites: np.ndarray | None = None,
) -> tuple[loop.World, int, int]:
    """The compiled loop's inputs; also the largest team and the number of home trees."""
    travel = fleet.travel
    units = fleet.units
    type_index = {t: j for j, t in enumerate(sorted(rules.unit_modes))}
    stations: dict[str, int] = {}
    unit_station = np.array([stations.setdefault(u.station, len(stations)) for u in units])
    inc_stations = demand.station.tolist()
    number = {
        s: -1 if s is None else stations.setdefault(str(s), len(stations))
        for s in dict.fromkeys(inc_stations)  # each distinct station once, in order
    }
    inc_station = np.fromiter(map(number.__getitem__, inc_stations), np.int64, len(inc_stations))
    _, id_rank = np.unique(np.array([u.id for u in units], dtype=str), return_inverse=True)
    unit_mode = np.array([travel.mode_index(u.mode) for u in units], np.int64)
    trees: dict[tuple[int, int], int] = {}
    homes = [(int(m), int(u.homes[0])) for m, u in zip(unit_mode, units, strict=True)]
    for h in homes:
        trees.setdefault(h, len(trees))
    site_loc = np.zeros(0, np.int64) if sites is None else np.asarray(sites, np.int64)
    for m in sorted(set(unit_mode.tolist())):
        for loc in site_loc.tolist():
            trees.setdefault((m, int(loc)), len(trees))
    loc_tree = np.full((len(travel.modes), len(travel.lonlat)), -1, np.int64)
    for (m, loc), row in trees.items():
        loc_tree[m, loc] = row
    sizes = [len(u.homes) for u in units]
    duty = [d for u in units for d in u.duty]
    inc_req, (req_units, req_pref, req_required, req_slack) = _requirements(
        rules, demand, place_kinds, type_index
    )
    world = loop.World(
        graphs=travel.graphs,
        loc_seg=travel.loc_seg,
        loc_frac=travel.loc_frac,
        unit_mode=unit_mode,
        unit_type=np.array([type_index[u.unit_type] for u in units], np.int64),
        unit_station=unit_station.astype(np.int64),
        unit_id_rank=id_rank.astype(np.int64),
        unit_home=np.array([int(u.homes[0]) for u in units], np.int64),
        loc_tree=loc_tree,
        patrol_dwell=np.array(
            [np.nan if u.patrol_dwell_s is None else u.patrol_dwell_s for u in units], np.float64
        ),
        patrol_phase=np.array([u.phase for u in units], np.int64),
        homes_ptr=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        homes_loc=np.concatenate([u.homes for u in units]).astype(np.int64),
        duty_ptr=np.concatenate([[0], np.cumsum([len(u.duty) for u in units])]).astype(np.int64),
        duty_on=np.array([d[0] for d in duty], np.float64),
        duty_off=np.array([d[1] for d in duty], np.float64),
        inc_t=np.asarray(demand.t, np.float64),
        inc_loc=np.asarray(inc_loc, np.int64),
        inc_priority=np.asarray(demand.priority, np.int64),
        inc_station=inc_station,
        inc_req=inc_req,
        handling_s=np.asarray(handling_s, np.float64),
        on_scene_s=np.asarray(on_scene_s, np.float64),
        req_units=req_units,
        req_pref=req_pref,
        req_required=req_required,
        req_slack=req_slack,
        station_first=policy.name == "station_first",
        threshold_s=math.inf if policy.threshold_s is None else float(policy.threshold_s),
        limit_s=math.inf if policy.limit_s is None else float(policy.limit_s),
        queue=bool(scenario.queue),
        hourly_factor=np.ones(1),
        move_up=sites is not None,
        site_loc=site_loc,
        movable=np.array([u.patrol_dwell_s is None for u in units], np.bool_),
    )
    return world, int(req_units.max()), len(trees)


_ASG_TIMES = ("t_dispatch", "eta_s", "metres", "t_arrive", "t_leave")  # State.asg_t columns
_STATUS_TEXT = {
    kernel.STATUS_OK: "ok",
    kernel.STATUS_SHORT: "short",
    kernel.STATUS_ALL_STALE: "all_stale",
    kernel.STATUS_NONE_WITHIN_LIMIT: "none_within_limit",
    loop.STATUS_NONE_AVAILABLE: "none_available",
}


def _texts(text: dict[int, str], codes: np.ndarray) -> np.ndarray:
    """The text of each code (``None`` for a code without one), looked up once per code."""
    lo = min(int(codes.min()), *text) if len(codes) else 0
    table = np.array([text.get(c) for c in range(lo, max(text) + 1)] + [None], dtype=object)
    texts: np.ndarray = table[np.clip(codes - lo, 0, len(table) - 1)]
    return texts


def _teams(n_incidents: int, incident: np.ndarray, unit_id: np.ndarray) -> np.ndarray:
    """Each incident's unit ids joined with ";" in dispatch order ("" for none).

    ``incident`` and ``unit_id`` are the assignments in dispatch order.  Whole arrays are
    joined at once, the first unit of every incident, then the second, ...: a pandas
    groupby-join calls Python once per incident and cost more than the whole event loop.
    """
    order = np.argsort(incident, kind="stable")
    inc = incident[order]
    start = np.r_[0, np.flatnonzero(np.diff(inc)) + 1]
    # Each assignment's place in its incident's team (0: the first unit sent).
    place = np.arange(len(inc)) - np.repeat(start, np.diff(np.r_[start, len(inc)]))
    teams = np.full(n_incidents, "", dtype=object)
    names = unit_id[order]
    for p in range(int(place.max()) + 1 if len(place) else 0):
        at = place == p
        teams[inc[at]] = names[at] if p == 0 else teams[inc[at]] + ";" + names[at]
    return teams


def _records(
    scenario: Scenario, fleet: Fleet, demand: IncidentBatch, state: loop.State
) -> RunResult:
    start = pd.Timestamp(scenario.start).tz_convert("UTC")

    def stamp(x: np.ndarray) -> pd.Series:
        # Microseconds, like the incident store: replayed times come back exactly.
        return pd.Series(start + pd.to_timedelta(x, unit="s")).dt.round("us")

    units = fleet.units
    ids = np.asarray([u.id for u in units] + [None], dtype=object)  # -1: no unit
    first = ids[state.first_unit]
    unit_stations = np.asarray([u.station for u in units] + [None], dtype=object)
    n_asg = int(state.counters[1])
    times = state.asg_t[:n_asg]
    st = {
        "t_ready": state.t_ready,
        "t_dispatch": state.t_dispatch,
        "t_arrive": state.t_arrive,
        "t_clear": state.t_clear,
        "needed": state.needed,
        "sent": state.sent,
        "waited": state.waited,
    }
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
            "first_unit": first,
            "first_unit_station": unit_stations[state.first_unit],
            "waited": st["waited"],
            "recommendation": _texts(_STATUS_TEXT, state.rec_status),
            "status": np.where(answered, "answered", "unanswered"),
            "unanswered_reason": _texts(loop.LOST_REASONS, state.lost),
        }
    )
    asg = pd.DataFrame(
        {
            "incident": state.asg_incident[:n_asg],
            "unit": state.asg_unit[:n_asg],
            **dict(zip(_ASG_TIMES, times.T, strict=True)),
        }
    )
    if len(asg):
        inc["units"] = _teams(len(demand), state.asg_incident[:n_asg], ids[state.asg_unit[:n_asg]])
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
