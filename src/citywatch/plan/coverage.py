"""Exact coverage location models: MCLP, LSCP, MEXCLP and backup coverage, solved with HiGHS.

Notation shared by every model: demand points ``i`` with weights ``w_i``, candidate sites ``j``,
a cost (travel seconds, metres, ...) ``d_ij`` and a radius ``R``.  Point ``i`` is *covered* by
site ``j`` when ``d_ij <= R`` (inclusive); ``N_i`` is the set of sites that cover ``i``.  Binary
``x_j = 1`` when a unit is posted at site ``j``; sites marked *fixed* have ``x_j = 1`` forced.

The models are built sparsely: only pairs within ``R`` enter the matrix, points that no site can
cover are left out of the optimisation (they stay in the totals), and points with identical
covering sets ``N_i`` are merged into one row with the summed weight, which leaves the optimum
unchanged and shrinks city-scale instances several-fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from citywatch.errors import DataError, ValidationError
from citywatch.plan.heuristic import greedy_local_search
from citywatch.plan.milp import MilpSolution, solve_milp
from citywatch.plan.reduce import dominated_sites, lagrangian_fixing, merge_identical_rows

__all__ = [
    "LSCP",
    "MCLP",
    "MEXCLP",
    "BackupCoverage",
    "CoverageData",
    "CoverageResult",
    "SiteGroup",
    "merge_identical_rows",
]


@dataclass(frozen=True)
class SiteGroup:
    """A set of candidate sites (for example the posts of one station) with unit bounds.

    Attributes
    ----------
    name : str
        Label used in error messages.
    sites : numpy.ndarray
        Indices of the sites in the group.
    min_units, max_units : int, int or None
        Bounds on the number of selected sites in the group.
    """

    name: str
    sites: np.ndarray
    min_units: int = 0
    max_units: int | None = None


@dataclass(frozen=True)
class CoverageData:
    """Demand points, candidate sites and which site covers which point.

    Attributes
    ----------
    demand_ids, site_ids : numpy.ndarray
        Identifiers (strings).
    weights : numpy.ndarray
        Non-negative demand weights.
    cover : scipy.sparse.csr_array
        ``cover[i, j] = 1`` when site ``j`` reaches point ``i`` within the radius.
    fixed : numpy.ndarray
        Boolean mask of sites that must be selected.
    """

    demand_ids: np.ndarray
    weights: np.ndarray
    site_ids: np.ndarray
    cover: sp.csr_array
    fixed: np.ndarray

    def __post_init__(self) -> None:
        n, m = len(self.demand_ids), len(self.site_ids)
        if n == 0 or m == 0:
            raise ValidationError("coverage needs at least one demand point and one site")
        if self.cover.shape != (n, m) or self.weights.shape != (n,) or self.fixed.shape != (m,):
            raise ValidationError("coverage data arrays have inconsistent shapes")
        if not np.all(np.isfinite(self.weights)) or np.any(self.weights < 0):
            raise ValidationError("demand weights must be finite and non-negative", field="weight")
        for name, ids in (("demand", self.demand_ids), ("site", self.site_ids)):
            if len(pd.unique(ids)) != len(ids):
                raise DataError(f"duplicate {name} ids")

    @classmethod
    def from_pairs(
        cls,
        demand_ids: Sequence[Any],
        weights: Sequence[float] | np.ndarray,
        site_ids: Sequence[Any],
        demand_index: np.ndarray,
        site_index: np.ndarray,
        cost: np.ndarray,
        radius: float,
        fixed: np.ndarray | None = None,
    ) -> CoverageData:
        """Build from a sparse list of (demand index, site index, cost) pairs.

        Pairs not listed are unreachable; a pair covers when ``cost <= radius``.

        Raises
        ------
        ValidationError
            On a negative or NaN cost or radius.
        """
        cost = np.asarray(cost, dtype=np.float64)
        if not np.isfinite(radius) or radius < 0:
            raise ValidationError("radius must be a finite non-negative number", field="radius")
        if np.any(np.isnan(cost)) or np.any(cost < 0):
            raise ValidationError("costs must be non-negative numbers", field="cost")
        keep = cost <= radius
        n, m = len(demand_ids), len(site_ids)
        matrix = sp.coo_array(
            (np.ones(int(keep.sum())), (demand_index[keep], site_index[keep])), shape=(n, m)
        ).tocsr()
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return cls(
            demand_ids=np.asarray([str(v) for v in demand_ids], dtype=object),
            weights=np.asarray(weights, dtype=np.float64),
            site_ids=np.asarray([str(v) for v in site_ids], dtype=object),
            cover=matrix,
            fixed=np.zeros(m, dtype=bool) if fixed is None else np.asarray(fixed, dtype=bool),
        )

    @classmethod
    def from_matrix(
        cls,
        costs: np.ndarray,
        radius: float,
        weights: Sequence[float] | np.ndarray | None = None,
        demand_ids: Sequence[Any] | None = None,
        site_ids: Sequence[Any] | None = None,
        fixed: np.ndarray | None = None,
    ) -> CoverageData:
        """Build from a dense demand-by-site cost matrix (``inf`` = unreachable).

        Weights default to 1 and ids to ``"0", "1", ...``.
        """
        costs = np.asarray(costs, dtype=np.float64)
        if costs.ndim != 2:
            raise ValidationError("the cost matrix must be two-dimensional")
        n, m = costs.shape
        rows, cols = np.nonzero(np.isfinite(costs))
        return cls.from_pairs(
            demand_ids=range(n) if demand_ids is None else demand_ids,
            weights=np.ones(n) if weights is None else weights,
            site_ids=range(m) if site_ids is None else site_ids,
            demand_index=rows,
            site_index=cols,
            cost=costs[rows, cols],
            radius=radius,
            fixed=fixed,
        )

    @classmethod
    def from_frames(
        cls, demand: pd.DataFrame, sites: pd.DataFrame, costs: pd.DataFrame, radius: float
    ) -> CoverageData:
        """Build from the tables of ``citywatch plan coverage``.

        Parameters
        ----------
        demand : pandas.DataFrame
            Columns ``id, weight``.
        sites : pandas.DataFrame
            Column ``id`` and optional ``fixed`` (0/1).
        costs : pandas.DataFrame
            Columns ``demand_id, site_id, cost``; pairs not listed are unreachable.
        radius : float
            Coverage radius, in the unit of ``cost``.

        Raises
        ------
        DataError
            On missing columns, bad values or ids in ``costs`` that are not in the other tables.
        """
        _require_columns(demand, ("id", "weight"), "demand")
        _require_columns(sites, ("id",), "sites")
        _require_columns(costs, ("demand_id", "site_id", "cost"), "costs")
        weights = pd.to_numeric(demand["weight"], errors="coerce").to_numpy(dtype=np.float64)
        if np.any(np.isnan(weights)):
            raise DataError("demand: column 'weight' has missing or non-numeric values")
        fixed = np.zeros(len(sites), dtype=bool)
        if "fixed" in sites.columns:
            flags = pd.to_numeric(sites["fixed"], errors="coerce")
            if not flags.isin([0, 1]).all():
                raise DataError("sites: column 'fixed' must be 0 or 1")
            fixed = flags.to_numpy() == 1
        demand_ids = demand["id"].astype(str).to_numpy()
        site_ids = sites["id"].astype(str).to_numpy()
        demand_pos = pd.Index(demand_ids)
        site_pos = pd.Index(site_ids)
        if not demand_pos.is_unique or not site_pos.is_unique:
            raise DataError("demand and site ids must be unique")
        di = demand_pos.get_indexer(pd.Index(costs["demand_id"].astype(str)))
        si = site_pos.get_indexer(pd.Index(costs["site_id"].astype(str)))
        for label, idx, column in (("demand", di, "demand_id"), ("site", si, "site_id")):
            if np.any(idx < 0):
                unknown = costs[column].astype(str)[idx < 0].unique()[:5]
                raise DataError(f"costs: unknown {label} ids {', '.join(unknown)}")
        cost = pd.to_numeric(costs["cost"], errors="coerce").to_numpy(dtype=np.float64)
        if np.any(np.isnan(cost)):
            raise DataError("costs: column 'cost' has missing or non-numeric values")
        return cls.from_pairs(
            list(demand_ids), weights, list(site_ids), di, si, cost, radius, fixed
        )


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{name}: missing column(s) {', '.join(missing)}")


@dataclass
class CoverageResult:
    """Sites chosen by a coverage model and what they cover.

    ``objective`` is the model's objective evaluated exactly at the chosen sites, ``bound`` the
    best proven bound (MIP dual bound, or the LP bound for the heuristic) and ``gap`` their
    relative difference (0 for a proven optimum).
    """

    model: str
    status: str
    selected: np.ndarray
    site_ids: np.ndarray
    cover_counts: np.ndarray
    weights: np.ndarray
    objective: float
    bound: float
    gap: float
    seconds: float

    @property
    def selected_sites(self) -> list[str]:
        """Ids of the selected sites, in input order."""
        return [str(s) for s in self.site_ids[self.selected]]

    @property
    def covered(self) -> np.ndarray:
        """Boolean mask of demand points within the radius of at least one selected site."""
        return self.cover_counts > 0

    @property
    def covered_weight(self) -> float:
        """Total weight of covered points."""
        return float(self.weights[self.covered].sum())

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``citywatch plan coverage --json``."""
        return {
            "model": self.model,
            "status": self.status,
            "selected_sites": self.selected_sites,
            "units": int(self.selected.sum()),
            "covered_weight": self.covered_weight,
            "total_weight": float(self.weights.sum()),
            "covered_count": int(self.covered.sum()),
            "demand_count": len(self.weights),
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "seconds": self.seconds,
        }


