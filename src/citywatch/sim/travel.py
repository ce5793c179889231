"""Precomputed travel for simulation: all-pairs node matrices per mode, exact like the Router.

A simulated year asks for hundreds of thousands of many-to-one travel times.  Instead of one
Dijkstra search per question (what :class:`citywatch.routing.Router` does for the live
service), :class:`MatrixTravel` runs scipy's compiled all-pairs Dijkstra once per travel mode and
keeps the node-to-node seconds and road metres as dense float32 matrices (Manhattan: 4,091
nodes, 67 MB per matrix).  A point is placed on its road segment exactly as the Router snaps it,
so a travel time is the minimum over the point's two segment ends and the target's two segment
ends, plus the straight run when both lie on the same segment: the Router's numbers, to float32
rounding.

Matrices are cached on disk (``sim/`` in :func:`citywatch.paths.cache_dir`: ``var/cache/sim`` in
the checkout) keyed by a hash of the mode graph, and opened memory-mapped, so parallel replication
processes share one copy in the page cache.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse.csgraph import dijkstra

from citywatch import paths
from citywatch.errors import ValidationError
from citywatch.routing import Router
from citywatch.routing.graph import ModeGraph, part_cost, segment_costs

__all__ = ["MatrixTravel", "cache_dir", "node_matrices"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def cache_dir() -> Path:
    """Where travel matrices are cached: ``sim/`` in :func:`citywatch.paths.cache_dir`."""
    return paths.cache_dir() / "sim"


def _graph_digest(g: ModeGraph) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    for arr in (g.seconds.indptr, g.seconds.indices, g.seconds.data, g.metres.data):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def _metres_along_paths(dist: FloatArray, pred: npt.NDArray[np.int32], g: ModeGraph) -> Any:
    """Road metres along every shortest-time path, from the all-pairs predecessor matrix.

    Nodes are visited in order of travel time from each source, so a node's predecessor is
    always done before it: one vectorised step per rank, over all sources at once.
    """
    n = dist.shape[0]
    coo = g.metres.tocoo()
    keys = coo.row.astype(np.int64) * n + coo.col.astype(np.int64)
    order_k = np.argsort(keys)
    keys, lengths = keys[order_k], coo.data[order_k]
    metres = np.full((n, n), np.inf, dtype=np.float32)
    order = np.argsort(dist, axis=1, kind="stable")
    rows = np.arange(n)
    metres[rows, rows] = 0.0
    for k in range(1, n):
        cols = order[:, k]
        p = pred[rows, cols].astype(np.int64)
        ok = p >= 0
        if not ok.any():
            break
        r, c, pp = rows[ok], cols[ok], p[ok]
        edge = np.searchsorted(keys, pp * n + c)
        metres[r, c] = metres[r, pp] + lengths[edge]
    return metres


def node_matrices(router: Router, mode: str, cache: Path | None = None) -> tuple[Any, Any]:
    """Seconds and metres from every node to every node in ``mode`` (float32, memory-mapped).

    Parameters
    ----------
    router : Router
        The router whose mode graph is used.
    mode : str
        Travel mode.
    cache : Path, optional
        Cache folder (default :func:`cache_dir`).

    Returns
    -------
    seconds, metres : ndarray, shape (n, n)
        ``[j, i]`` is the fastest travel *to* node ``j`` *from* node ``i`` (``inf`` if
        unreachable) and the road length of that path: stored by target so that "every unit to
        one incident" reads one contiguous row.
    """
    g = router.graph(mode)  # type: ignore[arg-type]
    folder = cache or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{mode}-{g.n_nodes}-{_graph_digest(g)}-to"
    sec_path, met_path = Path(f"{stem}.seconds.npy"), Path(f"{stem}.metres.npy")
    if not (sec_path.exists() and met_path.exists()):
        dist, pred = dijkstra(g.seconds, return_predecessors=True)
        metres = _metres_along_paths(dist, pred, g)
        # Write under a temporary name and rename, so a concurrent reader never sees half a file.
        for path, arr in ((sec_path, dist.T.astype(np.float32)), (met_path, metres.T.copy())):
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, arr)
            tmp.replace(path)
    # Plain ndarray views of the maps: numpy's memmap subclass slows every small gather.
    return (
        np.load(sec_path, mmap_mode="r").view(np.ndarray),
        np.load(met_path, mmap_mode="r").view(np.ndarray),
    )


@dataclass
class _ModeData:
    graph: ModeGraph
    seconds: Any
    metres: Any
    seg: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    frac: FloatArray = field(default_factory=lambda: np.zeros(0))


class MatrixTravel:
    """Exact network travel between registered points, from all-pairs node matrices.

    Points (posts, incident locations, patrol waypoints) are registered once with
    :meth:`register`, which snaps them for every mode like the Router does and returns location
    ids.  The object is a :class:`citywatch.dispatch.policy.TravelFn` (called with coordinates
    by the dispatch policy), a :class:`~citywatch.dispatch.policy.KeyedTravel` (:meth:`by_key`:
    location ids as position keys, no coordinate look-up) and also answers :meth:`between` for
    location ids directly.

    Build with :meth:`from_router` (or :meth:`from_pack`).
    """

    def __init__(self, router: Router, modes: dict[str, _ModeData]) -> None:
        self.router = router
        self._modes = modes
        self._ids: dict[tuple[float, ...], int] = {}
        self._lonlat = np.zeros((0, 2))
        #: Multiplier on every travel time (congestion); set by the simulator per hour.
        self.factor = 1.0

    @classmethod
    def from_router(
        cls, router: Router, modes: Iterable[str], cache: Path | None = None
    ) -> MatrixTravel:
        """Precompute (or load from the cache) the matrices of ``modes`` over ``router``."""
        data = {}
        for mode in sorted(set(modes)):
            seconds, metres = node_matrices(router, mode, cache)
            data[mode] = _ModeData(router.graph(mode), seconds, metres)  # type: ignore[arg-type]
        return cls(router, data)

    @classmethod
    def from_pack(cls, pack: Any, modes: Iterable[str], cache: Path | None = None) -> MatrixTravel:
        """Precompute the matrices of ``modes`` over a city pack's road network."""
        return cls.from_router(Router.from_pack(pack), modes, cache)

    @property
    def modes(self) -> tuple[str, ...]:
        """The travel modes with matrices."""
        return tuple(self._modes)

    @property
    def lonlat(self) -> FloatArray:
        """Coordinates of the registered locations, shape (n, 2)."""
        return self._lonlat

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
            for data in self._modes.values():
                snap = self.router.snap(arr, data.graph.mode)
                data.seg = np.concatenate([data.seg, snap.segment])
                data.frac = np.concatenate([data.frac, snap.fraction])
            start = len(self._lonlat)
            self._ids.update({k: start + i for i, k in enumerate(new)})
            self._lonlat = np.concatenate([self._lonlat, arr])
        return np.fromiter(map(ids.__getitem__, keys), dtype=np.int64, count=len(keys))

    def between(
        self, sources: npt.ArrayLike, target: int, mode: str
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
        """
        try:
            d = self._modes[mode]
        except KeyError:
            raise ValidationError(
                f"no travel matrix for mode {mode!r}; have {', '.join(self._modes)}"
            ) from None
        g = d.graph
        src = np.asarray(sources, dtype=np.int64)
        seg, f = d.seg[src], d.frac[src]
        tseg, tf = int(d.seg[target]), float(d.frac[target])
        ta, tb = int(g.seg_a[tseg]), int(g.seg_b[tseg])
        # Entering the target's segment at a, then driving forward; or at b, driving backward.
        ea_s, ea_m = part_cost(tf, g.seg_fwd_s[tseg]), part_cost(tf, g.seg_fwd_m[tseg])
        eb_s, eb_m = part_cost(1 - tf, g.seg_bwd_s[tseg]), part_cost(1 - tf, g.seg_bwd_m[tseg])

        def to_target(nodes: IntArray) -> tuple[FloatArray, FloatArray]:
            via_a = d.seconds[ta, nodes].astype(np.float64) + ea_s
            via_b = d.seconds[tb, nodes].astype(np.float64) + eb_s
            take_b = via_b < via_a  # ties go to a, as in the Router's search
            secs = np.where(take_b, via_b, via_a)
            metres = np.where(
                take_b,
                d.metres[tb, nodes].astype(np.float64) + eb_m,
                d.metres[ta, nodes].astype(np.float64) + ea_m,
            )
            return secs, metres

        secs, metres, _, _ = segment_costs(
            g,
            seg,
            f,
            to_target(g.seg_a[seg]),
            to_target(g.seg_b[seg]),
            (tseg, tf),
            reverse=True,
        )
        return secs * self.factor, metres

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
        secs, metres = self.between(keys, int(target_key), mode)
        if limit_s is not None:
            beyond = secs > limit_s
            secs = np.where(beyond, np.inf, secs)
            metres = np.where(beyond, np.inf, metres)
        return secs, metres
