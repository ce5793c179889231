"""The PostgreSQL write of AVL fixes: one statement, one position batch per actor.

``record_fixes`` (a pooled autocommit connection) and ``record_fixes_async`` (the worker's
psycopg writer connection) run the same statement; both are checked here against what is
stored: the batches' actors, counts and digests, the history, the units' positions, the seal,
and the unit.moved events handed to the sink.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from citywatch.city import CityPack
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.positions import Fix, FixOutcome, batch_digest, verify_positions
from citywatch.dispatch.service import DispatchService
from citywatch.routing import Router
from citywatch.store.db import make_engine, session_factory, upgrade
from citywatch.store.dispatch_models import PositionBatch, Unit
from tests.dispatch.conftest import ADMIN, Clock, RecordingSink
from tests.store.databases import pg_url  # noqa: F401 - the fixture

pytestmark = pytest.mark.postgres

LON, LAT = -73.99, 40.736  # on the car network, precinct 13
DISP = Principal("disp", Role.DISPATCHER)
DEV = Principal("dev-p2", Role.UNIT_DEVICE, unit_id="P-2")


@pytest.fixture
def pg_service(
    pg_url: str,  # noqa: F811 - the fixture
    manhattan: tuple[CityPack, Router],
    clock: Clock,
) -> Iterator[tuple[DispatchService, Engine]]:
    engine = make_engine(pg_url)
    upgrade(engine)
    service = DispatchService(session_factory(engine), *manhattan, RecordingSink(), clock=clock)
    for uid in ("P-1", "P-2", "P-3"):
        service.create_unit(ADMIN, id=uid, unit_type="patrol_car", station="13")
    service.sink.events.clear()  # type: ignore[attr-defined]
    yield service, engine
    engine.dispose()


def sink_events(service: DispatchService) -> list[dict[str, Any]]:
    sink = service.sink
    assert isinstance(sink, RecordingSink)
    return sink.events


def batches(engine: Engine, after: int = 0) -> list[PositionBatch]:
    with session_factory(engine)() as s:
        rows = s.scalars(
            select(PositionBatch).where(PositionBatch.id > after).order_by(PositionBatch.id)
        ).all()
        s.expunge_all()
        return list(rows)


def history(engine: Engine, batch_id: int) -> list[tuple[str, datetime, float, float]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT unit_id, at, lon, lat FROM unit_positions WHERE batch_id = :b ORDER BY id"
            ),
            {"b": batch_id},
        ).all()
    return [(r.unit_id, r.at, r.lon, r.lat) for r in rows]


def position(engine: Engine, uid: str) -> tuple[float | None, float | None, datetime | None]:
    with session_factory(engine)() as s:
        unit = s.get(Unit, uid)
        assert unit is not None
        return unit.lon, unit.lat, unit.position_at


def digest(fixes: list[Fix]) -> str:
    return batch_digest([(f.unit_id, f.at, f.lon, f.lat) for f in fixes])


def two_actor_items(now: datetime) -> tuple[list[tuple[Principal, Fix]], list[Fix], list[Fix]]:
    """Fixes of two callers, interleaved: the dispatcher's of P-1 and P-3 (P-1's older one
    first), the device's of its unit P-2."""
    disp = [
        Fix("P-1", LON, LAT, now - timedelta(seconds=20)),
        Fix("P-1", LON - 1e-4, LAT, now - timedelta(seconds=10)),  # P-1's newest
        Fix("P-3", LON - 2e-4, LAT, now - timedelta(seconds=5)),
    ]
    dev = [
        Fix("P-2", LON - 3e-4, LAT, now - timedelta(seconds=8)),
        Fix("P-2", LON - 4e-4, LAT, now - timedelta(seconds=30)),  # older than the first
    ]
    items = [(DISP, disp[0]), (DEV, dev[0]), (DISP, disp[1]), (DEV, dev[1]), (DISP, disp[2])]
    return items, disp, dev


