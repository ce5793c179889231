"""Evaluation of move-up COVERAGE on Manhattan (``python benchmarks/eval_moveup.py``).

Not a simulation of response times: a seeded Monte Carlo of the coverage left behind.  Real
data: the Manhattan pack's 21 precinct station houses and road network, demand = the bundled
NYPD shootings (``data/manhattan/nypd_shootings_historic.csv``, the project's reader) counted on
their nearest road nodes, car travel times from :mod:`citywatch.routing`'s graph.

Each replication: ``UNITS_PER_STATION`` cars wait at every station; ``k`` incidents are drawn
from the demand and each gets the nearest idle car (by road), which becomes busy.  Then the
idle cars' expected 3-minute coverage (DMEXCLP, busy fraction ``q``) and their plain 3-minute
coverage (share of demand within 180 s of at least one idle car) are measured with no move and
after ONE DMEXCLP move (any idle car to any road node; and with the move bounded to 5 minutes).
Differences are paired per replication; 95 % intervals are Student t.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from common import machine
from scipy import stats
from scipy.sparse.csgraph import dijkstra

from citywatch.city import load_pack
from citywatch.dispatch.kpis import RESPONSE_TARGETS_S
from citywatch.dispatch.moveup import MoveUpModel, best_move, coverage_counts
from citywatch.incidents.sources import read_source
from citywatch.plan.posts import _snap_to_nodes, incident_demand, reach_matrix
from citywatch.routing import Router

SEED = 20261201
UNITS_PER_STATION = 2
BUSY = (2, 5, 10, 15)
REPLICATIONS = 400
DATA = Path(__file__).resolve().parents[1] / "data"
Q = 0.3  # busy fraction used by DMEXCLP (and in the expected coverage reported)
MOVE_BOUND_S = 300.0


def _interval(diff: np.ndarray) -> tuple[float, float, float]:
    mean = float(diff.mean())
    half = float(stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff)))
    return mean, mean - half, mean + half


def main() -> None:
    print(machine())
    pack = load_pack("manhattan")
    router = Router.from_pack(pack)
    parsed = read_source(DATA / "manhattan" / "nypd_shootings_historic.csv", "nypd_shootings")
    frame = parsed.records[parsed.reasons.isna() & ~parsed.merged.astype(bool)]
    demand = incident_demand(pack, frame)
    n_nodes = len(pack.network.lon)
    print(
        f"demand: {demand.used} shootings on {len(demand.nodes)} road nodes "
        f"({demand.off_network} off the network, i.e. outside Manhattan); "
        f"{n_nodes} road nodes, {len(pack.stations)} stations"
    )
    started = time.process_time()
    sites = np.arange(n_nodes)
    reach = reach_matrix(router, "car", sites, demand.nodes, RESPONSE_TARGETS_S[0])
    model = MoveUpModel.from_seconds({"car": reach.T}, demand.weights)
    station_lonlat = np.array([(s.lon, s.lat) for s in pack.stations])
    # Every car starts on its station's nearest road node (the plan's snapping).
    st_node = _snap_to_nodes(pack, station_lonlat[:, 0], station_lonlat[:, 1])[0]
    from_station = dijkstra(router.graph("car").seconds, indices=st_node)  # (stations, nodes) s
    print(f"coverage model built in {time.process_time() - started:.1f} s CPU")

    unit_station = np.repeat(np.arange(len(st_node)), UNITS_PER_STATION)
    unit_site = st_node[unit_station]
    p = demand.weights / demand.weights.sum()
    rng = np.random.default_rng(SEED)
    total = float(demand.weights.sum())
    rows = []
    for k in BUSY:
        res: dict[str, list[float]] = {key: [] for key in ("e0", "e1", "eb", "c0", "c1", "cb")}
        for _ in range(REPLICATIONS):
            idle = np.ones(len(unit_site), dtype=bool)
            for node in demand.nodes[rng.choice(len(p), size=k, p=p)]:
                t = np.where(idle, from_station[unit_station, node], np.inf)
                idle[int(np.argmin(t))] = False
            here = unit_site[idle]
            modes = ["car"] * len(here)
            move_s = from_station[unit_station[idle]]
            for tag, kwargs in (("0", None), ("1", {}), ("b", {"max_move_s": MOVE_BOUND_S})):
                after = here
                if kwargs is not None:
                    extra = {"move_s": move_s, **kwargs} if kwargs else {}
                    move = best_move(model, here, modes, Q, **extra)
                    if move is not None:
                        after = here.copy()
                        after[move.unit] = move.destination
                counts = coverage_counts(model, after, modes)
                res["e" + tag].append(float(demand.weights @ (1 - Q**counts)) / total)
                res["c" + tag].append(float(demand.weights @ (counts > 0)) / total)
        arr = {key: np.asarray(v) for key, v in res.items()}
        for label, a, b in (
            ("expected (q=0.3)", "e0", "e1"),
            ("expected, move <= 5 min", "e0", "eb"),
            ("plain 3-min share", "c0", "c1"),
            ("plain, move <= 5 min", "c0", "cb"),
        ):
            mean, lo, hi = _interval(100 * (arr[b] - arr[a]))
            rows.append(
                {
                    "busy": k,
                    "coverage": label,
                    "no move %": round(100 * float(arr[a].mean()), 2),
                    "one move %": round(100 * float(arr[b].mean()), 2),
                    "diff pp": round(mean, 2),
                    "95% CI": f"[{lo:.2f}, {hi:.2f}]",
                }
            )
    print(
        f"{UNITS_PER_STATION * len(st_node)} cars, {REPLICATIONS} replications per row, "
        f"seed {SEED}, threshold {RESPONSE_TARGETS_S[0]:.0f} s"
    )
    # A Markdown table, as pasted into docs/moveup.md.
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")


if __name__ == "__main__":
    main()
