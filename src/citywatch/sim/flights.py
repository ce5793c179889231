"""Flight scenarios: for a fleet, the share of robberies whose offender the plan would intercept.

A scenario draws ``robberies`` robbery positions (seeded) on the streets patrol cars can reach
within :data:`ROBBERY_RADIUS_M` of a market of the pack (the setting of issue 15: snatch
thieves flee into wholesale markets).  For each robbery the offender's flight is simulated
(:class:`citywatch.pursuit.analysis.Flight`: near-shortest paths in his mode), every fleet gets
its exact checkpoint plan (:func:`citywatch.pursuit.intercept.solve`) on the planning routes,
and the plan is scored on a **fresh** route set of the same robbery (out of sample): ``p_i`` is
the share of that robbery's fresh routes intercepted, the probability that this offender is cut
off.  Every fleet meets the same robberies and the same routes (common random numbers), so the
fleets are compared robbery by robbery.

Fleets (:func:`market_fleets`), all built on the same station cars:

* ``cars``: ``cars_per_station`` patrol cars at every station;
* ``cars+motorcycle teams``: the same, plus ``teams`` motorcycle teams posted at markets;
* ``cars+market cars``: the same, plus as many patrol cars posted at the same markets, the
  control that separates *more units near markets* from *the motorcycle's access to lanes*.

The fleet-level share is the mean of ``p_i`` over robberies, with a 95 % percentile bootstrap
interval over robberies (:data:`BOOTSTRAP`, seeded); differences between fleets are bootstrapped
pairwise on the same robberies.  A motorcycle can only do better than a car where the pack has
ways cars may not use or faster motorcycle speeds: :func:`mode_gap` says how much of the
network that is (none in Manhattan).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Transformer

from citywatch.city.pack import CityPack
from citywatch.errors import DataError, ValidationError
from citywatch.pursuit.analysis import Flight
from citywatch.pursuit.intercept import (
    DEFAULT_DELAY_S,
    InterceptProblem,
    PursuitUnit,
    evaluate,
    naive_plan,
    solve,
    unit_etas,
)
from citywatch.pursuit.reach import Incident
from citywatch.pursuit.routes import node_xy
from citywatch.routing import Router
from citywatch.routing.speeds import Mode, edge_speeds_kph, mode_allows, parse_mode

__all__ = [
    "BOOTSTRAP",
    "ROBBERY_RADIUS_M",
    "FlightScenario",
    "FlightsResult",
    "bootstrap_mean",
    "market_fleets",
    "market_posts",
    "mode_gap",
    "robbery_nodes",
    "run_flights",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Robberies are drawn on car-reachable nodes within this distance of a market.
ROBBERY_RADIUS_M = 1000.0
#: Bootstrap resamples of the robbery-level shares.
BOOTSTRAP = 2000
#: Seed offset of the robbery draw (the route sets use ``seed + i``).
_DRAW_SEED = 7_919


@dataclass(frozen=True)
class FlightScenario:
    """One flight experiment on a pack (see the module docstring)."""

    robberies: int = 40
    routes: int = 300
    k: int = 6
    teams: int = 6
    cars_per_station: int = 3
    offender_mode: Mode = "motorcycle"
    delay_s: float = DEFAULT_DELAY_S
    horizon_s: float = 600.0
    seed: int = 0
    at: datetime = field(default_factory=lambda: datetime(2026, 12, 1, 20, 30, tzinfo=UTC))

    def __post_init__(self) -> None:
        if self.robberies < 2 or self.routes < 10 or self.k < 1 or self.teams < 1:
            raise ValidationError(
                "need at least 2 robberies, 10 routes, k >= 1 and one motorcycle team"
            )
        if self.cars_per_station < 0 or self.delay_s < 0 or self.horizon_s <= 0:
            raise ValidationError("cars per station and delay must be >= 0, horizon positive")
        parse_mode(self.offender_mode, field="offender_mode")


def mode_gap(pack: CityPack) -> dict[str, float]:
    """How much of the network motorcycles may use and cars may not, and how much of the car
    network motorcycles ride faster on (the only two ways a motorcycle team can beat a car)."""
    edges = pack.network.edges
    car, moto = mode_allows(edges, "car"), mode_allows(edges, "motorcycle")
    only = moto & ~car
    both = moto & car
    overrides = pack.speed_overrides
    v_car = edge_speeds_kph(edges, "car", overrides)
    v_moto = edge_speeds_kph(edges, "motorcycle", overrides)
    length = edges["length_m"].to_numpy(dtype=np.float64)
    faster = both & (v_moto > v_car + 1e-9)
    return {
        "edges": len(edges),
        "motorcycle_only_edges": int(only.sum()),
        "motorcycle_only_km": round(float(length[only].sum()) / 1000.0, 2),
        "car_km": round(float(length[car].sum()) / 1000.0, 2),
        "motorcycle_faster_km": round(float(length[faster].sum()) / 1000.0, 2),
    }


def _markets(pack: CityPack) -> list[Any]:
    out = [p.geometry.centroid for p in pack.places if p.kind == "market"]
    if not out:
        raise DataError(
            f"pack {pack.name} has no market places: the flight scenario posts motorcycle teams "
            "at markets and draws robberies near them (see `citywatch city places import`)"
        )
    return out


def _metric(router: Router, pts: Sequence[Any]) -> FloatArray:
    to_metric = Transformer.from_crs("EPSG:4326", router.crs, always_xy=True)
    x, y = to_metric.transform([p.x for p in pts], [p.y for p in pts])
    return np.column_stack([x, y])


def market_posts(pack: CityPack, router: Router, teams: int) -> list[tuple[float, float]]:
    """``teams`` market positions (lon, lat), spread out: the market with most markets within
    1 km first, then farthest-point order (deterministic)."""
    pts = _markets(pack)
    xy = _metric(router, pts)
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    chosen = [int(np.argmax((d <= 1000.0).sum(axis=1)))]
    while len(chosen) < min(teams, len(pts)):
        gap = d[:, chosen].min(axis=1)
        gap[chosen] = -1.0
        chosen.append(int(np.argmax(gap)))
    return [(float(pts[i].x), float(pts[i].y)) for i in chosen]


def market_fleets(
    pack: CityPack, router: Router, teams: int, cars_per_station: int
) -> dict[str, list[PursuitUnit]]:
    """The three fleets of the module docstring, keyed by name."""
    cars = [
        PursuitUnit(f"{s.id}-c{j + 1}", "patrol_car", "car", s.lon, s.lat)
        for s in pack.stations
        for j in range(cars_per_station)
    ]
    posts = market_posts(pack, router, teams)
    motos = [
        PursuitUnit(f"mkt{i + 1}-m", "motorcycle", "motorcycle", lon, lat)
        for i, (lon, lat) in enumerate(posts)
    ]
    market_cars = [
        PursuitUnit(f"mkt{i + 1}-c", "patrol_car", "car", lon, lat)
        for i, (lon, lat) in enumerate(posts)
    ]
    return {
        "cars": cars,
        "cars+motorcycle teams": [*cars, *motos],
        "cars+market cars": [*cars, *market_cars],
    }


def robbery_nodes(pack: CityPack, router: Router, n: int, seed: int) -> IntArray:
    """``n`` distinct nodes (seeded) on streets cars may use, within
    :data:`ROBBERY_RADIUS_M` of a market."""
    edges = pack.network.edges
    car = mode_allows(edges, "car")
    nodes = np.unique(np.r_[edges["u"].to_numpy()[car], edges["v"].to_numpy()[car]])
    xy = node_xy(router)[nodes]
    tree = shapely.STRtree(np.asarray(shapely.points(_metric(router, _markets(pack)))))
    near, _ = tree.query(
        shapely.points(xy[:, 0], xy[:, 1]), predicate="dwithin", distance=ROBBERY_RADIUS_M
    )
    pool = nodes[np.unique(near)]
    if len(pool) < n:
        raise ValidationError(
            f"only {len(pool)} car-reachable nodes lie within {ROBBERY_RADIUS_M:g} m of a market; "
            f"ask for at most that many robberies",
            field="robberies",
        )
    rng = np.random.default_rng(seed + _DRAW_SEED)
    return np.sort(rng.choice(pool, size=n, replace=False)).astype(np.int64)


def bootstrap_mean(values: FloatArray, seed: int, n: int = BOOTSTRAP) -> dict[str, float]:
    """Mean of ``values`` with its 95 % percentile bootstrap interval (resampling entries)."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n, len(values)))
    means = values[idx].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return {"mean": float(values.mean()), "ci_low": float(lo), "ci_high": float(hi)}


