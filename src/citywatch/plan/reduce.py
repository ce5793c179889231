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

Dominance is found with one sparse product: ``(C^T C)[j, k]`` counts the rows ``j`` and ``k``
share, and ``j`` is dominated by ``k`` when that count equals the size of ``N(j)``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = ["dominated_sites"]


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
    removed = size == 0
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
