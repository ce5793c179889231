"""One bounded Dijkstra search from a point on an edge, touching only the nodes it reaches.

A point lies part-way along a segment, so a search from it starts at two nodes with two
different offsets (seconds and metres).  scipy's ``dijkstra`` takes start nodes but no start
offsets, and with ``limit`` still allocates, fills and returns arrays of the network's size: at
177k nodes that costs more than the few thousand nodes a 3-minute search reaches.  The search
here is a binary-heap Dijkstra compiled with numba over the graph's CSR arrays, started from the
entries with their offsets, writing into buffers kept between searches: only the nodes it
reaches are written, and only those are reset afterwards.  Road metres follow the fastest
path's tree, carried along as each node's time improves (the metres of its final predecessor).

Equal to scipy's ``dijkstra(..., limit=)`` (a node is reached when its time is at most the
limit) and to networkx: tests/routing compare them on every pack.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numba
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = ["Entries", "SearchGraph", "SearchTree"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
T = TypeVar("T")

#: The starts of a search: nodes, seconds and metres to reach each of them.
Entries = tuple[IntArray, FloatArray, FloatArray]

#: Predecessor of a search's start nodes (the point searched from) and of unreached nodes.
ROOT, UNREACHED = -1, -9999


@numba.njit(cache=True)
def _dijkstra(  # pragma: no cover - compiled
    indptr: npt.NDArray[np.int32],
    indices: npt.NDArray[np.int32],
    secs: FloatArray,
    mets: FloatArray,
    start: IntArray,
    start_s: FloatArray,
    start_m: FloatArray,
    limit: float,
    dist: FloatArray,
    metres: FloatArray,
    pred: IntArray,
    touched: IntArray,
    heap_key: FloatArray,
    heap_node: IntArray,
) -> int:
    """Fill ``dist``/``metres``/``pred`` (all unset on entry) and return how many nodes were
    touched (listed in ``touched``).  A lazy-deletion binary heap: a node is pushed each time its
    time strictly improves, stale heap items are skipped when popped."""
    n_touched = 0
    size = 0
    for i in range(len(start)):
        v = start[i]
        if start_s[i] <= limit and start_s[i] < dist[v]:
            if dist[v] == np.inf:
                touched[n_touched] = v
                n_touched += 1
            dist[v], metres[v], pred[v] = start_s[i], start_m[i], -1
            # push (sift up)
            j = size
            size += 1
            while j > 0:
                parent = (j - 1) >> 1
                if heap_key[parent] <= start_s[i]:
                    break
                heap_key[j], heap_node[j] = heap_key[parent], heap_node[parent]
                j = parent
            heap_key[j], heap_node[j] = start_s[i], v
    while size > 0:
        d, u = heap_key[0], heap_node[0]
        # pop (sift the last item down from the root)
        size -= 1
        last_k, last_n = heap_key[size], heap_node[size]
        j = 0
        while True:
            c = 2 * j + 1
            if c >= size:
                break
            if c + 1 < size and heap_key[c + 1] < heap_key[c]:
                c += 1
            if heap_key[c] >= last_k:
                break
            heap_key[j], heap_node[j] = heap_key[c], heap_node[c]
            j = c
        heap_key[j], heap_node[j] = last_k, last_n
        if d > dist[u]:
            continue  # stale: u was settled earlier with a smaller time
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            nd = d + secs[e]
            if nd <= limit and nd < dist[v]:
                if dist[v] == np.inf:
                    touched[n_touched] = v
                    n_touched += 1
                dist[v], metres[v], pred[v] = nd, metres[u] + mets[e], u
                j = size
                size += 1
                while j > 0:
                    parent = (j - 1) >> 1
                    if heap_key[parent] <= nd:
                        break
                    heap_key[j], heap_node[j] = heap_key[parent], heap_node[parent]
                    j = parent
                heap_key[j], heap_node[j] = nd, v
    return n_touched


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
        self._indptr = np.ascontiguousarray(seconds.indptr, dtype=np.int32)
        self._indices = np.ascontiguousarray(seconds.indices, dtype=np.int32)
        self._secs = np.ascontiguousarray(seconds.data, dtype=np.float64)
        self._mets = np.ascontiguousarray(metres.data, dtype=np.float64)
        self._dist = np.full(n, np.inf)
        self._metres = np.full(n, np.inf)
        self._pred = np.full(n, UNREACHED, dtype=np.int64)
        self._touched = np.empty(n, dtype=np.int64)
        # A node is pushed once per strict improvement: at most once per edge, plus the starts.
        self._heap_key = np.empty(len(self._secs) + 2)
        self._heap_node = np.empty(len(self._secs) + 2, dtype=np.int64)
        self._lock = threading.Lock()

    def search(self, entries: Entries, limit_s: float | None, read: Callable[[SearchTree], T]) -> T:
        """One Dijkstra search from ``entries``; returns ``read(tree)``.

        Entries with infinite cost are never reached; two entries onto one node keep the faster.
        The buffers are reset after ``read`` returns, so ``read`` must copy what it keeps (numpy
        fancy indexing does).  A lock keeps concurrent searches of one graph apart.
        """
        start, start_s, start_m = entries
        limit = np.inf if limit_s is None else float(limit_s)
        with self._lock:
            count = _dijkstra(
                self._indptr,
                self._indices,
                self._secs,
                self._mets,
                start,
                start_s,
                start_m,
                limit,
                self._dist,
                self._metres,
                self._pred,
                self._touched,
                self._heap_key,
                self._heap_node,
            )
            touched = self._touched[:count]
            try:
                return read(SearchTree(self._dist, self._metres, self._pred, touched))
            finally:
                self._dist[touched] = np.inf
                self._metres[touched] = np.inf
                self._pred[touched] = UNREACHED
