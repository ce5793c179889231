"""The e-bike registry: minimal data, roles and scope, theft -> incident + hotlist, audit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from citywatch.city import CityPack
from citywatch.dispatch.accounts import Principal, Role
from citywatch.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from citywatch.routing import Router
from citywatch.store.base import Base
from citywatch.store.db import make_engine, upgrade
from citywatch.store.dispatch_models import AuditRecord
from citywatch.store.ebike_models import EBikeRow
from citywatch.store.models import IncidentRow, SensorRow
from citywatch.store.sightings_models import HotlistEntryRow, SightingAlertRow
from citywatch.surveillance.ebikes import EBikeRegistry, check_contact
from citywatch.surveillance.matching import SightingKind, ValueKey
from citywatch.surveillance.sightings import Read, ingest
from tests.store.databases import pg_url, sqlite_url

__all__ = ["pg_url", "sqlite_url"]  # the database fixtures

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ADMIN = Principal("boss", Role.ADMIN)
OFF13 = Principal("off13", Role.STATION_OFFICER, "13")
OFF23 = Principal("off23", Role.STATION_OFFICER, "23")
DISP = Principal("disp", Role.DISPATCHER)
ANA = Principal("ana", Role.ANALYST)
KEY = ValueKey(b"e" * 32)
EAST_VILLAGE = (-73.982486, 40.731361)  # 1 Ave @ 14 St, precinct 13
EAST_HARLEM = (-73.938074, 40.791427)  # 1 Ave @ 110 St, precinct 23


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A migrated database, on SQLite and on PostgreSQL (a fresh schema)."""
    url = str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))
    eng = make_engine(url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def registry(engine: Engine, manhattan: tuple[CityPack, Router]) -> EBikeRegistry:
    return EBikeRegistry(sessionmaker(engine), manhattan[0], key=KEY)


def _audits(engine: Engine, prefix: str) -> list[AuditRecord]:
    with Session(engine) as s:
        rows = s.scalars(
            select(AuditRecord)
            .where(AuditRecord.action.startswith(prefix))
            .order_by(AuditRecord.seq)
        )
        return list(rows)


def test_migration_creates_exactly_the_models(engine: Engine) -> None:
    ours = {"ebikes", "ebike_theft_reports"}

    def include(obj: object, name: str | None, kind: str, _r: bool, _o: object) -> bool:
        table = name if kind == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in ours

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include})
        assert compare_metadata(context, Base.metadata) == []


def test_contact_is_a_phone_or_an_email_only() -> None:
    assert check_contact(" +1 212 555 0100 ") == "+1 212 555 0100"
    assert check_contact("owner@example.org") == "owner@example.org"
    assert check_contact("  ") is None
    for bad in ("John Smith", "12 Main St, Apt 4", "ID 110101199001011234 John", "x@y"):
        with pytest.raises(ValidationError, match="telephone number or e-mail"):
            check_contact(bad)


def test_register_keeps_only_a_keyed_tag_and_minimal_fields(
    registry: EBikeRegistry, engine: Engine
) -> None:
    doc = registry.register(
        OFF13, "ab-12 345", make="Yadea", colour="red", contact="+1 212 555 0100", now=NOW
    )
    assert (doc["station"], doc["bureau"], doc["tag_hint"]) == ("13", "PBMS", "2345")
    with Session(engine) as s:
        row = s.scalars(select(EBikeRow)).one()
        # the tag itself is nowhere: only the sightings value key of "AB12345"
        assert row.tag_key == KEY.of(SightingKind.EBIKE_TAG, "AB12345")
        stored = json.dumps({c.name: str(getattr(row, c.name)) for c in EBikeRow.__table__.c})
        assert "AB12345" not in stored and "ab-12 345" not in stored
    with pytest.raises(ConflictError, match="registered already"):
        registry.register(ADMIN, "AB12345", station="13")
    (audit,) = _audits(engine, "ebike.register")
    assert audit.after["has_contact"] is True
    assert "555" not in json.dumps(audit.after)  # the contact never enters the audit trail
    # contact: the bike's station and admins see it; dispatchers and other stations do not
    assert registry.get(OFF13, "AB12345")["contact"] == "+1 212 555 0100"
    assert registry.get(ADMIN, "AB12345")["contact"] == "+1 212 555 0100"
    assert registry.get(DISP, "AB12345")["contact"] is None
    assert registry.get(DISP, "AB12345")["has_contact"] is True
    with pytest.raises(PermissionDeniedError):
        registry.get(OFF23, "AB12345")
    assert registry.bikes(OFF23) == []
    for who in (ANA, Principal("dev", Role.UNIT_DEVICE)):
        with pytest.raises(PermissionDeniedError):
            registry.bikes(who)
    with pytest.raises(PermissionDeniedError):
        registry.register(DISP, "CD9999", station="13")
    with pytest.raises(PermissionDeniedError, match="outside your scope"):
        registry.register(OFF23, "CD9999", station="13")
    with pytest.raises(NotFoundError):
        registry.get(ADMIN, "ZZ0000")


