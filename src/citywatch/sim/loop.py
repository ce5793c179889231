"""The simulator's compiled event loop: one handler per event kind, state in two small objects.

:func:`run` is the engine's inner loop, compiled with numba.  The inputs that do not change are
a :class:`World`; everything that does is a :class:`State` of arrays.  Each event kind
(:class:`Event`) has one handler, and dispatch asks the live service's scoring kernel
(:func:`citywatch.dispatch.kernel.rank_units`) for the team, over travel times from bounded
searches that are widened until the kernel says its answer is decided.  The rules are those
documented in :mod:`citywatch.sim.engine`.
"""

from __future__ import annotations

import heapq
import math
from enum import IntEnum
from typing import Any, NamedTuple

import numba
import numpy as np

from citywatch.dispatch.kernel import (
    STATUS_NONE_WITHIN_LIMIT,
    compiled,
    compiled_with_python,
    rank_units,
)
from citywatch.sim.travel import (
    Graphs,
    Scratch,
    TargetCache,
    cost_at,
    costs_from_search,
    home_tree,
    keep,
    new_scratch,
    new_target_cache,
    point_cost,
    replay,
    replay_start,
    search_start,
    search_to,
    search_until,
    seg_cost,
)

__all__ = [
    "FIRST_BOUND_S",
    "LOST_REASONS",
    "RELOCATE",
    "STATUS_NONE_AVAILABLE",
    "UNIT_AVAILABLE",
    "UNIT_BUSY",
    "UNIT_OFF",
    "Event",
    "State",
    "World",
    "new_state",
    "run",
]


class Event(IntEnum):
    """Event kinds; the number also orders simultaneous events (units free up before calls)."""

    SHIFT_OFF = 0
    BACK = 1
    LEAVE = 2
    ON_SCENE = 3
    SHIFT_ON = 4
    READY = 5


# The compiled code reads plain ints.
_SHIFT_OFF, _BACK, _LEAVE, _ON_SCENE, _SHIFT_ON, _READY = (int(e) for e in Event)
_OFF, _AVAILABLE, _BUSY = 0, 1, 2
#: Unit status codes of State.status, for Python readers (the move-up decision).
UNIT_OFF, UNIT_AVAILABLE, UNIT_BUSY = _OFF, _AVAILABLE, _BUSY
#: Recommendation status code beyond the kernel's: no unit was available at all.
STATUS_NONE_AVAILABLE = 4
#: Why an incident was never answered, by code (0: it was, or is not known to be lost).
LOST_REASONS = {
    1: "no unit of the fleet can reach it by road",
    2: "no unit available and no queue",
    3: "no unit became available before the simulation ended",
}
#: The first dispatch search's bound (s) at a location without a kept search; doubled until the
#: kernel's answer is decided.
FIRST_BOUND_S = 60.0
_WIDEN = 2.0


class World(NamedTuple):
    """Everything the loop reads and never changes."""

    graphs: Graphs
    loc_seg: Any  # (modes, locations)
    loc_frac: Any
    unit_mode: Any  # per unit: mode number, type number, station number, id rank
    unit_type: Any
    unit_station: Any
    unit_id_rank: Any
    unit_home: Any  # location the unit returns to
    loc_tree: Any  # (modes, locations): row of the location's tree in State.trees, -1: none
    patrol_dwell: Any  # NaN for units that do not patrol
    patrol_phase: Any
    homes_ptr: Any  # homes_loc[homes_ptr[k]:homes_ptr[k + 1]]: post or beat waypoints
    homes_loc: Any
    duty_ptr: Any
    duty_on: Any
    duty_off: Any
    inc_t: Any
    inc_loc: Any
    inc_priority: Any
    inc_station: Any  # -1: none
    inc_req: Any  # row of the requirement tables
    handling_s: Any
    on_scene_s: Any
    req_units: Any
    req_pref: Any  # (requirements, unit types) bool
    req_required: Any
    req_slack: Any  # the preferred-type slack, 0 when none is preferred
    station_first: bool
    threshold_s: float
    limit_s: float
    queue: bool
    hourly_factor: Any
    move_up: bool  # ask RELOCATE where a freed unit goes (else: back to its post)
    site_loc: Any  # locations of the move-up sites (each has a tree per mode)
    movable: Any  # per unit: whether move-up may send it elsewhere than its post
    # The first dispatch search's bound, or the bound a kept search of the location went to;
    # doubled until decided.
    first_bound_s: float = FIRST_BOUND_S


