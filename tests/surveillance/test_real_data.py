"""Real data: NYC DOT traffic cameras on the Manhattan pack with the real NYPD shootings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from citywatch.city import CityPack, load_pack
from citywatch.errors import CityWatchError
from citywatch.incidents.sources import read_source
from citywatch.paths import data_dir
from citywatch.surveillance.blindspots import blind_spots
from citywatch.surveillance.coverage import CameraCoverage
from citywatch.surveillance.placement import place_cameras
from citywatch.surveillance.registry import read_sensors

DATA = data_dir()
NONE_STATION = 1


@pytest.fixture(scope="module")
def nyc() -> CameraCoverage:
    pack = load_pack("manhattan")
    sensors = read_sensors(DATA / "cameras" / "nyc_dot_traffic_cameras_2020.csv").sensors
    return CameraCoverage.build(pack, sensors)


@pytest.fixture(scope="module")
def shootings(nyc: CameraCoverage) -> pd.DataFrame:
    frame = read_source(
        DATA / "manhattan" / "nypd_shootings_historic.csv", "nypd_shootings"
    ).incidents
    inside = nyc.pack.locate_many(frame["lon"], frame["lat"])["city"].notna().to_numpy()
    return frame[inside].reset_index(drop=True)


def test_nyc_dot_cameras_snap_to_manhattan(nyc: CameraCoverage) -> None:
    # The list's own borough column says 238 are in Manhattan: exactly those are placed.
    assert len(nyc.sensors) == 238
    assert len(nyc.refused) == 723 - 238
    assert all(r == "outside the manhattan city area" for _, r in nyc.refused)
    snap = np.array([s.snap_m for s in nyc.sensors])
    # The bundled network is OSM's drive network without FDR Drive: "FDR @ 120 St" is 101 m
    # from the nearest street, within the pack's 250 m limit; half are within 5.8 m.
    assert snap.max() == pytest.approx(100.58, abs=0.01)
    assert float(np.median(snap)) == pytest.approx(5.8, abs=0.05)
    stations = [s.station for s in nyc.sensors]
    # Every precinct has cameras; a few snapped points lie on riverside roads outside them.
    assert len(set(stations) - {None}) == 22
    assert stations.count(None) == NONE_STATION


def test_manhattan_street_coverage(nyc: CameraCoverage) -> None:
    hourly = nyc.coverage_by_hour()
    assert hourly.total_m == pytest.approx(908_275.9, abs=0.1)
    # No schedules or outages in the list: the same 52.34 km (5.76 %) at every hour.
    assert hourly.covered_m == pytest.approx(np.full(24, 52_337.1), abs=0.1)
    assert hourly.share[0] == pytest.approx(0.05762, abs=1e-5)
    by_station = hourly.by_area[hourly.by_area["hour"] == 0].set_index("area")["share"]
    assert by_station.idxmax() == "5"  # Chinatown / Little Italy
    assert by_station.max() == pytest.approx(0.11709, abs=1e-5)


def test_manhattan_shootings_in_view(nyc: CameraCoverage, shootings: pd.DataFrame) -> None:
    assert len(shootings) == 1944
    result = nyc.incident_coverage(shootings)
    assert (int(result.seen.sum()), result.off_network) == (59, 0)
    assert result.share == pytest.approx(59 / 1944)
    # A night power cut (no backup) leaves the shootings of those hours unseen.
    night = nyc.working(power_cut_hours=range(0, 6))
    seen_cut = nyc.incident_coverage(shootings, night).seen
    hours = pd.to_datetime(shootings["received_at"]).dt.tz_convert("America/New_York").dt.hour
    assert not seen_cut[(hours < 6).to_numpy()].any()
    assert seen_cut.sum() == result.seen[(hours >= 6).to_numpy()].sum()


def test_manhattan_blind_spots_and_placement(nyc: CameraCoverage, shootings: pd.DataFrame) -> None:
    table = blind_spots(nyc, shootings)
    assert len(table) == 7120
    top = table.iloc[0]
    # A 274 m block in the 32nd precinct (Harlem) saw 37 shootings, none in a camera's view.
    assert (top["area"], top["unseen_incidents"]) == ("32", 37)
    assert top["length_m"] == pytest.approx(274.39, abs=0.01)
    assert table["unseen_incidents"].tolist()[:5] == [37, 29, 22, 20, 18]
    # 1885 shootings were unseen; one lies within 5 m of a fully seen segment's sampled ends.
    assert table["unseen_incidents"].sum() == 1884
    result = place_cameras(nyc, 5, incidents=shootings)
    assert result.solver is not None and result.solver.status == "optimal"
    assert result.weight_before == pytest.approx(61_251.4, abs=0.1)
    assert result.weight_after == pytest.approx(84_843.1, abs=0.1)
    assert len({c["node"] for c in result.chosen}) == 5


def _baltimore() -> CityPack:
    try:
        return load_pack("baltimore")
    except CityWatchError as exc:  # the Baltimore pack comes with the City-scale work
        pytest.skip(f"no Baltimore pack: {exc.message}")


def test_baltimore_cameras_on_the_baltimore_pack() -> None:
    pack = _baltimore()
    sensors = (
        read_sensors(DATA / "cameras" / "baltimore_cctv_locations_2019.csv").sensors
        + read_sensors(DATA / "cameras" / "baltimore_bpd_citiwatch_cameras_2019.csv").sensors
    )
    cov = CameraCoverage.build(pack, sensors)
    assert (len(cov.sensors), len(cov.refused)) == (1206, 0)
    hourly = cov.coverage_by_hour()
    assert hourly.total_m == pytest.approx(3_560_375, abs=5)
    assert hourly.share == pytest.approx(np.full(24, 0.06002), abs=1e-5)
    by_district = hourly.by_area[hourly.by_area["hour"] == 12].set_index("area")["share"]
    assert by_district["CD"] == pytest.approx(0.3411, abs=1e-4)  # Central: 424 of the cameras
    assert by_district.idxmin() != "CD"
