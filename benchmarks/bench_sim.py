"""Benchmark: a simulated year on Manhattan (~300,000 incidents, 400 units) vs SimPy baselines,
and a simulated week on a large network with 2,000 units.

Every implementation runs in its own child process on the same inputs (incidents, call-handling
and on-scene times drawn by :func:`citywatch.sim.runner.draw_inputs`), calls the same dispatch
policy and reports wall and CPU time; the parent reads each child's peak resident memory from
``wait4``.  The engine's children first run it on 200 incidents (:func:`warm_up`: numba loads
its compiled code from the disk cache, or compiles it) and report that time apart, with how many
functions numba compiled before and during the timed run.  Implementations:

``citywatch``
    :func:`citywatch.sim.engine.simulate` (the compiled event loop, travel from bounded
    searches kept per incident location, the dispatch scoring kernel).
``simpy-matrix``
    A straightforward SimPy model of the same engine rules (a process per call, per job, per
    return trip and per shift), with the same travel object called through the dispatch
    policy's ``recommend()``: the cost of the event machinery and of a Python event loop.
``large``
    A week on the real **Heidelberg** pack (OSM, 176,928 nodes; its 15 stations are synthetic,
    placed by the pack's documented rule) with 2,000 cars shared out over the stations and
    **synthetic** demand: 200 calls an hour, uniform over the road nodes of the car network's
    largest strongly connected part.
``simpy-router``
    The same SimPy model with travel from :class:`citywatch.routing.Router` (one Dijkstra per
    mode per dispatch, as the live service does): the cost of not precomputing.  Too slow for a
    year, so it runs on ``--router-days`` and the table gives its rate per incident.

Run: ``.venv/bin/python benchmarks/bench_sim.py [--days 365] [--router-days 2] [--large-days 7]``;
``--days 30`` is a quicker comparison with the same per-incident rates.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "manhattan")
TARGET_PER_YEAR = 300_000


def scenario(days: float) -> Any:
    """The benchmark scenario: 21 stations x (16 cars + 3 day-shift motorcycles) + 1 SWAT car."""
    from citywatch.city import load_pack
    from citywatch.sim.scenario import parse_scenario

    pack = load_pack("manhattan")
    doc = {
        "scenario": {"name": "bench-year", "start": datetime(2024, 1, 1), "days": days, "seed": 1},
        "demand": {
            "kind": "synthetic",
            "files": [
                {"path": os.path.join(DATA, "nyc_vehicle_thefts_2014.csv"), "source": "code"},
                {
                    "path": os.path.join(DATA, "nypd_shootings_historic.csv"),
                    "source": "nypd_shootings",
                },
            ],
            "fit_start": datetime(2014, 1, 1),
            "fit_end": datetime(2018, 1, 1),
        },
        "dispatch": {"policy": "nearest"},
        "call_handling": {"default": {"dist": "lognormal", "mean_s": 90, "sd_s": 40}},
        "on_scene": {"default": {"dist": "lognormal", "mean_s": 1800, "sd_s": 900}},
        "travel": {
            "congestion": [1.0] * 7 + [1.4] * 3 + [1.2] * 6 + [1.4] * 3 + [1.1] * 2 + [1.0] * 3
        },
        "shifts": {"day": {"start": "07:00", "end": "23:00"}},
        "fleet": [
            {"stations": "all", "unit_type": "patrol_car", "count": 16},
            {"stations": "all", "unit_type": "motorcycle", "count": 3, "shift": "day"},
            {"stations": ["14"], "unit_type": "special_police", "count": 1},
        ],
    }
    return parse_scenario(
        doc, Path(DATA), timezone=pack.timezone, stations=[s.id for s in pack.stations]
    )


def prepared(days: float) -> Any:
    """Prepared scenario, demand scaled to ~300,000 incidents a year."""
    from citywatch.sim.runner import prepare

    prep = prepare(scenario(days))
    per_year = prep.model.rate.sum() * 365 / 7
    prep.model = replace(prep.model, rate=prep.model.rate * (TARGET_PER_YEAR / per_year))
    return prep


# --------------------------------------------------------------------------- SimPy baseline


def simpy_run(prep: Any, x: Any, travel: Any) -> np.ndarray:
    """A straightforward SimPy model of the engine's rules; returns response times (s)."""
    import simpy

    from citywatch.dispatch.policy import IncidentView, UnitView, recommend

    env = simpy.Environment()
    units = prep.fleet.units
    lonlat = prep.fleet.travel.lonlat
    b = x.batch
    home = [tuple(lonlat[int(u.homes[0])]) for u in units]
    pos = list(home)
    available: dict[int, UnitView] = {}
    busy = [False] * len(units)
    off_pending = [False] * len(units)
    returning: dict[int, Any] = {}
    index = {u.id: k for k, u in enumerate(units)}
    sent = np.zeros(len(b), dtype=int)
    needed = np.zeros(len(b), dtype=int)
    done = np.zeros(len(b), dtype=bool)
    arrive = np.full(len(b), np.nan)
    waiting: list[tuple[int, float, int]] = []

    def factor() -> float:
        return float(prep.hourly_factor[min(int(env.now // 3600), len(prep.hourly_factor) - 1)])

    def timed(sources: np.ndarray, mode: str, target: tuple[float, float], limit: Any) -> Any:
        s, m = travel(sources, mode, target, limit)
        return s * factor(), m

    def free(k: int) -> None:
        u = units[k]
        available[k] = UnitView(u.id, u.unit_type, u.mode, u.station, *pos[k])

    def go_home(k: int) -> Any:
        t = timed(np.array([pos[k]]), units[k].mode, home[k], None)[0][0]
        try:
            yield env.timeout(t)
            pos[k] = home[k]
            free(k)
        except simpy.Interrupt:
            pass
        returning.pop(k, None)

    def job(k: int, i: int, eta: float) -> Any:
        yield env.timeout(eta)
        if np.isnan(arrive[i]):
            arrive[i] = env.now
        pos[k] = (float(b.lon[i]), float(b.lat[i]))
        yield env.timeout(float(x.on_scene_s[i]))
        done[i] = True
        busy[k] = False
        if off_pending[k]:
            off_pending[k] = False
            pos[k] = home[k]
            return
        free(k)
        returning[k] = env.process(go_home(k))
        serve()

    def dispatch(i: int) -> None:
        if not available:
            return
        view = IncidentView(
            str(b.id[i]),
            str(b.category[i]),
            int(b.priority[i]),
            float(b.lon[i]),
            float(b.lat[i]),
            None if b.station[i] is None else str(b.station[i]),
        )
        rec = recommend(view, list(available.values()), timed, prep.policy, k=1, rules=prep.rules)
        if needed[i] == 0:
            needed[i] = rec.requirement.units
        eta = {c.unit_id: c.eta_s for c in rec.candidates}
        for uid in rec.team[: needed[i] - sent[i]]:
            k = index[uid]
            del available[k]
            busy[k] = True
            if k in returning:
                returning.pop(k).interrupt()
            sent[i] += 1
            env.process(job(k, i, eta[uid]))

    def serve() -> None:
        keep = []
        while waiting and available:
            item = heapq.heappop(waiting)
            if done[item[2]]:
                continue
            dispatch(item[2])
            if sent[item[2]] < needed[item[2]] or sent[item[2]] == 0:
                keep.append(item)
        for item in keep:
            heapq.heappush(waiting, item)

    def call(i: int) -> Any:
        yield env.timeout(float(x.handling_s[i]))
        dispatch(i)
        if sent[i] < max(needed[i], 1):
            heapq.heappush(waiting, (int(b.priority[i]), env.now, i))

    def arrivals() -> Any:
        for i in range(len(b)):
            yield env.timeout(max(0.0, float(b.t[i]) - env.now))
            env.process(call(i))

    def shifts(k: int) -> Any:
        for on, off in units[k].duty:
            if off <= env.now:
                continue
            yield env.timeout(max(0.0, on - env.now))
            if not busy[k]:
                pos[k] = home[k]
                free(k)
                serve()
            off_pending[k] = False
            if not np.isfinite(off):
                return
            yield env.timeout(off - env.now)
            if busy[k]:
                off_pending[k] = True
            else:
                available.pop(k, None)
                if k in returning:
                    returning.pop(k).interrupt()

    env.process(arrivals())
    for k in range(len(units)):
        env.process(shifts(k))
    env.run()
    return arrive - b.t


# --------------------------------------------------------------------------- large (synthetic)


def large_run(days: float) -> dict[str, Any]:
    """A week on the real Heidelberg pack with 2,000 cars (see the module docstring)."""
    import pandas as pd
    from scipy.sparse.csgraph import connected_components

    from citywatch.city import load_pack
    from citywatch.sim.demand import IncidentBatch
    from citywatch.sim.engine import Fleet, Unit, simulate
    from citywatch.sim.travel import SearchTravel

    pack = load_pack("heidelberg")
    travel = SearchTravel.from_pack(pack, ["car"])
    router = travel.router
    g = router.graph("car")
    # Calls at road nodes of the largest strongly connected part of the car network (a node
    # on a cut-off track could never be reached), 200 an hour, uniform in space and time.
    _, label = connected_components(g.seconds, directed=True, connection="strong")
    main = np.flatnonzero(label == np.argmax(np.bincount(label)))
    nodes = np.intersect1d(g.road_nodes, main)
    rng = np.random.default_rng(12)
    stations = pack.stations
    lon, lat = np.asarray(pack.network.lon), np.asarray(pack.network.lat)
    # Each (synthetic) station's cars wait at the car-network node nearest to it: a station
    # placed on a track may lie farther from a car road than the snapping limit.
    scale = np.cos(np.radians(float(lat.mean())))
    at_post = [
        int(nodes[np.argmin(((lon[nodes] - s.lon) * scale) ** 2 + (lat[nodes] - s.lat) ** 2)])
        for s in stations
    ]
    posts = travel.register(np.c_[lon[at_post], lat[at_post]])
    per = np.full(len(stations), 2000 // len(stations))
    per[: 2000 - per.sum()] += 1
    units = tuple(
        Unit(f"{s.id}-car-{k + 1}", "patrol_car", "car", s.id, posts[[j]], None, k, [(0.0, np.inf)])
        for j, s in enumerate(stations)
        for k in range(int(per[j]))
    )
    n = int(200 * 24 * days)
    t = np.sort(rng.uniform(0, days * 86400.0, n))
    at = nodes[rng.integers(0, len(nodes), n)]
    batch = IncidentBatch(
        id=np.asarray([f"syn:{i}" for i in range(n)], dtype=object),
        t=t,
        lon=lon[at] + 2e-5,
        lat=lat[at] + 1e-5,
        category=np.full(n, "vehicle_theft", dtype=object),
        priority=np.full(n, 3, dtype=np.int64),
        station=np.full(n, None, dtype=object),
        zone=np.full(n, None, dtype=object),
    )
    prep = prepared(1.0)  # the benchmark's policy, rules and window
    prep.scenario = replace(prep.scenario, end=prep.scenario.start + pd.Timedelta(days=days))
    handling = rng.lognormal(np.log(90.0), 0.4, n)
    on_scene = rng.lognormal(np.log(1800.0), 0.5, n)
    c0 = time.process_time()
    res = simulate(
        prep.scenario, Fleet(units, travel), batch, prep.policy, prep.rules, handling, on_scene
    )
    cpu = time.process_time() - c0
    resp = res.incidents["response_s"].to_numpy(float)
    return {"incidents": n, "cpu_s": cpu, "resp": resp, "units": len(units)}


# --------------------------------------------------------------------------- child / parent


def compilations() -> int:
    """How many functions numba has compiled in this process (not loaded from its disk cache)."""
    import numba

    from citywatch.dispatch import kernel
    from citywatch.routing import search
    from citywatch.sim import loop, travel

    seen = {
        id(f): f
        for mod in (loop, travel, kernel, search)
        for f in vars(mod).values()
        if isinstance(f, numba.core.registry.CPUDispatcher)
    }
    return sum(sum(f.stats.cache_misses.values()) for f in seen.values())


def warm_up(prep: Any, x: Any, n: int = 200) -> float:
    """Run the engine on the first ``n`` incidents, so that the timed run neither compiles nor
    loads compiled code from numba's cache; returns the CPU seconds that took."""
    from citywatch.sim.runner import Inputs, simulate_inputs

    c0 = time.process_time()
    b = x.batch
    head = replace(b, **{f: getattr(b, f)[:n] for f in b.__dataclass_fields__})
    kinds = None if x.place_kinds is None else x.place_kinds[:n]
    simulate_inputs(prep, Inputs(head, x.handling_s[:n], x.on_scene_s[:n], kinds))
    return time.process_time() - c0


def child(impl: str, days: float) -> None:
    from citywatch.routing import Router
    from citywatch.sim.runner import draw_inputs, simulate_inputs

    t0 = time.perf_counter()
    prep = prepared(days)
    x = draw_inputs(prep, 0, prep.scenario.seed)
    setup = time.perf_counter() - t0
    # Compilation (or loading compiled code from the disk cache) is reported apart.
    warm_cpu = warm_up(prep, x) if impl in ("citywatch", "large") else 0.0
    compiled = compilations()
    t0, c0 = time.perf_counter(), time.process_time()
    if impl == "large":
        out = large_run(days)
        resp = out["resp"]
    elif impl == "citywatch":
        res = simulate_inputs(prep, x)
        resp = res.incidents["response_s"].to_numpy(float)
    elif impl == "simpy-matrix":
        resp = simpy_run(prep, x, prep.fleet.travel)
    else:
        from citywatch.dispatch.policy import router_travel

        resp = simpy_run(prep, x, router_travel(Router.from_pack(prep.pack)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n_units = len(prep.fleet.units)
    if impl == "large":  # the simulation alone, not building the grid and its graphs
        cpu, n_units = out["cpu_s"], out["units"]
    ok = np.isfinite(resp)
    print(
        json.dumps(
            {
                "impl": impl,
                "days": days,
                "incidents": len(resp),
                "setup_s": setup,
                "warm_up_cpu_s": warm_cpu,
                "compiled_before": compiled,
                "compiled_in_timed_run": compilations() - compiled,
                "wall_s": wall,
                "cpu_s": cpu,
                "mean_response_s": float(resp[ok].mean()),
                "on_scene_3min": float(np.mean(resp[ok] <= 180)),
                "units": n_units,
            }
        )
    )


def measure(impl: str, days: float, src: str | None = None) -> dict[str, Any]:
    """Run one implementation in a child process (with ``src`` first on its path: the code
    before a change, for a before/after in one run); its row with the peak resident memory."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
        # Packs stay where this checkout keeps them (the other tree only lends its code).
        from citywatch.paths import packs_dir

        env.setdefault("CITYWATCH_PACKS", str(packs_dir()))
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", impl, "--days", str(days)],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{impl} failed with exit code {proc.returncode}")
    row = json.loads(out.decode().strip().splitlines()[-1])
    row["code"] = "before" if src is not None else "this"
    row["peak_rss_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    return row


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    py = platform.python_version()
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GB RAM, Python {py}, {platform.system()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--simpy-days", type=float, default=30.0, help="days of the SimPy pair")
    ap.add_argument("--router-days", type=float, default=2.0)
    ap.add_argument("--large-days", type=float, default=7.0)
    ap.add_argument("--before", help="src/ folder of the code before a change (same run)")
    ap.add_argument("--skip", nargs="*", default=[], help="rows to leave out")
    ap.add_argument("--child", choices=["citywatch", "simpy-matrix", "simpy-router", "large"])
    args = ap.parse_args()
    if args.child:
        child(args.child, args.days)
        return
    print(f"Machine: {machine()}")
    plan: list[tuple[str, str, float, str | None]] = [("year", "citywatch", args.days, None)]
    if args.before:
        plan.append(("year", "citywatch", args.days, args.before))
    plan += [
        ("simpy", "citywatch", args.simpy_days, None),
        ("simpy", "simpy-matrix", args.simpy_days, None),
        ("router", "citywatch", args.router_days, None),
        ("router", "simpy-router", args.router_days, None),
        ("large", "large", args.large_days, None),
    ]
    if args.before:
        plan.append(("large", "large", args.large_days, args.before))
    if args.before:  # compile (or load) the other code's numba functions outside the timing
        measure("citywatch", 1.0, args.before)
    rows = []
    for group, impl, days, src in plan:
        if group in args.skip:
            continue
        rows.append((group, measure(impl, days, src)))
        print(json.dumps(rows[-1][1]), flush=True)
    print(
        f"\n{'implementation':<14} {'code':<6} {'days':>5} {'units':>5} {'incidents':>9} "
        f"{'wall s':>8} {'CPU s':>8} {'CPU µs/inc.':>11} {'peak RSS MB':>11} {'mean resp s':>11} "
        f"{'≤3 min':>7} {'warm-up CPU s':>13} {'compiled':>8}"
    )
    for _, r in rows:
        print(
            f"{r['impl']:<14} {r['code']:<6} {r['days']:>5.1f} {r['units']:>5} "
            f"{r['incidents']:>9,} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f} "
            f"{1e6 * r['cpu_s'] / r['incidents']:>11,.0f} {r['peak_rss_mb']:>11,.0f} "
            f"{r['mean_response_s']:>11.2f} {r['on_scene_3min']:>7.3f} "
            f"{r['warm_up_cpu_s']:>13.1f} {r['compiled_before']:>3} + {r['compiled_in_timed_run']}"
        )
    print(
        "\nwarm-up = the engine on the first 200 incidents before the timed run (loading the "
        "compiled code from numba's disk cache, or compiling it); compiled = functions numba "
        "compiled before + during the timed run (0 + 0: everything came from the cache)."
    )
    print(
        "\nlarge = the real Heidelberg pack (176,928 nodes), 2,000 cars, synthetic demand; its "
        "CPU s is the simulation alone, its peak RSS the whole process (network, graphs, searches)."
    )
    # CPU time, not wall time: the machine may be shared while the children run one by one.
    per = {(g, r["impl"]): r["cpu_s"] / r["incidents"] for g, r in rows if r["code"] == "this"}
    if ("simpy", "simpy-matrix") in per:
        ratio = per["simpy", "simpy-matrix"] / per["simpy", "citywatch"]
        print(f"CPU time per incident, SimPy (same travel) / citywatch: {ratio:.1f}x")
    if ("router", "simpy-router") in per:
        ratio = per["router", "simpy-router"] / per["router", "citywatch"]
        print(f"CPU time per incident, SimPy with Router travel / citywatch: {ratio:.1f}x")


if __name__ == "__main__":
    main()
