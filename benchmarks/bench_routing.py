"""Many-to-one travel times (400 units to one incident, Router vs networkx), and the City-scale
recommendation benchmark: ``recommend()`` with 400 and 2,000 units of 4 modes on Manhattan,
Baltimore and Heidelberg, against networkx and scipy's bounded search in the same run.

Run: ``.venv/bin/python benchmarks/bench_routing.py`` (or ``make bench``).  The baseline is the
straightforward networkx approach on the same weights: a Dijkstra search from the incident's
nearest node on the reversed graph (networkx cannot snap to edges, so it answers node-to-node and
does less work than the Router).  Unit positions are snapped once and cached between queries, as
units stand still between AVL reports; the "cold" row re-snaps all 400 units on every query.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, summary_ms, timings

from citywatch.city import load_pack
from citywatch.dispatch.policy import (
    Fleet,
    IncidentView,
    UnitView,
    load_requirements,
    nearest,
    recommend,
    router_travel,
)
from citywatch.routing import MODES, Router

UNITS = 400
QUERIES = 200


def bench(pack_name: str) -> list[tuple[str, str, dict[str, float]]]:
    router = Router.from_pack(load_pack(pack_name))
    g = router.graph("car")
    rng = np.random.default_rng(42)
    lon, lat = router.network.lon, router.network.lat
    car_nodes = g.road_nodes
    units = car_nodes[rng.integers(0, len(car_nodes), UNITS)]
    unit_xy = np.column_stack([lon[units], lat[units]]) + rng.normal(0, 0.0001, (UNITS, 2))
    incidents = car_nodes[rng.integers(0, len(car_nodes), QUERIES)]
    it = iter(range(10**9))

    def citywatch_query() -> None:
        k = incidents[next(it) % QUERIES]
        router.many_to_one(unit_xy, (lon[k], lat[k]), "car")

    def citywatch_cold() -> None:
        router._snaps.clear()  # every unit snapped afresh, as after a full AVL refresh
        router._fixes.clear()
        citywatch_query()

    coo = g.seconds.tocoo()
    reverse = nx.DiGraph()
    reverse.add_weighted_edges_from(
        zip(coo.col.tolist(), coo.row.tolist(), coo.data.tolist(), strict=True)
    )
    it2 = iter(range(10**9))

    def networkx_query() -> None:
        k = int(incidents[next(it2) % QUERIES])
        dist = nx.single_source_dijkstra_path_length(reverse, k)
        [dist.get(int(u), np.inf) for u in units]

    return [
        (
            pack_name,
            "citywatch Router.many_to_one (edge-snapped, exact)",
            summary_ms(timings(citywatch_query, QUERIES)),
        ),
        (
            pack_name,
            "citywatch, units re-snapped every query (cold cache)",
            summary_ms(timings(citywatch_cold, QUERIES)),
        ),
        (
            pack_name,
            "networkx single_source_dijkstra (nodes only)",
            summary_ms(timings(networkx_query, QUERIES)),
        ),
    ]


SCALE_PACKS = ("manhattan", "baltimore", "heidelberg")
SCALE_QUERIES = 200
BASELINE_QUERIES = 10
MIX = {"patrol_car": 0.55, "motorcycle": 0.15, "foot": 0.2, "bicycle": 0.1}


def _scipy_bounded(router: Router, limit_s: float = 900.0) -> Any:
    """Baseline TravelFn: scipy Dijkstra from the incident's nearest node, bounded, node to node."""
    from scipy.sparse.csgraph import dijkstra
    from scipy.spatial import cKDTree

    lon, lat = router.network.lon, router.network.lat
    scale = np.cos(np.radians(float(np.mean(lat))))
    tree = cKDTree(np.column_stack([lon * scale, lat]))

    def travel(sources: np.ndarray, mode: str, target: tuple[float, float], limit: Any) -> Any:
        _, src = tree.query(np.column_stack([sources[:, 0] * scale, sources[:, 1]]))
        _, dst = tree.query([target[0] * scale, target[1]])
        g = router.graph(mode)  # type: ignore[arg-type]
        dist = dijkstra(g.seconds_rev, indices=int(dst), limit=limit_s if limit is None else limit)
        return dist[src], dist[src]

    return travel


def _networkx(router: Router) -> Any:
    """Baseline TravelFn: networkx Dijkstra (reversed graph) from the nearest node, unbounded."""
    from scipy.spatial import cKDTree

    lon, lat = router.network.lon, router.network.lat
    scale = np.cos(np.radians(float(np.mean(lat))))
    tree = cKDTree(np.column_stack([lon * scale, lat]))
    graphs: dict[str, nx.DiGraph] = {}

    def travel(sources: np.ndarray, mode: str, target: tuple[float, float], limit: Any) -> Any:
        if mode not in graphs:
            coo = router.graph(mode).seconds.tocoo()  # type: ignore[arg-type]
            graphs[mode] = nx.DiGraph()
            graphs[mode].add_weighted_edges_from(
                zip(coo.col.tolist(), coo.row.tolist(), coo.data.tolist(), strict=True)
            )
        _, src = tree.query(np.column_stack([sources[:, 0] * scale, sources[:, 1]]))
        _, dst = tree.query([target[0] * scale, target[1]])
        if int(dst) not in graphs[mode]:
            return np.full(len(src), np.inf), np.full(len(src), np.inf)
        dist = nx.single_source_dijkstra_path_length(graphs[mode], int(dst), cutoff=limit)
        secs = np.array([dist.get(int(n), np.inf) for n in src])
        return secs, secs

    return travel


