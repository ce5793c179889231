"""Make and colour of stolen items: read from the real Toronto and New Zealand files in data/,
kept by ``citywatch ebikes import-thefts``, shown in the theft layer and the registry's reports;
expected values are read here with the csv module."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from citywatch.city import CityPack
from citywatch.dispatch.accounts import Principal, Role
from citywatch.errors import ValidationError
from citywatch.routing import Router
from citywatch.store.base import Base
from citywatch.store.db import make_engine
from citywatch.store.models import IncidentRow
from citywatch.store.theft_models import TheftDescriptionRow
from citywatch.surveillance.ebike_cli import THEFT_SOURCES, app
from citywatch.surveillance.ebike_thefts import (
    DESCRIPTION_COLUMNS,
    NOT_KNOWN,
    describe,
    read_descriptions,
    theft_layer,
)
from citywatch.surveillance.ebikes import EBikeRegistry
from citywatch.surveillance.matching import ValueKey
from tests.store.databases import pg_url, sqlite_url
from tests.surveillance.test_ebikes import EAST_VILLAGE, engine

__all__ = ["engine", "pg_url", "sqlite_url"]  # the database fixtures (SQLite and PostgreSQL)

DATA = Path(__file__).resolve().parents[2] / "data" / "thefts"
TORONTO = DATA / "toronto_tps_bicycle_thefts_2014_2017.csv.gz"
NZ = DATA / "nz_police_stolen_vehicles_2021-10_2022-04.csv.gz"
DISP = Principal("disp", Role.DISPATCHER)
runner = CliRunner()


def _rows(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def _known(value: str) -> str | None:
    text = " ".join(value.split())
    return None if not text or text.upper() in NOT_KNOWN else text


@pytest.fixture(scope="module")
def toronto() -> list[dict[str, str]]:
    return _rows(TORONTO)


def test_migration_creates_exactly_the_model(engine: Engine) -> None:
    def include(obj: object, name: str | None, kind: str, _r: bool, _o: object) -> bool:
        table = name if kind == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table == "theft_descriptions"

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include})
        assert compare_metadata(context, Base.metadata) == []


def test_every_theft_source_of_the_cli_has_its_item_columns() -> None:
    assert set(THEFT_SOURCES) == set(DESCRIPTION_COLUMNS)


def test_toronto_items_as_published(toronto: list[dict[str, str]]) -> None:
    items = read_descriptions(TORONTO, "toronto_bike_thefts")
    assert len(items) == len(toronto) == 14_280
    by_id = {
        (r.incident_id, r.item): (r.kind, r.make, r.colour)
        for r in items.astype(object).where(items.notna(), None).itertuples()
    }
    # Real rows of the file: an e-bike alone, an unknown make, two bicycles in one theft.
    assert by_id[("toronto_bike_thefts:GO-20142673124", 0)] == ("EL", "GIMELLI", "RED")
    assert by_id[("toronto_bike_thefts:GO-20141809196", 0)] == ("EL", "EMMO", "BLKBLU")
    assert by_id[("toronto_bike_thefts:GO-20143567636", 0)] == ("EL", None, None)
    assert by_id[("toronto_bike_thefts:GO-20142493412", 0)] == ("EL", "OTHER", "WHIBLK")
    assert by_id[("toronto_bike_thefts:GO-20142493412", 1)] == ("MT", "RALEIGH", "ONG")
    # Every row, against the file read with the csv module.
    seen: dict[str, int] = {}
    for r in toronto:
        n = seen.get(r["event_unique_id"], 0)
        seen[r["event_unique_id"]] = n + 1
        key = (f"toronto_bike_thefts:{r['event_unique_id']}", n)
        published = (r["Bike_Type"], r["Bike_Make"], r["Bike_Colour"])
        assert by_id[key] == tuple(_known(v) for v in published)


def test_nz_mopeds_have_make_and_colour() -> None:
    items = read_descriptions(NZ, "nz_stolen_vehicles").set_index("incident_id")
    assert tuple(items.loc["nz_stolen_vehicles:13", ["kind", "make", "colour"]]) == (
        "Moped",
        "Vespa",
        "Black",
    )
    assert (items["item"] == 0).all()  # one vehicle per record


def test_unknown_source_is_refused() -> None:
    with pytest.raises(ValidationError, match="no item descriptions"):
        read_descriptions(TORONTO, "nypd_shootings")


def test_import_keeps_items_once_and_the_layer_shows_them(
    tmp_path: Path, toronto: list[dict[str, str]]
) -> None:
    db = f"sqlite:///{tmp_path / 'thefts.db'}"
    args = ["import-thefts", str(TORONTO), "--source", "toronto_bike_thefts", "--db", db, "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    doc = json.loads(first.output)
    eng = make_engine(db)
    with Session(eng) as s:
        imported = set(s.scalars(select(IncidentRow.source_id)))
        stored = s.scalar(select(func.count()).select_from(TheftDescriptionRow))
    expected = sum(r["event_unique_id"] in imported for r in toronto)
    assert doc["items_described"] == stored == expected > 14_000
    again = json.loads(runner.invoke(app, args).output)
    assert again["items_described"] == 0 and again["imported"] == 0
    with eng.connect() as conn:
        items = describe(conn, ["toronto_bike_thefts:GO-20142493412"])
    assert items["toronto_bike_thefts:GO-20142493412"] == [
        {"kind": "EL", "make": "OTHER", "colour": "WHIBLK"},
        {"kind": "MT", "make": "RALEIGH", "colour": "ONG"},
    ]
    # The map layer (no pack: all of Toronto): e-bike thefts only, newest first, with items.
    layer = theft_layer(eng, None, DISP, limit=10_000)
    ebike_events = {r["event_unique_id"] for r in toronto if r["Bike_Type"] == "EL"}
    assert layer["total"] == len(layer["features"]) == len(ebike_events & imported)
    props = {f["properties"]["id"]: f["properties"] for f in layer["features"]}
    gimelli = props["toronto_bike_thefts:GO-20142673124"]
    assert gimelli["items"] == [{"kind": "EL", "make": "GIMELLI", "colour": "RED"}]
    assert gimelli["station"] == "13"
    times = [f["properties"]["occurred_at"] for f in layer["features"]]
    assert times == sorted(times, reverse=True)
    assert len(theft_layer(eng, None, DISP, limit=5)["features"]) == 5
    eng.dispose()


def test_a_registry_theft_describes_the_bike_as_registered(
    engine: Engine, manhattan: tuple[CityPack, Router]
) -> None:
    pack = manhattan[0]
    registry = EBikeRegistry(sessionmaker(engine), pack, key=ValueKey(b"e" * 32))
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    admin = Principal("boss", Role.ADMIN)
    registry.register(admin, "YD-0042-13", make="Yadea", colour="red", station="13", now=now)
    lon, lat = EAST_VILLAGE
    report = registry.report_theft(
        admin, "YD-0042-13", occurred_at=now - timedelta(hours=1), lon=lon, lat=lat, now=now
    )
    bike = {"kind": "ebike", "make": "Yadea", "colour": "red"}
    assert report["items"] == [bike]
    assert registry.reports(DISP)[0]["items"] == [bike]
    assert registry.get(admin, "YD-0042-13")["theft_reports"][0]["items"] == [bike]
    (feature,) = theft_layer(engine, pack, DISP)["features"]
    assert feature["properties"]["items"] == [bike]
    assert feature["geometry"]["coordinates"] == [lon, lat]
    # A station officer of another precinct sees nothing of it on the map.
    assert theft_layer(engine, pack, Principal("o23", Role.STATION_OFFICER, "23"))["total"] == 0
    assert registry.recover(admin, "YD-0042-13", now=now)["items"] == [bike]
