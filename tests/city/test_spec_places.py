"""Build-spec validation (one-line errors), places from OSM tags and files, the --osm build."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import shapely

from citywatch.city import load_pack
from citywatch.city.build import build_pack
from citywatch.city.osm import read_osm_places, read_osm_stations
from citywatch.city.pack import Place
from citywatch.city.places import OSM_PLACE_TAGS, import_places, read_place_file
from citywatch.city.spec import utm_crs, validate_spec
from citywatch.cli import main
from citywatch.errors import DataError
from citywatch.paths import data_dir

DATA = data_dir()
MANHATTAN_SPEC = DATA / "packs" / "manhattan.toml"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The console script's ``main()`` in this process, as a finished process: exit code and the
    captured output (a subprocess would cost an interpreter start and every import per call)."""
    out, err = io.StringIO(), io.StringIO()
    code: int = 0
    argv = sys.argv
    sys.argv = ["citywatch", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def _spec() -> dict:
    return tomllib.loads(MANHATTAN_SPEC.read_text(encoding="utf-8"))


def _write(tmp_path: Path, text: str) -> Path:
    # The spec lives in tmp/packs/ so that relative paths resolve under tmp/ (as under data/).
    (tmp_path / "packs").mkdir(exist_ok=True)
    path = tmp_path / "packs" / "x.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_specs_are_valid() -> None:
    for name in ("manhattan", "shenzhen", "shenzhen_futian", "heidelberg", "baltimore"):
        validate_spec(tomllib.loads((DATA / "packs" / f"{name}.toml").read_text("utf-8")))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("city"), "the build spec lacks the required key 'city'"),
        (lambda s: s["city"].pop("timezone"), "[city] lacks the required key 'timezone'"),
        (
            lambda s: s["city"].update(timezone="Mars/Olympus"),
            "[city] timezone 'Mars/Olympus' is not an IANA time zone",
        ),
        (lambda s: s["city"].update(crs="EPSG:4326"), "must be a projected (metric) CRS"),
        (lambda s: s["city"].update(timezon="UTC"), "unknown key 'timezon' in [city]"),
        (lambda s: s.update(stationz={}), "unknown key 'stationz' in the build spec"),
        (lambda s: s["city"].update(max_snap_m=True), "[city] max_snap_m must be a number"),
        (lambda s: s["network"].pop("edges"), "[network] needs exactly one of graphml"),
        (
            lambda s: s["jurisdictions"][0].pop("id"),
            "[[jurisdictions]] 1 lacks the required key 'id'",
        ),
        (lambda s: s["stations"].update(idd="x"), "unknown key 'idd' in [stations]"),
    ],
)
def test_invalid_specs_fail_up_front_with_the_key_named(edit, message: str) -> None:
    spec = _spec()
    edit(spec)
    with pytest.raises(DataError) as err:
        validate_spec(spec)
    assert message in err.value.message
    assert "\n" not in err.value.message


def test_cli_missing_city_is_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '[network]\nosm = "x.pbf"\n')
    out = run_cli("city", "build", str(path), "--out", str(tmp_path / "p"))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines() + out.stdout.strip().splitlines()
    assert lines == [f"Error: build spec {path}: the build spec lacks the required key 'city'"]
    assert not (tmp_path / "p").exists()  # nothing was built


def test_cli_invalid_timezone_refused_before_building(tmp_path: Path) -> None:
    text = MANHATTAN_SPEC.read_text("utf-8").replace("America/New_York", "America/Nowhere")
    path = _write(tmp_path, text)
    out = run_cli("city", "build", str(path), "--out", str(tmp_path / "p"))
    assert out.returncode == 1
    assert "timezone 'America/Nowhere' is not an IANA time zone" in out.stderr + out.stdout
    assert "Traceback" not in out.stderr


def test_swapped_station_coordinates_get_a_hint(tmp_path: Path) -> None:
    # Manhattan's station houses with lon and lat swapped: refused with the hint, not a
    # 15,000 km snap error on first use.
    houses = json.loads((DATA / "manhattan" / "nypd_precinct_house.geojson").read_text("utf-8"))
    for f in houses["features"]:
        x, y = f["geometry"]["coordinates"][:2]
        f["geometry"]["coordinates"] = [y, x]
    (tmp_path / "manhattan").mkdir()
    (tmp_path / "manhattan" / "nypd_precinct_house.geojson").write_text(json.dumps(houses))
    for name in (
        "manhattan_points.csv",
        "manhattan_edges.csv",
        "nypd_precinct.geojson",
        "nypd_sector.geojson",
    ):
        (tmp_path / "manhattan" / name).symlink_to(DATA / "manhattan" / name)
    spec = _write(tmp_path, MANHATTAN_SPEC.read_text("utf-8"))
    with pytest.raises(
        DataError,
        match=r"lies [\d,]+ km outside the road network: longitude and "
        r"latitude look swapped",
    ):
        build_pack(spec, tmp_path / "out")


