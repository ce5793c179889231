"""Coverage along streets: hand-computed values and a brute-force check on hand-made grids."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from citywatch.surveillance.blindspots import blind_spots, night_view
from citywatch.surveillance.coverage import CameraCoverage
from citywatch.surveillance.sensors import Owner, PowerSchedule, Sensor, SensorKind, SensorStatus
from tests.surveillance.networks import brute_force_seen, grid_pack, lonlat


def cam(id_: str, x: float, y: float, **kw: object) -> Sensor:
    lon, lat = lonlat(x, y)
    kw.setdefault("kind", SensorKind.FIXED_CAMERA)
    kw.setdefault("owner", Owner.POLICE)
    return Sensor(id=id_, lon=lon, lat=lat, **kw)  # type: ignore[arg-type]


def test_camera_facing_east_sees_exactly_its_range_down_the_street() -> None:
    pack = grid_pack(nx_=3, ny=1)  # one straight street, 200 m
    cov = CameraCoverage.build(
        pack, [cam("c", 100, 0, direction_deg=90.0, fov_deg=90.0, range_m=50.0)]
    )
    hourly = cov.coverage_by_hour()
    assert hourly.total_m == pytest.approx(200.0)
    # The view runs from the camera 50 m east; nothing to the west (outside the wedge).
    assert hourly.covered_m == pytest.approx(np.full(24, 50.0))
    west = hourly.by_area[hourly.by_area["area"] == "W"]
    assert west["covered_m"].max() == 0.0
    # Station E holds the eastern half (segments by their midpoint: 100 m), 50 m of it seen.
    east = hourly.by_area[hourly.by_area["area"] == "E"]
    assert east["covered_m"].tolist() == pytest.approx([50.0] * 24)
    assert east["share"].tolist() == pytest.approx([0.5] * 24)


def test_parallel_street_behind_the_block_is_not_seen() -> None:
    # Camera mid-block on the bottom street; the top street is 40 m away, within range, but
    # the path to it goes round the corner.
    pack = grid_pack(nx_=2, ny=2, block_x=200.0, block_y=40.0)
    cov = CameraCoverage.build(pack, [cam("c", 100, 0, range_m=60.0)])
    seen = cov.seen_by_hour()[:, 0]
    top = next(i for i in range(len(cov.streets)) if {cov.streets.u[i], cov.streets.v[i]} == {2, 3})
    assert not seen[cov.samples.segment == top].any()
    # Along its own street it sees 60 m each way.
    assert cov.coverage_by_hour().covered_m[0] == pytest.approx(120.0)


def test_power_schedule_and_status_darken_hours() -> None:
    pack = grid_pack(nx_=3, ny=1)
    sensors = [
        cam("night-off", 40, 0, range_m=20.0, power=PowerSchedule.parse("23:00-06:00")),
        cam("broken", 160, 0, range_m=20.0, status=SensorStatus.OFFLINE),
    ]
    cov = CameraCoverage.build(pack, sensors)
    covered = cov.coverage_by_hour().covered_m
    dark = [23, 0, 1, 2, 3, 4, 5]
    assert covered[dark] == pytest.approx(np.zeros(7))
    assert covered[[6, 12, 22]] == pytest.approx(np.full(3, 40.0))
    # A power cut at noon darkens it; backup power keeps it on through cut and schedule.
    assert cov.coverage_by_hour(cov.working(power_cut_hours=[12])).covered_m[12] == 0.0
    backed = cov.coverage_by_hour(cov.working(power_cut_hours=[12], backup=["night-off"]))
    assert backed.covered_m == pytest.approx(np.full(24, 40.0))


@pytest.mark.parametrize("seed", range(6))
def test_coverage_equals_brute_force_on_random_cameras(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pack = grid_pack(nx_=4, ny=3, block_x=90.0, block_y=60.0)
    sensors = []
    for k in range(6):
        on_x = rng.random() < 0.5
        x = rng.uniform(0, 270) if on_x else 90.0 * rng.integers(0, 4)
        y = 60.0 * rng.integers(0, 3) if on_x else rng.uniform(0, 120)
        direction = None if rng.random() < 0.3 else float(rng.uniform(0, 360))
        sensors.append(
            cam(
                f"c{k}",
                x,
                y,
                kind=SensorKind.PTZ if rng.random() < 0.3 else SensorKind.FIXED_CAMERA,
                direction_deg=direction,
                fov_deg=float(rng.uniform(30, 180)),
                range_m=float(rng.uniform(30, 150)),
                power=PowerSchedule.parse("22:00-05:30" if k % 2 else None),
            )
        )
    cov = CameraCoverage.build(pack, sensors, spacing_m=7.0)
    brute = brute_force_seen(pack, sensors, spacing=7.0)
    on = cov.working()
    for hour in (3, 12):
        expected = sum(length for length, who in brute if any(on[hour, j] for j in who))
        assert cov.coverage_by_hour().covered_m[hour] == pytest.approx(expected, abs=1e-6)
    assert cov.seen.nnz == sum(len(who) for _, who in brute)


def _incidents(points: list[tuple[float, float, int]]) -> pd.DataFrame:
    rows = []
    for k, (x, y, hour) in enumerate(points):
        lon, lat = lonlat(x, y)
        at = pd.Timestamp(datetime(2024, 6, 3, hour, 30), tz="America/New_York").tz_convert(UTC)
        rows.append(
            {"id": f"i{k}", "lon": lon, "lat": lat, "received_at": at, "category": "robbery"}
        )
    return pd.DataFrame(rows)


def test_incident_coverage_uses_the_incident_hour() -> None:
    pack = grid_pack(nx_=3, ny=1)
    cov = CameraCoverage.build(
        pack, [cam("c", 40, 0, range_m=30.0, power=PowerSchedule.parse("23:00-06:00"))]
    )
    incidents = _incidents([(50, 0, 12), (50, 0, 2), (150, 0, 12), (500, 500, 12)])
    result = cov.incident_coverage(incidents)
    assert result.seen.tolist() == [True, False, False, False]
    assert result.off_network == 1
    assert result.by_category.to_dict(orient="records") == [
        {"category": "robbery", "incidents": 4, "seen": 1, "share": 0.25}
    ]


def test_blind_spots_rank_by_unseen_incidents_and_night_view() -> None:
    pack = grid_pack(nx_=3, ny=1)
    cov = CameraCoverage.build(
        pack, [cam("c", 50, 0, range_m=50.0, power=PowerSchedule.parse("22:00-06:00"))]
    )
    table = blind_spots(cov, _incidents([(150, 0, 12), (160, 0, 13), (20, 0, 2)]))
    # The east segment (unseen, 2 incidents) ranks before the west one (seen by day).
    assert table["area"].tolist() == ["E", "W"]
    assert table["unseen_incidents"].tolist() == [2, 1]
    assert table["uncovered_m"].tolist() == pytest.approx([100.0, 100.0 * 8 / 24])
    night = night_view(cov)
    assert night["powered_m"].sum() == pytest.approx(100.0)
    assert night["lost_m"].sum() == pytest.approx(100.0)
    kept = night_view(cov, backup=["c"])
    assert kept["lost_m"].sum() == pytest.approx(0.0)
