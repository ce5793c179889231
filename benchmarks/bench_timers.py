"""The status-timer tick of the roster board: database read per tick vs the worker's memory.

Run: ``.venv/bin/python benchmarks/bench_timers.py [--ticks 400] [--baseline REV]``.

Each code version runs in its own process on a fresh database (SQLite file, and PostgreSQL
when reachable), Manhattan pack, 400 units of which every fourth is on scene:

* ``baseline``: the code of git revision ``REV`` (default ``19516cc``: every tick read the units
  and their check-ins from the database), extracted with ``git archive``;
* ``current``: this checkout (the tick reads the in-memory units, see ``dispatch/live.py``).

Measured the same way for both: ``--ticks`` timer ticks (``timer_states`` and the level changes
of :class:`~citywatch.dispatch.timers.TimerWatch`, as the API's tick does) on a clock moving
0.5 s a tick across the 20-minute on-scene warning: CPU and wall time per tick, SQL statements
per tick, peak traced memory of a tick, and the number of ``unit.timer`` events (must agree).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dispatch import PG, drop_pg, pg_database
from bench_live import ROOT, baseline_src
from common import machine

UNITS = 400
#: Seconds on scene before the measured ticks start: the warning (1,200 s) falls inside them.
LEAD_S = 1150.0


def measure(db: str, ticks: int) -> dict[str, Any]:
    """Seed ``db`` and time ``ticks`` timer ticks of the code on ``sys.path`` (child process)."""
    from sqlalchemy import event

    from citywatch.city import load_pack
    from citywatch.dispatch.accounts import Principal, Role
    from citywatch.dispatch.service import DispatchService
    from citywatch.dispatch.timers import TimerWatch
    from citywatch.routing import Router
    from citywatch.store.db import make_engine, session_factory, upgrade

    class Sink:
        def stage(self, session: Any, ev: dict[str, Any]) -> None:
            """No streams in this benchmark."""

    pack = load_pack("manhattan")
    engine = make_engine(db)
    upgrade(engine)
    now = [datetime(2026, 3, 2, 14, 0, tzinfo=UTC)]
    svc = DispatchService(
        session_factory(engine), pack, Router.from_pack(pack), Sink(), clock=lambda: now[0]
    )
    admin = Principal("bench", Role.ADMIN)
    stations = pack.stations
    for i in range(UNITS):
        station = stations[i % len(stations)].id
        svc.create_unit(admin, id=f"U-{i}", unit_type="patrol_car", station=station)
    for i in range(0, UNITS, 4):
        st = stations[i % len(stations)]
        inc, _ = svc.create_incident(admin, category="theft", lon=st.lon, lat=st.lat)
        svc.assign(admin, inc["id"], f"U-{i}")
        svc.set_unit_status(admin, f"U-{i}", "on_scene")
    now[0] += timedelta(seconds=LEAD_S)
    watch = TimerWatch()
    watch.tick(svc.timer_states(), now[0])  # warm-up (the current code loads its units here)
    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    events = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(ticks):
        now[0] += timedelta(seconds=0.5)
        events += len(watch.tick(svc.timer_states(), now[0]))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    tracemalloc.start()
    watch.tick(svc.timer_states(), now[0])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    engine.dispose()
    return {
        "cpu_ms": 1e3 * cpu / ticks,
        "wall_ms": 1e3 * wall / ticks,
        "statements": statements[0] / (ticks + 1),
        "peak_kib": peak / 1024,
        "events": events,
    }


def run(src: Path, db: str, ticks: int) -> dict[str, Any]:
    """``measure`` in a fresh process with ``src`` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, __file__, "--measure", db, "--ticks", str(ticks)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=400)
    parser.add_argument("--baseline", default="19516cc")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.ticks)))
        return
    print(f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start\n")
    print("| database | code | CPU ms/tick | wall ms/tick | SQL statements/tick "
          "| peak KiB/tick | timer events |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        versions = {"baseline": baseline_src(args.baseline, Path(tmp)), "current": ROOT / "src"}
        for kind in ("sqlite", "postgresql"):
            for name, src in versions.items():
                pg = pg_database() if kind == "postgresql" else None
                if kind == "postgresql" and pg is None:
                    continue
                db = PG + pg if pg else f"sqlite:///{Path(tmp) / f'{name}.db'}"
                try:
                    r = run(src, db, args.ticks)
                finally:
                    if pg:
                        drop_pg(pg)
                cells = [
                    kind,
                    name,
                    f"{r['cpu_ms']:.3f}",
                    f"{r['wall_ms']:.3f}",
                    f"{r['statements']:.2f}",
                    f"{r['peak_kib']:.0f}",
                    str(r["events"]),
                ]
                print("| " + " | ".join(cells) + " |")
    print(f"\nLoad average {os.getloadavg()[0]:.1f} at the end; {UNITS} units, "
          f"{UNITS // 4} on scene; compare CPU times (the machine is shared).")  # fmt: skip


if __name__ == "__main__":
    main()
