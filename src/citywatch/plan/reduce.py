"""Exact reductions of the maximal covering model before it goes to HiGHS.

Three rules shrink an MCLP (:class:`citywatch.plan.coverage.MCLP`) without changing its optimum
(the MEXCLP and backup models count second covers, so only the first and the last rule hold
for them, and only the last is applied there):

* **Fixed sites.**  A demand row covered by a fixed site is covered whatever else is chosen:
  its weight is a constant and the row leaves the model; the fixed sites leave with it and
  the number of units to place drops by their count.
* **Dominated and identical sites.**  Site ``j`` is dominated by site ``k`` when every row ``j``
  covers is also covered by ``k`` (``N(j) ⊆ N(k)``); among identical sites the one with the
  lowest index is kept.  Some optimum uses no dominated site: swap it for its dominator, or,
  when the dominator is already chosen, for any unchosen site (the dominated site added
  nothing).  "Dominated by" is a strict partial order, so every removed site has a kept
  dominator (follow the chain to a maximal element) and all removals can be made at once.
  When no more sites are kept than units to place, choosing all kept sites covers every
  coverable row: that is an optimum without a solve.
* **Single-site rows.**  A row that exactly one site covers is covered exactly when that site
  is chosen, so its weight moves onto the site's objective coefficient and its row and
  cover variable disappear (:meth:`citywatch.plan.coverage._LevelCoverage._build`); the LP
  relaxation is unchanged too, since ``y_i <= x_j`` is tight at every optimum.

Before all of them, demand rows with the same covering set are merged into one row of summed
weight (:func:`merge_identical_rows`, used by every coverage model).

Dominance is found with one sparse product: ``(C^T C)[j, k]`` counts the rows ``j`` and ``k``
share, and ``j`` is dominated by ``k`` when that count equals the size of ``N(j)``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = ["dominated_sites", "lagrangian_fixing", "merge_identical_rows"]


def merge_identical_rows(cover: sp.csr_array) -> tuple[sp.csr_array, np.ndarray]:
    """Merge rows of a 0/1 matrix that have the same set of non-zero columns.

    Parameters
    ----------
    cover : scipy.sparse.csr_array
        Demand-by-site coverage matrix.

    Returns
    -------
    merged : scipy.sparse.csr_array
        One row per distinct non-empty column set.
    row_of : numpy.ndarray
        For each original row, the index of its merged row, or -1 when the row is empty.
    """
    cover = sp.csr_array(cover)
    cover.sort_indices()
    keys: dict[bytes, int] = {}
    row_of = np.full(cover.shape[0], -1, dtype=np.int64)
    first: list[int] = []
    indptr, indices = cover.indptr, cover.indices
    for i in range(cover.shape[0]):
        start, end = indptr[i], indptr[i + 1]
        if start == end:
            continue
        key = indices[start:end].tobytes()
        row = keys.get(key)
        if row is None:
            row = keys[key] = len(first)
            first.append(i)
        row_of[i] = row
    merged = sp.csr_array(cover[np.asarray(first, dtype=np.int64)], dtype=np.float64)
    merged.data[:] = 1.0
    return merged, row_of


def dominated_sites(cover: sp.csr_array | sp.csc_array) -> npt.NDArray[np.bool_]:
    """Mask of the sites (columns) that another kept site dominates (module docstring).

    Parameters
    ----------
    cover : scipy.sparse.csr_array or csc_array
        Demand-by-site 0/1 coverage matrix (non-zero = covers), rows with positive weight only.

    Returns
    -------
    numpy.ndarray
        ``True`` for the sites that can be removed: columns covering nothing, columns whose row
        set is a strict subset of another's, and all but the lowest-index column of each group
        of identical columns.  At least one column is always kept.
    """
    c = sp.csc_array(cover, dtype=np.float64)
    c.sum_duplicates()
    c.data[:] = 1.0
    m = c.shape[1]
    size = np.diff(c.indptr)
    removed: npt.NDArray[np.bool_] = np.asarray(size == 0, dtype=bool)
    if c.nnz:
        overlap = sp.coo_array(c.T @ c)
        j, k, shared = overlap.row, overlap.col, overlap.data
        dominated = (
            (j != k)
            & (np.rint(shared).astype(np.int64) == size[j])
            & ((size[k] > size[j]) | (k < j))
        )
        removed[j[dominated]] = True
    if removed.all() and m:
        removed[0] = False
    return removed


def lagrangian_fixing(
    cover: sp.csr_array,
    weights: npt.NDArray[np.float64],
    units: int,
    lower_bound: float,
    *,
    iterations: int = 600,
) -> tuple[npt.NDArray[np.bool_], float]:
    """Sites that no optimal MCLP selection uses, proven by Lagrangian bounds.

    Relaxing the cover rows ``y_i <= sum_{j in N_i} x_j`` with multipliers ``0 <= u_i <= w_i``
    gives the bound ``L(u) = sum_i (w_i - u_i) + (sum of the units largest c_j)``, where
    ``c_j = sum_{i in N_j} u_i``, on every selection; forcing a site ``j`` that is not among the
    largest into the selection bounds every selection that holds ``j`` by
    ``L(u) - c_(units) + c_j``.  When that is below ``lower_bound`` (the value of a known
    selection, e.g. the greedy one) no selection holding ``j`` is as good as the known one,
    so ``j`` is in no optimum and can be left out.  The multipliers follow subgradient steps
    (Polyak's rule towards ``lower_bound``, the step factor halved when the bound stalls);
    every iterate's bounds are valid, and each site keeps its smallest.

    Parameters
    ----------
    cover : scipy.sparse.csr_array
        Rows by sites, 0/1 (rows of positive weight).
    weights : numpy.ndarray
        Row weights.
    units : int
        Sites to choose.
    lower_bound : float
        Value of a feasible selection.
    iterations : int
        Subgradient steps.

    Returns
    -------
    excluded : numpy.ndarray
        ``True`` for the sites proven to be in no optimal selection.
    bound : float
        The best Lagrangian upper bound on the optimum.
    """
    c = sp.csr_array(cover, dtype=np.float64)
    ct = sp.csr_array(c.T)
    m = c.shape[1]
    w = np.asarray(weights, dtype=np.float64)
    if units >= m:
        return np.zeros(m, dtype=bool), float(w.sum())
    u = w.copy()
    best = np.inf
    site_bound = np.full(m, np.inf)
    theta, stall = 2.0, 0
    tolerance = 1e-9 * max(abs(lower_bound), 1.0)
    for _ in range(iterations):
        value = ct @ u
        top = np.argpartition(-value, units - 1)[:units]
        pth = value[top].min()
        bound = float((w - u).sum() + value[top].sum())
        forced = bound - pth + value
        forced[top] = bound
        np.minimum(site_bound, forced, out=site_bound)
        if bound < best - tolerance:
            best, stall = bound, 0
        else:
            stall += 1
            if stall >= 20:
                theta, stall = theta / 2.0, 0
        if best - lower_bound <= tolerance or theta < 1e-6:
            break
        chosen = np.zeros(m)
        chosen[top] = 1.0
        grad = (c @ chosen) - (w > u)
        norm = float(grad @ grad)
        if norm == 0.0:
            break
        u = np.clip(u - theta * (bound - lower_bound) / norm * grad, 0.0, w)
    excluded: npt.NDArray[np.bool_] = site_bound < lower_bound - tolerance
    return excluded, best
