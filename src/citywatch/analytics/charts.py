"""Matplotlib charts of the CompStat report: trend, by-jurisdiction bars, hour profile, map.

Charts are drawn on the Agg backend (no display needed).  Chinese labels need a CJK font;
:func:`cjk_font` finds one (WenQuanYi, Noto CJK, Source Han, ...) and, when the machine has
none, the charts fall back to English labels while the surrounding report keeps Chinese text.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: reports are rendered on servers and in CI

import numpy as np
import pandas as pd
import shapely.plotting
from matplotlib import font_manager
from matplotlib.figure import Figure

__all__ = [
    "bar_chart",
    "chart_style",
    "cjk_font",
    "figure_to_svg",
    "hour_chart",
    "map_chart",
    "trend_chart",
]

#: CJK fonts looked for by name before asking fontconfig.
_KNOWN_CJK = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
)

Label = Callable[[str], str]


@cache
def cjk_font() -> str | None:
    """Family name of an installed font with Chinese glyphs, or None when there is none."""
    names = {f.name for f in font_manager.fontManager.ttflist}
    for name in _KNOWN_CJK:
        if name in names:
            return name
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return None
    # Fonts installed after matplotlib built its cache are unknown to it: ask fontconfig.
    out = subprocess.run(
        [fc_list, ":lang=zh", "file"], capture_output=True, text=True, check=False
    ).stdout
    for line in out.splitlines():
        path = line.split(":")[0].strip()
        if not path:
            continue
        try:
            font_manager.fontManager.addfont(path)
        except (OSError, RuntimeError):
            continue
        return font_manager.FontProperties(fname=path).get_name()
    return None


@contextmanager
def chart_style() -> Iterator[None]:
    """Settings for drawing and saving report charts: a CJK font first when there is one."""
    font = cjk_font()
    fonts = [font] if font else []
    with matplotlib.rc_context(
        {
            "font.family": "sans-serif",
            "font.sans-serif": [*fonts, *matplotlib.rcParams["font.sans-serif"]],
            "pdf.fonttype": 42,  # TrueType in PDFs keeps the text searchable
            "svg.fonttype": "path",
        }
    ):
        yield


def new_figure(width: float = 8.0, height: float = 3.6) -> Figure:
    """A figure not attached to pyplot (no global state, safe in servers)."""
    return Figure(figsize=(width, height), layout="constrained")


def figure_to_svg(fig: Figure) -> str:
    """SVG text of a figure (glyphs as paths under :func:`chart_style`: no font needed)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", dpi=150, metadata={"Date": None})  # same data, same bytes
    text = buf.getvalue()
    return text[text.index("<svg") :]


