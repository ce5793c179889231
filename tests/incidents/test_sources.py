"""Source readers on the real files in data/, checked against brute force and published counts."""

from __future__ import annotations

import csv
import gzip
from datetime import datetime
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from citywatch.errors import DataError, ValidationError
from citywatch.incidents.parsing import load_mapping
from citywatch.incidents.sources import read_source
from citywatch.incidents.taxonomy import load_taxonomy

DATA = Path(__file__).resolve().parents[2] / "data"
SHOOTINGS = DATA / "manhattan" / "nypd_shootings_historic.csv"
THEFTS = DATA / "manhattan" / "nyc_vehicle_thefts_2014.csv"
NASHVILLE = DATA / "nashville" / "calls_2024_partial.csv"
WEST_YORKSHIRE = sorted((DATA / "west-yorkshire").glob("*.csv.gz"))
UTC = ZoneInfo("UTC")


def expected_utc(local: list[str], fmt: str, tz: str) -> list[pd.Timestamp]:
    """Brute force with zoneinfo: fold=0 is the first occurrence of a repeated local time."""
    zone = ZoneInfo(tz)
    return [
        pd.Timestamp(datetime.strptime(s, fmt).replace(tzinfo=zone).astimezone(UTC)) for s in local
    ]


def test_every_bundled_mapping_targets_taxonomy_codes() -> None:
    tax = load_taxonomy()
    folder = resources.files("citywatch.incidents").joinpath("data/mappings")
    names = [p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")]
    assert sorted(names) == [
        "code",
        "nashville",
        "nypd_shootings",
        "nz_stolen_vehicles",
        "police_uk",
        "toronto_bike_thefts",
    ]
    for name in names:
        mapping = load_mapping(name)
        ZoneInfo(mapping["timezone"])
        codes = set(mapping.get("categories", {}).values()) | {mapping.get("category", "other")}
        assert codes <= set(tax.codes), name


def test_nypd_shootings() -> None:
    parsed = read_source(SHOOTINGS, "nypd_shootings")
    raw = pd.read_csv(SHOOTINGS, dtype=str)
    assert len(parsed.raw) == len(raw) == 20_659
    assert parsed.reasons.isna().all()
    # one incident per INCIDENT_KEY; further rows are further victims
    assert int((~parsed.merged).sum()) == raw["INCIDENT_KEY"].nunique() == 16_255
    incidents = parsed.incidents
    assert len(incidents) == 16_255 and incidents["id"].is_unique
    # NYPD year-end CompStat counts of shooting incidents: 789 in 2017, 754 in 2018
    local_year = incidents["received_at"].dt.tz_convert("America/New_York").dt.year
    assert (local_year == 2017).sum() == 789
    assert (local_year == 2018).sum() == 754
    # demographic columns are never read
    assert not [c for c in parsed.raw.columns if c.startswith(("PERP_", "VIC_"))]
    # every time against zoneinfo, and the count of repeated (ambiguous) local times
    local = (raw["OCCUR_DATE"] + " " + raw["OCCUR_TIME"]).tolist()
    want = expected_utc(local, "%m/%d/%Y %H:%M:%S", "America/New_York")
    assert parsed.records["received_at"].tolist() == want
    zone = ZoneInfo("America/New_York")
    ambiguous = sum(
        datetime.strptime(s, "%m/%d/%Y %H:%M:%S").replace(tzinfo=zone, fold=0).utcoffset()
        != datetime.strptime(s, "%m/%d/%Y %H:%M:%S").replace(tzinfo=zone, fold=1).utcoffset()
        for s in local
    )
    assert parsed.notes == {"ambiguous_local_time": ambiguous} and ambiguous == 17
    first = parsed.records.iloc[0]  # 9/9/2017 3:57:00 EDT, precinct 120
    assert first["received_at"] == pd.Timestamp("2017-09-09 07:57", tz="UTC")
    assert (first["station"], first["category"], first["priority"]) == ("120", "shooting", 1)
    # an incident is "murder" when any of its victims' murder flag is set
    fatal_keys = set(raw.loc[raw["STATISTICAL_MURDER_FLAG"] == "TRUE", "INCIDENT_KEY"])
    got = incidents.set_index("source_id")["disposition"]
    assert set(got[got == "murder"].index) == fatal_keys
    first_rows = raw.drop_duplicates("INCIDENT_KEY")
    assert incidents["source_id"].tolist() == first_rows["INCIDENT_KEY"].tolist()
    assert incidents["station"].tolist() == first_rows["PRECINCT"].tolist()


@pytest.mark.parametrize(
    ("path", "rows"), list(zip(WEST_YORKSHIRE, [27_176, 28_537, 31_635], strict=True))
)
def test_police_uk(path: Path, rows: int) -> None:
    parsed = read_source(path, "police_uk")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        raw = list(csv.DictReader(fh))
    assert len(parsed.records) == len(raw) == rows
    assert parsed.reasons.isna().all()
    records = parsed.records
    assert records["source_id"].is_unique
    no_id = [r["Crime ID"] == "" for r in raw]
    assert records["source_id"][no_id].str.startswith("noid-").all()
    assert (
        records["source_id"][[not x for x in no_id]]
        == [r["Crime ID"] for r in raw if r["Crime ID"]]
    ).all()
    # the ids of rows without a Crime ID are stable from one read to the next
    assert read_source(path, "police_uk").records["source_id"].equals(records["source_id"])
    # month precision, stored at noon UK time on the 1st
    month = raw[0]["Month"]
    noon = pd.Timestamp(f"{month}-01 12:00", tz="Europe/London").tz_convert("UTC")
    assert (records["time_precision"] == "month").all()
    assert (records["received_at"] == noon).all()
    # rows without a location are kept, with no coordinates
    assert int(records["lon"].isna().sum()) == sum(r["Longitude"] == "" for r in raw) > 0
    # solved follows the outcome table; unknown outcomes stay unknown
    table = load_mapping("police_uk")["solved"]
    outcomes = [r["Last outcome category"] for r in raw]
    assert int((records["solved"] == True).sum()) == sum(table.get(o) is True for o in outcomes)  # noqa: E712
    assert int((records["solved"] == False).sum()) == sum(table.get(o) is False for o in outcomes)  # noqa: E712
    assert int((records["category"] == "robbery").sum()) == sum(
        r["Crime type"] == "Robbery" for r in raw
    )


def test_code_vehicle_thefts() -> None:
    parsed = read_source(THEFTS, "code")
    raw = pd.read_csv(THEFTS, dtype=str)
    assert len(parsed.records) == 35_746 and parsed.reasons.isna().all()
    assert (parsed.records["category"] == "vehicle_theft").all()
    want = expected_utc(raw["date_single"].tolist(), "%Y-%m-%d %H:%M", "America/New_York")
    assert parsed.records["received_at"].tolist() == want
    assert parsed.records["lon"].tolist() == raw["longitude"].astype(float).tolist()


def test_nashville_calls() -> None:
    parsed = read_source(NASHVILLE, "nashville")
    assert parsed.raw.columns[0] == "OBJECTID"  # the mangled byte-order mark is gone
    records = parsed.records
    assert len(records) == 26_935 and parsed.reasons.isna().all()
    raw = pd.read_csv(NASHVILLE, dtype=str, encoding="utf-8-sig")
    want = expected_utc(raw["Call_Received"].tolist(), "%Y-%m-%d %H:%M:%S", "America/Chicago")
    assert records["received_at"].tolist() == want
    assert records["received_at"].iloc[0] == pd.Timestamp("2024-07-07 02:14:40", tz="UTC")
    arrests = raw["Disposition Description"].str.contains("ARREST", na=False)
    assert int(records["solved"].sum()) == int(arrests.sum()) == 157
    assert int(records["lon"].isna().sum()) == int(raw["Longitude"].isna().sum())
    tencode = raw["Tencode"].astype(int)
    assert (records.loc[tencode.isin([52, 83]).to_numpy(), "category"] == "shooting").all()
    assert (records.loc[(tencode == 3).to_numpy(), "category"] == "other").all()
    assert set(records["station"]) == set(raw["Sector"])


def test_generic_mapping_reproduces_the_code_reader(tmp_path: Path) -> None:
    mapping = tmp_path / "code.toml"
    mapping.write_text(
        'dataset = "code2014"\n'
        'timezone = "America/New_York"\n'
        'time_format = "%Y-%m-%d %H:%M"\n'
        'category = "vehicle_theft"\n'
        "[columns]\n"
        'source_id = "uid"\n'
        'received_at = "date_single"\n'
        'lon = "longitude"\n'
        'lat = "latitude"\n'
    )
    generic = read_source(THEFTS, "generic", mapping=mapping).records
    code = read_source(THEFTS, "code").records
    assert (generic["source_id"] == "code2014:" + code["source_id"]).all()
    assert (generic["source"] == "generic").all()
    cols = ["received_at", "category", "priority", "lon", "lat", "time_precision"]
    pd.testing.assert_frame_equal(generic[cols], code[cols])


def test_generic_mapping_with_categories_offsets_and_solved(tmp_path: Path) -> None:
    csv_path = tmp_path / "calls.csv"
    csv_path.write_text(
        "case,when,type,outcome,p\n"
        "1,2024-05-01T10:00:00+08:00,两抢,破案,1\n"
        "2,2024-05-01T11:00:00+08:00,盗窃,,\n"
        "3,2024-05-01T12:00:00+08:00,未知,,\n"
        "4,not a time,盗窃,,\n"
        "5,2024-05-01T13:00:00+08:00,盗窃,,1.5\n"
        "2,2024-05-01T14:00:00+08:00,盗窃,,\n"
    )
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        'dataset = "kunming"\n'
        "[columns]\n"
        'source_id = "case"\nreceived_at = "when"\ncategory = "type"\n'
        'disposition = "outcome"\npriority = "p"\n'
        '[categories]\n"两抢" = "robbery"\n"盗窃" = "theft"\n'
        '[solved]\n"破案" = true\n'
    )
    parsed = read_source(csv_path, "generic", mapping=mapping)
    assert parsed.reasons.tolist() == [
        pd.NA,
        pd.NA,
        "unmapped_category",
        "bad_received_at",
        "bad_priority",
        "duplicate_in_file",
    ]
    first = parsed.records.iloc[0]
    assert first["received_at"] == pd.Timestamp("2024-05-01 02:00", tz="UTC")
    assert (first["category"], first["priority"], first["solved"]) == ("robbery", 1, True)
    assert parsed.records.iloc[1]["priority"] == 3  # the category's default


