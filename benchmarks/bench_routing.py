"""Many-to-one travel times: 400 units to one incident, CityWatch Router vs networkx.

Run: ``.venv/bin/python benchmarks/bench_routing.py`` (or ``make bench``).  The baseline is the
straightforward networkx approach on the same weights: a Dijkstra search from the incident's
nearest node on the reversed graph (networkx cannot snap to edges, so it answers node-to-node and
does less work than the Router).  Unit positions are snapped once and cached between queries, as
units stand still between AVL reports; the "cold" row re-snaps all 400 units on every query.
"""

from __future__ import annotations

import sys
from pathlib import Path

import networkx as nx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, summary_ms, timings

from citywatch.city import load_pack
from citywatch.routing import Router

UNITS = 400
QUERIES = 200


def bench(pack_name: str) -> list[tuple[str, str, dict[str, float]]]:
    router = Router.from_pack(load_pack(pack_name))
    g = router.graph("car")
    rng = np.random.default_rng(42)
    lon, lat = router.network.lon, router.network.lat
    car_nodes = np.unique(np.concatenate([g.seg_a, g.seg_b]))
    units = car_nodes[rng.integers(0, len(car_nodes), UNITS)]
    unit_xy = np.column_stack([lon[units], lat[units]]) + rng.normal(0, 0.0001, (UNITS, 2))
    incidents = car_nodes[rng.integers(0, len(car_nodes), QUERIES)]
    it = iter(range(10**9))

    def citywatch_query() -> None:
        k = incidents[next(it) % QUERIES]
        router.many_to_one(unit_xy, (lon[k], lat[k]), "car")

    def citywatch_cold() -> None:
        router._snaps.clear()  # every unit snapped afresh, as after a full AVL refresh
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


def main() -> None:
    print(f"Machine: {machine()}")
    print(f"Many-to-one, {UNITS} units -> 1 incident, car, {QUERIES} random incidents\n")
    print("| pack | method | p50 ms | p99 ms | mean ms |\n|---|---|---|---|---|")
    for pack in ("manhattan", "shenzhen"):
        for name, method, s in bench(pack):
            cells = [f"{s[key]:.2f}" for key in ("p50_ms", "p99_ms", "mean_ms")]
            print(f"| {name} | {method} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
