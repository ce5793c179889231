"""Sightings ingestion with a 1,000,000-entry hotlist; alert latency POST -> WebSocket (issue 14).

Run: ``.venv/bin/python benchmarks/bench_sightings.py [--entries 1000000] [--seconds 10]
[--databases postgresql,sqlite]``.

Each database gets a fresh service process (uvicorn, one worker, Manhattan pack, 40 plate
readers, 30 units, a ``sensor_feed`` account), run twice:

* ``baseline``: an empty hotlist (ingest, match nothing, store);
* ``hotlist``: ``--entries`` stolen-vehicle entries imported first (``import_entries``, in
  chunks of 50,000), so that every read is matched against them.

Measured, from this process over loopback (the clients send pre-serialised bodies so that they
cost the shared CPU little):

* ingestion: 3 clients post batches of 1,000 reads (0.2 % of them hotlist hits) for
  ``--seconds``: sightings stored per second, and the **server's CPU seconds** per 1,000
  sightings (``/proc/PID/stat``), peak RSS of the server (``VmHWM``);
* alert latency: 60 single-read POSTs, each a hit of a fresh entry (a new alert with its
  recommended units), 5 per second, idle and while 3 clients ingest at the target
  :data:`TARGET_RATE` (the rate reached is reported); the time from sending the POST to
  receiving the alert on a WebSocket of an admin: p50/p99, split into the POST's own time and
  the time from its response to the WebSocket message (the bus);
* the CPU share of this process (the clients), to show that they are not the bottleneck.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dispatch import PG, drop_pg, pg_database
from common import machine, summary_ms, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
SENSORS = 40
BATCH = 1000
HIT_SHARE = 0.002
#: Issue 14's ingestion target (sightings per second), the background rate of the alert probes.
TARGET_RATE = 5000.0

#: Runs inside the service process: seeds the database, prints what the clients need, serves.
RUNNER = r"""
import json, socket, sys, time, numpy as np, uvicorn
from citywatch.api.app import create_app
from citywatch.api.settings import Settings
from citywatch.city import load_pack
from citywatch.dispatch.accounts import Principal, Role, create_token, create_user
from citywatch.store.db import make_engine, session_factory, upgrade
from citywatch.surveillance.hotlist_files import import_entries
from citywatch.surveillance.hotlists import NewEntry
from citywatch.surveillance.matching import ValueKey
from citywatch.surveillance.registry import snap_sensors
from citywatch.surveillance.sensors import Sensor
from citywatch.surveillance.store import save_sensors
db, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if mode == "import":  # in its own process: the service's peak memory is the service's own
    engine = make_engine(db); upgrade(engine); sessions = session_factory(engine)
    key = ValueKey.open()
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, n, 50000):
        part = [NewEntry(kind="plate", value=f"BENCH{i:07d}", reason="stolen_vehicle",
                         owner="bench", legal_basis="benchmark")
                for i in range(start, min(n, start + 50000))]
        with sessions.begin() as s:
            import_entries(s, part, actor="bench", purpose="benchmark hotlist", key=key)
    print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}))
    sys.exit(0)
pack = load_pack("manhattan")
app = create_app(Settings(pack="manhattan", db_url=db, jwt_secret="b" * 40), pack=pack)
service = app.state.service
admin = Principal("bench", Role.ADMIN)
with service.sessions.begin() as s:
    create_user(s, "bench", "admin", password="bench-password-1")
    create_user(s, "feed", "sensor_feed")
    feed = create_token(s, "feed", "bench")
rng = np.random.default_rng(7)
lon, lat = pack.network.lon, pack.network.lat
sensors = []
while len(sensors) < %(sensors)d:
    j = int(rng.integers(len(lon)))
    if pack.contains(float(lon[j]), float(lat[j])):
        sensors.append(Sensor.from_record({"id": f"R{len(sensors)}", "kind": "plate_reader",
            "owner": "police", "lon": float(lon[j]), "lat": float(lat[j])}))
placed = snap_sensors(sensors, pack)
with service.sessions.begin() as s:
    save_sensors(s, pack.name, placed.sensors, actor="bench")
for i in range(30):
    service.create_unit(admin, id=f"U-{i}", unit_type="patrol_car",
                        station=pack.stations[i %% len(pack.stations)].id)
sock = socket.socket(); sock.bind(("127.0.0.1", 0))
print(json.dumps({"port": sock.getsockname()[1], "admin": app.state.tokens.issue(admin),
                  "feed": feed, "sensors": [x.id for x in placed.sensors]}), flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="error", ws="websockets-sansio")).run(sockets=[sock])