class _CoverageModel:
    """Shared plumbing: alternate constructors, site groups, evaluation of a site set."""

    name: ClassVar[str]
    maximize: ClassVar[bool]

    def __init__(self, data: CoverageData, groups: Sequence[SiteGroup] = ()) -> None:
        self.data = data
        self.groups = tuple(groups)
        for group in self.groups:
            if group.max_units is not None and group.max_units < group.min_units:
                raise ValidationError(f"group {group.name}: max_units is below min_units")

    @classmethod
    def from_matrix(
        cls,
        costs: np.ndarray,
        radius: float,
        *,
        weights: Sequence[float] | np.ndarray | None = None,
        fixed: np.ndarray | None = None,
        **params: Any,
    ) -> Self:
        """Build the model from a dense cost matrix (``inf`` = unreachable).

        Extra keyword arguments (``units``, ``busy_fraction``, ...) go to the constructor.
        """
        return cls(CoverageData.from_matrix(costs, radius, weights=weights, fixed=fixed), **params)

    def _group_rows(self, n_cols: int) -> tuple[sp.csr_array, np.ndarray, np.ndarray]:
        rows, cols = [], []
        lower, upper = [], []
        for r, group in enumerate(self.groups):
            sites = np.asarray(group.sites, dtype=np.int64)
            rows.append(np.full(len(sites), r))
            cols.append(sites)
            lower.append(group.min_units)
            upper.append(np.inf if group.max_units is None else group.max_units)
        if not self.groups:
            return sp.csr_array((0, n_cols)), np.zeros(0), np.zeros(0)
        matrix = sp.coo_array(
            (np.ones(sum(len(c) for c in cols)), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(self.groups), n_cols),
        ).tocsr()
        return matrix, np.asarray(lower, float), np.asarray(upper, float)

    def value(self, counts: np.ndarray, selected: np.ndarray) -> float:
        """Objective value for given cover counts per demand point and selected-site mask."""
        raise NotImplementedError

    def evaluate(
        self, selected: np.ndarray, *, status: str, bound: float, gap: float, seconds: float
    ) -> CoverageResult:
        """Build the :class:`CoverageResult` of a set of selected sites."""
        selected = np.asarray(selected, dtype=bool)
        counts = self.data.cover @ selected.astype(np.float64)
        return CoverageResult(
            model=self.name,
            status=status,
            selected=selected,
            site_ids=self.data.site_ids,
            cover_counts=np.rint(counts).astype(np.int64),
            weights=self.data.weights,
            objective=self.value(counts, selected),
            bound=bound,
            gap=gap,
            seconds=seconds,
        )

    def _from_solution(self, solution: MilpSolution) -> CoverageResult:
        m = len(self.data.site_ids)
        return self.evaluate(
            solution.x[:m] > 0.5,
            status=solution.status,
            bound=solution.bound,
            gap=solution.gap,
            seconds=solution.seconds,
        )


