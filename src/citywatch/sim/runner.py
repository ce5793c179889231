"""Run a scenario's replications, in parallel processes, deterministically for a seed.

Replication *r* of seed *s* draws all its random numbers from ``SeedSequence(s, spawn_key=(r,))``,
so its result does not depend on how many worker processes there are or which one runs it.  Two
scenarios run with the same seed see the same incidents, call-handling and on-scene times
(common random numbers), which makes their comparison much sharper.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import shapely
from scipy.sparse.csgraph import connected_components

from citywatch.city import load_pack
from citywatch.dispatch.policy import (
    Policy,
    RequirementRules,
    load_requirements,
    make_policy,
)
from citywatch.plan.risk import RiskSurface, read_risk_surface
from citywatch.routing import MODES
from citywatch.sim.demand import (
    DemandModel,
    IncidentBatch,
    fit_demand,
    load_history,
    relocate,
    replay_batch,
)
from citywatch.sim.engine import Fleet, Relocator, RunResult, build_fleet, simulate
from citywatch.sim.moveup import build_move_up
from citywatch.sim.scenario import Scenario
from citywatch.sim.travel import SearchTravel

__all__ = [
    "Inputs",
    "Prepared",
    "SimResult",
    "draw_inputs",
    "prepare",
    "run_replication",
    "run_scenario",
    "scenario_policy",
    "simulate_inputs",
]


def scenario_policy(scenario: Scenario) -> Policy:
    """The dispatch policy a scenario names, built by the dispatch package's own constructors."""
    return make_policy(scenario.policy, threshold_s=scenario.threshold_s, limit_s=scenario.limit_s)


@dataclass
class Prepared:
    """Everything a replication needs that does not depend on the replication."""

    scenario: Scenario
    pack: Any
    rules: RequirementRules
    policy: Policy
    fleet: Fleet
    history: pd.DataFrame | None
    model: DemandModel | None
    dropped: dict[str, int]
    hourly_factor: np.ndarray
    surface: RiskSurface | None = None
    #: Where a freed unit waits next (the move-up policy); None: it returns to its post.
    relocator: Relocator | None = None


