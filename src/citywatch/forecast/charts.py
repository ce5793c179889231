"""PNG charts of forecasts: coverage curves, a risk map, the per-area audit and the urn drift."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: charts are written by the CLI and in CI

import numpy as np
import shapely
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as MplPolygon

from citywatch.forecast.evaluate import CURVE_POINTS, Backtest
from citywatch.forecast.feedback import UrnRun
from citywatch.forecast.surface import FloatArray, Surface

__all__ = ["audit_png", "coverage_png", "risk_png", "urn_png"]


def _save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def coverage_png(result: Backtest, path: Path, title: str) -> None:
    """Hit rate against the share of area flagged, per predictor, pooled over the test periods."""
    fig = Figure(figsize=(6.0, 4.5))
    ax = fig.subplots()
    total = max(float(result.events.sum()), 1.0)
    for p, name in enumerate(result.predictors):
        ax.plot(CURVE_POINTS, result.curves[p] / total, label=name, lw=1.6)
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="random")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("share of area flagged")
    ax.set_ylabel("share of incidents in flagged cells (hit rate)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def risk_png(surface: Surface, risk: FloatArray, path: Path, title: str) -> None:
    """Map of the risk surface (grid squares or street segments), darker = higher risk."""
    fig = Figure(figsize=(6.0, 6.0))
    ax = fig.subplots()
    density = risk / surface.measure
    top = float(density.max()) or 1.0
    shade = matplotlib.colormaps["YlOrRd"](density / top)
    if surface.kind == "grid":
        patches = [MplPolygon(shapely.get_coordinates(g.exterior)) for g in surface.geometries]
        ax.add_collection(PatchCollection(patches, facecolor=shade, edgecolor="none"))
    else:
        lines = [shapely.get_coordinates(g) for g in surface.geometries]
        ax.add_collection(LineCollection(lines, colors=shade, linewidths=1.2))
    ax.autoscale_view()
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def audit_png(result: Backtest, predictor: str, path: Path, title: str) -> None:
    """Per area: share of flagged cells (line) vs share of reported incidents (dots) by month."""
    rows = result.area_audit()
    months = sorted({r["month"] for r in rows})
    fig = Figure(figsize=(7.0, 4.5))
    ax = fig.subplots()
    colours = matplotlib.colormaps["tab10"]
    for a, area in enumerate(result.area_names):
        mine = [r for r in rows if r["area"] == area]
        x = np.arange(len(mine))
        colour = colours(a % 10)
        ax.plot(x, [r[f"flagged_share_{predictor}"] for r in mine], color=colour, label=area)
        inc = [np.nan if r["incident_share"] is None else r["incident_share"] for r in mine]
        ax.plot(x, inc, "o", color=colour, ms=3)
    ax.set_xticks(np.arange(len(months)), months, rotation=90, fontsize=7)
    ax.set_ylabel("share (line: flagged cells, dots: incidents)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=6, ncol=2, loc="upper right")
    _save(fig, path)


def urn_png(runs: dict[str, UrnRun], path: Path, title: str) -> None:
    """Share of patrols sent to area 0 over time, per update rule (several seeds each)."""
    fig = Figure(figsize=(6.5, 4.0))
    ax = fig.subplots()
    for (label, run), colour in zip(
        runs.items(), ("tab:red", "tab:blue", "tab:green"), strict=False
    ):
        for s in range(run.patrol_share.shape[0]):
            ax.plot(run.patrol_share[s, :, 0], color=colour, lw=0.7, alpha=0.5,
                    label=label if s == 0 else None)  # fmt: skip
    ax.axhline(runs[next(iter(runs))].truth[0], color="black", ls="--", lw=1, label="true share")
    ax.set_ylim(0, 1)
    ax.set_xlabel("day")
    ax.set_ylabel("share of patrols in area A")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    _save(fig, path)
