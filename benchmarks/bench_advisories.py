"""Near-repeat advisories: the nightly table refresh and the cost the hook adds to a new call.

Run: ``.venv/bin/python benchmarks/bench_advisories.py``.  Data: the 2014 NYC vehicle thefts
(``data/manhattan/nyc_vehicle_thefts_2014.csv``, NYPD via wallarelvo/nyc-taxi-analysis), stored
as ``theft`` incidents in a fresh SQLite store; the Manhattan pack keeps those inside it.

* refresh: ``refresh_tables`` over the year (load from the store, project, Knox table with 99
  permutations, store, audit): wall and CPU time.
* hook: CPU time per ``create_incident`` at random Manhattan road nodes, with advisories enabled
  against the same service with none (the baseline), same run.  The real 2014 thefts show no
  significant band (the hook then only reads the table), so the full path (window, linked
  incidents, advisory row, event) is timed on burglaries with a planted near-repeat pattern
  (600 first events on road nodes over the year, each with two repeats within 60 m and 3 days).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from citywatch.analytics.advisories import AdvisoryConfig, NearRepeatAdvisor, refresh_tables
from citywatch.city import load_pack
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.audit import AuditTrail, use_trail
from citywatch.dispatch.service import DispatchService
from citywatch.incidents.record import coerce_frame
from citywatch.incidents.storage import insert_incidents
from citywatch.routing import Router
from citywatch.store.db import make_engine, session_factory, upgrade

DATA = Path(__file__).resolve().parents[1] / "data" / "manhattan" / "nyc_vehicle_thefts_2014.csv"
CALLS = 200


class _Sink:
    def stage(self, session: object, event: dict[str, object]) -> None:
        pass


def main() -> None:
    print(machine())
    pack = load_pack("manhattan")
    raw = pd.read_csv(DATA)
    frame = coerce_frame(
        pd.DataFrame(
            {
                "id": "nyc:" + raw["uid"].astype(str),
                "source": "bench",
                "source_id": raw["uid"].astype(str),
                "received_at": pd.to_datetime(raw["date_single"]).dt.tz_localize(
                    "America/New_York", ambiguous="NaT", nonexistent="NaT"
                ),
                "time_precision": "exact",
                "category": "theft",
                "lon": raw["longitude"],
                "lat": raw["latitude"],
            }
        ).dropna(subset=["received_at"])
    )
    home = Path(tempfile.mkdtemp())
    engine = make_engine(f"sqlite:///{home / 'bench.db'}")
    upgrade(engine)
    use_trail(engine, AuditTrail.open(home / "audit"))
    with engine.begin() as conn:
        insert_incidents(conn, frame)
    rng = np.random.default_rng(1)
    seeds = rng.choice(len(pack.network.lon), 600, replace=False)
    planted = []
    for k, node in enumerate(seeds):
        t0 = pd.Timestamp("2014-01-01", tz="UTC") + pd.Timedelta(days=float(rng.uniform(0, 360)))
        for j in range(3):
            d = (0.0, 0.0) if j == 0 else rng.uniform(-0.0005, 0.0005, 2)
            planted.append(
                {
                    "id": f"planted:{k}:{j}",
                    "source": "planted",
                    "source_id": f"{k}:{j}",
                    "received_at": t0 + pd.Timedelta(days=0 if j == 0 else rng.uniform(0, 3)),
                    "time_precision": "exact",
                    "category": "burglary",
                    "lon": pack.network.lon[node] + d[0],
                    "lat": pack.network.lat[node] + d[1] * 0.75,
                }
            )
    with engine.begin() as conn:
        insert_incidents(conn, coerce_frame(pd.DataFrame(planted)))
    config = AdvisoryConfig(categories=("theft", "burglary"))
    now = datetime(2015, 1, 1, tzinfo=UTC)
    wall, cpu = time.perf_counter(), time.process_time()
    tables = refresh_tables(engine, pack, config, now=now)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"\n| refresh of both categories, 99 permutations | {wall:.2f} s wall | {cpu:.2f} s CPU |"
    )
    print("\n| category | incidents | window |\n|---|---|---|")
    for t in tables:
        w = t["window"]
        shown = (
            "none (no significant band)"
            if w is None
            else (
                f"{w['distance_m']:g} m, {w['days']} days, p = {w['p_value']:.3g}, "
                f"ratio {w['ratio']:.2f}"
            )
        )
        print(f"| {t['category']} | {t['events']:,} | {shown} |")
    sessions = session_factory(engine)
    router = Router.from_pack(pack)
    nodes = rng.choice(len(pack.network.lon), CALLS * 3, replace=False)
    points = [(float(pack.network.lon[k]), float(pack.network.lat[k])) for k in nodes]
    points = [p for p in points if pack.contains(*p)]
    who = Principal("bench", Role.DISPATCHER)
    rows = []
    cases = [("off", None, "burglary"), ("theft (no window)", "theft", "theft"),
             ("burglary (window)", "burglary", "burglary")]  # fmt: skip
    for k, (name, enabled, category) in enumerate(cases):
        service = DispatchService(sessions, pack, router, _Sink(), clock=lambda: now)
        advisor = NearRepeatAdvisor(sessions, pack, config, lambda: now)
        if enabled:
            service.incident_hooks = (advisor.on_incident,)
        mine = points[k * CALLS // 2 : (k + 1) * CALLS // 2]
        service.create_incident(who, category=category, lon=mine[0][0], lat=mine[0][1])  # warm
        cpu = time.process_time()
        for lon, lat in mine[1:]:
            service.create_incident(who, category=category, lon=lon, lat=lat)
        rows.append((name, (time.process_time() - cpu) / (len(mine) - 1) * 1e3))
    base = rows[0][1]
    print("\n| advisories | CPU per create_incident |\n|---|---|")
    for name, ms in rows:
        extra = f" ({ms - base:+.2f} ms)" if name != "off" else " (baseline)"
        print(f"| {name} | {ms:.2f} ms{extra} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of the whole run: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