def test_zero_stations_warns(tmp_path: Path) -> None:
    text = MANHATTAN_SPEC.read_text("utf-8")
    text = text[: text.index("[stations]")]
    (tmp_path / "manhattan").symlink_to(DATA / "manhattan")
    path = _write(tmp_path, text)
    out = run_cli("city", "build", str(path), "--out", str(tmp_path / "p"), "--json")
    assert out.returncode == 0, out.stderr
    assert "Warning: pack manhattan has no police station" in " ".join(out.stderr.split())
    assert json.loads(out.stdout)["stations"] == []


def test_utm_zone() -> None:
    assert utm_crs(8.69, 49.41) == "EPSG:32632"  # Heidelberg
    assert utm_crs(-76.61, 39.29) == "EPSG:32618"  # Baltimore
    assert utm_crs(151.2, -33.9) == "EPSG:32756"  # Sydney


def test_osm_places_follow_the_mapping() -> None:
    places = read_osm_places(DATA / "osm" / "baltimore_downtown_valhalla_test.osm.pbf")
    kinds = {k for _, _, k in OSM_PLACE_TAGS}
    assert {p.kind for p in places} <= kinds
    counts = {k: sum(p.kind == k for p in places) for k in kinds}
    # Counted independently with pyosmium over the same file (nodes + areas with the tags).
    assert counts == {"school": 74, "park": 60, "market": 53, "hospital": 10, "transit": 2}
    assert len({p.id for p in places}) == len(places)
    areas = [p for p in places if p.id.startswith("osm:w")]
    assert areas and all(p.geometry.geom_type == "MultiPolygon" for p in areas)


def test_osm_police_stations() -> None:
    stations = read_osm_stations(DATA / "osm" / "heidelberg_region_ors_test.osm.pbf")
    assert [s.name for s in stations] == ["Polizeirevier Neckargemünd"]
    assert stations[0].lon == pytest.approx(8.7846, abs=1e-3)
    assert stations[0].lat == pytest.approx(49.3931, abs=1e-3)


def test_places_from_csv_and_geojson(tmp_path: Path) -> None:
    csv = tmp_path / "villages.csv"
    csv.write_text(
        "id,name,lon,lat\nuv1,岗厦村,114.0656,22.5369\nuv2,皇岗村,114.0623,22.5263\n",
        encoding="utf-8",
    )
    places = read_place_file(csv, kind="urban_village")
    assert [(p.id, p.kind, p.name) for p in places] == [
        ("uv1", "urban_village", "岗厦村"),
        ("uv2", "urban_village", "皇岗村"),
    ]
    # GCJ-02 input is converted to WGS-84 (a few hundred metres in Shenzhen).
    gcj = read_place_file(csv, kind="urban_village", system="gcj02")
    shift = shapely.distance(gcj[0].geometry, places[0].geometry)
    assert 0.002 < shift < 0.01
    with pytest.raises(DataError, match="place kind 'village' is not one of"):
        read_place_file(csv, kind="village")
    with pytest.raises(DataError, match="place kind '' is not one of"):
        read_place_file(csv)


def test_places_import_cli(tmp_path: Path) -> None:
    pack = tmp_path / "sz"
    assert run_cli("city", "build", "shenzhen", "--out", str(pack)).returncode == 0
    geo = tmp_path / "v.geojson"
    square = shapely.box(114.06, 22.53, 114.07, 22.54)
    geo.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"id": "gx", "name": "岗厦村", "kind": "urban_village"},
                        "geometry": shapely.geometry.mapping(square),
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    out = run_cli("city", "places", "import", str(pack), str(geo), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"pack": str(pack), "imported": 1, "places": 1}
    again = run_cli("city", "places", "import", str(pack), str(geo), "--json")
    assert json.loads(again.stdout)["places"] == 1  # same id: replaced, not doubled
    info = json.loads(run_cli("city", "info", str(pack), "--json").stdout)
    assert info["place_kinds"] == {"urban_village": 1}
    assert import_places(pack, read_place_file(geo)) == 1