class _LevelCoverage(_CoverageModel):
    """Models whose value is ``sum_i w_i g(c_i)`` for a concave-or-ordered profile ``g``.

    ``c_i`` is the number of selected sites covering ``i`` and ``g(c) = h_1 + ... + h_min(c,K)``
    for per-level increments ``h``.  Formulation: maximise ``sum_i w_i sum_k h_k y_ik`` s.t.
    ``sum_k y_ik <= sum_{j in N_i} x_j``, ``sum_j x_j = p``, ``0 <= y_ik <= 1`` and, when ``h``
    is not non-increasing, ``y_ik <= y_i,k-1`` with binary ``y`` (otherwise fractional ``y`` could
    split one cover across levels).
    """

    maximize = True

    def __init__(self, data: CoverageData, units: int, groups: Sequence[SiteGroup] = ()) -> None:
        super().__init__(data, groups)
        m = len(data.site_ids)
        if not 1 <= units <= m:
            raise ValidationError(f"units must be between 1 and the {m} sites", field="units")
        if int(data.fixed.sum()) > units:
            raise ValidationError(
                f"{int(data.fixed.sum())} fixed sites exceed the {units} units", field="units"
            )
        self.units = int(units)

    def increments(self) -> np.ndarray:
        """Objective increment of the 1st, 2nd, ... covering unit of a point (length ``K``)."""
        raise NotImplementedError

    def profile(self, max_count: int) -> np.ndarray:
        """``g(0), ..., g(max_count)``: value of a unit-weight point covered ``c`` times."""
        h = self.increments()
        g = np.concatenate([[0.0], np.cumsum(h)])
        return g[np.minimum(np.arange(max_count + 1), len(h))]

    def value(self, counts: np.ndarray, selected: np.ndarray) -> float:
        """``sum_i w_i g(c_i)``."""
        c = np.rint(counts).astype(np.int64)
        return float(self.data.weights @ self.profile(int(c.max(initial=0)))[c])

    def _rows(self, merge_rows: bool) -> tuple[sp.csr_array, np.ndarray]:
        """Demand rows of the model (merged or one per coverable point) and each point's row."""
        if merge_rows:
            return merge_identical_rows(self.data.cover)
        cover = sp.csr_array(self.data.cover, dtype=np.float64)
        coverable = np.diff(cover.indptr) > 0
        row_of = np.where(coverable, np.cumsum(coverable) - 1, -1)
        return sp.csr_array(cover[np.nonzero(coverable)[0]]), row_of

    def _build(
        self, merge_rows: bool = True
    ) -> tuple[np.ndarray, sp.csr_array, np.ndarray, np.ndarray, sp.csr_array, np.ndarray]:
        merged, row_of = self._rows(merge_rows)
        w = np.bincount(row_of[row_of >= 0], self.data.weights[row_of >= 0], merged.shape[0])
        n_rows, m = merged.shape
        h = self.increments()
        n_sites = np.diff(merged.indptr)
        levels = np.minimum(n_sites, min(len(h), self.units))
        # A row only one site covers is covered exactly when that site is chosen: its weight
        # goes onto the site's coefficient, without a row or a cover variable (plan.reduce).
        single = n_sites == 1
        levels[single] = 0
        site_value = np.bincount(
            merged.indices[merged.indptr[:-1][single]], w[single] * h[0], minlength=m
        )
        y_start = m + np.cumsum(levels) - levels
        n_y = int(levels.sum())
        y_row = np.repeat(np.arange(n_rows), levels)
        y_level = np.arange(n_y) - np.repeat(y_start - m, levels)
        cost = np.concatenate([site_value, w[y_row] * h[y_level]])
        # Row block 1: sum_k y_ik - sum_{j in N_i} x_j <= 0, for rows of several sites.
        multi = np.nonzero(~single)[0]
        y_link = np.repeat(np.arange(len(multi)), levels[multi])
        link = sp.hstack(
            [
                -merged[multi],
                sp.csr_array((np.ones(n_y), (y_link, np.arange(n_y))), shape=(len(multi), n_y)),
            ]
        )
        blocks = [link, sp.csr_array(np.concatenate([np.ones(m), np.zeros(n_y)])[None, :])]
        lower = [np.full(len(multi), -np.inf), np.array([float(self.units)])]
        upper = [np.zeros(len(multi)), np.array([float(self.units)])]
        if np.any(np.diff(h) > 0):
            later = np.nonzero(y_level > 0)[0] + m
            order = sp.coo_array(
                (
                    np.concatenate([np.ones(len(later)), -np.ones(len(later))]),
                    (np.tile(np.arange(len(later)), 2), np.concatenate([later, later - 1])),
                ),
                shape=(len(later), m + n_y),
            )
            blocks.append(sp.csr_array(order))
            lower.append(np.full(len(later), -np.inf))
            upper.append(np.zeros(len(later)))
        group_matrix, g_lo, g_hi = self._group_rows(m)
        blocks.append(sp.hstack([group_matrix, sp.csr_array((len(self.groups), n_y))]))
        lower.append(g_lo)
        upper.append(g_hi)
        matrix = sp.csr_array(sp.vstack(blocks))
        return cost, matrix, np.concatenate(lower), np.concatenate(upper), merged, levels

    def _solve(
        self,
        relax: bool,
        time_limit: float | None,
        verbose: bool,
        warm_start: bool = False,
        merge_rows: bool = True,
    ) -> MilpSolution:
        cost, matrix, lower, upper, rows, levels = self._build(merge_rows)
        m = len(self.data.site_ids)
        n_cols = matrix.shape[1]
        col_lower = np.concatenate([self.data.fixed.astype(float), np.zeros(n_cols - m)])
        concave = not np.any(np.diff(self.increments()) > 0)
        integer = None if relax else (np.arange(n_cols) < m) | (not concave)
        start = None
        if warm_start and not self.groups:
            start = self._start(rows, levels)
        return solve_milp(
            cost,
            matrix,
            lower,
            upper,
            col_lower,
            np.ones(n_cols),
            integer,
            maximize=True,
            time_limit=time_limit,
            start=start,
            verbose=verbose,
        )

    def _start(self, rows: sp.csr_array, levels: np.ndarray) -> np.ndarray:
        """MIP start from the greedy + swap heuristic: ``x`` and the matching ``y``."""
        selected = greedy_local_search(self, with_bound=False).selected
        counts = np.rint(rows @ selected.astype(float)).astype(np.int64)
        level = np.arange(int(levels.sum())) - np.repeat(np.cumsum(levels) - levels, levels)
        y = level < np.repeat(counts, levels)
        return np.concatenate([selected.astype(float), y.astype(float)])

    def solve(
        self,
        *,
        time_limit: float | None = None,
        warm_start: bool = True,
        merge_rows: bool = True,
        verbose: bool = False,
    ) -> CoverageResult:
        """Solve to proven optimality with HiGHS.

        Parameters
        ----------
        time_limit : float, optional
            Seconds; when reached, the best solution found is returned with
            ``status="time_limit"`` and its relative gap.
        warm_start : bool
            Start the branch and bound from the greedy + swap heuristic's solution (ignored with
            site groups, which the heuristic does not handle).
        merge_rows : bool
            Merge demand points with identical covering sites into one row (same optimum;
            ``False`` only to measure what merging saves).
        verbose : bool
            Show the HiGHS log.

        Raises
        ------
        SolverError
            When HiGHS proves neither optimality nor (under a time limit) finds a solution,
            e.g. when site-group bounds are infeasible.
        """
        solution = self._solve(False, time_limit, verbose, warm_start, merge_rows)
        return self._from_solution(solution)

    def lp_bound(self) -> float:
        """Optimal value of the LP relaxation: an upper bound on any selection's objective."""
        return self._solve(True, None, False).objective


