"""PostgresBus.publish: the outbox the publisher task sends every PUBLISH_INTERVAL_S.

A send that fails keeps the events, in order, at the front of the outbox (sent with the next);
a send that works delivers them to every listener of the channel as JSON arrays.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine

from citywatch.api.events import CHANNEL, PostgresBus, _encode
from citywatch.store.db import libpq_url
from tests.store.databases import pg_url  # noqa: F401 - the fixture

#: Nothing listens on port 1: every connection is refused at once.
DEAD_URL = "postgresql+psycopg://postgres@127.0.0.1:1/x"


def moved(uid: str, lon: float) -> dict[str, Any]:
    return {
        "id": None,
        "type": "unit.moved",
        "at": "2026-03-02T14:00:00+00:00",
        "incident_id": None,
        "unit_id": uid,
        "station": "13",
        "bureau": None,
        "data": {"lon": lon, "lat": 40.736, "at": "2026-03-02T14:00:00+00:00"},
    }


def test_a_failed_send_keeps_the_events_in_order() -> None:
    engine = create_engine(DEAD_URL)
    bus = PostgresBus(engine)
    first, second, third = moved("A-1", -73.99), moved("A-2", -73.98), moved("A-3", -73.97)
    bus.publish([first, second])
    assert bus._pending() == [_encode(first), _encode(second)]

    async def go() -> tuple[Any, Any]:
        a = await bus._send_outbox(None)
        bus.publish([third])  # published meanwhile: after the ones kept
        b = await bus._send_outbox(None)
        return a, b

    a, b = asyncio.run(go())
    assert a is None and b is None
    assert bus._pending() == [_encode(first), _encode(second), _encode(third)]
    engine.dispose()


def test_an_empty_outbox_sends_nothing_and_keeps_the_connection() -> None:
    bus = PostgresBus(create_engine(DEAD_URL))
    marker = object()
    # Nothing to send: no connection is tried (this one would fail), the given one is kept.
    assert asyncio.run(bus._send_outbox(marker)) is marker  # type: ignore[arg-type]
    assert bus._pending() == []


@pytest.mark.postgres
def test_a_send_reaches_the_listeners_as_json_arrays(pg_url: str) -> None:  # noqa: F811
    engine = create_engine(pg_url)
    dsn = libpq_url(engine)
    bus = PostgresBus(engine)
    tag = uuid.uuid4().hex[:8]  # other tests may notify on the channel of this database
    events = [moved(f"{tag}-{k}", -73.99 + k * 1e-4) for k in range(3)]
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")

        async def go() -> tuple[bool, bool, int]:
            bus.publish(events[:2])
            conn = await bus._send_outbox(None)
            assert conn is not None and not conn.closed
            left = len(bus._pending())
            bus.publish(events[2:])
            again = await bus._send_outbox(conn)  # the connection is reused
            same = again is conn
            await conn.close()
            return same, conn.closed, left

        same, closed, left = asyncio.run(go())
        assert same and closed and left == 0
        assert bus._pending() == []
        got: list[Any] = []
        for note in listener.notifies(timeout=5):
            payload = json.loads(note.payload)
            if tag in note.payload:
                got.append(payload)
            if sum(len(p) for p in got) >= 3:
                break
    # One notification per send, each a JSON array of its events, in order.
    assert got == [events[:2], events[2:]]
    engine.dispose()


@pytest.mark.postgres
def test_a_broken_connection_is_replaced(pg_url: str) -> None:  # noqa: F811
    engine = create_engine(pg_url)
    bus = PostgresBus(engine)
    tag = uuid.uuid4().hex[:8]
    event = moved(f"{tag}-0", -73.99)
    with psycopg.connect(libpq_url(engine), autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")

        async def go() -> bool:
            bus.publish([event])
            conn = await bus._send_outbox(None)
            assert conn is not None
            await conn.close()  # closed: the next send connects anew
            bus.publish([event])
            fresh = await bus._send_outbox(conn)
            assert fresh is not None
            replaced = fresh is not conn and not fresh.closed
            await fresh.close()
            return replaced

        assert asyncio.run(go())
        assert bus._pending() == []
        got = [
            json.loads(n.payload)
            for n in listener.notifies(timeout=3, stop_after=10)
            if tag in n.payload
        ]
    assert got == [[event], [event]]
    engine.dispose()
