"""Hand-made street grids as city packs, and a brute-force visibility written independently
of the package (plain loops, networkx shortest paths) to check it against."""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from citywatch.city.network import EDGE_COLUMNS, RoadNetwork
from citywatch.city.pack import CityPack, Jurisdiction
from citywatch.surveillance.sensors import Sensor

CRS = "EPSG:32618"
X0, Y0 = 583_000.0, 4_507_000.0  # central Manhattan in UTM 18N
TO_WGS = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def lonlat(x: float, y: float) -> tuple[float, float]:
    """WGS-84 of a point given in metres from the grid's origin."""
    lon, lat = TO_WGS.transform(X0 + x, Y0 + y)
    return float(lon), float(lat)


def grid_pack(
    nx_: int = 3, ny: int = 3, block_x: float = 100.0, block_y: float = 100.0
) -> CityPack:
    """A grid of two-way streets, ``nx_`` by ``ny`` nodes; stations ``W`` and ``E`` split it at
    the middle column's x."""
    xs, ys, ids = [], [], []
    for j in range(ny):
        for i in range(nx_):
            xs.append(i * block_x)
            ys.append(j * block_y)
            ids.append(f"n{i}_{j}")
    coords = [lonlat(x, y) for x, y in zip(xs, ys, strict=True)]
    nodes = pd.DataFrame(
        {"node_id": ids, "lon": [c[0] for c in coords], "lat": [c[1] for c in coords]}
    )
    rows = []
    for j in range(ny):
        for i in range(nx_):
            k = j * nx_ + i
            for di, dj, length in ((1, 0, block_x), (0, 1, block_y)):
                if i + di < nx_ and j + dj < ny:
                    k2 = (j + dj) * nx_ + i + di
                    for a, b in ((k, k2), (k2, k)):
                        rows.append({"u": a, "v": b, "length_m": length, "name": f"s{a}-{b}"})
    edges = pd.DataFrame(rows).reindex(columns=list(EDGE_COLUMNS))
    edges["u"] = edges["u"].astype(np.int32)
    edges["v"] = edges["v"].astype(np.int32)
    edges["length_m"] = edges["length_m"].astype(float)
    edges["maxspeed_kph"] = edges["maxspeed_kph"].astype(float)
    width, height = (nx_ - 1) * block_x, (ny - 1) * block_y
    mid = (nx_ // 2) * block_x

    def box(x1: float, y1: float, x2: float, y2: float) -> shapely.Polygon:
        pts = [lonlat(x1, y1), lonlat(x2, y1), lonlat(x2, y2), lonlat(x1, y2)]
        return shapely.Polygon(pts)

    jurisdictions = [
        Jurisdiction("grid", "Grid", "网格", "city", None, box(-50, -50, width + 50, height + 50)),
        Jurisdiction(
            "B", "Bureau", "分局", "bureau", "grid", box(-50, -50, width + 50, height + 50)
        ),
        Jurisdiction("W", "West", "西", "station", "B", box(-50, -50, mid - 1, height + 50)),
        Jurisdiction("E", "East", "东", "station", "B", box(mid - 1, -50, width + 50, height + 50)),
    ]
    meta = {"name": "grid", "timezone": "America/New_York", "crs": CRS, "max_snap_m": 60.0}
    return CityPack(Path("."), meta, RoadNetwork(nodes, edges), jurisdictions, [])


def brute_force_seen(
    pack: CityPack, sensors: list[Sensor], spacing: float, detour: float = 1.05, slack: float = 10.0
) -> list[tuple[float, set[int]]]:
    """Every sample piece of every street as ``(length, indices of sensors that see it)``."""
    to_m = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    nx_x, nx_y = to_m.transform(pack.network.lon, pack.network.lat)
    g = nx.Graph()
    streets = {}
    for u, v in zip(pack.network.edges["u"], pack.network.edges["v"], strict=True):
        key = (min(u, v), max(u, v))
        if key not in streets:
            streets[key] = math.dist((nx_x[u], nx_y[u]), (nx_x[v], nx_y[v]))
            g.add_edge(key[0], key[1], weight=streets[key])
    dist = dict(nx.all_pairs_dijkstra_path_length(g))

    def locate(x: float, y: float) -> tuple[tuple[int, int], float]:
        best = None
        for (a, b), length in streets.items():
            ax, ay, bx, by = nx_x[a], nx_y[a], nx_x[b], nx_y[b]
            t = max(0.0, min(1.0, ((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / length**2))
            d = math.dist((x, y), (ax + t * (bx - ax), ay + t * (by - ay)))
            if best is None or d < best[0]:
                best = (d, (a, b), t * length)
        assert best is not None
        return best[1], best[2]

    cams = []
    for s in sensors:
        x, y = to_m.transform(s.lon, s.lat)
        (a, b), off = locate(x, y)
        length = streets[(a, b)]
        cx = nx_x[a] + off / length * (nx_x[b] - nx_x[a])
        cy = nx_y[a] + off / length * (nx_y[b] - nx_y[a])
        cams.append(((a, b), off, cx, cy, s))
    out = []
    for (a, b), length in streets.items():
        n = max(1, math.ceil(length / spacing))
        for k in range(n):
            off = (k + 0.5) * length / n
            px = nx_x[a] + off / length * (nx_x[b] - nx_x[a])
            py = nx_y[a] + off / length * (nx_y[b] - nx_y[a])
            seen = set()
            for j, ((ca, cb), coff, cx, cy, s) in enumerate(cams):
                straight = math.dist((px, py), (cx, cy))
                if straight > s.effective_range_m:
                    continue
                if s.effective_fov_deg < 360 and straight > 0:
                    bearing = math.degrees(math.atan2(px - cx, py - cy)) % 360
                    diff = abs((bearing - s.direction_deg + 180) % 360 - 180)  # type: ignore[operator]
                    if diff > s.effective_fov_deg / 2 + 1e-9:
                        continue
                clen = streets[(ca, cb)]
                path = math.inf
                if (ca, cb) == (a, b):
                    path = abs(off - coff)
                for end_c, to_c in ((ca, coff), (cb, clen - coff)):
                    for end_p, to_p in ((a, off), (b, length - off)):
                        path = min(path, to_c + dist[end_c][end_p] + to_p)
                if path <= detour * straight + slack:
                    seen.add(j)
            out.append((length / n, seen))
    return out
