"""FixQueue: the group commit of single AVL fixes on the event loop (no database).

A fake ``record`` stands in for the transaction: it notes the groups it is given and can be
held open (a slow transaction) until the test releases it, so which fixes share a group is
deterministic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from citywatch.dispatch.positions import Fix, FixOutcome, FixQueue

T = TypeVar("T")
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def fix(k: int) -> Fix:
    return Fix(f"U-{k}", -73.99 + k * 1e-5, 40.736, T0 + timedelta(seconds=k))


@dataclass
class FakeRecord:
    """``record`` of a FixQueue: each group it is given, held at a gate while ``hold`` is set;
    ``fail_on`` are the calls (0-based) that raise."""

    groups: list[list[tuple[Any, Fix]]] = field(default_factory=list)
    hold: bool = False
    fail_on: set[int] = field(default_factory=set)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, items: list[tuple[Any, Fix]]) -> list[FixOutcome]:
        call = len(self.groups)
        self.groups.append(list(items))
        self.started.set()
        if self.hold:
            await self.gate.wait()
        await asyncio.sleep(0)  # a real transaction awaits the database
        if call in self.fail_on:
            raise RuntimeError(f"transaction {call} failed")
        # The outcome names the caller and the fix's position in its group.
        return [
            FixOutcome(i, f.unit_id, stored=True, applied=who == "applied")
            for i, (who, f) in enumerate(items)
        ]

    def release(self) -> None:
        self.hold = False
        self.gate.set()

    @property
    def sizes(self) -> list[int]:
        return [len(g) for g in self.groups]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


async def settle() -> None:
    """Let every ready task run (the submits queue their fixes)."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_lone_fix_is_written_at_once() -> None:
    async def go() -> tuple[FixOutcome, FakeRecord, FixQueue]:
        record = FakeRecord()
        queue = FixQueue(record)
        out = await queue.submit("applied", fix(1))
        await queue.close()
        return out, record, queue

    out, record, queue = run(go())
    assert out == FixOutcome(0, "U-1", stored=True, applied=True)
    assert record.groups == [[("applied", fix(1))]]
    assert (queue.transactions, queue.fixes) == (1, 1)


def test_fixes_arriving_during_a_transaction_share_the_next() -> None:
    async def go() -> tuple[list[FixOutcome], FakeRecord, FixQueue]:
        record = FakeRecord(hold=True)
        queue = FixQueue(record)
        first = asyncio.create_task(queue.submit("c0", fix(0)))
        await record.started.wait()  # the first transaction is in flight
        rest = [asyncio.create_task(queue.submit(f"c{k}", fix(k))) for k in range(1, 10)]
        await settle()
        assert record.sizes == [1]  # nothing else starts while it is written
        assert not any(t.done() for t in [first, *rest])
        record.release()
        outs = await asyncio.gather(first, *rest)
        await queue.close()
        return outs, record, queue

    outs, record, queue = run(go())
    assert record.sizes == [1, 9]
    # The second group holds the nine waiting fixes in the order they were submitted.
    assert record.groups[1] == [(f"c{k}", fix(k)) for k in range(1, 10)]
    assert (queue.transactions, queue.fixes) == (2, 10)
    # Each caller gets the outcome of its own fix (its index within its group).
    assert [o.unit_id for o in outs] == [f"U-{k}" for k in range(10)]
    assert [o.index for o in outs] == [0, *range(9)]
    assert all(o.stored and not o.applied and o.error is None for o in outs)


def test_max_batch_splits_the_waiting_fixes() -> None:
    async def go() -> tuple[list[FixOutcome], FakeRecord, FixQueue]:
        record = FakeRecord(hold=True)
        queue = FixQueue(record, max_batch=2)
        tasks = [asyncio.create_task(queue.submit("c0", fix(0)))]
        await record.started.wait()
        tasks += [asyncio.create_task(queue.submit(f"c{k}", fix(k))) for k in range(1, 6)]
        await settle()
        record.release()
        outs = await asyncio.gather(*tasks)
        await queue.close()
        return outs, record, queue

    outs, record, queue = run(go())
    assert record.sizes == [1, 2, 2, 1]
    assert [f.unit_id for g in record.groups for _, f in g] == [f"U-{k}" for k in range(6)]
    assert [o.unit_id for o in outs] == [f"U-{k}" for k in range(6)]
    assert (queue.transactions, queue.fixes) == (4, 6)


def test_a_failed_transaction_fails_each_of_its_fixes_and_the_next_succeeds() -> None:
    async def go() -> tuple[list[Any], list[FixOutcome], FakeRecord, FixQueue]:
        record = FakeRecord(hold=True, fail_on={1})
        queue = FixQueue(record)
        first = asyncio.create_task(queue.submit("c0", fix(0)))
        await record.started.wait()
        doomed = [asyncio.create_task(queue.submit(f"c{k}", fix(k))) for k in range(1, 4)]
        await settle()
        record.release()
        failed = await asyncio.gather(first, *doomed, return_exceptions=True)
        later = [queue.submit("applied", fix(k)) for k in range(4, 6)]
        ok = await asyncio.gather(*later)
        await queue.close()
        return failed, ok, record, queue

    failed, ok, record, queue = run(go())
    assert record.sizes == [1, 3, 2]
    assert isinstance(failed[0], FixOutcome) and failed[0].unit_id == "U-0"
    errors = failed[1:]
    assert all(isinstance(e, RuntimeError) for e in errors), errors
    assert {str(e) for e in errors} == {"transaction 1 failed"}
    assert len({id(e) for e in errors}) == 1  # the one exception of the transaction
    assert [(o.unit_id, o.applied) for o in ok] == [("U-4", True), ("U-5", True)]
    # The failed transaction is not counted.
    assert (queue.transactions, queue.fixes) == (2, 3)


