"""Travel for simulation: compiled bounded searches from each target, exact like the Router.

A simulated year asks for hundreds of thousands of "every available unit to this incident"
questions.  :class:`SearchTravel` answers each with one search per travel mode over the reversed
road graph (the compiled Dijkstra of :mod:`citywatch.routing.search`, the live Router's own,
with one row of its state per mode so that each mode's search can be resumed), seeded at the
target's two segment ends exactly as the Router enters a snapped point, and stopped at a time
bound: the simulator's dispatch asks for a small bound first and widens it only when the
policy's answer is not decided yet (:func:`citywatch.dispatch.kernel.rank_units`).  Nothing is
quadratic in the network: the search state is a few arrays of one entry per node, and the
trees that give each unit's trip back to its post (one full search per post and mode,
:func:`home_tree`) grow with ``posts x nodes``.

A point's travel time is the minimum over its two segment ends of the part of its segment to
that end plus the end's searched time (or the straight run when it shares the target's
segment): the Router's arithmetic, in float64.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from citywatch.dispatch.kernel import compiled, inlined
from citywatch.errors import ValidationError
from citywatch.routing import Router
from citywatch.routing.search import SearchState, new_search_state, search_reset
from citywatch.routing.search import search_start as routing_search_start
from citywatch.routing.search import search_until as routing_search_until

__all__ = [
    "Graphs",
    "Scratch",
    "SearchTravel",
    "TargetCache",
    "cost_at",
    "costs_from_search",
    "home_tree",
    "keep",
    "new_scratch",
    "new_target_cache",
    "point_cost",
    "replay",
    "replay_start",
    "search_start",
    "search_to",
    "search_until",
    "seg_cost",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Graphs(NamedTuple):
    """The reversed road graphs of the travel modes, stacked for the compiled code.

    ``ptr[m, v]:ptr[m, v + 1]`` are the edges *into* node ``v`` in mode ``m`` (``src`` their
    tails), with their seconds and metres; segments of every mode are numbered globally.
    """

    ptr: IntArray
    src: IntArray
    sec: FloatArray
    met: FloatArray
    seg_a: IntArray
    seg_b: IntArray
    fwd_s: FloatArray
    bwd_s: FloatArray
    fwd_m: FloatArray
    bwd_m: FloatArray


#: The simulator's search buffers: one row of :class:`citywatch.routing.search.SearchState` per
#: travel mode (the same compiled search as the live Router's).
Scratch = SearchState


def new_scratch(g: Graphs) -> Scratch:
    """Search buffers for every mode of the stacked graphs ``g``."""
    n_modes, n_nodes = g.ptr.shape[0], g.ptr.shape[1] - 1
    edges = int((g.ptr[:, -1] - g.ptr[:, 0]).max()) if n_modes else 0
    return new_search_state(n_modes, n_nodes, edges + 2)


#: Settled nodes the simulator keeps from its searches (node, seconds, metres: 24 bytes each);
#: when full, the cache starts again empty.  Memory is allocated as it is used.
TARGET_CACHE_ENTRIES = 8_000_000


class TargetCache(NamedTuple):
    """Bounded searches kept per (mode, target location): the settled nodes in settle order.

    ``bound[m, loc]`` is how far the kept search went (every node within it is kept; ``-inf``:
    nothing kept); its nodes are ``node[start:start + length]``.  Replaying a kept search up
    to a bound gives exactly what a new search to that bound would settle.
    """

    start: IntArray
    length: IntArray
    bound: FloatArray
    node: IntArray
    sec: FloatArray
    met: FloatArray
    used: IntArray


def new_target_cache(n_modes: int, n_locations: int, entries: int) -> TargetCache:
    """An empty cache for ``n_locations`` target locations holding up to ``entries`` nodes."""
    return TargetCache(
        np.zeros((n_modes, n_locations), np.int64),
        np.zeros((n_modes, n_locations), np.int64),
        np.full((n_modes, n_locations), -np.inf),
        np.zeros(entries, np.int64),
        np.zeros(entries),
        np.zeros(entries),
        np.zeros(1, np.int64),
    )


@inlined
def _part(fraction: float, cost: float) -> float:
    # A point exactly at a node is at that node, even where the direction is not allowed.
    return 0.0 if fraction == 0.0 else fraction * cost


@compiled
def search_start(g: Graphs, m: int, seg: int, frac: float, sc: Scratch) -> None:
    """Start mode ``m``'s search towards the point at ``frac`` of segment ``seg`` (enter the
    segment at ``a`` and drive forward, or at ``b`` and drive backward), to be continued by
    :func:`search_until`."""
    nodes = np.array([g.seg_a[seg], g.seg_b[seg]])
    secs = np.array([_part(frac, g.fwd_s[seg]), _part(1.0 - frac, g.bwd_s[seg])])
    mets = np.array([_part(frac, g.fwd_m[seg]), _part(1.0 - frac, g.bwd_m[seg])])
    routing_search_start(sc, m, nodes, secs, mets, math.inf)


@compiled
def search_until(g: Graphs, m: int, bound: float, sc: Scratch) -> None:
    """Continue mode ``m``'s search until every node within ``bound`` seconds is settled
    (``inf``: the whole network); it can be continued again with a larger bound."""
    routing_search_until(g.ptr[m], g.src, g.sec, g.met, sc, m, bound, False)


@compiled
def search_to(g: Graphs, m: int, seg: int, frac: float, bound: float, sc: Scratch) -> None:
    """A search of mode ``m`` towards a point, every node within ``bound`` seconds settled."""
    search_start(g, m, seg, frac, sc)
    search_until(g, m, bound, sc)


@inlined
def point_cost(
    seg_cost: tuple[float, float, float, float],
    frac: float,
    at_a: tuple[float, float],
    at_b: tuple[float, float],
    same_segment: bool,
    tfrac: float,
) -> tuple[float, float]:
    """Seconds and metres from the point at ``frac`` of its segment to the target.

    ``seg_cost`` is the segment's (forward s, backward s, forward m, backward m), ``at_a`` and
    ``at_b`` the seconds and metres from its ends to the target; ``same_segment``: the target
    lies on it too, at ``tfrac``.
    """
    fwd_s, bwd_s, fwd_m, bwd_m = seg_cost
    via_b_s = _part(1.0 - frac, fwd_s) + at_b[0]
    via_a_s = _part(frac, bwd_s) + at_a[0]
    if via_a_s < via_b_s:
        secs, metres = via_a_s, _part(frac, bwd_m) + at_a[1]
    else:
        secs, metres = via_b_s, _part(1.0 - frac, fwd_m) + at_b[1]
    if same_segment:  # straight along the shared segment, when that is quicker
        if tfrac >= frac:
            ds, dm = _part(tfrac - frac, fwd_s), _part(tfrac - frac, fwd_m)
        else:
            ds, dm = _part(frac - tfrac, bwd_s), _part(frac - tfrac, bwd_m)
        if ds < secs:
            secs, metres = ds, dm
    return secs, metres


@inlined
def seg_cost(g: Graphs, seg: int) -> tuple[float, float, float, float]:
    """A segment's (forward s, backward s, forward m, backward m)."""
    return g.fwd_s[seg], g.bwd_s[seg], g.fwd_m[seg], g.bwd_m[seg]


