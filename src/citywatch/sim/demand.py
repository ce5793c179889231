"""Demand for the simulator: replayed incidents, or a fitted non-homogeneous Poisson stream.

The synthetic model is a Poisson process whose rate is piecewise constant by patrol zone and
hour of the week (local time).  ``separable`` (the default) estimates the rate of zone *z* in
hour-of-week *h* as ``N / W * p(z) * p(h)`` (N incidents over W weeks, with the share of zone
*z* and of hour *h*): with a few thousand incidents a year spread over ~80 zones x 168 hours most
cells are empty, and the product of the two margins is the usual smoother.  ``full`` uses each
cell's own count ``n(z, h) / W``.  A generated incident takes the location, category and
priority of a historical incident of its zone drawn at random, so it lies where incidents really
happen and on the road network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd

from citywatch.city import CityPack
from citywatch.domain import PRIORITY_DEFAULT
from citywatch.errors import DataError, InsufficientPrecisionError, ValidationError
from citywatch.incidents.load import load_incidents
from citywatch.incidents.record import Incident
from citywatch.plan.risk import RiskSurface
from citywatch.sim.scenario import Demand

__all__ = [
    "DemandModel",
    "IncidentBatch",
    "fit_demand",
    "generate_incidents",
    "load_history",
    "relocate",
    "replay_batch",
]

#: Rounds of redrawing locations that fall off the city's roads before giving up.
_RELOCATE_ROUNDS = 50

HOURS_PER_WEEK = 168


@dataclass(frozen=True)
class IncidentBatch:
    """Incidents as columns, ordered by time; ``t`` is seconds after the simulation start."""

    id: npt.NDArray[np.object_]
    t: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    lat: npt.NDArray[np.float64]
    category: npt.NDArray[np.object_]
    priority: npt.NDArray[np.int64]
    station: npt.NDArray[np.object_]
    zone: npt.NDArray[np.object_]

    def __len__(self) -> int:
        return len(self.t)


def load_history(demand: Demand, pack: CityPack) -> tuple[pd.DataFrame, dict[str, int]]:
    """The real incidents a demand is built from, located in the pack, with what was dropped.

    Returns
    -------
    frame : pandas.DataFrame
        Canonical incidents with exact times inside the city, with ``station`` and ``zone``
        filled from the pack's polygons and missing priorities set to 3.
    dropped : dict
        How many rows were left out, by reason (reported to the user, never silently).
    """
    url = None if demand.database in (None, "", "default") else demand.database
    loaded = load_incidents(
        url,
        files=demand.files,
        database=bool(demand.database),
        start=demand.fit_start,
        end=demand.fit_end,
        categories=demand.categories or None,
        pack=pack,
    )
    frame, dropped = loaded.frame, dict(loaded.dropped)
    if frame.empty and not dropped:
        raise DataError("the scenario's demand source holds no incidents")

    def drop(mask: pd.Series, reason: str) -> None:
        nonlocal frame
        n = int(mask.sum())
        if n:
            dropped[reason] = dropped.get(reason, 0) + n
            frame = frame[~mask]

    drop(frame["time_precision"] != "exact", "time known only to the day or month")
    drop(frame["lon"].isna() | frame["lat"].isna(), "no location")
    # Every incident left lies inside the city; the demand cells are the polygons it lies in.
    where = pack.locate_many(frame["lon"].to_numpy(float), frame["lat"].to_numpy(float))
    where.index = frame.index
    frame = frame.assign(
        station=where["station"].to_numpy(),
        zone=where["zone"].fillna(where["station"]).fillna(where["city"]).to_numpy(),
        priority=frame["priority"].fillna(PRIORITY_DEFAULT).astype(int),
    )
    if frame.empty:
        raise InsufficientPrecisionError(
            f"no usable incident left for the simulation (left out: {dropped})"
        )
    return frame.sort_values("received_at", kind="stable").reset_index(drop=True), dropped


def _batch(frame: pd.DataFrame, t: Any, ids: Any) -> IncidentBatch:
    return IncidentBatch(
        id=np.asarray(ids, dtype=object),
        t=np.asarray(t, dtype=np.float64),
        lon=frame["lon"].to_numpy(np.float64),
        lat=frame["lat"].to_numpy(np.float64),
        category=frame["category"].to_numpy(object),
        priority=frame["priority"].to_numpy(np.int64),
        station=frame["station"].to_numpy(object),
        zone=frame["zone"].to_numpy(object),
    )


def replay_batch(
    history: pd.DataFrame, start: datetime, end: datetime, scale: float, rng: np.random.Generator
) -> IncidentBatch:
    """The incidents received in ``[start, end)``, each kept with probability ``scale``."""
    if scale > 1:
        raise ValidationError("replay can only thin demand (scale <= 1)", field="scale")
    sel = history[(history["received_at"] >= start) & (history["received_at"] < end)]
    keep = rng.random(len(sel)) < scale
    sel = sel[keep]
    t = np.asarray((sel["received_at"] - pd.Timestamp(start)).dt.total_seconds(), dtype=np.float64)
    return _batch(sel, t, sel["id"].to_numpy(object))


@dataclass(frozen=True)
class DemandModel:
    """A fitted non-homogeneous Poisson model: rate per zone and hour of week, and the pools.

    ``rate[z, h]`` is incidents per hour in zone ``zones[z]`` in local hour-of-week ``h``
    (0 = Monday 00:00-01:00).
    """

    timezone: str
    zones: tuple[str, ...]
    rate: npt.NDArray[np.float64]
    pool: pd.DataFrame
    pool_start: npt.NDArray[np.int64]
    weeks: float

    @property
    def hourly_total(self) -> npt.NDArray[np.float64]:
        """Expected incidents per hour over the whole city, by hour of week."""
        total: npt.NDArray[np.float64] = self.rate.sum(axis=0)
        return total

    def sample(
        self, start: datetime, end: datetime, rng: np.random.Generator, id_prefix: str = "sim"
    ) -> IncidentBatch:
        """Draw the incidents of ``[start, end)`` (times in seconds after ``start``)."""
        tz = ZoneInfo(self.timezone)
        t0 = pd.Timestamp(start).tz_convert("UTC")
        t1 = pd.Timestamp(end).tz_convert("UTC")
        hours = pd.date_range(t0.floor("h"), t1, freq="h", inclusive="left")
        local = hours.tz_convert(tz)
        how = (local.day_of_week * 24 + local.hour).to_numpy()
        lo = np.maximum((hours - t0).total_seconds().to_numpy(), 0.0)
        hi = np.minimum((hours - t0).total_seconds().to_numpy() + 3600.0, (t1 - t0).total_seconds())
        span = np.maximum(hi - lo, 0.0)
        totals = self.rate[:, how].sum(axis=0)
        counts = rng.poisson(totals * span / 3600.0)
        n = int(counts.sum())
        bins = np.repeat(np.arange(len(how)), counts)
        t = lo[bins] + rng.random(n) * span[bins]
        # Zone of each incident: categorical with the zone rates of its hour of week.
        cum = np.cumsum(self.rate[:, how], axis=0) / np.where(totals > 0, totals, 1.0)
        # Offsetting column b by 2b makes all columns one sorted array: one searchsorted.
        nz = len(self.zones)
        flat = (cum + 2.0 * np.arange(len(how))[None, :]).T.ravel()
        u = rng.random(n)
        zone = np.searchsorted(flat, u + 2.0 * bins, side="right") - bins * nz
        zone = np.minimum(zone, nz - 1)
        sizes = np.diff(np.append(self.pool_start, len(self.pool)))
        pick = self.pool_start[zone] + (rng.random(n) * sizes[zone]).astype(np.int64)
        order = np.argsort(t, kind="stable")
        rows = self.pool.iloc[pick[order]]
        ids = [f"{id_prefix}:{k}" for k in range(n)]
        return _batch(rows, t[order], ids)


def relocate(
    batch: IncidentBatch,
    surface: RiskSurface,
    pack: CityPack,
    usable: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.bool_]],
    rng: np.random.Generator,
) -> IncidentBatch:
    """The same incidents (times, categories, priorities) at locations drawn from a surface.

    Each location is a cell drawn with probability proportional to its weight and a point
    uniform in that cell (:meth:`RiskSurface.sample`); a point that is not ``usable`` (outside
    the city, or too far from the roads of the fleet) is drawn again, so a cell that is partly
    water receives incidents in proportion to its weight times its usable share.

    Raises
    ------
    DataError
        When draws keep falling off the city's roads (a surface of another city).
    """
    n = len(batch)
    lonlat = np.empty((n, 2))
    todo = np.arange(n)
    for _ in range(_RELOCATE_ROUNDS):
        if not len(todo):
            break
        _, pts = surface.sample(len(todo), rng)
        ok = usable(pts)
        lonlat[todo[ok]] = pts[ok]
        todo = todo[~ok]
    if len(todo):
        raise DataError(
            f"{len(todo)} of {n} locations drawn from the risk surface keep falling outside the "
            f"city or off its roads: is it a surface of {pack.name}?"
        )
    where = pack.locate_many(lonlat[:, 0], lonlat[:, 1])
    return replace(
        batch,
        lon=lonlat[:, 0].copy(),
        lat=lonlat[:, 1].copy(),
        station=where["station"].to_numpy(object),
        zone=where["zone"].fillna(where["station"]).fillna(where["city"]).to_numpy(object),
    )


def fit_demand(
    history: pd.DataFrame,
    timezone: str,
    *,
    scale: float = 1.0,
    model: str = "separable",
    fit_start: datetime | None = None,
    fit_end: datetime | None = None,
) -> DemandModel:
    """Fit the zone x hour-of-week Poisson rates of incidents.

    Parameters
    ----------
    history : pandas.DataFrame
        Located incidents (from :func:`load_history`): ``received_at``, ``zone`` and the columns
        copied into generated incidents.
    timezone : str
        Local time zone of hours of the week.
    scale : float
        Multiplier on every rate.
    model : {"separable", "full"}
        Rate estimator (see the module documentation).
    fit_start, fit_end : datetime, optional
        The observation window; by default from the first to the last incident.

    Returns
    -------
    DemandModel
    """
    if history.empty:
        raise DataError("cannot fit demand: no incidents")
    received = history["received_at"]
    first = pd.Timestamp(fit_start) if fit_start is not None else received.min()
    last = pd.Timestamp(fit_end) if fit_end is not None else received.max()
    weeks = max((last - first).total_seconds() / (7 * 86400), 1 / 168)
    local = received.dt.tz_convert(timezone)
    how = (local.dt.day_of_week * 24 + local.dt.hour).to_numpy()
    zones, zone_idx = np.unique(history["zone"].astype(str).to_numpy(), return_inverse=True)
    counts = np.zeros((len(zones), HOURS_PER_WEEK))
    np.add.at(counts, (zone_idx, how), 1.0)
    n = counts.sum()
    if model == "full":
        rate = counts / weeks
    elif model == "separable":
        rate = np.outer(counts.sum(axis=1), counts.sum(axis=0)) / n / weeks
    else:
        raise ValidationError("model must be separable or full", field="model")
    order = np.argsort(zone_idx, kind="stable")
    pool = history.iloc[order].reset_index(drop=True)
    pool_start = np.searchsorted(zone_idx[order], np.arange(len(zones))).astype(np.int64)
    return DemandModel(timezone, tuple(zones), rate * scale, pool, pool_start, weeks)


def generate_incidents(
    model: DemandModel,
    start: datetime,
    end: datetime | None = None,
    *,
    seed: int,
    chunk: timedelta = timedelta(days=1),
) -> Iterator[Incident]:
    """Yield synthetic incidents from a fitted model, in time order (endless if ``end`` is None).

    Parameters
    ----------
    model : DemandModel
        From :func:`fit_demand`.
    start : datetime
        Time-zone-aware start of the stream.
    end : datetime, optional
        Stop before this time; ``None`` for an endless stream (a live demo feed).
    seed : int
        Seed: the same seed, start and chunk give the same stream.
    chunk : timedelta
        Incidents are drawn a chunk at a time.

    Yields
    ------
    Incident
        Canonical incidents with ``source = "synthetic"``, ``time_precision = "exact"``.
    """
    if start.tzinfo is None:
        raise ValidationError("start must be time-zone aware", field="start")
    rng = np.random.default_rng(seed)
    k = 0
    lo = start
    while end is None or lo < end:
        hi = lo + chunk if end is None else min(lo + chunk, end)
        batch = model.sample(lo, hi, rng)
        for i in range(len(batch)):
            yield Incident(
                id=f"synthetic:{seed}:{k}",
                source="synthetic",
                source_id=f"{seed}:{k}",
                received_at=lo + timedelta(seconds=float(batch.t[i])),
                time_precision="exact",
                category=str(batch.category[i]),
                priority=int(batch.priority[i]),
                lon=float(batch.lon[i]),
                lat=float(batch.lat[i]),
                station=None if batch.station[i] is None else str(batch.station[i]),
                zone=str(batch.zone[i]),
            )
            k += 1
        lo = hi
