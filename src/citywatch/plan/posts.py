"""Patrol posts on a city pack: where idle units wait so that most demand is reached in time.

Demand comes from incidents (canonical frame) of one shift, snapped to the nearest road-network
node; candidate posts are network nodes (optionally a subset); travel times are exact shortest
paths on the pack's road graph for each unit type (``citywatch.routing``), so a motorcycle post
covers the nodes it reaches within the radius on the motorcycle graph, which includes alleys and
service ways that cars may not use.  The result is solved exactly by the models of
:mod:`citywatch.plan.coverage` with one site per (node, unit type), the number of units of each
type fixed by a site group, and optional bounds on units per station.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from pyproj import Transformer
from scipy.spatial import cKDTree

from citywatch.city import CityPack
from citywatch.city.pack import jurisdiction_sort_key
from citywatch.errors import DataError, OptionError, ValidationError
from citywatch.plan.coverage import (
    MCLP,
    MEXCLP,
    CoverageData,
    CoverageResult,
    SiteGroup,
)
from citywatch.routing import MODES, Mode, Router
from citywatch.routing.speeds import parse_mode

__all__ = [
    "NodeDemand",
    "PostsPlan",
    "city_coverage_data",
    "density_table",
    "incident_demand",
    "must_stay_nodes",
    "plan_posts",
    "reach_matrix",
    "road_node_demand",
    "thinned_nodes",
]


@dataclass(frozen=True)
class NodeDemand:
    """Demand weights aggregated on network nodes.

    Attributes
    ----------
    nodes : numpy.ndarray
        Network node positions with positive weight.
    weights : numpy.ndarray
        Weight per node (incident count, or summed ``weight``).
    used, off_network, no_location, outside_shift : int
        Incidents used, and incidents left out (farther than the pack's snap distance from any
        node, without coordinates, outside the shift hours) — reported, never dropped silently.
    """

    nodes: np.ndarray
    weights: np.ndarray
    used: int = 0
    off_network: int = 0
    no_location: int = 0
    outside_shift: int = 0


def _snap_to_nodes(
    pack: CityPack, lon: np.ndarray, lat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest network node of each point and the distance in metres (pack's metric CRS)."""
    to_metric = Transformer.from_crs("EPSG:4326", pack.crs, always_xy=True)
    nx, ny = to_metric.transform(pack.network.lon, pack.network.lat)
    px, py = to_metric.transform(lon, lat)
    dist, idx = cKDTree(np.column_stack([nx, ny])).query(np.column_stack([px, py]))
    return np.asarray(idx, dtype=np.int64), np.asarray(dist, dtype=np.float64)


def incident_demand(
    pack: CityPack,
    incidents: pd.DataFrame,
    shift: tuple[int, int] | None = None,
    max_snap_m: float | None = None,
) -> NodeDemand:
    """Count incidents of a shift on their nearest network nodes.

    Parameters
    ----------
    pack : CityPack
        The city pack (network, CRS, time zone, snap distance).
    incidents : pandas.DataFrame
        Canonical incidents (``lon``, ``lat``, ``received_at``; optional ``weight``).
    shift : (int, int), optional
        Local start and end hour, ``(7, 15)`` for 07:00-15:00; ``(23, 7)`` wraps midnight.
        Incidents with only day or month precision cannot be placed in a shift and count as
        outside it.
    max_snap_m : float, optional
        Farther incidents count as off network (default: the pack's snap distance).

    Raises
    ------
    DataError
        When required columns are missing or no incident remains.
    """
    for column in ("lon", "lat"):
        if column not in incidents.columns:
            raise DataError(f"incidents: missing column {column!r}")
    frame = incidents
    outside = 0
    if shift is not None:
        start, end = shift
        if not (0 <= start <= 23 and 0 <= end <= 24 and start != end):
            raise ValidationError("a shift is two different hours 0-24, e.g. 7-15", field="shift")
        if "received_at" not in frame.columns:
            raise DataError("incidents: a shift needs the received_at column")
        local = pd.to_datetime(frame["received_at"], utc=True).dt.tz_convert(pack.timezone)
        hour = local.dt.hour.to_numpy()
        inside = (hour >= start) & (hour < end) if start < end else (hour >= start) | (hour < end)
        if "time_precision" in frame.columns:
            inside &= (frame["time_precision"].fillna("exact") == "exact").to_numpy()
        outside = int((~inside).sum())
        frame = frame[inside]
    lon = pd.to_numeric(frame["lon"], errors="coerce").to_numpy(dtype=np.float64)
    lat = pd.to_numeric(frame["lat"], errors="coerce").to_numpy(dtype=np.float64)
    located = np.isfinite(lon) & np.isfinite(lat)
    weight = (
        pd.to_numeric(frame["weight"], errors="coerce").fillna(0).to_numpy(dtype=np.float64)
        if "weight" in frame.columns
        else np.ones(len(frame))
    )
    node, dist = _snap_to_nodes(pack, lon[located], lat[located])
    near = dist <= (pack.max_snap_m if max_snap_m is None else max_snap_m)
    totals = np.bincount(node[near], weight[located][near], len(pack.network.lon))
    nodes = np.nonzero(totals > 0)[0]
    if len(nodes) == 0:
        raise DataError("no incident of this shift lies on the pack's road network")
    return NodeDemand(
        nodes=nodes,
        weights=totals[nodes],
        used=int(near.sum()),
        off_network=int((~near).sum()),
        no_location=int((~located).sum()),
        outside_shift=outside,
    )


