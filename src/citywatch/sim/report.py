"""Outputs of a simulation: Parquet records, KPI summaries, PNG plots and an HTML report."""

from __future__ import annotations

import base64
import json
from importlib.resources import files
from pathlib import Path
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shapely
from jinja2 import Environment
from matplotlib.collections import PatchCollection
from matplotlib.patches import Polygon as MplPolygon

from citywatch.console import to_jsonable
from citywatch.sim.kpis import (
    KPI_LABELS,
    format_kpi,
    kpis_by,
    replication_kpis,
    summarise,
    utilisation,
)
from citywatch.sim.runner import SimResult

__all__ = ["kpi_table", "summary", "write_outputs", "write_tables"]

_TEMPLATE = files("citywatch.sim").joinpath("templates/report.html.j2")


def _local_hour(result: SimResult, timezone: str) -> Any:
    return lambda inc: inc["received_at"].dt.tz_convert(timezone).dt.hour


def summary(result: SimResult, timezone: str) -> dict[str, Any]:
    """KPIs with 95 % intervals, overall, by station and by local hour, and utilisation."""
    per_rep = replication_kpis(result.incidents, result.units)
    overall = summarise(per_rep)
    by_station = kpis_by(result.incidents, "station")
    by_hour = kpis_by(result.incidents, _local_hour(result, timezone))
    util_station = utilisation(result.units, "station").groupby("station")["utilisation"].mean()
    util_unit = utilisation(result.units, "unit_id").groupby("unit_id")["utilisation"].mean()

    def table(frame: pd.DataFrame) -> dict[str, Any]:
        return {
            str(idx): {
                k: {s: row[(k, s)] for s in ("mean", "ci_low", "ci_high")}
                for k in KPI_LABELS
                if (k, "mean") in row.index
            }
            for idx, row in frame.iterrows()
        }

    inc = result.incidents
    return {
        "scenario": result.scenario.name,
        "pack": Path(result.scenario.pack).name,
        "policy": result.scenario.policy,
        "start": result.scenario.start,
        "end": result.scenario.end,
        "replications": result.replications,
        "seed": result.seed,
        "units": int(result.units.groupby("replication").size().iloc[0]),
        "incidents_total": len(inc),
        "answered_total": int((inc["status"] == "answered").sum()),
        "unanswered_total": int((inc["status"] == "unanswered").sum()),
        "demand_rows_left_out": result.dropped,
        "kpis": {k: overall.loc[k].to_dict() for k in overall.index},
        "by_station": table(by_station),
        "by_hour": table(by_hour),
        "utilisation_by_station": util_station.to_dict(),
        "utilisation_by_unit": util_unit.to_dict(),
    }


def _plot_response(inc: pd.DataFrame, path: Path) -> None:
    resp = inc["response_s"].dropna().to_numpy() / 60.0
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(resp):
        top = max(20.0, float(np.percentile(resp, 99)))
        ax.hist(resp, bins=list(np.linspace(0.0, top, 61)), color="#3b6ea5")
    for x, label in ((3, "3 min"), (10, "10 min")):
        ax.axvline(x, color="#c0392b", lw=1, ls="--")
        ax.text(x, ax.get_ylim()[1] * 0.95, f" {label}", color="#c0392b", va="top")
    ax.set_xlabel("response time: call received to first unit on scene (min)")
    ax.set_ylabel("incidents (all replications)")
    ax.set_title("Response-time distribution")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_by_hour(by_hour: pd.DataFrame, path: Path) -> None:
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    hours = by_hour.index.to_numpy(int)
    for ax, k, scale, label in (
        (ax1, "on_scene_3min", 100.0, "% on scene within 3 min"),
        (ax2, "mean_response_s", 1 / 60.0, "mean response (min)"),
    ):
        m = by_hour[(k, "mean")].to_numpy(float) * scale
        lo = by_hour[(k, "ci_low")].to_numpy(float) * scale
        hi = by_hour[(k, "ci_high")].to_numpy(float) * scale
        ax.plot(hours, m, marker="o", color="#3b6ea5")
        ax.fill_between(hours, lo, hi, alpha=0.25, color="#3b6ea5", label="95 % interval")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax1.legend()
    ax2.set_xlabel("hour of day (local)")
    ax2.set_xticks(range(0, 24, 2))
    fig.suptitle("KPIs by hour of the call")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_zone_map(inc: pd.DataFrame, pack: Any, path: Path) -> None:
    zones = pack.level("zone") or pack.level("station")
    mean = inc.groupby("zone")["response_s"].mean() / 60.0
    fig, ax = plt.subplots(figsize=(6, 8))
    patches, values = [], []
    for z in zones:
        for poly in getattr(z.geometry, "geoms", [z.geometry]):
            patches.append(
                MplPolygon(np.asarray(shapely.get_coordinates(poly.exterior)), closed=True)
            )
            values.append(mean.get(z.id, np.nan))
    cmap = matplotlib.colormaps["viridis_r"].with_extremes(bad="#dddddd")
    coll = PatchCollection(patches, cmap=cmap, edgecolor="white", linewidths=0.3)
    coll.set_array(np.ma.masked_invalid(np.asarray(values, dtype=float)))
    ax.add_collection(coll)
    ax.autoscale_view()
    ax.set_aspect(1 / np.cos(np.radians(np.nanmean(pack.network.lat))))
    ax.set_axis_off()
    fig.colorbar(coll, ax=ax, shrink=0.6, label="mean response (min); grey: no incidents")
    ax.set_title("Mean response time by zone")
    fig.text(0.01, 0.01, "Road network © OpenStreetMap contributors", fontsize=7)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def kpi_table(incidents: pd.DataFrame, key: str) -> pd.DataFrame:
    """KPIs by ``key`` (``"station"``, ``"zone"``) as flat columns: ``key``, then
    ``<kpi>_mean``, ``<kpi>_ci_low``, ``<kpi>_ci_high`` for every KPI of :func:`kpis_by`."""
    table = kpis_by(incidents, key)
    # (kpi, "mean" | "ci_low" | "ci_high") pairs: a MultiIndex, which the stubs type as Index[str]
    columns = cast(list[tuple[str, str]], list(table.columns))
    flat = pd.DataFrame({f"{kpi}_{stat}": table[(kpi, stat)] for kpi, stat in columns})
    return flat.rename_axis(key).reset_index().astype({key: str})


