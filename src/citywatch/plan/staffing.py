"""Staffing: Erlang B/C, the fewest units per shift that meet a target, response-time coverage.

A shift with ``lambda`` calls per hour and a mean time on scene (service) of ``1/mu`` hours
offers ``a = lambda / mu`` erlangs.  With ``N`` units the probability that all are busy is
Erlang B (calls are lost or handed on, ``queue="none"``) or Erlang C (calls wait,
``queue="infinite"``), computed from the same level probabilities as the hypercube model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import pandas as pd

from citywatch.errors import DataError, ValidationError
from citywatch.plan.hypercube import HypercubeModel, HypercubeResult, erlang_levels

__all__ = [
    "erlang_b",
    "erlang_c",
    "minimum_units",
    "minimum_units_for_coverage",
    "share_within",
    "staffing_table",
]

Queue = Literal["infinite", "none"]


def erlang_b(units: int, load: float) -> float:
    """Erlang B: probability that all ``units`` are busy in M/M/N/N with ``load`` erlangs."""
    return float(erlang_levels(units, load, "none")[0][-1])


def erlang_c(units: int, load: float) -> float:
    """Erlang C: probability that a call waits in M/M/N with ``load`` erlangs (``load < N``)."""
    return float(erlang_levels(units, load, "infinite")[0][-1])


def minimum_units(
    load: float, max_all_busy: float, queue: Queue = "none", *, limit: int = 10000
) -> int:
    """The fewest units whose probability that all are busy is at most ``max_all_busy``.

    Parameters
    ----------
    load : float
        Offered load in erlangs (calls per hour x mean hours per call).
    max_all_busy : float
        Target in (0, 1).
    queue : {"none", "infinite"}
        Erlang B or Erlang C.
    limit : int
        Give up beyond this many units.

    Raises
    ------
    ValidationError
        On a target outside (0, 1) or a negative load, or when ``limit`` units do not suffice.
    """
    if not 0.0 < max_all_busy < 1.0:
        raise ValidationError("the all-busy target must be between 0 and 1", field="max_all_busy")
    if not load >= 0:
        raise ValidationError("the offered load must be non-negative", field="load")
    if load == 0:
        return 1
    formula = erlang_b if queue == "none" else erlang_c
    units = int(np.floor(load)) + 1 if queue == "infinite" else 1
    while units <= limit:
        if formula(units, load) <= max_all_busy:
            return units
        units += 1
    raise ValidationError(f"more than {limit} units would be needed for {load:.1f} erlangs")


def staffing_table(
    shifts: pd.DataFrame,
    max_all_busy: float,
    queue: Queue = "none",
    officers_per_unit: float = 2.0,
) -> pd.DataFrame:
    """Minimum units per shift for an all-busy target.

    Parameters
    ----------
    shifts : pandas.DataFrame
        Columns ``shift``, ``calls_per_hour`` and ``service_minutes`` (mean time per call).
    max_all_busy : float
        Target probability that all units are busy.
    queue : {"none", "infinite"}
    officers_per_unit : float
        Officers crewing one unit, for the ``officers`` column.

    Returns
    -------
    pandas.DataFrame
        ``shift, calls_per_hour, service_minutes, load_erlangs, units, p_all_busy, officers``.
    """
    missing = [c for c in ("shift", "calls_per_hour", "service_minutes") if c not in shifts]
    if missing:
        raise DataError(f"shifts: missing column(s) {', '.join(missing)}")
    rows = []
    for shift in shifts.itertuples(index=False):
        calls, minutes = float(shift.calls_per_hour), float(shift.service_minutes)  # type: ignore[arg-type]
        if not (calls >= 0 and minutes > 0):
            raise DataError(f"shift {shift.shift}: calls must be >= 0 and service minutes > 0")
        load = calls * minutes / 60.0
        units = minimum_units(load, max_all_busy, queue)
        formula = erlang_b if queue == "none" else erlang_c
        rows.append(
            {
                "shift": str(shift.shift),
                "calls_per_hour": calls,
                "service_minutes": minutes,
                "load_erlangs": load,
                "units": units,
                "p_all_busy": formula(units, load),
                "officers": units * officers_per_unit,
            }
        )
    return pd.DataFrame(rows)


def share_within(model: HypercubeModel, result: HypercubeResult, threshold: float) -> float:
    """Share of all calls answered at once by a unit within ``threshold`` travel time.

    Calls that wait in the queue (``queue="infinite"``) or are lost (``queue="none"``) are not
    answered at once and do not count.  ``result`` must come from ``model``, which needs
    ``travel_times``.
    """
    if model.travel_times is None:
        raise ValidationError("the hypercube model needs travel times for a coverage share")
    dispatch = result.dispatch
    if model.queue == "infinite":
        queued = (model.rates / model.rates.sum()) * result.p_all_busy / model.units
        dispatch = dispatch - queued[None, :]
    else:
        dispatch = dispatch * (1.0 - result.p_all_busy)
    return float(dispatch[np.asarray(model.travel_times) <= threshold].sum())


def minimum_units_for_coverage(
    build: Callable[[int], HypercubeModel],
    threshold: float,
    target: float,
    *,
    start: int = 1,
    limit: int = 200,
    method: Literal["auto", "exact", "approximate"] = "auto",
) -> tuple[int, HypercubeModel, HypercubeResult]:
    """The fewest units whose model answers ``target`` share of calls within ``threshold``.

    Parameters
    ----------
    build : callable
        ``build(n)`` returns the hypercube model with ``n`` units posted (with travel times),
        e.g. at the posts of an MCLP solution for ``n`` units.
    threshold : float
        Response-time threshold (e.g. 180 seconds).
    target : float
        Required share of calls (see :func:`share_within`), in (0, 1].
    start, limit : int
        Range of unit counts to try.
    method : {"auto", "exact", "approximate"}
        Hypercube solution method.

    Returns
    -------
    units : int
    model : HypercubeModel
    result : HypercubeResult

    Raises
    ------
    ValidationError
        When no count up to ``limit`` reaches the target.
    """
    if not 0.0 < target <= 1.0:
        raise ValidationError("the coverage target must be in (0, 1]", field="target")
    for units in range(start, limit + 1):
        model = build(units)
        if model.queue == "infinite" and model.load >= units:
            continue  # not stable yet
        result = model.solve(method)
        if share_within(model, result, threshold) >= target:
            return units, model, result
    raise ValidationError(f"no unit count up to {limit} reaches the coverage target")
