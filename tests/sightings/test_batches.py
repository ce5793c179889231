"""Batches at ingest: hits grouped onto alerts with a fixed number of statements, concurrent
batches losing nothing, and every stored sighting covered by its batch's audit record."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from citywatch.city import CityPack
from citywatch.routing import Router
from citywatch.store.dispatch_models import AuditRecord
from citywatch.store.sightings_models import AlertRecipientRow, SightingAlertRow, SightingRow
from citywatch.surveillance.hotlists import add_entry
from citywatch.surveillance.sightings import INGEST_ACTION, Read, ingest, reads_digest
from tests.sightings.test_ingest import KEY, T0, Sink, _entry, _read, _setup


@pytest.fixture(scope="module")
def pack(manhattan: tuple[CityPack, Router]) -> CityPack:
    return manhattan[0]


def _statements(engine: Engine) -> list[str]:
    """SQL statements sent on ``engine`` from now on (collected until the test ends)."""
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_one_batch_extends_an_alert_and_raises_new_ones_in_few_statements(
    engine: Engine, pack: CityPack
) -> None:
    with Session(engine) as s, s.begin():
        _setup(s)
        car, van = (
            add_entry(s, _entry(v, "stolen_vehicle"), actor="a", purpose="p", key=KEY, now=T0)
            for v in ("CAR1", "VAN2")
        )
        first = ingest(s, pack, [_read("r13a", "CAR1", T0)], actor="feed", key=KEY, now=T0)
        (old,) = first.alerts_created
        sink = Sink()
        at = T0 + timedelta(minutes=10)
        reads = [
            _read("r13b", "CAR1", at - timedelta(minutes=2)),  # joins the open alert in 13
            _read("r23", "CAR1", at - timedelta(minutes=1)),  # a new alert in 23
            _read("r13a", "VAN2", at - timedelta(minutes=3)),  # a new alert in 13 ...
            _read("r9", "NOHIT", at),
            _read("r13b", "VAN2", at),  # ... which this later read joins
            _read("r13a", "CAR1", at),  # joins 13's open alert again
        ]
        sent = _statements(engine)
        res = ingest(s, pack, reads, actor="feed", key=KEY, now=at, sink=sink)
        writes = [q for q in sent if q.lstrip().upper().startswith(("INSERT", "UPDATE", "COPY"))]
        # the non-hit (COPY on PostgreSQL, unseen here), the hits, the new alerts, their
        # recipients, the extension, the links, the audit record: not one per hit (SQLite
        # takes an INSERT ... RETURNING row by row, in one statement text)
        if engine.dialect.name == "postgresql":
            assert len(writes) == 6, writes
        else:
            assert len(set(writes)) == 7, writes
        assert (res.stored, res.hits) == (6, 5)
        assert res.alerts_updated == [old]
        alerts = {
            (a.entry_id, a.station): a
            for a in s.scalars(select(SightingAlertRow).order_by(SightingAlertRow.id))
        }
        assert sorted(res.alerts_created) == sorted(
            [alerts[(car.id, "23")].id, alerts[(van.id, "13")].id]
        )
        kept = alerts[(car.id, "13")]
        assert (kept.id, kept.sightings, kept.sensor_id) == (old, 3, "r13a")
        assert kept.last_seen_at == at
        new13 = alerts[(van.id, "13")]
        assert (new13.sightings, new13.first_seen_at, new13.last_seen_at) == (
            2,
            at - timedelta(minutes=3),
            at,
        )
        by_id = {o.index: o for o in res.outcomes}
        assert [by_id[i].alert_id for i in range(6)] == [
            old,
            alerts[(car.id, "23")].id,
            new13.id,
            None,
            new13.id,
            old,
        ]
        linked = dict(
            s.execute(select(SightingRow.id, SightingRow.alert_id).where(SightingRow.hit)).all()
        )
        assert sorted(v for v in linked.values()) == sorted(
            [old, old, old, alerts[(car.id, "23")].id, new13.id, new13.id]
        )
        assert kept.last_sighting_id == max(k for k, v in linked.items() if v == old)
        changes = sorted((e["data"]["id"], e["data"]["change"]) for e in sink.events)
        assert changes == sorted(
            [(old, "updated"), (alerts[(car.id, "23")].id, "created"), (new13.id, "created")]
        )
        recipients = s.scalars(
            select(AlertRecipientRow.station).where(AlertRecipientRow.alert_id == new13.id)
        )
        assert sorted(recipients, key=int) == ["6", "9", "10", "13", "14", "17"]


def _covered(s: Session) -> tuple[int, int]:
    """(sightings covered by a matching ``sightings.ingest`` record, sightings stored)."""
    rows: dict[tuple[str, datetime], list[dict[str, object]]] = {}
    for r in s.execute(select(SightingRow)).scalars():
        row = {"sensor_id": r.sensor_id, "seen_at": r.seen_at, "kind": r.kind}
        row["value_key"] = r.value_key
        rows.setdefault((r.source, r.received_at), []).append(row)
    covered = 0
    for rec in s.scalars(select(AuditRecord).where(AuditRecord.action == INGEST_ACTION)):
        batch = rows.get((rec.actor, rec.at), [])
        if len(batch) == rec.after["stored"] and reads_digest(batch) == rec.after["digest"]:
            covered += len(batch)
    return covered, sum(len(b) for b in rows.values())


@pytest.mark.postgres
def test_concurrent_batches_lose_nothing_and_the_audit_covers_every_sighting(
    pg_url: str, pack: CityPack
) -> None:
    from citywatch.store.db import make_engine, session_factory, upgrade

    engine = make_engine(pg_url)
    upgrade(engine)
    sessions = session_factory(engine)
    with sessions.begin() as s:
        _setup(s)
        for value in ("HOT1", "HOT2"):
            add_entry(s, _entry(value, "stolen_vehicle"), actor="a", purpose="p", key=KEY, now=T0)
    acknowledged: list[int] = []
    hits: list[int] = []
    errors: list[BaseException] = []
    sensors = ["r13a", "r13b", "r9", "r23"]

    def feed(worker: int) -> None:
        try:
            for n in range(6):
                at = T0 + timedelta(seconds=worker * 100 + n)  # one receipt time per batch
                reads = [
                    Read(sensors[i % 4], at - timedelta(seconds=i % 7), "plate", f"P{worker}-{i}")
                    for i in range(150)
                ] + [_read(sensors[(worker + n) % 4], f"HOT{1 + n % 2}", at)]
                with sessions.begin() as s:
                    res = ingest(s, pack, reads, actor=f"feed{worker}", key=KEY, now=at)
                acknowledged.append(res.stored)  # counted only once committed
                hits.append(res.hits)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=feed, args=(w,)) for w in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert errors == []
    assert (len(acknowledged), sum(hits)) == (24, 24)
    with sessions() as s:
        stored = s.scalar(select(func.count()).select_from(SightingRow))
        assert stored == sum(acknowledged) == 24 * 151
        assert (
            s.scalar(select(func.count()).where(SightingRow.hit, SightingRow.alert_id.is_(None)))
            == 0
        )
        # every hit counted once on its alert; at most one open alert per entry and area
        assert s.scalar(select(func.sum(SightingAlertRow.sightings))) == 24
        pairs = s.execute(select(SightingAlertRow.entry_id, SightingAlertRow.station)).all()
        assert len(pairs) == len(set(pairs))
        assert _covered(s) == (stored, stored)
        # a changed sighting is no longer covered by its record
        s.execute(SightingRow.__table__.update().where(SightingRow.id == 1).values(sensor_id="r9"))
        assert _covered(s)[0] == stored - 151
    engine.dispose()


def test_a_batch_of_only_refused_reads_writes_nothing(engine: Engine, pack: CityPack) -> None:
    with Session(engine) as s, s.begin():
        _setup(s)
        res = ingest(
            s, pack, [_read("nope", "X1", T0), _read("r13a", "", T0)], actor="f", key=KEY, now=T0
        )
        assert (res.stored, res.refused) == (0, 2)
        assert [o.error.code for o in res.outcomes if o.error] == [
            "not_found",
            "validation_error",
        ]
        assert s.scalar(select(func.count()).select_from(SightingRow)) == 0
        assert s.scalar(select(func.count()).where(AuditRecord.action == INGEST_ACTION)) == 0


@pytest.mark.postgres
def test_a_hotlist_import_leaves_the_planner_its_real_size(pg_url: str) -> None:
    from sqlalchemy import text

    from citywatch.store.db import make_engine, session_factory, upgrade
    from citywatch.surveillance.hotlist_files import import_entries

    engine = make_engine(pg_url)
    upgrade(engine)
    entries = [_entry(f"IMP{i:04d}", "stolen_vehicle") for i in range(300)]
    with session_factory(engine).begin() as s:
        result = import_entries(s, entries, actor="a", purpose="monthly file", key=KEY, now=T0)
    assert result.created == 300
    with engine.connect() as c:
        size = c.scalar(
            text("SELECT reltuples FROM pg_class WHERE oid = 'hotlist_entries'::regclass")
        )
    # without ANALYZE a fresh table reports -1 (never analysed) and batches may scan it all
    assert size == 300
    engine.dispose()


def test_bulk_rows_land_whole_and_their_digest_ignores_order(engine: Engine) -> None:
    import hashlib

    from citywatch.store.bulk import copy_rows, digest_lines

    # every NOT NULL column without a server default (COPY applies no model defaults)
    columns = ("pack", "sensor_id", "kind", "value_key", "seen_at", "received_at", "hit")
    rows = [
        ("manhattan", f"r{i % 3}", "plate", f"{i:064x}", T0 + timedelta(seconds=i), T0, False)
        for i in range(10_001)  # more than one executemany chunk where there is no COPY
    ]
    with Session(engine) as s, s.begin():
        copy_rows(s, SightingRow.__table__, (*columns, "source"), ((*r, "f") for r in rows))
        stored = s.execute(select(SightingRow.value_key, SightingRow.seen_at)).all()
    assert sorted(stored) == [(r[3], r[4]) for r in rows]
    assert digest_lines(["b", "a", "c"]) == digest_lines(["c", "a", "b"])
    assert digest_lines(["b", "a"]) == hashlib.sha256(b"a\nb\n").hexdigest()
