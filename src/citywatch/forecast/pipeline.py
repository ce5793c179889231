"""From incidents to forecasts and backtests: data loading, surfaces, predictors by name.

The CLI and the benchmark call these; the models themselves are in :mod:`.predictors`,
:mod:`.etas` and :mod:`.evaluate`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from citywatch.console import to_jsonable
from citywatch.errors import DataError, ValidationError
from citywatch.forecast.datasets import load_dataset
from citywatch.forecast.etas import EtasPredictor
from citywatch.forecast.evaluate import Backtest, backtest, block_areas
from citywatch.forecast.predictors import (
    KDEPredictor,
    NaivePredictor,
    Predictor,
    ProspectivePredictor,
)
from citywatch.forecast.surface import (
    Events,
    IntArray,
    Surface,
    events_from_frame,
    grid_surface,
    require_precision,
    segment_surface,
    to_days,
)
from citywatch.incidents.taxonomy import load_taxonomy

__all__ = [
    "DEFAULT_CELL_M",
    "PREDICTOR_NAMES",
    "Study",
    "backtest_summary",
    "make_predictor",
    "pack_areas",
    "risk_table",
    "run_backtest",
    "study_from_dataset",
    "study_from_frame",
    "write_risk_geojson",
]

PREDICTORS: Final[dict[str, type[Any]]] = {
    "naive": NaivePredictor,
    "kde": KDEPredictor,
    "prospective": ProspectivePredictor,
    "etas": EtasPredictor,
}
PREDICTOR_NAMES: Final = tuple(PREDICTORS)
DEFAULT_CELL_M: Final = 250.0


def make_predictor(name: str, surface: Surface, **options: Any) -> Predictor:
    """A predictor by name (:data:`PREDICTOR_NAMES`) with its keyword options."""
    cls = PREDICTORS.get(name)
    if cls is None:
        raise ValidationError(
            f"unknown predictor {name!r}; choose from {', '.join(PREDICTOR_NAMES)}",
            field="predictor",
        )
    predictor: Predictor = cls(surface, **options)
    return predictor


@dataclass(frozen=True)
class Study:
    """Events, the surface they are forecast on and the areas of the audit."""

    name: str
    events: Events
    surface: Surface
    areas: tuple[IntArray, list[str]]
    dropped: int  # incidents without a location or outside every cell
    timezone: str = "UTC"  # the city's: forecast days are its local days
    # Events of the area audit: without the proactive categories (None: the same as events).
    reported: Events | None = None

    def as_dict(self) -> dict[str, Any]:
        """Summary for reports."""
        return {
            "name": self.name,
            "events": len(self.events),
            "time_precision": self.events.precision,
            "dropped": self.dropped,
            "timezone": self.timezone,
            "audit_events": len(self.events if self.reported is None else self.reported),
            "surface": self.surface.as_dict(),
            "areas": self.areas[1],
        }


def pack_areas(pack: Any, surface: Surface, level: str = "station") -> tuple[IntArray, list[str]]:
    """Label every cell with the pack's jurisdiction (of ``level``) holding its centroid."""
    lonlat = surface.lonlat()
    ids = pack.locate_many(lonlat[:, 0], lonlat[:, 1])[level].fillna("(outside)")
    names = sorted(set(ids))
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[i] for i in ids], dtype=np.int64), names


def study_from_frame(
    name: str,
    frame: pd.DataFrame,
    *,
    crs: str,
    cell_m: float = DEFAULT_CELL_M,
    segments: bool = False,
    pack: Any | None = None,
    study_area: Any | None = None,
    grid_until: float | str | None = None,
    timezone: str | None = None,
) -> Study:
    """Project incidents and build the surface (grid or a pack's street segments).

    Without a study area or pack the grid keeps the cells holding an incident before
    ``grid_until`` (the first test day; days since the epoch or a local date), so the test
    period never shapes the grid. The study's days are those of ``timezone`` (default: the
    pack's, otherwise UTC).
    """
    tz = timezone or (pack.timezone if pack is not None else "UTC")
    if isinstance(grid_until, str):
        grid_until = to_days(grid_until, tz)
    events, no_location = events_from_frame(frame, crs)
    if segments:
        if pack is None:
            raise ValidationError("street segments need a city pack (--pack)")
        surface = segment_surface(pack, unit_m=cell_m)
    else:
        if study_area is None and pack is not None:
            tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
            city = shapely.union_all([j.geometry for j in pack.level("city")])
            study_area = shapely.transform(
                city, lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1]))
            )
        training = events if grid_until is None else events.between(-np.inf, grid_until)
        surface = grid_surface(cell_m, crs, study_area=study_area, points=training.xy)
    kept = _inside(events, surface)
    areas = pack_areas(pack, surface) if pack is not None else block_areas(surface)
    dropped = no_location + len(events) - len(kept)
    return Study(name, kept, surface, areas, dropped, tz, _reported(frame, crs, surface))


def _inside(events: Events, surface: Surface) -> Events:
    """The events that fall in a cell of ``surface``."""
    inside = surface.assign(events.xy) >= 0
    return Events(events.xy[inside], events.t[inside], events.precision, events.crs)