class MCLP(_LevelCoverage):
    """Maximal covering location problem (Church & ReVelle 1974).

    Maximise ``sum_i w_i y_i`` subject to ``y_i <= sum_{j in N_i} x_j`` for every point,
    ``sum_j x_j = p``, ``x_j in {0, 1}`` (``x_j = 1`` for fixed sites), ``0 <= y_i <= 1``:
    place ``p`` units to maximise the demand weight within the radius of at least one unit.

    Parameters
    ----------
    data : CoverageData
        Demand, sites and coverage.
    units : int
        ``p``, the number of units to place (fixed sites included).
    groups : sequence of SiteGroup
        Optional bounds on the number of units per group of sites.
    """

    name = "mclp"

    def increments(self) -> np.ndarray:
        """A point counts once, however many units cover it."""
        return np.ones(1)

    def solve(
        self,
        *,
        time_limit: float | None = None,
        warm_start: bool = True,
        merge_rows: bool = True,
        verbose: bool = False,
        reduce: bool = True,
    ) -> CoverageResult:
        """Solve to proven optimality with HiGHS (see :meth:`_LevelCoverage.solve`).

        ``reduce`` (default) first applies the exact reductions of :mod:`citywatch.plan.reduce`
        (rows covered by fixed sites, dominated and identical sites); ``False`` only to measure
        what they save.  Site groups switch them off.
        """
        if not reduce or self.groups:
            return super().solve(
                time_limit=time_limit, warm_start=warm_start, merge_rows=merge_rows, verbose=verbose
            )
        data = self.data
        fixed = data.fixed.astype(bool)
        cover = sp.csr_array(data.cover, dtype=np.float64)
        by_fixed = (cover @ fixed.astype(np.float64)) > 0
        live = np.nonzero((data.weights > 0) & ~by_fixed & (np.diff(cover.indptr) > 0))[0]
        free = np.nonzero(~fixed)[0]
        units = self.units - int(fixed.sum())
        constant = float(data.weights[by_fixed].sum())
        if units == 0 or len(live) == 0:
            return self._padded(fixed, free[:0], free)
        merged, row_of = merge_identical_rows(sp.csr_array(cover[live][:, free]))
        kept = np.nonzero(~dominated_sites(merged))[0]
        if len(kept) <= units:  # all kept sites cover every coverable row
            return self._padded(fixed, free[kept], free)
        w = np.bincount(row_of, data.weights[live], merged.shape[0])
        reduced = _sub_model(merged, w, kept, units)
        if len(kept) > 2 * units:  # Lagrangian bounds against the greedy selection's value
            known = greedy_local_search(reduced, with_bound=False)
            excluded, _ = lagrangian_fixing(
                reduced.data.cover, reduced.data.weights, units, known.objective
            )
            excluded[known.selected] = False  # (they never are; kept whatever the rounding)
            kept = kept[~excluded]
            reduced = _sub_model(merged, w, kept, units)
        solved = reduced.solve(
            time_limit=time_limit,
            warm_start=warm_start,
            merge_rows=False,
            verbose=verbose,
            reduce=False,
        )
        selected = fixed.copy()
        selected[free[kept[solved.selected]]] = True
        result = self.evaluate(
            selected, status=solved.status, bound=solved.bound + constant, gap=0.0, seconds=0.0
        )
        gap = abs(result.bound - result.objective) / max(abs(result.objective), 1e-9)
        result.gap = min(gap, solved.gap) if solved.status == "optimal" else gap
        result.seconds = solved.seconds
        return result

    def _padded(self, fixed: np.ndarray, chosen: np.ndarray, free: np.ndarray) -> CoverageResult:
        """An optimum found without a solve: ``chosen`` plus any other free sites up to
        ``units`` (they add nothing)."""
        selected = fixed.copy()
        selected[chosen] = True
        spare = free[~selected[free]][: self.units - int(selected.sum())]
        selected[spare] = True
        result = self.evaluate(selected, status="optimal", bound=0.0, gap=0.0, seconds=0.0)
        result.bound = result.objective
        return result