def road_node_demand(router: Any, mode: str = "car") -> NodeDemand:
    """Uniform demand: weight 1 on every node of ``mode``'s road network.

    Synthetic (the shape of the city's streets, not its incidents): for planning a city whose
    incidents are not in the store, or to ask how much of the street network posts can reach.
    """
    g = router.graph(mode)
    nodes = g.road_nodes
    return NodeDemand(nodes=nodes, weights=np.ones(len(nodes)), used=len(nodes))


def thinned_nodes(pack: Any, router: Any, spacing_m: float, mode: str = "car") -> np.ndarray:
    """Candidate posts on a grid: in each ``spacing_m`` square cell (pack's metric CRS), the road
    node of ``mode`` nearest the cell's centre.  Sorted node positions."""
    if not spacing_m > 0:
        raise ValidationError("the post spacing must be positive", field="spacing_m")
    nodes = road_node_demand(router, mode).nodes
    to_metric = Transformer.from_crs("EPSG:4326", pack.crs, always_xy=True)
    x, y = to_metric.transform(pack.network.lon[nodes], pack.network.lat[nodes])
    x, y = np.asarray(x), np.asarray(y)
    cx, cy = np.floor(x / spacing_m), np.floor(y / spacing_m)
    off = np.hypot(x - (cx + 0.5) * spacing_m, y - (cy + 0.5) * spacing_m)
    order = np.lexsort((off, cy, cx))  # per cell, nearest the centre first
    cell = np.column_stack([cx[order], cy[order]])
    first = np.ones(len(order), dtype=bool)
    first[1:] = np.any(cell[1:] != cell[:-1], axis=1)
    return np.sort(nodes[order[first]])


def reach_matrix(
    router: Router, mode: Mode, sources: np.ndarray, targets: np.ndarray, radius_s: float
) -> sp.csr_array:
    """Travel seconds from each source node to each target node, kept only within ``radius_s``.

    Returns a sparse ``(len(targets), len(sources))`` matrix (demand by site) holding
    ``seconds + 1`` so that a zero-second pair (a post on the incident's node) stays stored.
    One bounded search per source (:meth:`~citywatch.routing.Router.node_reach`): memory grows
    with the pairs within the radius, not with sources x network nodes.
    """
    target_pos = np.full(router.graph(mode).n_nodes, -1, dtype=np.int64)
    target_pos[targets] = np.arange(len(targets))
    src, node, secs = router.node_reach(mode, sources, radius_s)
    keep = target_pos[node] >= 0
    return sp.csr_array(
        (secs[keep] + 1.0, (target_pos[node[keep]], src[keep])),
        shape=(len(targets), len(sources)),
    )


def city_coverage_data(
    pack: CityPack,
    demand: pd.DataFrame | NodeDemand,
    radius_s: float,
    mode: Mode = "car",
    router: Router | None = None,
    candidates: np.ndarray | None = None,
    fixed_nodes: np.ndarray | None = None,
) -> CoverageData:
    """Coverage data on a pack's network for :class:`~citywatch.plan.coverage.MCLP` and friends.

    ``demand`` has ``lon, lat`` and optional ``weight``; it is snapped to nodes (off-network
    points raise); or it is already on nodes (:func:`road_node_demand`).  Sites are
    ``candidates`` (node positions; default every node).
    """
    router = Router.from_pack(pack) if router is None else router
    node_demand = demand if isinstance(demand, NodeDemand) else incident_demand(pack, demand)
    if node_demand.off_network or node_demand.no_location:
        raise DataError(
            f"{node_demand.off_network + node_demand.no_location} demand point(s) are not on "
            "the road network"
        )
    sites = np.arange(len(pack.network.lon)) if candidates is None else np.asarray(candidates)
    reach = reach_matrix(router, mode, sites, node_demand.nodes, radius_s)
    fixed = np.isin(sites, [] if fixed_nodes is None else fixed_nodes)
    node_ids = pack.network.nodes["node_id"].astype(str).to_numpy()
    return CoverageData(
        demand_ids=node_ids[node_demand.nodes],
        weights=node_demand.weights,
        site_ids=node_ids[sites],
        cover=sp.csr_array((reach > 0).astype(np.float64)),
        fixed=fixed,
    )