def test_a_lone_failure_then_success() -> None:
    async def go() -> tuple[FixQueue, FixOutcome]:
        queue = FixQueue(FakeRecord(fail_on={0}))
        with pytest.raises(RuntimeError, match="transaction 0 failed"):
            await queue.submit("c", fix(1))
        out = await queue.submit("c", fix(2))
        await queue.close()
        return queue, out

    queue, out = run(go())
    assert out.unit_id == "U-2" and out.stored
    assert (queue.transactions, queue.fixes) == (1, 1)


def test_close_writes_what_is_queued_then_stops() -> None:
    async def go() -> tuple[list[asyncio.Task[FixOutcome]], FakeRecord, FixQueue, bool]:
        record = FakeRecord(hold=True)
        queue = FixQueue(record)
        tasks = [asyncio.create_task(queue.submit("c0", fix(0)))]
        await record.started.wait()
        tasks += [asyncio.create_task(queue.submit(f"c{k}", fix(k))) for k in range(1, 5)]
        await settle()
        writer = queue._task
        assert writer is not None
        closing = asyncio.create_task(queue.close())
        await settle()
        assert not closing.done()  # waits for the queued fixes
        record.release()
        await closing
        return tasks, record, queue, writer.done()

    tasks, record, queue, stopped = run(go())
    assert stopped
    assert all(t.done() and not t.cancelled() for t in tasks)
    assert [t.result().unit_id for t in tasks] == [f"U-{k}" for k in range(5)]
    assert record.sizes == [1, 4]
    assert (queue.transactions, queue.fixes) == (2, 5)


def test_close_of_an_idle_or_unused_queue_returns() -> None:
    async def go() -> FixQueue:
        unused = FixQueue(FakeRecord())
        await unused.close()
        queue = FixQueue(FakeRecord())
        await queue.submit("c", fix(1))
        await queue.close()  # the writer waits for work: close wakes it
        assert queue._task is None
        return queue

    queue = run(go())
    assert (queue.transactions, queue.fixes) == (1, 1)


def test_a_cancelled_waiter_does_not_stop_the_writer() -> None:
    async def go() -> tuple[list[FixOutcome], FakeRecord, FixQueue, asyncio.Task[FixOutcome]]:
        record = FakeRecord(hold=True)
        queue = FixQueue(record)
        first = asyncio.create_task(queue.submit("c0", fix(0)))
        await record.started.wait()
        first.cancel()  # its caller gave up while its transaction is written
        waiting = asyncio.create_task(queue.submit("c1", fix(1)))
        kept = asyncio.create_task(queue.submit("c2", fix(2)))
        await settle()
        waiting.cancel()  # its caller gave up before its transaction began
        await settle()
        record.release()
        out2 = await kept
        later = await asyncio.gather(queue.submit("c3", fix(3)), queue.submit("c4", fix(4)))
        await queue.close()
        return [out2, *later], record, queue, first

    outs, record, queue, first = run(go())
    assert first.cancelled()
    assert [o.unit_id for o in outs] == ["U-2", "U-3", "U-4"]
    # The cancelled fixes were queued already: they are written (nothing is lost half-way).
    assert record.sizes == [1, 2, 2]
    assert [f.unit_id for _, f in record.groups[1]] == ["U-1", "U-2"]
    assert (queue.transactions, queue.fixes) == (3, 5)


def test_a_cancelled_waiter_of_a_failed_transaction_does_not_stop_the_writer() -> None:
    async def go() -> tuple[Any, FixOutcome, FixQueue]:
        record = FakeRecord(hold=True, fail_on={0})
        queue = FixQueue(record)
        gone = asyncio.create_task(queue.submit("c0", fix(0)))
        other = asyncio.create_task(queue.submit("c1", fix(1)))
        await record.started.wait()
        gone.cancel()
        await settle()
        record.release()
        (err,) = await asyncio.gather(other, return_exceptions=True)
        out = await queue.submit("c2", fix(2))
        await queue.close()
        return err, out, queue

    err, out, queue = run(go())
    assert isinstance(err, RuntimeError)
    assert out.unit_id == "U-2"
    assert (queue.transactions, queue.fixes) == (1, 1)


def test_the_queue_works_again_after_close() -> None:
    async def go() -> list[FixOutcome]:
        queue = FixQueue(FakeRecord())
        await queue.submit("c", fix(0))
        await queue.close()
        first = await asyncio.wait_for(queue.submit("c", fix(1)), timeout=2)
        second = await asyncio.wait_for(queue.submit("c", fix(2)), timeout=2)
        await queue.close()
        return [first, second]

    assert [o.unit_id for o in run(go())] == ["U-1", "U-2"]
