"""Pursuit: reach rings, route simulation, hiding ranking, interception (vs brute force), CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import shapely

from citywatch.city.network import RoadNetwork
from citywatch.city.pack import Place
from citywatch.errors import ValidationError
from citywatch.pursuit.hiding import rank_places
from citywatch.pursuit.intercept import (
    InterceptProblem,
    PursuitUnit,
    brute_force,
    evaluate,
    greedy,
    naive_plan,
    solve,
    unit_etas,
)
from citywatch.pursuit.reach import Incident, reachable
from citywatch.pursuit.routes import destination_weights, node_xy, simulate_routes
from citywatch.routing import Router
from tests.helpers import run

T0 = datetime(2026, 12, 1, 21, 30, tzinfo=UTC)
STEP_DEG = 0.002  # about 170 m of latitude, 168 m of longitude at 40.75 N


def grid(n: int = 6, one_way_row: int | None = None) -> RoadNetwork:
    """An n x n street grid, two-way residential streets (one row one-way eastbound)."""
    lon = -73.99 + STEP_DEG * np.tile(np.arange(n), n)
    lat = 40.75 + STEP_DEG * np.repeat(np.arange(n), n)
    rows = []
    for r in range(n):
        for c in range(n):
            i = r * n + c
            if c + 1 < n:
                rows.append((i, i + 1))
                if r != one_way_row:
                    rows.append((i + 1, i))
            if r + 1 < n:
                rows += [(i, i + n), (i + n, i)]
    edges = pd.DataFrame(rows, columns=["u", "v"])
    a, b = edges["u"].to_numpy(), edges["v"].to_numpy()
    edges["length_m"] = np.hypot((lon[a] - lon[b]) * 84_300, (lat[a] - lat[b]) * 111_000)
    edges["highway"] = "residential"
    for column in ("service", "access", "name", "geometry"):
        edges[column] = None
    edges["maxspeed_kph"] = np.nan
    nodes = pd.DataFrame({"node_id": [str(i) for i in range(n * n)], "lon": lon, "lat": lat})
    return RoadNetwork(nodes, edges)


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.from_network(grid(), "EPSG:32618", max_snap_m=1e4)


def centre(n: int = 6) -> tuple[float, float]:
    return -73.99 + STEP_DEG * (n // 2), 40.75 + STEP_DEG * (n // 2)


def test_rings_grow_and_match_node_times(router: Router) -> None:
    inc = Incident(*centre(), T0, "bicycle")
    reach = reachable(router, inc, (1, 3))
    one, three = reach.rings
    assert one.street_km < three.street_km
    assert set(one.segments) <= set(three.segments)
    # 1 minute at 15 km/h is 250 m: one block (222 m N-S, 168.6 m E-W) then three branches
    # with what is left: 2 * (222 + 3 * 28) + 2 * (168.6 + 3 * 81.4) metres.
    ns, ew = STEP_DEG * 111_000, STEP_DEG * 84_300
    expected = 2 * (ns + 3 * (250 - ns)) + 2 * (ew + 3 * (250 - ew))
    assert one.street_km * 1000 == pytest.approx(expected, rel=1e-3)
    assert one.polygon.contains(shapely.Point(centre()))
    # At 3 minutes (750 m) every node within 750 m is reached, none beyond.
    assert np.all((reach.node_seconds <= 180) == np.isfinite(reach.node_seconds))


def test_one_way_rule_and_sighting(router: Router) -> None:
    one_way = Router.from_network(grid(one_way_row=3), "EPSG:32618", max_snap_m=1e4)
    lon, lat = centre()
    inc = Incident(lon + STEP_DEG / 2, lat, T0, "car")  # mid-block on the eastbound row
    secs = one_way.node_times_from((inc.lon, inc.lat), "car")[0]
    west, east = 3 * 6 + 3, 3 * 6 + 4
    assert secs[east] < secs[west]  # must drive on east first
    moved = inc.sighted(lon, lat + STEP_DEG, T0 + timedelta(minutes=2))
    assert moved.at == T0 + timedelta(minutes=2) and moved.lat == lat + STEP_DEG
    with pytest.raises(ValidationError):
        inc.sighted(lon, lat, T0 - timedelta(minutes=1))
    with pytest.raises(ValidationError):
        Incident(lon, lat, T0, "rocket")  # type: ignore[arg-type]


def test_routes_are_seeded_paths_timed_at_true_speed(router: Router) -> None:
    inc = Incident(*centre(), T0, "motorcycle")
    a = simulate_routes(router, inc, n_routes=200, seed=3)
    b = simulate_routes(router, inc, n_routes=200, seed=3)
    c = simulate_routes(router, inc, n_routes=200, seed=4)
    assert np.array_equal(a.nodes, b.nodes) and not np.array_equal(a.nodes, c.nodes)
    g = router.graph("motorcycle")
    true = router.node_times_from(centre(), "motorcycle")[0]
    for r in range(a.n_routes):
        path = a.nodes[a.indptr[r] : a.indptr[r + 1]]
        t = a.seconds[a.indptr[r] : a.indptr[r + 1]]
        if len(path) > 1:  # consecutive nodes are joined by a street
            assert np.all(np.asarray(g.seconds[path[:-1], path[1:]]).ravel() > 0)
        assert t[-1] >= true[path[-1]] - 1e-9  # never faster than the fastest path
        assert np.all(np.diff(t) > 0)


def test_destination_weights_follow_places_cameras_heading(router: Router) -> None:
    xy = node_xy(router)
    market = Place("m1", "market", "Market", shapely.Point(xy[0]).buffer(10))
    school = Place("s1", "school", "School", shapely.Point(xy[1]).buffer(10))
    w = destination_weights(
        xy,
        tuple(xy[14]),
        places=[market, school],
        place_xy=[market.geometry, school.geometry],
        covered_xy=xy[[35]],
        heading_deg=0.0,
    )
    assert w[0] > w[2]  # near a market (not a school), same bearing class
    assert w[35] < w[29]  # a camera sees node 35; both lie north-east
    north, south = 14 + 12, 14 - 12
    assert w[north] > w[south]
    inc = Incident(*centre(), T0, "foot")
    routes = simulate_routes(router, inc, w, n_routes=300, seed=1)
    ranking = rank_places(routes, xy, [market, school], [market.geometry, school.geometry])
    assert all(0 <= r["p_end"] <= r["p_pass"] <= 1 for r in ranking)


def _fleet(router: Router) -> list[PursuitUnit]:
    lon, lat = router.network.nodes["lon"].to_numpy(), router.network.nodes["lat"].to_numpy()
    spots = [(0, "car"), (5, "motorcycle"), (30, "car"), (35, "motorcycle"), (17, "foot")]
    return [
        PursuitUnit(f"u{i}", m, m, float(lon[n]), float(lat[n]))  # type: ignore[arg-type]
        for i, (n, m) in enumerate(spots)
    ]


@pytest.mark.parametrize(("k", "seed"), [(1, 0), (2, 1), (3, 2)])
def test_plan_equals_brute_force(router: Router, k: int, seed: int) -> None:
    inc = Incident(*centre(), T0, "bicycle")
    routes = simulate_routes(router, inc, n_routes=150, seed=seed)
    etas = unit_etas(router, _fleet(router))
    problem = InterceptProblem.build(routes, etas, delay_s=20.0, candidates=8)
    best = brute_force(problem, k)
    plan = solve(problem, k, exact=True)
    assert plan.method == "milp" and plan.intercepted == best.intercepted > 0
    assert plan.intercepted == pytest.approx(plan.bound)
    chosen, _ = greedy(problem, k)
    assert len(chosen) <= k
    lp = solve(problem, k, exact=False)
    assert lp.intercepted <= best.intercepted <= lp.bound
    # the reported count is what the plan really does on those routes
    again = evaluate(plan.units, plan.nodes, routes, etas, delay_s=20.0)
    assert again["intercepted"] == plan.intercepted
    assert len(set(plan.units.tolist())) == len(plan.units) <= k


def test_out_of_sample_and_naive(router: Router) -> None:
    inc = Incident(*centre(), T0, "bicycle")
    fleet = _fleet(router)
    routes = simulate_routes(router, inc, n_routes=400, seed=5)
    fresh = simulate_routes(router, inc, n_routes=400, seed=6)
    etas = unit_etas(router, fleet)
    plan = solve(InterceptProblem.build(routes, etas, delay_s=20.0), 3)
    oos = evaluate(plan.units, plan.nodes, fresh, etas, delay_s=20.0)
    assert oos["ci_low"] <= oos["share"] <= oos["ci_high"]
    assert abs(oos["share"] - plan.share) < 0.15
    naive = naive_plan(router, fleet, centre(), etas, 3, fresh, delay_s=20.0)
    at_origin = 3 * 6 + 3  # the incident is at this node
    assert naive["units"] == [fleet[i].id for i in np.argsort(etas[:, at_origin])[:3]]
    assert naive["ci_low"] <= naive["share"] <= naive["ci_high"]


def test_problem_covers_only_units_first_at_a_node() -> None:
    from citywatch.pursuit.routes import RouteSet

    routes = RouteSet(np.array([0, 2, 4]), np.array([0, 1, 0, 2]), np.array([0.0, 50, 0, 30]), 3, 0)
    etas = np.array([[99.0, 40.0, 99.0], [99.0, 99.0, 20.0]])
    p = InterceptProblem.build(routes, etas, delay_s=5.0, candidates=None)
    dense = sp.csc_array(p.cover).toarray()
    pairs = {(int(u), int(j)) for u, j in zip(p.pair_unit, p.pair_node, strict=True)}
    assert pairs == {(0, 1), (1, 2)}
    assert dense.sum() == 2
    assert solve(p, 2).intercepted == 2 and solve(p, 1).intercepted == 1
    # No unit ahead of the offender anywhere (an e-bike flight in Baltimore met this): no pair.
    late = InterceptProblem.build(routes, etas + 100.0, delay_s=5.0)
    assert len(late.pair_unit) == 0 and late.cover.shape == (2, 0)
    plan = solve(late, 2)
    assert (plan.method, plan.intercepted, plan.share) == ("empty", 0, 0.0)


def test_cli_plan_json_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    units = tmp_path / "units.csv"
    units.write_text(
        "id,type,lon,lat\nc1,patrol_car,-73.9870,40.7560\nm1,motorcycle,-73.9800,40.7620\n",
        encoding="utf-8",
    )
    code, out, _ = run(
        [
            "pursuit",
            "plan",
            "manhattan",
            "--at",
            "-73.9855,40.7580",
            "--time",
            "2026-12-01T21:30:00-05:00",
            "--units",
            str(units),
            "-k",
            "2",
            "--routes",
            "300",
            "--json",
        ],
        capsys,
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["method"] == "milp" and len(doc["checkpoints"]) <= 2
    assert 0 <= doc["out_of_sample"]["ci_low"] <= doc["out_of_sample"]["ci_high"] <= 1
    code, _, err = run(
        [
            "pursuit",
            "plan",
            "manhattan",
            "--at",
            "x",
            "--time",
            "2026-12-01T21:30:00-05:00",
            "--units",
            str(units),
        ],
        capsys,
    )
    assert code != 0 and "Error" in err and "Traceback" not in err
    code, _, err = run(
        [
            "pursuit",
            "reach",
            "manhattan",
            "--at",
            "-73.9855,40.7580",
            "--time",
            "2026-12-01T21:30:00",
        ],
        capsys,
    )
    assert code != 0 and "offset" in err


def test_cli_hide_with_cameras_json(capsys: pytest.CaptureFixture[str]) -> None:
    cams = Path(__file__).parents[2] / "data" / "cameras" / "nyc_dot_traffic_cameras_2020.csv"
    args = [
        "pursuit",
        "hide",
        "manhattan",
        "--at",
        "-73.9855,40.7580",
        "--time",
        "2026-12-01T21:30:00-05:00",
        "--routes",
        "200",
        "--top",
        "5",
        "--json",
    ]
    code, out, _ = run([*args, "--cameras", str(cams)], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["assumptions"]["camera_weight"] == 0.25
    assert doc["assumptions"]["person_level_inputs"] is False
    ranking = doc["ranking"]  # the pack's places first (Manhattan has 195), then the blocks
    assert ranking and all(0 <= r["p_end"] <= r["p_pass"] <= 1 for r in ranking)
    places = [r for r in ranking if r["kind"] != "block"]
    blocks = [r for r in ranking if r["kind"] == "block"]
    assert ranking == places + blocks and places and blocks
    for part in (places, blocks):
        assert [r["p_end"] for r in part] == sorted((r["p_end"] for r in part), reverse=True)


def test_camera_weighting_follows_the_local_hour() -> None:
    from citywatch.pursuit.analysis import camera_points, covered_points
    from citywatch.surveillance.coverage import CameraCoverage
    from citywatch.surveillance.sensors import Owner, PowerSchedule, Sensor, SensorKind
    from tests.surveillance.networks import grid_pack, lonlat

    pack = grid_pack(nx_=3, ny=3)  # America/New_York
    lon, lat = lonlat(100, 0)
    cam = Sensor(
        id="c",
        lon=lon,
        lat=lat,
        kind=SensorKind.FIXED_CAMERA,
        owner=Owner.POLICE,
        range_m=40.0,
        power=PowerSchedule.parse("23:00-06:00"),  # off at night
    )
    cov = CameraCoverage.build(pack, [cam])
    noon = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)  # 12:00 in New York
    night = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # 03:00 in New York (13:00 would be UTC+5)
    day_pts = covered_points(cov, pack.timezone, noon)
    assert len(day_pts) > 0 and len(covered_points(cov, pack.timezone, night)) == 0
    assert np.array_equal(camera_points(pack, [cam], noon), day_pts)
    router = Router.from_pack(pack)
    xy = node_xy(router)
    by_day = destination_weights(xy, tuple(xy[4]), covered_xy=day_pts)
    by_night = destination_weights(xy, tuple(xy[4]), covered_xy=np.zeros((0, 2)))
    seen = int(np.argmin(np.hypot(*(xy - xy[1]).T)))  # the node at the camera (100, 0)
    assert by_day[seen] == pytest.approx(0.25) and by_night[seen] == 1.0
    assert by_day[8] == by_night[8] == 1.0  # the far corner is seen at no hour


def test_segment_sets_match_the_rings(router: Router) -> None:
    from citywatch.pursuit.reach import segment_sets

    reach = reachable(router, Incident(*centre(), T0, "bicycle"), (1, 3))
    rows = segment_sets(router, reach)
    g = router.graph("bicycle")
    edges = router.network.edges
    ids = router.network.nodes["node_id"].to_numpy()
    for ring in reach.rings:
        mine = [r for r in rows if r["minutes"] == ring.minutes]
        assert len(mine) == len(ring.segments)
        assert [r["reached"] for r in mine] == pytest.approx(ring.reached.tolist(), abs=1e-4)
        for r, s in zip(mine, ring.segments.tolist(), strict=True):
            assert {r["u"], r["v"]} == {ids[g.seg_a[s]], ids[g.seg_b[s]]}
            e = edges.iloc[r["edge"]]
            assert {ids[e["u"]], ids[e["v"]]} == {r["u"], r["v"]}
            assert 0 < r["reached"] <= 1
    km = sum(r["reached"] * edges["length_m"].iloc[r["edge"]] for r in rows if r["minutes"] == 1)
    assert km / 1000 == pytest.approx(reach.rings[0].street_km, rel=5e-3)  # lengths: UTM vs table


def test_cli_reach_segment_sets_and_bad_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["pursuit", "reach", "manhattan", "--at", "-73.9855,40.7580"]
    args += ["--time", "2026-12-01T21:30:00-05:00", "--mode", "car"]
    table = tmp_path / "segments.csv"
    code, out, err = run([*args, "--segments", str(table), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    sets = {s["minutes"]: s for s in doc["segment_sets"]}
    assert sorted(sets) == [1, 3, 5, 10]
    for ring in doc["rings"]:
        s = sets[ring["minutes"]]
        assert len(s["edges"]) == len(s["reached"]) == ring["segments"] > 0
    csv_rows = pd.read_csv(table, dtype={"u": str, "v": str})
    assert list(csv_rows.columns) == ["minutes", "edge", "u", "v", "reached"]
    assert csv_rows.groupby("minutes").size().to_dict() == {
        r["minutes"]: r["segments"] for r in doc["rings"]
    }
    # Unwritable outputs are one-line errors, not tracebacks.
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    for option in ("--geojson", "--segments"):
        code, _, err = run([*args, option, str(blocker / "x")], capsys)
        assert code == 1 and err.startswith("Error: cannot write") and "Traceback" not in err


def test_cli_refuses_bad_units_and_top(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["manhattan", "--at", "-73.9855,40.7580", "--time", "2026-12-01T21:30:00-05:00"]
    cases = {
        b"\xff\xfe\x00garbage": "not a readable UTF-8 CSV",
        b"id,type,lon,lat\nc1,patrol_car,-73.98,40.75\nc1,patrol_car,-73.97,40.75\n": (
            ":3: unit 'c1' is listed twice"
        ),
        b"id,type,lon,lat\n,patrol_car,-73.98,40.75\n": ":2: empty unit id",
        b"id,type,lon,lat\nc1,patrol_car,nan,40.75\n": ":2: (nan, 40.75) is not a finite",
        b"id,type,lon,lat\nc1,patrol_car,-73.98\n": ":2: could not convert",
    }
    for n, (content, message) in enumerate(cases.items()):
        path = tmp_path / f"units{n}.csv"
        path.write_bytes(content)
        code, _, err = run(["pursuit", "plan", *base, "--units", str(path)], capsys)
        assert code == 1 and err.startswith("Error: ") and message in err, err
        assert "Traceback" not in err
    code, _, err = run(["pursuit", "hide", *base, "--top", "0"], capsys)
    assert code == 1 and "--top must be positive" in err


def test_png_to_an_unwritable_path_is_a_data_error(tmp_path: Path) -> None:
    from citywatch.errors import DataError
    from citywatch.pursuit.maps import write_pursuit_png
    from tests.surveillance.networks import grid_pack, lonlat

    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="cannot write"):
        write_pursuit_png(blocker / "map.png", grid_pack(), lonlat(100, 100))


def test_units_from_an_unusable_database_are_a_data_error(tmp_path: Path) -> None:
    from citywatch.errors import DataError
    from citywatch.pursuit.units import units_from_db

    with pytest.raises(DataError, match="cannot read the units of sqlite"):
        units_from_db(f"sqlite:///{tmp_path / 'empty.db'}")  # never migrated: no units table
    with pytest.raises(DataError, match="cannot read the units of"):
        units_from_db(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")


def test_beyond_the_milp_size_greedy_reports_its_lp_gap(
    router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    import citywatch.pursuit.intercept as intercept

    inc = Incident(*centre(), T0, "bicycle")
    routes = simulate_routes(router, inc, n_routes=150, seed=2)
    etas = unit_etas(router, _fleet(router))
    problem = InterceptProblem.build(routes, etas, delay_s=20.0, candidates=8)
    exact = solve(problem, 3)
    assert exact.method == "milp" and exact.gap == 0
    monkeypatch.setattr(intercept, "MILP_MAX_NONZEROS", problem.cover.nnz - 1)
    plan = solve(problem, 3)
    assert plan.method == "greedy"
    assert plan.intercepted <= exact.intercepted <= plan.bound
    assert plan.gap == pytest.approx((plan.bound - plan.intercepted) / plan.bound)


# ---------------------------------------------------------------- sighting hand-off (CLI)
INCIDENT_AT = "2026-12-01T21:30:00-05:00"


def _store_sighting(tmp_path: Path, seen_at: datetime) -> tuple[str, int]:
    """A migrated database holding one stored sighting (a plate reader's hit) of manhattan."""
    from sqlalchemy.orm import Session

    from citywatch.store.db import make_engine, upgrade
    from citywatch.store.sightings_models import SightingRow

    url = f"sqlite:///{tmp_path / 'service.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        row = SightingRow(
            pack="manhattan", sensor_id="cam-1", kind="plate", value_key="0" * 64, value=None,
            confidence=None, seen_at=seen_at, received_at=seen_at, lon=-73.9772, lat=40.7527,
            bureau=None, station="14", hit=True, entry_id=None, alert_id=None, source="alpr-gw",
        )  # fmt: skip
        s.add(row)
        s.flush()
        sid = int(row.id)
    engine.dispose()
    return url, sid


