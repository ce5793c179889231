"""The simulator's "move-up" policy: DMEXCLP relocation of each freed unit, by the dispatch code.

With ``relocation = "move_up"`` in a scenario's ``[dispatch]`` table, a unit that clears a scene
does not simply drive back to its own post: :class:`MoveUp` asks
:func:`citywatch.dispatch.moveup.best_move` (the code behind the live console's suggestions) for
the one relocation of that unit, to any candidate site, that maximises the expected demand
covered within :data:`~citywatch.dispatch.kpis.RESPONSE_TARGETS_S` ``[0]`` (3 minutes) by the
idle units (Jagtenberg, Bhulai & van der Mei 2015: each freed unit is sent to the base of
largest marginal coverage).  ``None`` (no strictly better site) means "back to its own post".

The model (built once per prepared scenario, :func:`build_move_up`):

* candidate sites: the posts of the fleet's units that wait at a station (patrol units keep
  their beats and are never moved, but count at their first waypoint when it is a site);
* demand: the scenario's demand points (the history it was fitted to, or the listed points,
  or the network nodes it draws from), weighted by how often they occur;
* coverage: a site covers a demand point when the Router's exact road time (free flow, the
  unit's own mode) is at most 3 minutes;
* busy fraction ``q``: the share of on-duty units busy at the moment of the decision;
* idle units count at their post (the site they wait at or drive to); the freed unit's travel
  time to every site comes from the loop (its exact road time, with the hour's congestion).

Why Python and not the compiled loop: the decision is a sparse matrix product over sites and
demand points (SciPy), and the brief is to call the same dispatch code as the live service,
not a copy.  The compiled loop calls it through numba's object mode only when the scenario asks
for move-up; "return to post" never leaves compiled code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from citywatch.dispatch.kpis import RESPONSE_TARGETS_S
from citywatch.dispatch.moveup import Move, MoveUpModel, best_move
from citywatch.routing.speeds import parse_mode
from citywatch.sim import loop
from citywatch.sim.engine import Fleet

__all__ = ["Decision", "MoveUp", "build_move_up"]


@dataclass(frozen=True)
class Decision:
    """One move-up decision, as asked and answered (kept for checks and reports)."""

    unit: int
    t: float
    sites: np.ndarray  # site index of every idle unit counted (the freed unit: its own post)
    modes: tuple[str, ...]
    movable: np.ndarray
    move_s: np.ndarray
    busy_fraction: float
    move: Move | None


@dataclass
class MoveUp:
    """The move-up :class:`~citywatch.sim.engine.Relocator` of one fleet.

    Parameters
    ----------
    model : MoveUpModel
        Coverage of the sites (rows) over the demand points, per travel mode.
    sites : ndarray of int
        Location ids of the sites (``model``'s rows, in order).
    unit_modes : sequence of str
        Travel mode of every unit of the fleet.
    unit_home : ndarray of int
        Location id of every unit's own post.
    keep_log : bool
        Keep every :class:`Decision` in :attr:`log`.
    """

    model: MoveUpModel
    sites: np.ndarray
    unit_modes: tuple[str, ...]
    unit_home: np.ndarray
    keep_log: bool = False
    log: list[Decision] = field(default_factory=list)
    moves: int = 0
    decisions: int = 0

    def __post_init__(self) -> None:
        self._site_of = {int(loc): j for j, loc in enumerate(self.sites.tolist())}
        self._modes = np.asarray(self.unit_modes, dtype=object)

    def _site(self, locs: np.ndarray) -> np.ndarray:
        get = self._site_of.get
        return np.fromiter((get(int(x), -1) for x in locs.tolist()), np.int64, len(locs))

    def __call__(
        self, k: int, t: float, status: np.ndarray, post: np.ndarray, to_sites: np.ndarray
    ) -> int:
        """The site index unit ``k`` moves up to, or -1 for its own post."""
        on_duty = status != loop.UNIT_OFF
        busy = float((status == loop.UNIT_BUSY).sum()) / max(int(on_duty.sum()), 1)
        q = min(busy, 0.99)
        idle = np.flatnonzero(status == loop.UNIT_AVAILABLE)
        where = self._site(post[idle])
        where[idle == k] = self._site(self.unit_home[[k]])[0]
        counted = where >= 0
        units, where = idle[counted], where[counted]
        movable = units == k
        self.decisions += 1
        if not movable.any():  # its own post is no site (cannot happen for a station post)
            return -1
        move_s = np.full((len(units), len(self.sites)), np.inf)
        move_s[movable] = to_sites
        modes = tuple(self._modes[units].tolist())
        move = best_move(self.model, where, modes, q, movable=movable, move_s=move_s)
        if self.keep_log:
            self.log.append(Decision(k, t, where, modes, movable, move_s, q, move))
        if move is None:
            return -1
        self.moves += 1
        return int(move.destination)


def demand_points(prep: Any) -> tuple[np.ndarray, np.ndarray]:
    """Distinct demand points of a prepared scenario and how often each occurs."""
    d = prep.scenario.demand
    if prep.history is not None:
        pts = prep.history[["lon", "lat"]].to_numpy(float)
    elif d.on_network:
        net = prep.pack.network
        nodes = np.c_[net.lon, net.lat]
        inside = prep.pack.locate_many(nodes[:, 0], nodes[:, 1])["city"].notna().to_numpy()
        pts = nodes[inside]
    else:
        pts = np.asarray(d.points, dtype=float).reshape(-1, 2)
    uniq, counts = np.unique(pts, axis=0, return_counts=True)
    return uniq, counts.astype(np.float64)


def build_move_up(prep: Any, *, keep_log: bool = False) -> MoveUp:
    """The move-up policy of a prepared scenario (:class:`citywatch.sim.runner.Prepared`).

    Sites are the distinct posts of the units that wait at a station; coverage is the Router's
    exact road time from each site to each demand point, per travel mode of the fleet, within
    3 minutes (:data:`~citywatch.dispatch.kpis.RESPONSE_TARGETS_S`).
    """
    fleet: Fleet = prep.fleet
    travel = fleet.travel
    units = fleet.units
    sites = np.unique([int(u.homes[0]) for u in units if u.patrol_dwell_s is None])
    pts, weights = demand_points(prep)
    lonlat = travel.lonlat[sites]
    threshold = RESPONSE_TARGETS_S[0]
    seconds = {}
    for mode in sorted({u.mode for u in units}):
        rows = [
            travel.router.one_to_many(
                (float(x), float(y)), pts, parse_mode(mode), limit_s=threshold
            ).seconds
            for x, y in lonlat
        ]
        seconds[mode] = np.vstack(rows) if rows else np.zeros((0, len(pts)))
    model = MoveUpModel.from_seconds(seconds, weights, threshold)
    return MoveUp(
        model,
        sites.astype(np.int64),
        tuple(u.mode for u in units),
        np.array([int(u.homes[0]) for u in units], np.int64),
        keep_log=keep_log,
    )
