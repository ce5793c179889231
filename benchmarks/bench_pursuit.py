"""Benchmark: an interception plan on Manhattan, 63 units (3 per real station), 2,000 routes.

Target (issue 15): plan <= 10 s (route simulation, unit ETAs, coverage matrix, HiGHS MILP),
evaluations counted; baseline in the same run: plain greedy.  Also the flight-scenario
comparison of docs/pursuit.md: the same fleet with and without motorcycle teams.

Run: PYTHONPATH=src python benchmarks/bench_pursuit.py [--heidelberg]
(``--heidelberg``: also a plan on the Heidelberg pack, 3 units per station, at the market nearest
a station; target <= 60 s.)
"""

from __future__ import annotations

import resource
import sys
import time
from datetime import UTC, datetime

import numpy as np
from common import machine

from citywatch.city import load_pack
from citywatch.pursuit.analysis import Flight
from citywatch.pursuit.intercept import (
    InterceptProblem,
    PursuitUnit,
    evaluate,
    greedy,
    naive_plan,
    solve,
    unit_etas,
)
from citywatch.pursuit.reach import Incident
from citywatch.routing import Router

TARGET_S = 10.0
AT = (-73.9855, 40.7580)  # Times Square
K = 6


def fleet(pack: object, motorcycles: bool) -> list[PursuitUnit]:
    out = []
    for s in pack.stations:  # type: ignore[attr-defined]
        third = ("m1", "motorcycle", "motorcycle") if motorcycles else ("c3", "patrol_car", "car")
        for suffix, utype, mode in (
            ("c1", "patrol_car", "car"),
            ("c2", "patrol_car", "car"),
            third,
        ):
            out.append(PursuitUnit(f"{s.id}-{suffix}", utype, mode, s.lon, s.lat))
    return out


def main() -> None:
    print(machine())
    pack = load_pack("manhattan")
    router = Router.from_pack(pack)
    for mode in ("car", "motorcycle"):
        router.graph(mode)  # compile once (not part of a plan: the service keeps its router)
    inc = Incident(*AT, datetime(2026, 12, 1, 21, 30, tzinfo=UTC), "motorcycle")
    units = fleet(pack, motorcycles=True)
    cpu0, t0 = time.process_time(), time.perf_counter()
    flight = Flight.simulate(pack, inc, router=router, n_routes=2000, seed=0)
    t_sim = time.perf_counter() - t0
    etas = unit_etas(router, units)
    t_eta = time.perf_counter() - t0 - t_sim
    problem = InterceptProblem.build(flight.routes, etas)
    plan = solve(problem, K)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    t1 = time.perf_counter()
    chosen, g_evals = greedy(problem, K)
    t_greedy = time.perf_counter() - t1
    g_hit = int((problem.cover[:, chosen].sum(axis=1) > 0).sum())
    print(
        f"units {len(units)}, routes {flight.routes.n_routes}, pairs {len(problem.pair_unit)}, "
        f"coverage nonzeros {problem.cover.nnz}"
    )
    print(
        f"plan ({plan.method}): {wall:.2f} s wall, {cpu:.2f} s CPU "
        f"(simulate {t_sim:.2f}, ETAs {t_eta:.2f}); target <= {TARGET_S} s: "
        f"{'OK' if wall <= TARGET_S else 'MISSED'}"
    )
    print(
        f"  intercepted {plan.intercepted}/{plan.n_routes} = {plan.share:.3f}, "
        f"gap {plan.gap:.4f}, greedy evaluations {plan.evaluations}"
    )
    print(f"baseline greedy: {t_greedy:.3f} s, {g_hit}/{plan.n_routes}, evaluations {g_evals}")
    fresh = flight.fresh()
    for label, motor in (("with motorcycle teams", True), ("cars only", False)):
        f_units = fleet(pack, motor)
        f_etas = unit_etas(router, f_units)
        p = solve(InterceptProblem.build(flight.routes, f_etas), K)
        oos = evaluate(p.units, p.nodes, fresh, f_etas)
        nv = naive_plan(router, f_units, AT, f_etas, K, fresh)
        print(
            f"fleet {label}: plan {oos['share']:.3f} [{oos['ci_low']:.3f}, {oos['ci_high']:.3f}]"
            f" out of sample; naive {nv['share']:.3f} [{nv['ci_low']:.3f}, {nv['ci_high']:.3f}];"
            f" motorcycles in plan {sum(f_units[u].mode == 'motorcycle' for u in p.units)}"
        )
    ok = wall <= TARGET_S
    if "--heidelberg" in sys.argv:
        ok = heidelberg() and ok
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak:.0f} MiB")
    sys.exit(0 if ok else 1)


def heidelberg() -> bool:
    """A plan on the Heidelberg pack (177k nodes); returns whether it met its 60 s target."""
    pack = load_pack("heidelberg")
    router = Router.from_pack(pack)
    for mode in ("car", "motorcycle"):
        router.graph(mode)
    units = fleet(pack, motorcycles=True)
    st = np.array([[s.lon, s.lat] for s in pack.stations])
    markets = [p.geometry.centroid for p in pack.places if p.kind == "market"]
    c = min(markets, key=lambda q: float(np.min(np.hypot(st[:, 0] - q.x, st[:, 1] - q.y))))
    inc = Incident(c.x, c.y, datetime(2026, 12, 1, 20, 30, tzinfo=UTC), "motorcycle")
    cpu0, t0 = time.process_time(), time.perf_counter()
    flight = Flight.simulate(pack, inc, router=router, n_routes=2000, seed=0)
    etas = unit_etas(router, units)
    problem = InterceptProblem.build(flight.routes, etas)
    plan = solve(problem, K)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(
        f"heidelberg: {len(pack.network.nodes)} nodes, {len(units)} units, plan ({plan.method}) "
        f"{wall:.2f} s wall, {cpu:.2f} s CPU, share {plan.share:.3f}, gap {plan.gap:.4f}, "
        f"evaluations {plan.evaluations}; target <= 60 s: {'OK' if wall <= 60 else 'MISSED'}"
    )
    return wall <= 60


if __name__ == "__main__":
    main()