def write_tables(result: SimResult, pack: Any, folder: Path, fmt: str) -> list[Path]:
    """The simulated incidents (points) and the KPIs by station and by zone (their polygons)
    as ``incidents``, ``kpis_by_station`` and ``kpis_by_zone`` files of format ``fmt``
    (csv, geojson, gpkg, parquet; :func:`citywatch.city.geo.write_table`) in ``folder``."""
    from citywatch.city.geo import FORMATS, jurisdiction_frame, table_format, write_table

    kind = table_format(folder, fmt)
    suffix = next(k for k, v in FORMATS.items() if v == kind)
    tables: dict[str, pd.DataFrame] = {"incidents": result.incidents}
    for key in ("station", "zone"):
        kpis = kpi_table(result.incidents, key)
        tables[f"kpis_by_{key}"] = kpis if kind == "csv" else jurisdiction_frame(pack, kpis, key)
    paths = []
    for name, table in tables.items():
        paths.append(folder / f"{name}{suffix}")
        write_table(table, paths[-1], kind, layer=name)
    return paths


def write_outputs(
    result: SimResult, pack: Any, out: Path, *, tables: str | None = None
) -> dict[str, Any]:
    """Write ``incidents.parquet``, ``assignments.parquet``, ``units.parquet``, ``summary.json``,
    three PNG plots and ``report.html`` into ``out``; return the summary.  With ``tables``
    (csv, geojson, gpkg or parquet) also :func:`write_tables` into ``out/tables``."""
    out.mkdir(parents=True, exist_ok=True)
    if tables is not None:
        write_tables(result, pack, out / "tables", tables)
    result.incidents.to_parquet(out / "incidents.parquet", index=False)
    result.assignments.to_parquet(out / "assignments.parquet", index=False)
    result.units.to_parquet(out / "units.parquet", index=False)
    s = summary(result, pack.timezone)
    (out / "summary.json").write_text(json.dumps(to_jsonable(s), indent=2, ensure_ascii=False))
    by_hour = kpis_by(result.incidents, _local_hour(result, pack.timezone))
    _plot_response(result.incidents, out / "response_times.png")
    _plot_by_hour(by_hour, out / "kpis_by_hour.png")
    _plot_zone_map(result.incidents, pack, out / "zone_map.png")
    img = {
        key: base64.b64encode((out / name).read_bytes()).decode()
        for key, name in (
            ("response", "response_times.png"),
            ("hour", "kpis_by_hour.png"),
            ("zone", "zone_map.png"),
        )
    }
    html = (
        Environment(autoescape=True)
        .from_string(_TEMPLATE.read_text("utf-8"))
        .render(
            s=to_jsonable(s)
            | {
                "kpis": s["kpis"],
                "by_station": s["by_station"],
                "utilisation_by_station": s["utilisation_by_station"],
            },
            labels=KPI_LABELS,
            img=img,
            fmt=format_kpi,
        )
    )
    (out / "report.html").write_text(html, encoding="utf-8")
    return s
