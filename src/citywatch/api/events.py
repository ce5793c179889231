"""The event bus behind ``/api/v1/events``: every committed change reaches every WebSocket client.

Events are staged inside the transaction that makes the change and delivered only if it commits.

* :class:`PostgresBus` (PostgreSQL): staging is ``SELECT pg_notify(...)`` in the writer's
  transaction, which PostgreSQL delivers at commit to every listening connection; each worker
  process keeps one ``LISTEN`` connection and fans the events out to its own clients.  Several
  ``serve`` workers on one database thus see the same stream.
* :class:`LocalBus` (SQLite): staged events are handed to the process's clients after commit.
  SQLite serves one process, which ``citywatch serve`` enforces.

AVL moves are not staged: the AVL writer commits them with one statement outside any session
and then :meth:`~EventBus.publish` es them.  :class:`PostgresBus` sends what was published
every :data:`PUBLISH_INTERVAL_S`, as few notifications as fit, rather than a notification per
transaction: each notification wakes every worker's listening connection and backend, and with
two workers those wake-ups cost as much as writing the fixes (profiled).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from citywatch.console import to_jsonable
from citywatch.store.db import libpq_url

__all__ = ["AUTH_CHANGED", "CHANNEL", "EventBus", "LocalBus", "PostgresBus", "make_bus"]

log = logging.getLogger("citywatch.api.events")

CHANNEL = "citywatch_events"
#: Event type (on :data:`CHANNEL`, never shown to clients) telling the workers to forget the
#: cached tokens of the accounts it names.
AUTH_CHANGED = "auth.changed"
#: PostgreSQL's NOTIFY payload limit is 8000 bytes; larger events are sent without ``data``.
_MAX_PAYLOAD = 7900
#: Events a slow client may lag behind before it is disconnected (it can reconnect and re-read
#: the current state; events are never dropped silently).
QUEUE_SIZE = 1000
_STAGED = "citywatch_staged_notify"
#: Sends each element of a JSON array as one notification (``json`` keeps the elements' text
#: as sent; as a ``text[]`` every quote of every payload was escaped by a regular expression).
_NOTIFY_ALL = (
    "SELECT pg_notify(%(channel)s, p::text) FROM json_array_elements(%(payloads)s::json) p"
)
#: Ids of delivered events remembered (to skip them when replaying after a reconnect).
_REPLAY_MEMORY = 20_000
#: How far before the last delivered id a replay looks (transactions commit out of id order).
_REPLAY_MARGIN = 1000
#: Moves since this long before the connection was lost are replayed.
_MOVE_MARGIN_S = 5.0
#: Seconds between two sends of the published events (AVL moves) on PostgreSQL.
PUBLISH_INTERVAL_S = 0.1
#: Most published events kept unsent (while sends fail; the oldest are dropped beyond).
_OUTBOX_LIMIT = 100_000


def _encode(event_: dict[str, Any]) -> str:
    """An event's JSON text, without its ``data`` when it would not fit a notification."""
    payload = to_jsonable(event_)
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    if len(text.encode("utf-8")) > _MAX_PAYLOAD:
        payload = {**payload, "data": None, "truncated": True}
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return text


def _chunks(payloads: list[str]) -> list[str]:
    """JSON arrays of the payloads (each at most :data:`_MAX_PAYLOAD` bytes), in order."""
    out: list[str] = []
    chunk: list[str] = []
    size = 0
    for text in payloads:
        n = len(text.encode("utf-8")) + 1
        if chunk and size + n > _MAX_PAYLOAD:
            out.append("[" + ",".join(chunk) + "]")
            chunk, size = [], 0
        chunk.append(text)
        size += n
    if chunk:
        out.append("[" + ",".join(chunk) + "]")
    return out


class EventBus(ABC):
    """Fan-out of events to the subscribers (WebSocket connections) of this process."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Called with every event committed by another worker, as it is delivered (the
        #: worker's in-memory unit state follows the bus this way).
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        #: Called when events may have been missed (after the bus connection was lost).
        self.on_gap: list[Callable[[], None]] = []

    async def start(self) -> None:
        """Bind to the running event loop (called at application start-up)."""
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:  # noqa: B027 - nothing to release unless a subclass listens
        """Release resources (called at application shutdown)."""

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A new queue receiving every event; ``None`` means "too slow, disconnect"."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        """Stop delivering to ``queue``."""
        self._subscribers.discard(queue)

    def _fan_out(self, payload: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(payload)
            except asyncio.QueueFull:
                self._subscribers.discard(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)

    def deliver(self, payload: dict[str, Any]) -> None:
        """Hand an event to this process's subscribers (safe from any thread)."""
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._fan_out, payload)

    @abstractmethod
    def stage(self, session: Session, event_: dict[str, Any]) -> None:
        """Queue an event to be delivered when ``session`` commits."""

    @abstractmethod
    def publish(self, events: list[dict[str, Any]]) -> None:
        """Deliver events of changes already committed outside any session (safe from any
        thread)."""