def test_sighted_takes_the_sightings_heading_and_refuses_earlier_times() -> None:
    at = datetime.fromisoformat(INCIDENT_AT)
    inc = Incident(-73.9855, 40.7580, at, "motorcycle", heading_deg=10.0)
    later = inc.sighted(-73.9772, 40.7527, at + timedelta(minutes=2), 270.0)
    assert (later.lon, later.lat, later.at, later.heading_deg) == (
        -73.9772, 40.7527, at + timedelta(minutes=2), 270.0,
    )  # fmt: skip
    assert inc.sighted(-73.9772, 40.7527, at).heading_deg is None
    with pytest.raises(ValidationError, match="before the incident"):
        inc.sighted(-73.9772, 40.7527, at - timedelta(seconds=1))
    with pytest.raises(ValidationError, match="timezone"):
        inc.sighted(-73.9772, 40.7527, at.replace(tzinfo=None))


def test_cli_reach_from_a_stored_sighting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen_at = datetime.fromisoformat(INCIDENT_AT) + timedelta(minutes=3)
    url, sid = _store_sighting(tmp_path, seen_at)
    base = ["pursuit", "reach", "manhattan", "--at", "-73.9855,40.7580", "--time", INCIDENT_AT]
    code, out, err = run(
        [*base, "--sighting-id", str(sid), "--sighting-heading", "90", "--db", url, "--json"],
        capsys,
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["origin"] == [-73.9772, 40.7527] and doc["heading_deg"] == 90
    assert datetime.fromisoformat(doc["at"]) == seen_at
    # The same sighting entered by hand gives the same rings.
    by_hand = f"-73.9772,40.7527,{seen_at.isoformat()}"
    code, out2, _ = run(
        [*base, "--sighting", by_hand, "--sighting-heading", "90", "--json"], capsys
    )
    assert code == 0 and json.loads(out2)["rings"] == doc["rings"]
    # Usage errors exit 2, data errors 1, each one line.
    for extra, exit_code, message in [
        (["--sighting-id", str(sid), "--sighting", by_hand], 2, "one of --sighting or"),
        (["--sighting-id", str(sid), "--heading", "45"], 2, "--sighting-heading"),
        (["--sighting-heading", "45"], 2, "needs --sighting"),
        (["--sighting-id", "999"], 1, "no sighting 999 in pack manhattan"),
    ]:
        code, _, err = run([*base, *extra, "--db", url], capsys)
        assert code == exit_code and message in err and "Traceback" not in err, (extra, err)
    early = datetime.fromisoformat(INCIDENT_AT) - timedelta(minutes=1)
    other = tmp_path / "early"
    other.mkdir()
    url2, sid2 = _store_sighting(other, early)
    code, _, err = run([*base, "--sighting-id", str(sid2), "--db", url2], capsys)
    assert code == 1 and "before the incident" in err
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    code, _, err = run([*base, "--sighting-id", "1", "--db", empty], capsys)
    assert code == 1 and "cannot read the sightings of sqlite" in err


def test_cli_plan_from_a_stored_sighting_with_units_from_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen_at = datetime.fromisoformat(INCIDENT_AT) + timedelta(minutes=1)
    url, sid = _store_sighting(tmp_path, seen_at)
    units = tmp_path / "units.csv"
    units.write_text("id,type,lon,lat\nc1,patrol_car,-73.9870,40.7560\n", encoding="utf-8")
    base = ["pursuit", "plan", "manhattan", "--at", "-73.9855,40.7580", "--time", INCIDENT_AT]
    base += ["--units", str(units), "--db", url, "-k", "1", "--routes", "100"]
    code, out, err = run([*base, "--sighting-id", str(sid), "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["units_available"] == 1
    code, _, err = run(base, capsys)  # --units and --db without a stored sighting: ambiguous
    assert code == 2 and "exactly one of --units FILE or --db URL" in err
