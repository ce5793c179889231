"""Camera coverage and placement benchmarks: ``python benchmarks/bench_surveillance.py [PACK]``.

City: the Baltimore pack (or PACK, a name or folder) with its 1,206 real cameras (registered
CCTV + BPD CitiWatch) when the pack is available; otherwise Manhattan with the 238 real NYC
DOT cameras plus 962 SYNTHETIC seeded cameras on random street points (70 % fixed with a
random heading and a 90° view, 30 % PTZ; one in five owned by a market or business and off
23:00-06:00), labelled as such.

* Coverage by hour: placing every camera on the streets, computing what it sees (k-d tree,
  wedge, street-path test) and the covered length for all 24 hours.  Baseline in the same run:
  recomputing the views hour by hour for the cameras working at that hour (the obvious way),
  measured on 4 hours and scaled to 24.
* Placement: 50 new PTZ cameras at intersections, exact with HiGHS (MCLP), weighted by the real
  NYPD shootings (Manhattan) or none (Baltimore).  Before/after in the same run: the same model
  solved without the exact reductions of :mod:`citywatch.plan.reduce` (``reduce=False``), each
  in a forked child so that its peak RSS is its own.  Baseline: the greedy + swap heuristic of
  :mod:`citywatch.plan.heuristic` on the same model (objective and time) and the LP bound.
* Backup power for 20 cameras through a night-long mains cut (exact).

Each row gives wall and CPU time and the CPU share (CPU / wall) with the load average before
and after the run: on the shared 2-core machine a share well below 100 % with a load average
above 2 is time spent waiting for a core, not waiting on the solver, data or a child process.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from common import machine
from pyproj import Transformer

from citywatch.city import CityPack, load_pack
from citywatch.console import print_table
from citywatch.errors import CityWatchError
from citywatch.incidents.sources import read_source
from citywatch.paths import data_dir
from citywatch.plan.heuristic import greedy_local_search
from citywatch.surveillance.coverage import CameraCoverage
from citywatch.surveillance.placement import (
    PlacementResult,
    choose_backup,
    new_camera_problem,
    place_cameras,
)
from citywatch.surveillance.registry import read_sensors
from citywatch.surveillance.sensors import Owner, PowerSchedule, Sensor, SensorKind
from citywatch.surveillance.streets import Streets

CAMERAS = data_dir() / "cameras"
TARGET_CAMERAS = 1_200


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Result, wall-clock seconds and CPU seconds of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def in_child(fn: Callable[[], Any]) -> tuple[Any, str]:
    """``fn()`` run in a forked child, and the child's peak RSS and context switches (so that
    two variants of one step are measured apart, in the same run).  Voluntary switches are
    waits (threads, I/O); involuntary ones are the kernel giving the core to another job."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)

    def work() -> None:
        out = fn()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        child.send((out, usage.ru_maxrss / 1024, usage.ru_nvcsw, usage.ru_nivcsw))

    proc = ctx.Process(target=work)
    proc.start()
    out, peak, waits, preempted = parent.recv()
    proc.join()
    return out, f"peak RSS {peak:,.0f} MB, switches {waits:,} waiting / {preempted:,} preempted"


def synthetic_cameras(pack: CityPack, n: int, seed: int = 7) -> list[Sensor]:
    """SYNTHETIC cameras on random street points (seeded), see the module docstring."""
    rng = np.random.default_rng(seed)
    streets = Streets.from_pack(pack)
    seg = rng.choice(len(streets), n, p=streets.length_m / streets.total_m)
    x, y = streets.point_at(seg, rng.random(n) * streets.length_m[seg])
    lon, lat = Transformer.from_crs(pack.crs, "EPSG:4326", always_xy=True).transform(x, y)
    night_off = PowerSchedule.parse("23:00-06:00")
    out = []
    for i in range(n):
        ptz = rng.random() < 0.3
        shop = rng.random() < 0.2
        out.append(
            Sensor(
                id=f"synthetic-{i}",
                kind=SensorKind.PTZ if ptz else SensorKind.FIXED_CAMERA,
                lon=float(lon[i]),
                lat=float(lat[i]),
                owner=(Owner.MARKET if rng.random() < 0.5 else Owner.BUSINESS)
                if shop
                else Owner.POLICE,
                direction_deg=None if ptz else float(rng.uniform(0, 360)),
                fov_deg=None if ptz else 90.0,
                power=night_off if shop else PowerSchedule(),
                source="synthetic",
            )
        )
    return out


