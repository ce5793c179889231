"""Build city packs from real source files, driven by a TOML build spec.

A spec names the road network source (OSMnx GraphML, an OSM file, or node/edge CSVs), the
jurisdiction polygons per level (GeoJSON), how levels nest, the stations (GeoJSON points, or a
documented seeded rule where a city publishes none) and optional places.  The bundled packs are
built from ``data/packs/*.toml`` (:mod:`citywatch.city.bundled`); ``citywatch city build
SPEC.toml --out DIR`` builds any other.
See ``docs/city-packs.md`` for the spec reference.
"""

from __future__ import annotations

import json
import re
import string
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from scipy.cluster.vq import kmeans2
from shapely.geometry import shape

from citywatch.city.coords import CoordinateSystem, to_wgs84
from citywatch.city.network import RoadNetwork, read_edge_csv, read_graphml, read_osm
from citywatch.city.pack import LEVELS, Jurisdiction, Place, Station, write_pack
from citywatch.console import progress
from citywatch.errors import DataError

__all__ = ["build_pack"]


def _to_wgs(geometry: Any, system: CoordinateSystem) -> Any:
    if system == "wgs84":
        return geometry
    return shapely.transform(
        geometry, lambda xy: np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], system))
    )


def _read_network(spec: dict[str, Any], base: Path) -> RoadNetwork:
    if "graphml" in spec:
        return read_graphml(base / spec["graphml"])
    if "osm" in spec:
        return read_osm(base / spec["osm"])
    if "nodes" in spec and "edges" in spec:
        header = bool(spec.get("header", True))
        names = None if header else {"nodes": spec["node_names"], "edges": spec["edge_names"]}
        return read_edge_csv(
            base / spec["nodes"],
            base / spec["edges"],
            node_columns=tuple(spec.get("node_columns", ("node_id", "lon", "lat"))),
            edge_columns=tuple(spec.get("edge_columns", ("u", "v"))),
            header=header,
            names=names,
        )
    raise DataError("the [network] section needs graphml, osm, or nodes + edges")


def _fmt(template: str, props: dict[str, Any], **extra: Any) -> str:
    return string.Formatter().vformat(template, (), {**props, **extra}) if template else ""


def _read_level(spec: dict[str, Any], base: Path, system: CoordinateSystem) -> list[Jurisdiction]:
    level = spec["level"]
    if level not in LEVELS[1:]:
        raise DataError(f"jurisdiction level must be one of {LEVELS[1:]}, not {level!r}")
    try:
        features = json.loads((base / spec["file"]).read_text(encoding="utf-8"))["features"]
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise DataError(f"cannot read jurisdictions {spec.get('file')}: {exc}") from exc
    include = {str(x) for x in spec.get("include", [])}
    rename = {str(k): str(v) for k, v in spec.get("rename", {}).items()}
    out = []
    for f in features:
        props = f["properties"]
        raw = str(props[spec["id"]])
        if include and raw not in include:
            continue
        jid = rename.get(raw, raw)
        parent = None
        if spec.get("parent") == "strip_suffix":  # NYPD sectors: "14A" belongs to precinct "14"
            parent = re.sub(r"[A-Za-z]+$", "", jid)
        out.append(
            Jurisdiction(
                id=jid,
                name=_fmt(spec.get("name", "{id}"), props, id=jid, raw=raw),
                name_zh=_fmt(spec.get("name_zh", ""), props, id=jid, raw=raw),
                level=level,
                parent=parent,
                geometry=shapely.make_valid(_to_wgs(shape(f["geometry"]), system)),
            )
        )
    return out


def _groups(spec: dict[str, Any], children: list[Jurisdiction]) -> list[Jurisdiction]:
    """Make a level by uniting child polygons (NYPD patrol boroughs from precincts)."""
    out = []
    by_id = {c.id: c for c in children}
    for gid, members in spec["members"].items():
        missing = [m for m in members if m not in by_id]
        if missing:
            raise DataError(f"group {gid} lists unknown members {missing}")
        out.append(
            Jurisdiction(
                id=gid,
                name=spec.get("names", {}).get(gid, gid),
                name_zh=spec.get("names_zh", {}).get(gid, ""),
                level=spec["level"],
                parent=None,
                geometry=shapely.union_all([by_id[m].geometry for m in members]),
            )
        )
    for i, child in enumerate(children):
        parent = next((gid for gid, m in spec["members"].items() if child.id in m), None)
        children[i] = replace(child, parent=parent)
    return out


