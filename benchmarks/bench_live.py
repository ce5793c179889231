"""The live core under load: AVL ingestion, recommendation latency, login flood (issue 11).

Run: ``.venv/bin/python benchmarks/bench_live.py [--seconds 8] [--baseline REV]``.

Each code version runs as a real ``uvicorn`` service in its own process on a fresh database
(SQLite file, and PostgreSQL when reachable), Manhattan pack, 400 registered units:

* ``baseline``: the code of git revision ``REV`` (default ``bc1e89a``, ``main`` before the
  in-memory unit state and the single-PUT fast path), extracted with ``git archive``;
* ``current``: this checkout.

Measured, the same way for both (load clients: keep-alive HTTP/1.1 connections on plain
sockets, threads of :data:`CLIENT_PROCESSES` forked processes, on loopback; their CPU time is
reported too):

* single ``PUT /units/{id}/position`` with 16 clients flat out: requests/s, p50/p99, and the
  service's CPU time per request (``/proc/<pid>/stat``: robust to the load of other jobs);
* the same PUT paced at 40/s: p50/p99 latency;
* ``POST /positions`` batches of 500 fixes, 4 clients: fixes/s and CPU per fix;
* ``GET /incidents/{id}/recommendations``: p50/p99 and CPU per request idle, while 8 clients
  stream PUTs, and while 32 clients send wrong passwords to ``/auth/token``;
* PostgreSQL: the PUT flat out with one service process and with two on the database (clients
  spread over both), alternated, with 16 and 32 clients (:data:`ALTERNATED_CLIENTS`), and the
  streaming recommendation with two; with the share of the whole machine busy meanwhile
  (``/proc/stat``: a second worker can only add what the cores have to spare);
* the service's peak memory (``VmHWM``), and acknowledged fixes (2xx) against rows in
  ``unit_positions``: nothing acknowledged may be lost.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
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
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dispatch import PG, drop_pg, pg_database
from common import busy_share, machine, machine_ticks, summary_ms, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
UNITS = 400
#: Load clients own disjoint sets of units (UNITS / 16 each, see ``put_call``).
_DEVICE_GROUPS = 16

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
if len(sys.argv) > 2:  # a second worker on the seeded database
    sock = socket.socket(); sock.bind(("127.0.0.1", 0))
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="error")).run(sockets=[sock])
    sys.exit()
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
service.recommend(admin, inc["id"])  # compile the kernels before anything is measured
sock = socket.socket(); sock.bind(("127.0.0.1", 0))
print(json.dumps({"port": sock.getsockname()[1], "token": app.state.tokens.issue(admin),
                  "incident": inc["id"], "points": points}), flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="error")).run(sockets=[sock])
"""


def baseline_src(rev: str, into: Path) -> Path:
    """``src/`` of git revision ``rev``, extracted under ``into``."""
    data = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src", "pyproject.toml"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    (into / "data").symlink_to(ROOT / "data")  # the same real data files
    return into / "src"


