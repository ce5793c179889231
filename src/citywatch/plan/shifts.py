"""Staffing per shift on a city pack: Erlang targets and response-time coverage together.

For each shift the call rate comes from the incidents of that shift (per hour of the period the
data spans), the offered load from the mean time per call, and the table gives

* the fewest units whose probability that all are busy is at most the target (Erlang B / C), and
* optionally the fewest units (at least that many) that reach a share of calls within a
  response-time threshold: for ``n`` units the posts are the exact MCLP optimum for ``n`` on the
  shift's demand, and the share of calls reached in time comes from the hypercube model of those
  posts (atoms = demand nodes, dispatch to the nearest free unit by travel time), so busy units
  and backup dispatches are accounted for.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import dijkstra

from citywatch.city import CityPack
from citywatch.dispatch.kpis import RESPONSE_TARGETS_S
from citywatch.errors import ValidationError
from citywatch.plan.hypercube import HypercubeModel
from citywatch.plan.posts import NodeDemand, incident_demand, plan_posts
from citywatch.plan.staffing import (
    erlang_b,
    erlang_c,
    minimum_units,
    minimum_units_for_coverage,
    share_within,
)
from citywatch.routing import Mode, Router

__all__ = ["city_staffing", "hypercube_at_posts", "parse_shifts", "shift_call_rate"]

Queue = Literal["infinite", "none"]


def parse_shifts(text: str) -> list[tuple[int, int]]:
    """``"7-15,15-23,23-7"`` -> ``[(7, 15), (15, 23), (23, 7)]``.

    Raises
    ------
    ValidationError
        On anything that is not comma-separated ``START-END`` hours.
    """
    shifts = []
    for part in text.split(","):
        try:
            start, end = (int(v) for v in part.strip().split("-"))
        except ValueError as exc:
            raise ValidationError(
                f"a shift is START-END in hours, e.g. 7-15, not {part!r}"
            ) from exc
        if not (0 <= start <= 23 and 0 <= end <= 24 and start != end):
            raise ValidationError(f"shift {part!r}: hours must be 0-24 and differ", field="shift")
        shifts.append((start, end))
    return shifts


def _hours(shift: tuple[int, int]) -> int:
    start, end = shift
    return (end - start) % 24 or 24


def shift_call_rate(
    pack: CityPack, incidents: pd.DataFrame, demand: NodeDemand, shift: tuple[int, int]
) -> float:
    """Calls per hour in ``shift``: incidents used, over the shift's hours in the data's period.

    The period runs from the first to the last local date of the incidents with exact times.
    """
    local = pd.to_datetime(incidents["received_at"], utc=True).dt.tz_convert(pack.timezone)
    if "time_precision" in incidents.columns:
        local = local[(incidents["time_precision"].fillna("exact") == "exact").to_numpy()]
    if local.empty:
        raise ValidationError("no incident has an exact time; call rates need times")
    days = (local.max().normalize() - local.min().normalize()).days + 1
    return demand.used / (days * _hours(shift))


def hypercube_at_posts(
    pack: CityPack,
    demand: NodeDemand,
    units: int,
    *,
    mode: Mode,
    radius_s: float,
    service_rate: float,
    queue: Queue,
    calls_per_hour: float,
    router: Router,
    candidates: np.ndarray | None = None,
) -> HypercubeModel:
    """Hypercube model of ``units`` posted at the MCLP optimum for the demand.

    Atoms are the demand nodes with ``calls_per_hour`` split by weight; each atom prefers units
    by travel time from their posts (shortest paths on the ``mode`` graph, seconds).
    """
    plan = plan_posts(pack, demand, {mode: units}, radius_s, router=router, candidates=candidates)
    node_pos = pd.Index(pack.network.nodes["node_id"].astype(str))
    posts = node_pos.get_indexer(pd.Index(plan.posts["node_id"]))
    graph = router.graph(mode).seconds
    travel = np.atleast_2d(dijkstra(graph, indices=posts))[:, demand.nodes]
    prefs = np.argsort(travel.T, axis=1, kind="stable")
    rates = calls_per_hour * demand.weights / demand.weights.sum()
    return HypercubeModel(units, service_rate, queue, rates, prefs, travel)


def city_staffing(
    pack: CityPack,
    incidents: pd.DataFrame,
    shifts: list[tuple[int, int]],
    service_minutes: float,
    *,
    max_all_busy: float = 0.05,
    queue: Queue = "none",
    coverage_target: float | None = None,
    within_s: float = RESPONSE_TARGETS_S[0],
    mode: Mode = "car",
    router: Router | None = None,
    candidates: np.ndarray | None = None,
    officers_per_unit: float = 2.0,
    max_units: int = 60,
    calls_per_hour: dict[tuple[int, int], float] | None = None,
    method: Literal["auto", "exact", "approximate"] = "approximate",
) -> pd.DataFrame:
    """Minimum units per shift for an all-busy target and, optionally, a coverage target.

    Parameters
    ----------
    pack : CityPack
    incidents : pandas.DataFrame
        Canonical incidents.
    shifts : list of (int, int)
        Local start and end hours.
    service_minutes : float
        Mean time a unit spends on one call (travel and on scene).
    max_all_busy : float
        Target probability that all units are busy.
    queue : {"none", "infinite"}
        Erlang B (calls handed on) or Erlang C (calls wait); also the hypercube's queue.
    coverage_target : float, optional
        Required share of calls reached within ``within_s`` seconds.
    within_s : float
        Response-time threshold, also the MCLP radius for the posts.
    mode : str
        Unit type of the posts.
    router, candidates
        Routing service and candidate post nodes (default: every node).
    officers_per_unit : float
    max_units : int
        Give up beyond this many units.
    calls_per_hour : dict, optional
        Override of the call rate per shift (default: :func:`shift_call_rate`).
    method : {"approximate", "auto", "exact"}
        Hypercube solution method for the coverage search (default: Larson's approximation,
        fast for every count; ``"auto"`` is exact up to 16 units).

    Returns
    -------
    pandas.DataFrame
        One row per shift: ``shift, incidents, calls_per_hour, load_erlangs, units_erlang,
        p_all_busy, units_coverage, coverage_share, units, officers``.
    """
    if service_minutes <= 0:
        raise ValidationError("service minutes must be positive", field="service_minutes")
    router = Router.from_pack(pack) if router is None else router
    mu = 60.0 / service_minutes  # calls per hour per unit
    rows = []
    for shift in shifts:
        demand = incident_demand(pack, incidents, shift)
        rate = (
            calls_per_hour[shift]
            if calls_per_hour is not None
            else shift_call_rate(pack, incidents, demand, shift)
        )
        load = rate / mu
        units_erlang = minimum_units(load, max_all_busy, queue)
        row: dict[str, Any] = {
            "shift": f"{shift[0]:02d}-{shift[1]:02d}",
            "incidents": demand.used,
            "calls_per_hour": rate,
            "load_erlangs": load,
            "units_erlang": units_erlang,
            "p_all_busy": (erlang_b if queue == "none" else erlang_c)(units_erlang, load),
            "units_coverage": None,
            "coverage_share": None,
        }
        units = units_erlang
        if coverage_target is not None:
            build = partial(
                hypercube_at_posts,
                pack,
                demand,
                mode=mode,
                radius_s=within_s,
                service_rate=mu,
                queue=queue,
                calls_per_hour=rate,
                router=router,
                candidates=candidates,
            )
            units, model, result = minimum_units_for_coverage(
                build,
                within_s,
                coverage_target,
                start=units_erlang,
                limit=max_units,
                method=method,
            )
            row["units_coverage"] = units
            row["coverage_share"] = share_within(model, result, within_s)
        row["units"] = units
        row["officers"] = units * officers_per_unit
        rows.append(row)
    return pd.DataFrame(rows)
