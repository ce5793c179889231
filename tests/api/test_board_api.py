"""The roster board over HTTP and WebSocket, on SQLite and PostgreSQL, with a fake clock:
roster and filters, out-of-service reasons, check-ins, team dispatch in one call, move-up, and
timer events on the stream."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from citywatch.api.app import create_app
from citywatch.api.settings import Settings
from citywatch.city import CityPack
from citywatch.demo.cli import ensure_fleet
from citywatch.dispatch.timers import TIMER_TICK_S
from citywatch.routing import Router
from tests.api.conftest import Server, _pg_database, seed_users, start_server, stop_server

HARLEM = (-73.9385, 40.8010)


class FakeClock:
    """Real time plus an offset that the test moves forward (thread-safe)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.offset += timedelta(seconds=seconds)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def board_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "postgresql":
        yield from _pg_database()
    else:
        yield f"sqlite:///{Path(tmp_path_factory.mktemp('board')) / 'citywatch.db'}"


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def board(board_db: str, manhattan: tuple[CityPack, Router], clock: FakeClock) -> Iterator[Server]:
    pack, router = manhattan
    app = create_app(Settings(pack="manhattan", db_url=board_db), pack=pack, router=router)
    app.state.service.clock = clock
    ensure_fleet(app.state.service)
    srv = start_server(app)
    seed_users(srv)
    yield srv
    stop_server(srv)


def error(r: Any) -> dict[str, Any]:
    body: dict[str, Any] = r.json()["error"]
    return body