@compiled
def replay_start(sc: Scratch, m: int) -> None:
    """Begin a new search of mode ``m`` that :func:`replay` fills from a kept one."""
    search_reset(sc, m)


@compiled
def replay(tc: TargetCache, m: int, loc: int, pos: int, bound: float, sc: Scratch) -> int:
    """Mark the kept nodes of target ``loc`` up to ``bound`` as settled by mode ``m``'s current
    search, from kept position ``pos`` on; returns the next position."""
    dist_s, dist_m, touched = sc.dist[m], sc.metres[m], sc.touched[m]
    n_touched = sc.sizes[m, 0]
    node, sec, met = tc.node, tc.sec, tc.met
    first = tc.start[m, loc]
    end = first + tc.length[m, loc]
    j = first + pos
    while j < end and sec[j] <= bound:
        v = node[j]
        dist_s[v] = sec[j]
        dist_m[v] = met[j]
        touched[n_touched] = v
        n_touched += 1
        j += 1
    sc.sizes[m, 0] = n_touched
    return int(j - first)


@compiled
def keep(tc: TargetCache, m: int, loc: int, bound: float, sc: Scratch) -> None:
    """Keep mode ``m``'s current search (every node within ``bound``) for target ``loc``."""
    n = sc.sizes[m, 2]
    if tc.used[0] + n > len(tc.node):  # full: start again empty
        tc.bound[:, :] = -math.inf
        tc.used[0] = 0
        if n > len(tc.node):
            return
    start = tc.used[0]
    order, dist_s, dist_m = sc.settled[m], sc.dist[m], sc.metres[m]
    node, sec, met = tc.node, tc.sec, tc.met
    for j in range(n):
        v = order[j]
        node[start + j] = v
        sec[start + j] = dist_s[v]
        met[start + j] = dist_m[v]
    tc.start[m, loc] = start
    tc.length[m, loc] = n
    tc.bound[m, loc] = bound
    tc.used[0] += n


