"""Maps of coverage, blind spots and night loss: GeoJSON for the dashboard and GIS, PNG files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from citywatch.city.pack import feature_collection
from citywatch.surveillance.coverage import CameraCoverage
from citywatch.surveillance.registry import sensors_geojson

__all__ = ["OSM_CREDIT", "STATUS_COLOURS", "segments_geojson", "write_geojson", "write_png"]

#: Credit shown wherever OpenStreetMap-derived streets are drawn.
OSM_CREDIT = "© OpenStreetMap contributors"
#: Colour of a sensor by status, on the PNG maps and the dashboard layer.
STATUS_COLOURS = {"online": "#1a9850", "offline": "#d73027", "maintenance": "#fdae61"}
_DECIMALS = 6


def _wgs_lines(cov: CameraCoverage, segments: np.ndarray) -> list[list[list[float]]]:
    to_wgs = Transformer.from_crs(cov.streets.crs, "EPSG:4326", always_xy=True)
    out = []
    for line in cov.streets.lines[segments]:
        xy = shapely.get_coordinates(line)
        lon, lat = to_wgs.transform(xy[:, 0], xy[:, 1])
        out.append(
            [
                [round(float(a), _DECIMALS), round(float(b), _DECIMALS)]
                for a, b in zip(lon, lat, strict=True)
            ]
        )
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def segments_geojson(cov: CameraCoverage, table: pd.DataFrame) -> dict[str, Any]:
    """A per-segment table (blind spots, night view) as GeoJSON lines with its columns."""
    lines = _wgs_lines(cov, table["segment"].to_numpy(dtype=np.int64))
    props = table.drop(columns=["lon", "lat"]).to_dict(orient="records")
    features = [
        {
            "type": "Feature",
            "properties": {k: _jsonable(v) for k, v in p.items()},
            "geometry": {"type": "LineString", "coordinates": line},
        }
        for p, line in zip(props, lines, strict=True)
    ]
    doc = feature_collection(features)
    doc["attribution"] = OSM_CREDIT
    return doc


def write_geojson(doc: dict[str, Any], path: Path | str) -> Path:
    """Write a GeoJSON document (UTF-8)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def write_png(
    cov: CameraCoverage,
    path: Path | str,
    *,
    highlight: pd.DataFrame | None = None,
    highlight_label: str = "blind spots",
    title: str = "",
) -> Path:
    """PNG map: streets (seen now in green), highlighted segments in red, sensors by status."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    all_lines = _wgs_lines(cov, np.arange(len(cov.streets)))
    fig, ax = plt.subplots(figsize=(8, 10), dpi=120)
    ax.add_collection(LineCollection(all_lines, colors="#cccccc", linewidths=0.4))
    seen_any = np.asarray(cov.seen.sum(axis=1)).ravel() > 0
    seen_segments = np.unique(cov.samples.segment[seen_any])
    ax.add_collection(
        LineCollection(
            [all_lines[i] for i in seen_segments],
            colors="#1a9850",
            linewidths=1.0,
            label="in view of a camera",
        )
    )
    if highlight is not None and len(highlight):
        chosen = highlight["segment"].to_numpy(dtype=np.int64)
        ax.add_collection(
            LineCollection(
                [all_lines[i] for i in chosen],
                colors="#d73027",
                linewidths=1.8,
                label=highlight_label,
            )
        )
    points = sensors_geojson(cov.sensors)["features"]
    for status, colour in STATUS_COLOURS.items():
        xy = [f["geometry"]["coordinates"] for f in points if f["properties"]["status"] == status]
        if xy:
            arr = np.asarray(xy)
            ax.scatter(arr[:, 0], arr[:, 1], s=6, c=colour, label=f"camera {status}", zorder=3)
    ax.autoscale()
    ax.set_aspect(1.0 / np.cos(np.radians(float(np.mean(cov.pack.network.lat)))))
    ax.set_title(title or f"{cov.pack.name}: camera coverage")
    ax.legend(loc="lower right", fontsize=7)
    ax.annotate(OSM_CREDIT, (0.01, 0.01), xycoords="axes fraction", fontsize=6)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