def _sub_model(cover: sp.csr_array, weights: np.ndarray, sites: np.ndarray, units: int) -> MCLP:
    """The MCLP over some sites (columns) of a cover matrix: rows they cannot cover dropped,
    rows they cover alike merged (weights summed)."""
    rows, row_of = merge_identical_rows(sp.csr_array(cover[:, sites]))
    w = np.bincount(row_of[row_of >= 0], weights[row_of >= 0], rows.shape[0])
    data = CoverageData(
        demand_ids=np.arange(rows.shape[0]).astype(str).astype(object),
        weights=w,
        site_ids=np.arange(len(sites)).astype(str).astype(object),
        cover=rows,
        fixed=np.zeros(len(sites), dtype=bool),
    )
    return MCLP(data, units=units)


class MEXCLP(_LevelCoverage):
    """Maximum expected covering location problem (Daskin 1983), one unit per site.

    Each unit is busy independently with probability ``q``, so a point covered by ``k`` units
    is covered by an available one with probability ``1 - q^k``.  Maximise
    ``sum_i w_i sum_{k=1..p} (1 - q) q^(k-1) y_ik`` subject to
    ``sum_k y_ik <= sum_{j in N_i} x_j``, ``sum_j x_j = p``, ``x_j in {0, 1}``,
    ``0 <= y_ik <= 1``.  The increments fall with ``k``, so the optimum fills ``y_i1, y_i2, ...``
    in order and the objective equals ``sum_i w_i (1 - q^(c_i))``.

    Parameters
    ----------
    data : CoverageData
    units : int
        ``p``.
    busy_fraction : float
        ``q`` in ``[0, 1)``.
    groups : sequence of SiteGroup
    """

    name = "mexclp"

    def __init__(
        self,
        data: CoverageData,
        units: int,
        busy_fraction: float,
        groups: Sequence[SiteGroup] = (),
    ) -> None:
        if not 0.0 <= busy_fraction < 1.0:
            raise ValidationError("busy fraction must be in [0, 1)", field="busy_fraction")
        self.busy_fraction = float(busy_fraction)
        super().__init__(data, units, groups)

    def increments(self) -> np.ndarray:
        """``(1 - q) q^(k-1)`` for ``k = 1..p``."""
        q = self.busy_fraction
        return (1.0 - q) * q ** np.arange(self.units)