@inlined
def cost_at(
    g: Graphs,
    dist_s: FloatArray,
    dist_m: FloatArray,
    m: int,
    seg: int,
    frac: float,
    tseg: int,
    tfrac: float,
    bound: float,
) -> tuple[float, float]:
    """Seconds and metres from the point at ``frac`` of ``seg`` to the target of the search in
    row ``m`` of ``dist_s``/``dist_m`` (its seconds and metres per node, e.g. a
    :class:`Scratch`'s); ``inf`` where the trip is longer than ``bound``.

    A time within ``bound`` is final: nodes the search has not settled hold ``inf`` or a time
    beyond ``bound``, so a trip through them is beyond ``bound`` too, and it stays the same when
    the search goes on to a larger bound.
    """
    a, b = g.seg_a[seg], g.seg_b[seg]
    s, d = point_cost(
        seg_cost(g, seg),
        frac,
        (dist_s[m, a], dist_m[m, a]),
        (dist_s[m, b], dist_m[m, b]),
        seg == tseg,
        tfrac,
    )
    return (math.inf, math.inf) if s > bound else (s, d)


@compiled
def costs_from_search(
    g: Graphs,
    sc: Scratch,
    m: int,
    segs: IntArray,
    fracs: FloatArray,
    tseg: int,
    tfrac: float,
    bound: float,
) -> tuple[FloatArray, FloatArray]:
    """Seconds and metres from points to mode ``m``'s last target; ``inf`` where the trip is
    longer than the search's ``bound`` (:func:`cost_at`)."""
    dist_s, dist_m = sc.dist, sc.metres
    secs = np.empty(len(segs))
    metres = np.empty(len(segs))
    for i in range(len(segs)):
        secs[i], metres[i] = cost_at(g, dist_s, dist_m, m, segs[i], fracs[i], tseg, tfrac, bound)
    return secs, metres


@compiled
def home_tree(g: Graphs, m: int, seg: int, frac: float, sc: Scratch, out: FloatArray) -> None:
    """Seconds from every node to a point (a unit's post): one full search, kept in ``out``."""
    search_to(g, m, seg, frac, math.inf, sc)
    out[:] = sc.dist[m]


@compiled
def _many_to_one(
    g: Graphs,
    m: int,
    src_seg: IntArray,
    src_frac: FloatArray,
    tseg: int,
    tfrac: float,
    bound: float,
    sc: Scratch,
) -> tuple[FloatArray, FloatArray]:
    search_to(g, m, tseg, tfrac, bound, sc)
    return costs_from_search(g, sc, m, src_seg, src_frac, tseg, tfrac, bound)


def pack_graphs(router: Router, modes: Iterable[str]) -> tuple[Graphs, tuple[str, ...], IntArray]:
    """Stack the reversed graphs of ``modes`` (sorted); also the segment offset of each mode."""
    names = tuple(sorted(set(modes)))
    n = router.graph(names[0]).n_nodes  # type: ignore[arg-type]
    ptr = np.zeros((len(names), n + 1), np.int64)
    parts: dict[str, list[Any]] = {k: [] for k in Graphs._fields if k != "ptr"}
    edge_off = seg_off = 0
    offsets = np.zeros(len(names), np.int64)
    for m, mode in enumerate(names):
        gm = router.graph(mode)  # type: ignore[arg-type]
        rs, rm = gm.seconds_rev, gm.metres_rev
        if not (np.array_equal(rs.indptr, rm.indptr) and np.array_equal(rs.indices, rm.indices)):
            raise ValidationError(f"seconds and metres graphs of {mode} differ in shape")
        ptr[m] = rs.indptr.astype(np.int64) + edge_off
        parts["src"].append(rs.indices.astype(np.int64))
        parts["sec"].append(rs.data.astype(np.float64))
        parts["met"].append(rm.data.astype(np.float64))
        parts["seg_a"].append(gm.seg_a.astype(np.int64))
        parts["seg_b"].append(gm.seg_b.astype(np.int64))
        for name in ("fwd_s", "bwd_s", "fwd_m", "bwd_m"):
            parts[name].append(np.asarray(getattr(gm, f"seg_{name}"), np.float64))
        offsets[m] = seg_off
        edge_off += rs.nnz
        seg_off += len(gm.seg_a)
    return Graphs(ptr, **{k: np.concatenate(v) for k, v in parts.items()}), names, offsets


