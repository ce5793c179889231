"""Interception plan (堵控): K checkpoints at intersections, each held by one unit.

A simulated route ``r`` is **intercepted** by unit ``u`` at node ``j`` when ``r`` passes ``j``
and ``u`` gets there first: ``delay_s + eta[u, j] <= t[r, j]`` (``delay_s``: call, decision and
dispatch before units move; ``eta``: the dispatch router in the unit's own mode).  Choose at
most ``k`` (unit, node) pairs, every unit and node at most once, to maximise the share of routes
intercepted (a maximum coverage problem; van Droffelaar et al. 2024, fugitive interception):

    max sum_r z_r   s.t.  z_r <= sum_{p covers r} x_p,  sum_p x_p <= k,
                          sum_{p of unit u} x_p <= 1,  sum_{p at node j} x_p <= 1,  x, z binary.

Solved exactly with HiGHS (:func:`citywatch.plan.milp.solve_milp`) up to
:data:`MILP_MAX_NONZEROS`; beyond, greedy (best marginal gain first) with its gap to the LP
bound.  The naive plan sends the ``k`` nearest units to the incident: a unit intercepts a
route only where its own fastest path to the incident crosses the route in time.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.stats import binomtest

from citywatch.errors import SnapError, SolverError, ValidationError
from citywatch.plan.milp import solve_milp
from citywatch.pursuit.routes import RouteSet
from citywatch.routing import Router
from citywatch.routing.speeds import Mode

__all__ = [
    "DEFAULT_DELAY_S",
    "MILP_MAX_NONZEROS",
    "InterceptPlan",
    "InterceptProblem",
    "PursuitUnit",
    "brute_force",
    "evaluate",
    "greedy",
    "naive_plan",
    "solve",
    "unit_etas",
    "unrouted",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Seconds from the incident until units start moving (call taking and dispatch).
DEFAULT_DELAY_S = 60.0
#: Largest coverage matrix (nonzeros) solved as an exact MILP; greedy with LP bound beyond.
MILP_MAX_NONZEROS = 400_000
#: Candidate checkpoints: the nodes most routes pass.
DEFAULT_CANDIDATES = 300


@dataclass(frozen=True)
class PursuitUnit:
    """An available unit: id, type, travel mode and position (WGS-84)."""

    id: str
    unit_type: str
    mode: Mode
    lon: float
    lat: float


def unit_etas(router: Router, units: Sequence[PursuitUnit]) -> FloatArray:
    """Seconds from each unit to every node, in the unit's own mode, shape (units, nodes).

    A unit farther from every road of its mode than the pack's snap limit gets ``inf``
    everywhere (it cannot hold a checkpoint); :func:`unrouted` lists such units.
    """
    out = np.full((len(units), len(router.network.nodes)), np.inf)
    for i, u in enumerate(units):
        try:
            out[i], _ = router.node_times_from((u.lon, u.lat), u.mode)
        except SnapError:
            continue
    return out


def unrouted(units: Sequence[PursuitUnit], etas: FloatArray) -> list[str]:
    """Ids of the units that reach no node (off the network of their mode)."""
    return [u.id for u, row in zip(units, etas, strict=True) if not np.isfinite(row).any()]


@dataclass(frozen=True)
class InterceptProblem:
    """The coverage matrix routes x (unit, node) pairs and its sizes."""

    cover: sp.csc_array
    pair_unit: IntArray
    pair_node: IntArray
    n_units: int
    n_routes: int

    @classmethod
    def build(
        cls,
        routes: RouteSet,
        etas: FloatArray,
        *,
        delay_s: float = DEFAULT_DELAY_S,
        candidates: int | None = DEFAULT_CANDIDATES,
    ) -> InterceptProblem:
        """Pairs (unit, node) that intercept at least one route, among the candidate nodes
        (``candidates`` nodes where most routes can be intercepted; ``None``: every node)."""
        r_of, nodes, t = routes.route_of, routes.nodes, routes.seconds
        # Only passings some unit can reach first count; candidates are the nodes where most
        # routes can be intercepted (not merely the most passed: those lie near the origin).
        feasible = delay_s + etas.min(axis=0)[nodes] <= t
        r_of, nodes, t = r_of[feasible], nodes[feasible], t[feasible]
        if candidates is not None and len(nodes):
            counts = np.bincount(np.unique(r_of * routes.n_nodes + nodes) % routes.n_nodes)
            keep = np.argsort(-counts, kind="stable")[:candidates]
            mask = np.isin(nodes, keep[counts[keep] > 0])
            r_of, nodes, t = r_of[mask], nodes[mask], t[mask]
        order = np.argsort(nodes, kind="stable")
        r_of, nodes, t = r_of[order], nodes[order], t[order]
        starts = np.flatnonzero(np.r_[True, nodes[1:] != nodes[:-1]]).tolist()
        # No unit gets ahead of the offender anywhere: no group (np.r_ still gives a start).
        bounds = list(zip(starts, [*starts[1:], len(nodes)], strict=True)) if len(nodes) else []
        rows: list[IntArray] = []
        cols: list[IntArray] = []
        pu: list[int] = []
        pn: list[int] = []
        for lo, hi in bounds:
            j = int(nodes[lo])
            ok = delay_s + etas[:, j][:, None] <= t[lo:hi][None, :]
            for u in np.flatnonzero(ok.any(axis=1)).tolist():
                rows.append(np.unique(r_of[lo:hi][ok[u]]))
                cols.append(np.full(len(rows[-1]), len(pu)))
                pu.append(u)
                pn.append(j)
        r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        cover = sp.csc_array((np.ones(len(r)), (r, c)), shape=(routes.n_routes, len(pu)))
        return cls(
            cover, np.asarray(pu, np.int64), np.asarray(pn, np.int64), len(etas), routes.n_routes
        )


@dataclass(frozen=True)
class InterceptPlan:
    """Chosen (unit, node) pairs and how many routes of the planning set they intercept."""

    units: IntArray
    nodes: IntArray
    intercepted: int
    n_routes: int
    method: str
    bound: float
    evaluations: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def share(self) -> float:
        """Share of the planning routes intercepted."""
        return self.intercepted / max(self.n_routes, 1)

    @property
    def gap(self) -> float:
        """Relative gap to the bound (0 for a proven optimum)."""
        return max(0.0, self.bound - self.intercepted) / max(self.bound, 1e-9)


def _check_k(k: int) -> None:
    if k <= 0:
        raise ValidationError("k (checkpoints) must be positive", field="k")


def _plan(
    problem: InterceptProblem, chosen: Sequence[int], method: str, bound: float, evaluations: int
) -> InterceptPlan:
    idx = np.asarray(sorted(chosen), dtype=np.int64)
    hit = int(np.count_nonzero(problem.cover[:, idx].sum(axis=1))) if len(idx) else 0
    return InterceptPlan(
        problem.pair_unit[idx],
        problem.pair_node[idx],
        hit,
        problem.n_routes,
        method,
        bound,
        evaluations,
    )


def greedy(problem: InterceptProblem, k: int) -> tuple[list[int], int]:
    """Best marginal gain first; returns the pairs and the evaluations (pair gains computed)."""
    _check_k(k)
    covered = np.zeros(problem.n_routes, dtype=bool)
    free = np.ones(len(problem.pair_unit), dtype=bool)
    chosen: list[int] = []
    evaluations = 0
    cover_t = problem.cover.T.tocsr()
    for _ in range(k):
        gains = cover_t @ (~covered).astype(np.float64)
        evaluations += int(free.sum())
        gains[~free] = -1
        best = int(np.argmax(gains)) if len(gains) else -1
        if best < 0 or gains[best] <= 0:
            break
        chosen.append(best)
        covered[problem.cover[:, [best]].indices] = True
        free &= problem.pair_unit != problem.pair_unit[best]
        free &= problem.pair_node != problem.pair_node[best]
    return chosen, evaluations


def _route_classes(cover: sp.csc_array) -> tuple[sp.csr_array, FloatArray, IntArray]:
    """Routes with the same covering pairs merged into one weighted row (an exact reduction:
    they are intercepted together or not at all); routes no pair covers are dropped."""
    rows = sp.csr_array(cover)
    keys: dict[bytes, int] = {}
    cls = np.empty(rows.shape[0], dtype=np.int64)
    for r in range(rows.shape[0]):
        idx = rows.indices[rows.indptr[r] : rows.indptr[r + 1]]
        cls[r] = keys.setdefault(np.sort(idx).tobytes(), len(keys)) if len(idx) else -1
    kept = cls >= 0
    weight = np.bincount(cls[kept], minlength=len(keys)).astype(np.float64)
    first = np.full(len(keys), -1, dtype=np.int64)
    first[cls[kept][::-1]] = np.flatnonzero(kept)[::-1]
    return sp.csr_array(rows[first]), weight, cls


def _model(problem: InterceptProblem, k: int) -> tuple[Any, ...]:
    n_p = len(problem.pair_unit)
    classes, weight, _ = _route_classes(problem.cover)
    n_r = len(weight)
    # Columns: x (pairs) then z (route classes, weighted by their routes).
    # Rows: z_c - cover x <= 0; sum x <= k; one point per unit; one unit per node.
    link = sp.hstack([-classes, sp.eye_array(n_r)])
    budget = sp.hstack([sp.csr_array(np.ones((1, n_p))), sp.csr_array((1, n_r))])
    per_unit = sp.csr_array(
        (np.ones(n_p), (problem.pair_unit, np.arange(n_p))), shape=(problem.n_units, n_p)
    )
    _, node_row = np.unique(problem.pair_node, return_inverse=True)
    per_node = sp.csr_array((np.ones(n_p), (node_row, np.arange(n_p))))
    a = sp.vstack(
        [
            link,
            budget,
            sp.hstack([per_unit, sp.csr_array((problem.n_units, n_r))]),
            sp.hstack([per_node, sp.csr_array((per_node.shape[0], n_r))]),
        ]
    )
    n_rows = a.shape[0]
    upper = np.concatenate([np.zeros(n_r), [k], np.ones(n_rows - n_r - 1)])
    cost = np.concatenate([np.zeros(n_p), weight])
    return cost, a, np.full(n_rows, -np.inf), upper, np.zeros(n_p + n_r), np.ones(n_p + n_r)


def solve(problem: InterceptProblem, k: int, *, exact: bool | None = None) -> InterceptPlan:
    """The interception plan: exact MILP when it fits (or ``exact=True``), else greedy + LP bound.

    Raises
    ------
    SolverError
        If HiGHS does not prove an optimum (MILP) or the LP bound is not optimal.
    """
    _check_k(k)
    if len(problem.pair_unit) == 0:
        return InterceptPlan(
            np.zeros(0, np.int64), np.zeros(0, np.int64), 0, problem.n_routes, "empty", 0.0, 0
        )
    use_milp = problem.cover.nnz <= MILP_MAX_NONZEROS if exact is None else exact
    cost, a, lo, up, cl, cu = _model(problem, k)
    n_p = len(problem.pair_unit)
    chosen, evaluations = greedy(problem, k)
    if use_milp:
        start = np.zeros(len(cost))
        start[chosen] = 1.0
        classes = _route_classes(problem.cover)[0]
        start[n_p:] = np.asarray(classes[:, chosen].sum(axis=1) > 0, dtype=float).ravel()
        sol = solve_milp(
            cost, a, lo, up, cl, cu, np.ones(len(cost), dtype=bool), maximize=True, start=start
        )
        if sol.status != "optimal":
            raise SolverError(f"the interception MILP ended {sol.status}, not optimal")
        picked = np.flatnonzero(sol.x[:n_p] > 0.5).tolist()
        return _plan(problem, picked, "milp", sol.objective, evaluations)
    lp = solve_milp(cost, a, lo, up, cl, cu, None, maximize=True)
    if lp.status != "optimal":
        raise SolverError(f"the LP bound ended {lp.status}, not optimal")
    return _plan(problem, chosen, "greedy", float(np.floor(lp.objective + 1e-6)), evaluations)


def brute_force(problem: InterceptProblem, k: int) -> InterceptPlan:
    """Every feasible set of up to ``k`` pairs (small problems only: the reference for tests)."""
    _check_k(k)
    n_p = len(problem.pair_unit)
    best: tuple[int, tuple[int, ...]] = (0, ())
    evaluations = 0
    cover = problem.cover.toarray().astype(bool)
    for size in range(1, min(k, n_p) + 1):
        for combo in itertools.combinations(range(n_p), size):
            units, nodes = problem.pair_unit[list(combo)], problem.pair_node[list(combo)]
            if len(set(units.tolist())) < size or len(set(nodes.tolist())) < size:
                continue
            evaluations += 1
            hit = int(cover[:, list(combo)].any(axis=1).sum())
            if hit > best[0]:
                best = (hit, combo)
    return _plan(problem, best[1], "brute_force", float(best[0]), evaluations)


def evaluate(
    units: IntArray,
    nodes: IntArray,
    routes: RouteSet,
    etas: FloatArray,
    *,
    delay_s: float = DEFAULT_DELAY_S,
) -> dict[str, float]:
    """Share of ``routes`` (e.g. a fresh, out-of-sample set) a plan intercepts, with a 95 % CI
    (Wilson score interval)."""
    hit = np.zeros(routes.n_routes, dtype=bool)
    r_of = routes.route_of
    for u, j in zip(units.tolist(), nodes.tolist(), strict=True):
        at = routes.nodes == j
        hit[r_of[at][delay_s + etas[u, j] <= routes.seconds[at]]] = True
    return _share(int(hit.sum()), routes.n_routes)


def _share(k: int, n: int) -> dict[str, float]:
    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    return {"intercepted": k, "routes": n, "share": k / n, "ci_low": ci.low, "ci_high": ci.high}


def naive_plan(
    router: Router,
    units: Sequence[PursuitUnit],
    origin: tuple[float, float],
    etas: FloatArray,
    k: int,
    routes: RouteSet,
    *,
    delay_s: float = DEFAULT_DELAY_S,
) -> dict[str, Any]:
    """The ``k`` nearest units drive to the incident; a route is intercepted where a unit's
    fastest path to the incident meets it in time (the unit passes the node first)."""
    _check_k(k)
    to_origin = np.array(
        [
            router.many_to_one(np.array([[u.lon, u.lat]]), origin, u.mode).seconds[0]
            if np.isfinite(row).any()
            else np.inf
            for u, row in zip(units, etas, strict=True)
        ]
    )
    nearest = [i for i in np.argsort(to_origin, kind="stable")[:k] if np.isfinite(to_origin[i])]
    hit = np.zeros(routes.n_routes, dtype=bool)
    r_of = routes.route_of
    back = {m: router.node_times_to(origin, m)[0] for m in {units[i].mode for i in nearest}}
    for i in nearest:
        on_path = np.abs(etas[i] + back[units[i].mode] - to_origin[i]) <= 1e-6 * (1 + to_origin[i])
        at = on_path[routes.nodes]
        hit[r_of[at][delay_s + etas[i, routes.nodes[at]] <= routes.seconds[at]]] = True
    return {
        "units": [units[i].id for i in nearest],
        **_share(int(hit.sum()), routes.n_routes),
    }