class BackupCoverage(_LevelCoverage):
    """Backup coverage (Hogan & ReVelle 1986, BACOP2).

    Maximise ``theta sum_i w_i u_i + (1 - theta) sum_i w_i v_i`` subject to
    ``u_i + v_i <= sum_{j in N_i} x_j``, ``v_i <= u_i``, ``sum_j x_j = p``, ``x_j in {0, 1}``,
    ``0 <= u_i, v_i <= 1``: ``u_i`` marks points covered at least once, ``v_i`` at least twice.

    Parameters
    ----------
    data : CoverageData
    units : int
        ``p``.
    theta : float
        Weight of first coverage against backup coverage, in ``[0, 1]`` (default 0.5).
    groups : sequence of SiteGroup
    """

    name = "backup"

    def __init__(
        self,
        data: CoverageData,
        units: int,
        theta: float = 0.5,
        groups: Sequence[SiteGroup] = (),
    ) -> None:
        if not 0.0 <= theta <= 1.0:
            raise ValidationError("theta must be in [0, 1]", field="theta")
        self.theta = float(theta)
        super().__init__(data, units, groups)

    def increments(self) -> np.ndarray:
        """``theta`` for the first cover, ``1 - theta`` for the second."""
        return np.array([self.theta, 1.0 - self.theta])