def test_generic_mapping_errors(tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text('[columns]\nsource_id = "uid"\n')
    with pytest.raises(DataError, match="set `dataset`"):
        read_source(THEFTS, "generic", mapping=mapping)
    mapping.write_text('dataset = "x"\n[columns]\nsource_id = "uid"\n')
    with pytest.raises(DataError, match="lacks received_at, category"):
        read_source(THEFTS, "generic", mapping=mapping)
    mapping.write_text(
        'dataset = "x"\ncategory = "theft"\n[columns]\nsource_id = "uid"\n'
        'received_at = "date_single"\n'
    )
    with pytest.raises(DataError, match="have no offset; set `timezone`"):
        read_source(THEFTS, "generic", mapping=mapping)
    mapping.write_text(
        'dataset = "x"\ncategory = "theft"\n[columns]\nsource_id = "nope"\nreceived_at = "x"\n'
    )
    with pytest.raises(DataError, match="missing columns nope, x"):
        read_source(THEFTS, "generic", mapping=mapping)
    with pytest.raises(DataError, match="needs a TOML column mapping"):
        read_source(THEFTS, "generic")


def test_wrong_layout_and_unknown_source() -> None:
    with pytest.raises(DataError, match=r"thefts_2014\.csv: missing columns INCIDENT_KEY"):
        read_source(THEFTS, "nypd_shootings")
    with pytest.raises(DataError, match=r"police\.uk: missing columns Crime ID"):
        read_source(THEFTS, "police_uk")
    with pytest.raises(ValidationError, match="unknown source 'nypd'"):
        read_source(THEFTS, "nypd")