@dataclass
class PostsPlan:
    """Posts chosen on a city pack, with the coverage of the current posts for comparison."""

    result: CoverageResult
    posts: pd.DataFrame
    current: pd.DataFrame
    current_covered_share: float | None
    demand: NodeDemand
    radius_s: float
    density: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: Wall seconds of travel times and model data (before HiGHS; its time is ``result.seconds``).
    build_seconds: float = 0.0

    @property
    def covered_share(self) -> float:
        """Share of demand weight within the radius of a post."""
        return self.result.covered_weight / float(self.result.weights.sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON document of ``citywatch plan posts --json``."""
        return {
            **self.result.to_dict(),
            "radius_s": self.radius_s,
            "build_seconds": self.build_seconds,
            "covered_share": self.covered_share,
            "current_covered_share": self.current_covered_share,
            "posts": self.posts.to_dict(orient="records"),
            "current_posts": self.current.to_dict(orient="records"),
            "incidents": {
                "used": self.demand.used,
                "off_network": self.demand.off_network,
                "no_location": self.demand.no_location,
                "outside_shift": self.demand.outside_shift,
            },
            "density": self.density.to_dict(orient="records"),
        }

    def geojson(self) -> dict[str, Any]:
        """Posts (``kind="post"``) and current posts (``kind="current"``) as GeoJSON points."""
        features = []
        for kind, table in (("post", self.posts), ("current", self.current)):
            for row in table.to_dict(orient="records"):
                features.append(
                    {
                        "type": "Feature",
                        "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
                        "properties": {
                            "kind": kind,
                            **{k: row[k] for k in row if k not in ("lon", "lat")},
                        },
                    }
                )
        return {
            "type": "FeatureCollection",
            "features": features,
            "attribution": "© OpenStreetMap contributors",
        }

    def write_geojson(self, path: str | Path) -> None:
        """Write :meth:`geojson` to ``path``."""
        Path(path).write_text(json.dumps(self.geojson(), ensure_ascii=False), encoding="utf-8")

    def write_png(self, pack: CityPack, path: str | Path) -> None:
        """Map of the network, demand (covered / not covered) and posts, as a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        lon, lat = pack.network.lon, pack.network.lat
        fig, ax = plt.subplots(figsize=(8, 10), dpi=120)
        ax.scatter(lon, lat, s=0.3, c="#cccccc", label="road nodes")
        covered = self.result.covered
        nodes = self.demand.nodes
        size = 4 + 20 * self.demand.weights / max(float(self.demand.weights.max()), 1.0)
        ax.scatter(
            lon[nodes][covered],
            lat[nodes][covered],
            s=size[covered],
            c="#2b8cbe",
            alpha=0.6,
            label="demand covered",
        )
        ax.scatter(
            lon[nodes][~covered],
            lat[nodes][~covered],
            s=size[~covered],
            c="#e34a33",
            alpha=0.6,
            label="demand not covered",
        )
        if len(self.current):
            ax.scatter(
                self.current["lon"],
                self.current["lat"],
                marker="s",
                s=30,
                facecolors="none",
                edgecolors="black",
                label="current posts",
            )
        for mode, marker in (("car", "^"), ("motorcycle", "D"), ("bicycle", "o"), ("foot", "v")):
            chosen = self.posts[self.posts["mode"] == mode]
            if len(chosen):
                ax.scatter(
                    chosen["lon"],
                    chosen["lat"],
                    marker=marker,
                    s=50,
                    c="#31a354",
                    edgecolors="black",
                    label=f"{mode} posts",
                )
        ax.set_title(
            f"{pack.name}: {len(self.posts)} posts, {self.covered_share:.1%} of demand "
            f"within {self.radius_s:.0f} s"
        )
        ax.legend(loc="lower right", fontsize=7)
        ax.set_aspect(1 / np.cos(np.deg2rad(float(np.mean(lat)))))
        ax.text(0.01, 0.01, "© OpenStreetMap contributors", transform=ax.transAxes, fontsize=6)
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)