def test_build_from_osm_in_one_command(tmp_path: Path) -> None:
    out = run_cli(
        "city",
        "build",
        "--osm",
        str(DATA / "osm" / "baltimore_downtown_valhalla_test.osm.pbf"),
        "--name",
        "bdt",
        "--timezone",
        "America/New_York",
        "--out",
        str(tmp_path / "bdt"),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["crs"] == "EPSG:32618" and info["timezone"] == "America/New_York"
    assert len(info["stations"]) == 5  # amenity=police in the extract
    assert info["places"] == 199
    assert info["peak_memory_mib"] > 0 and info["build_cpu_s"] > 0
    pack = load_pack(tmp_path / "bdt")
    edges = pack.network.edges
    assert edges["name"].notna().any() and edges["maxspeed_kph"].notna().any()
    assert set(edges["highway"]) >= {"residential", "primary", "service", "footway"}


def test_osm_build_needs_name_and_timezone(tmp_path: Path) -> None:
    osm = str(DATA / "osm" / "its-example.osm.pbf")
    out = run_cli("city", "build", "--osm", osm, "--name", "leeds")
    assert out.returncode != 0 and "--osm needs --name and --timezone" in out.stderr + out.stdout
    out = run_cli("city", "build", "--osm", osm, "--name", "leeds", "--timezone", "Leeds")
    assert "--timezone 'Leeds' is not an IANA time zone" in out.stderr + out.stdout


def test_baltimore_pack() -> None:
    pack = load_pack("baltimore")
    assert len(pack.network.nodes) == 32020
    assert len(pack.network.edges) == 2 * 48482  # two-way: no one-way data in the source
    districts = {j.id for j in pack.level("station")}
    assert districts == {"CD", "SED", "ED", "NED", "ND", "NWD", "WD", "SWD", "SD"}
    real = {s.jurisdiction for s in pack.stations if not s.synthetic}
    assert real == {"CD", "SED"}
    assert sum(s.synthetic for s in pack.stations) == 7
    for s in pack.stations:
        assert pack.locate(s.lon, s.lat)["station"] == s.jurisdiction
    hw = pack.network.edges["highway"].value_counts()
    assert hw["service"] == 2 * 12083  # the alleys
    assert hw["motorway"] > 0 and hw["primary"] > 0


def test_places_import_refuses_bad_geometry_and_far_places(tmp_path: Path) -> None:
    pack = tmp_path / "sz"
    assert run_cli("city", "build", "shenzhen", "--out", str(pack)).returncode == 0
    bad = {
        "no-geometry": {"type": "Feature", "properties": {"id": "a", "kind": "market"}},
        "null-geometry": {"type": "Feature", "properties": {"id": "a"}, "geometry": None},
        "unknown-type": {"type": "Feature", "geometry": {"type": "Poly", "coordinates": []}},
        "bad-coordinates": {"type": "Feature", "geometry": {"type": "Point", "coordinates": "x"}},
        "not-a-feature": "x",
    }
    for name, feature in bad.items():
        path = tmp_path / f"{name}.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
        out = run_cli("city", "places", "import", str(pack), str(path), "--kind", "market")
        assert out.returncode == 1, (name, out.stdout)
        assert out.stderr.startswith(f"Error: {path} feature 1"), (name, out.stderr)
        assert "Traceback" not in out.stderr
    # Far outside the pack's network (the build's 5 km rule): refused, nothing written.
    far = tmp_path / "far.csv"
    far.write_text("id,name,lon,lat\nbj,Beijing,116.40,39.90\n", encoding="utf-8")
    out = run_cli("city", "places", "import", str(pack), str(far), "--kind", "market")
    assert out.returncode == 1 and "km outside the road network" in out.stderr, out.stderr
    assert not (pack / "places.geojson").exists()
    # Latitude first where that is a valid point: the hint says so.
    lon, lat = -73.9855, 40.7580
    mh = Path(shutil.copytree(load_pack("manhattan").path, tmp_path / "mh"))
    swapped = [Place("x", "market", "", shapely.Point(lat, lon))]
    with pytest.raises(DataError, match="look swapped"):
        import_places(mh, swapped)
    held = len(load_pack("manhattan").places)  # the pack's own places (195 of NYC Open Data)
    assert import_places(mh, [Place("x", "market", "", shapely.Point(lon, lat))]) == held + 1
