"""The road network of a city pack and its readers (OSMnx GraphML, OSM files, node/edge CSVs).

A :class:`RoadNetwork` holds directed edges as they are travelled by vehicles: a two-way street is
two edges, a one-way street one.  Edge attributes are the OSM tags that routing needs (``highway``,
``maxspeed``, ``service``, ``access``, ``name``); travel modes and speeds are derived from them in
:mod:`citywatch.routing.speeds`.  Nothing is simplified on reading: node and edge counts are those
of the source.
"""

from __future__ import annotations

import ast
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pyproj import Transformer

from citywatch.errors import DataError

__all__ = [
    "EDGE_COLUMNS",
    "NEAR_NETWORK_M",
    "RoadNetwork",
    "check_near_network",
    "haversine_m",
    "parse_maxspeed",
    "read_edge_csv",
    "read_graphml",
    "read_osm",
]

#: Columns of :attr:`RoadNetwork.edges`.
EDGE_COLUMNS = (
    "u",
    "v",
    "length_m",
    "highway",
    "maxspeed_kph",
    "service",
    "access",
    "name",
    "geometry",
)

_EARTH_RADIUS_M = 6_371_008.8  # IUGG mean Earth radius


def haversine_m(
    lon1: npt.ArrayLike, lat1: npt.ArrayLike, lon2: npt.ArrayLike, lat2: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Great-circle distance in metres between WGS-84 points (haversine on the mean sphere)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * _EARTH_RADIUS_M * np.arcsin(np.sqrt(a)), dtype=np.float64)


_MPH = 1.609344


