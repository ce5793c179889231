"""Dashboard and demo feed: map payload, feed step cost, KPI summary latency.

Run: ``.venv/bin/python benchmarks/bench_web.py`` (or ``make bench``).  Baselines, in the same
run:

* map layers: the straightforward GeoJSON of the road network, one LineString feature per
  directed edge (what ``GeoDataFrame.to_json`` of the edge table gives), against the dashboard's
  layer (one MultiLineString per ``highway`` class, each street once, 1e-6° precision);
* feed step: every moving unit posting a position every tick (2 s), against the feed's default
  (units on a call every tick, patrolling units every 6 s);
* KPI summary: one ``kpis`` call for the last 24 h (what ``GET /api/v1/kpis`` does) against the
  dashboard summary (today, this week, by station, by hour: four calls).
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, summary_ms, timings

from citywatch.api.layers import local_windows, pack_layers
from citywatch.city import CityPack, load_pack
from citywatch.demo.calls import SimulatedCalls, scaled_model
from citywatch.demo.cli import ensure_fleet
from citywatch.demo.feed import DemoFeed, FeedConfig
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.service import DispatchService
from citywatch.routing import Router
from citywatch.store.db import make_engine, session_factory, upgrade
from citywatch.store.dispatch_models import UnitPosition

ADMIN = Principal("bench", Role.ADMIN)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 14, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class NullSink:
    def stage(self, session: object, event: dict[str, object]) -> None:
        pass


def naive_roads(pack: CityPack) -> dict[str, object]:
    lon, lat = pack.network.lon, pack.network.lat
    e = pack.network.edges
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"u": int(u), "v": int(v), "length_m": float(m)},
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[float(lon[u]), float(lat[u])], [float(lon[v]), float(lat[v])]],
                },
            }
            for u, v, m in zip(e["u"], e["v"], e["length_m"], strict=True)
        ],
    }


def payload_rows(pack: CityPack) -> list[list[str]]:
    rows = []
    for name, build in (
        ("baseline: a feature per directed edge", lambda: naive_roads(pack)),
        ("dashboard: roads layer", lambda: pack_layers(pack)["roads"]),
        ("dashboard: all layers", lambda: pack_layers(pack)),
    ):
        t = summary_ms(timings(lambda b=build: json.dumps(b()), 5))
        raw = json.dumps(build(), separators=(",", ":")).encode()
        rows.append(
            [
                pack.name,
                name,
                f"{t['p50_ms']:.0f}",
                f"{len(raw) / 1e3:.0f}",
                f"{len(gzip.compress(raw, 6)) / 1e3:.0f}",
            ]
        )
    return rows


def make_service(tmp: Path, pack: CityPack, router: Router, clock: Clock) -> DispatchService:
    engine = make_engine(f"sqlite:///{tmp}")
    upgrade(engine)
    return DispatchService(session_factory(engine), pack, router, NullSink(), clock=clock)


def node_calls(pack: CityPack, start: datetime, rate: float) -> SimulatedCalls:
    rng = np.random.default_rng(3)
    idx = rng.choice(len(pack.network.lon), 300, replace=False)
    where = pack.locate_many(pack.network.lon[idx], pack.network.lat[idx])
    history = pd.DataFrame(
        {
            "received_at": pd.Timestamp("2025-06-02T00:00Z")
            + pd.to_timedelta(np.arange(300) * 2016, unit="s"),
            "lon": pack.network.lon[idx],
            "lat": pack.network.lat[idx],
            "category": "theft",
            "priority": 3,
            "station": where["station"].to_numpy(),
            "zone": where["zone"].fillna(where["station"]).to_numpy(),
        }
    )[where["city"].notna().to_numpy()]
    return SimulatedCalls(scaled_model(history, pack.timezone, rate), start, 5)


def feed_rows(pack: CityPack, router: Router, tmp: Path) -> list[list[str]]:
    rows = []
    steps = 90  # three simulated minutes of 2 s ticks
    for name, report_s in (("baseline: patrols report every tick", 2.0), ("feed default", 6.0)):
        clock = Clock()
        service = make_service(tmp / f"feed-{report_s}.db", pack, router, clock)
        ensure_fleet(service)
        config = FeedConfig(patrol_report_s=report_s, initial_calls=6, seed=1)
        feed = DemoFeed(service, node_calls(pack, clock(), 90.0), config)
        feed.step()  # start-up: the first calls and every patrol route
        samples = []
        for _ in range(steps):
            clock.now += timedelta(seconds=config.tick_s)
            start = time.perf_counter()
            feed.step()
            samples.append(time.perf_counter() - start)
        with service.sessions() as s:
            positions = s.scalar(select(func.count()).select_from(UnitPosition)) or 0
        t = summary_ms(samples)
        rows.append(
            [
                name,
                f"{t['p50_ms']:.0f}",
                f"{t['p99_ms']:.0f}",
                f"{100 * t['mean_ms'] / 1e3 / config.tick_s:.1f}",
                f"{positions / (steps * config.tick_s / 60):.0f}",
            ]
        )
    return rows


def summary_rows(pack: CityPack, router: Router, tmp: Path) -> list[list[str]]:
    clock = Clock()
    service = make_service(tmp / "kpis.db", pack, router, clock)
    ensure_fleet(service)
    rng = np.random.default_rng(2)
    nodes = rng.choice(len(pack.network.lon), 600)
    made = 0
    for i in nodes:
        lon, lat = float(pack.network.lon[i]), float(pack.network.lat[i])
        if not pack.contains(lon, lat):
            continue
        service.create_incident(
            ADMIN,
            category="theft",
            lon=lon,
            lat=lat,
            received_at=clock() - timedelta(minutes=int(rng.integers(0, 7 * 24 * 60))),
        )
        made += 1
    now = clock()
    win = local_windows(now, pack.timezone)
    end = now + timedelta(milliseconds=1)

    def one() -> None:
        service.kpis(ADMIN, start=now - timedelta(hours=24), end=now)

    def dashboard() -> None:
        for start, by in (
            (win["today"][0], "none"),
            (win["week"][0], "none"),
            (win["today"][0], "station"),
            (win["week"][0], "hour"),
        ):
            service.kpis(ADMIN, start=start, end=end, by=by)

    rows = []
    for name, fn in (("baseline: one kpis call (24 h)", one), ("dashboard summary", dashboard)):
        t = summary_ms(timings(fn, 20))
        rows.append([name, str(made), f"{t['p50_ms']:.1f}", f"{t['p99_ms']:.1f}"])
    return rows


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n{title}")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def main() -> None:
    print(f"Machine: {machine()}")
    manhattan, shenzhen = load_pack("manhattan"), load_pack("shenzhen")
    table(
        "Map layers (JSON build + dump, size)",
        ["pack", "payload", "p50 ms", "kB", "kB gzip"],
        payload_rows(manhattan) + payload_rows(shenzhen),
    )
    router = Router.from_pack(manhattan)
    with tempfile.TemporaryDirectory() as tmp:
        table(
            "Demo feed step, Manhattan, 63 units, half patrolling, SQLite",
            ["variant", "p50 ms", "p99 ms", "% of one core", "positions/min"],
            feed_rows(manhattan, router, Path(tmp)),
        )
        table(
            "KPI summary, Manhattan, SQLite",
            ["variant", "incidents", "p50 ms", "p99 ms"],
            summary_rows(manhattan, router, Path(tmp)),
        )


if __name__ == "__main__":
    main()
