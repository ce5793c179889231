"""Posts on the bundled Manhattan pack from the real NYPD shootings file (inside the repo)."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from citywatch.city import load_pack
from citywatch.errors import ValidationError
from citywatch.incidents.canonical import write_canonical_csv
from citywatch.incidents.sources import read_source
from citywatch.plan.cli import app
from citywatch.plan.coverage import LSCP, MCLP, CoverageData
from citywatch.plan.heuristic import greedy_local_search
from citywatch.plan.posts import city_coverage_data, incident_demand, plan_posts, reach_matrix
from citywatch.routing import Router

SHOOTINGS = (
    Path(__file__).resolve().parents[2] / "data" / "manhattan" / "nypd_shootings_historic.csv"
)


@pytest.fixture(scope="module")
def pack():  # type: ignore[no-untyped-def]
    return load_pack("manhattan")


@pytest.fixture(scope="module")
def router(pack):  # type: ignore[no-untyped-def]
    return Router.from_pack(pack)


@pytest.fixture(scope="module")
def shootings() -> pd.DataFrame:
    parsed = read_source(SHOOTINGS, "nypd_shootings")
    frame = parsed.records[parsed.reasons.isna()]
    return frame[frame["lat"].between(40.68, 40.88) & frame["lon"].between(-74.03, -73.90)]


def test_incident_demand_accounts_for_every_incident(pack, shootings) -> None:  # type: ignore[no-untyped-def]
    demand = incident_demand(pack, shootings, shift=(20, 4))
    total = demand.used + demand.off_network + demand.no_location + demand.outside_shift
    assert total == len(shootings)
    assert demand.weights.sum() == demand.used
    local = pd.to_datetime(shootings["received_at"], utc=True).dt.tz_convert("America/New_York")
    in_shift = ((local.dt.hour >= 20) | (local.dt.hour < 4)).sum()
    assert demand.outside_shift == len(shootings) - in_shift


def test_reach_matrix_equals_networkx(pack, router) -> None:  # type: ignore[no-untyped-def]
    graph = router.graph("car").seconds.tocoo()
    g = nx.DiGraph()
    edges = zip(graph.row.tolist(), graph.col.tolist(), graph.data.tolist(), strict=True)
    g.add_weighted_edges_from(edges)
    rng = np.random.default_rng(3)
    sources = rng.choice(len(pack.network.lon), 5, replace=False)
    targets = rng.choice(len(pack.network.lon), 300, replace=False)
    reach = reach_matrix(router, "car", sources, targets, 150.0).toarray()
    for k, source in enumerate(sources):
        lengths = nx.single_source_dijkstra_path_length(g, int(source), cutoff=150.0)
        expected = np.array([lengths.get(int(t), np.inf) + 1.0 for t in targets])
        expected[~np.isfinite(expected)] = 0.0
        assert reach[:, k] == pytest.approx(expected)


def test_plan_posts_exact_and_consistent(pack, router, shootings) -> None:  # type: ignore[no-untyped-def]
    demand = incident_demand(pack, shootings, shift=(20, 4))
    candidates = np.arange(0, len(pack.network.lon), 6)
    plan = plan_posts(
        pack, demand, {"car": 6, "motorcycle": 2}, 90.0, router=router, candidates=candidates
    )
    assert plan.result.status == "optimal"
    assert (plan.posts["mode"] == "car").sum() == 6
    assert (plan.posts["mode"] == "motorcycle").sum() == 2
    # Recompute the covered weight from the posts with fresh shortest paths.
    covered = np.zeros(len(demand.nodes), dtype=bool)
    node_pos = pd.Index(pack.network.nodes["node_id"].astype(str))
    for post in plan.posts.itertuples(index=False):
        source = np.array([node_pos.get_loc(post.node_id)])
        covered |= reach_matrix(router, post.mode, source, demand.nodes, 90.0).toarray()[:, 0] > 0
    assert plan.result.covered_weight == pytest.approx(demand.weights[covered].sum())
    # Same instance through the generic model without unit types: 8 cars can do no better.
    car_cover = reach_matrix(router, "car", candidates, demand.nodes, 90.0) > 0
    cars_only = MCLP(
        CoverageData(
            demand_ids=np.arange(len(demand.nodes)).astype(str).astype(object),
            weights=demand.weights,
            site_ids=candidates.astype(str).astype(object),
            cover=car_cover.astype(float).tocsr(),
            fixed=np.zeros(len(candidates), dtype=bool),
        ),
        8,
    )
    exact = cars_only.solve()
    heur = greedy_local_search(cars_only)
    assert heur.objective <= exact.objective <= heur.bound + 1e-9
    assert 0 <= heur.gap < 0.1
    assert plan.current_covered_share is not None
    assert set(plan.density.columns) >= {"station", "units_per_km2_before", "units_per_km2_after"}
    assert plan.density["units_after"].sum() == (plan.posts["station"].notna()).sum()


def test_posts_cli(tmp_path: Path, shootings) -> None:  # type: ignore[no-untyped-def]
    csv = tmp_path / "incidents.csv"
    write_canonical_csv(shootings.drop_duplicates("id").head(400), csv)  # one row per victim
    out = tmp_path / "posts.geojson"
    png = tmp_path / "posts.png"
    result = CliRunner().invoke(
        app,
        [
            "posts",
            "manhattan",
            "--incidents",
            str(csv),
            "--cars",
            "4",
            "--radius",
            "60",
            "--geojson",
            str(out),
            "--png",
            str(png),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "optimal" and len(doc["posts"]) == 4
    counts = doc["incidents"]
    # the bounding box reaches into Brooklyn, Queens, the Bronx and New Jersey: those incidents
    # are not Manhattan's and are reported apart
    assert counts["outside_city"] > 0
    assert counts["used"] + counts["off_network"] + counts["outside_city"] == 400
    features = json.loads(out.read_text())["features"]
    assert sum(f["properties"]["kind"] == "post" for f in features) == 4
    assert png.stat().st_size > 10_000


def test_mclp_from_city_matches_plan_posts(pack, router, shootings) -> None:  # type: ignore[no-untyped-def]
    # The same car-only instance through MCLP(city_coverage_data(...)) and plan_posts agree.
    incidents = shootings.drop_duplicates("id").head(300)
    demand = incident_demand(pack, incidents)
    lon, lat = pack.network.lon[demand.nodes], pack.network.lat[demand.nodes]
    on_net = pd.DataFrame({"lon": lon, "lat": lat, "weight": demand.weights})
    candidates = np.arange(0, len(pack.network.lon), 5)
    data = city_coverage_data(pack, on_net, 75.0, router=router, candidates=candidates)
    model = MCLP(data, units=5)
    plan = plan_posts(pack, demand, {"car": 5}, 75.0, router=router, candidates=candidates)
    assert model.solve().objective == pytest.approx(plan.result.objective)


def test_posts_that_must_stay(pack, router, shootings) -> None:  # type: ignore[no-untyped-def]
    demand = incident_demand(pack, shootings, shift=(20, 4))
    candidates = np.arange(0, len(pack.network.lon), 9)
    n_current = len({(s.lon, s.lat) for s in pack.stations})
    plan = plan_posts(
        pack,
        demand,
        {"car": n_current + 2},
        60.0,
        router=router,
        candidates=candidates,
        keep_current=True,
    )
    current_nodes = set(plan.current["node_id"])
    assert current_nodes <= set(plan.posts["node_id"])  # every station keeps its car
    assert len(plan.posts) == n_current + 2
    # With every current post kept the plan covers at least what the current posts cover.
    assert plan.covered_share >= plan.current_covered_share - 1e-12
    with pytest.raises(ValidationError, match="must stay"):
        plan_posts(
            pack, demand, {"car": 2}, 60.0, router=router, candidates=candidates, keep_current=True
        )


def test_posts_cli_candidates_file(tmp_path: Path, shootings) -> None:  # type: ignore[no-untyped-def]
    csv = tmp_path / "incidents.csv"
    write_canonical_csv(shootings.drop_duplicates("id").head(200), csv)
    ids = load_pack("manhattan").network.nodes["node_id"].astype(str).tolist()
    (tmp_path / "cand.csv").write_text(
        "node_id,fixed\n" + "\n".join(f"{n},{int(k == 0)}" for k, n in enumerate(ids[::10]))
    )
    result = CliRunner().invoke(
        app,
        [
            "posts",
            "manhattan",
            "--incidents",
            str(csv),
            "--cars",
            "3",
            "--radius",
            "60",
            "--candidates",
            str(tmp_path / "cand.csv"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    posts = json.loads(result.stdout)["posts"]
    assert ids[0] in {p["node_id"] for p in posts}
    assert {p["node_id"] for p in posts} <= set(ids[::10])


@pytest.mark.parametrize("name", ["manhattan", "shenzhen"])
def test_models_on_bundled_packs(name: str) -> None:
    pack = load_pack(name)
    router = Router.from_pack(pack)
    rng = np.random.default_rng(5)
    nodes = rng.choice(len(pack.network.lon), 150, replace=False)
    demand_frame = pd.DataFrame(
        {
            "lon": pack.network.lon[nodes],
            "lat": pack.network.lat[nodes],
            "weight": rng.integers(1, 6, 150).astype(float),
        }
    )
    candidates = np.arange(0, len(pack.network.lon), 4)
    demand = incident_demand(pack, demand_frame)
    # plan_posts (with its merging of equivalent sites) equals the plain model's optimum.
    data = city_coverage_data(pack, demand_frame, 120.0, router=router, candidates=candidates)
    model = MCLP(data, units=6)
    plan = plan_posts(pack, demand, {"car": 6}, 120.0, router=router, candidates=candidates)
    assert plan.result.objective == pytest.approx(model.solve().objective)
    # LSCP: covers every coverable point and no selected site can be dropped.
    reachable = np.asarray(model.data.cover.sum(axis=1)).ravel() > 0
    node_ids = pack.network.nodes["node_id"].astype(str).to_numpy()[nodes]
    keep = demand_frame[np.isin(node_ids, model.data.demand_ids[reachable])]
    lscp_model = LSCP(city_coverage_data(pack, keep, 120.0, router=router, candidates=candidates))
    lscp = lscp_model.solve()
    assert lscp.covered.all()
    selected = np.nonzero(lscp.selected)[0]
    for j in selected:
        rest = np.setdiff1d(selected, [j])
        assert not (lscp_model.data.cover[:, rest].sum(axis=1) > 0).all()


def test_posts_cli_risk_surface(tmp_path: Path) -> None:
    # A weighted point demand (e.g. a risk surface) instead of incidents.
    pack = load_pack("manhattan")
    rng = np.random.default_rng(2)
    idx = rng.choice(len(pack.network.lon), 40, replace=False)
    frame = pd.DataFrame(
        {"lon": pack.network.lon[idx], "lat": pack.network.lat[idx], "weight": rng.random(40)}
    )
    frame.loc[len(frame)] = [0.0, 0.0, 5.0]  # far outside the pack: reported, not used
    frame.to_csv(tmp_path / "risk.csv", index=False)
    result = CliRunner().invoke(
        app,
        [
            "posts",
            "manhattan",
            "--demand",
            str(tmp_path / "risk.csv"),
            "--cars",
            "3",
            "--radius",
            "60",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["incidents"]["off_network"] == 1
    assert doc["total_weight"] == pytest.approx(frame["weight"].iloc[:40].sum())


def test_thinned_candidates_one_per_cell_nearest_its_centre(pack, router) -> None:  # type: ignore[no-untyped-def]
    from pyproj import Transformer

    from citywatch.plan.posts import road_node_demand, thinned_nodes

    everywhere = road_node_demand(router)
    g = router.graph("car")
    assert np.array_equal(everywhere.nodes, np.unique(np.concatenate([g.seg_a, g.seg_b])))
    assert np.all(everywhere.weights == 1.0)
    spacing = 500.0
    chosen = thinned_nodes(pack, router, spacing)
    x, y = Transformer.from_crs("EPSG:4326", pack.crs, always_xy=True).transform(
        pack.network.lon[everywhere.nodes], pack.network.lat[everywhere.nodes]
    )
    cells: dict[tuple[float, float], tuple[float, int]] = {}
    for node, px, py in zip(everywhere.nodes.tolist(), x, y, strict=True):
        cell = (np.floor(px / spacing), np.floor(py / spacing))
        off = float(np.hypot(px - (cell[0] + 0.5) * spacing, py - (cell[1] + 0.5) * spacing))
        if cell not in cells or off < cells[cell][0]:
            cells[cell] = (off, node)
    assert sorted(n for _, n in cells.values()) == chosen.tolist()
    with pytest.raises(ValidationError):
        thinned_nodes(pack, router, 0.0)


def test_posts_cli_every_node_on_a_grid(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["--every-node", "--post-spacing", "800", "--cars", "6", "--radius", "120", "--json"]
    out = runner.invoke(app, ["posts", "manhattan", *args])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["status"] == "optimal" and doc["gap"] == 0 and doc["units"] == 6
    assert doc["demand_count"] == doc["incidents"]["used"] > 3000
    assert doc["build_seconds"] > 0 and doc["seconds"] > 0
    grid = ["--pack", "manhattan", "--post-spacing", "800", "--radius", "120"]
    cov = runner.invoke(app, ["coverage", *grid, "--units", "6", "--json"])
    assert cov.exit_code == 0, cov.output
    same = json.loads(cov.stdout)
    # The same model through plan coverage: the same optimum.
    assert same["covered_weight"] == doc["covered_weight"] and same["build_seconds"] > 0
    bad = runner.invoke(app, ["coverage", "--pack", "manhattan", "--radius", "1", "--sites", "x"])
    assert bad.exit_code != 0