def _station_posts(pack: CityPack) -> pd.DataFrame:
    """Current posts: the pack's stations snapped to their nearest network node."""
    if not pack.stations:
        return pd.DataFrame(columns=["node", "node_id", "lon", "lat", "station"])
    lon = np.array([s.lon for s in pack.stations])
    lat = np.array([s.lat for s in pack.stations])
    node, _ = _snap_to_nodes(pack, lon, lat)
    return pd.DataFrame(
        {
            "node": node,
            "node_id": pack.network.nodes["node_id"].astype(str).to_numpy()[node],
            "lon": pack.network.lon[node],
            "lat": pack.network.lat[node],
            "station": [s.jurisdiction for s in pack.stations],
        }
    )


def must_stay_nodes(
    pack: CityPack,
    units: Mapping[str, int],
    *,
    fixed_nodes: npt.ArrayLike | None = None,
    keep_current: bool = False,
) -> npt.NDArray[np.int64]:
    """The network nodes that keep a car: ``fixed_nodes`` and, with ``keep_current``, the
    stations' nodes.  Cheap, so that a plan that cannot work fails before any travel time.

    Raises
    ------
    ValidationError
        If posts must stay but fewer cars than posts are given.
    """
    must_stay = np.zeros(0, dtype=np.int64) if fixed_nodes is None else np.asarray(fixed_nodes)
    if keep_current:
        must_stay = np.union1d(must_stay, _station_posts(pack)["node"].to_numpy())
    cars = int(units.get("car", 0))
    if len(must_stay) > cars:
        what = "current posts (stations)" if keep_current else "posts"
        raise OptionError(
            f"{len(must_stay)} {what} must stay but only {cars} cars are given: "
            f"use --cars {len(must_stay)} or more",
            field="cars",
        )
    return must_stay.astype(np.int64)


def density_table(
    pack: CityPack, before: pd.Series, after: pd.Series, officers_per_unit: float = 2.0
) -> pd.DataFrame:
    """Units and officers per km² of each station's jurisdiction, before and after a plan.

    ``before`` and ``after`` count units by station id.
    """
    rows = []
    for station in sorted(pack.level("station"), key=lambda s: jurisdiction_sort_key(s.id)):
        area = pack.area_km2(station.id)
        b, a = int(before.get(station.id, 0)), int(after.get(station.id, 0))
        rows.append(
            {
                "station": station.id,
                "area_km2": area,
                "units_before": b,
                "units_after": a,
                "units_per_km2_before": b / area,
                "units_per_km2_after": a / area,
                "officers_per_km2_before": b * officers_per_unit / area,
                "officers_per_km2_after": a * officers_per_unit / area,
            }
        )
    return pd.DataFrame(rows)


def _distinct_sites(
    cover: sp.csr_array, mode: np.ndarray, station: np.ndarray, fixed: np.ndarray
) -> np.ndarray:
    """Indices of the first site of each (mode, station, fixed, covered set) class."""
    csc = sp.csc_array(cover)
    csc.sort_indices()
    seen: set[tuple[Any, ...]] = set()
    keep = []
    for j in range(csc.shape[1]):
        key = (
            mode[j],
            station[j],
            bool(fixed[j]),
            csc.indices[csc.indptr[j] : csc.indptr[j + 1]].tobytes(),
        )
        if fixed[j] or key not in seen:
            seen.add(key)
            keep.append(j)
    return np.asarray(keep, dtype=np.int64)


