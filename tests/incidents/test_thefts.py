"""The Toronto bicycle-theft and New Zealand stolen-vehicle readers, on the real files in data/,
against counts computed here with the csv module."""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from sqlalchemy import func, select

from citywatch.incidents.importer import import_file
from citywatch.incidents.sources import read_source
from citywatch.store.db import make_engine
from citywatch.store.models import IncidentRow
from citywatch.surveillance.ebike_stats import theft_stats

DATA = Path(__file__).resolve().parents[2] / "data" / "thefts"
TORONTO = DATA / "toronto_tps_bicycle_thefts_2014_2017.csv.gz"
NZ = DATA / "nz_police_stolen_vehicles_2021-10_2022-04.csv.gz"


def _rows(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def toronto() -> list[dict[str, str]]:
    return _rows(TORONTO)


def test_toronto_events_and_ebikes(toronto: list[dict[str, str]]) -> None:
    events = {r["event_unique_id"] for r in toronto}
    electric = {r["event_unique_id"] for r in toronto if r["Bike_Type"] == "EL"}
    assert len(toronto) == 14_280 and sum(r["Bike_Type"] == "EL" for r in toronto) == 786
    parsed = read_source(TORONTO, "toronto_bike_thefts")
    assert parsed.reasons.isna().all()
    kept = parsed.records[~parsed.merged.to_numpy()]
    assert len(kept) == len(events) and int(parsed.merged.sum()) == len(toronto) - len(events)
    cats = kept.set_index("source_id")["category"]
    assert set(cats[cats == "ebike_theft"].index) == electric
    assert (cats == "bicycle_theft").sum() == len(events) - len(electric)
    # local Toronto wall-clock time of the first row of an event, to UTC
    first = {}
    for r in toronto:
        first.setdefault(r["event_unique_id"], r)
    sample = sorted(electric)[:50]
    zone = ZoneInfo("America/Toronto")
    want = [
        pd.Timestamp(
            datetime.strptime(
                f"{first[e]['Occurrence_Date']} {first[e]['Occurrence_Time']}", "%Y.%m.%d %H:%M:%S"
            ).replace(tzinfo=zone)
        )
        for e in sample
    ]
    got = kept.set_index("source_id").loc[sample, "received_at"]
    assert [g == w for g, w in zip(got, want, strict=True)] == [True] * len(sample)
    assert (kept.set_index("source_id").loc[sample, "station"].tolist()) == [
        first[e]["Division"] for e in sample
    ]


def test_ebike_stats_by_area_and_hour(toronto: list[dict[str, str]]) -> None:
    first: dict[str, dict[str, str]] = {}
    for r in toronto:
        first.setdefault(r["event_unique_id"], r)
    electric = {r["event_unique_id"] for r in toronto if r["Bike_Type"] == "EL"}
    by_area = Counter(first[e]["Division"] for e in electric)
    by_hour = Counter(int(first[e]["Occurrence_Time"][:2]) for e in electric)
    parsed = read_source(TORONTO, "toronto_bike_thefts")
    stats = theft_stats(parsed.records[~parsed.merged.to_numpy()], "America/Toronto")
    doc = stats.to_dict()
    assert doc["total"] == len(electric) and doc["no_hour"] == 0
    assert doc["by_hour"] == [by_hour[h] for h in range(24)]
    assert {a["area"]: a["total"] for a in doc["by_area"]} == dict(by_area)
    top = max(by_area.items(), key=lambda kv: (kv[1], -int(kv[0])))
    assert (doc["by_area"][0]["area"], doc["by_area"][0]["total"]) == top
    minute0 = sum(first[e]["Occurrence_Time"][3:5] == "00" for e in electric)
    assert doc["on_the_hour"] == pytest.approx(minute0 / len(electric))


def test_nz_mopeds_regions_and_days() -> None:
    rows = _rows(NZ)
    mopeds = [r for r in rows if r["vehicle_type"] == "Moped"]
    assert (len(rows), len(mopeds)) == (4_553, 187)
    parsed = read_source(NZ, "nz_stolen_vehicles")
    assert parsed.reasons.isna().all() and not parsed.merged.any()
    rec = parsed.records
    assert (rec["category"] == "moped_theft").sum() == len(mopeds)
    assert (rec["time_precision"] == "day").all() and rec["lon"].isna().all()
    assert rec["bureau"].value_counts().to_dict() == dict(Counter(r["region"] for r in rows))
    stats = theft_stats(rec, "Pacific/Auckland", mopeds=True).to_dict()
    assert stats["total"] == stats["no_hour"] == len(mopeds) and sum(stats["by_hour"]) == 0
    assert {a["area"]: a["total"] for a in stats["by_area"]} == dict(
        Counter(r["region"] for r in mopeds)
    )
    day = pd.Timestamp(mopeds[0]["date_stolen"] + " 12:00", tz="Pacific/Auckland")
    assert rec.set_index("source_id").loc[mopeds[0]["vehicle_id"], "received_at"] == day


def test_import_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'thefts.db'}"
    first = import_file(NZ, "nz_stolen_vehicles", db=url, rejected_path=tmp_path / "r.csv")
    again = import_file(NZ, "nz_stolen_vehicles", db=url, rejected_path=tmp_path / "r.csv")
    assert (first.read, first.imported, again.imported, again.already_present) == (
        4_553,
        4_553,
        0,
        4_553,
    )
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.scalar(
            select(func.count()).where(IncidentRow.category == "moped_theft")  # type: ignore[arg-type]
        )
    engine.dispose()
    assert n == 187
