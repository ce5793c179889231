"""The sensor model and its files: schedules, readers of the real camera lists, round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from citywatch.errors import DataError, ValidationError
from citywatch.paths import data_dir
from citywatch.surveillance.registry import read_sensors, snap_sensors, write_sensors
from citywatch.surveillance.sensors import (
    Owner,
    PowerSchedule,
    Sensor,
    SensorKind,
    SensorStatus,
    working_by_hour,
)
from tests.surveillance.networks import grid_pack, lonlat

CAMERAS = data_dir() / "cameras"


def test_power_schedule_hours() -> None:
    night = PowerSchedule.parse("23:00-06:00")
    assert str(night) == "23:00-06:00"
    assert np.nonzero(~night.powered_hours())[0].tolist() == [0, 1, 2, 3, 4, 5, 23]
    # A window that starts or ends inside an hour darkens the whole hour.
    two = PowerSchedule.parse("12:30-13:00; 18:00-18:01")
    assert np.nonzero(~two.powered_hours())[0].tolist() == [12, 18]
    assert PowerSchedule.parse("").powered_hours().all()
    assert not PowerSchedule.parse("00:00-24:00").powered_hours().any()
    for bad in ("23-06", "25:00-01:00", "10:00-10:00", "10:61-11:00"):
        with pytest.raises(ValidationError):
            PowerSchedule.parse(bad)


def test_working_by_hour_status_outage_cut_backup() -> None:
    lon, lat = lonlat(0, 0)
    base = {"kind": SensorKind.FIXED_CAMERA, "lon": lon, "lat": lat, "owner": Owner.MARKET}
    sensors = [
        Sensor(id="a", power=PowerSchedule.parse("23:00-06:00"), **base),  # type: ignore[arg-type]
        Sensor(id="b", status=SensorStatus.MAINTENANCE, **base),  # type: ignore[arg-type]
        Sensor(id="c", **base),  # type: ignore[arg-type]
        Sensor(id="d", **base),  # type: ignore[arg-type]
    ]
    on = working_by_hour(sensors, outages=["d"], power_cut_hours=[12], backup=["a"])
    assert on[:, 0].all()  # backup rides through the schedule and the cut
    assert not on[:, 1].any() and not on[:, 3].any()
    assert on[:, 2].sum() == 23 and not on[12, 2]
    with pytest.raises(ValidationError):
        working_by_hour(sensors, power_cut_hours=[24])


def test_sensor_validation_and_history() -> None:
    lon, lat = lonlat(0, 0)
    with pytest.raises(ValidationError):
        Sensor(id="x", kind=SensorKind.PTZ, lon=lon, lat=lat, owner=Owner.POLICE, fov_deg=400)
    with pytest.raises(ValidationError):
        Sensor(id="", kind=SensorKind.PTZ, lon=lon, lat=lat, owner=Owner.POLICE)
    s = Sensor(id="x", kind=SensorKind.PLATE_READER, lon=lon, lat=lat, owner=Owner.POLICE)
    assert (s.effective_range_m, s.effective_fov_deg, s.is_video) == (30.0, 360.0, False)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    s2 = s.with_status("offline", at, "vandalised").with_status(SensorStatus.ONLINE, at)
    assert [h.status.value for h in s2.history] == ["offline", "online"]
    assert s2.to_dict()["history"][0] == {
        "at": "2026-01-01T00:00:00+00:00",
        "status": "offline",
        "note": "vandalised",
    }


@pytest.mark.parametrize(
    ("name", "fmt", "count", "kind", "owners"),
    [
        ("nyc_dot_traffic_cameras_2020.csv", "nyc_dot", 723, "fixed_camera", {"city": 723}),
        (
            "baltimore_cctv_locations_2019.csv",
            "baltimore_cctv",
            614,
            "fixed_camera",
            {"business": 614},
        ),
        (
            "baltimore_bpd_citiwatch_cameras_2019.csv",
            "baltimore_citiwatch",
            592,
            "ptz",
            {"police": 592},
        ),
        ("nola_rtcc_city_cameras_2022-03-11.csv", "nola_rtcc", 432, "fixed_camera", {"city": 432}),
    ],
)
def test_real_camera_lists(
    name: str, fmt: str, count: int, kind: str, owners: dict[str, int]
) -> None:
    result = read_sensors(CAMERAS / name)
    assert result.format == fmt
    assert (len(result.sensors), result.rejected) == (count, [])
    assert {s.kind.value for s in result.sensors} == {kind}
    found: dict[str, int] = {}
    for s in result.sensors:
        found[s.owner.value] = found.get(s.owner.value, 0) + 1
    assert found == owners
    assert len({s.id for s in result.sensors}) == count


def test_first_rows_of_real_lists() -> None:
    nyc = read_sensors(CAMERAS / "nyc_dot_traffic_cameras_2020.csv").sensors[0]
    assert (nyc.id, nyc.name) == ("nycdot-368", "1 Ave @ 110 St")
    assert (nyc.lon, nyc.lat) == pytest.approx((-73.93807411193848, 40.79142677512476))
    citi = read_sensors(CAMERAS / "baltimore_bpd_citiwatch_cameras_2019.csv").sensors[0]
    assert (citi.id, citi.name) == ("citiwatch-2", "535 - Greenmount  - 30th")
    assert (citi.lon, citi.lat) == pytest.approx((-76.60947777777777, 39.32478055555556))


def test_round_trip_csv_and_geojson(tmp_path: Path) -> None:
    lon, lat = lonlat(10, 0)
    sensors = [
        Sensor(
            id="m-1",
            kind=SensorKind.FIXED_CAMERA,
            lon=lon,
            lat=lat,
            owner=Owner.MARKET,
            name="Market gate, 东门",
            direction_deg=90.0,
            fov_deg=70.0,
            range_m=45.0,
            power=PowerSchedule.parse("23:00-06:00"),
            status=SensorStatus.MAINTENANCE,
        ),
        Sensor(id="r-2", kind=SensorKind.EBIKE_TAG_READER, lon=lon, lat=lat, owner=Owner.POLICE),
    ]
    for suffix in ("csv", "geojson"):
        path = write_sensors(sensors, tmp_path / f"s.{suffix}")
        back = read_sensors(path)
        assert back.format == "citywatch"
        assert back.sensors == sensors
    doc = json.loads((tmp_path / "s.geojson").read_text(encoding="utf-8"))
    assert doc["features"][0]["properties"]["power_off"] == "23:00-06:00"


def test_bad_rows_are_reported_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(
        "id,kind,lon,lat,owner,power_off\n"
        "a,ptz,-73.98,40.75,police,\n"
        "b,drone,-73.98,40.75,police,\n"
        "c,ptz,-73.98,40.75,police,23-06\n"
        "d,ptz,,40.75,police,\n",
        encoding="utf-8",
    )
    result = read_sensors(path)
    assert [s.id for s in result.sensors] == ["a"]
    assert [line for line, _ in result.rejected] == [3, 4, 5]
    assert "HH:MM-HH:MM" in result.rejected[1][1]
    path.write_text("id,kind,lon,lat,owner\na,ptz,1,1,police\na,ptz,1,1,police\n")
    with pytest.raises(DataError, match="duplicate sensor id"):
        read_sensors(path)
    path.write_text("foo,bar\n1,2\n")
    with pytest.raises(DataError, match="unrecognised"):
        read_sensors(path)


def test_snap_fills_jurisdictions_and_refuses_far_sensors() -> None:
    pack = grid_pack(nx_=3, ny=1)
    base = {"kind": SensorKind.PTZ, "owner": Owner.POLICE}
    lon1, lat1 = lonlat(150, 7)
    lon2, lat2 = lonlat(50, 120)  # inside the city polygon? no: 120 m north of a 0-high grid
    lon3, lat3 = lonlat(10, 45)  # inside, 45 m from the street (limit 60)
    sensors = [
        Sensor(id="east", lon=lon1, lat=lat1, **base),  # type: ignore[arg-type]
        Sensor(id="away", lon=lon2, lat=lat2, **base),  # type: ignore[arg-type]
        Sensor(id="west", lon=lon3, lat=lat3, **base),  # type: ignore[arg-type]
    ]
    placed = snap_sensors(sensors, pack)
    assert [(s.id, s.station, s.bureau) for s in placed.sensors] == [
        ("east", "E", "B"),
        ("west", "W", "B"),
    ]
    assert placed.sensors[0].snap_m == pytest.approx(7.0, abs=1e-6)
    assert placed.refused == [("away", "outside the grid city area")]
