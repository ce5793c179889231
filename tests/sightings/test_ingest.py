"""Ingest against the database: matching, watchlist area entries and tracks, alert routing,
retention with its audit record, the hotlist import."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from citywatch.city import CityPack
from citywatch.routing import Router
from citywatch.store.db import session_factory
from citywatch.store.dispatch_models import AuditRecord
from citywatch.store.models import SensorRow
from citywatch.store.sightings_models import (
    AlertRecipientRow,
    HotlistEntryRow,
    SightingAlertRow,
    SightingRow,
)
from citywatch.surveillance.alerts import COALESCE_S, AreaGraph
from citywatch.surveillance.hotlist_files import import_entries
from citywatch.surveillance.hotlists import NewEntry, add_entry
from citywatch.surveillance.matching import SightingKind, ValueKey
from citywatch.surveillance.sightings import Read, ingest, purge_sightings

KEY = ValueKey(b"s" * 32)
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
# Manhattan sensors: 13a, 13b in precinct 13, 9 in precinct 9 (its neighbour), 23 in precinct 23.
SENSORS = {
    "r13a": (-73.982486, 40.731361, "13", "PBMS"),
    "r13b": (-73.981380, 40.737640, "13", "PBMS"),
    "r9": (-73.985300, 40.726600, "9", "PBMS"),
    "r23": (-73.938074, 40.791427, "23", "PBMN"),
}


class Sink:
    """Collects the staged events (the service's bus)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def stage(self, session: Session, event: dict[str, Any]) -> None:
        self.events.append(event)

    def publish(self, events: list[dict[str, Any]]) -> None:
        self.events.extend(events)


def _setup(s: Session) -> None:
    for sid, (lon, lat, station, bureau) in SENSORS.items():
        s.add(
            SensorRow(
                pack="manhattan", id=sid, kind="plate_reader", lon=lon, lat=lat, owner="police",
                status="online", bureau=bureau, station=station, updated_at=T0,
            )
        )  # fmt: skip
    s.flush()


def _read(sensor: str, value: str, at: datetime, **kw: Any) -> Read:
    return Read(sensor, at, kw.pop("kind", "plate"), value, **kw)


def _entry(value: str, reason: str, kind: str = "plate") -> NewEntry:
    return NewEntry(
        kind=kind, value=value, reason=reason, owner="squad", legal_basis="warrant 1",
        case_ref="C-1",
    )  # fmt: skip


@pytest.fixture(scope="module")
def pack(manhattan: tuple[CityPack, Router]) -> CityPack:
    return manhattan[0]


def test_neighbours_of_precinct_13_are_its_bordering_precincts(pack: CityPack) -> None:
    graph = AreaGraph.of(pack)
    # NYPD precinct map: the 13th borders the 6th, 9th, 10th, 14th and 17th
    assert sorted(graph.neighbours["13"], key=int) == ["6", "9", "10", "14", "17"]
    assert all("13" in graph.neighbours[n] for n in graph.neighbours["13"])  # symmetric
    assert graph.recipients("13", "repeat_offender") == [("13", "home")]
    assert [r for _, r in graph.recipients("13", "stolen_vehicle")].count("neighbour") == 5


def test_hits_alert_station_and_neighbours_and_coalesce(engine: Engine, pack: CityPack) -> None:
    sink = Sink()
    with Session(engine) as s, s.begin():
        _setup(s)
        car = add_entry(
            s, _entry("STOLEN1", "stolen_vehicle"), actor="a", purpose="p", key=KEY, now=T0
        )
        res = ingest(
            s, pack,
            [
                _read("r13a", "stolen 1", T0),
                _read("r13a", "OTHER", T0),
                _read("r13b", "STOLEN1", T0 + timedelta(minutes=5)),
            ],
            actor="feed", key=KEY, now=T0 + timedelta(minutes=5), sink=sink,
        )  # fmt: skip
        assert (res.stored, res.hits, res.refused) == (3, 2, 0)
        assert len(res.alerts_created) == 1 and res.alerts_updated == []
        (alert,) = s.scalars(select(SightingAlertRow))
        assert (alert.station, alert.sightings, alert.sensor_id) == ("13", 2, "r13b")
        stations = set(
            s.scalars(
                select(AlertRecipientRow.station).where(AlertRecipientRow.alert_id == alert.id)
            )
        )
        assert stations == {"13", "6", "9", "10", "14", "17"}
        assert [e["data"]["id"] for e in sink.events] == [alert.id]
        assert sorted(sink.events[0]["audience"]["stations"]) == sorted(stations)
        # later than the coalescing window: a new alert; in another area: a new alert there
        later = T0 + timedelta(minutes=5, seconds=COALESCE_S + 1)
        res2 = ingest(
            s,
            pack,
            [_read("r13a", "STOLEN1", later), _read("r23", "STOLEN1", later)],
            actor="feed",
            key=KEY,
            now=later,
        )
        assert len(res2.alerts_created) == 2
        hits = s.scalars(
            select(SightingRow).where(SightingRow.entry_id == car.id).order_by(SightingRow.id)
        )
        assert [h.alert_id is not None for h in hits] == [True] * 4
        # a withdrawn or expired entry matches nothing
        s.execute(HotlistEntryRow.__table__.update().values(status="withdrawn"))
        res3 = ingest(s, pack, [_read("r13a", "STOLEN1", later)], actor="feed", key=KEY, now=later)
        assert res3.hits == 0


def test_watchlist_subject_entering_an_area_alerts_that_station_only(
    engine: Engine, pack: CityPack
) -> None:
    with Session(engine) as s, s.begin():
        _setup(s)
        add_entry(
            s,
            _entry("CASE-7", "repeat_offender", "subject_ref"),
            actor="a",
            purpose="p",
            key=KEY,
            now=T0,
        )
        s.execute(SensorRow.__table__.update().values(kind="fixed_camera"))
        steps = [("r13a", 0), ("r13b", 3), ("r9", 6), ("r13a", 9)]
        for sensor, minute in steps:
            at = T0 + timedelta(minutes=minute)
            ingest(
                s,
                pack,
                [_read(sensor, "CASE-7", at, kind="subject_ref")],
                actor="feed",
                key=KEY,
                now=at,
            )
        alerts = list(s.scalars(select(SightingAlertRow).order_by(SightingAlertRow.id)))
        # entered 13 (then seen again there), entered 9; back in 13 within the window joins 13's
        assert [(a.kind, a.station, a.sightings) for a in alerts] == [
            ("area_entry", "13", 3),
            ("area_entry", "9", 1),
        ]
        recipients = s.execute(select(AlertRecipientRow.alert_id, AlertRecipientRow.station)).all()
        assert sorted(r[1] for r in recipients) == ["13", "9"]


def test_retention_deletes_old_non_hits_keeps_hits_and_audits(
    engine: Engine, pack: CityPack
) -> None:
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    with sessions.begin() as s:
        _setup(s)
        add_entry(s, _entry("HIT1", "stolen_vehicle"), actor="a", purpose="p", key=KEY, now=old)
        for at in (old, recent):
            reads = [_read("r13a", f"P{i}", at) for i in range(7)] + [_read("r13a", "HIT1", at)]
            ingest(s, pack, reads, actor="feed", key=KEY, now=at)
    result = purge_sightings(sessions, retention_days=30, now=now, chunk=3)
    assert (result.deleted, result.hits_kept) == (7, 1)
    with sessions() as s:
        left = s.execute(select(SightingRow.seen_at, SightingRow.hit)).all()
        assert sum(1 for at, hit in left if at < now - timedelta(days=30)) == 1  # the old hit
        assert len(left) == 1 + 8
        (audit,) = s.scalars(select(AuditRecord).where(AuditRecord.action == "sightings.purge"))
        assert (
            audit.after["deleted"],
            audit.after["hits_kept"],
            audit.after["retention_days"],
        ) == (7, 1, 30)
    assert purge_sightings(sessions, retention_days=30, now=now).deleted == 0


def test_hotlist_import_is_one_audited_transaction(engine: Engine) -> None:
    entries = [_entry(f"BULK{i}", "stolen_vehicle") for i in range(25)]
    entries += [
        _entry("BULK3", "stolen_vehicle"),
        _entry("", "stolen_vehicle"),
        _entry("X", "nope"),
    ]
    with Session(engine) as s, s.begin():
        add_entry(s, _entry("BULK0", "stolen_vehicle"), actor="a", purpose="p", key=KEY)
        result = import_entries(s, entries, actor="cli", purpose="monthly DMV file", key=KEY)
        assert (result.created, result.already_listed, len(result.refused)) == (24, 2, 2)
        assert [n for n, _ in result.refused] == [27, 28]
        assert s.scalar(select(func.count()).select_from(HotlistEntryRow)) == 25
        (audit,) = s.scalars(select(AuditRecord).where(AuditRecord.action == "hotlist.import"))
        assert audit.after["created"] == 24 and audit.after["purpose"] == "monthly DMV file"


def test_hashed_values_match_only_hashed_entries_and_values_are_kept_on_request(
    engine: Engine, pack: CityPack
) -> None:
    digest = "1EA44336207b9a32fbd46ced905e9bdc3dc7045e"  # a plate hash of the Seattle feed
    with Session(engine) as s, s.begin():
        _setup(s)
        hashed = NewEntry(
            kind="plate", value=digest, reason="stolen_vehicle", owner="o", legal_basis="l",
            hashed=True,
        )  # fmt: skip
        add_entry(s, hashed, actor="a", purpose="p", key=KEY, now=T0)
        add_entry(s, _entry("XY 12", "stolen_vehicle"), actor="a", purpose="p", key=KEY,
                  store_values=True, now=T0)  # fmt: skip
        reads = [
            _read("r13a", digest.lower(), T0, hashed=True),  # the same hash, any case
            _read("r13a", digest, T0),  # the same digits as a clear plate: no match
            _read("r13a", "xy-12", T0),
        ]
        res = ingest(s, pack, reads, actor="feed", key=KEY, now=T0, store_values=True)
        assert [o.hit for o in res.outcomes] == [True, False, True]
        stored = {tuple(r) for r in s.execute(select(SightingRow.value, SightingRow.hit))}
        assert stored == {(digest.upper(), False), (digest.lower(), True), ("XY12", True)}
        values = set(s.scalars(select(HotlistEntryRow.value)))
        assert values == {None, "XY12"}  # the first entry was added with hashes only
        # keyed: another key gives other value keys, so the database alone cannot be searched
        keys = set(s.scalars(select(SightingRow.value_key)))
        assert ValueKey(b"t" * 32).of(SightingKind.PLATE, "XY12") not in keys
