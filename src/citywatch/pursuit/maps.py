"""PNG maps of a pursuit: streets, isochrone rings, hiding areas, checkpoints and their units.

The pattern of :func:`citywatch.surveillance.maps.write_png`: matplotlib's Agg backend (no
display), the pack's own streets in WGS-84 with the latitude's aspect, the OpenStreetMap credit
on the map.  The extent is the largest ring (or, without rings, the hiding areas and
checkpoints) with a margin.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape

from citywatch.city.pack import CityPack
from citywatch.errors import writes_to
from citywatch.pursuit.intercept import PursuitUnit
from citywatch.pursuit.reach import Reach

__all__ = ["RING_COLOURS", "write_pursuit_png"]

#: Fill colour of the ring of each horizon (minutes), as on the dashboard.
RING_COLOURS = {1: "#ff3b3b", 3: "#ff8c1a", 5: "#f7c948", 10: "#7dd3fc"}
_OTHER_RING = "#9fb3c8"
_CREDIT = "Streets © OpenStreetMap contributors (or the pack's source)"
_MARGIN = 0.08


def _polygons(geom: Any) -> list[np.ndarray]:
    """Exterior rings of a (multi)polygon as arrays of (lon, lat)."""
    parts = getattr(geom, "geoms", [geom])
    return [
        np.asarray(p.exterior.coords) for p in parts if not p.is_empty and hasattr(p, "exterior")
    ]


def _extent(geoms: Sequence[Any], points: np.ndarray) -> tuple[float, float, float, float]:
    boxes = [g.bounds for g in geoms if not g.is_empty]
    if len(points):
        boxes.append((*points.min(axis=0), *points.max(axis=0)))
    b = np.asarray(boxes)
    x0, y0, x1, y1 = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
    dx, dy = max(x1 - x0, 1e-3) * _MARGIN, max(y1 - y0, 1e-3) * _MARGIN
    return x0 - dx, y0 - dy, x1 + dx, y1 + dy


def write_pursuit_png(
    path: Path | str,
    pack: CityPack,
    origin: tuple[float, float],
    *,
    reach: Reach | None = None,
    hiding: Sequence[dict[str, Any]] = (),
    checkpoints: Sequence[dict[str, Any]] = (),
    units: Sequence[PursuitUnit] = (),
    title: str = "",
) -> Path:
    """Draw a pursuit on the pack's streets and write it as a PNG.

    Parameters
    ----------
    path : path
        The PNG file (folders are created).
    pack : CityPack
        The city (its streets are drawn in grey).
    origin : tuple of float
        The last known position (lon, lat), drawn as a star.
    reach : Reach, optional
        Isochrone rings, drawn largest first.
    hiding : sequence of dict
        Ranked places and blocks (``geometry`` in WGS-84, ``p_end``), shaded by ``p_end``.
    checkpoints : sequence of dict
        Plan checkpoints (``lon``, ``lat``, ``unit``); with ``units``, a line from each unit.
    units : sequence of PursuitUnit
        The units of the plan (positions).
    title : str
        The map's title.

    Returns
    -------
    Path

    Raises
    ------
    DataError
        If the file cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Polygon as Patch

    path = Path(path)
    with writes_to(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    rings = sorted(reach.rings, key=lambda r: -r.minutes) if reach is not None else []
    geoms = [r.polygon for r in rings] or [h["geometry"] for h in hiding]
    cp = np.asarray([[c["lon"], c["lat"]] for c in checkpoints]).reshape(-1, 2)
    x0, y0, x1, y1 = _extent(geoms, np.vstack([cp, np.asarray([origin])]))
    net = pack.network
    lon, lat = net.lon, net.lat
    u, v = net.edges["u"].to_numpy(), net.edges["v"].to_numpy()
    inside = (lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)
    keep = inside[u] | inside[v]
    segs = np.stack(
        [
            np.column_stack([lon[u[keep]], lat[u[keep]]]),
            np.column_stack([lon[v[keep]], lat[v[keep]]]),
        ],
        axis=1,
    )
    fig, ax = plt.subplots(figsize=(8, 8), dpi=120)
    ax.add_collection(LineCollection(list(segs), colors="#bbbbbb", linewidths=0.4, zorder=1))
    for r in rings:
        colour = RING_COLOURS.get(r.minutes, _OTHER_RING)
        for k, xy in enumerate(_polygons(r.polygon)):
            ax.add_patch(
                Patch(
                    xy,
                    closed=True,
                    facecolor=colour,
                    edgecolor=colour,
                    alpha=0.25,
                    linewidth=0.6,
                    zorder=2,
                    label=f"reachable in {r.minutes} min" if k == 0 else None,
                )
            )
    top = max([h["p_end"] for h in hiding] or [1.0]) or 1.0
    for k, h in enumerate(hiding):
        g = h["geometry"] if hasattr(h["geometry"], "geom_type") else shape(h["geometry"])
        alpha = 0.15 + 0.6 * h["p_end"] / top
        label = "hiding area (shade: share of routes ending)" if k == 0 else None
        if g.geom_type in ("Point", "MultiPoint"):
            pts = shapely.get_coordinates(g)
            ax.scatter(pts[:, 0], pts[:, 1], s=30, c="#7b3294", alpha=alpha, zorder=3, label=label)
            continue
        for j, xy in enumerate(_polygons(g)):
            ax.add_patch(
                Patch(
                    xy,
                    closed=True,
                    facecolor="#7b3294",
                    edgecolor="#7b3294",
                    alpha=alpha,
                    linewidth=0.8,
                    zorder=3,
                    label=label if j == 0 else None,
                )
            )
    where = {x.id: (x.lon, x.lat) for x in units}
    for k, c in enumerate(checkpoints):
        if c["unit"] in where:
            ux, uy = where[c["unit"]]
            ax.plot([ux, c["lon"]], [uy, c["lat"]], ls="--", lw=0.8, c="#2166ac", zorder=4)
            ax.scatter([ux], [uy], s=18, c="#2166ac", marker="s", zorder=5,
                       label="unit (to its checkpoint)" if k == 0 else None)  # fmt: skip
        ax.scatter([c["lon"]], [c["lat"]], s=60, c="#2166ac", edgecolors="white", zorder=6,
                   label="checkpoint" if k == 0 else None)  # fmt: skip
        ax.annotate(str(c["unit"]), (c["lon"], c["lat"]), fontsize=6, xytext=(4, 4),
                    textcoords="offset points", zorder=7)  # fmt: skip
    ax.scatter([origin[0]], [origin[1]], s=160, c="#d7191c", marker="*", zorder=8,
               label="last known position")  # fmt: skip
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect(1.0 / np.cos(np.radians((y0 + y1) / 2)))
    ax.set_title(title or f"{pack.name}: pursuit")
    ax.legend(loc="lower right", fontsize=7)
    ax.annotate(_CREDIT, (0.01, 0.01), xycoords="axes fraction", fontsize=6)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    try:
        with writes_to(path):
            fig.savefig(path, format="png")  # a PNG whatever the name ends with
    finally:
        plt.close(fig)
    return path
