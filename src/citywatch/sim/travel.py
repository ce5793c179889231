"""Travel for simulation: compiled bounded searches from each target, exact like the Router.

A simulated year asks for hundreds of thousands of "every available unit to this incident"
questions.  :class:`SearchTravel` answers each with one compiled Dijkstra search per travel mode
over the reversed road graph, seeded at the target's two segment ends exactly as the Router
enters a snapped point, and stopped at a time bound: the simulator's dispatch asks for a small
bound first and widens it only when the policy's answer is not decided yet
(:func:`citywatch.dispatch.kernel.rank_units`).  Nothing is quadratic in the network: the
search state is a few arrays of one entry per node, and the trees that give each unit's trip
back to its post (one full search per post and mode, :func:`home_tree`) grow with
``posts x nodes``.

A point's travel time is the minimum over its two segment ends of the part of its segment to
that end plus the end's searched time (or the straight run when it shares the target's
segment): the Router's arithmetic, in float64.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from typing import Any, NamedTuple

import numba
import numpy as np
import numpy.typing as npt

from citywatch.errors import ValidationError
from citywatch.routing import Router

__all__ = ["Graphs", "Scratch", "SearchTravel", "home_tree", "point_cost", "search_to"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_jit: Any = numba.njit(cache=True, nogil=True)


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


class Scratch(NamedTuple):
    """Per-node search state, reused by every search (``gen[0]`` stamps the current one)."""

    dist_s: FloatArray
    dist_m: FloatArray
    done: IntArray
    seen: IntArray
    gen: IntArray


def new_scratch(n_nodes: int) -> Scratch:
    """Search state for a network of ``n_nodes`` nodes."""
    return Scratch(
        np.zeros(n_nodes),
        np.zeros(n_nodes),
        np.zeros(n_nodes, np.int64),
        np.zeros(n_nodes, np.int64),
        np.zeros(1, np.int64),
    )


@_jit
def _part(fraction: float, cost: float) -> float:
    # A point exactly at a node is at that node, even where the direction is not allowed.
    return 0.0 if fraction == 0.0 else fraction * cost


@_jit
def search_to(g: Graphs, m: int, seg: int, frac: float, bound: float, sc: Scratch) -> None:
    """Dijkstra towards the point at ``frac`` of segment ``seg`` in mode ``m``, every node
    whose time to the point is at most ``bound`` settled (``inf``: the whole network)."""
    sc.gen[0] += 1
    gen = sc.gen[0]
    heap = [(0.0, np.int64(0))]
    heap.pop()
    a, b = g.seg_a[seg], g.seg_b[seg]
    # Enter the segment at a and drive forward, or at b and drive backward.
    for node, x, cost_s, cost_m in (
        (a, frac, g.fwd_s[seg], g.fwd_m[seg]),
        (b, 1.0 - frac, g.bwd_s[seg], g.bwd_m[seg]),
    ):
        s = _part(x, cost_s)
        if math.isfinite(s) and (sc.seen[node] != gen or s < sc.dist_s[node]):
            sc.seen[node] = gen
            sc.dist_s[node] = s
            sc.dist_m[node] = _part(x, cost_m)
            heapq.heappush(heap, (s, node))
    while heap:
        d, v = heapq.heappop(heap)
        if sc.done[v] == gen:
            continue
        if d > bound:
            break
        sc.done[v] = gen
        dm = sc.dist_m[v]
        for e in range(g.ptr[m, v], g.ptr[m, v + 1]):
            u = g.src[e]
            if sc.done[u] == gen:
                continue
            nd = d + g.sec[e]
            if sc.seen[u] != gen or nd < sc.dist_s[u]:
                sc.seen[u] = gen
                sc.dist_s[u] = nd
                sc.dist_m[u] = dm + g.met[e]
                heapq.heappush(heap, (nd, u))


@_jit
def point_cost(
    g: Graphs,
    seg: int,
    frac: float,
    at_a: tuple[float, float],
    at_b: tuple[float, float],
    tseg: int,
    tfrac: float,
) -> tuple[float, float]:
    """Seconds and metres from the point at ``frac`` of ``seg`` to the target, given the times
    (and metres) from its segment's ends ``a`` and ``b`` to the target."""
    via_b_s = _part(1.0 - frac, g.fwd_s[seg]) + at_b[0]
    via_a_s = _part(frac, g.bwd_s[seg]) + at_a[0]
    if via_a_s < via_b_s:
        secs, metres = via_a_s, _part(frac, g.bwd_m[seg]) + at_a[1]
    else:
        secs, metres = via_b_s, _part(1.0 - frac, g.fwd_m[seg]) + at_b[1]
    if seg == tseg:  # straight along the shared segment, when that is quicker
        if tfrac >= frac:
            ds, dm = _part(tfrac - frac, g.fwd_s[seg]), _part(tfrac - frac, g.fwd_m[seg])
        else:
            ds, dm = _part(frac - tfrac, g.bwd_s[seg]), _part(frac - tfrac, g.bwd_m[seg])
        if ds < secs:
            secs, metres = ds, dm
    return secs, metres


@_jit
def searched(sc: Scratch, node: int) -> tuple[float, float]:
    """Seconds and metres from ``node`` to the last search's target (``inf`` if not settled)."""
    if sc.done[node] == sc.gen[0]:
        return sc.dist_s[node], sc.dist_m[node]
    return math.inf, math.inf


@_jit
def cost_from_search(
    g: Graphs, sc: Scratch, seg: int, frac: float, tseg: int, tfrac: float, bound: float
) -> tuple[float, float]:
    """Seconds and metres from a point to the last search's target; ``inf`` when the trip is
    longer than the search's ``bound`` (not known exactly)."""
    s, m = point_cost(
        g, seg, frac, searched(sc, g.seg_a[seg]), searched(sc, g.seg_b[seg]), tseg, tfrac
    )
    if s > bound:
        return math.inf, math.inf
    return s, m


@_jit
def home_tree(g: Graphs, m: int, seg: int, frac: float, sc: Scratch, out: FloatArray) -> None:
    """Seconds from every node to a point (a unit's post): one full search, kept in ``out``."""
    search_to(g, m, seg, frac, math.inf, sc)
    gen = sc.gen[0]
    for v in range(len(out)):
        out[v] = sc.dist_s[v] if sc.done[v] == gen else math.inf


@_jit
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
    secs = np.empty(len(src_seg))
    metres = np.empty(len(src_seg))
    for i in range(len(src_seg)):
        secs[i], metres[i] = cost_from_search(g, sc, src_seg[i], src_frac[i], tseg, tfrac, bound)
    return secs, metres


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
        self.scratch = new_scratch(self.graphs.ptr.shape[1] - 1)
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
        keys = list(map(tuple, pts.tolist()))
        ids = self._ids
        new = list(dict.fromkeys(k for k in keys if k not in ids))
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
