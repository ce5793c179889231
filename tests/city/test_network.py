from __future__ import annotations

import math
from pathlib import Path

import pytest

from citywatch.city.network import parse_maxspeed, read_edge_csv, read_graphml, read_osm
from citywatch.errors import DataError

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.mark.parametrize(
    ("raw", "kph"),
    [
        ("50", 50.0),
        ("30 mph", 48.28032),
        ("['50', '60']", 50.0),
        ("40;60", 40.0),
        ("none", math.nan),
        (None, math.nan),
        (35, 35.0),
    ],
)
def test_parse_maxspeed(raw: object, kph: float) -> None:
    got = parse_maxspeed(raw)
    assert (math.isnan(got) and math.isnan(kph)) or got == pytest.approx(kph)


def test_graphml_shenzhen_counts_and_tags() -> None:
    net = read_graphml(DATA / "shenzhen/transbigdata_G_shenzhen.graphml")
    assert len(net.nodes) == 1751
    assert len(net.edges) == 4009
    assert net.edges["length_m"].sum() / 1000 == pytest.approx(337, abs=1)  # SOURCES.md: ~337 km
    assert {"footway", "living_street", "primary"} <= set(net.edges["highway"])
    assert net.edges["name"].str.contains("路", na=False).any()


@pytest.mark.parametrize(
    ("name", "nodes", "edges"),
    [("osmnx_West-Oakland.osm.bz2", 213, 396), ("its-example.osm.pbf", 593, 1239)],
)
def test_osm_files(name: str, nodes: int, edges: int) -> None:
    net = read_osm(DATA / "osm" / name)
    assert (len(net.nodes), len(net.edges)) == (nodes, edges)
    # Every way becomes consecutive-node edges; one-way ways only one direction.
    assert (net.edges["length_m"] > 0).all()


def test_manhattan_csv() -> None:
    net = read_edge_csv(
        DATA / "manhattan/manhattan_points.csv",
        DATA / "manhattan/manhattan_edges.csv",
        edge_columns=("u", "v"),
        header=False,
        names={"nodes": ["node_id", "lat", "lon"], "edges": ["edge_id", "u", "v"]},
    )
    assert (len(net.nodes), len(net.edges)) == (4091, 9452)
    assert net.edges["length_m"].median() == pytest.approx(84, abs=3)  # SOURCES.md: median 84 m


def test_bad_files_raise_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.graphml"
    bad.write_text("not xml")
    with pytest.raises(DataError):
        read_graphml(bad)
    nodes = tmp_path / "n.csv"
    edges = tmp_path / "e.csv"
    nodes.write_text("node_id,lon,lat\n1,0,0\n2,0,0.001\n")
    edges.write_text("u,v\n1,3\n")
    with pytest.raises(DataError, match="not in"):
        read_edge_csv(nodes, edges)