class SearchTravel:
    """Exact network travel between registered points, from bounded compiled searches.

    Points (posts, incident locations, patrol waypoints) are registered once with
    :meth:`register`, which snaps them for every mode like the Router does and returns location
    ids.  The object is a :class:`citywatch.dispatch.policy.TravelFn` (called with coordinates
    by the dispatch policy), a :class:`~citywatch.dispatch.policy.KeyedTravel` (:meth:`by_key`:
    location ids as position keys) and answers :meth:`between` for location ids directly.
    The compiled simulator reads :attr:`graphs`, :attr:`loc_seg` and :attr:`loc_frac`.
    """

    def __init__(self, router: Router, modes: Iterable[str]) -> None:
        self.router = router
        self.graphs, self._modes, self._seg_offset = pack_graphs(router, modes)
        self._ids: dict[tuple[float, ...], int] = {}
        self._lonlat = np.zeros((0, 2))
        self.loc_seg = np.zeros((len(self._modes), 0), np.int64)
        self.loc_frac = np.zeros((len(self._modes), 0))
        self.scratch = new_scratch(self.graphs)
        #: Multiplier on every travel time (congestion); set by the caller per hour.
        self.factor = 1.0

    @classmethod
    def from_pack(cls, pack: Any, modes: Iterable[str]) -> SearchTravel:
        """Travel over a city pack's road network in ``modes``."""
        return cls(Router.from_pack(pack), modes)

    @property
    def modes(self) -> tuple[str, ...]:
        """The travel modes, sorted (their index is the compiled code's mode number)."""
        return self._modes

    @property
    def lonlat(self) -> FloatArray:
        """Coordinates of the registered locations, shape (n, 2)."""
        return self._lonlat

    def mode_index(self, mode: str) -> int:
        """The mode's number; :class:`ValidationError` for a mode without a graph."""
        try:
            return self._modes.index(mode)
        except ValueError:
            raise ValidationError(
                f"no travel graph for mode {mode!r}; have {', '.join(self._modes)}"
            ) from None

    def register(self, lonlat: npt.ArrayLike) -> IntArray:
        """Snap points for every mode and return their location ids (re-using known points).

        Raises
        ------
        SnapError
            If a point is too far from the road network of any mode.
        """
        pts = np.atleast_2d(np.asarray(lonlat, dtype=np.float64)).reshape(-1, 2)
        # Many points share a place (a year of incidents at a few thousand addresses): only the
        # distinct ones are looked at in Python, and only the unknown ones snapped.
        keys = list(zip(pts[:, 0].tolist(), pts[:, 1].tolist(), strict=True))
        ids = self._ids
        new = [k for k in dict.fromkeys(keys) if k not in ids]
        if new:
            arr = np.asarray(new, dtype=np.float64)
            segs, fracs = [], []
            for m, mode in enumerate(self._modes):
                snap = self.router.snap(arr, mode)  # type: ignore[arg-type]
                segs.append(snap.segment.astype(np.int64) + self._seg_offset[m])
                fracs.append(snap.fraction.astype(np.float64))
            self.loc_seg = np.concatenate([self.loc_seg, np.stack(segs)], axis=1)
            self.loc_frac = np.concatenate([self.loc_frac, np.stack(fracs)], axis=1)
            start = len(self._lonlat)
            ids.update({k: start + i for i, k in enumerate(new)})
            self._lonlat = np.concatenate([self._lonlat, arr])
        return np.fromiter(map(ids.__getitem__, keys), dtype=np.int64, count=len(keys))

    def between(
        self, sources: npt.ArrayLike, target: int, mode: str, limit_s: float | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """Seconds (times :attr:`factor`) and metres from each source location to one target.

        Parameters
        ----------
        sources : array_like of int
            Location ids from :meth:`register`.
        target : int
            Location id of the destination.
        mode : str
            Travel mode (one of :attr:`modes`).
        limit_s : float, optional
            Sources farther than this (after the factor) get ``inf``; the search stops there.
        """
        m = self.mode_index(mode)
        src = np.asarray(sources, dtype=np.int64).reshape(-1)
        # The search stops a hair beyond the limit; the limit itself is applied after the factor.
        bound = math.inf if limit_s is None else limit_s / self.factor * (1 + 1e-9)
        secs, metres = _many_to_one(
            self.graphs,
            m,
            self.loc_seg[m, src],
            self.loc_frac[m, src],
            int(self.loc_seg[m, target]),
            float(self.loc_frac[m, target]),
            bound,
            self.scratch,
        )
        secs = secs * self.factor
        if limit_s is not None:
            beyond = secs > limit_s
            secs = np.where(beyond, np.inf, secs)
            metres = np.where(beyond, np.inf, metres)
        return secs, metres

    def __call__(
        self, sources: np.ndarray, mode: str, target: tuple[float, float], limit_s: float | None
    ) -> tuple[FloatArray, FloatArray]:
        """The :class:`~citywatch.dispatch.policy.TravelFn` protocol, for the dispatch policy."""
        src = self.register(sources)
        tgt = int(self.register(np.asarray(target))[0])
        return self.by_key(src, mode, target, tgt, limit_s)

    def by_key(
        self,
        keys: np.ndarray,
        mode: str,
        target: tuple[float, float],
        target_key: Any,
        limit_s: float | None,
    ) -> tuple[FloatArray, FloatArray]:
        """The :class:`~citywatch.dispatch.policy.KeyedTravel` protocol: the same answer as the
        call with coordinates, for sources and target given by their location ids (the
        ``position_key`` of the dispatch views); ``target`` is not looked at."""
        return self.between(keys, int(target_key), mode, limit_s)