class LSCP(_CoverageModel):
    """Location set covering problem (Toregas et al. 1971).

    Minimise ``sum_j x_j`` subject to ``sum_{j in N_i} x_j >= 1`` for every demand point with
    positive weight, ``x_j in {0, 1}`` (``x_j = 1`` for fixed sites): the fewest units that
    cover all demand.

    Parameters
    ----------
    data : CoverageData
    groups : sequence of SiteGroup

    Raises
    ------
    ValidationError
        When some demand point with positive weight has no site within the radius.
    """

    name = "lscp"
    maximize = False

    def __init__(self, data: CoverageData, groups: Sequence[SiteGroup] = ()) -> None:
        super().__init__(data, groups)
        reachable = np.diff(data.cover.indptr) > 0
        orphan = ~reachable & (data.weights > 0)
        if np.any(orphan):
            ids = ", ".join(str(v) for v in data.demand_ids[orphan][:5])
            raise ValidationError(
                f"{int(orphan.sum())} demand point(s) have no site within the radius "
                f"(e.g. {ids}); full coverage is impossible"
            )

    def value(self, counts: np.ndarray, selected: np.ndarray) -> float:
        """Number of selected sites."""
        return float(selected.sum())

    def solve(self, *, time_limit: float | None = None, verbose: bool = False) -> CoverageResult:
        """Solve to proven optimality with HiGHS (see :meth:`MCLP.solve`)."""
        keep = self.data.weights > 0
        merged, _ = merge_identical_rows(sp.csr_array(self.data.cover[np.nonzero(keep)[0]]))
        m = merged.shape[1]
        group_matrix, g_lo, g_hi = self._group_rows(m)
        matrix = sp.vstack([merged, group_matrix])
        solution = solve_milp(
            np.ones(m),
            matrix,
            np.concatenate([np.ones(merged.shape[0]), g_lo]),
            np.concatenate([np.full(merged.shape[0], np.inf), g_hi]),
            self.data.fixed.astype(float),
            np.ones(m),
            np.ones(m, dtype=bool),
            maximize=False,
            time_limit=time_limit,
            verbose=verbose,
        )
        return self._from_solution(solution)
