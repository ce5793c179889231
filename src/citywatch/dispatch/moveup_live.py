"""Live move-up suggestions for the console: coverage rules and DMEXCLP on the current fleet.

:mod:`citywatch.dispatch.moveup` holds the methods (pure, on plain values); this module feeds
them the live fleet over a city's road network:

* candidate sites are the stations (where a unit moves up to) and the current location of every
  idle unit (where it is now); demand nodes are the road nodes of the pack, each of weight one
  unless weights are given, so "expected coverage" reads as the expected share of the road
  network within the 3-minute target of an idle unit;
* the coverage of each site within the threshold is one bounded search per site and travel
  mode (cached: the stations never move, idle units are cached by position);
* the move time of each idle unit to each station is road travel in the unit's own mode;
* the busy fraction ``q`` is the share of the in-service fleet that is busy now.

:meth:`LiveMoveUp.suggest` returns the rule moves (one per missing unit, the donor of
:func:`~citywatch.dispatch.moveup.suggest_moves`) and the best DMEXCLP relocation when it gains
at least ``min_gain_share`` of the demand, each with its coverage gain.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import scipy.sparse as sp

from citywatch.dispatch.kpis import RESPONSE_TARGETS_S
from citywatch.dispatch.lifecycle import UnitStatus
from citywatch.dispatch.moveup import (
    CoverageRules,
    MoveUpModel,
    best_move,
    expected_coverage,
    suggest_moves,
)
from citywatch.dispatch.policy import UnitView, router_travel
from citywatch.errors import ValidationError
from citywatch.routing import Router
from citywatch.routing.speeds import parse_mode

__all__ = ["MAX_MOVE_S", "MIN_GAIN_SHARE", "LiveMove", "LiveMoveUp", "busy_fraction"]

#: A DMEXCLP move is suggested only when it gains at least this share of the demand (0.5 pp).
MIN_GAIN_SHARE: Final = 0.005
#: Longest drive a suggested move may take (10 minutes).
MAX_MOVE_S: Final = 600.0
#: Busy fractions are capped here: with every unit busy, expected coverage says nothing.
_MAX_Q: Final = 0.95
_CACHE_SIZE: Final = 4096


@dataclass(frozen=True, slots=True)
class LiveMove:
    """One suggested move-up: ``unit_id`` (``None``: nobody can be spared) to ``to_station``.

    ``kind`` is ``"rule"`` (restores a broken coverage rule, named in ``rule``) or
    ``"dmexclp"``; ``gain_share`` is the expected coverage gained, as a share of the demand.
    """

    kind: str
    unit_id: str | None
    unit_type: str
    from_station: str | None
    to_station: str
    eta_s: float | None
    gain_share: float | None
    rule: Mapping[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "kind": self.kind,
            "unit_id": self.unit_id,
            "unit_type": self.unit_type,
            "from_station": self.from_station,
            "to_station": self.to_station,
            "eta_s": self.eta_s,
            "gain_share": self.gain_share,
            "rule": dict(self.rule) if self.rule is not None else None,
        }


def busy_fraction(units: Sequence[UnitView]) -> float:
    """Share of the in-service units (all but out of service) that are not available, capped
    at 0.95 (0 for an empty fleet)."""
    in_service = [u for u in units if u.status != UnitStatus.OUT_OF_SERVICE]
    if not in_service:
        return 0.0
    busy = sum(u.status != UnitStatus.AVAILABLE for u in in_service)
    return min(_MAX_Q, busy / len(in_service))


class LiveMoveUp:
    """Move-up suggestions over one city's road network.

    Parameters
    ----------
    router : Router
        Road travel of the pack.
    stations : mapping
        Station id -> ``(lon, lat)``: where a moved-up unit goes.
    rules : CoverageRules
        Minimum available units per station and unit type.
    threshold_s : float, optional
        The coverage target (default the 3-minute response target).
    demand : array, optional
        Weight of each road node of the pack (default 1 each).
    max_move_s, min_gain_share : float, optional
        See :data:`MAX_MOVE_S` and :data:`MIN_GAIN_SHARE`.
    """

    def __init__(
        self,
        router: Router,
        stations: Mapping[str, tuple[float, float]],
        rules: CoverageRules,
        *,
        threshold_s: float = RESPONSE_TARGETS_S[0],
        demand: np.ndarray | None = None,
        max_move_s: float = MAX_MOVE_S,
        min_gain_share: float = MIN_GAIN_SHARE,
    ) -> None:
        self.router = router
        self.station_ids = sorted(stations)
        self.stations = {s: stations[s] for s in self.station_ids}
        self.rules = rules
        self.threshold_s = float(threshold_s)
        n_nodes = len(router.network.lon)
        self.demand = np.ones(n_nodes) if demand is None else np.asarray(demand, dtype=float)
        if self.demand.shape != (n_nodes,):
            raise ValidationError(f"one demand weight per road node ({n_nodes})", field="demand")
        self.max_move_s = float(max_move_s)
        self.min_gain_share = float(min_gain_share)
        self._travel = router_travel(router)
        self._rows: OrderedDict[tuple[str, float, float], sp.csr_array] = OrderedDict()

    # ------------------------------------------------------------------ coverage rows
    def _row(self, mode: str, lon: float, lat: float) -> sp.csr_array:
        """The road nodes a unit of ``mode`` at (lon, lat) reaches within the threshold."""
        key = (mode, round(lon, 6), round(lat, 6))
        row = self._rows.get(key)
        if row is None:
            secs, _ = self.router.node_times_from((lon, lat), parse_mode(mode), self.threshold_s)
            hit = np.flatnonzero(np.asarray(secs) <= self.threshold_s)
            row = sp.csr_array(
                (np.ones(len(hit)), (np.zeros(len(hit), dtype=np.int64), hit)),
                shape=(1, len(self.demand)),
            )
            self._rows[key] = row
            if len(self._rows) > _CACHE_SIZE:
                self._rows.popitem(last=False)
        else:
            self._rows.move_to_end(key)
        return row

    def _model(self, idle: Sequence[UnitView]) -> MoveUpModel:
        """Sites: the stations, then each idle unit's location; one matrix per idle mode."""
        points = [self.stations[s] for s in self.station_ids] + [(u.lon, u.lat) for u in idle]
        covered = {
            mode: sp.csr_array(sp.vstack([self._row(mode, lon, lat) for lon, lat in points]))
            for mode in sorted({u.mode for u in idle})
        }
        return MoveUpModel(covered, self.demand)

    def _idle(self, units: Sequence[UnitView]) -> list[UnitView]:
        return [
            u
            for u in units
            if u.status == UnitStatus.AVAILABLE and math.isfinite(u.lon) and math.isfinite(u.lat)
        ]

    def expected_share(self, units: Sequence[UnitView], q: float) -> float:
        """Expected covered share of the demand by the idle units, busy fraction ``q``."""
        idle = self._idle(units)
        if not idle:
            return 0.0
        model = self._model(idle)
        sites = len(self.station_ids) + np.arange(len(idle))
        total = float(self.demand.sum())
        return expected_coverage(model, sites, [u.mode for u in idle], q) / total

    # ------------------------------------------------------------------ suggestions
    def suggest(self, units: Sequence[UnitView]) -> dict[str, Any]:
        """The move-up suggestions for the fleet as it is now.

        Parameters
        ----------
        units : sequence of UnitView
            The whole fleet; ``station`` is the station a unit covers now (its home, or the
            station it was moved up to).

        Returns
        -------
        dict
            ``busy_fraction``, ``expected_share`` (expected covered share of the demand now),
            ``violations`` (broken rules) and ``moves`` (:class:`LiveMove`, rule moves first).
        """
        q = busy_fraction(units)
        idle = self._idle(units)
        n_st = len(self.station_ids)
        total = float(self.demand.sum())
        model = self._model(idle) if idle else None
        sites = n_st + np.arange(len(idle))
        modes = [u.mode for u in idle]
        before = expected_coverage(model, sites, modes, q) if model is not None else 0.0

        def gain_of(unit_id: str, station: str) -> float | None:
            if model is None:
                return None
            j = next(i for i, u in enumerate(idle) if u.id == unit_id)
            moved = sites.copy()
            moved[j] = self.station_ids.index(station)
            return (expected_coverage(model, moved, modes, q) - before) / total

        known = [u for u in units if u.station in self.stations]
        moves: list[LiveMove] = []
        violations = []
        for rm in suggest_moves(known, self.rules, self._travel, self.stations):
            need = self.rules.minimum(rm.station, rm.unit_type)
            violations.append((rm.station, rm.unit_type, need))
            moves.append(
                LiveMove(
                    "rule",
                    rm.unit_id,
                    rm.unit_type,
                    rm.from_station,
                    rm.station,
                    rm.eta_s,
                    gain_of(rm.unit_id, rm.station) if rm.unit_id is not None else None,
                    {"station": rm.station, "unit_type": rm.unit_type, "min_available": need},
                )
            )
        best = self._dmexclp(model, idle, sites, modes, q) if model is not None else None
        if best is not None and best.unit_id not in {m.unit_id for m in moves}:
            moves.append(best)
        return {
            "busy_fraction": q,
            "expected_share": before / total if total > 0 else 0.0,
            "threshold_s": self.threshold_s,
            "violations": [
                {"station": s, "unit_type": t, "min_available": n}
                for s, t, n in dict.fromkeys(violations)
            ],
            "moves": moves,
        }

    def _dmexclp(
        self,
        model: MoveUpModel,
        idle: Sequence[UnitView],
        sites: np.ndarray,
        modes: list[str],
        q: float,
    ) -> LiveMove | None:
        """The best single relocation of an idle unit to a station (DMEXCLP), if it gains
        enough."""
        n_st = len(self.station_ids)
        move_s = np.full((len(idle), model.n_sites), np.inf)
        targets = [self.stations[s] for s in self.station_ids]
        for mode in sorted(set(modes)):
            rows = [i for i, m in enumerate(modes) if m == mode]
            origins = np.array([(idle[i].lon, idle[i].lat) for i in rows])
            secs, _ = self.router.matrix(origins, targets, parse_mode(mode), self.max_move_s)
            move_s[np.array(rows)[:, None], np.arange(n_st)[None, :]] = secs
        move = best_move(model, sites, modes, q, move_s=move_s, max_move_s=self.max_move_s)
        total = float(self.demand.sum())
        if move is None or move.gain < self.min_gain_share * total:
            return None
        unit = idle[move.unit]
        return LiveMove(
            "dmexclp",
            unit.id,
            unit.unit_type,
            unit.station,
            self.station_ids[move.destination],
            move.travel_s,
            move.gain / total,
        )