class State(NamedTuple):
    """Everything the loop changes: units, incidents, assignment records and search state."""

    status: Any
    position: Any
    post: Any  # where the unit waits when idle: its home, or the site move-up sent it to
    version: Any
    off_pending: Any
    patrolling: Any
    open_assign: Any
    needed: Any
    sent: Any
    t_ready: Any
    t_dispatch: Any
    t_arrive: Any
    t_clear: Any
    first_unit: Any
    rec_status: Any
    lost: Any
    waited: Any
    done: Any
    asg_incident: Any
    asg_unit: Any
    asg_t: Any  # dispatched, eta, metres, arrived, left
    counters: Any  # [next event sequence number, assignments, available units]
    trees: Any  # (home rows, nodes) seconds to each home, filled on first use
    tree_ready: Any
    scratch: Scratch
    targets: TargetCache


def new_state(
    n_units: int,
    n_inc: int,
    max_team: int,
    n_trees: int,
    graphs: Graphs,
    n_locations: int,
    cache_entries: int,
) -> State:
    """The state at time 0: every unit off duty, no incident received."""
    cap = n_inc * max_team
    n_modes, n_nodes = graphs.ptr.shape[0], graphs.ptr.shape[1] - 1
    nan = np.full(n_inc, np.nan)
    return State(
        status=np.full(n_units, _OFF, np.int64),
        position=np.zeros(n_units, np.int64),
        post=np.zeros(n_units, np.int64),
        version=np.zeros(n_units, np.int64),
        off_pending=np.zeros(n_units, np.bool_),
        patrolling=np.zeros(n_units, np.bool_),
        open_assign=np.full(n_units, -1, np.int64),
        needed=np.zeros(n_inc, np.int64),
        sent=np.zeros(n_inc, np.int64),
        t_ready=nan.copy(),
        t_dispatch=nan.copy(),
        t_arrive=nan.copy(),
        t_clear=nan,
        first_unit=np.full(n_inc, -1, np.int64),
        rec_status=np.full(n_inc, -1, np.int64),
        lost=np.zeros(n_inc, np.int64),
        waited=np.zeros(n_inc, np.bool_),
        done=np.zeros(n_inc, np.bool_),
        asg_incident=np.zeros(cap, np.int64),
        asg_unit=np.zeros(cap, np.int64),
        asg_t=np.full((cap, 5), np.nan),
        counters=np.zeros(3, np.int64),
        trees=np.zeros((n_trees, n_nodes)),
        tree_ready=np.zeros(n_trees, np.bool_),
        scratch=new_scratch(graphs),
        targets=new_target_cache(n_modes, n_locations, cache_entries),
    )


# --------------------------------------------------------------------------- helpers


@compiled
def _push(events: Any, st: State, t: float, kind: int, a: int, b: int, ver: int) -> None:
    heapq.heappush(events, (t, kind, st.counters[0], a, b, ver))
    st.counters[0] += 1