@dataclass
class FlightsResult:
    """Per-robbery shares of every fleet and their summaries."""

    scenario: FlightScenario
    pack: str
    fleets: dict[str, int]
    robberies: list[dict[str, Any]]
    mode_gap: dict[str, float]
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    differences: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        s = self.scenario
        return {
            "pack": self.pack,
            "scenario": {
                "robberies": s.robberies,
                "routes": s.routes,
                "k": s.k,
                "teams": s.teams,
                "cars_per_station": s.cars_per_station,
                "offender_mode": s.offender_mode,
                "delay_s": s.delay_s,
                "horizon_s": s.horizon_s,
                "seed": s.seed,
                "at": s.at.isoformat(),
                "robbery_radius_m": ROBBERY_RADIUS_M,
                "bootstrap": BOOTSTRAP,
            },
            "fleets": self.fleets,
            "mode_gap": self.mode_gap,
            "summary": self.summary,
            "differences": self.differences,
            "robberies": self.robberies,
        }


def run_flights(
    pack: CityPack,
    scenario: FlightScenario,
    *,
    router: Router | None = None,
    fleets: dict[str, Sequence[PursuitUnit]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> FlightsResult:
    """Fly the scenario: every robbery, every fleet (see the module docstring).

    Parameters
    ----------
    pack : CityPack
        A pack with market places.
    scenario : FlightScenario
    router : Router, optional
        The pack's router (built here by default).
    fleets : dict, optional
        Fleets by name (default :func:`market_fleets`); the first is the baseline of the
        differences.
    progress : callable, optional
        Called with the number of robberies done.

    Returns
    -------
    FlightsResult
    """
    s = scenario
    router = router or Router.from_pack(pack)
    fleets = dict(fleets or market_fleets(pack, router, s.teams, s.cars_per_station))
    etas = {name: unit_etas(router, units) for name, units in fleets.items()}
    nodes = robbery_nodes(pack, router, s.robberies, s.seed)
    lon = pack.network.nodes["lon"].to_numpy()
    lat = pack.network.nodes["lat"].to_numpy()
    rows: list[dict[str, Any]] = []
    for i, j in enumerate(nodes.tolist()):
        inc = Incident(float(lon[j]), float(lat[j]), s.at, s.offender_mode)
        flight = Flight.simulate(
            pack, inc, router=router, n_routes=s.routes, horizon_s=s.horizon_s, seed=s.seed + i
        )
        fresh = flight.fresh()
        row: dict[str, Any] = {"node": int(j), "lon": inc.lon, "lat": inc.lat}
        for name, units in fleets.items():
            e = etas[name]
            plan = solve(InterceptProblem.build(flight.routes, e, delay_s=s.delay_s), s.k)
            oos = evaluate(plan.units, plan.nodes, fresh, e, delay_s=s.delay_s)
            naive = naive_plan(router, units, (inc.lon, inc.lat), e, s.k, fresh, delay_s=s.delay_s)
            row[name] = {
                "share": oos["share"],
                "in_sample": plan.share,
                "naive": naive["share"],
                "method": plan.method,
                "motorcycles": int(sum(units[u].mode == "motorcycle" for u in plan.units)),
            }
        rows.append(row)
        if progress is not None:
            progress(i + 1)
    result = FlightsResult(
        s, pack.name, {k: len(v) for k, v in fleets.items()}, rows, mode_gap(pack)
    )
    base = next(iter(fleets))
    for k, name in enumerate(fleets):
        p = np.array([r[name]["share"] for r in rows])
        naive_p = np.array([r[name]["naive"] for r in rows])
        result.summary[name] = {
            "units": len(fleets[name]),
            "plan": bootstrap_mean(p, s.seed + k),
            "naive": bootstrap_mean(naive_p, s.seed + k),
            "motorcycles_per_plan": float(np.mean([r[name]["motorcycles"] for r in rows])),
        }
        if name != base:
            result.differences[f"{name} - {base}"] = bootstrap_mean(
                p - np.array([r[base]["share"] for r in rows]), s.seed + 100 + k
            )
    names = list(fleets)
    if len(names) >= 3:
        a, b = names[1], names[2]
        result.differences[f"{a} - {b}"] = bootstrap_mean(
            np.array([r[a]["share"] - r[b]["share"] for r in rows]), s.seed + 200
        )
    return result
