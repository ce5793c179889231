"""Hiding areas: places and blocks ranked by the share of simulated routes that end or pass there.

The probabilities are those of the route model of :mod:`citywatch.pursuit.routes` (its
assumptions are returned with every ranking): a place's ``p_end`` is the share of routes ending
within :data:`~citywatch.pursuit.routes.PLACE_RADIUS_M` of it, ``p_pass`` the share passing that
close; a block is a square grid cell of :data:`CELL_M` metres in the pack's CRS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Transformer
from shapely.geometry import mapping

from citywatch.city.pack import Place
from citywatch.pursuit.routes import PLACE_RADIUS_M, RouteSet

__all__ = ["CELL_M", "rank_blocks", "rank_places", "to_geojson"]

FloatArray = npt.NDArray[np.float64]

#: Side of a block (grid cell), metres.
CELL_M = 250.0


def rank_places(
    routes: RouteSet, xy: FloatArray, places: Sequence[Place], place_xy: Sequence[Any]
) -> list[dict[str, Any]]:
    """Places by the share of routes ending (then passing) near them; places never reached
    are left out."""
    if not places:
        return []
    tree = shapely.STRtree(np.asarray(place_xy, dtype=object))
    pts = shapely.points(xy[:, 0], xy[:, 1])
    node, place = tree.query(pts, predicate="dwithin", distance=PLACE_RADIUS_M)
    rows = []
    r_of = routes.route_of
    end = routes.end
    for k, p in enumerate(places):
        nodes = node[place == k]
        if not len(nodes):
            continue
        p_end = float(np.isin(end, nodes).mean())
        p_pass = float(len(np.unique(r_of[np.isin(routes.nodes, nodes)])) / routes.n_routes)
        if p_pass > 0:
            rows.append(
                {
                    "id": p.id,
                    "kind": p.kind,
                    "name": p.name,
                    "p_end": p_end,
                    "p_pass": p_pass,
                    "geometry": p.geometry,
                }
            )
    return sorted(rows, key=lambda r: (-r["p_end"], -r["p_pass"], r["id"]))


def rank_blocks(routes: RouteSet, xy: FloatArray, crs: str, top: int = 50) -> list[dict[str, Any]]:
    """Grid cells by the share of routes ending in them, with the share passing through."""
    cell = np.floor(xy / CELL_M).astype(np.int64)
    key = cell[:, 0] * 1_000_003 + cell[:, 1]
    _, cell_of_node = np.unique(key, return_inverse=True)
    n_cells = int(cell_of_node.max()) + 1
    ends = np.bincount(cell_of_node[routes.end], minlength=n_cells) / routes.n_routes
    pairs = np.unique(routes.route_of * n_cells + cell_of_node[routes.nodes])
    passes = np.bincount(pairs % n_cells, minlength=n_cells) / routes.n_routes
    first = np.zeros(n_cells, dtype=np.int64)
    first[cell_of_node] = np.arange(len(xy))
    to_wgs = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    out = []
    for c in np.lexsort((-passes, -ends))[:top].tolist():
        if passes[c] <= 0:
            break
        x0, y0 = cell[first[c]] * CELL_M
        box = shapely.box(x0, y0, x0 + CELL_M, y0 + CELL_M)
        box = shapely.transform(box, lambda p: np.column_stack(to_wgs.transform(*p.T)))
        out.append(
            {
                "id": f"cell_{int(x0)}_{int(y0)}",
                "kind": "block",
                "name": "",
                "p_end": float(ends[c]),
                "p_pass": float(passes[c]),
                "geometry": box,
            }
        )
    return out


def to_geojson(rows: Sequence[dict[str, Any]], assumptions: dict[str, Any]) -> dict[str, Any]:
    """Ranked places or blocks as a GeoJSON FeatureCollection (assumptions as a foreign member)."""
    return {
        "type": "FeatureCollection",
        "assumptions": assumptions,
        "features": [
            {
                "type": "Feature",
                "geometry": mapping(r["geometry"]),
                "properties": {k: v for k, v in r.items() if k != "geometry"},
            }
            for r in rows
        ],
    }