def test_theft_puts_the_tag_on_the_hotlist_and_recovery_takes_it_off(
    registry: EBikeRegistry, engine: Engine
) -> None:
    registry.register(OFF13, "AB12345", make="Yadea", colour="red", now=NOW)
    at = NOW + timedelta(hours=1)
    # stolen in East Harlem (precinct 23): the theft is station 23's, outside off13's scope
    with pytest.raises(PermissionDeniedError):
        registry.report_theft(
            OFF13, "AB12345", occurred_at=NOW, lon=EAST_HARLEM[0], lat=EAST_HARLEM[1], now=at
        )
    with pytest.raises(ValidationError, match="outside manhattan"):
        registry.report_theft(ADMIN, "AB12345", occurred_at=NOW, lon=0.0, lat=0.0, now=at)
    with pytest.raises(ValidationError, match="future"):
        registry.report_theft(ADMIN, "AB12345", occurred_at=at + timedelta(hours=1), now=at)
    report = registry.report_theft(
        OFF13,
        "AB 12345",
        occurred_at=NOW - timedelta(minutes=30),
        lon=EAST_VILLAGE[0],
        lat=EAST_VILLAGE[1],
        now=at,
    )
    assert (report["station"], report["status"]) == ("13", "open")
    with pytest.raises(ConflictError, match="already reported stolen"):
        registry.report_theft(OFF13, "AB12345", occurred_at=NOW, now=at)
    with pytest.raises(ConflictError, match="recover it first"):
        registry.deregister(OFF13, "AB12345", now=at)
    with Session(engine) as s:
        entry = s.get(HotlistEntryRow, report["hotlist_entry_id"])
        assert entry is not None
        # a tag reader's read of the tag, however written, has this key: it is a hit
        assert entry.value_key == KEY.of(SightingKind.EBIKE_TAG, "ab-12345")
        assert (entry.list_name, entry.reason, entry.status) == (
            "stolen_ebikes",
            "stolen_ebike",
            "active",
        )
        assert (entry.case_ref, entry.label, entry.value) == (
            report["incident_id"],
            "red Yadea",
            None,
        )
        incident = s.get(IncidentRow, report["incident_id"])
        assert incident is not None
        assert (incident.category, incident.source, incident.station) == (
            "ebike_theft",
            "ebike_registry",
            "13",
        )
        assert incident.received_at == NOW - timedelta(minutes=30)
        assert s.scalars(select(EBikeRow)).one().status == "stolen"
    assert registry.bikes(DISP, status="stolen")[0]["tag_hint"] == "2345"
    closed = registry.recover(OFF13, "AB12345", now=at + timedelta(days=1))
    assert closed["status"] == "recovered"
    with Session(engine) as s:
        entry = s.get(HotlistEntryRow, report["hotlist_entry_id"])
        assert entry is not None and entry.status == "withdrawn"
    with pytest.raises(ConflictError, match="not reported stolen"):
        registry.recover(OFF13, "AB12345", now=at + timedelta(days=1))
    actions = [a.action for a in _audits(engine, "ebike.")]
    assert actions == ["ebike.register", "ebike.theft_report", "ebike.recover"]
    hot = [a.action for a in _audits(engine, "hotlist.")]
    assert hot == ["hotlist.create", "hotlist.withdraw"]
    # deregistering deletes the bike and its contact; its report stays, unlinked
    registry.deregister(OFF13, "AB12345", now=at + timedelta(days=2))
    with Session(engine) as s:
        assert s.scalars(select(EBikeRow)).all() == []
    assert registry.reports(ADMIN)[0]["ebike_id"] is None
    assert _audits(engine, "ebike.deregister")[0].after is None


def test_a_tag_reader_hit_alerts_the_station_of_the_reader(
    registry: EBikeRegistry, engine: Engine, manhattan: tuple[CityPack, Router]
) -> None:
    pack = manhattan[0]
    with Session(engine) as s, s.begin():
        s.add(
            SensorRow(
                pack="manhattan", id="tag-23", kind="ebike_tag_reader", lon=EAST_HARLEM[0],
                lat=EAST_HARLEM[1], owner="police", status="online", bureau="PBMN",
                station="23", updated_at=NOW,
            )
        )  # fmt: skip
    registry.register(OFF13, "AB12345", colour="red", now=NOW)
    report = registry.report_theft(
        OFF13, "AB12345", occurred_at=NOW, lon=EAST_VILLAGE[0], lat=EAST_VILLAGE[1], now=NOW
    )
    seen = NOW + timedelta(hours=3)
    with Session(engine) as s, s.begin():
        reads = [
            Read("tag-23", seen, "ebike_tag", "ab-12345"),
            Read("tag-23", seen, "ebike_tag", "ZZ99"),
        ]
        result = ingest(s, pack, reads, actor="feed", key=KEY, now=seen)
        assert (result.stored, result.hits) == (2, 1)
        (alert,) = s.scalars(select(SightingAlertRow))
        # the alert goes to precinct 23, where the reader is, not to 13 where it was stolen
        assert (alert.station, alert.entry_id) == ("23", report["hotlist_entry_id"])
    registry.recover(OFF13, "AB12345", now=seen + timedelta(hours=1))
    with Session(engine) as s, s.begin():
        later = seen + timedelta(hours=2)
        again = ingest(
            s,
            pack,
            [Read("tag-23", later, "ebike_tag", "AB12345")],
            actor="feed",
            key=KEY,
            now=later,
        )
        assert again.hits == 0