def outcome_tuples(outs: list[FixOutcome]) -> list[tuple[int, str, bool, bool, Any]]:
    return [(o.index, o.unit_id, o.stored, o.applied, o.error) for o in outs]


EXPECTED = [
    (0, "P-1", True, False, None),
    (1, "P-2", True, True, None),
    (2, "P-1", True, True, None),
    (3, "P-2", True, False, None),
    (4, "P-3", True, True, None),
]


def check_two_batches(
    engine: Engine, ids: list[int], disp: list[Fix], dev: list[Fix], after: int = 0
) -> None:
    rows = batches(engine, after)
    assert [b.id for b in rows] == sorted(ids)
    by_id = {b.id: b for b in rows}
    first, second = by_id[ids[0]], by_id[ids[1]]
    # One batch per actor, in the order the actors first appear among the items.
    assert (first.actor, first.fixes, first.digest) == ("disp", 3, digest(disp))
    assert (second.actor, second.fixes, second.digest) == ("dev-p2", 2, digest(dev))
    assert first.first_at == min(f.at for f in disp) and first.last_at == max(f.at for f in disp)
    assert second.first_at == min(f.at for f in dev) and second.last_at == max(f.at for f in dev)
    assert first.audit_seq is None and second.audit_seq is None  # not sealed yet
    # Every fix is in the history, linked to its actor's batch.
    assert batch_digest(history(engine, first.id)) == digest(disp)
    assert batch_digest(history(engine, second.id)) == digest(dev)
    assert sorted(u for u, *_ in history(engine, first.id)) == ["P-1", "P-1", "P-3"]
    assert [u for u, *_ in history(engine, second.id)] == ["P-2", "P-2"]


def check_positions(engine: Engine, disp: list[Fix], dev: list[Fix]) -> None:
    assert position(engine, "P-1") == (disp[1].lon, disp[1].lat, disp[1].at)
    assert position(engine, "P-2") == (dev[0].lon, dev[0].lat, dev[0].at)
    assert position(engine, "P-3") == (disp[2].lon, disp[2].lat, disp[2].at)


def check_sealed(service: DispatchService, n_batches: int, n_fixes: int) -> None:
    assert service.seal_positions() == n_batches
    with service.sessions() as s:
        check = verify_positions(s)
    assert check.ok, check
    assert (check.batches, check.fixes, check.unsealed) == (n_batches, n_fixes, 0)


def test_record_fixes_writes_one_batch_per_actor(
    pg_service: tuple[DispatchService, Engine], clock: Clock
) -> None:
    service, engine = pg_service
    items, disp, dev = two_actor_items(clock.now)
    ids: list[int] = []
    outs = service.record_fixes(items, ids)
    assert outcome_tuples(outs) == EXPECTED
    assert len(ids) == 2
    check_two_batches(engine, ids, disp, dev)
    check_positions(engine, disp, dev)
    moved = [e for e in sink_events(service) if e["type"] == "unit.moved"]
    assert [(e["unit_id"], e["data"]["lon"]) for e in moved] == [
        ("P-1", disp[1].lon),
        ("P-2", dev[0].lon),
        ("P-3", disp[2].lon),
    ]
    check_sealed(service, 2, 5)


def test_an_older_fix_is_stored_but_does_not_move_the_unit(
    pg_service: tuple[DispatchService, Engine], clock: Clock
) -> None:
    service, engine = pg_service
    now = clock.now
    newer = Fix("P-1", LON, LAT, now - timedelta(seconds=5))
    older = Fix("P-1", LON - 5e-4, LAT, now - timedelta(seconds=60))
    (first,) = service.record_fixes([(DISP, newer)])
    assert (first.stored, first.applied) == (True, True)
    sink_events(service).clear()
    ids: list[int] = []
    (late,) = service.record_fixes([(DISP, older)], ids)
    assert (late.stored, late.applied, late.error) == (True, False, None)
    assert position(engine, "P-1") == (newer.lon, newer.lat, newer.at)
    assert service.get_unit(ADMIN, "P-1")["position"]["lon"] == newer.lon
    assert history(engine, ids[0]) == [(older.unit_id, older.at, older.lon, older.lat)]
    assert sink_events(service) == []  # nothing moved, nothing published
    # The same older fix once more through the event loop's writer.
    outs = asyncio.run(_record_async(service, [(ADMIN, older)]))
    assert outcome_tuples(outs) == [(0, "P-1", True, False, None)]
    assert position(engine, "P-1") == (newer.lon, newer.lat, newer.at)
    assert sink_events(service) == []
    check_sealed(service, 3, 3)


