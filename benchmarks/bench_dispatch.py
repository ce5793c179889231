"""Dispatch service: recommendation latency with 400 available units, and AVL update throughput.

Run: ``.venv/bin/python benchmarks/bench_dispatch.py`` (or ``make bench``).

Recommendation (Manhattan pack, 400 available units of four travel modes, random incidents):

* ``recommend()`` with the Router (edge-snapped, exact, one search per mode);
* the same ``recommend()`` with a networkx travel function, the baseline: for each mode a
  Dijkstra search with paths from the incident's nearest node on the reversed graph, reading
  each unit's nearest node (node-to-node, so it does less work than the Router);
* the same ``recommend()`` with the simulator's travel
  (:class:`citywatch.sim.travel.SearchTravel`, compiled full searches, 400 cars and motorcycles
  as in ``bench_sim.py``), asked by coordinates and by position key;
* the service call (``DispatchService.recommend``: units read from SQLite, staleness, policy),
  and the whole HTTP request ``GET /api/v1/incidents/{id}/recommendations`` on loopback.

AVL throughput: sequential ``DispatchService.update_position`` calls (each one transaction with
history row, event and timeline row) on SQLite (and PostgreSQL when reachable), and sequential
``PUT /api/v1/units/{id}/position`` requests over HTTP.
"""

from __future__ import annotations

import itertools
import socket
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import networkx as nx
import numpy as np
import psycopg
import uvicorn
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, summary_ms, timings

from citywatch.api.app import create_app
from citywatch.api.settings import Settings
from citywatch.city import CityPack, load_pack
from citywatch.dispatch.accounts import Principal, Role, create_user
from citywatch.dispatch.policy import (
    IncidentView,
    TravelFn,
    UnitView,
    load_requirements,
    nearest,
    recommend,
    router_travel,
)
from citywatch.routing import MODES, Router

UNITS = 400
QUERIES = 200
UPDATES = 1000
HTTP_UPDATES = 500
MIX = {"patrol_car": 0.6, "motorcycle": 0.15, "foot": 0.15, "bicycle": 0.1}
ADMIN = Principal("bench", Role.ADMIN)
PG = "postgresql://postgres@127.0.0.1:5432/"


def random_points(pack: CityPack, rng: np.random.Generator, n: int) -> np.ndarray:
    lon, lat = pack.network.lon, pack.network.lat
    out: list[tuple[float, float]] = []
    while len(out) < n:
        i = int(rng.integers(len(lon)))
        p = (float(lon[i] + rng.normal(0, 1e-4)), float(lat[i] + rng.normal(0, 1e-4)))
        if pack.contains(*p):
            out.append(p)
    return np.array(out)


