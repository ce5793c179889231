"""Build city packs from real source files, driven by a TOML build spec.

A spec names the road network source (OSMnx GraphML, an OSM file, or node/edge CSVs), the
jurisdiction polygons per level (GeoJSON), how levels nest, the stations (GeoJSON points, or a
documented seeded rule where a city publishes none) and optional places.  The bundled packs are
built from ``data/packs/*.toml`` (:mod:`citywatch.city.bundled`); ``citywatch city build
SPEC.toml --out DIR`` builds any other.
See ``docs/city-packs.md`` for the spec reference.
"""

from __future__ import annotations

import re
import string
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from scipy.cluster.vq import kmeans2
from shapely.geometry import shape

from citywatch.city.coords import CoordinateSystem
from citywatch.city.network import (
    RoadNetwork,
    check_near_network,
    read_edge_csv,
    read_graphml,
    read_osm,
)
from citywatch.city.osm import read_osm_places, read_osm_stations
from citywatch.city.pack import LEVELS, Jurisdiction, Place, Station, write_pack
from citywatch.city.places import read_json, read_place_file, surface_xy, to_wgs
from citywatch.city.spec import check_timezone, utm_crs, validate_spec
from citywatch.city.stations import fill_stations, read_station_file, template
from citywatch.console import err_console, progress
from citywatch.errors import DataError
from citywatch.tomlkeys import read_toml

__all__ = ["build_from_spec", "build_pack", "osm_spec"]


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
            undirected=bool(spec.get("undirected", False)),
            tag_rules=spec.get("tags", ()),
        )
    raise DataError("the [network] section needs graphml, osm, or nodes + edges")


