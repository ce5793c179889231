"""The one compiled Dijkstra search of CityWatch: bounded, resumable, touching only what it reaches.

A point lies part-way along a segment, so a search from (or to) it starts at two nodes with two
different offsets (seconds and metres).  scipy's ``dijkstra`` takes start nodes but no start
offsets, and with ``limit`` still allocates, fills and returns arrays of the network's size: at
177k nodes that costs more than the few thousand nodes a 3-minute search reaches.  The search
here is a binary-heap Dijkstra compiled with numba over a graph's CSR arrays, started from the
entries with their offsets, writing into a :class:`SearchState` kept between searches: only
the nodes it reaches are written, and only those are cleared when the next search starts.
Road metres follow the fastest path's tree, carried along as each node's time improves (the
metres of its final predecessor).

The same three compiled functions serve everyone:

* the live service's :class:`~citywatch.routing.Router` (through :class:`SearchGraph`: one
  search per question, pruned at the limit);
* the simulator (:mod:`citywatch.sim.travel`, :mod:`citywatch.sim.loop`), which keeps one
  state row per travel mode, **resumes** a search with a wider bound while the dispatch
  kernel's answer is not decided yet, and keeps the settled nodes (in settle order) per
  incident location.

:func:`search_start` clears the state and pushes the entries, :func:`search_until` settles every
node within a bound (resumable when not pruned), :func:`search_reset` clears it.  Equal to scipy's
``dijkstra(..., limit=)`` (a node is reached when its time is at most the limit) and to networkx:
tests/routing compare them on every pack.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import numba
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = [
    "ROOT",
    "UNREACHED",
    "Entries",
    "SearchGraph",
    "SearchState",
    "SearchTree",
    "new_search_state",
    "search_reset",
    "search_start",
    "search_until",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
T = TypeVar("T")

#: The starts of a search: nodes, seconds and metres to reach each of them.
Entries = tuple[IntArray, FloatArray, FloatArray]

#: Predecessor of a search's start nodes (the point searched from) and of unreached nodes.
ROOT, UNREACHED = -1, -9999

# Columns of SearchState.sizes.
_TOUCHED, _HEAP, _SETTLED = 0, 1, 2


class SearchState(NamedTuple):
    """The buffers of searches over one network, one row per concurrent search (e.g. per mode).

    Row ``r`` holds one search: ``dist``/``metres``/``pred`` of every node it touched (``inf``,
    ``inf``, :data:`UNREACHED` elsewhere), the nodes it touched (``touched[r, :sizes[r, 0]]``,
    for the cheap reset), its heap (``sizes[r, 1]`` items) and the nodes settled so far in the
    order they were settled, i.e. nondecreasing time (``settled[r, :sizes[r, 2]]``).
    """

    dist: FloatArray
    metres: FloatArray
    pred: IntArray
    touched: IntArray
    settled: IntArray
    heap_key: FloatArray
    heap_node: IntArray
    sizes: IntArray


def new_search_state(rows: int, n_nodes: int, heap_size: int) -> SearchState:
    """Empty buffers for ``rows`` searches over ``n_nodes`` nodes.

    ``heap_size`` must be at least the number of edges plus the entries: a node is pushed once
    per strict improvement of its time, at most once per edge into it.
    """
    return SearchState(
        np.full((rows, n_nodes), np.inf),
        np.full((rows, n_nodes), np.inf),
        np.full((rows, n_nodes), UNREACHED, np.int64),
        np.zeros((rows, n_nodes), np.int64),
        np.zeros((rows, n_nodes), np.int64),
        np.zeros((rows, heap_size)),
        np.zeros((rows, heap_size), np.int64),
        np.zeros((rows, 3), np.int64),
    )


@numba.njit(cache=True, nogil=True)
def _push(key: FloatArray, node: IntArray, size: int, k: float, v: int) -> int:  # pragma: no cover
    j = size
    while j > 0:
        parent = (j - 1) >> 1
        if key[parent] <= k:
            break
        key[j], node[j] = key[parent], node[parent]
        j = parent
    key[j], node[j] = k, v
    return size + 1


@numba.njit(cache=True, nogil=True)
def search_reset(st: SearchState, r: int) -> None:  # pragma: no cover - compiled
    """Clear row ``r``: only the nodes its last search touched are written."""
    dist, metres, pred, touched = st.dist[r], st.metres[r], st.pred[r], st.touched[r]
    for j in range(st.sizes[r, _TOUCHED]):
        v = touched[j]
        dist[v] = np.inf
        metres[v] = np.inf
        pred[v] = UNREACHED
    st.sizes[r, _TOUCHED] = 0
    st.sizes[r, _HEAP] = 0
    st.sizes[r, _SETTLED] = 0


@numba.njit(cache=True, nogil=True)
def search_start(
    st: SearchState,
    r: int,
    start: IntArray,
    start_s: FloatArray,
    start_m: FloatArray,
    bound: float,
) -> None:  # pragma: no cover - compiled
    """Begin a new search in row ``r`` from the entries (nodes, seconds, metres).

    Entries with infinite time, or beyond ``bound`` (``inf`` for a search to be resumed), are
    not pushed; two entries onto one node keep the faster.
    """
    search_reset(st, r)
    dist, metres, pred, touched = st.dist[r], st.metres[r], st.pred[r], st.touched[r]
    key, node = st.heap_key[r], st.heap_node[r]
    n_touched = 0
    size = 0
    for i in range(len(start)):
        v = start[i]
        s = start_s[i]
        if s <= bound and s < dist[v]:
            if dist[v] == np.inf:
                touched[n_touched] = v
                n_touched += 1
            dist[v], metres[v], pred[v] = s, start_m[i], ROOT
            size = _push(key, node, size, s, v)
    st.sizes[r, _TOUCHED] = n_touched
    st.sizes[r, _HEAP] = size


@numba.njit(cache=True, nogil=True)
def search_until(
    indptr: IntArray,
    indices: IntArray,
    secs: FloatArray,
    mets: FloatArray,
    st: SearchState,
    r: int,
    bound: float,
    prune: bool,
) -> None:  # pragma: no cover - compiled
    """Settle every node of row ``r``'s search within ``bound`` seconds.

    ``indptr``/``indices``/``secs``/``mets`` are the CSR arrays of the search direction
    (``indptr`` may be a row of stacked graphs whose ``indices`` hold every mode's edges).
    ``prune``: never push beyond ``bound`` (the search is final and touches only what it
    reaches); otherwise the items beyond stay on the heap and a later call with a larger bound
    continues exactly where this one stopped.  A lazy-deletion heap: a node is pushed each time
    its time strictly improves, stale items are skipped when popped.
    """
    dist, metres, pred, touched = st.dist[r], st.metres[r], st.pred[r], st.touched[r]
    settled = st.settled[r]
    key, node = st.heap_key[r], st.heap_node[r]
    n_touched, size, n_settled = st.sizes[r, _TOUCHED], st.sizes[r, _HEAP], st.sizes[r, _SETTLED]
    while size > 0 and key[0] <= bound:
        d, u = key[0], node[0]
        # pop: sift the last item down from the root
        size -= 1
        last_k, last_n = key[size], node[size]
        j = 0
        while True:
            c = 2 * j + 1
            if c >= size:
                break
            if c + 1 < size and key[c + 1] < key[c]:
                c += 1
            if key[c] >= last_k:
                break
            key[j], node[j] = key[c], node[c]
            j = c
        key[j], node[j] = last_k, last_n
        if d > dist[u]:
            continue  # stale: u was settled earlier with a smaller time
        settled[n_settled] = u
        n_settled += 1
        du, mu = d, metres[u]
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            nd = du + secs[e]
            if nd < dist[v] and (nd <= bound or not prune):
                if dist[v] == np.inf:
                    touched[n_touched] = v
                    n_touched += 1
                dist[v], metres[v], pred[v] = nd, mu + mets[e], u
                size = _push(key, node, size, nd, v)
    st.sizes[r, _TOUCHED] = n_touched
    st.sizes[r, _HEAP] = size
    st.sizes[r, _SETTLED] = n_settled


@dataclass(frozen=True)
class SearchTree:
    """A finished search, readable only inside :meth:`SearchGraph.search`'s ``read`` callback
    (its arrays are the graph's reused buffers)."""

    dist: FloatArray
    metres_to: FloatArray
    pred: IntArray
    touched: IntArray

    def seconds(self, nodes: IntArray) -> FloatArray:
        """Seconds to each of ``nodes`` (``inf`` where unreached or beyond the limit)."""
        return self.dist[nodes]

    def metres(self, nodes: IntArray) -> FloatArray:
        """Road metres along the fastest path to each of ``nodes`` (``inf`` where unreached)."""
        return self.metres_to[nodes]

    def all_seconds(self) -> FloatArray:
        """A copy of the seconds to every node."""
        return self.dist.copy()

    def all_metres(self) -> FloatArray:
        """A copy of the metres to every node."""
        return self.metres_to.copy()

    def path_to(self, node: int) -> list[int]:
        """Nodes of the fastest path from the search's start to ``node`` (reached), in order."""
        path = [int(node)]
        pred = self.pred
        while pred[path[-1]] != ROOT:
            path.append(int(pred[path[-1]]))
        path.reverse()
        return path


class SearchGraph:
    """A sparse graph (seconds and metres with one sparsity pattern) with reusable search buffers.

    Parameters
    ----------
    seconds, metres : scipy.sparse.csr_array
        ``n x n`` weights of the search direction (the reversed graph for searches to a point).
    """

    def __init__(self, seconds: sp.csr_array, metres: sp.csr_array) -> None:
        n = int(seconds.shape[0])
        self.n_nodes = n
        self._indptr = np.ascontiguousarray(seconds.indptr, dtype=np.int64)
        self._indices = np.ascontiguousarray(seconds.indices, dtype=np.int64)
        self._secs = np.ascontiguousarray(seconds.data, dtype=np.float64)
        self._mets = np.ascontiguousarray(metres.data, dtype=np.float64)
        self._state = new_search_state(1, n, len(self._secs) + 2)
        self._lock = threading.Lock()

    def search(self, entries: Entries, limit_s: float | None, read: Callable[[SearchTree], T]) -> T:
        """One Dijkstra search from ``entries``; returns ``read(tree)``.

        Entries with infinite cost are never reached; two entries onto one node keep the faster.
        The buffers are cleared when the next search starts, so ``read`` must copy what it keeps
        (numpy fancy indexing does).  A lock keeps concurrent searches of one graph apart.
        """
        start, start_s, start_m = entries
        limit = np.inf if limit_s is None else float(limit_s)
        st = self._state
        with self._lock:
            search_start(
                st,
                0,
                np.ascontiguousarray(start, dtype=np.int64),
                np.ascontiguousarray(start_s, dtype=np.float64),
                np.ascontiguousarray(start_m, dtype=np.float64),
                limit,
            )
            search_until(self._indptr, self._indices, self._secs, self._mets, st, 0, limit, True)
            touched = st.touched[0, : st.sizes[0, _TOUCHED]]
            return read(SearchTree(st.dist[0], st.metres[0], st.pred[0], touched))
