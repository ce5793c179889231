"""Greedy construction plus swap local search for MCLP, MEXCLP and backup coverage.

For instances too large to solve exactly.  The value of a selection is ``sum_i w_i g(c_i)``
where ``c_i`` counts the selected sites covering point ``i`` (see
:class:`citywatch.plan.coverage.MCLP`).  The heuristic reports its gap to the LP-relaxation
bound, which HiGHS computes quickly even when the integer programme is hard.

* Greedy adding (Church & ReVelle 1974): add the site with the largest marginal gain.
* Vertex substitution (Teitz & Bart 1968): for each selected site, find the unselected site
  whose swap gains most and apply it; repeat passes until no swap gains.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol, TypeVar

import numpy as np
import scipy.sparse as sp

from citywatch.errors import ValidationError

__all__ = ["LevelModel", "greedy_local_search"]


class _Coverage(Protocol):
    @property
    def cover(self) -> sp.csr_array: ...
    @property
    def weights(self) -> np.ndarray: ...
    @property
    def fixed(self) -> np.ndarray: ...


class _Result(Protocol):
    selected: np.ndarray
    objective: float
    bound: float
    gap: float
    seconds: float


_R = TypeVar("_R", bound=_Result, covariant=True)


class LevelModel(Protocol[_R]):
    """What the heuristic needs of a model (:class:`citywatch.plan.coverage.MCLP`, ``MEXCLP``,
    ``BackupCoverage``): it is written against this protocol so that the models can use it for
    their warm start without an import cycle."""

    @property
    def data(self) -> _Coverage: ...
    @property
    def groups(self) -> Sequence[object]: ...
    @property
    def units(self) -> int: ...
    def profile(self, max_count: int) -> np.ndarray: ...
    def lp_bound(self) -> float: ...
    def evaluate(
        self, selected: np.ndarray, *, status: str, bound: float, gap: float, seconds: float
    ) -> _R: ...


def greedy_local_search(
    model: LevelModel[_R], *, max_passes: int = 50, with_bound: bool = True
) -> _R:
    """Place the units greedily, then improve by single swaps until none gains.

    Parameters
    ----------
    model : MCLP, MEXCLP or BackupCoverage
        The model to solve heuristically (site groups are not supported).
    max_passes : int
        Upper limit on local-search passes over the selected sites.
    with_bound : bool
        Solve the LP relaxation for the bound and the gap; otherwise ``bound`` is NaN.

    Returns
    -------
    CoverageResult
        ``status="heuristic"``; ``gap = (bound - objective) / bound``.

    Raises
    ------
    ValidationError
        When the model has site groups.
    """
    if model.groups:
        raise ValidationError("the heuristic does not support site groups; use solve()")
    started = time.perf_counter()
    data = model.data
    cover = sp.csr_array(data.cover, dtype=np.float64)
    cover_t = sp.csr_array(cover.T)
    w = data.weights
    m = cover.shape[1]
    g = model.profile(m + 1)
    up = np.diff(g)  # up[c] = g(c + 1) - g(c)
    selected = data.fixed.copy()
    counts = np.rint(cover @ selected.astype(float)).astype(np.int64)

    def gains() -> np.ndarray:
        return np.asarray(cover_t @ (w * up[counts]))

    for _ in range(model.units - int(selected.sum())):
        gain = gains()
        gain[selected] = -np.inf
        best = int(np.argmax(gain))
        selected[best] = True
        counts[cover_t.indices[cover_t.indptr[best] : cover_t.indptr[best + 1]]] += 1

    tolerance = 1e-12 * max(float(w.sum()), 1.0)
    for _ in range(max_passes):
        improved = False
        for j in np.nonzero(selected & ~data.fixed)[0]:
            rows = cover_t.indices[cover_t.indptr[j] : cover_t.indptr[j + 1]]
            c = counts[rows]
            down = g[c - 1] - g[c]  # change at j's points when j leaves
            loss = float(w[rows] @ down)
            # A candidate k gains up[c] at its points, but at points that j also covers the
            # swap leaves the count unchanged: remove both terms there.
            overlap = sp.csr_array(cover[rows]).T @ (w[rows] * (up[c] + down))
            delta = gains() + loss - np.asarray(overlap)
            delta[selected] = -np.inf
            k = int(np.argmax(delta))
            if delta[k] > tolerance:
                selected[j], selected[k] = False, True
                counts[rows] -= 1
                counts[cover_t.indices[cover_t.indptr[k] : cover_t.indptr[k + 1]]] += 1
                improved = True
        if not improved:
            break

    result = model.evaluate(selected, status="heuristic", bound=np.nan, gap=np.nan, seconds=0.0)
    if with_bound:
        result.bound = model.lp_bound()
        result.gap = max(result.bound - result.objective, 0.0) / max(abs(result.bound), 1e-12)
    result.seconds = time.perf_counter() - started
    return result
