"""Geo tables for analysts: a pack's layers as GeoDataFrames, and tables written as GIS files.

:func:`frames` turns a city pack's jurisdictions, stations, places and road edges into
``geopandas.GeoDataFrame`` objects in WGS-84 (EPSG:4326), ready for a notebook (``.explore()``,
``.to_crs(pack.crs)``, spatial joins).  :func:`write_table` writes any table with ``lon``/``lat``
columns (incidents, simulation records) or with a jurisdiction geometry (KPI tables) as CSV,
GeoJSON, GeoPackage or GeoParquet, chosen by the file's suffix or by name.  Rows without a
location are written with an empty geometry, never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from citywatch.errors import ValidationError

if TYPE_CHECKING:
    import geopandas as gpd

    from citywatch.city.pack import CityPack

__all__ = [
    "FORMATS",
    "WGS84",
    "edges_frame",
    "frames",
    "jurisdiction_frame",
    "jurisdictions_frame",
    "places_frame",
    "points_frame",
    "stations_frame",
    "table_format",
    "write_table",
]

#: Coordinate reference system of every frame and file (packs store WGS-84).
WGS84 = "EPSG:4326"

Format = Literal["csv", "geojson", "gpkg", "parquet"]

#: Output formats by file suffix.
FORMATS: dict[str, Format] = {
    ".csv": "csv",
    ".geojson": "geojson",
    ".gpkg": "gpkg",
    ".parquet": "parquet",
}


def _gpd() -> Any:
    # geopandas imports in ~0.5 s: only the commands that write geo files pay for it.
    import geopandas

    return geopandas


def table_format(path: str | Path, fmt: str | None = None) -> Format:
    """The output format named by ``fmt``, or else by the suffix of ``path``.

    Raises
    ------
    ValidationError
        Neither names one of :data:`FORMATS`.
    """
    names = ", ".join(FORMATS.values())
    if fmt is not None:
        if fmt not in FORMATS.values():
            raise ValidationError(f"unknown format {fmt!r}: use one of {names}", field="format")
        return fmt  # type: ignore[return-value]
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValidationError(
            f"cannot tell the format of {Path(path).name!r}: end it in "
            f"{', '.join(FORMATS)} or give --format ({names})",
            field="out",
        )
    return FORMATS[suffix]


def points_frame(frame: pd.DataFrame, lon: str = "lon", lat: str = "lat") -> gpd.GeoDataFrame:
    """``frame`` with a point geometry from its ``lon``/``lat`` columns (empty where missing)."""
    x = pd.to_numeric(frame[lon], errors="coerce").to_numpy(dtype=np.float64)
    y = pd.to_numeric(frame[lat], errors="coerce").to_numpy(dtype=np.float64)
    points: npt.NDArray[np.object_] = np.asarray(shapely.points(x, y), dtype=object)
    points[np.isnan(x) | np.isnan(y)] = None
    return _gpd().GeoDataFrame(frame, geometry=points, crs=WGS84)


def write_table(
    frame: pd.DataFrame,
    path: str | Path,
    fmt: str | None = None,
    *,
    layer: str | None = None,
) -> int:
    """Write a table as CSV, GeoJSON, GeoPackage or GeoParquet.

    Parameters
    ----------
    frame : pandas.DataFrame or geopandas.GeoDataFrame
        A GeoDataFrame keeps its geometry; a plain frame gets points from ``lon``/``lat``.
        CSV is written as it is (``lon``/``lat`` columns, no geometry column).
    path : str or pathlib.Path
        Output file; parent folders are created.
    fmt : {"csv", "geojson", "gpkg", "parquet"}, optional
        Default: from the suffix of ``path`` (:func:`table_format`).
    layer : str, optional
        GeoPackage layer name (default: the file's stem).

    Returns
    -------
    int
        Rows written.
    """
    kind = table_format(path, fmt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        pd.DataFrame(frame).to_csv(path, index=False, lineterminator="\n")
        return len(frame)
    geo = frame if isinstance(frame, _gpd().GeoDataFrame) else points_frame(frame)
    if kind == "parquet":
        geo.to_parquet(path, index=False)
    elif kind == "geojson":
        # RFC 7946: WGS-84 only, which the frames are; the times keep their UTC offset.
        geo.to_file(path, driver="GeoJSON", engine="pyogrio")
    else:
        path.unlink(missing_ok=True)  # a GeoPackage is a database: replace, never append
        geo.to_file(path, driver="GPKG", layer=layer or path.stem, engine="pyogrio")
    return len(geo)


def jurisdictions_frame(pack: CityPack, levels: Sequence[str] | None = None) -> gpd.GeoDataFrame:
    """Jurisdiction polygons: ``id``, ``level``, ``name``, ``name_zh``, ``parent``, ``area_km2``."""
    rows = [j for j in pack.jurisdictions if levels is None or j.level in levels]
    table = pd.DataFrame(
        {
            "id": [j.id for j in rows],
            "level": [j.level for j in rows],
            "name": [j.name for j in rows],
            "name_zh": [j.name_zh for j in rows],
            "parent": [j.parent for j in rows],
            "area_km2": [pack.area_km2(j.id) for j in rows],
        }
    )
    return _gpd().GeoDataFrame(table, geometry=[j.geometry for j in rows], crs=WGS84)


def jurisdiction_frame(pack: CityPack, table: pd.DataFrame, key: str) -> gpd.GeoDataFrame:
    """``table`` (e.g. KPIs by station) with the polygon of the jurisdiction named in ``key``.

    Rows whose ``key`` is no jurisdiction of the pack (``unassigned``, a total row) keep an
    empty geometry.
    """
    shapes = {j.id: j.geometry for j in pack.jurisdictions}
    geometry = [shapes.get(str(k)) for k in table[key]]
    return _gpd().GeoDataFrame(table.reset_index(drop=True), geometry=geometry, crs=WGS84)


def stations_frame(pack: CityPack) -> gpd.GeoDataFrame:
    """Station points: ``id``, ``name``, ``name_zh``, ``jurisdiction``, ``address``,
    ``synthetic``, ``lon``, ``lat``."""
    table = pd.DataFrame(
        {
            "id": [s.id for s in pack.stations],
            "name": [s.name for s in pack.stations],
            "name_zh": [s.name_zh for s in pack.stations],
            "jurisdiction": [s.jurisdiction for s in pack.stations],
            "address": [s.address for s in pack.stations],
            "synthetic": [s.synthetic for s in pack.stations],
            "lon": [s.lon for s in pack.stations],
            "lat": [s.lat for s in pack.stations],
        }
    )
    return points_frame(table)


def places_frame(pack: CityPack) -> gpd.GeoDataFrame:
    """Places (markets, schools, hospitals, ...): ``id``, ``kind``, ``name`` and their shape."""
    table = pd.DataFrame(
        {
            "id": [p.id for p in pack.places],
            "kind": [p.kind for p in pack.places],
            "name": [p.name for p in pack.places],
        }
    )
    return _gpd().GeoDataFrame(table, geometry=[p.geometry for p in pack.places], crs=WGS84)


def edges_frame(pack: CityPack) -> gpd.GeoDataFrame:
    """Directed road edges with their attributes, as drawn: the stored line where the edge has
    one, else the straight segment between its nodes; ``u``/``v`` are node positions and
    ``u_id``/``v_id`` the source's node ids."""
    nodes, edges = pack.network.nodes, pack.network.edges
    u, v = edges["u"].to_numpy(), edges["v"].to_numpy()
    xy = nodes[["lon", "lat"]].to_numpy(dtype=np.float64)
    lines: npt.NDArray[np.object_] = np.asarray(
        shapely.linestrings(np.stack([xy[u], xy[v]], axis=1)), dtype=object
    )
    wkt = edges["geometry"]
    has_line = wkt.notna().to_numpy()
    lines[has_line] = shapely.from_wkt(wkt[has_line].to_numpy())
    table = edges.drop(columns="geometry").reset_index(drop=True)
    table.insert(2, "u_id", nodes["node_id"].to_numpy()[u])
    table.insert(3, "v_id", nodes["node_id"].to_numpy()[v])
    return _gpd().GeoDataFrame(table, geometry=lines, crs=WGS84)


def frames(pack: CityPack) -> dict[str, gpd.GeoDataFrame]:
    """Every layer of a pack as a GeoDataFrame (WGS-84).

    Returns
    -------
    dict of str to geopandas.GeoDataFrame
        ``jurisdictions`` (all levels, column ``level``), ``stations``, ``places`` (empty for a
        pack without places) and ``edges`` (directed road edges).
    """
    return {
        "jurisdictions": jurisdictions_frame(pack),
        "stations": stations_frame(pack),
        "places": places_frame(pack),
        "edges": edges_frame(pack),
    }
