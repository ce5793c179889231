"""One Dijkstra search from a point on an edge, and road metres for the nodes asked about only.

A point lies part-way along a segment, so a search from it starts at two nodes with two
different offsets.  scipy's ``dijkstra`` takes start nodes but no start offsets; instead of two
searches (one per end) merged node by node, the point is joined to the graph as a **virtual
source**: one extra node whose two out-edges carry the offsets.  The compiled matrix has that
node's row reserved (two slots at the end of the CSR arrays), so joining a point is writing four
numbers, not rebuilding the matrix; a lock keeps concurrent queries of one graph apart.

Distances in metres follow the fastest path's tree.  They are summed by walking the predecessor
tree up from the nodes asked about (numba, memoised per search): the cost is the length of their
paths, not the size of the network.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numba
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

__all__ = ["Entry", "SearchTree", "VirtualSourceGraph"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: A start of a search: (node, seconds to reach it, metres to reach it).
Entry = tuple[int, float, float]


@dataclass(frozen=True)
class SearchTree:
    """The result of one search: seconds to every node (``inf`` beyond the limit) and the
    predecessor tree (``virtual`` is the point searched from)."""

    seconds: FloatArray
    pred: IntArray
    virtual: int
    entries: tuple[Entry, ...]
    graph: VirtualSourceGraph

    def metres(self, nodes: IntArray) -> FloatArray:
        """Road metres along the fastest path to each of ``nodes`` (``inf`` where unreached)."""
        nodes = np.asarray(nodes, dtype=np.int64)
        entry_nodes = np.array([e[0] for e in self.entries], dtype=np.int64)
        entry_m = np.array([e[2] for e in self.entries], dtype=np.float64)
        entry_s = np.array([e[1] for e in self.entries], dtype=np.float64)
        m = self.graph.metres
        return np.asarray(
            _metres_up(
                self.pred,
                self.seconds,
                m.indptr,
                m.indices,
                m.data,
                self.virtual,
                entry_nodes,
                entry_s,
                entry_m,
                nodes,
            )
        )


@numba.njit(cache=True)
def _metres_up(  # pragma: no cover - compiled
    pred: IntArray,
    seconds: FloatArray,
    indptr: npt.NDArray[np.int32],
    indices: npt.NDArray[np.int32],
    data: FloatArray,
    virtual: int,
    entry_nodes: IntArray,
    entry_s: FloatArray,
    entry_m: FloatArray,
    nodes: IntArray,
) -> FloatArray:
    n = len(pred)
    memo = np.full(n, np.nan)
    stack = np.empty(n, dtype=np.int64)
    out = np.empty(len(nodes))
    for i in range(len(nodes)):
        v = nodes[i]
        if not np.isfinite(seconds[v]):
            out[i] = np.inf
            continue
        depth = 0
        while v != virtual and v >= 0 and np.isnan(memo[v]):
            stack[depth] = v
            depth += 1
            v = pred[v]
        acc = memo[v] if 0 <= v != virtual else 0.0
        for j in range(depth - 1, -1, -1):
            w = stack[j]
            p = pred[w]
            step = np.inf
            if p == virtual:  # the cheapest entry onto w (the one the search took)
                best = np.inf
                for k in range(len(entry_nodes)):
                    if entry_nodes[k] == w and entry_s[k] < best:
                        best = entry_s[k]
                        step = entry_m[k]
            elif p >= 0:
                for k in range(indptr[p], indptr[p + 1]):
                    if indices[k] == w:
                        step = data[k]
                        break
            else:  # the start of a search without a virtual source
                step = 0.0
            acc += step
            memo[w] = acc
        out[i] = acc
    return out


@dataclass
class VirtualSourceGraph:
    """A sparse graph (seconds and metres with one pattern) with a reserved virtual source.

    Parameters
    ----------
    seconds, metres : scipy.sparse.csr_array
        ``n x n`` weights of the search direction (the reversed graph for searches to a point).
    """

    seconds_n: sp.csr_array
    metres: sp.csr_array
    _matrix: sp.csr_matrix = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        n = int(self.seconds_n.shape[0])
        s = self.seconds_n
        # Row n (the virtual source) owns the last two slots of the CSR arrays.
        data = np.concatenate([s.data.astype(np.float64), [np.inf, np.inf]])
        indices = np.concatenate([s.indices.astype(np.int32), np.array([n, n], dtype=np.int32)])
        indptr = np.concatenate([s.indptr.astype(np.int32), [len(data)]]).astype(np.int32)
        indptr[n] = len(s.data)
        self._matrix = sp.csr_matrix((data, indices, indptr), shape=(n + 1, n + 1))
        self._slots = len(s.data)

    @property
    def n_nodes(self) -> int:
        """Nodes of the graph, not counting the virtual source."""
        return int(self.seconds_n.shape[0])

    def search(self, entries: list[Entry], limit_s: float | None) -> SearchTree:
        """One Dijkstra search from a virtual source joined to the ``entries``.

        Entries with infinite cost are dropped; two entries onto one node keep the faster.
        """
        n = self.n_nodes
        usable: dict[int, Entry] = {}
        for node, secs, metres in entries:
            if np.isfinite(secs) and (node not in usable or secs < usable[node][1]):
                usable[node] = (node, secs, metres)
        kept = tuple(usable.values())
        limit = np.inf if limit_s is None else float(limit_s)
        with self._lock:
            m = self._matrix
            for slot in range(2):
                node, secs = (kept[slot][0], kept[slot][1]) if slot < len(kept) else (n, np.inf)
                m.indices[self._slots + slot] = node
                m.data[self._slots + slot] = secs
            dist, pred = dijkstra(m, indices=n, return_predecessors=True, limit=limit)
        seconds = np.asarray(dist[:n], dtype=np.float64)
        return SearchTree(seconds, np.asarray(pred, dtype=np.int64), n, kept, self)