def prepare(scenario: Scenario) -> Prepared:
    """Load the pack, the requirement rules, the travel matrices, the fleet and the demand model."""
    pack = load_pack(scenario.pack)
    rules = load_requirements(scenario.requirements)
    modes = {rules.mode_of(g.unit_type) for g in scenario.fleet}
    travel = SearchTravel.from_pack(pack, modes)
    fleet = build_fleet(scenario, pack, rules, travel)
    history: pd.DataFrame | None = None
    model: DemandModel | None = None
    dropped: dict[str, int] = {}
    d = scenario.demand
    if d.kind != "poisson":
        history, dropped = load_history(d, pack)
        history = _reachable(history, travel, dropped)
        if d.kind == "synthetic":
            model = fit_demand(
                history,
                pack.timezone,
                scale=d.scale,
                model=d.model,
                fit_start=d.fit_start,
                fit_end=d.fit_end,
            )
    hours = pd.date_range(
        pd.Timestamp(scenario.start), periods=int(scenario.duration_s // 3600) + 24 * 9, freq="h"
    )
    local_hour = hours.tz_convert(pack.timezone).hour.to_numpy()
    factors = np.asarray(scenario.congestion)[local_hour]
    surface = read_risk_surface(d.surface) if d.surface is not None else None
    prep = Prepared(
        scenario,
        pack,
        rules,
        scenario_policy(scenario),
        fleet,
        history,
        model,
        dropped,
        factors,
        surface,
    )
    if scenario.relocation == "move_up":
        prep.relocator = build_move_up(prep)
    return prep


def _usable(pack: Any, travel: SearchTravel) -> Any:
    """Whether points lie in the city and near the roads of every travel mode of the fleet."""
    router = travel.router

    def usable(pts: np.ndarray) -> np.ndarray:
        ok = pack.locate_many(pts[:, 0], pts[:, 1])["city"].notna().to_numpy().copy()
        for mode in travel.modes:
            snap = router.snap(pts, mode, max_distance_m=np.inf)  # type: ignore[arg-type]
            ok &= snap.distance_m <= router.max_snap_m
        return np.asarray(ok, dtype=bool)

    return usable


def _reachable(
    history: pd.DataFrame, travel: SearchTravel, dropped: dict[str, int]
) -> pd.DataFrame:
    """Leave out (and count) incidents too far from the roads of a fleet's travel mode."""
    router = travel.router
    pts = history[["lon", "lat"]].to_numpy(float)
    near = np.ones(len(history), dtype=bool)
    for mode in travel.modes:
        snap = router.snap(pts, mode, max_distance_m=np.inf)  # type: ignore[arg-type]
        near &= snap.distance_m <= router.max_snap_m
    if not near.all():
        reason = f"more than {router.max_snap_m:.0f} m from the road network"
        dropped[reason] = int((~near).sum())
    return history[near].reset_index(drop=True)


def _main_component(router: Any) -> np.ndarray:
    """Nodes on whose snapped road both ends lie in the largest strongly connected component of
    every travel mode's graph: any unit can reach them and come back.  All modes, not only the
    fleet's, so that two scenarios on one pack draw the same incidents."""
    net = router.network
    lonlat = np.c_[net.lon, net.lat]
    keep = np.ones(len(net.lon), dtype=bool)
    for mode in MODES:
        g = router.graph(mode)
        _, label = connected_components(g.seconds, directed=True, connection="strong")
        main = label == np.argmax(np.bincount(label))
        seg = router.snap(lonlat, mode, max_distance_m=np.inf).segment
        keep &= main[g.seg_a[seg]] & main[g.seg_b[seg]]
    return keep


def _poisson_batch(
    scenario: Scenario, pack: Any, travel: SearchTravel, rng: np.random.Generator
) -> IncidentBatch:
    d = scenario.demand
    t = np.cumsum(
        rng.exponential(
            3600.0 / d.rate_per_hour, int(d.rate_per_hour * scenario.duration_s / 3600 * 1.2 + 100)
        )
    )
    while t[-1] < scenario.duration_s:
        t = np.concatenate([t, t[-1] + np.cumsum(rng.exponential(3600.0 / d.rate_per_hour, 1000))])
    t = t[t < scenario.duration_s]
    n = len(t)
    if d.on_network:
        nodes = np.c_[pack.network.lon, pack.network.lat]
        inside = pack.locate_many(nodes[:, 0], nodes[:, 1])["city"].notna().to_numpy()
        candidates = nodes[inside & _main_component(travel.router)]
    else:
        candidates = np.asarray(d.points)
    which = rng.integers(0, len(candidates), n)
    pts = candidates[which]
    where = pack.locate_many(candidates[:, 0], candidates[:, 1])
    return IncidentBatch(
        id=np.asarray([f"sim:{k}" for k in range(n)], dtype=object),
        t=t,
        lon=pts[:, 0].copy(),
        lat=pts[:, 1].copy(),
        category=np.full(n, d.category, dtype=object),
        priority=np.full(n, d.priority, dtype=np.int64),
        station=where["station"].to_numpy(object)[which],
        zone=where["zone"].to_numpy(object)[which],
    )


def _place_kinds(pack: Any, batch: IncidentBatch) -> list[frozenset[str]] | None:
    if not pack.places or not len(batch):
        return None
    tree = shapely.STRtree([p.geometry for p in pack.places])
    pt_idx, place_idx = tree.query(shapely.points(batch.lon, batch.lat), predicate="intersects")
    kinds: list[set[str]] = [set() for _ in range(len(batch))]
    for i, j in zip(pt_idx, place_idx, strict=True):
        kinds[i].add(pack.places[j].kind)
    return [frozenset(k) for k in kinds]


@dataclass(frozen=True)
class Inputs:
    """The random inputs of one replication: incidents and their call-handling/on-scene times."""

    batch: IncidentBatch
    handling_s: np.ndarray
    on_scene_s: np.ndarray
    place_kinds: list[frozenset[str]] | None


def draw_inputs(prep: Prepared, rep: int, seed: int) -> Inputs:
    """Draw replication ``rep``'s inputs from ``SeedSequence(seed, spawn_key=(rep,))``."""
    s = prep.scenario
    demand_rng, handling_rng, scene_rng = (
        np.random.default_rng(x) for x in np.random.SeedSequence(seed, spawn_key=(rep,)).spawn(3)
    )
    if s.demand.kind == "poisson":
        batch = _poisson_batch(s, prep.pack, prep.fleet.travel, demand_rng)
    elif s.demand.kind == "replay":
        assert prep.history is not None
        batch = replay_batch(prep.history, s.start, s.end, s.demand.scale, demand_rng)
    else:
        assert prep.model is not None
        batch = prep.model.sample(s.start, s.end, demand_rng, id_prefix=f"sim:{rep}")
    if prep.surface is not None:
        usable = _usable(prep.pack, prep.fleet.travel)
        batch = relocate(batch, prep.surface, prep.pack, usable, demand_rng)
    handling = s.call_handling.sample(handling_rng, list(batch.category), list(batch.priority))
    scene = s.on_scene.sample(scene_rng, list(batch.category), list(batch.priority))
    return Inputs(batch, handling, scene, _place_kinds(prep.pack, batch))


def simulate_inputs(prep: Prepared, x: Inputs) -> RunResult:
    """Run the engine once on a prepared scenario and one replication's drawn inputs."""
    return simulate(
        prep.scenario,
        prep.fleet,
        x.batch,
        prep.policy,
        prep.rules,
        x.handling_s,
        x.on_scene_s,
        place_kinds=x.place_kinds,
        hourly_factor=prep.hourly_factor,
        relocate=prep.relocator,
    )


def _run(prep: Prepared, rep: int, seed: int) -> RunResult:
    result = simulate_inputs(prep, draw_inputs(prep, rep, seed))
    for frame in (result.incidents, result.assignments, result.units):
        frame.insert(0, "replication", rep)
    return result


_PREPARED: dict[str, Prepared] = {}


def run_replication(scenario: Scenario, rep: int, seed: int) -> RunResult:
    """Run replication ``rep`` of ``scenario`` with ``seed`` (preparing once per process)."""
    key = repr(scenario)
    if key not in _PREPARED:
        _PREPARED.clear()
        _PREPARED[key] = prepare(scenario)
    return _run(_PREPARED[key], rep, seed)


@dataclass
class SimResult:
    """All replications of a scenario: records with a ``replication`` column, and the inputs."""

    scenario: Scenario
    seed: int
    incidents: pd.DataFrame
    assignments: pd.DataFrame
    units: pd.DataFrame
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def replications(self) -> int:
        """Number of replications."""
        return int(self.units["replication"].nunique())


def run_scenario(
    scenario: Scenario,
    *,
    replications: int | None = None,
    seed: int | None = None,
    workers: int | None = None,
    on_done: Callable[[int], None] | None = None,
) -> SimResult:
    """Run every replication of a scenario, in parallel processes when ``workers`` > 1.

    Parameters
    ----------
    scenario : Scenario
        The scenario.
    replications : int, optional
        Number of replications (default: the scenario's).
    seed : int, optional
        Base seed (default: the scenario's).
    workers : int, optional
        Worker processes (default: the number of CPUs, at most the number of replications).
        The result is the same for any number of workers.
    on_done : callable, optional
        Called with the replication number as each one finishes (for a progress bar).

    Returns
    -------
    SimResult
    """
    reps = replications or scenario.replications
    seed = scenario.seed if seed is None else seed
    scenario = replace(scenario, replications=reps, seed=seed)
    n_workers = max(1, min(workers or os.cpu_count() or 1, reps))
    prep = prepare(scenario)  # fails fast on a bad scenario, and warms the matrix cache
    results: dict[int, RunResult] = {}
    if n_workers == 1:
        for rep in range(reps):
            results[rep] = _run(prep, rep, seed)
            if on_done:
                on_done(rep)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(n_workers, mp_context=ctx) as pool:
            futures = {
                pool.submit(run_replication, scenario, rep, seed): rep for rep in range(reps)
            }
            for fut, rep in futures.items():
                results[rep] = fut.result()
                if on_done:
                    on_done(rep)
    ordered = [results[r] for r in range(reps)]
    return SimResult(
        scenario,
        seed,
        pd.concat([r.incidents for r in ordered], ignore_index=True),
        pd.concat([r.assignments for r in ordered], ignore_index=True),
        pd.concat([r.units for r in ordered], ignore_index=True),
        prep.dropped,
    )