def city(name: str) -> tuple[CityPack, list[Sensor], pd.DataFrame | None, str]:
    """The benchmark city, its cameras, incidents to weight placement, and a label."""
    try:
        pack = load_pack(name)
    except CityWatchError:
        pack = load_pack("manhattan")
        real = read_sensors(CAMERAS / "nyc_dot_traffic_cameras_2020.csv").sensors
        inside = pack.locate_many([s.lon for s in real], [s.lat for s in real])["city"].notna()
        real = [s for s, ok in zip(real, inside, strict=True) if ok]
        cams = real + synthetic_cameras(pack, TARGET_CAMERAS - len(real))
        shootings = read_source(
            data_dir() / "manhattan" / "nypd_shootings_historic.csv", "nypd_shootings"
        ).incidents
        label = f"Manhattan: {len(real)} real NYC DOT + {len(cams) - len(real)} SYNTHETIC cameras"
        return pack, cams, shootings, label
    cams = (
        read_sensors(CAMERAS / "baltimore_cctv_locations_2019.csv").sensors
        + read_sensors(CAMERAS / "baltimore_bpd_citiwatch_cameras_2019.csv").sensors
    )
    return pack, cams, None, f"Baltimore: {len(cams)} real cameras (CCTV + CitiWatch)"


def load() -> str:
    """The 1-, 5- and 15-minute load averages."""
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def share(wall: float, cpu: float) -> str:
    """CPU time as a share of wall time (100 % = one core all the time)."""
    return f"{100 * cpu / wall:.0f} %" if wall > 0 else ""


def _pct(weight: float, result: PlacementResult) -> str:
    return f"{100 * weight / result.total_weight:.2f} %"


def main() -> None:
    """Run the benchmarks and print one table."""
    pack, cams, incidents, label = city(sys.argv[1] if len(sys.argv) > 1 else "baltimore")
    print(machine())
    print(label)
    print(f"load average at start: {load()}")
    streets = Streets.from_pack(pack)  # the pack's streets, loaded once like the service does

    def coverage() -> Any:
        cov = CameraCoverage.build(pack, cams, streets=streets)
        return cov, cov.coverage_by_hour()

    (cov, hourly), wall, cpu = timed(coverage)
    rows = [
        [
            "coverage by hour (24 h)",
            f"{wall:.2f}",
            f"{cpu:.2f}",
            f"{len(cov.sensors)} cameras, {len(cov.samples):,} street samples, "
            f"share {100 * hourly.share.min():.2f}-{100 * hourly.share.max():.2f} %",
        ]
    ]
    working = cov.working()
    start = time.perf_counter()
    for hour in (0, 6, 12, 23):
        on = [s for s, w in zip(cov.sensors, working[hour], strict=True) if w]
        CameraCoverage.build(pack, on, streets=streets).coverage_by_hour()
    per_hour = (time.perf_counter() - start) / 4
    rows.append(["  baseline: views rebuilt per hour", f"{24 * per_hour:.2f}", "", "4 h x 6"])

    (result, wall, cpu), child = in_child(
        lambda: timed(lambda: place_cameras(cov, 50, incidents=incidents))
    )
    assert result.solver is not None
    rows.append(
        [
            "place 50 cameras, exact (HiGHS)",
            f"{wall:.2f}",
            f"{cpu:.2f}",
            f"{result.solver.status}, weighted share {_pct(result.weight_before, result)} -> "
            f"{_pct(result.weight_after, result)}, HiGHS {result.solver.seconds:.1f} s, "
            f"{child}",
        ]
    )

    def unreduced() -> Any:
        model = new_camera_problem(cov, 50, incidents=incidents).model
        return model.solve(reduce=False)

    (plain, wall, cpu), child = in_child(lambda: timed(unreduced))
    rows.append(
        [
            "  before: same MCLP without plan.reduce",
            f"{wall:.2f}",
            f"{cpu:.2f}",
            f"objective {plain.objective:,.2f} vs {result.solver.objective:,.2f}, "
            f"HiGHS {plain.seconds:.1f} s, {child}",
        ]
    )
    model = new_camera_problem(cov, 50, incidents=incidents).model
    greedy, wall_g, cpu_g = timed(lambda: greedy_local_search(model))
    rows.append(
        [
            "  baseline: greedy + swaps",
            f"{wall_g:.2f}",
            f"{cpu_g:.2f}",
            f"objective {greedy.objective:,.0f} vs exact {result.solver.objective:,.0f} "
            f"(LP bound {greedy.bound:,.0f})",
        ]
    )
    backup, wall, cpu = timed(lambda: choose_backup(cov, 20, power_cut=True, incidents=incidents))
    rows.append(
        [
            "backup power for 20, night cut, exact",
            f"{wall:.2f}",
            f"{cpu:.2f}",
            f"{backup.to_dict()['status']}, night share {_pct(backup.weight_before, backup)} -> "
            f"{_pct(backup.weight_after, backup)}",
        ]
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load average at end: {load()}")
    print_table(
        f"Surveillance benchmarks (peak RSS {peak:,.0f} MB)",
        ["case", "wall s", "CPU s", "CPU share", "notes"],
        [[c, w, u, share(float(w), float(u)) if u else "", n] for c, w, u, n in rows],
    )


if __name__ == "__main__":
    main()