async def _record_async(
    service: DispatchService, items: list[tuple[Principal, Fix]]
) -> list[FixOutcome]:
    try:
        return await service.record_fixes_async(items)
    finally:
        await service.close_writer()


def test_record_fixes_async_writes_one_batch_per_actor_and_publishes_the_moves(
    pg_service: tuple[DispatchService, Engine], clock: Clock
) -> None:
    service, engine = pg_service
    items, disp, dev = two_actor_items(clock.now)
    outs = asyncio.run(_record_async(service, items))
    assert outcome_tuples(outs) == EXPECTED
    rows = batches(engine)
    assert len(rows) == 2
    check_two_batches(engine, [rows[0].id, rows[1].id], disp, dev)
    check_positions(engine, disp, dev)
    # The sink got exactly the moves, once each, in unit id order.
    events = sink_events(service)
    assert [e["type"] for e in events] == ["unit.moved"] * 3
    assert [
        (e["unit_id"], e["station"], e["data"]["lon"], e["data"]["lat"], e["data"]["at"])
        for e in events
    ] == [
        ("P-1", "13", disp[1].lon, LAT, disp[1].at.isoformat()),
        ("P-2", "13", dev[0].lon, LAT, dev[0].at.isoformat()),
        ("P-3", "13", disp[2].lon, LAT, disp[2].at.isoformat()),
    ]
    # The worker's memory follows the moves.
    live = service.live.get("P-2")
    assert live is not None
    assert service.get_unit(DISP, "P-2")["position"]["lon"] == dev[0].lon
    check_sealed(service, 2, 5)


def test_record_fixes_async_reconnects_after_its_connection_is_lost(
    pg_service: tuple[DispatchService, Engine], clock: Clock
) -> None:
    service, engine = pg_service
    now = clock.now

    async def go() -> tuple[list[FixOutcome], list[FixOutcome]]:
        try:
            a = await service.record_fixes_async([(DISP, Fix("P-1", LON, LAT, now))])
            conn = await service._writer()
            await conn.close()  # lost (closed) between two groups
            b = await service.record_fixes_async([(DISP, Fix("P-3", LON, LAT, now))])
            assert (await service._writer()) is not conn
            return a, b
        finally:
            await service.close_writer()

    a, b = asyncio.run(go())
    assert outcome_tuples(a) == [(0, "P-1", True, True, None)]
    assert outcome_tuples(b) == [(0, "P-3", True, True, None)]
    assert [b.actor for b in batches(engine)] == ["disp", "disp"]


def test_refused_fixes_write_nothing(
    pg_service: tuple[DispatchService, Engine], clock: Clock
) -> None:
    service, engine = pg_service
    now = clock.now
    items = [
        (DEV, Fix("P-1", LON, LAT, now)),  # not the device's unit
        (DISP, Fix("nope", LON, LAT, now)),  # unknown unit
        (DISP, Fix("P-1", LON, LAT, now + timedelta(hours=1))),  # in the future
    ]
    ids: list[int] = []
    codes = ["forbidden", "not_found", "validation_error"]
    outs = service.record_fixes(items, ids)
    assert [o.error is not None and o.error.code for o in outs] == codes
    assert not any(o.stored for o in outs)
    assert ids == [] and batches(engine) == []
    outs = asyncio.run(_record_async(service, items))
    assert [o.error is not None and o.error.code for o in outs] == codes
    assert not any(o.stored for o in outs)
    assert batches(engine) == [] and sink_events(service) == []