"""


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_mib(pid: int) -> float:
    """Peak resident memory of a process (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def service(db: str, entries: int, home: Path) -> Iterator[dict[str, Any]]:
    """A seeded service process of this checkout on ``db``."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "CITYWATCH_AUDIT_HOME": str(home),
        "CITYWATCH_PACKS": str(home.parent / "packs"),
    }
    runner = home / "runner.py"
    runner.write_text(RUNNER % {"sensors": SENSORS})
    done = subprocess.run(
        [sys.executable, str(runner), db, str(entries), "import"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    imported = json.loads(done.stdout)
    proc = subprocess.Popen(
        [sys.executable, str(runner), db, str(entries), "serve"],
        env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        info["import"] = imported
        info["url"] = f"http://127.0.0.1:{info['port']}"
        info["pid"] = proc.pid
        wait_healthy(info["url"])
        yield info
    finally:
        proc.terminate()
        proc.wait(30)


def bodies(info: dict[str, Any], entries: int, n: int, seed: int) -> list[bytes]:
    """``n`` pre-serialised batches of reads, ``HIT_SHARE`` of them hotlist values."""
    rng = random.Random(seed)
    at = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    out = []
    for _ in range(n):
        reads = []
        for _ in range(BATCH):
            hit = entries and rng.random() < HIT_SHARE
            value = f"BENCH{rng.randrange(entries):07d}" if hit else f"Q{rng.randrange(10**9):09d}"
            reads.append(
                {
                    "sensor_id": rng.choice(info["sensors"]),
                    "seen_at": at,
                    "kind": "plate",
                    "value": value,
                }
            )
        out.append(json.dumps({"sightings": reads}).encode())
    return out


def ingest(
    info: dict[str, Any], entries: int, clients: int, seconds: float, rate: float | None = None
) -> dict[str, Any]:
    """Post batches from ``clients`` threads for ``seconds``: flat out, or paced to ``rate``
    sightings per second in all (a client late on its schedule sends at once)."""
    interval = None if rate is None else clients * BATCH / rate
    payloads = bodies(info, entries, 24, seed=clients)
    stop = time.perf_counter() + seconds
    stored = [0] * clients
    failed = [0] * clients
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {info['feed']}", "Content-Type": "application/json"}

    def worker(k: int) -> None:
        with httpx.Client(base_url=info["url"], headers=headers, timeout=60) as c:
            i = k
            due = time.perf_counter() + (0.0 if interval is None else k * interval / clients)
            while time.perf_counter() < stop:
                if interval is not None:
                    time.sleep(max(0.0, due - time.perf_counter()))
                    due += interval
                t = time.perf_counter()
                r = c.post("/api/v1/sightings", content=payloads[i % len(payloads)])
                latencies.append(time.perf_counter() - t)
                if r.status_code == 200:
                    stored[k] += r.json()["stored"]
                else:
                    failed[k] += 1
                i += clients

    cpu0, t0, own0 = proc_cpu_s(info["pid"]), time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall, cpu = time.perf_counter() - t0, proc_cpu_s(info["pid"]) - cpu0
    total = sum(stored)
    return {
        "sightings_per_s": total / wall,
        "server_cpu_s_per_1000": 1000 * cpu / max(total, 1),
        "server_cpu_share": cpu / wall,
        # this process's CPU (all client threads) per wall second: not the bottleneck if low
        "client_cpu_share": (time.process_time() - own0) / wall,
        "failed_requests": sum(failed),
        "batch_ms": summary_ms(latencies),
    }


def alert_latency(
    info: dict[str, Any], entries: int, n: int = 60, seed: int = 99
) -> dict[str, float]:
    """POST of one hit of a fresh entry -> the alert on an admin's WebSocket."""
    arrived: dict[int, float] = {}
    ready = threading.Event()
    ws_url = (
        info["url"].replace("http://", "ws://") + f"/api/v1/events?access_token={info['admin']}"
    )

    done = threading.Event()

    def listen() -> None:
        # every alert created is recorded (the background ingestion raises some too); the
        # probes' alerts are picked out by id afterwards
        with connect(ws_url) as ws:
            ready.set()
            while not done.is_set():
                try:
                    ev = json.loads(ws.recv(timeout=1))
                except TimeoutError:
                    continue
                data = ev.get("data")
                if ev.get("type") == "sighting.alert" and data and data["change"] == "created":
                    arrived[data["id"]] = time.perf_counter()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait(30)
    rng = random.Random(seed)
    fresh = rng.sample(range(entries), n)
    sent: dict[int, float] = {}
    answered: dict[int, float] = {}  # alert id -> when its POST's response arrived
    headers = {"Authorization": f"Bearer {info['feed']}"}
    with httpx.Client(base_url=info["url"], headers=headers, timeout=60) as c:
        for i, j in enumerate(fresh):
            # each probe at another reader, so that no alert joins an earlier one
            sensor = info["sensors"][i % len(info["sensors"])]
            read = {"sensor_id": sensor, "seen_at": datetime.now(UTC).isoformat(), "kind": "plate",
                    "value": f"BENCH{j:07d}"}  # fmt: skip
            t = time.perf_counter()
            r = c.post("/api/v1/sightings", json={"sightings": [read]})
            created = r.json()["alerts_created"]
            if created:
                sent[created[0]] = t
                answered[created[0]] = time.perf_counter()
            time.sleep(0.2)
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline and not all(a in arrived for a in sent):
        time.sleep(0.1)
    done.set()
    listener.join(10)
    samples = [arrived[a] - t for a, t in sent.items() if a in arrived]
    stats = summary_ms(samples) if samples else {"p50_ms": float("nan"), "p99_ms": float("nan")}
    # where the time goes: the POST itself (validation, match, alert, commit) and the delivery
    # from the response to the WebSocket (bus, fan-out)
    post = summary_ms([answered[a] - t for a, t in sent.items()]) if sent else {}
    after = [arrived[a] - answered[a] for a in sent if a in arrived]
    return {
        **stats,
        "alerts": len(sent),
        "received": len(samples),
        "post_p50_p99_ms": [post.get("p50_ms"), post.get("p99_ms")],
        "response_to_ws_p50_p99_ms": [summary_ms(after)[k] for k in ("p50_ms", "p99_ms")]
        if after
        else None,
    }


def run_one(db: str, entries: int, seconds: float, tmp: Path) -> dict[str, Any]:
    home = tmp / f"home-{uuid.uuid4().hex[:6]}"
    home.mkdir()
    with service(db, entries, home) as info:
        out: dict[str, Any] = {"entries": entries, "import": info["import"]}
        out["ingest_3_clients"] = ingest(info, entries, 3, seconds)
        if entries:
            out["alert_idle"] = alert_latency(info, entries)
            background: list[dict[str, Any]] = []
            # the target rate, from 3 clients, while the probes run
            th = threading.Thread(
                target=lambda: background.append(ingest(info, entries, 3, 14, rate=TARGET_RATE))
            )
            th.start()
            time.sleep(1)
            out["alert_under_ingest"] = alert_latency(info, entries, 50, seed=100)
            th.join()
            out["ingest_during_alerts"] = background[0]["sightings_per_s"]
        out["server_peak_rss_mib"] = proc_peak_mib(info["pid"])
    return out


def _fmt(a: dict[str, Any] | None) -> str:
    if a is None:
        return "–"
    return f"{a['p50_ms']:.0f} / {a['p99_ms']:.0f} ({a['received']}/{a['alerts']})"


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| database / hotlist | sightings/s | server CPU s per 1,000 | sightings per server "
        "CPU s | batch p50 / p99 ms | alert POST->WS p50 / p99 ms (idle) | (while ingesting; "
        "sightings/s reached) "
        "| peak RSS MiB | import s (CPU s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        ing = r["ingest_3_clients"]
        idle, busy = r.get("alert_idle"), r.get("alert_under_ingest")
        imp = r["import"]
        reached = "" if busy is None else f"; {r['ingest_during_alerts']:,.0f}/s"
        lines.append(
            f"| {name} ({r['entries']:,}) | {ing['sightings_per_s']:,.0f} | "
            f"{ing['server_cpu_s_per_1000']:.3f} | {1000 / ing['server_cpu_s_per_1000']:,.0f} | "
            f"{ing['batch_ms']['p50_ms']:.0f} / "
            f"{ing['batch_ms']['p99_ms']:.0f} | {_fmt(idle)} | {_fmt(busy)}{reached} | "
            f"{r['server_peak_rss_mib']:.0f} | {imp['seconds']:.0f} ({imp['cpu_s']:.0f}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--databases", default="postgresql,sqlite")
    args = parser.parse_args()
    print(machine())
    t0, c0 = time.perf_counter(), time.process_time()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for dbname in args.databases.split(","):
            for label, entries in (("baseline", 0), ("hotlist", args.entries)):
                if dbname == "sqlite":
                    db = f"sqlite:///{tmp / f'{label}.db'}"
                    results[f"{dbname}/{label}"] = run_one(db, entries, args.seconds, tmp)
                else:
                    name = pg_database()
                    if name is None:
                        print("PostgreSQL not reachable: skipped")
                        break
                    try:
                        results[f"{dbname}/{label}"] = run_one(
                            PG + name, entries, args.seconds, tmp
                        )
                    finally:
                        drop_pg(name)
                print(f"{dbname}/{label}: {json.dumps(results[f'{dbname}/{label}'])}", flush=True)
    print()
    print(table(results))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"\nwall {wall:.0f} s, CPU of this process (the clients) {cpu:.0f} s")


if __name__ == "__main__":
    main()