def trend_chart(monthly: pd.DataFrame, label: Label, title: str) -> Figure:
    """Monthly counts, one line per category label (columns), months as the index."""
    fig = new_figure()
    ax = fig.subplots()
    x = np.arange(len(monthly))
    for column in monthly.columns:
        ax.plot(x, monthly[column].to_numpy(), marker="o", markersize=3, label=label(column))
    step = max(1, len(x) // 12)
    ax.set_xticks(x[::step], [str(p) for p in monthly.index[::step]], rotation=45, ha="right")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", ncols=2)
    return fig


def bar_chart(
    names: Sequence[str],
    current: Sequence[int],
    previous: Sequence[int],
    legend: tuple[str, str],
    title: str,
) -> Figure:
    """Side-by-side bars of two periods per jurisdiction."""
    fig = new_figure(height=3.8)
    ax = fig.subplots()
    x = np.arange(len(names))
    ax.bar(x - 0.2, previous, width=0.4, label=legend[1], color="#9aa5b1")
    ax.bar(x + 0.2, current, width=0.4, label=legend[0], color="#1f5fa8")
    ax.set_xticks(x, list(names), rotation=60 if len(names) > 12 else 0, fontsize=8)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def hour_chart(hours: np.ndarray, legend: tuple[str, str], title: str, xlabel: str) -> Figure:
    """Share of incidents by local hour in two periods (row 0 current, row 1 previous)."""
    fig = new_figure()
    ax = fig.subplots()
    for row, colour, name in ((1, "#9aa5b1", legend[1]), (0, "#c0392b", legend[0])):
        total = hours[row].sum()
        share = hours[row] / total * 100 if total else np.zeros(24)
        ax.step(np.arange(25), np.append(share, share[-1]), where="post", color=colour, label=name)
    ax.set_xticks(range(0, 25, 3))
    ax.set_xlim(0, 24)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("%")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def map_chart(
    points: pd.DataFrame,
    counts: dict[str, int],
    title: str,
    boundaries: Mapping[str, Any] | None = None,
) -> Figure:
    """Incidents by jurisdiction: a choropleth of the counts when boundaries are known, and
    the incidents as points coloured by jurisdiction, each jurisdiction labelled with its count.

    ``points`` has ``lon``, ``lat`` and ``jurisdiction``; ``boundaries`` maps jurisdiction ids
    to shapely (multi)polygons in WGS-84.  Labels sit inside each polygon, or at the median
    point without boundaries.  Longitude is scaled by cos(latitude) so shapes are not stretched.
    """
    fig = new_figure(width=6.5, height=6.5)
    ax = fig.subplots()
    ax.set_title(title)
    labels: dict[str, tuple[float, float]] = {}
    if boundaries:
        top = max([1, *counts.values()])
        blues = matplotlib.colormaps["Blues"]
        for name, shape in boundaries.items():
            colour = blues(0.1 + 0.8 * counts.get(name, 0) / top)
            shapely.plotting.plot_polygon(
                shape,
                ax=ax,
                add_points=False,
                facecolor=colour,
                edgecolor="#4a5563",
                linewidth=0.6,
            )
            inner = shape.representative_point()
            labels[name] = (inner.x, inner.y)
    if points.empty and not boundaries:
        ax.text(0.5, 0.5, "–", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    if not points.empty:
        codes, names = pd.factorize(points["jurisdiction"], sort=True)
        _draw_points(ax, points, codes, faint=bool(boundaries))
        centres = points.groupby(codes)[["lon", "lat"]].median().to_numpy(float)
        for code, name in enumerate(names):
            labels.setdefault(str(name), (centres[code, 0], centres[code, 1]))
    for name, (x, y) in labels.items():
        ax.annotate(
            f"{name}: {counts.get(name, 0)}",
            (x, y),
            fontsize=7,
            ha="center",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.7, "lw": 0},
        )
    ax.autoscale_view()
    mid_lat = float(np.mean([y for _, y in labels.values()]))
    ax.set_aspect(1 / np.cos(np.radians(mid_lat)))
    ax.tick_params(labelsize=7)
    return fig


def _draw_points(ax: Any, points: pd.DataFrame, codes: np.ndarray, faint: bool) -> None:
    """Points coloured by jurisdiction (grey over a choropleth), or a density image."""
    if len(points) > _SCATTER_LIMIT:
        _density_image(ax, points, codes)
        return
    ax.scatter(
        points["lon"],
        points["lat"],
        s=max(3.0, min(24.0, 6000 / len(points))),  # sparse maps need bigger dots
        c="#1d2430" if faint else codes % 20,
        cmap=None if faint else "tab20",
        vmin=None if faint else 0,
        vmax=None if faint else 19,
        alpha=0.5 if faint else 0.7,
        linewidths=0,
        rasterized=True,  # one embedded image, not one path per point
    )


#: Above this many points the map is drawn as a density image (drawing each point is too slow).
_SCATTER_LIMIT = 20_000
_GRID = 500


def _density_image(ax: Any, points: pd.DataFrame, codes: np.ndarray) -> None:
    """Pixels coloured by a jurisdiction found in them, opacity growing with log density."""
    lon, lat = points["lon"].to_numpy(float), points["lat"].to_numpy(float)
    extent = (lon.min(), lon.max(), lat.min(), lat.max())
    ix = np.minimum(((lon - extent[0]) / (np.ptp(lon) or 1) * _GRID).astype(int), _GRID - 1)
    iy = np.minimum(((lat - extent[2]) / (np.ptp(lat) or 1) * _GRID).astype(int), _GRID - 1)
    pixel = iy * _GRID + ix
    density = np.bincount(pixel, minlength=_GRID * _GRID)
    owner = np.zeros(_GRID * _GRID, dtype=int)
    owner[pixel] = codes  # the last point written wins: neighbours share a jurisdiction
    rgba = matplotlib.colormaps["tab20"](owner % 20 / 19)
    rgba[:, 3] = np.log1p(density) / np.log1p(density.max())
    ax.imshow(rgba.reshape(_GRID, _GRID, 4), origin="lower", extent=extent, interpolation="none")