def _reported(frame: pd.DataFrame, crs: str, surface: Surface) -> Events | None:
    """The located events inside the surface whose category is not proactive (``None``: all
    are), for the area audit: what police find on patrol follows where they look."""
    if "category" not in frame.columns:
        return None
    keep = ~frame["category"].isin(load_taxonomy().proactive_codes())
    if keep.all():
        return None
    located = keep & frame["lon"].notna() & frame["lat"].notna() & frame["received_at"].notna()
    if not located.any():
        return Events.from_arrays(np.zeros((0, 2)), np.zeros(0), "exact", crs)
    return _inside(events_from_frame(frame[located], crs)[0], surface)


def study_from_dataset(
    name: str,
    *,
    cell_m: float = DEFAULT_CELL_M,
    segments: bool = False,
    grid_until: float | str | None = None,
) -> Study:
    """A :class:`Study` of a bundled data set (:data:`citywatch.forecast.datasets.DATASETS`)."""
    data = load_dataset(name)
    pack = None
    if data.pack is not None:
        from citywatch.city import load_pack

        pack = load_pack(data.pack)
    study = study_from_frame(
        name,
        data.frame,
        crs=data.crs,
        cell_m=cell_m,
        segments=segments,
        pack=pack,
        study_area=data.study_area,
        grid_until=grid_until,
        timezone=data.timezone,
    )
    return replace(study, dropped=study.dropped + data.outside)


def run_backtest(
    study: Study,
    predictors: list[str],
    *,
    start: str,
    end: str,
    horizon_days: float = 1.0,
    options: dict[str, dict[str, Any]] | None = None,
    time_of_day: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> Backtest:
    """Backtest named predictors (the naive one is always included as the baseline)."""
    require_precision(study.events, horizon_days, time_of_day=time_of_day)
    names = ["naive", *[p for p in predictors if p != "naive"]]
    opts = options or {}
    objs = [make_predictor(n, study.surface, **opts.get(n, {})) for n in names]
    lo, hi = to_days(start, study.timezone), to_days(end, study.timezone)
    if study.events.between(-np.inf, lo).t.size == 0:
        raise ValidationError(f"no incidents before the test period starts ({start})")
    return backtest(
        study.events,
        study.surface,
        objs,
        start=lo,
        end=hi,
        horizon_days=horizon_days,
        areas=study.areas,
        audit_events=study.reported,
        timezone=study.timezone,
        on_progress=on_progress,
    )


def risk_table(surface: Surface, risk: np.ndarray) -> pd.DataFrame:
    """Risk per cell as ``cell, lon, lat, weight`` (what ``plan posts --demand`` reads)."""
    lonlat = surface.lonlat()
    return pd.DataFrame(
        {"cell": np.arange(len(surface)), "lon": lonlat[:, 0], "lat": lonlat[:, 1], "weight": risk}
    )


def backtest_summary(report: dict[str, Any], predictor: str) -> dict[str, Any]:
    """What a forecast layer shows of an evaluation report (``forecast evaluate --out``).

    Parameters
    ----------
    report : dict
        The report's JSON.
    predictor : str
        The predictor whose hit rate and PAI are kept (with the naive baseline's).

    Returns
    -------
    dict
        ``first_origin``, ``last_origin``, ``periods``, ``horizon_days`` and ``rows``: per
        predictor and coverage, the hit rate and PAI (mean and confidence interval).
    """
    summary = report.get("summary")
    if not isinstance(summary, list):
        raise DataError("not a forecast evaluate report (no summary)")
    if predictor not in {r.get("predictor") for r in summary}:
        raise DataError(f"the evaluation report has no backtest of {predictor!r}")
    rows = [
        {k: r[k] for k in ("predictor", "coverage", "hit_rate", "pai")}
        for r in summary
        if r.get("predictor") in (predictor, "naive")
    ]
    keys = ("first_origin", "last_origin", "periods", "horizon_days")
    return {**{k: report.get(k) for k in keys}, "rows": rows}


def write_risk_geojson(
    surface: Surface, risk: np.ndarray, path: Path, meta: dict[str, Any] | None = None
) -> None:
    """Cells with their risk and rank as a GeoJSON FeatureCollection (WGS-84).

    ``meta`` (predictor, origin, horizon, backtest) is written as the collection's foreign
    member ``citywatch``, which the dashboard's forecast layer shows."""
    geoms = surface.geometries_wgs84()
    order = np.argsort(-risk / surface.measure, kind="stable")
    rank = np.empty(len(risk), dtype=np.int64)
    rank[order] = np.arange(1, len(risk) + 1)
    features = [
        {
            "type": "Feature",
            "properties": {"cell": i, "risk": float(risk[i]), "rank": int(rank[i])},
            "geometry": json.loads(shapely.to_geojson(g)),
        }
        for i, g in enumerate(geoms)
    ]
    doc: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if meta is not None:
        doc["citywatch"] = to_jsonable(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
