"""Evaluation of move-up: COVERAGE on Manhattan (``python benchmarks/eval_moveup.py``) and, with
``--simulate``, RESPONSE in the simulator on the shipped scenarios.

``--simulate``: every scenario of ``data/scenarios`` is run twice with the same seed and
replications (common random numbers: the same incidents, call-handling and on-scene times),
once with ``relocation = "return_to_post"`` and once with ``"move_up"`` (DMEXCLP through
:mod:`citywatch.sim.moveup`).  Per replication: the share of calls with a unit on scene within
3 and within 10 minutes of the call (unanswered calls count as late); the difference is paired
per replication and its 95 % interval is Student t.  A plot goes to ``docs/img/moveup_sim.png``.

The coverage part:

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

import argparse
import time
from dataclasses import replace
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


SIM_REPLICATIONS = 10
SIM_SEED = 2024
SCENARIOS = ("manhattan_before", "manhattan_after", "shenzhen_before", "shenzhen_after")


def _shares(incidents: object) -> tuple[np.ndarray, np.ndarray]:
    """Per replication: share of calls on scene within 3 and within 10 minutes."""
    import pandas as pd

    inc = pd.DataFrame(incidents)
    resp = inc["response_s"].fillna(np.inf)
    by = inc.assign(in3=resp <= RESPONSE_TARGETS_S[0], in10=resp <= 600.0).groupby("replication")
    return by["in3"].mean().to_numpy(), by["in10"].mean().to_numpy()


def simulate_main(replications: int) -> None:
    from citywatch.sim.runner import run_scenario
    from citywatch.sim.scenario import load_scenario

    print(machine())
    rows, plot = [], []
    for name in SCENARIOS:
        base = load_scenario(DATA / "scenarios" / f"{name}.toml")
        got = {}
        for relocation in ("return_to_post", "move_up"):
            scenario = replace(base, relocation=relocation)
            c0 = time.process_time()
            res = run_scenario(scenario, replications=replications, seed=SIM_SEED, workers=1)
            cpu = time.process_time() - c0
            got[relocation] = _shares(res.incidents)
            print(f"{name} {relocation}: {len(res.incidents):,} calls, {cpu:.1f} s CPU", flush=True)
        for j, label in enumerate(("3 min", "10 min")):
            a, b = 100 * got["return_to_post"][j], 100 * got["move_up"][j]
            mean, lo, hi = _interval(b - a)
            rows.append(
                {
                    "scenario": name,
                    "on scene within": label,
                    "return to post %": round(float(a.mean()), 2),
                    "move-up %": round(float(b.mean()), 2),
                    "diff pp": round(mean, 2),
                    "95% CI": f"[{lo:.2f}, {hi:.2f}]",
                }
            )
            plot.append((name, label, mean, lo, hi))
    print(
        f"{replications} replications per scenario, seed {SIM_SEED}, paired per replication "
        "(common random numbers), Student-t 95 % intervals"
    )
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")
    _plot(plot)


def _plot(points: list[tuple[str, str, float, float, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for j, (_, label, mean, lo, hi) in enumerate(points):
        colour = "tab:blue" if label == "3 min" else "tab:orange"
        ax.errorbar(mean, j, xerr=[[mean - lo], [hi - mean]], fmt="o", color=colour, capsize=3)
    ax.set_yticks(range(len(points)), [f"{name}, within {label}" for name, label, *_ in points])
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("move-up minus return to post, percentage points (95 % CI)")
    ax.invert_yaxis()
    fig.tight_layout()
    out = Path(__file__).resolve().parents[1] / "docs" / "img" / "moveup_sim.png"
    fig.savefig(out, dpi=120)
    print(f"plot: {out}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulate", action="store_true", help="the simulator comparison")
    ap.add_argument("--replications", type=int, default=SIM_REPLICATIONS)
    args = ap.parse_args()
    if args.simulate:
        simulate_main(args.replications)
    else:
        main()