@compiled
def _factor(w: World, t: float) -> float:
    f = w.hourly_factor
    return float(f[min(int(t // 3600.0), len(f) - 1)])


@compiled
def _is_home(w: World, k: int, loc: int) -> bool:
    found = False
    for j in range(w.homes_ptr[k], w.homes_ptr[k + 1]):
        found = found or w.homes_loc[j] == loc
    return found


@compiled
def _make_available(w: World, st: State, k: int) -> None:
    if st.status[k] != _AVAILABLE:
        st.counters[2] += 1
    st.status[k] = _AVAILABLE
    if not math.isnan(w.patrol_dwell[k]) and _is_home(w, k, st.position[k]):
        st.patrolling[k] = True


@compiled
def _take(st: State, k: int, status: int) -> None:
    """A unit stops being available (sent, or off duty)."""
    if st.status[k] == _AVAILABLE:
        st.counters[2] -= 1
    st.status[k] = status
    st.version[k] += 1
    st.patrolling[k] = False


@compiled
def _refresh_patrols(w: World, st: State, t: float) -> None:
    patrolling, ptr = st.patrolling, w.homes_ptr
    for k in range(len(patrolling)):
        if patrolling[k]:
            n = ptr[k + 1] - ptr[k]
            j = (int(t // w.patrol_dwell[k]) + w.patrol_phase[k]) % n
            st.position[k] = w.homes_loc[ptr[k] + j]


@compiled
def _time_to(w: World, st: State, k: int, loc: int, factor: float) -> float:
    """Seconds from unit ``k``'s position to location ``loc`` (which has a tree row)."""
    m = w.unit_mode[k]
    row = w.loc_tree[m, loc]
    tree = st.trees[row]
    if not st.tree_ready[row]:
        home_tree(w.graphs, m, w.loc_seg[m, loc], w.loc_frac[m, loc], st.scratch, tree)
        st.tree_ready[row] = True
    g = w.graphs
    here = st.position[k]
    seg, frac = w.loc_seg[m, here], w.loc_frac[m, here]
    at_a, at_b = (tree[g.seg_a[seg]], 0.0), (tree[g.seg_b[seg]], 0.0)
    same = seg == w.loc_seg[m, loc]
    secs, _ = point_cost(seg_cost(g, seg), frac, at_a, at_b, same, w.loc_frac[m, loc])
    return secs * factor


@compiled
def _time_home(w: World, st: State, k: int, factor: float) -> float:
    """Seconds from the unit's position back to its post (0 when it cannot get there)."""
    secs = _time_to(w, st, k, st.post[k], factor)
    return secs if math.isfinite(secs) else 0.0


#: The Python callable that decides move-ups, registered by the engine for one run (numba's
#: object-mode block below calls it): ``(unit, t, status, post, seconds_to_sites) -> site``
#: index, or -1 for "back to its own post".
RELOCATE: list[Any] = [None]


def _relocate(k: int, t: float, status: Any, post: Any, to_sites: Any) -> int:
    return int(RELOCATE[0](k, t, status, post, to_sites))


@compiled_with_python
def _choose_post(w: World, st: State, k: int, t: float) -> None:
    """Move-up: the freed unit's next post, decided in Python by the dispatch move-up code."""
    factor = _factor(w, t)
    to_sites = np.empty(len(w.site_loc))
    for j in range(len(w.site_loc)):
        to_sites[j] = _time_to(w, st, k, w.site_loc[j], factor)
    status, post = st.status, st.post
    with numba.objmode(site="int64"):
        site = _relocate(k, t, status, post, to_sites)
    st.post[k] = w.unit_home[k] if site < 0 else w.site_loc[site]


@compiled
def _reachable(w: World, st: State, i: int) -> bool:
    """Whether any unit could reach incident ``i`` from one of its homes, in any duty period."""
    loc = w.inc_loc[i]
    for m in range(w.loc_seg.shape[0]):
        homes = np.zeros(0, np.int64)
        for k in range(len(w.unit_mode)):
            if w.unit_mode[k] == m:
                homes = np.append(homes, w.homes_loc[w.homes_ptr[k] : w.homes_ptr[k + 1]])
        if len(homes) == 0:
            continue
        tseg, tfrac = w.loc_seg[m, loc], w.loc_frac[m, loc]
        search_to(w.graphs, m, tseg, tfrac, math.inf, st.scratch)
        segs, fracs = w.loc_seg[m][homes], w.loc_frac[m][homes]
        secs, _ = costs_from_search(w.graphs, st.scratch, m, segs, fracs, tseg, tfrac, math.inf)
        if np.isfinite(secs).any():
            return True
    return False


# --------------------------------------------------------------------------- dispatch


@compiled
def _rank(w: World, st: State, i: int, factor: float) -> tuple[Any, Any, Any, Any, int]:
    """The policy's team for incident ``i`` among the available units.

    Returns the available units, their seconds and metres, the team (indices into them) and
    the kernel's status.
    """
    avail = np.flatnonzero(st.status == _AVAILABLE)
    n = len(avail)
    r = w.inc_req[i]
    loc = w.inc_loc[i]
    # The arrays each unit needs, read from World and State once, not per unit.
    pref, required, inc_station = w.req_pref[r], w.req_required[r], w.inc_station[i]
    unit_type, unit_station, unit_id_rank = w.unit_type, w.unit_station, w.unit_id_rank
    unit_mode, position, loc_seg, loc_frac = w.unit_mode, st.position, w.loc_seg, w.loc_frac
    is_pref = np.empty(n, np.bool_)
    is_req = np.empty(n, np.bool_)
    own = np.empty(n, np.bool_)
    id_rank = np.empty(n, np.int64)
    mode = np.empty(n, np.int64)
    seg = np.empty(n, np.int64)  # the units' places on the network, the same every round
    frac = np.empty(n)
    n_modes = loc_seg.shape[0]
    used = np.zeros(n_modes, np.bool_)
    for j in range(n):
        k = avail[j]
        is_pref[j] = pref[unit_type[k]]
        is_req[j] = required[unit_type[k]]
        own[j] = unit_station[k] == inc_station
        id_rank[j] = unit_id_rank[k]
        m = mode[j] = unit_mode[k]
        seg[j], frac[j] = loc_seg[m, position[k]], loc_frac[m, position[k]]
        used[m] = True
    stale = np.zeros(n, np.bool_)
    has_required = required.any()
    station_first = w.station_first and inc_station >= 0
    eta = np.full(n, math.inf)
    metres = np.full(n, math.inf)
    # Units whose time is not known yet (beyond every bound so far): a time found within a
    # bound is final, so each round computes only these.
    unknown = np.arange(n)
    n_unknown = n
    tseg, tfrac = loc_seg[:, loc].copy(), loc_frac[:, loc].copy()
    # One search per mode, continued with a wider bound while the answer is not decided; a
    # search kept from an earlier call to this location is replayed as far as it goes.
    g, tc, sc = w.graphs, st.targets, st.scratch
    live = tc.bound[:, loc] == -math.inf
    replayed = np.zeros(n_modes, np.int64)
    for m in range(n_modes):
        if used[m] and live[m]:
            search_start(g, m, tseg[m], tfrac[m], sc)
        elif used[m]:
            replay_start(sc, m)
    dist_s, dist_m = sc.dist, sc.metres
    # Start where the kept searches of this location went (its last answer was decided there):
    # replaying them costs little, and each further round costs a ranking.
    kept = [tc.bound[m, loc] for m in range(n_modes) if used[m] and not live[m]]
    bound = max(w.first_bound_s, min(kept)) if len(kept) else w.first_bound_s
    while True:
        for m in range(n_modes):
            if not used[m]:
                continue
            if not live[m] and bound > tc.bound[m, loc]:  # beyond what was kept: search
                live[m] = True
                search_start(g, m, tseg[m], tfrac[m], sc)
            if live[m]:
                search_until(g, m, bound, sc)
            else:
                replayed[m] = replay(tc, m, loc, replayed[m], bound, sc)
        still = 0
        for u in range(n_unknown):
            j = unknown[u]
            m = mode[j]
            secs, dist = cost_at(g, dist_s, dist_m, m, seg[j], frac[j], tseg[m], tfrac[m], bound)
            if math.isinf(secs):
                unknown[still] = j
                still += 1
            else:
                eta[j], metres[j] = secs * factor, dist
        n_unknown = still
        _, _, team, status, _, decided = rank_units(
            eta,
            is_pref,
            is_req,
            own,
            id_rank,
            stale,
            w.req_slack[r],
            station_first,
            w.threshold_s,
            w.limit_s,
            w.req_units[r],
            1,
            has_required,
            bound * factor,
        )
        if decided:
            for m in range(n_modes):
                if used[m] and live[m]:
                    keep(tc, m, loc, bound, sc)
            return avail, eta, metres, team, status
        bound = bound * _WIDEN if bound < 86400.0 else math.inf


@compiled
def _dispatch(w: World, st: State, events: Any, i: int, t: float) -> None:
    """Ask the policy for a team and send up to the units still needed."""
    if st.counters[2] == 0:
        if st.rec_status[i] < 0:
            st.rec_status[i] = STATUS_NONE_AVAILABLE
        return
    _refresh_patrols(w, st, t)
    avail, eta, metres, team, status = _rank(w, st, i, _factor(w, t))
    if st.rec_status[i] < 0 or st.needed[i] == 0:
        st.rec_status[i] = status
        st.needed[i] = w.req_units[w.inc_req[i]]
    team = team[: max(st.needed[i] - st.sent[i], 0)]
    if len(team) == 0:
        cut_off = status == STATUS_NONE_WITHIN_LIMIT and math.isinf(w.limit_s)
        if cut_off and st.sent[i] == 0 and not _reachable(w, st, i):
            # Waiting would never help (a piece of network cut off for every unit).
            st.lost[i] = 1
            st.done[i] = True
        return
    for j in team:
        k = avail[j]
        _take(st, k, _BUSY)
        if st.sent[i] == 0:
            st.t_dispatch[i] = t
            st.first_unit[i] = k
        st.sent[i] += 1
        row = st.counters[1]
        st.counters[1] += 1
        st.open_assign[k] = row
        st.asg_incident[row] = i
        st.asg_unit[row] = k
        st.asg_t[row, 0] = t
        st.asg_t[row, 1] = eta[j]
        st.asg_t[row, 2] = metres[j]
        _push(events, st, t + eta[j], _ON_SCENE, k, i, st.version[k])


@compiled
def _serve_queue(w: World, st: State, events: Any, queue: Any, t: float) -> None:
    """Whenever a unit becomes available: serve the waiting calls, highest priority first."""
    if len(queue) == 0 or st.counters[2] == 0:
        return
    keep = [queue[0]]
    keep.pop()
    while len(queue) > 0 and st.counters[2] > 0:
        item = heapq.heappop(queue)
        i = item[2]
        if st.done[i]:
            continue
        _dispatch(w, st, events, i, t)
        if (st.sent[i] < st.needed[i] or st.sent[i] == 0) and not st.done[i]:
            keep.append(item)
    for item in keep:
        heapq.heappush(queue, item)


# --------------------------------------------------------------------------- event handlers


@compiled
def _on_ready(w: World, st: State, events: Any, queue: Any, t: float, i: int) -> None:
    st.t_ready[i] = t
    _dispatch(w, st, events, i, t)
    unserved = st.sent[i] < max(st.needed[i], 1) and not st.done[i]
    if unserved and w.queue:
        st.waited[i] = True
        heapq.heappush(queue, (w.inc_priority[i], t, i))
    elif unserved and st.sent[i] == 0:
        st.lost[i] = 2


@compiled
def _on_scene(w: World, st: State, events: Any, t: float, k: int, i: int) -> None:
    row = st.open_assign[k]
    st.asg_t[row, 3] = t
    st.asg_t[row, 4] = t + w.on_scene_s[i]
    st.position[k] = w.inc_loc[i]
    if math.isnan(st.t_arrive[i]):
        st.t_arrive[i] = t
    _push(events, st, t + w.on_scene_s[i], _LEAVE, k, i, st.version[k])


@compiled
def _on_leave(w: World, st: State, events: Any, queue: Any, t: float, k: int, i: int) -> None:
    st.done[i] = True
    st.t_clear[i] = t if math.isnan(st.t_clear[i]) else max(st.t_clear[i], t)
    st.open_assign[k] = -1
    if st.off_pending[k]:
        st.status[k] = _OFF
        st.off_pending[k] = False
        st.position[k] = st.post[k] = w.unit_home[k]
        return
    st.version[k] += 1
    # Available at once, located at the scene until it is back at its post.
    _make_available(w, st, k)
    if w.move_up and w.movable[k]:
        _choose_post(w, st, k, t)
    back = _time_home(w, st, k, _factor(w, t))
    _push(events, st, t + back, _BACK, k, -1, st.version[k])
    _serve_queue(w, st, events, queue, t)


@compiled
def _on_back(w: World, st: State, k: int) -> None:
    st.position[k] = st.post[k]
    _make_available(w, st, k)


@compiled
def _on_shift_on(w: World, st: State, events: Any, queue: Any, t: float, k: int) -> None:
    if st.status[k] == _BUSY:  # back-to-back shifts: still on the previous job
        st.off_pending[k] = False
    elif st.status[k] == _OFF:
        st.position[k] = st.post[k] = w.unit_home[k]
        _make_available(w, st, k)
        _serve_queue(w, st, events, queue, t)


@compiled
def _on_shift_off(st: State, k: int) -> None:
    if st.status[k] == _BUSY:
        st.off_pending[k] = True
    else:
        _take(st, k, _OFF)


# --------------------------------------------------------------------------- the loop


@compiled
def run(w: World, st: State) -> None:
    """Run every event to the end; the results are left in ``st``."""
    # (time, kind, sequence, unit or incident, incident, unit version); (priority, time, incident)
    events: list[tuple[float, int, int, int, int, int]] = [(0.0, 0, 0, 0, 0, 0)]
    events.pop()
    queue: list[tuple[int, float, int]] = [(0, 0.0, 0)]
    queue.pop()
    for k in range(len(w.unit_mode)):
        for j in range(w.duty_ptr[k], w.duty_ptr[k + 1]):
            on, off = w.duty_on[j], w.duty_off[j]
            if off > 0:
                _push(events, st, max(on, 0.0), _SHIFT_ON, k, -1, 0)
                if math.isfinite(off):
                    _push(events, st, off, _SHIFT_OFF, k, -1, 0)
    # Calls are read from the sorted demand as the clock reaches them rather than all pushed
    # on the heap: same order (a call comes after other events at its instant), smaller heap.
    n_inc = len(w.inc_t)
    nxt = 0
    while len(events) > 0 or nxt < n_inc:
        if nxt < n_inc and (len(events) == 0 or w.inc_t[nxt] < events[0][0]):
            _push(events, st, w.inc_t[nxt] + w.handling_s[nxt], _READY, nxt, -1, 0)
            nxt += 1
            continue
        t, kind, _, a, b, ver = heapq.heappop(events)
        if kind == _READY:
            _on_ready(w, st, events, queue, t, a)
        elif kind == _ON_SCENE:
            if ver == st.version[a]:
                _on_scene(w, st, events, t, a, b)
        elif kind == _LEAVE:
            if ver == st.version[a]:
                _on_leave(w, st, events, queue, t, a, b)
        elif kind == _BACK:
            if ver == st.version[a] and st.status[a] == _AVAILABLE:
                _on_back(w, st, a)
        elif kind == _SHIFT_ON:
            _on_shift_on(w, st, events, queue, t, a)
        else:
            _on_shift_off(st, a)
    for _, _, i in queue:
        if st.sent[i] == 0 and not st.done[i]:
            st.lost[i] = 3
