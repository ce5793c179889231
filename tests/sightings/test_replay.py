"""The Seattle ALPR sample replayed through the API with a synthetic hotlist; the file
reader, the replay clock and the hotlist CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from citywatch.errors import DataError, ValidationError
from citywatch.paths import data_dir
from citywatch.surveillance.alpr import read_alpr, replay_offsets, sensor_id_of, synthetic_hotlist
from tests.api.conftest import Server
from tests.helpers import run

SAMPLE = data_dir() / "alpr" / "seattle_spd_alpr_reads_2021-10-04_sample.csv.gz"


def _raw() -> pd.DataFrame:
    return pd.read_csv(SAMPLE, sep="|", dtype=str)  # "NA" positions become NaN here


def test_reader_keeps_every_positioned_read_in_utc() -> None:
    raw = _raw()
    feed = read_alpr(SAMPLE)
    assert feed.rows == len(raw) == 902
    assert feed.without_position == int(raw["lon"].isna().sum()) == 1
    # 10/04/2021 08:00 Seattle (PDT, UTC-7) is 15:00 UTC
    first = pd.to_datetime(raw["dt"], format="%m/%d/%Y - %H:%M:%S").min()
    assert feed.reads["seen_at"].iloc[0] == pd.Timestamp(first).tz_localize("UTC") + pd.Timedelta(
        hours=7
    )
    assert feed.reads["seen_at"].is_monotonic_increasing
    assert set(feed.reads["sensor_id"]) == {sensor_id_of(d) for d in raw["device"]}
    assert (
        sensor_id_of("M207541_Deleted_2021-10-21_22 50:42")
        == "spd-M207541_Deleted_2021-10-21_22_50:42"
    )


def test_reader_refuses_other_files(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a|b\n1|2\n")
    with pytest.raises(DataError, match="missing column"):
        read_alpr(tmp_path / "x.csv")


def test_replay_clock_and_synthetic_hotlist() -> None:
    seen = pd.Series(
        pd.to_datetime(["2021-10-04T15:00:00Z", "2021-10-04T15:01:00Z", "2021-10-04T16:00:00Z"])
    )
    assert replay_offsets(seen, 60).tolist() == [0.0, 1.0, 60.0]
    assert replay_offsets(seen, 0).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValidationError):
        replay_offsets(seen, -1)
    plates = pd.Series(["a", "b", "b", "c", "c", "c", "d"])
    assert synthetic_hotlist(plates, 5) == ["b", "c"]  # only plates read twice or more
    assert synthetic_hotlist(plates, 1, seed=1) == synthetic_hotlist(plates, 1, seed=1)


def test_replay_of_the_sample_raises_alerts(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = _raw().dropna(subset=["lon", "lat"])
    counts = raw["plate_hash"].value_counts()
    repeated = counts[counts >= 2]
    token = server.headers["admin"]["Authorization"][7:]
    args = ["sightings", "replay", str(SAMPLE), "--url", server.url, "--token", token]
    code, out, err = run([*args, "--speed", "0", "--seed-hotlist", "50", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["replayed"] == len(raw) == 901 and doc["relocated"] is True
    assert doc["sensors"] == {"devices": 2, "registered": 2}
    # the sample has 8 plates read at least twice: all of them become the synthetic hotlist
    assert doc["synthetic_hotlist"]["entries"] == len(repeated) == 8
    assert doc["refused"] == 0 and doc["stored"] == 901
    assert doc["hits"] == int(repeated.sum())
    assert doc["alerts_created"]
    with server.client("admin") as c:
        alerts = [
            a
            for a in c.get("/api/v1/sightings/alerts", params={"limit": 1000}).json()
            if a["id"] in doc["alerts_created"]
        ]
    assert len(alerts) == len(doc["alerts_created"])
    assert all(a["synthetic"] and a["label"].startswith("SYNTHETIC") for a in alerts)
    assert sum(a["sightings"] for a in alerts) == doc["hits"]
    # a second replay finds the synthetic entries already listed
    code, out, _ = run([*args, "--speed", "0", "--seed-hotlist", "50", "--json"], capsys)
    assert json.loads(out)["synthetic_hotlist"]["already_listed"] == 8
    code, _, err = run(
        ["sightings", "replay", str(SAMPLE), "--url", server.url, "--token", "bad"], capsys
    )
    assert code == 1 and err.startswith("Error:")


def test_hotlist_files_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'cw.db'}"
    src = tmp_path / "list.csv"
    src.write_text(
        "kind,value,reason,owner,legal_basis,case_ref,label,priority,expires_at\n"
        "plate,AB 123,stolen_vehicle,DMV,VTL 1224,C-1,blue van,2,\n"
        "ebike_tag,TAG-9,stolen_ebike,Station 13,theft report,T-9,,4,2099-01-01T00:00:00+00:00\n"
        "plate,AB123,stolen_vehicle,DMV,VTL 1224,C-1,,2,\n"
    )
    code, out, err = run(
        [
            "sightings",
            "hotlist",
            "import",
            str(src),
            "--purpose",
            "DMV file",
            "--store-values",
            "--db",
            db,
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["created"], doc["already_listed"], doc["refused"]) == (1, 1, 1)  # 2099: too far
    code, out, err = run(
        [
            "sightings",
            "hotlist",
            "export",
            "--out",
            str(tmp_path / "o.csv"),
            "--purpose",
            "audit",
            "--db",
            db,
            "--json",
        ],
        capsys,
    )
    assert code == 0, err and json.loads(out)["entries"] == 1
    back = pd.read_csv(tmp_path / "o.csv", dtype=str)
    assert back[["kind", "value", "label"]].values.tolist() == [["plate", "AB123", "blue van"]]
    code, out, _ = run(["sightings", "purge", "--days", "30", "--db", db, "--json"], capsys)
    assert code == 0 and json.loads(out)["deleted"] == 0
    code, _, err = run(
        [
            "sightings",
            "hotlist",
            "import",
            str(tmp_path / "none.csv"),
            "--purpose",
            "x",
            "--db",
            db,
        ],
        capsys,
    )
    assert code == 1 and err.startswith("Error: file not found")