def _read_level(spec: dict[str, Any], base: Path, system: CoordinateSystem) -> list[Jurisdiction]:
    level = spec["level"]
    if level not in LEVELS[1:]:
        raise DataError(f"jurisdiction level must be one of {LEVELS[1:]}, not {level!r}")
    doc = read_json(base / spec["file"])
    if not isinstance(doc, dict) or "features" not in doc:
        raise DataError(f"jurisdictions {spec['file']} is not a GeoJSON FeatureCollection")
    features = doc["features"]
    include = {str(x) for x in spec.get("include", [])}
    rename = {str(k): str(v) for k, v in spec.get("rename", {}).items()}
    out = []
    for f in features:
        props = f["properties"]
        if spec["id"] not in props:
            raise DataError(
                f"jurisdictions {spec['file']}: a feature has no property {spec['id']!r}"
            )
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
                name=template(spec.get("name", "{id}"), props, id=jid, raw=raw),
                name_zh=template(spec.get("name_zh", ""), props, id=jid, raw=raw),
                level=level,
                parent=parent,
                geometry=shapely.make_valid(to_wgs(shape(f["geometry"]), system)),
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
        The build spec (validated whole before any source is read, see
        :func:`citywatch.city.spec.validate_spec`).
    out : Path
        Pack folder to write (created or overwritten).
    base : Path, optional
        Folder that relative source paths in the spec refer to (default: the spec's folder's
        parent, so ``data/packs/x.toml`` refers to files under ``data/``).

    Raises
    ------
    DataError
        If the spec is invalid (naming the section and key) or a source cannot be read.
    """
    spec = read_toml(spec_path, "build spec")
    try:
        validate_spec(spec)
    except DataError as exc:
        raise DataError(f"build spec {spec_path}: {exc.message}") from None
    return build_from_spec(spec, base or spec_path.resolve().parent.parent, out)


def _city_polygon(
    spec: dict[str, Any], base: Path, network: RoadNetwork, top: list[Jurisdiction], crs: str
) -> Any:
    clip = spec.get("clip", {})
    geom = shapely.union_all([j.geometry for j in top]) if top else None
    if "boundary" in clip:
        doc = read_json(base / clip["boundary"])
        shapes = (
            [shape(f["geometry"]) for f in doc.get("features", [])] if isinstance(doc, dict) else []
        )
        if not shapes:
            raise DataError(f"[clip] boundary {clip['boundary']} holds no polygon")
        boundary = shapely.union_all(shapes)
        geom = boundary if geom is None else geom.intersection(boundary)
    if clip.get("to_network_hull") or geom is None:
        hull = _network_hull(network, crs, float(clip.get("buffer_m", 300.0)))
        geom = hull if geom is None else geom.intersection(hull)
    return shapely.make_valid(geom)


def _stations(
    spec: dict[str, Any],
    base: Path,
    network: RoadNetwork,
    jurisdictions: list[Jurisdiction],
    meta: dict[str, Any],
) -> tuple[list[Station], list[Jurisdiction]]:
    """The stations of a spec, and any station areas and zones made with them."""
    system: CoordinateSystem = meta.get("source_crs", "wgs84")
    st = spec.get("stations", {})
    if "synthetic" in st:
        bureaus = [j for j in jurisdictions if j.level == "bureau"]
        bureaus = bureaus or [j for j in jurisdictions if j.level == "city"]
        stations, areas, zones = _synthetic_stations(st["synthetic"], network, bureaus, meta["crs"])
        meta["synthetic_stations_rule"] = st["synthetic"]
        return stations, areas + zones
    if "osm" in st:
        stations = read_osm_stations(base / st["osm"])
    elif "file" in st:
        stations = read_station_file(st, base, system)
    else:
        stations = []
    check_near_network("station", [(s.id, s.lon, s.lat) for s in stations], network)
    if "fill" in st:
        areas = [j for j in jurisdictions if j.level == st["fill"]["level"]]
        stations = fill_stations(stations, areas, network, meta["crs"])
        meta["synthetic_stations_rule"] = st["fill"]
    return stations, []


def _places(spec: dict[str, Any], base: Path, system: CoordinateSystem) -> list[Place]:
    places: list[Place] = []
    for p in spec.get("places", []):
        if "osm" in p:
            places += read_osm_places(base / p["osm"])
            continue
        places += read_place_file(
            base / p["file"],
            kind=p.get("kind"),
            id_field=p.get("id", "id"),
            name_field=p.get("name", "name"),
            lon_field=p.get("lon", "lon"),
            lat_field=p.get("lat", "lat"),
            system=system,
        )
    return places


def build_from_spec(spec: dict[str, Any], base: Path, out: Path) -> Path:
    """Build a pack from a parsed, validated spec (see :func:`build_pack`); return ``out``.

    Prints a warning (standard error) when the pack has no station.
    """
    meta = dict(spec["city"])
    system: CoordinateSystem = meta.get("source_crs", "wgs84")
    with progress() as bar:
        task = bar.add_task(f"Building pack {meta['name']}: road network", total=4)
        network = _read_network(spec["network"], base)
        bar.update(task, advance=1, description=f"Building pack {meta['name']}: jurisdictions")
        levels: dict[str, list[Jurisdiction]] = {}
        for level_spec in spec.get("jurisdictions", []):
            levels.setdefault(level_spec["level"], []).extend(_read_level(level_spec, base, system))
        for group in spec.get("groups", []):
            if group["from_level"] not in levels:
                raise DataError(f"[[groups]] from_level {group['from_level']!r} has no polygons")
            levels[group["level"]] = _groups(group, levels[group["from_level"]])
        top = next((levels[lvl] for lvl in LEVELS[1:] if levels.get(lvl)), [])
        city = Jurisdiction(
            meta["name"],
            str(meta.get("display_name", meta["name"])),
            str(meta.get("name_zh", "")),
            "city",
            None,
            _city_polygon(spec, base, network, top, meta["crs"]),
        )
        jurisdictions = _nest(levels, city)
        bar.update(task, advance=1, description=f"Building pack {meta['name']}: stations")
        stations, extra = _stations(spec, base, network, jurisdictions, meta)
        jurisdictions += extra
        bar.update(task, advance=1, description=f"Building pack {meta['name']}: places")
        places = _places(spec, base, system)
        check_near_network("place", [(p.id, *surface_xy(p.geometry)) for p in places], network)
        write_pack(out, meta, network, jurisdictions, stations, places)
        bar.advance(task)
    if not stations:
        err_console.print(
            f"[yellow]Warning:[/] pack {meta['name']} has no police station: recommendations "
            "and simulations need units placed by hand (add [stations] to the spec)"
        )
    return out


def _network_hull(network: RoadNetwork, crs: str, buffer_m: float) -> Any:
    to_metric = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    to_wgs = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    x, y = to_metric.transform(network.lon, network.lat)
    hull = shapely.buffer(
        shapely.convex_hull(shapely.multipoints(np.column_stack([x, y]))), buffer_m
    )
    return shapely.transform(hull, lambda a: np.column_stack(to_wgs.transform(a[:, 0], a[:, 1])))


def _osm_centre(path: Path) -> tuple[float, float]:
    """Median longitude/latitude of an OSM file's first nodes (headers' boxes are unreliable:
    extracts often carry a whole-world box)."""
    import osmium

    lonlat = []
    try:
        for node in osmium.FileProcessor(str(path), osmium.osm.NODE):
            if isinstance(node, osmium.osm.Node) and node.location.valid():
                lonlat.append((node.location.lon, node.location.lat))
            if len(lonlat) >= _CENTRE_SAMPLE:
                break
    except RuntimeError as exc:
        raise DataError(f"cannot read OSM file {path}: {exc}") from exc
    if not lonlat:
        raise DataError(f"OSM file {path} has no nodes")
    lon, lat = np.median(np.asarray(lonlat), axis=0)
    return float(lon), float(lat)


_CENTRE_SAMPLE = 10_000


def osm_spec(
    osm: Path,
    name: str,
    timezone: str,
    *,
    crs: str | None = None,
    boundary: Path | None = None,
    stations: Path | None = None,
) -> dict[str, Any]:
    """The build spec of ``citywatch city build --osm``: everything from one OSM extract.

    Roads (classes, one-way rules, speeds, names), places by the documented tag mapping and
    police stations (``amenity=police``) come from ``osm``; ``stations`` (GeoJSON points or a
    CSV with ``id``, ``name``, ``lon``, ``lat``) replaces the OSM stations; ``boundary``
    (GeoJSON polygons) is the city polygon, else the network's convex hull + 300 m.  The CRS
    defaults to the UTM zone of the extract's centre.
    """
    check_timezone(timezone, "--timezone")
    for label, path in (("--osm", osm), ("--boundary", boundary), ("--stations", stations)):
        if path is not None and not path.is_file():
            raise DataError(f"{label} {path}: no such file")
    source = str(osm.resolve())
    spec: dict[str, Any] = {
        "city": {
            "name": name,
            "display_name": name,
            "timezone": timezone,
            "crs": crs or utm_crs(*_osm_centre(osm)),
            "credits": ["Roads, places and police stations: © OpenStreetMap contributors (ODbL)"],
        },
        "network": {"osm": source},
        "places": [{"osm": source}],
        "stations": {"file": str(stations.resolve()), "id": "id"} if stations else {"osm": source},
    }
    if boundary is not None:
        spec["clip"] = {"boundary": str(boundary.resolve())}
    return validate_spec(spec)