def _nest(levels: dict[str, list[Jurisdiction]], city: Jurisdiction) -> list[Jurisdiction]:
    """Clip each polygon to its parent (and the city); fill missing parents by largest overlap."""
    result = [city]
    parents: dict[str, Jurisdiction] = {city.id: city}
    for lvl in LEVELS[1:]:
        uppers = [j for j in parents.values() if j.level == _upper(lvl, levels)]
        for j in levels.get(lvl, []):
            parent_id = j.parent
            if parent_id not in parents:
                overlaps = [(u.geometry.intersection(j.geometry).area, u.id) for u in uppers]
                parent_id = max(overlaps)[1] if overlaps else city.id
            clipped = shapely.make_valid(j.geometry.intersection(parents[parent_id].geometry))
            if clipped.is_empty or clipped.area == 0:
                continue
            nested = replace(j, parent=parent_id, geometry=clipped)
            parents[j.id] = nested
            result.append(nested)
    return result


def _upper(level: str, levels: dict[str, list[Jurisdiction]]) -> str:
    i = LEVELS.index(level) - 1
    while i > 0 and not levels.get(LEVELS[i]):
        i -= 1
    return LEVELS[i]


def _read_stations(spec: dict[str, Any], base: Path, system: CoordinateSystem) -> list[Station]:
    features = json.loads((base / spec["file"]).read_text(encoding="utf-8"))["features"]
    where = spec.get("where", {})
    out = []
    for f in features:
        props = f["properties"]
        if any(str(props.get(k)) != str(v) for k, v in where.items()):
            continue
        sid = str(props[spec["id"]])
        x, y = f["geometry"]["coordinates"][:2]
        lon, lat = to_wgs84(x, y, system)
        out.append(
            Station(
                id=sid,
                name=_fmt(spec.get("name", "{id}"), props, id=sid),
                name_zh=_fmt(spec.get("name_zh", ""), props, id=sid),
                lon=float(lon),
                lat=float(lat),
                jurisdiction=_fmt(spec.get("jurisdiction", "{id}"), props, id=sid),
                address=_fmt(spec.get("address", ""), props, id=sid),
            )
        )
    return out


def _seeded_partition(
    area: Any, xy: np.ndarray, inside: np.ndarray, k: int, seed: int, crs: str
) -> tuple[np.ndarray, list[Any]]:
    """Split ``area`` into ``k`` cells around k-means centres of the road nodes inside it.

    Returns the node index nearest each centre and the Voronoi cells clipped to ``area``.
    """
    pts = xy[inside]
    k = max(1, min(k, len(pts)))
    centres, _ = kmeans2(pts, k, seed=seed, minit="++")
    nearest = np.array(
        [np.flatnonzero(inside)[np.argmin(((pts - c) ** 2).sum(1))] for c in centres]
    )
    to_metric = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    to_wgs = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    metric_area = shapely.transform(
        area, lambda a: np.column_stack(to_metric.transform(a[:, 0], a[:, 1]))
    )
    sites = shapely.multipoints(xy[nearest])
    cells = shapely.get_parts(shapely.voronoi_polygons(sites, extend_to=metric_area))
    out = []
    for site in xy[nearest]:
        cell = next(c for c in cells if c.covers(shapely.Point(site)))
        clipped = shapely.make_valid(cell.intersection(metric_area))
        out.append(
            shapely.transform(
                clipped, lambda a: np.column_stack(to_wgs.transform(a[:, 0], a[:, 1]))
            )
        )
    return nearest, out


def _synthetic_stations(
    spec: dict[str, Any], network: RoadNetwork, bureaus: list[Jurisdiction], crs: str
) -> tuple[list[Station], list[Jurisdiction], list[Jurisdiction]]:
    """Place stations by the documented seeded rule (see ``docs/city-packs.md``)."""
    seed = int(spec.get("seed", 20260101))
    km_per_station = float(spec.get("km_per_station", 25.0))
    zones_per_station = int(spec.get("zones_per_station", 3))
    to_metric = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    xy = np.column_stack(to_metric.transform(network.lon, network.lat))
    pts = shapely.points(network.lon, network.lat)
    e = network.edges
    stations, station_areas, zones = [], [], []
    for b_index, bureau in enumerate(sorted(bureaus, key=lambda j: j.id)):
        inside = shapely.contains(bureau.geometry, pts)
        if not inside.any():
            continue
        road_km = float(e.loc[inside[e["u"]] & inside[e["v"]], "length_m"].sum() / 2000.0)
        k = max(1, round(road_km / km_per_station))
        nodes, cells = _seeded_partition(bureau.geometry, xy, inside, k, seed + b_index, crs)
        for i, (node, cell) in enumerate(zip(nodes, cells, strict=True)):
            sid = f"{bureau.id}-{i + 1}"
            stations.append(
                Station(
                    id=sid,
                    name=f"{bureau.name} Station {i + 1} (synthetic)",
                    name_zh=f"{bureau.name_zh}派出所{i + 1}（模拟）",
                    lon=float(network.lon[node]),
                    lat=float(network.lat[node]),
                    jurisdiction=sid,
                    synthetic=True,
                )
            )
            station_areas.append(
                Jurisdiction(
                    sid,
                    f"{bureau.name} Station {i + 1} area (synthetic)",
                    f"{bureau.name_zh}派出所{i + 1}辖区（模拟）",
                    "station",
                    bureau.id,
                    cell,
                )
            )
            in_cell = shapely.contains(cell, pts) & inside
            if not in_cell.any():
                continue
            _, zone_cells = _seeded_partition(
                cell, xy, in_cell, zones_per_station, seed + 1000 + i, crs
            )
            for z, zone in enumerate(zone_cells):
                letter = string.ascii_uppercase[z]
                zones.append(
                    Jurisdiction(
                        f"{sid}{letter}",
                        f"Zone {sid}{letter} (synthetic)",
                        f"{sid}{letter}巡区（模拟）",
                        "zone",
                        sid,
                        zone,
                    )
                )
    return stations, station_areas, zones


