from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers import MANHATTAN_PRECINCTS

from citywatch.city import load_pack
from citywatch.city.bundled import build_bundled
from citywatch.city.pack import area_km2
from citywatch.errors import NotFoundError


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from citywatch.cli import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_manhattan_info_json() -> None:
    out = run_cli("city", "info", "manhattan", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["nodes"] == 4091
    assert info["directed_edges"] == 9452
    assert info["timezone"] == "America/New_York"
    stations = {j["id"] for j in info["jurisdictions"]["station"]}
    assert stations == set(MANHATTAN_PRECINCTS)
    assert {j["id"] for j in info["jurisdictions"]["bureau"]} == {"PBMS", "PBMN"}
    # Manhattan's land area is about 59 km² (US Census); the precincts cover it.
    assert info["jurisdictions"]["city"][0]["area_km2"] == pytest.approx(58.0, abs=1.5)
    assert len(info["stations"]) == 21 and not info["synthetic_stations"]


@pytest.mark.parametrize(
    ("lon", "lat", "station", "zone"),
    [
        (-74.0060, 40.7128, "1", "1A"),
        (-73.9665, 40.7812, "22", "22D"),
        (-73.9442, 40.8080, "28", "28D"),
    ],
)
def test_locate(lon: float, lat: float, station: str, zone: str) -> None:
    pack = load_pack("manhattan")
    where = pack.locate(lon, lat)
    assert where["station"] == station and where["zone"] == zone and where["city"] == "manhattan"
    assert pack.jurisdiction(zone).parent == station
    assert not pack.contains(-74.03, 40.75)  # the Hudson


def test_hierarchy_is_nested_and_covers() -> None:
    pack = load_pack("manhattan")
    for zone in pack.level("zone"):
        parent = pack.jurisdiction(zone.parent or "")
        assert parent.level == "station"
        assert zone.geometry.difference(parent.geometry).area < 1e-9
    total = sum(area_km2(j.geometry) for j in pack.level("station"))
    assert total == pytest.approx(pack.area_km2("manhattan"), rel=1e-3)


def test_shenzhen_synthetic_stations_are_labelled_and_reproducible(tmp_path: Path) -> None:
    pack = load_pack("shenzhen")
    assert pack.synthetic_stations and all(s.synthetic for s in pack.stations)
    assert all("synthetic" in s.name and "模拟" in s.name_zh for s in pack.stations)
    assert pack.info()["nodes"] == 1751 and pack.timezone == "Asia/Shanghai"
    again = build_bundled("shenzhen", tmp_path / "sz")
    stations = json.loads((again / "stations.geojson").read_text())["features"]
    assert [f["geometry"]["coordinates"] for f in stations] == [
        [s.lon, s.lat] for s in pack.stations
    ]
    for station in pack.stations:  # each station sits inside its own area
        assert pack.locate(station.lon, station.lat)["station"] == station.jurisdiction


def test_unknown_pack_is_a_clean_error() -> None:
    with pytest.raises(NotFoundError):
        load_pack("atlantis")
    out = run_cli("city", "info", "atlantis")
    assert out.returncode == 1
    assert out.stderr.startswith("Error: no city pack 'atlantis'")
    assert "Traceback" not in out.stderr


def test_bundled_pack_is_rebuilt_when_its_spec_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from citywatch.city import bundled

    spec = tmp_path / "packs" / "shenzhen.toml"
    spec.parent.mkdir()
    original = bundled.BUNDLED["shenzhen"]
    spec.write_text(original.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setitem(bundled.BUNDLED, "shenzhen", spec)
    monkeypatch.setenv("CITYWATCH_PACKS", str(tmp_path / "built"))
    # The copied spec refers to data files relative to its folder's parent: link them.
    for source in original.parent.parent.iterdir():
        if source.name != "packs":
            (tmp_path / source.name).symlink_to(source)
    first = load_pack("shenzhen")
    stamp = (tmp_path / "built" / "shenzhen" / "city.toml").stat().st_mtime_ns
    assert load_pack("shenzhen") is first  # same spec: not rebuilt, read once
    assert (tmp_path / "built" / "shenzhen" / "city.toml").stat().st_mtime_ns == stamp
    spec.write_text(
        spec.read_text(encoding="utf-8").replace('name_zh = "深圳', 'name_zh = "深圳市', 1),
        encoding="utf-8",
    )
    rebuilt = load_pack("shenzhen")
    assert rebuilt.meta["name_zh"].startswith("深圳市")