@contextmanager
def service(src: Path, db: str, home: Path, join: bool = False) -> Iterator[dict[str, Any]]:
    """A seeded service process of the code in ``src`` on ``db`` (``join``: another worker
    on the database already seeded); its info has ``url`` and ``pid``."""
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "CITYWATCH_AUDIT_HOME": str(home),
        "CITYWATCH_PACKS": str(home.parent / f"packs-{src.parent.name}"),
    }
    runner = home / "runner.py"
    runner.write_text(RUNNER % {"units": UNITS})
    args = [sys.executable, str(runner), db, *(["join"] if join else [])]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        info["url"] = f"http://127.0.0.1:{info['port']}"
        info["urls"] = [info["url"]]
        info["pids"] = [proc.pid]
        wait_healthy(info["url"])
        yield info
    finally:
        proc.terminate()
        proc.wait(30)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Answer:
    """What :class:`Connection` got back: the status code and the body."""

    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One keep-alive HTTP/1.1 connection of a load client, on a plain socket.

    The load clients share two cores with the service they measure, so they must cost it as
    little as they can: httpx took about 1 ms of client CPU per request (16 threads took a
    third of the machine), ``http.client`` about 0.2 ms (its header parsing is the email
    package's); writing the request bytes and reading the answer by its ``Content-Length``
    costs a few tens of µs, the same for every code version measured.
    """

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._sock = socket.create_connection((host, int(port)), timeout=120)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lines = [f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
        self._head = "".join(f"{line}\r\n" for line in lines)
        self._buffer = b""

    def request(self, method: str, path: str, body: bytes, content_type: str) -> Answer:
        head = (
            f"{method} {path} HTTP/1.1\r\n{self._head}Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self._sock.sendall(head.encode("latin-1") + body)
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            self._buffer += self._receive()
        header, self._buffer = self._buffer[:end].decode("latin-1"), self._buffer[end + 4 :]
        status = int(header.split(" ", 2)[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in header.split("\r\n")[1:]
            if line.lower().startswith("content-length:")
        )
        while len(self._buffer) < length:
            self._buffer += self._receive()
        answer, self._buffer = self._buffer[:length], self._buffer[length:]
        return Answer(status, answer)

    def _receive(self) -> bytes:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("the service closed the connection")
        return chunk

    def put(self, path: str, *, json: Any) -> Answer:
        return self.request("PUT", path, _dumps(json), "application/json")

    def post(self, path: str, *, json: Any = None, data: dict[str, str] | None = None) -> Answer:
        if data is not None:
            return self.request("POST", path, urlencode(data).encode(), _FORM)
        return self.request("POST", path, _dumps(json), "application/json")

    def close(self) -> None:
        self._sock.close()


_FORM = "application/x-www-form-urlencoded"
#: Client processes a load is spread over (the GIL of one process would cap the clients).
CLIENT_PROCESSES = 2


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _client_threads(
    info: dict[str, Any], ks: list[int], clients: int, stop: float,
    call: Callable[[Connection, int], int], rate: float | None,
) -> tuple[int, int, list[float], float]:  # fmt: skip
    """Run the clients ``ks`` as threads of this process until ``stop`` (monotonic)."""
    ok, bad, lat = [0], [0], []
    lock = threading.Lock()
    cpu0 = time.process_time()

    def worker(k: int) -> None:
        headers = {"Authorization": f"Bearer {info['token']}"}
        conn = Connection(info["urls"][k % len(info["urls"])], headers)
        i, start = 0, time.monotonic()
        try:
            while time.monotonic() < stop:
                if rate is not None:
                    due = start + i * clients / rate
                    if due > time.monotonic():
                        time.sleep(due - time.monotonic())
                t0 = time.perf_counter()
                n = call(conn, k * 1_000_000 + i)
                dt = time.perf_counter() - t0
                with lock:
                    lat.append(dt)
                    if n > 0:
                        ok[0] += n
                    else:
                        bad[0] += 1
                i += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in ks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ok[0], bad[0], lat, time.process_time() - cpu0


#: CPU seconds used by the load clients so far (all client processes), see :func:`load`.
client_cpu = [0.0]


def load(
    info: dict[str, Any], clients: int, seconds: float, call: Callable[[Connection, int], int],
    rate: float | None = None,
) -> tuple[int, int, list[float]]:  # fmt: skip
    """``clients`` connections calling ``call`` for ``seconds`` (paced to ``rate``/s overall),
    spread over :data:`CLIENT_PROCESSES` forked processes: successes, failures, latencies (s).
    The clients' CPU time is added to :data:`client_cpu`."""
    stop = time.monotonic() + seconds
    ctx = multiprocessing.get_context("fork")  # the call closures are not picklable
    answers = ctx.SimpleQueue()

    def client_process(ks: list[int]) -> None:
        answers.put(_client_threads(info, ks, clients, stop, call, rate))

    parts = [
        ks for p in range(CLIENT_PROCESSES) if (ks := list(range(clients))[p::CLIENT_PROCESSES])
    ]
    procs = [ctx.Process(target=client_process, args=(ks,)) for ks in parts]
    for proc in procs:
        proc.start()
    results = [answers.get() for _ in procs]
    for proc in procs:
        proc.join()
    client_cpu[0] += sum(r[3] for r in results)
    return (
        sum(r[0] for r in results),
        sum(r[1] for r in results),
        [x for r in results for x in r[2]],
    )


def put_call(info: dict[str, Any]) -> Callable[[Connection, int], int]:
    pts = info["points"]

    def call(c: Connection, i: int) -> int:
        # Client k reports the units k, k + 16, k + 32, ... in turn, as devices report their
        # own unit: clients going through the same units in step (i % UNITS) locked the same
        # unit rows at once, a contention no fleet produces.
        client, n = divmod(i, 1_000_000)
        u = (n * _DEVICE_GROUPS + client % _DEVICE_GROUPS) % UNITS
        lon, lat = pts[u]
        r = c.put(f"/api/v1/units/U-{u}/position", json={"lon": lon, "lat": lat, "at": _now()})
        return 1 if r.status_code == 200 else 0

    return call


def batch_call(info: dict[str, Any], size: int = 500) -> Callable[[Connection, int], int]:
    pts = info["points"]

    def call(c: Connection, i: int) -> int:
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
    clients = [httpx.Client(base_url=u, headers=headers, timeout=120) for u in info["urls"]]
    try:
        for i in range(n):
            c = clients[i % len(clients)]
            t0 = time.perf_counter()
            c.get(f"/api/v1/incidents/{info['incident']}/recommendations").raise_for_status()
            samples.append(time.perf_counter() - t0)
    finally:
        for c in clients:
            c.close()
    return summary_ms(samples)


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds used so far by the service processes."""
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def peak_mb(pids: list[int]) -> float:
    """Peak resident memory (``VmHWM``) of the service processes, MB (summed)."""
    total = 0.0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


def measured(info: dict[str, Any], run: Callable[[], Any], requests: Callable[[Any], int]) -> Any:
    """``run()``'s result, with the services' CPU ms per request (``requests(result)``)."""
    c0 = cpu_s(info["pids"])
    result = run()
    n = max(1, requests(result))
    return result, (cpu_s(info["pids"]) - c0) * 1e3 / n


def during(background: Callable[[], Any], measure: Callable[[], Any]) -> Any:
    t = threading.Thread(target=background)
    t.start()
    time.sleep(1.0)
    try:
        return measure()
    finally:
        t.join()


def flood_call(info: dict[str, Any]) -> Callable[[Connection, int], int]:
    def call(c: Connection, i: int) -> int:
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


#: Load clients of the 1-versus-2-worker comparison: a group commit's fixes come from the
#: clients waiting, and two workers split them (16: groups of about 4 per worker, 32: of 8).
ALTERNATED_CLIENTS = (16, 32)
#: Pairs of rounds (one worker, then two) per client count.
ALTERNATED_ROUNDS = 3


def alternate(
    info: dict[str, Any], both: dict[str, Any], clients: int, seconds: float, out: dict[str, Any]
) -> int:
    """One worker and two, alternated (1, 2, 1, 2, ...: the machine's load drifts over
    minutes, so back-to-back pairs compare like with like), ``clients`` flat out; results
    under ``put{clients}_alternated_*`` of ``out``.  Returns the fixes acknowledged."""
    acked = 0
    rounds: dict[str, list[float]] = {"one": [], "two": []}
    cpus: dict[str, list[float]] = {"one": [], "two": []}
    per_worker: dict[str, list[list[float]]] = {"one": [], "two": []}
    # whether the machine had cores to spare for a second worker
    busy: dict[str, list[float]] = {"one": [], "two": []}
    for _ in range(ALTERNATED_ROUNDS):
        for key, target in (("one", info), ("two", both)):
            before = [cpu_s([pid]) for pid in both["pids"]]
            ticks = machine_ticks()
            (ok, bad, _), cpu = measured(
                both,
                lambda t=target: load(t, clients, seconds, put_call(t)),
                lambda r: r[0] + r[1],
            )
            busy[key].append(busy_share(ticks, machine_ticks()))
            acked += ok
            rounds[key].append(ok / seconds)
            cpus[key].append(cpu)
            # CPU ms per request served, worker by worker (the clients are split evenly
            # over the workers of the target).
            served = max(1, ok + bad) / len(target["pids"])
            per_worker[key].append(
                [
                    (cpu_s([pid]) - c0) * 1e3 / served
                    for pid, c0 in zip(both["pids"], before, strict=True)
                    if pid in target["pids"]
                ]
            )
    name = f"put{clients}_alternated"
    out[f"{name}_1worker_per_s"] = rounds["one"]
    out[f"{name}_2workers_per_s"] = rounds["two"]
    out[f"{name}_ratio"] = [b / a for a, b in zip(rounds["one"], rounds["two"], strict=True)]
    out[f"{name}_cpu_ms"] = cpus
    out[f"{name}_cpu_ms_per_worker"] = per_worker
    out[f"{name}_machine_busy"] = busy
    return acked


def run_one(
    label: str, src: Path, db: str, seconds: float, tmp: Path, two_workers: bool
) -> dict[str, Any]:
    home = tmp / f"{label}-{uuid.uuid4().hex[:6]}"
    home.mkdir()
    out: dict[str, Any] = {}
    with service(src, db, home) as info:
        acked = 0
        out["recommend_idle_ms"], out["recommend_idle_cpu_ms"] = measured(
            info, lambda: recommend_ms(info), lambda _: 150
        )
        client0 = client_cpu[0]
        (ok, bad, lat), cpu = measured(
            info, lambda: load(info, 16, seconds, put_call(info)), lambda r: r[0] + r[1]
        )
        acked += ok
        out["put16_per_s"] = ok / seconds
        out["put16_ms"] = summary_ms(lat)
        out["put16_cpu_ms"] = cpu
        out["put16_client_cpu_ms"] = (client_cpu[0] - client0) * 1e3 / max(1, ok + bad)
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
        (ok, bad, lat), cpu = measured(
            info, lambda: load(info, 4, seconds, batch_call(info)), lambda r: r[0]
        )
        acked += ok
        out["batch_fixes_per_s"] = ok / seconds
        out["batch_ms"] = summary_ms(lat)
        out["batch_cpu_ms_per_fix"] = cpu
        flood: list[tuple[int, int, list[float]]] = []
        out["recommend_login_flood_ms"] = during(
            lambda: flood.append(load(info, 32, seconds, flood_call(info))),
            lambda: recommend_ms(info, 60),
        )
        out["flood_answers_per_s"] = flood[0][0] / seconds
        out["peak_mb"] = peak_mb(info["pids"])
        if two_workers:
            with service(src, db, home, join=True) as second:
                both = {**info, "urls": info["urls"] + second["urls"]}
                both["pids"] = info["pids"] + second["pids"]
                recommend_ms(both, 20)  # warm the second worker
                for clients in ALTERNATED_CLIENTS:
                    acked += alternate(info, both, clients, seconds, out)
                streamed = []
                out["recommend_streaming_2workers_ms"] = during(
                    lambda: streamed.append(load(both, 8, seconds, put_call(both))),
                    lambda: recommend_ms(both, 100),
                )
                acked += streamed[0][0]
                time.sleep(1.5)  # let the sealers finish
        time.sleep(1.5)  # let the sealer finish
        out["acknowledged_fixes"] = acked
        out["stored_fixes"] = stored_rows(db)
    out["lost_fixes"] = max(0, out["acknowledged_fixes"] - out["stored_fixes"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--baseline", default="bc1e89a")
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
                    results[f"{dbname}/{label}"] = run_one(
                        label, src, db, args.seconds, tmp, two_workers=False
                    )
                    print(f"{dbname}/{label}: {json.dumps(results[f'{dbname}/{label}'])}")
                    continue
                name = pg_database()
                if name is None:
                    print("PostgreSQL not reachable: skipped")
                    break
                try:
                    db = PG + name
                    results[f"{dbname}/{label}"] = run_one(
                        label, src, db, args.seconds, tmp, two_workers=True
                    )
                finally:
                    drop_pg(name)
                print(f"{dbname}/{label}: {json.dumps(results[f'{dbname}/{label}'])}", flush=True)
    print(json.dumps(results, indent=1))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"wall {wall:.0f} s, CPU of the load clients {client_cpu[0]:.0f} s, of this process "
        f"(recommendation clients, set-up) {cpu:.0f} s; load average {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
