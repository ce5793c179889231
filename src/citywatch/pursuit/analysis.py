"""One pursuit analysis of an incident: rings, hiding ranking and interception plan, as data.

This is the pure core the CLI (and a future API route) calls; it reads nothing from disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import shapely

from citywatch.city.pack import CityPack
from citywatch.pursuit.hiding import rank_blocks, rank_places, to_geojson
from citywatch.pursuit.intercept import (
    DEFAULT_DELAY_S,
    InterceptProblem,
    PursuitUnit,
    evaluate,
    naive_plan,
    solve,
    unit_etas,
    unrouted,
)
from citywatch.pursuit.reach import Incident
from citywatch.pursuit.routes import (
    COVERED_WEIGHT,
    HEADING_KAPPA,
    HIDING_KIND_WEIGHT,
    HIDING_KINDS,
    NOISE_SIGMA,
    PLACE_RADIUS_M,
    RouteSet,
    destination_weights,
    node_xy,
    simulate_routes,
)
from citywatch.routing import Router
from citywatch.surveillance.coverage import CameraCoverage

__all__ = [
    "Flight",
    "assumptions",
    "camera_points",
    "covered_points",
    "hiding_report",
    "plan_report",
]

#: Seed offset of the out-of-sample route set.
FRESH_SEED_OFFSET = 1_000_003


@dataclass
class Flight:
    """The simulated flight of one incident: router, node coordinates, weights and routes."""

    pack: CityPack
    router: Router
    incident: Incident
    routes: RouteSet
    xy: np.ndarray
    weights: np.ndarray
    horizon_s: float

    @classmethod
    def simulate(
        cls,
        pack: CityPack,
        incident: Incident,
        *,
        router: Router | None = None,
        n_routes: int = 2000,
        horizon_s: float = 600.0,
        seed: int = 0,
        covered_xy: np.ndarray | None = None,
    ) -> Flight:
        """Simulate ``n_routes`` routes (``covered_xy``: camera-seen street points at the hour)."""
        router = router or Router.from_pack(pack)
        xy = node_xy(router)
        ox, oy = router._to_metric.transform(incident.lon, incident.lat)
        weights = destination_weights(
            xy,
            (ox, oy),
            places=pack.places,
            place_xy=metric_places(pack, router),
            covered_xy=covered_xy,
            heading_deg=incident.heading_deg,
        )
        routes = simulate_routes(
            router, incident, weights, n_routes=n_routes, horizon_s=horizon_s, seed=seed
        )
        return cls(pack, router, incident, routes, xy, weights, horizon_s)

    def fresh(self) -> RouteSet:
        """An independent route set of the same size (out-of-sample evaluation)."""
        return simulate_routes(
            self.router,
            self.incident,
            self.weights,
            n_routes=self.routes.n_routes,
            horizon_s=self.horizon_s,
            seed=self.routes.seed + FRESH_SEED_OFFSET,
        )


def camera_points(pack: CityPack, sensors: Sequence[Any], at: datetime) -> np.ndarray:
    """Street sample points (metric CRS) a working video sensor sees at the local hour of
    ``at``, from :class:`citywatch.surveillance.coverage.CameraCoverage` (power schedules and
    hours of operation included)."""
    return covered_points(CameraCoverage.build(pack, sensors), pack.timezone, at)


def covered_points(cov: CameraCoverage, timezone: str, at: datetime) -> np.ndarray:
    """Street sample points (metric CRS) of an already built coverage seen at the local hour
    of ``at`` (the API keeps one coverage of the registry and calls this per request)."""
    hour = at.astimezone(ZoneInfo(timezone)).hour
    seen = cov.seen_by_hour()[:, hour]
    return np.column_stack([cov.samples.x[seen], cov.samples.y[seen]])


def metric_places(pack: CityPack, router: Router) -> list[Any]:
    """The pack's place geometries in its metric CRS."""
    tr = router._to_metric
    return [
        shapely.transform(p.geometry, lambda c: np.column_stack(tr.transform(*c.T)))
        for p in pack.places
    ]


def assumptions(flight: Flight, cameras: bool) -> dict[str, Any]:
    """The model's assumptions, returned with every probability."""
    return {
        "model": "seeded route choice: near-shortest paths under log-normal edge-cost noise",
        "offender_mode": flight.incident.mode,
        "routes": flight.routes.n_routes,
        "seed": flight.routes.seed,
        "horizon_s": flight.horizon_s,
        "noise_sigma": NOISE_SIGMA,
        "hiding_kinds": list(HIDING_KINDS),
        "hiding_kind_weight": HIDING_KIND_WEIGHT,
        "place_radius_m": PLACE_RADIUS_M,
        "camera_weight": COVERED_WEIGHT if cameras else None,
        "heading_deg": flight.incident.heading_deg,
        "heading_kappa": HEADING_KAPPA if flight.incident.heading_deg is not None else None,
        "person_level_inputs": False,
    }


def hiding_report(flight: Flight, cameras: bool = False, top: int = 20) -> dict[str, Any]:
    """Places and blocks ranked by where routes end, with the assumptions."""
    places = rank_places(
        flight.routes, flight.xy, flight.pack.places, metric_places(flight.pack, flight.router)
    )
    blocks = rank_blocks(flight.routes, flight.xy, flight.router.crs, top)
    a = assumptions(flight, cameras)
    return {
        "assumptions": a,
        "places": places[:top],
        "blocks": blocks,
        "geojson": to_geojson([*places[:top], *blocks], a),
    }


def plan_report(
    flight: Flight, units: Sequence[PursuitUnit], k: int, *, delay_s: float = DEFAULT_DELAY_S
) -> dict[str, Any]:
    """The interception plan, its in- and out-of-sample shares, and the naive plan's."""
    etas = unit_etas(flight.router, units)
    problem = InterceptProblem.build(flight.routes, etas, delay_s=delay_s)
    plan = solve(problem, k)
    fresh = flight.fresh()
    nodes = flight.router.network.nodes
    checkpoints = [
        {
            "unit": units[u].id,
            "unit_type": units[u].unit_type,
            "mode": units[u].mode,
            "node": int(j),
            "lon": float(nodes["lon"].iloc[j]),
            "lat": float(nodes["lat"].iloc[j]),
            "eta_s": round(float(delay_s + etas[u, j]), 1),
        }
        for u, j in zip(plan.units.tolist(), plan.nodes.tolist(), strict=True)
    ]
    origin = (flight.incident.lon, flight.incident.lat)
    return {
        "method": plan.method,
        "k": k,
        "delay_s": delay_s,
        "units_available": len(units),
        "units_off_network": unrouted(units, etas),
        "pairs": len(problem.pair_unit),
        "evaluations": plan.evaluations,
        "in_sample": {
            "intercepted": plan.intercepted,
            "routes": plan.n_routes,
            "share": plan.share,
            "bound": plan.bound,
            "gap": plan.gap,
        },
        "out_of_sample": evaluate(plan.units, plan.nodes, fresh, etas, delay_s=delay_s),
        "naive": naive_plan(flight.router, units, origin, etas, k, fresh, delay_s=delay_s),
        "checkpoints": checkpoints,
    }
