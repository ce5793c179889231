"""The live core under load: AVL ingestion, recommendation latency, login flood (issue 11).

Run: ``.venv/bin/python benchmarks/bench_live.py [--seconds 8] [--baseline REV]``.

Each code version runs as a real ``uvicorn`` service in its own process on a fresh database
(SQLite file, and PostgreSQL when reachable), Manhattan pack, 400 registered units:

* ``baseline``: the code of git revision ``REV`` (default ``b518f11``, before issue 11),
  extracted with ``git archive``;
* ``current``: this checkout.

Measured, the same way for both (HTTP clients are threads of this process, on loopback):

* single ``PUT /units/{id}/position`` with 16 clients flat out: requests/s and p99;
* the same PUT paced at 40/s: p50/p99 latency;
* ``POST /positions`` batches of 500 fixes, 4 clients (current only): fixes/s;
* ``GET /incidents/{id}/recommendations``: p50/p99 idle, while 8 clients stream PUTs, and
  while 32 clients send wrong passwords to ``/auth/token``;
* acknowledged fixes (2xx) against rows in ``unit_positions``: nothing acknowledged may be lost.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dispatch import PG, drop_pg, pg_database
from common import machine, summary_ms

ROOT = Path(__file__).resolve().parent.parent
UNITS = 400

#: Runs inside the service process: seeds the database, prints port and token, serves.
RUNNER = r"""
import json, socket, sys, numpy as np, uvicorn
from citywatch.api.app import create_app
from citywatch.api.settings import Settings
from citywatch.city import load_pack
from citywatch.dispatch.accounts import Principal, Role, create_user
db = sys.argv[1]
pack = load_pack("manhattan")
app = create_app(Settings(pack="manhattan", db_url=db, jwt_secret="b" * 40), pack=pack)
service = app.state.service
admin = Principal("bench", Role.ADMIN)
with service.sessions.begin() as s:
    create_user(s, "bench", "admin", password="bench-password-1")
rng = np.random.default_rng(7)
lon, lat = pack.network.lon, pack.network.lat
points = []
for i in range(%(units)d):
    while True:
        j = int(rng.integers(len(lon)))
        if pack.contains(float(lon[j]), float(lat[j])):
            break
    points.append((float(lon[j]), float(lat[j])))
    station = pack.stations[i %% len(pack.stations)].id
    service.create_unit(admin, id=f"U-{i}", unit_type="patrol_car", station=station)
inc, _ = service.create_incident(admin, category="robbery", lon=points[0][0], lat=points[0][1])
sock = socket.socket(); sock.bind(("127.0.0.1", 0))
print(json.dumps({"port": sock.getsockname()[1], "token": app.state.tokens.issue(admin),
                  "incident": inc["id"], "points": points}), flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="error")).run(sockets=[sock])