def incident(srv: Server, category: str = "theft") -> str:
    r = srv.client("disp").post(
        "/api/v1/incidents",
        json={"category": category, "location": {"lon": HARLEM[0], "lat": HARLEM[1]}},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def recv_until(ws: ClientConnection, pred: Any, limit: int = 500) -> dict[str, Any]:
    for _ in range(limit):
        ev = json.loads(ws.recv(timeout=30))
        if pred(ev):
            return ev  # type: ignore[no-any-return]
    raise AssertionError("event not seen")


def test_roster_and_filters(board: Server) -> None:
    disp = board.client("disp")
    r = disp.get("/api/v1/board/roster")
    assert r.status_code == 200
    body = r.json()
    assert len(body["units"]) == 84 and sum(body["counts"].values()) == 84
    first = body["units"][0]
    for key in ("status", "status_at", "time_in_status_s", "station", "unit_type", "shift",
                "incident", "oos_reason", "checkin_at", "timer", "cover_station"):  # fmt: skip
        assert key in first
    only = disp.get("/api/v1/board/roster", params={"unit_type": "foot", "station": "13"}).json()
    assert [u["id"] for u in only["units"]] == ["13-FOOT1"]
    assert disp.get("/api/v1/board/roster", params={"status": "asleep"}).status_code == 422
    bad = disp.get("/api/v1/board/roster", params={"unit_type": "tank"})
    assert bad.status_code == 422 and error(bad)["code"] == "validation_error"
    officer = board.client("off13").get("/api/v1/board/roster").json()
    assert {u["station"] for u in officer["units"]} == {"13"}
    assert board.client("dev-a").get("/api/v1/board/roster").status_code == 403
    config = disp.get("/api/v1/board/config").json()
    assert config["oos_reasons"] == ["meal", "maintenance", "training"]
    assert config["timers"]["status"]["on_scene"] == {"warn_s": 1200.0, "alert_s": 1800.0}
    assert config["tick_s"] == TIMER_TICK_S <= 1.0


def test_out_of_service_with_a_reason(board: Server) -> None:
    disp = board.client("disp")
    r = disp.post("/api/v1/units/6-RMP1/out-of-service", json={"reason": "maintenance"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["oos_reason"]) == ("out_of_service", "maintenance")
    bad = disp.post("/api/v1/units/6-RMP2/out-of-service", json={"reason": "nap"})
    assert bad.status_code == 422 and error(bad)["field"] in ("reason", "body.reason")
    assert (
        board.client("ana")
        .post("/api/v1/units/6-RMP2/out-of-service", json={"reason": "meal"})
        .status_code
        == 403
    )
    assert (
        board.client("off13")
        .post("/api/v1/units/6-RMP2/out-of-service", json={"reason": "meal"})
        .status_code
        == 403
    )
    assert disp.post("/api/v1/units/6-RMP1/status", json={"status": "available"}).status_code == 200


def test_team_in_one_call_is_atomic(board: Server) -> None:
    disp = board.client("disp")
    inc = incident(board, "shooting")
    rec = disp.get(f"/api/v1/incidents/{inc}/recommendations").json()
    assert rec["status"] != "short" and len(rec["team"]) == 2
    # One of the named units is busy: nothing is assigned.
    other = incident(board)
    assert (
        disp.post(
            f"/api/v1/incidents/{other}/assignments", json={"unit_id": rec["team"][1]}
        ).status_code
        == 201
    )
    r = disp.post(f"/api/v1/incidents/{inc}/team", json={"unit_ids": rec["team"]})
    assert r.status_code == 409 and rec["team"][1] in error(r)["message"]
    detail = disp.get(f"/api/v1/incidents/{inc}").json()
    assert detail["assignments"] == [] and detail["status"] == "received"
    # Without unit_ids: the recommendation's team, all in one call.
    r = disp.post(f"/api/v1/incidents/{inc}/team", json={})
    assert r.status_code == 201, r.text
    sent = [a["unit_id"] for a in r.json()]
    assert len(sent) == 2 and rec["team"][1] not in sent
    detail = disp.get(f"/api/v1/incidents/{inc}").json()
    assert sorted(a["unit_id"] for a in detail["assignments"]) == sorted(sent)
    assert board.client("ana").post(f"/api/v1/incidents/{inc}/team", json={}).status_code == 403
    empty = disp.post(f"/api/v1/incidents/{inc}/team", json={"unit_ids": []})
    assert empty.status_code == 422
    for i in (inc, other):
        disp.post(f"/api/v1/incidents/{i}/status", json={"status": "cancelled"})


def test_moveup_suggested_and_applied(board: Server) -> None:
    disp = board.client("disp")
    calls = []
    for uid in ("30-RMP1", "30-RMP2"):
        calls.append(incident(board))
        assert (
            disp.post(
                f"/api/v1/incidents/{calls[-1]}/assignments", json={"unit_id": uid}
            ).status_code
            == 201
        )
    sug = disp.get("/api/v1/moveup/suggestions").json()
    assert {"station": "30", "unit_type": "patrol_car", "min_available": 1} in sug["violations"]
    (move,) = [m for m in sug["moves"] if m["kind"] == "rule" and m["to_station"] == "30"]
    assert move["unit_id"] and move["eta_s"] > 0
    bad = disp.post("/api/v1/moveup/apply", json={"unit_id": move["unit_id"], "to_station": "999"})
    assert bad.status_code == 422
    r = disp.post("/api/v1/moveup/apply", json={"unit_id": move["unit_id"], "to_station": "30"})
    assert r.status_code == 200 and r.json()["eta_s"] == pytest.approx(move["eta_s"])
    after = disp.get("/api/v1/moveup/suggestions").json()
    assert not [v for v in after["violations"] if v["station"] == "30"]
    busy = disp.post("/api/v1/moveup/apply", json={"unit_id": "30-RMP1", "to_station": "1"})
    assert busy.status_code == 409
    for i in calls:
        disp.post(f"/api/v1/incidents/{i}/status", json={"status": "cancelled"})


def test_timer_events_reach_the_stream_on_the_fake_clock(board: Server, clock: FakeClock) -> None:
    disp = board.client("disp")
    inc = incident(board)
    assert (
        disp.post(f"/api/v1/incidents/{inc}/assignments", json={"unit_id": "32-RMP1"}).status_code
        == 201
    )
    assert disp.post("/api/v1/units/32-RMP1/status", json={"status": "on_scene"}).status_code == 200
    token = board.headers["disp"]["Authorization"].split()[1]
    with connect(f"{board.ws_url}?access_token={token}") as ws:
        clock.advance(1200)  # 20 minutes on scene without a check-in
        ev = recv_until(ws, lambda e: e["type"] == "unit.timer" and e["unit_id"] == "32-RMP1")
        assert ev["data"]["level"] == "warning" and ev["station"] == "32"
        r = disp.post("/api/v1/units/32-RMP1/checkin")
        assert r.status_code == 200 and r.json()["timer"]["level"] == "ok"
        seen = recv_until(ws, lambda e: e["type"] == "unit.checkin")
        assert seen["unit_id"] == "32-RMP1" and seen["actor"] == "disp"
        ok = recv_until(ws, lambda e: e["type"] == "unit.timer" and e["unit_id"] == "32-RMP1")
        assert ok["data"]["level"] == "ok"
    # A station officer's stream has no timer of another station.
    token13 = board.headers["off13"]["Authorization"].split()[1]
    with connect(f"{board.ws_url}?access_token={token13}") as ws:
        clock.advance(1200)
        disp.post("/api/v1/units/13-FOOT1/checkin")  # a visible event to stop at
        ev = recv_until(ws, lambda e: e["type"] in ("unit.timer", "unit.checkin"))
        assert ev["type"] == "unit.checkin" and ev["unit_id"] == "13-FOOT1"
    disp.post(f"/api/v1/incidents/{inc}/status", json={"status": "cleared"})


# ------------------------------------------------------------------ the tick on a fake clock
class VirtualTime:
    """One fake clock for the service (UTC), the tick schedule (monotonic) and the sleeps.

    Nothing waits on the wall clock: ``sleep`` moves the fake time on; ``stop_at`` ends a run.
    """

    def __init__(self, stop_at: float) -> None:
        self.t = 0.0
        self.stop_at = stop_at
        self.done = asyncio.Event()

    def utc(self) -> datetime:
        return T0 + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.t += seconds
        if self.t >= self.stop_at:
            self.done.set()
        await asyncio.sleep(0)


class RecordingBus:
    """Records each delivered event with the fake time of its delivery."""

    def __init__(self, vt: VirtualTime) -> None:
        self.vt = vt
        self.delivered: list[tuple[float, dict[str, Any]]] = []

    def deliver(self, event: dict[str, Any]) -> None:
        self.delivered.append((self.vt.t, event))


T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
#: Seconds after T0 at which each unit is dispatched: crossings at every phase of the tick.
PHASES = [0.0, 0.1, 0.25, 0.4, 0.45, 0.55, 0.7, 0.85, 0.95]


def _run_ticks(
    tmp_path: Path, manhattan: tuple[CityPack, Router], read_s: float
) -> tuple[list[tuple[float, dict[str, Any]]], list[float]]:
    """Dispatch one unit per phase, run the service's timer tick on the fake clock through the
    dispatched warning (2 min) and alert (5 min); each read of the timers takes ``read_s``
    fake seconds.  Returns the delivered events and the fake times the reads began."""
    from citywatch.api.board import watch_timers
    from tests.dispatch.conftest import ADMIN, make_service

    vt = VirtualTime(stop_at=310.0)
    service = make_service(tmp_path, *manhattan, vt.utc)  # type: ignore[arg-type]
    for i, phase in enumerate(PHASES):
        vt.t = phase
        uid = f"T-{i}"
        service.create_unit(ADMIN, id=uid, unit_type="patrol_car", station="25")
        inc, _ = service.create_incident(ADMIN, category="theft", lon=HARLEM[0], lat=HARLEM[1])
        service.assign(ADMIN, inc["id"], uid)
    vt.t = 1.0
    reads: list[float] = []
    read = service.timer_states

    def timed_read() -> Any:
        reads.append(vt.t)
        states = read()
        vt.t += read_s
        return states

    service.timer_states = timed_read  # type: ignore[method-assign]
    bus = RecordingBus(vt)

    async def main() -> None:
        task = asyncio.create_task(
            watch_timers(service, bus, sleep=vt.sleep, monotonic=vt.monotonic)  # type: ignore[arg-type]
        )
        await asyncio.wait_for(vt.done.wait(), 120)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    return bus.delivered, reads


def _latencies(delivered: list[tuple[float, dict[str, Any]]]) -> dict[tuple[str, str], float]:
    """Fake seconds from each crossing of a threshold to the delivery of its event."""
    out = {}
    for at, ev in delivered:
        data = ev["data"]
        since = datetime.fromisoformat(data["since"])
        threshold = data["warn_s"] if data["level"] == "warning" else data["alert_s"]
        crossing = (since - T0).total_seconds() + threshold
        key = (ev["unit_id"], data["level"])
        assert key not in out, f"{key} announced twice"
        out[key] = at - crossing
    return out


@pytest.mark.parametrize("read_s", [0.0, 0.4])
def test_timer_events_are_published_within_a_second_of_the_crossing(
    tmp_path: Path, manhattan: tuple[CityPack, Router], read_s: float
) -> None:
    """The real tick loop on a fake clock: every unit's warning and alert is published after
    its crossing and within 1 s of it, whatever the phase of the crossing in the tick; a read
    of the timers that takes 0.4 s (300 times the measured cost) does not stretch the period."""
    delivered, reads = _run_ticks(tmp_path, manhattan, read_s)
    latency = _latencies(delivered)
    assert set(latency) == {
        (f"T-{i}", level) for i in range(len(PHASES)) for level in ("warning", "alert")
    }
    assert all(ev["type"] == "unit.timer" and ev["actor"] == "timer" for _, ev in delivered)
    assert min(latency.values()) >= 0  # never before the crossing
    assert max(latency.values()) <= 1.0
    # The tick period, measured on the fake clock, and the bound it gives.
    gaps = [b - a for a, b in itertools.pairwise(reads)]
    assert max(gaps) == pytest.approx(TIMER_TICK_S)
    assert max(latency.values()) <= TIMER_TICK_S + read_s + 1e-6