def build_pack(spec_path: Path, out: Path, base: Path | None = None) -> Path:
    """Build a pack from a TOML spec into ``out``.

    Parameters
    ----------
    spec_path : Path
        The build spec.
    out : Path
        Pack folder to write (created or overwritten).
    base : Path, optional
        Folder that relative source paths in the spec refer to (default: the spec's folder's
        parent, so ``data/packs/x.toml`` refers to files under ``data/``).
    """
    try:
        spec = tomllib.loads(spec_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"cannot read build spec {spec_path}: {exc}") from exc
    base = base or spec_path.resolve().parent.parent
    meta = dict(spec["city"])
    system: CoordinateSystem = meta.get("source_crs", "wgs84")
    with progress() as bar:
        task = bar.add_task(f"Building pack {meta['name']}", total=4)
        network = _read_network(spec["network"], base)
        bar.advance(task)
        levels: dict[str, list[Jurisdiction]] = {}
        for level_spec in spec.get("jurisdictions", []):
            levels.setdefault(level_spec["level"], []).extend(_read_level(level_spec, base, system))
        for group in spec.get("groups", []):
            levels[group["level"]] = _groups(group, levels[group["from_level"]])
        top = next((levels[lvl] for lvl in LEVELS[1:] if levels.get(lvl)), [])
        city_geom = shapely.union_all([j.geometry for j in top]) if top else None
        clip = spec.get("clip", {})
        if clip.get("to_network_hull") or city_geom is None:
            hull = _network_hull(network, meta["crs"], float(clip.get("buffer_m", 300.0)))
            city_geom = hull if city_geom is None else city_geom.intersection(hull)
        city = Jurisdiction(
            meta["name"],
            str(meta.get("display_name", meta["name"])),
            str(meta.get("name_zh", "")),
            "city",
            None,
            shapely.make_valid(city_geom),
        )
        jurisdictions = _nest(levels, city)
        bar.advance(task)
        stations_spec = spec.get("stations", {})
        if "synthetic" in stations_spec:
            bureaus = [j for j in jurisdictions if j.level == "bureau"]
            stations, areas, zones = _synthetic_stations(
                stations_spec["synthetic"], network, bureaus, meta["crs"]
            )
            jurisdictions += areas + zones
            meta["synthetic_stations_rule"] = stations_spec["synthetic"]
        elif stations_spec:
            stations = _read_stations(stations_spec, base, system)
        else:
            stations = []
        bar.advance(task)
        places = [
            Place(
                str(f["properties"][p["id"]]),
                p["kind"],
                str(f["properties"].get(p.get("name", "name"), "")),
                _to_wgs(shape(f["geometry"]), system),
            )
            for p in spec.get("places", [])
            for f in json.loads((base / p["file"]).read_text(encoding="utf-8"))["features"]
        ]
        write_pack(out, meta, network, jurisdictions, stations, places)
        bar.advance(task)
    return out


def _network_hull(network: RoadNetwork, crs: str, buffer_m: float) -> Any:
    to_metric = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    to_wgs = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    x, y = to_metric.transform(network.lon, network.lat)
    hull = shapely.buffer(
        shapely.convex_hull(shapely.multipoints(np.column_stack([x, y]))), buffer_m
    )
    return shapely.transform(hull, lambda a: np.column_stack(to_wgs.transform(a[:, 0], a[:, 1])))