"""


def baseline_src(rev: str, into: Path) -> Path:
    """``src/`` of git revision ``rev``, extracted under ``into``."""
    data = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    (into / "data").symlink_to(ROOT / "data")  # the same real data files
    return into / "src"


@contextmanager
def service(src: Path, db: str, home: Path) -> Iterator[dict[str, Any]]:
    """A seeded service process of the code in ``src`` on ``db``."""
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "CITYWATCH_AUDIT_HOME": str(home),
        "CITYWATCH_PACKS": str(home.parent / f"packs-{src.parent.name}"),
    }
    runner = home / "runner.py"
    runner.write_text(RUNNER % {"units": UNITS})
    proc = subprocess.Popen(
        [sys.executable, str(runner), db], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        info["url"] = f"http://127.0.0.1:{info['port']}"
        for _ in range(600):
            try:
                httpx.get(info["url"] + "/api/v1/health", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield info
    finally:
        proc.terminate()
        proc.wait(30)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def load(
    info: dict[str, Any], clients: int, seconds: float, call: Callable[[httpx.Client, int], int],
    rate: float | None = None,
) -> tuple[int, int, list[float]]:  # fmt: skip
    """``clients`` threads calling ``call`` for ``seconds`` (paced to ``rate``/s overall):
    successes, failures, latencies (s)."""
    stop = time.monotonic() + seconds
    ok, bad, lat = [0], [0], []
    lock = threading.Lock()

    def worker(k: int) -> None:
        headers = {"Authorization": f"Bearer {info['token']}"}
        with httpx.Client(base_url=info["url"], headers=headers, timeout=60) as c:
            i, start = 0, time.monotonic()
            while time.monotonic() < stop:
                if rate is not None:
                    due = start + i * clients / rate
                    if due > time.monotonic():
                        time.sleep(due - time.monotonic())
                t0 = time.perf_counter()
                n = call(c, k * 1_000_000 + i)
                dt = time.perf_counter() - t0
                with lock:
                    lat.append(dt)
                    if n > 0:
                        ok[0] += n
                    else:
                        bad[0] += 1
                i += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ok[0], bad[0], lat


def put_call(info: dict[str, Any]) -> Callable[[httpx.Client, int], int]:
    pts = info["points"]

    def call(c: httpx.Client, i: int) -> int:
        u = i % UNITS
        lon, lat = pts[u]
        r = c.put(f"/api/v1/units/U-{u}/position", json={"lon": lon, "lat": lat, "at": _now()})
        return 1 if r.status_code == 200 else 0

    return call


def batch_call(info: dict[str, Any], size: int = 500) -> Callable[[httpx.Client, int], int]:
    pts = info["points"]

    def call(c: httpx.Client, i: int) -> int:
        at = _now()
        fixes = [
            {"unit_id": f"U-{u}", "lon": pts[u][0], "lat": pts[u][1], "at": at}
            for u in ((i * size + k) % UNITS for k in range(size))
        ]
        r = c.post("/api/v1/positions", json={"fixes": fixes})
        return int(r.json()["stored"]) if r.status_code == 200 else 0

    return call


def recommend_ms(info: dict[str, Any], n: int = 150) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {info['token']}"}
    samples = []
    with httpx.Client(base_url=info["url"], headers=headers, timeout=60) as c:
        for _ in range(n):
            t0 = time.perf_counter()
            c.get(f"/api/v1/incidents/{info['incident']}/recommendations").raise_for_status()
            samples.append(time.perf_counter() - t0)
    return summary_ms(samples)


def during(background: Callable[[], Any], measure: Callable[[], Any]) -> Any:
    t = threading.Thread(target=background)
    t.start()
    time.sleep(1.0)
    try:
        return measure()
    finally:
        t.join()


def flood_call(info: dict[str, Any]) -> Callable[[httpx.Client, int], int]:
    def call(c: httpx.Client, i: int) -> int:
        r = c.post("/api/v1/auth/token", data={"username": "bench", "password": f"wrong-{i}"})
        return 1 if r.status_code in (401, 429) else 0

    return call


def stored_rows(db: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(db.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        n = int(conn.execute(text("SELECT count(*) FROM unit_positions")).scalar_one())
    engine.dispose()
    return n


def run_one(label: str, src: Path, db: str, seconds: float, tmp: Path) -> dict[str, Any]:
    home = tmp / f"{label}-{uuid.uuid4().hex[:6]}"
    home.mkdir()
    out: dict[str, Any] = {}
    with service(src, db, home) as info:
        acked = 0
        out["recommend_idle_ms"] = recommend_ms(info)
        ok, bad, lat = load(info, 16, seconds, put_call(info))
        acked += ok
        out["put16_per_s"] = ok / seconds
        out["put16_ms"] = summary_ms(lat)
        out["put16_failed"] = bad
        ok, bad, lat = load(info, 4, seconds, put_call(info), rate=40)
        acked += ok
        out["put_at_40_ms"] = summary_ms(lat)
        streamed: list[tuple[int, int, list[float]]] = []
        out["recommend_streaming_ms"] = during(
            lambda: streamed.append(load(info, 8, seconds, put_call(info))),
            lambda: recommend_ms(info, 100),
        )
        acked += streamed[0][0]
        out["streaming_put_per_s"] = streamed[0][0] / seconds
        if label == "current":
            ok, bad, lat = load(info, 4, seconds, batch_call(info))
            acked += ok
            out["batch_fixes_per_s"] = ok / seconds
            out["batch_ms"] = summary_ms(lat)
        flood: list[tuple[int, int, list[float]]] = []
        out["recommend_login_flood_ms"] = during(
            lambda: flood.append(load(info, 32, seconds, flood_call(info))),
            lambda: recommend_ms(info, 60),
        )
        out["flood_answers_per_s"] = flood[0][0] / seconds
        time.sleep(1.5)  # let the sealer finish
        out["acknowledged_fixes"] = acked
        out["stored_fixes"] = stored_rows(db)
    out["lost_fixes"] = max(0, out["acknowledged_fixes"] - out["stored_fixes"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--baseline", default="b518f11")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    print(machine())
    t0, c0 = time.perf_counter(), time.process_time()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        versions = {"baseline": baseline_src(args.baseline, tmp / "base"), "current": ROOT / "src"}
        for dbname in args.databases.split(","):
            for label, src in versions.items():
                if dbname == "sqlite":
                    db = f"sqlite:///{tmp / f'{label}.db'}"
                    results[f"{dbname}/{label}"] = run_one(label, src, db, args.seconds, tmp)
                    continue
                name = pg_database()
                if name is None:
                    print("PostgreSQL not reachable: skipped")
                    break
                try:
                    db = PG + name
                    results[f"{dbname}/{label}"] = run_one(label, src, db, args.seconds, tmp)
                finally:
                    drop_pg(name)
                print(f"{dbname}/{label}: {json.dumps(results[f'{dbname}/{label}'])}", flush=True)
    print(json.dumps(results, indent=1))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"wall {wall:.0f} s, CPU of this process (the clients) {cpu:.0f} s")


if __name__ == "__main__":
    main()