def parse_maxspeed(value: object) -> float:
    """Parse an OSM ``maxspeed`` value into km/h (NaN when absent or not numeric).

    Handles ``"50"``, ``"30 mph"``, lists such as ``"['50', '60']"`` or ``"40;60"`` (the lowest
    limit is taken: a patrol must respect the slowest stretch); ``"signals"``, ``"none"`` give NaN.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text.startswith("["):
        try:
            parts = [str(p) for p in ast.literal_eval(text)]
        except (ValueError, SyntaxError):
            parts = [text]
    else:
        parts = text.replace("|", ";").split(";")
    speeds = []
    for part in parts:
        token = part.strip().lower()
        factor = _MPH if "mph" in token else 1.0
        number = token.replace("mph", "").replace("km/h", "").replace("kph", "").strip()
        try:
            speeds.append(float(number) * factor)
        except ValueError:
            continue
    return min(speeds) if speeds else math.nan


def _first_tag(value: object) -> str | None:
    # OSMnx writes merged tags of simplified edges as a Python list literal; keep the first.
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    if text.startswith("["):
        try:
            items = ast.literal_eval(text)
            return str(items[0]) if items else None
        except (ValueError, SyntaxError):
            return text
    return text


@dataclass
class RoadNetwork:
    """Nodes and directed edges of a road network in WGS-84.

    Attributes
    ----------
    nodes : pandas.DataFrame
        ``node_id`` (str, the source's id), ``lon``, ``lat``; row position is the node index.
    edges : pandas.DataFrame
        Columns :data:`EDGE_COLUMNS`; ``u``/``v`` are node positions, ``length_m`` metres,
        ``maxspeed_kph`` NaN when untagged, ``geometry`` WKT or None for a straight segment.
    """

    nodes: pd.DataFrame
    edges: pd.DataFrame

    def __post_init__(self) -> None:
        n = len(self.nodes)
        if n == 0 or len(self.edges) == 0:
            raise DataError("the road network has no nodes or no edges")
        u = self.edges["u"].to_numpy()
        v = self.edges["v"].to_numpy()
        if u.min() < 0 or v.min() < 0 or u.max() >= n or v.max() >= n:
            raise DataError("an edge refers to a node that is not in the network")

    @property
    def lon(self) -> npt.NDArray[np.float64]:
        """Node longitudes."""
        return self.nodes["lon"].to_numpy(dtype=np.float64)

    @property
    def lat(self) -> npt.NDArray[np.float64]:
        """Node latitudes."""
        return self.nodes["lat"].to_numpy(dtype=np.float64)

    @property
    def total_km(self) -> float:
        """Kilometres of road, counting each street once whatever its number of directions."""
        e = self.edges
        key = np.minimum(e["u"], e["v"]).astype(np.int64) * len(self.nodes) + np.maximum(
            e["u"], e["v"]
        )
        return float(e.groupby(key)["length_m"].max().sum() / 1000.0)

    def edge_geometries(self, crs: str) -> npt.NDArray[np.object_]:
        """Edge lines projected to the metric ``crs``: the source geometry or a straight segment."""
        to_metric = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        x, y = to_metric.transform(self.lon, self.lat)
        u = self.edges["u"].to_numpy()
        v = self.edges["v"].to_numpy()
        coords = np.stack([np.stack([x[u], y[u]], axis=1), np.stack([x[v], y[v]], axis=1)], axis=1)
        lines = np.asarray(shapely.linestrings(coords), dtype=object)
        wkt = self.edges["geometry"]
        has_geom = wkt.notna().to_numpy()
        if has_geom.any():
            curved = shapely.from_wkt(wkt[has_geom].to_numpy())
            lines[has_geom] = shapely.transform(
                curved, lambda xy: np.column_stack(to_metric.transform(xy[:, 0], xy[:, 1]))
            )
        return np.asarray(lines, dtype=object)

    def to_parquet(self, folder: Path) -> None:
        """Write ``nodes.parquet`` and ``edges.parquet`` into ``folder``."""
        self.nodes.to_parquet(folder / "nodes.parquet", index=False)
        self.edges.to_parquet(folder / "edges.parquet", index=False)

    @classmethod
    def from_parquet(cls, folder: Path) -> RoadNetwork:
        """Read a network written by :meth:`to_parquet`."""
        try:
            nodes = pd.read_parquet(folder / "nodes.parquet")
            edges = pd.read_parquet(folder / "edges.parquet")
        except FileNotFoundError as exc:
            raise DataError(f"city pack {folder} has no road network ({exc.filename})") from exc
        return cls(nodes=nodes, edges=edges)


def _assemble(
    node_ids: list[str], lon: list[float], lat: list[float], rows: list[dict[str, object]]
) -> RoadNetwork:
    nodes = pd.DataFrame({"node_id": node_ids, "lon": lon, "lat": lat})
    edges = pd.DataFrame(rows, columns=list(EDGE_COLUMNS))
    edges["u"] = edges["u"].astype(np.int32)
    edges["v"] = edges["v"].astype(np.int32)
    edges["length_m"] = edges["length_m"].astype(np.float64)
    edges["maxspeed_kph"] = edges["maxspeed_kph"].astype(np.float64)
    return RoadNetwork(nodes=nodes, edges=edges)


def read_graphml(path: Path) -> RoadNetwork:
    """Read an OSMnx-style GraphML file (a directed multigraph in EPSG:4326).

    Parameters
    ----------
    path : Path
        The ``.graphml`` file. Node attributes ``x`` (lon) and ``y`` (lat) are required; edge
        ``length`` (metres) is used when present, otherwise computed along the geometry.
    """
    try:
        graph = nx.read_graphml(path, force_multigraph=True)
    except (OSError, nx.NetworkXError, SyntaxError) as exc:
        raise DataError(f"cannot read GraphML {path}: {exc}") from exc
    if not graph.is_directed():
        graph = graph.to_directed()
    index: dict[str, int] = {}
    ids: list[str] = []
    lons: list[float] = []
    lats: list[float] = []
    for node, data in graph.nodes(data=True):
        try:
            lons.append(float(data["x"]))
            lats.append(float(data["y"]))
        except KeyError as exc:
            raise DataError(f"GraphML node {node} has no x/y coordinate") from exc
        index[node] = len(ids)
        ids.append(str(node))
    rows: list[dict[str, object]] = []
    for u, v, data in graph.edges(data=True):
        geometry = data.get("geometry")
        length = data.get("length")
        if length is None:
            if geometry is not None:
                xy = np.asarray(shapely.from_wkt(geometry).coords)
                length = float(haversine_m(xy[:-1, 0], xy[:-1, 1], xy[1:, 0], xy[1:, 1]).sum())
            else:
                a, b = index[u], index[v]
                length = float(haversine_m(lons[a], lats[a], lons[b], lats[b]))
        rows.append(
            {
                "u": index[u],
                "v": index[v],
                "length_m": float(length),
                "highway": _first_tag(data.get("highway")),
                "maxspeed_kph": parse_maxspeed(data.get("maxspeed")),
                "service": _first_tag(data.get("service")),
                "access": _first_tag(data.get("access")),
                "name": _first_tag(data.get("name")),
                "geometry": geometry,
            }
        )
    return _assemble(ids, lons, lats, rows)


def read_edge_csv(
    nodes_csv: Path,
    edges_csv: Path,
    *,
    node_columns: tuple[str, str, str] = ("node_id", "lon", "lat"),
    edge_columns: tuple[str, str] = ("u", "v"),
    header: bool = True,
    names: dict[str, list[str]] | None = None,
    undirected: bool = False,
    tag_rules: Sequence[Mapping[str, Any]] = (),
) -> RoadNetwork:
    """Read a network from a node CSV and a directed edge CSV.

    Edge lengths come from a ``length_m`` column when present, else from the node coordinates
    (haversine).  Optional edge columns ``highway``, ``maxspeed``, ``name`` are kept.

    Parameters
    ----------
    nodes_csv, edges_csv : Path
        The files.
    node_columns : tuple of str
        Names of the id, longitude and latitude columns.
    edge_columns : tuple of str
        Names of the from-node and to-node columns.
    header : bool
        Whether the files have a header row; without one, ``names`` gives the column names
        (``{"nodes": [...], "edges": [...]}``).
    undirected : bool
        Every row is a two-way street (two directed edges), for sources without one-way data.
    tag_rules : sequence of mapping
        Derive OSM-style tags from other columns, see :func:`_apply_tag_rules`.
    """
    kwargs_n: dict[str, object] = {}
    kwargs_e: dict[str, object] = {}
    if not header:
        if not names:
            raise DataError("CSV files without a header need column names")
        kwargs_n = {"header": None, "names": names["nodes"]}
        kwargs_e = {"header": None, "names": names["edges"]}
    try:
        nodes = pd.read_csv(nodes_csv, dtype={node_columns[0]: str}, **kwargs_n)  # type: ignore[call-overload]
        edges = pd.read_csv(
            edges_csv, dtype={edge_columns[0]: str, edge_columns[1]: str}, **kwargs_e
        )  # type: ignore[call-overload]
    except (OSError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read network CSV: {exc}") from exc
    id_col, lon_col, lat_col = node_columns
    missing = {id_col, lon_col, lat_col} - set(nodes.columns)
    if missing:
        raise DataError(f"node CSV {nodes_csv} lacks columns {sorted(missing)}")
    index = pd.Series(np.arange(len(nodes)), index=nodes[id_col].astype(str))
    src, dst = edge_columns
    u = edges[src].astype(str).map(index)
    v = edges[dst].astype(str).map(index)
    if u.isna().any() or v.isna().any():
        bad = int(u.isna().sum() + v.isna().sum())
        raise DataError(f"{bad} edge endpoints in {edges_csv} are not in {nodes_csv}")
    lon = nodes[lon_col].to_numpy(dtype=np.float64)
    lat = nodes[lat_col].to_numpy(dtype=np.float64)
    ui, vi = u.to_numpy(dtype=np.int64), v.to_numpy(dtype=np.int64)
    length = (
        edges["length_m"].to_numpy(dtype=np.float64)
        if "length_m" in edges
        else haversine_m(lon[ui], lat[ui], lon[vi], lat[vi])
    )
    tags = _apply_tag_rules(edges, tag_rules, edges_csv)
    frame = pd.DataFrame(
        {
            "u": ui,
            "v": vi,
            "length_m": length,
            "highway": tags["highway"],
            "maxspeed_kph": [parse_maxspeed(x) for x in edges["maxspeed"]]
            if "maxspeed" in edges
            else np.nan,
            "service": tags["service"],
            "access": None,
            "name": tags["name"],
            "geometry": None,
        }
    )
    if undirected:
        back = frame.assign(u=frame["v"], v=frame["u"])
        frame = pd.concat([frame, back], ignore_index=True)
    return _assemble(
        nodes[id_col].astype(str).tolist(),
        lon.tolist(),
        lat.tolist(),
        [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")],
    )


_RULE_TAGS = ("highway", "service", "name")


def _apply_tag_rules(
    edges: pd.DataFrame, rules: Sequence[Mapping[str, Any]], where: Path
) -> dict[str, pd.Series | None]:
    """OSM-style ``highway``/``service``/``name`` per edge from a CSV's own columns.

    Each rule is ``{tag, column, map?, default?}``: the tag takes the column's value (through
    ``map`` when given; values missing from the map give nothing) wherever an earlier rule left it
    empty, then ``default`` where it is still empty.  Without rules, ``highway`` and ``name``
    columns are used as they are.
    """
    tags = {
        t: edges[t].astype(object)
        if t in edges
        else pd.Series(None, index=edges.index, dtype=object)
        for t in _RULE_TAGS
    }
    for rule in rules:
        tag, column = str(rule["tag"]), str(rule["column"])
        if tag not in _RULE_TAGS:
            raise DataError(f"tag rule for {tag!r}: only {', '.join(_RULE_TAGS)} can be derived")
        if column not in edges:
            raise DataError(f"edge CSV {where} has no column {column!r} (tag rule for {tag})")
        values = edges[column].astype(object)
        if "map" in rule:
            values = values.map({str(k): str(v) for k, v in rule["map"].items()})
        current = tags[tag].where(tags[tag].notna(), values)
        if "default" in rule:
            current = current.where(current.notna(), str(rule["default"]))
        tags[tag] = current
    # An all-empty tag stays a column of None (not float NaN) through Parquet, as before.
    return {t: v.where(v.notna(), None) if v.notna().any() else None for t, v in tags.items()}


_ONEWAY_YES = {"yes", "true", "1"}


def read_osm(path: Path) -> RoadNetwork:
    """Read the ways tagged ``highway`` of an OSM file (``.osm``, ``.osm.bz2``, ``.osm.pbf``).

    Uses pyosmium.  Every pair of consecutive way nodes becomes an edge (the graph is not
    simplified); ``oneway=yes``/``-1`` and roundabouts give one direction, other ways both.
    Areas (``area=yes``) and ways under construction are skipped.
    """
    import osmium

    index: dict[int, int] = {}
    ids: list[str] = []
    lons: list[float] = []
    lats: list[float] = []
    rows: list[dict[str, object]] = []

    def node_index(ref: int, lon: float, lat: float) -> int:
        if ref not in index:
            index[ref] = len(ids)
            ids.append(str(ref))
            lons.append(lon)
            lats.append(lat)
        return index[ref]

    try:
        processor = (
            osmium.FileProcessor(str(path))
            .with_locations()
            .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
            .with_filter(osmium.filter.KeyFilter("highway"))
        )
        for way in processor:
            tags = way.tags
            highway = tags.get("highway")
            if highway in {"construction", "proposed", "platform", "raceway"} or (
                tags.get("area") == "yes"
            ):
                continue
            refs = [(n.ref, n.lon, n.lat) for n in way.nodes if n.location.valid()]  # type: ignore[union-attr]
            oneway = (tags.get("oneway") or "no").lower()
            if tags.get("junction") in {"roundabout", "circular"} and oneway == "no":
                oneway = "yes"
            if oneway == "-1":
                refs.reverse()
            attrs = {
                "highway": highway,
                "maxspeed_kph": parse_maxspeed(tags.get("maxspeed")),
                "service": tags.get("service"),
                "access": tags.get("access"),
                "name": tags.get("name"),
                "geometry": None,
            }
            for (a, alon, alat), (b, blon, blat) in itertools.pairwise(refs):
                ia, ib = node_index(a, alon, alat), node_index(b, blon, blat)
                length = float(haversine_m(alon, alat, blon, blat))
                rows.append({"u": ia, "v": ib, "length_m": length, **attrs})
                if oneway not in _ONEWAY_YES and oneway != "-1":
                    rows.append({"u": ib, "v": ia, "length_m": length, **attrs})
    except RuntimeError as exc:
        raise DataError(f"cannot read OSM file {path}: {exc}") from exc
    if not rows:
        raise DataError(f"OSM file {path} has no highway ways")
    return _assemble(ids, lons, lats, rows)


#: How far (m) outside the road network's bounding box a station or place may lie.
NEAR_NETWORK_M = 5_000.0


def check_near_network(
    what: str, items: Sequence[tuple[str, float, float]], network: RoadNetwork
) -> None:
    """Refuse points (``(id, lon, lat)``) far outside the network's bounding box.

    Raises
    ------
    DataError
        Naming the first such point and its distance, with a hint when its swapped coordinates
        (lat, lon) would lie on the network.
    """
    lon, lat = network.lon, network.lat
    west, east, south, north = lon.min(), lon.max(), lat.min(), lat.max()
    for item_id, x, y in items:
        cx, cy = min(max(x, west), east), min(max(y, south), north)
        gap = float(haversine_m(x, y, cx, cy))
        if gap <= NEAR_NETWORK_M:
            continue
        hint = ""
        if west <= y <= east and south <= x <= north:
            hint = ": longitude and latitude look swapped (give lon, lat in that order)"
        raise DataError(
            f"{what} {item_id} at ({x:.6f}, {y:.6f}) lies {gap / 1000:,.0f} km outside the road "
            f"network{hint}"
        )
