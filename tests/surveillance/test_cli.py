"""``citywatch surveillance`` end to end: analysis commands on a hand-made grid pack, the
registry commands on an SQLite database, and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citywatch.city.pack import write_pack
from citywatch.errors import NotFoundError, ValidationError
from citywatch.surveillance.cli import app, parse_hours
from citywatch.surveillance.registry import write_sensors
from citywatch.surveillance.sensors import PowerSchedule
from tests.surveillance.networks import grid_pack, lonlat
from tests.surveillance.test_coverage import cam

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    pack = grid_pack(nx_=3, ny=1)
    folder = tmp_path / "grid"
    write_pack(folder, pack.meta, pack.network, pack.jurisdictions, [], [])
    cameras = [
        cam("market-1", 50, 0, range_m=50.0, owner="market"),
        cam("police-1", 150, 0, range_m=20.0, power=PowerSchedule.parse("01:00-02:00")),
    ]
    write_sensors(cameras, tmp_path / "cams.csv")
    lon, lat = lonlat(60, 0)
    lon2, lat2 = lonlat(190, 0)
    (tmp_path / "inc.csv").write_text(
        "id,received_at,category,lon,lat\n"
        f"a,2024-06-03T12:10:00-04:00,robbery,{lon},{lat}\n"
        f"b,2024-06-03T23:10:00-04:00,snatching,{lon},{lat}\n"
        f"c,2024-06-03T12:10:00-04:00,theft,{lon2},{lat2}\n",
        encoding="utf-8",
    )
    return {
        "pack": str(folder),
        "cams": str(tmp_path / "cams.csv"),
        "inc": str(tmp_path / "inc.csv"),
        "db": f"sqlite:///{tmp_path / 'cw.db'}",
        "tmp": str(tmp_path),
    }


def _json(args: list[str]) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    doc: dict = json.loads(result.stdout)  # type: ignore[type-arg]
    return doc


def test_parse_hours() -> None:
    assert parse_hours("22-6") == [22, 23, 0, 1, 2, 3, 4, 5]
    assert parse_hours("1,2") == [1, 2]
    assert parse_hours(None, (3,)) == [3]
    for bad in ("x", "5-5", "1,25", "0-25"):
        with pytest.raises(ValidationError):
            parse_hours(bad)


def test_coverage_with_market_power_off_and_incidents(files: dict[str, str]) -> None:
    base = ["coverage", files["pack"], "--cameras", files["cams"]]
    doc = _json([*base, "--power-off", "market=22:00-06:00", "--incidents", files["inc"]])
    assert (doc["cameras_placed"], doc["total_km"]) == (2, 0.2)
    km = doc["covered_km_by_hour"]
    assert (km[12], km[1], km[23]) == (0.14, 0.0, 0.04)  # 100 m + 40 m; police off 01-02
    assert doc["by_area"]["W"]["share_by_hour"][12] == 1.0
    inc = doc["incidents"]
    assert (inc["incidents"], inc["seen"]) == (3, 1)  # robbery at noon; not the 23:10 snatching
    two = _json([*base, "--incidents", files["inc"], "-c", "two_robberies"])["incidents"]
    assert (two["incidents"], two["seen"]) == (2, 2)  # no power-off: both in view
    cut = _json([*base, "--cut-hours", "12-13", "--outage", "police-1"])
    assert cut["covered_km_by_hour"][12] == 0.0 and cut["covered_km_by_hour"][11] == 0.1


def test_blind_spots_maps_and_night(files: dict[str, str]) -> None:
    tmp = Path(files["tmp"])
    base = ["blind-spots", files["pack"], "--cameras", files["cams"]]
    doc = _json(
        [
            *base,
            "--incidents",
            files["inc"],
            "--geojson",
            f"{tmp}/b.geojson",
            "--png",
            f"{tmp}/b.png",
        ]
    )
    # The market camera sees the whole west block; the east one has 60 m unseen, and the theft.
    assert [r["area"] for r in doc["top"]] == ["E"]
    assert doc["top"][0]["unseen_incidents"] == 1
    assert doc["top"][0]["uncovered_m"] == pytest.approx(60.0 + 40.0 / 24)
    geo = json.loads((tmp / "b.geojson").read_text(encoding="utf-8"))
    assert geo["features"][0]["geometry"]["type"] == "LineString"
    assert geo["attribution"] == "© OpenStreetMap contributors"
    assert (tmp / "b.png").read_bytes()[:4] == b"\x89PNG"
    night = _json([*base, "--night", "--power-off", "market=22:00-06:00"])
    # Over the 8 night hours: the market's 100 m all night, the police camera's 40 m in 1 hour.
    assert night["view"] == "night" and night["total_lost_m"] == pytest.approx(100.0 + 40.0 / 8)
    kept = _json([*base, "--night", "--power-cut", "--backup", "market-1"])
    assert kept["total_lost_m"] == pytest.approx(40.0)  # police-1 has no backup


def test_place_new_and_backup(files: dict[str, str]) -> None:
    base = ["place", files["pack"], "--cameras", files["cams"]]
    # A straight street has no intersection; every node is a candidate with --min-degree 1.
    result = runner.invoke(app, [*base, "--new", "1"])
    assert isinstance(result.exception, ValidationError)
    new = _json([*base, "--new", "1", "--min-degree", "1"])
    # The middle node's PTZ camera (120 m) sees the whole 200 m street.
    assert new["status"] == "optimal" and new["chosen"][0]["node"] == "n1_0"
    assert new["share_after"] == pytest.approx(1.0)
    backup = _json([*base, "--backup-budget", "1", "--power-cut"])
    assert [c["id"] for c in backup["chosen"]] == ["market-1"]
    assert backup["share_after"] == pytest.approx(0.5)
    result = runner.invoke(app, base)
    assert isinstance(result.exception, ValidationError)


def test_registry_import_list_export(files: dict[str, str]) -> None:
    args = ["--pack", files["pack"], "--db", files["db"]]
    first = _json(["sensors", "import", files["cams"], *args, "--power-off", "market=23:00-06:00"])
    assert (first["rows"], first["created"], first["updated"]) == (2, 2, 0)
    again = _json(["sensors", "import", files["cams"], *args, "--power-off", "market=23:00-06:00"])
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    listed = runner.invoke(app, ["sensors", "list", *args, "--json"])
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["station"], r["power_off"]) for r in rows] == [
        ("market-1", "W", "23:00-06:00"),
        ("police-1", "E", "01:00-02:00"),
    ]
    assert rows[0]["history"][0]["note"] == "registered"
    out = Path(files["tmp"]) / "export.geojson"
    _json(["sensors", "export", *args, "--out", str(out), "--station", "E"])
    assert [f["properties"]["id"] for f in json.loads(out.read_text())["features"]] == ["police-1"]


def test_errors_print_one_line(files: dict[str, str]) -> None:
    result = runner.invoke(app, ["coverage", files["pack"], "--cameras", "/nonexistent.csv"])
    assert isinstance(result.exception, NotFoundError)
    result = runner.invoke(
        app,
        ["coverage", files["pack"], "--cameras", files["cams"], "--power-off", "nobody=1:00-2:00"],
    )
    assert isinstance(result.exception, NotFoundError)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from citywatch.cli import main; main()",
            "surveillance",
            "place",
            files["pack"],
            "--cameras",
            files["cams"],
            "--new",
            "1",
            "--backup-budget",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "Error: give exactly one of --new and --backup-budget"
    )
