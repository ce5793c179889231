"""Exact camera placement and backup-power choice, as MCLPs solved with HiGHS.

Both problems reuse :class:`citywatch.plan.coverage.MCLP` (Church & ReVelle's maximal covering
model).  Demand points are the street sample points, weighted by **incident-weighted street
length**: a sample's weight is its length times ``1 + n``, ``n`` the number of incidents on its
street segment (a metre of street counts once, and once more for every incident on its block).

*New cameras* (:func:`place_cameras`): choose ``k`` candidate sites (intersections) maximising
the weight of samples newly covered, hour by hour, with the existing cameras fixed.  What the
existing cameras already cover at an hour is covered whichever sites are chosen, so it is taken
out of the demand up front (a sample's weight is scaled by the share of the hours it is not yet
seen); the optimum is the one of the MCLP with the existing cameras as fixed sites.

*Backup power* (:func:`choose_backup`): the demand rows are (sample, night hour) pairs not seen
by the cameras working at that hour; a camera that is dark at an hour for lack of power (its
schedule, or a mains cut) covers the rows it would see there if it had backup power; choose at
most ``budget`` cameras.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from citywatch.errors import ValidationError
from citywatch.plan.coverage import MCLP, CoverageData, CoverageResult
from citywatch.surveillance.coverage import NIGHT_HOURS, CameraCoverage
from citywatch.surveillance.sensors import DEFAULT_FOV_DEG, DEFAULT_RANGE_M, HOURS, SensorKind
from citywatch.surveillance.visibility import StreetPoints, Viewpoints, visibility_matrix

__all__ = [
    "NewCameraProblem",
    "PlacementResult",
    "candidate_intersections",
    "choose_backup",
    "new_camera_problem",
    "place_cameras",
    "sample_weights",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PlacementResult:
    """Chosen sites and the weight covered before and after.

    ``chosen`` lists the chosen sites (``id``, ``lon``, ``lat``); weights are in
    incident-weighted metres averaged over the hours considered.
    """

    problem: str
    chosen: list[dict[str, Any]]
    weight_before: float
    weight_after: float
    total_weight: float
    solver: CoverageResult | None

    def to_dict(self) -> dict[str, Any]:
        """JSON document of ``citywatch surveillance place --json``."""
        return {
            "problem": self.problem,
            "chosen": self.chosen,
            "weight_before": self.weight_before,
            "weight_after": self.weight_after,
            "total_weight": self.total_weight,
            "share_before": self.weight_before / self.total_weight,
            "share_after": self.weight_after / self.total_weight,
            "status": self.solver.status if self.solver else "trivial",
            "gap": self.solver.gap if self.solver else 0.0,
            "seconds": self.solver.seconds if self.solver else 0.0,
        }


def sample_weights(cov: CameraCoverage, incidents: pd.DataFrame | None = None) -> FloatArray:
    """Incident-weighted length of every sample: ``length * (1 + incidents on its segment)``."""
    length = cov.samples.length_m
    if incidents is None or not len(incidents):
        return length.copy()
    per_segment = cov.incidents_by_segment(incidents)
    return length * (1.0 + per_segment[cov.samples.segment])


def _hours(hours: Iterable[int] | None) -> IntArray:
    chosen = np.arange(HOURS) if hours is None else np.asarray(list(hours), dtype=np.int64)
    if len(chosen) == 0 or np.any((chosen < 0) | (chosen >= HOURS)):
        raise ValidationError("hours must be a non-empty list of local hours 0..23", field="hours")
    return np.unique(chosen)


def candidate_intersections(cov: CameraCoverage, min_degree: int = 3) -> IntArray:
    """Network nodes where at least ``min_degree`` street segments meet."""
    s = cov.streets
    degree = np.bincount(np.concatenate([s.u, s.v]), minlength=s.n_nodes)
    return np.nonzero(degree >= min_degree)[0].astype(np.int64)


def _node_viewpoints(cov: CameraCoverage, nodes: IntArray, kind: SensorKind) -> Viewpoints:
    s = cov.streets
    ends = np.concatenate([s.u, s.v])
    seg_of_end = np.concatenate([np.arange(len(s)), np.arange(len(s))])
    first = pd.Series(seg_of_end).groupby(ends).first()
    if not np.isin(nodes, first.index.to_numpy()).all():
        raise ValidationError("a candidate node lies on no street segment", field="candidates")
    segment = first.reindex(nodes).to_numpy(dtype=np.int64)
    offset = np.where(s.u[segment] == nodes, 0.0, s.length_m[segment])
    n = len(nodes)
    return Viewpoints(
        at=StreetPoints(segment, offset, s.node_x[nodes], s.node_y[nodes]),
        range_m=np.full(n, DEFAULT_RANGE_M[kind]),
        fov_deg=np.full(n, DEFAULT_FOV_DEG[kind] if kind is SensorKind.PTZ else 360.0),
        direction_deg=np.full(n, np.nan),
    )


def _model(cover: sp.csr_array, weights: FloatArray, units: int) -> MCLP:
    """The MCLP over the demand rows some site covers and that still carry weight."""
    keep = (weights > 0) & (np.diff(cover.indptr) > 0)
    rows = np.nonzero(keep)[0]
    if len(rows) == 0:
        raise ValidationError("no candidate can cover anything not covered already")
    data = CoverageData(
        demand_ids=rows.astype(str).astype(object),
        weights=weights[rows],
        site_ids=np.arange(cover.shape[1]).astype(str).astype(object),
        cover=sp.csr_array(cover[rows], dtype=np.float64),
        fixed=np.zeros(cover.shape[1], dtype=bool),
    )
    return MCLP(data, units=units)


@dataclass(frozen=True)
class NewCameraProblem:
    """The new-camera MCLP and what maps its answer back: candidate ``nodes`` (its sites, in
    order), sample ``weights`` and their ``residual`` (weight not yet seen, hour-averaged)."""

    model: MCLP
    nodes: IntArray
    weights: FloatArray
    residual: FloatArray


def new_camera_problem(
    cov: CameraCoverage,
    k: int,
    *,
    candidates: Sequence[int] | npt.NDArray[np.int64] | None = None,
    kind: SensorKind = SensorKind.PTZ,
    incidents: pd.DataFrame | None = None,
    hours: Iterable[int] | None = None,
    working: npt.NDArray[np.bool_] | None = None,
) -> NewCameraProblem:
    """Build the MCLP of :func:`place_cameras` (same parameters) without solving it."""
    nodes = (
        candidate_intersections(cov)
        if candidates is None
        else np.asarray(list(candidates), dtype=np.int64)
    )
    hour_idx = _hours(hours)
    weights = sample_weights(cov, incidents)
    seen = cov.seen_by_hour(working)[:, hour_idx]
    residual = weights * (~seen).mean(axis=1)
    points = StreetPoints(cov.samples.segment, cov.samples.offset_m, cov.samples.x, cov.samples.y)
    cover = visibility_matrix(cov.streets, points, _node_viewpoints(cov, nodes, kind))
    useful = np.nonzero(np.asarray(cover[residual > 0].sum(axis=0)).ravel() > 0)[0]
    if not 1 <= k <= len(useful):
        raise ValidationError(
            f"k must be between 1 and the {len(useful)} candidates that would see an uncovered "
            "street",
            field="k",
        )
    model = _model(sp.csr_array(cover[:, useful]), residual, k)
    return NewCameraProblem(model, nodes[useful], weights, residual)


def place_cameras(
    cov: CameraCoverage,
    k: int,
    *,
    candidates: Sequence[int] | npt.NDArray[np.int64] | None = None,
    kind: SensorKind = SensorKind.PTZ,
    incidents: pd.DataFrame | None = None,
    hours: Iterable[int] | None = None,
    working: npt.NDArray[np.bool_] | None = None,
) -> PlacementResult:
    """Choose ``k`` new camera sites among candidate nodes, exactly (module docstring).

    Parameters
    ----------
    cov : CameraCoverage
        The existing cameras (fixed).
    k : int
        New cameras to place.
    candidates : sequence of int, optional
        Candidate network nodes (default: :func:`candidate_intersections`).
    kind : SensorKind
        What the new cameras are; they get the kind's default range, see all round and are
        on mains power all day.
    incidents : pandas.DataFrame, optional
        Incidents weighting the streets.
    hours : iterable of int, optional
        Local hours to cover (default all 24).
    working : numpy.ndarray, optional
        Working flags of the existing cameras (default: status and power schedules).

    Raises
    ------
    ValidationError
        When ``k`` is not between 1 and the number of useful candidates.
    SolverError
        When HiGHS does not prove optimality.
    """
    problem = new_camera_problem(
        cov,
        k,
        candidates=candidates,
        kind=kind,
        incidents=incidents,
        hours=hours,
        working=working,
    )
    result = problem.model.solve()
    picked = problem.nodes[result.selected]
    lon, lat = cov.pack.network.lon[picked], cov.pack.network.lat[picked]
    node_ids = cov.pack.network.nodes["node_id"].to_numpy()[picked]
    before = float((problem.weights - problem.residual).sum())
    return PlacementResult(
        problem="new_cameras",
        chosen=[
            {"node": str(n), "lon": float(x), "lat": float(y)}
            for n, x, y in zip(node_ids, lon, lat, strict=True)
        ],
        weight_before=before,
        weight_after=before + result.covered_weight,
        total_weight=float(problem.weights.sum()),
        solver=result,
    )


def choose_backup(
    cov: CameraCoverage,
    budget: int,
    *,
    hours: Iterable[int] = NIGHT_HOURS,
    power_cut: bool = False,
    outages: Iterable[str] = (),
    incidents: pd.DataFrame | None = None,
) -> PlacementResult:
    """Choose at most ``budget`` cameras to get backup power, maximising night coverage.

    Without ``power_cut`` a camera is dark at night only by its own power schedule; with it,
    mains power is cut at every one of ``hours``.  Weights are incident-weighted metres
    averaged over ``hours``.

    Raises
    ------
    ValidationError
        On a negative budget.
    SolverError
        When HiGHS does not prove optimality.
    """
    if budget < 0:
        raise ValidationError("the backup budget must be non-negative", field="budget")
    hour_idx = _hours(hours)
    outages = list(outages)
    cut = list(hour_idx) if power_cut else []
    base = cov.working(outages, cut)[hour_idx]  # (H, sensors)
    able = cov.working(outages, backup=cov.ids)[hour_idx]  # working with backup power
    dark = able & ~base
    candidates = np.nonzero(dark.any(axis=0))[0]
    weights = sample_weights(cov, incidents) / len(hour_idx)
    seen = cov.seen_by_hour(cov.working(outages, cut))[:, hour_idx]
    covered_before = float((weights[:, None] * seen).sum())
    total = float(weights.sum() * len(hour_idx))
    ids = np.asarray(cov.ids, dtype=object)

    def result(chosen: npt.NDArray[np.int64], solver: CoverageResult | None) -> PlacementResult:
        after = cov.seen_by_hour(cov.working(outages, cut, ids[chosen]))[:, hour_idx]
        return PlacementResult(
            problem="backup_power",
            chosen=[{"id": str(ids[j])} for j in chosen],
            weight_before=covered_before,
            weight_after=float((weights[:, None] * after).sum()),
            total_weight=total,
            solver=solver,
        )

    if budget == 0 or len(candidates) == 0:
        return result(np.zeros(0, dtype=np.int64), None)
    if budget >= len(candidates):
        return result(candidates, None)
    seen_c = cov.seen[:, candidates]
    blocks = [seen_c.multiply(dark[h, candidates][None, :]) for h in range(len(hour_idx))]
    cover = sp.csr_array(sp.vstack(blocks))
    row_weight = np.concatenate([weights * ~seen[:, h] for h in range(len(hour_idx))])
    solved = _model(cover, row_weight, budget).solve()
    return result(candidates[solved.selected], solved)
