"""Blind spots (street segments no working camera sees) and the night-time view of power loss.

Both answer per street segment, as tables that :mod:`citywatch.surveillance.maps` draws.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from citywatch.errors import ValidationError
from citywatch.surveillance.coverage import NIGHT_HOURS, CameraCoverage, local_hours
from citywatch.surveillance.sensors import HOURS

__all__ = ["SEGMENT_COLUMNS", "blind_spots", "night_view"]

#: Columns every per-segment table starts with.
SEGMENT_COLUMNS = ("segment", "name", "area", "length_m", "lon", "lat")

BoolArray = npt.NDArray[np.bool_]


def _hour_mask(hours: Iterable[int] | None) -> BoolArray:
    mask = np.zeros(HOURS, dtype=bool)
    chosen = list(range(HOURS)) if hours is None else [int(h) for h in hours]
    if not chosen or any(not 0 <= h < HOURS for h in chosen):
        raise ValidationError("hours must be a non-empty list of local hours 0..23", field="hours")
    mask[chosen] = True
    return mask


def _segment_frame(cov: CameraCoverage, level: str) -> pd.DataFrame:
    streets = cov.streets
    edges = cov.pack.network.edges
    key = edges["u"].to_numpy(np.int64) * streets.n_nodes + edges["v"].to_numpy(np.int64)
    names = pd.Series(edges["name"].to_numpy(), index=key)
    names = names[~names.index.duplicated()]
    seg_key = pd.Index(streets.u * streets.n_nodes + streets.v)
    name = names.reindex(seg_key).to_numpy(dtype=object)
    lon, lat = streets.midpoints_wgs84()
    return pd.DataFrame(
        {
            "segment": np.arange(len(streets)),
            "name": [n if isinstance(n, str) else None for n in name],
            "area": cov.segment_areas(level),
            "length_m": streets.length_m,
            "lon": lon,
            "lat": lat,
        }
    )


def _per_segment(cov: CameraCoverage, values: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
    return np.bincount(cov.samples.segment, values, minlength=len(cov.streets))


def blind_spots(
    cov: CameraCoverage,
    incidents: pd.DataFrame | None = None,
    *,
    hours: Sequence[int] | None = None,
    working: BoolArray | None = None,
    level: str = "station",
) -> pd.DataFrame:
    """Street segments not fully seen, ranked by the incidents no camera saw on them.

    Parameters
    ----------
    cov : CameraCoverage
    incidents : pandas.DataFrame, optional
        Canonical incidents (``lon, lat, received_at, category``); only those at ``hours``
        count.
    hours : sequence of int, optional
        Local hours to consider (default all 24).
    working : numpy.ndarray, optional
        Working flags (default: status and power schedules).
    level : str
        Jurisdiction level of the ``area`` column.

    Returns
    -------
    pandas.DataFrame
        :data:`SEGMENT_COLUMNS` plus ``uncovered_m`` (unseen metres, averaged over the hours),
        ``incidents`` (on the segment at those hours) and ``unseen_incidents``; only segments
        with some unseen length, ordered by ``unseen_incidents`` then ``uncovered_m``.
    """
    mask = _hour_mask(hours)
    seen = cov.seen_by_hour(working)[:, mask]
    unseen_m = cov.samples.length_m * (~seen).mean(axis=1)
    frame = _segment_frame(cov, level)
    frame["uncovered_m"] = _per_segment(cov, unseen_m)
    frame["incidents"] = 0
    frame["unseen_incidents"] = 0
    if incidents is not None and len(incidents):
        at_hours = incidents[mask[local_hours(incidents["received_at"], cov.pack.timezone)]]
        if len(at_hours):
            was_seen, on, segment = cov.incident_hits(at_hours, working)
            n = len(cov.streets)
            frame["incidents"] = np.bincount(segment[on], minlength=n)
            frame["unseen_incidents"] = np.bincount(segment[on & ~was_seen], minlength=n)
    out = frame[frame["uncovered_m"] > 1e-9]
    out = out.sort_values(["unseen_incidents", "uncovered_m"], ascending=False, kind="stable")
    return out.reset_index(drop=True)


def night_view(
    cov: CameraCoverage,
    *,
    hours: Sequence[int] = NIGHT_HOURS,
    power_cut: bool = False,
    outages: Iterable[str] = (),
    backup: Iterable[str] = (),
    level: str = "station",
) -> pd.DataFrame:
    """What the night takes away: coverage with every camera powered vs as scheduled.

    ``powered_m`` is what the working cameras would see at night with power all night;
    ``covered_m`` what they see given their power schedules (and, with ``power_cut``, a cut of
    mains power at every one of those hours that only cameras in ``backup`` ride through);
    ``lost_m = powered_m - covered_m``.  Metres are averaged over ``hours``.

    Returns
    -------
    pandas.DataFrame
        :data:`SEGMENT_COLUMNS` plus ``powered_m``, ``covered_m``, ``lost_m``, every segment.
    """
    mask = _hour_mask(hours)
    all_ids = cov.ids
    powered = cov.seen_by_hour(cov.working(outages=outages, backup=all_ids))[:, mask]
    cut = [int(h) for h in np.nonzero(mask)[0]] if power_cut else []
    actual = cov.seen_by_hour(cov.working(outages, cut, backup))[:, mask]
    length = cov.samples.length_m
    frame = _segment_frame(cov, level)
    frame["powered_m"] = _per_segment(cov, length * powered.mean(axis=1))
    frame["covered_m"] = _per_segment(cov, length * actual.mean(axis=1))
    frame["lost_m"] = frame["powered_m"] - frame["covered_m"]
    return frame