def _timed(fn: Any, queries: int) -> dict[str, float]:
    """Wall and CPU p50/p99 (ms) of ``fn(j)`` for j in 0..queries-1, after one warm-up call."""
    fn(queries)
    wall, cpu = [], []
    for j in range(queries):
        w, c = time.perf_counter(), time.process_time()
        fn(j)
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    stats = summary_ms(wall)
    cpu_stats = summary_ms(cpu)
    stats["cpu_p50_ms"], stats["cpu_p99_ms"] = cpu_stats["p50_ms"], cpu_stats["p99_ms"]
    stats["cpu_s"] = sum(cpu)
    stats["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return stats


def bench_scale(
    pack_name: str, baselines: bool = True
) -> list[tuple[str, int, str, dict[str, float]]]:
    """recommend() with 400 and 2,000 units of four modes; Router vs the baselines."""
    pack = load_pack(pack_name)
    router = Router.from_pack(pack)
    rules = load_requirements()
    rng = np.random.default_rng(7)
    nodes = {m: router.graph(m).road_nodes for m in MODES}
    lon, lat = router.network.lon, router.network.lat
    rows = []
    for n_units in (400, 2000):
        types = rng.choice(list(MIX), size=n_units, p=list(MIX.values()))
        units = []
        for i, t in enumerate(types):
            mode = rules.mode_of(str(t))
            k = int(nodes[mode][rng.integers(len(nodes[mode]))])
            units.append(UnitView(f"u{i}", str(t), mode, None, float(lon[k]), float(lat[k])))
        # Incidents at nodes every mode can reach (a motorway node is off the foot network).
        common = nodes["car"]
        for m in MODES:
            common = np.intersect1d(common, nodes[m])
        targets = common[rng.integers(0, len(common), SCALE_QUERIES)]
        incidents = [
            IncidentView(f"i{j}", "theft", 3, float(lon[k]), float(lat[k]))
            for j, k in enumerate(targets)
        ]
        for label, travel, queries in [
            (
                "recommend() + Router (exact, bounded, edge-snapped)",
                router_travel(router),
                SCALE_QUERIES,
            ),
            (
                "recommend() + scipy dijkstra, 900 s bound (nodes)",
                _scipy_bounded(router),
                SCALE_QUERIES,
            ),
            ("recommend() + networkx dijkstra (nodes)", _networkx(router), BASELINE_QUERIES),
        ][: None if baselines else 1]:
            fleet = Fleet(units)  # built once per AVL fix (here: units stand still)
            stats = _timed(
                lambda j, t=travel, f=fleet, inc=incidents: recommend(
                    inc[j % len(inc)], f, t, nearest(), k=5
                ),
                queries,
            )
            stats["queries"] = queries
            rows.append((pack_name, n_units, label, stats))
    return rows


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packs", nargs="*", default=list(SCALE_PACKS))
    ap.add_argument("--no-baselines", action="store_true", help="CityWatch rows only")
    ap.add_argument("--scale-only", action="store_true", help="skip the many-to-one table")
    args = ap.parse_args()
    print(f"Machine: {machine()}")
    print(
        "\nRecommendation, 4 modes (55 % cars, 15 % motorcycles, 20 % foot, 10 % bicycles), k = 5"
    )
    print(f"Load average at start: {os.getloadavg()}")
    print(
        "| pack | nodes | units | method | queries | p50 ms | p99 ms | CPU p50 ms | CPU p99 ms "
        "| peak MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for pack in args.packs:
        nodes = len(load_pack(pack).network.nodes)
        for name, units, method, s in bench_scale(pack, not args.no_baselines):
            print(
                f"| {name} | {nodes:,} | {units:,} | {method} | {s['queries']:.0f} | "
                f"{s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['cpu_p50_ms']:.2f} | "
                f"{s['cpu_p99_ms']:.2f} | {s['peak_mib']:.0f} |",
                flush=True,
            )
    if args.scale_only:
        return
    print(f"Load average at end: {os.getloadavg()}")
    print()
    print(f"Many-to-one, {UNITS} units -> 1 incident, car, {QUERIES} random incidents\n")
    print("| pack | method | p50 ms | p99 ms | mean ms |\n|---|---|---|---|---|")
    for pack in ("manhattan", "shenzhen"):
        for name, method, s in bench(pack):
            cells = [f"{s[key]:.2f}" for key in ("p50_ms", "p99_ms", "mean_ms")]
            print(f"| {name} | {method} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