class LocalBus(EventBus):
    """In-process bus for SQLite: staged events are delivered after the commit."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        super().__init__()
        event.listen(sessions, "after_commit", self._after_commit)
        event.listen(sessions, "after_rollback", self._after_rollback)

    def stage(self, session: Session, event_: dict[str, Any]) -> None:
        session.info.setdefault("citywatch_events", []).append(to_jsonable(event_))

    def publish(self, events: list[dict[str, Any]]) -> None:
        for payload in events:
            self.deliver(to_jsonable(payload))

    def _after_commit(self, session: Session) -> None:
        for payload in session.info.pop("citywatch_events", []):
            self.deliver(payload)

    @staticmethod
    def _after_rollback(session: Session) -> None:
        session.info.pop("citywatch_events", None)


class PostgresBus(EventBus):
    """Bus over PostgreSQL LISTEN/NOTIFY, shared by every worker process on the database.

    When the listening connection is lost, events committed until it is back would be missed:
    after listening again, the bus replays them from the database (timeline events by id from
    a little before the last one it delivered, and the latest position of every unit that
    moved meanwhile), skipping those it already delivered.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self._dsn = libpq_url(engine)
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        #: station id -> bureau id, to place replayed events (set by the application).
        self.bureau_of: dict[str, str | None] = {}
        self._delivered: deque[int] = deque(maxlen=_REPLAY_MEMORY)
        self._delivered_set: set[int] = set()
        self._last_id = 0
        self._lost_at: datetime | None = None
        self._outbox: deque[str] = deque(maxlen=_OUTBOX_LIMIT)
        self._retry: list[str] = []  # of a failed send (the publisher task's alone)
        self._publisher: asyncio.Task[None] | None = None

    def stage(self, session: Session, event_: dict[str, Any]) -> None:
        session.info.setdefault(_STAGED, []).append(_encode(event_))

    def publish(self, events: list[dict[str, Any]]) -> None:
        # Sent by the publisher task within PUBLISH_INTERVAL_S (deque appends are atomic).
        self._outbox.extend(_encode(e) for e in events)

    @staticmethod
    def _notify_staged(session: Session) -> None:
        # One statement for every event of the transaction (an incident's status change moves
        # its units too), sent just before the commit that delivers them.  The events go
        # as few notifications as fit (JSON arrays of at most _MAX_PAYLOAD bytes): every
        # other worker decodes every notification, and each one costs it a wake-up.
        staged = session.info.pop(_STAGED, None)
        if staged:
            payloads = "[" + ",".join(_chunks(staged)) + "]"
            session.connection().exec_driver_sql(
                _NOTIFY_ALL, {"channel": CHANNEL, "payloads": payloads}
            )

    def bind(self, sessions: sessionmaker[Session]) -> None:
        """Send the staged events of ``sessions``' transactions when they commit."""
        event.listen(sessions, "before_commit", self._notify_staged)
        event.listen(sessions, "after_rollback", lambda s: s.info.pop(_STAGED, None))

    async def start(self) -> None:
        await super().start()
        self._task = asyncio.create_task(self._listen(), name="citywatch-listen")
        self._publisher = asyncio.create_task(self._publish(), name="citywatch-publish")
        # Start-up waits until LISTEN is active, so no event committed afterwards is missed.
        await asyncio.wait_for(self.listening.wait(), timeout=30)

    async def stop(self) -> None:
        for task in (self._publisher, self._task):  # the publisher sends what it holds first
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _publish(self) -> None:
        """Send the published events every :data:`PUBLISH_INTERVAL_S` on a connection of its
        own (the listening one waits for notifications).  Events of a failed send are sent
        with the next; at shutdown what is left is sent once more."""
        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            while True:
                await asyncio.sleep(PUBLISH_INTERVAL_S)
                conn = await self._send_outbox(conn)
        finally:
            with contextlib.suppress(psycopg.Error, OSError):
                await self._send_outbox(conn)
                if conn is not None:
                    await conn.close()

    async def _send_outbox(
        self, conn: psycopg.AsyncConnection[Any] | None
    ) -> psycopg.AsyncConnection[Any] | None:
        texts, self._retry = self._retry, []
        while self._outbox:
            texts.append(self._outbox.popleft())
        if not texts:
            return conn
        try:
            if conn is None or conn.broken or conn.closed:
                conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
            payloads = "[" + ",".join(_chunks(texts)) + "]"
            await conn.execute(_NOTIFY_ALL, {"channel": CHANNEL, "payloads": payloads})
        except (psycopg.Error, OSError) as exc:
            log.warning("could not send %d events (%s); retrying", len(texts), exc)
            self._retry = texts[-_OUTBOX_LIMIT:]
            return None
        return conn

    def _pending(self) -> list[str]:
        """The events published and not sent yet, oldest first."""
        return self._retry + list(self._outbox)

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if self.listening.is_set():
                        await self._replay(conn)
                    self.listening.set()
                    delay = 0.5
                    async for note in conn.notifies():
                        payload = json.loads(note.payload)
                        for one in payload if isinstance(payload, list) else [payload]:
                            self._deliver_once(one)
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as exc:
                log.warning("event listener lost its connection (%s); reconnecting", exc)
                self._lost_at = self._lost_at or datetime.now(UTC)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _deliver_once(self, payload: dict[str, Any]) -> None:
        """Fan out a timeline event unless it was delivered already (replay overlaps)."""
        event_id = payload.get("id")
        if isinstance(event_id, int):
            if event_id in self._delivered_set:
                return
            if len(self._delivered) == self._delivered.maxlen:
                self._delivered_set.discard(self._delivered[0])
            self._delivered.append(event_id)
            self._delivered_set.add(event_id)
            self._last_id = max(self._last_id, event_id)
        for listener in self.listeners:
            try:
                listener(payload)
            except Exception:  # a listener's bug must not stop the stream
                log.exception("event listener failed on %s", payload.get("type"))
        if payload.get("type") != AUTH_CHANGED:
            self._fan_out(payload)

    async def _replay(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Deliver what was committed while the connection was lost (LISTEN is already on
        again, so nothing committed from now on is missed either)."""
        for gap in self.on_gap:
            gap()
        # Ids are taken at insert, commits may come in another order: look back a margin.
        since = max(0, self._last_id - _REPLAY_MARGIN)
        cur = await conn.execute(
            "SELECT id, at, type, incident_id, unit_id, station, actor, data "
            "FROM dispatch_events WHERE id > %s ORDER BY id",
            (since,),
        )
        replayed = 0
        for event_id, at, type_, incident_id, unit_id, station, actor, data in await cur.fetchall():
            if event_id in self._delivered_set:
                continue
            replayed += 1
            self._deliver_once(
                {
                    "id": event_id,
                    "type": type_,
                    "at": at.isoformat(),
                    "incident_id": incident_id,
                    "unit_id": unit_id,
                    "station": station,
                    "bureau": self.bureau_of.get(station or ""),
                    "actor": actor,
                    "data": data,
                    "replayed": True,
                }
            )
        lost_at, self._lost_at = self._lost_at, None
        if lost_at is not None:
            cur = await conn.execute(
                "SELECT id, station, lon, lat, position_at FROM units WHERE position_at >= %s",
                (lost_at - timedelta(seconds=_MOVE_MARGIN_S),),
            )
            for unit_id, station, lon, lat, at in await cur.fetchall():
                replayed += 1
                self._deliver_once(
                    {
                        "id": None,
                        "type": "unit.moved",
                        "at": at.isoformat(),
                        "unit_id": unit_id,
                        "station": station,
                        "bureau": self.bureau_of.get(station or ""),
                        "data": {"lon": lon, "lat": lat, "at": at.isoformat()},
                        "replayed": True,
                    }
                )
        log.warning("event listener reconnected; replayed %d committed changes", replayed)


def make_bus(engine: Engine, sessions: sessionmaker[Session]) -> EventBus:
    """The bus suited to the database: LISTEN/NOTIFY on PostgreSQL, in-process otherwise."""
    if engine.dialect.name == "postgresql":
        bus = PostgresBus(engine)
        bus.bind(sessions)
        return bus
    return LocalBus(sessions)