def plan_posts(
    pack: CityPack,
    demand: NodeDemand,
    units: Mapping[str, int],
    radius_s: float,
    *,
    router: Router | None = None,
    candidates: np.ndarray | None = None,
    fixed_nodes: np.ndarray | None = None,
    keep_current: bool = False,
    min_per_station: int = 0,
    max_per_station: int | None = None,
    busy_fraction: float | None = None,
    officers_per_unit: float = 2.0,
    time_limit: float | None = None,
) -> PostsPlan:
    """Choose posts for ``units`` (per unit type) maximising demand reached within ``radius_s``.

    Parameters
    ----------
    pack : CityPack
    demand : NodeDemand
        From :func:`incident_demand`.
    units : dict
        Units per travel mode, e.g. ``{"car": 20, "motorcycle": 5}``.
    radius_s : float
        Response-time radius in seconds (inclusive).
    router : Router, optional
        Default ``Router.from_pack(pack)``.
    candidates : numpy.ndarray, optional
        Node positions allowed as posts (default: every node).
    fixed_nodes : numpy.ndarray, optional
        Node positions of existing posts that must stay (one car each).
    keep_current : bool
        The current posts (the pack's stations) keep one car each.
    min_per_station, max_per_station : int
        Bounds on the posts inside each station's jurisdiction.
    busy_fraction : float, optional
        Use MEXCLP with this busy fraction instead of MCLP.
    officers_per_unit : float
        For the density table.
    time_limit : float, optional
        Seconds for HiGHS; the gap is reported when reached.

    Raises
    ------
    ValidationError
        On unknown modes or no units.
    """
    for name in units:
        if name not in MODES:
            raise ValidationError(f"unknown unit type {name!r}; choose from {', '.join(MODES)}")
    fleet = {parse_mode(name): int(n) for name, n in units.items() if int(n) > 0}
    if not fleet:
        raise ValidationError("give at least one unit", field="units")
    started = time.perf_counter()
    router = Router.from_pack(pack) if router is None else router
    current = _station_posts(pack)
    must_stay = must_stay_nodes(pack, units, fixed_nodes=fixed_nodes, keep_current=keep_current)
    nodes = np.arange(len(pack.network.lon)) if candidates is None else np.asarray(candidates)
    nodes = np.union1d(nodes, must_stay).astype(np.int64)
    modes = list(fleet)
    blocks = [reach_matrix(router, mode, nodes, demand.nodes, radius_s) for mode in modes]
    cover = sp.csr_array((sp.hstack(blocks) > 0).astype(np.float64))
    site_mode = np.repeat(np.array(modes, dtype=object), len(nodes))
    site_node = np.tile(nodes, len(modes))
    node_ids = pack.network.nodes["node_id"].astype(str).to_numpy()
    fixed = np.isin(site_node, must_stay) & (site_mode == "car")
    station_of_node = pack.locate_many(pack.network.lon[nodes], pack.network.lat[nodes])["station"]
    site_station = np.tile(station_of_node.to_numpy(dtype=object), len(modes))
    if busy_fraction is None:
        # MCLP: of several sites with the same unit type, station and covered set, one is
        # enough (a second unit there adds nothing), so keep the first.  This shrinks city
        # instances a lot and spares HiGHS's presolve the work.
        keep = _distinct_sites(cover, site_mode, site_station, fixed)
        cover, site_mode, site_node, site_station, fixed = (
            sp.csr_array(cover[:, keep]),
            site_mode[keep],
            site_node[keep],
            site_station[keep],
            fixed[keep],
        )
    groups = [
        SiteGroup(mode, np.nonzero(site_mode == mode)[0], fleet[mode], fleet[mode])
        for mode in modes
    ]
    if min_per_station or max_per_station is not None:
        for station in pack.level("station"):
            members = np.nonzero(site_station == station.id)[0]
            groups.append(
                SiteGroup(f"station {station.id}", members, min_per_station, max_per_station)
            )
    data = CoverageData(
        demand_ids=node_ids[demand.nodes],
        weights=demand.weights,
        site_ids=np.array(
            [f"{m}:{n}" for m, n in zip(site_mode, node_ids[site_node], strict=True)],
            dtype=object,
        ),
        cover=cover,
        fixed=fixed,
    )
    total = sum(fleet.values())
    build_seconds = time.perf_counter() - started
    model = (
        MCLP(data, total, groups)
        if busy_fraction is None
        else MEXCLP(data, total, busy_fraction, groups)
    )
    result = model.solve(time_limit=time_limit)
    chosen = np.nonzero(result.selected)[0]
    posts = pd.DataFrame(
        {
            "mode": site_mode[chosen],
            "node_id": node_ids[site_node[chosen]],
            "lon": pack.network.lon[site_node[chosen]],
            "lat": pack.network.lat[site_node[chosen]],
            "station": site_station[chosen],
        }
    )
    current_share = None
    if len(current) and "car" in fleet:
        car_reach = blocks[modes.index("car")]
        at = np.isin(nodes, current["node"])
        reached = np.asarray((car_reach[:, np.nonzero(at)[0]] > 0).sum(axis=1)).ravel() > 0
        current_share = float(demand.weights[reached].sum() / demand.weights.sum())
    density = density_table(
        pack,
        current["station"].value_counts(),
        posts["station"].value_counts(),
        officers_per_unit,
    )
    return PostsPlan(
        result=result,
        posts=posts,
        current=current.drop(columns="node"),
        current_covered_share=current_share,
        demand=demand,
        radius_s=radius_s,
        density=density,
        build_seconds=build_seconds,
    )