def networkx_travel(router: Router) -> TravelFn:
    """The baseline TravelFn: per-mode networkx Dijkstra on the reversed graph, nearest nodes."""
    lon, lat = router.network.lon, router.network.lat
    scale = np.cos(np.radians(float(np.mean(lat))))
    tree = cKDTree(np.column_stack([lon * scale, lat]))
    reverse: dict[str, nx.DiGraph] = {}
    for mode in MODES:
        g = router.graph(mode)
        sec, met = g.seconds.tocoo(), g.metres.tocsr()
        graph = nx.DiGraph()
        for u, v, s in zip(sec.row.tolist(), sec.col.tolist(), sec.data.tolist(), strict=True):
            graph.add_edge(v, u, seconds=s, metres=float(met[u, v]))
        reverse[mode] = graph

    def travel(
        sources: np.ndarray, mode: str, target: tuple[float, float], limit_s: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        _, src = tree.query(np.column_stack([sources[:, 0] * scale, sources[:, 1]]))
        _, dst = tree.query([target[0] * scale, target[1]])
        graph = reverse[mode]
        dist, paths = nx.single_source_dijkstra(graph, int(dst), cutoff=limit_s, weight="seconds")
        seconds = np.array([dist.get(int(n), np.inf) for n in src])
        metres = np.array(
            [
                sum(graph[a][b]["metres"] for a, b in itertools.pairwise(p))
                if (p := paths.get(int(n)))
                else np.inf
                for n in src
            ]
        )
        return seconds, metres

    return travel


def start(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="websockets-sansio"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


def pg_database() -> str | None:
    try:
        with psycopg.connect(PG + "test", autocommit=True, connect_timeout=3) as conn:
            name = f"cw_bench_{uuid.uuid4().hex[:10]}"
            conn.execute(f'CREATE DATABASE "{name}"')
            return name
    except psycopg.OperationalError:
        return None


def drop_pg(name: str) -> None:
    with psycopg.connect(PG + "test", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def bench_policy(
    pack: CityPack, router: Router, rng: np.random.Generator
) -> list[tuple[str, dict[str, float]]]:
    rules = load_requirements()
    types = rng.choice(list(MIX), size=UNITS, p=list(MIX.values()))
    pts = random_points(pack, rng, UNITS)
    units = [
        UnitView(f"u{i}", str(t), rules.mode_of(str(t)), None, float(x), float(y))
        for i, (t, (x, y)) in enumerate(zip(types, pts, strict=True))
    ]
    targets = random_points(pack, rng, QUERIES)
    incidents = [
        IncidentView(f"i{i}", "theft", 3, float(x), float(y)) for i, (x, y) in enumerate(targets)
    ]
    rows = []
    for label, travel in [
        ("recommend() + Router (exact, edge-snapped)", router_travel(router)),
        ("recommend() + networkx Dijkstra (baseline, nodes)", networkx_travel(router)),
    ]:
        it = iter(range(10**9))
        rows.append(
            (
                label,
                summary_ms(
                    timings(
                        lambda t=travel, it=it: recommend(
                            incidents[next(it) % QUERIES], units, t, nearest(), k=5
                        ),
                        QUERIES,
                    )
                ),
            )
        )
    return rows


def bench_matrix(
    pack: CityPack, router: Router, rng: np.random.Generator
) -> list[tuple[str, dict[str, float]]]:
    """``recommend()`` with the simulator's travel: by coordinates and by position key."""
    from citywatch.sim.travel import SearchTravel

    travel = SearchTravel(router, ["car", "motorcycle"])
    types = rng.choice(["patrol_car", "motorcycle"], size=UNITS, p=[0.84, 0.16])
    pts = random_points(pack, rng, UNITS)
    locs = travel.register(pts)
    targets = random_points(pack, rng, QUERIES)
    tlocs = travel.register(targets)
    modes = {"patrol_car": "car", "motorcycle": "motorcycle"}
    stations = [s.id for s in pack.stations]

    def views(keyed: bool) -> list[UnitView]:
        return [
            UnitView(
                f"u{i}",
                str(t),
                modes[str(t)],
                stations[i % len(stations)],
                float(x),
                float(y),
                position_key=int(loc) if keyed else None,
            )
            for i, (t, (x, y), loc) in enumerate(zip(types, pts, locs, strict=True))
        ]

    def incidents(keyed: bool) -> list[IncidentView]:
        return [
            IncidentView(
                f"i{i}", "theft", 3, float(x), float(y), position_key=int(loc) if keyed else None
            )
            for i, ((x, y), loc) in enumerate(zip(targets, tlocs, strict=True))
        ]

    rows = []
    for label, keyed in [
        ("recommend() + SearchTravel, by coordinates (400 cars/motorcycles)", False),
        ("recommend() + SearchTravel, by position key", True),
    ]:
        units, incs = views(keyed), incidents(keyed)
        it = iter(range(10**9))
        rows.append(
            (
                label,
                summary_ms(
                    timings(
                        lambda u=units, i=incs, it=it: recommend(
                            i[next(it) % QUERIES], u, travel, nearest(), k=5
                        ),
                        10 * QUERIES,
                    )
                ),
            )
        )
    return rows


def bench_service(
    pack: CityPack, router: Router, rng: np.random.Generator, db_url: str, label: str
) -> list[tuple[str, str, float | dict[str, float]]]:
    app = create_app(Settings(pack=pack.name, db_url=db_url), pack=pack, router=router)
    service = app.state.service
    with service.sessions.begin() as s:
        create_user(s, "bench", "admin", password="bench-password")
    types = rng.choice(list(MIX), size=UNITS, p=list(MIX.values()))
    stations = [s.id for s in pack.stations]
    now = datetime.now(UTC)
    pts = random_points(pack, rng, UNITS)
    for i, t in enumerate(types):
        service.create_unit(
            ADMIN, id=f"u{i}", unit_type=str(t), station=stations[i % len(stations)]
        )
        service.update_position(ADMIN, f"u{i}", float(pts[i, 0]), float(pts[i, 1]), now)
    targets = random_points(pack, rng, 20)
    ids = [
        service.create_incident(ADMIN, category="theft", lon=float(x), lat=float(y))[0]["id"]
        for x, y in targets
    ]
    # Measured with the server running, as in production (its start-up freezes the pack's
    # objects out of the garbage collector's way).
    server, thread, base = start(app)
    try:
        rows: list[tuple[str, str, float | dict[str, float]]] = []
        it = iter(range(10**9))
        rows.append(
            (
                label,
                "DispatchService.recommend (400 units)",
                summary_ms(
                    timings(lambda: service.recommend(ADMIN, ids[next(it) % len(ids)]), QUERIES)
                ),
            )
        )

        moves = random_points(pack, rng, UPDATES)
        t0 = time.perf_counter()
        for j in range(UPDATES):
            at = now + timedelta(milliseconds=j + 1)
            service.update_position(
                ADMIN, f"u{j % UNITS}", float(moves[j, 0]), float(moves[j, 1]), at
            )
        rows.append(
            (
                label,
                "DispatchService.update_position, sequential",
                UPDATES / (time.perf_counter() - t0),
            )
        )

        with httpx.Client(base_url=base) as c:
            token = c.post(
                "/api/v1/auth/token", data={"username": "bench", "password": "bench-password"}
            ).json()["access_token"]
            c.headers["Authorization"] = f"Bearer {token}"
            it2 = iter(range(10**9))
            rows.append(
                (
                    label,
                    "HTTP GET .../recommendations (400 units)",
                    summary_ms(
                        timings(
                            lambda: c.get(
                                f"/api/v1/incidents/{ids[next(it2) % len(ids)]}/recommendations"
                            ).raise_for_status(),
                            QUERIES,
                        )
                    ),
                )
            )
            start_at = now + timedelta(seconds=10)
            t0 = time.perf_counter()
            for j in range(HTTP_UPDATES):
                at = (start_at + timedelta(milliseconds=j)).isoformat()
                r = c.put(
                    f"/api/v1/units/u{j % UNITS}/position",
                    json={"lon": float(moves[j, 0]), "lat": float(moves[j, 1]), "at": at},
                )
                r.raise_for_status()
            rows.append(
                (
                    label,
                    "HTTP PUT .../position, one client, sequential",
                    HTTP_UPDATES / (time.perf_counter() - t0),
                )
            )
    finally:
        server.should_exit = True
        thread.join()
    return rows


def main() -> None:
    print(f"Machine: {machine()}")
    pack = load_pack("manhattan")
    router = Router.from_pack(pack)
    for mode in MODES:
        router.graph(mode)
    rng = np.random.default_rng(2026)
    mix = ", ".join(f"{v:.0%} {k}" for k, v in MIX.items())
    print(f"\nRecommendation, Manhattan, {UNITS} available units ({mix}), {QUERIES} incidents\n")
    print("| method | p50 ms | p99 ms | mean ms |\n|---|---|---|---|")
    for label, s in bench_policy(pack, router, rng) + bench_matrix(pack, router, rng):
        print(f"| {label} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['mean_ms']:.2f} |")

    rows: list[tuple[str, str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += bench_service(pack, router, rng, f"sqlite:///{tmp}/bench.db", "SQLite")
    name = pg_database()
    if name is None:
        print("\n(PostgreSQL not reachable at 127.0.0.1:5432: PostgreSQL rows skipped)")
    else:
        try:
            rows += bench_service(pack, router, rng, PG + name, "PostgreSQL")
        finally:
            drop_pg(name)
    print("\nService and HTTP (loopback, single client)\n")
    print("| database | measure | p50 ms | p99 ms | throughput /s |\n|---|---|---|---|---|")
    for db, label, value in rows:
        if isinstance(value, dict):
            print(f"| {db} | {label} | {value['p50_ms']:.2f} | {value['p99_ms']:.2f} | |")
        else:
            print(f"| {db} | {label} | | | {value:.0f} |")


if __name__ == "__main__":
    main()
