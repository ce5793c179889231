"""Move-up: keep the 3-minute promise covered after the nearest units leave (pure, no HTTP/SQL).

Two complementary tools, both on plain values so that the live console and the simulator call
the same code:

Coverage rules (Resgrid-style)
    Per station and unit type, a minimum number of available units, as data
    (``dispatch/data/coverage.toml``, :func:`load_coverage_rules`).  :func:`rule_violations`
    lists the broken rules; :func:`suggest_moves` names, for each missing unit, the donor: the
    available unit of that type, from a station that can spare it, with the shortest road ETA
    to the short station (the dispatch policy's :class:`~citywatch.dispatch.policy.TravelFn`,
    in the donor's own mode).

Expected-coverage move-up (DMEXCLP)
    Jagtenberg, Bhulai & van der Mei (2015), "An efficient heuristic for real-time ambulance
    redeployment", Operations Research for Health Care 4: 27-35.  A demand node ``i`` with
    weight ``d_i`` covered by ``k`` idle units (each within the threshold, each busy with
    probability ``q``) is served in time with probability ``1 - q**k``; the ``k``-th covering
    unit adds ``d_i * (1 - q) * q**(k - 1)``.  :func:`best_move` chooses the relocation of ONE
    idle unit to one candidate site that maximises the expected covered demand
    ``sum_i d_i * (1 - q**k_i)`` (their one-move-at-a-time rule), exactly, for every
    (unit, site) pair at once with a sparse matrix product.
"""

from __future__ import annotations

import math
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from citywatch.dispatch.kpis import RESPONSE_TARGETS_S
from citywatch.dispatch.policy import AVAILABLE, TravelFn, UnitView, load_requirements
from citywatch.errors import DataError, ValidationError
from citywatch.tomlkeys import check_keys, read_toml

__all__ = [
    "CoverageRule",
    "CoverageRules",
    "Move",
    "MoveUpModel",
    "RuleMove",
    "Violation",
    "best_move",
    "coverage_counts",
    "expected_coverage",
    "load_coverage_rules",
    "parse_coverage_rules",
    "rule_violations",
    "suggest_moves",
]

_RULE_KEYS = ("station", "unit_type", "min_available")

#: Relative size of floating-point rounding in a coverage sum (gains closer than this are ties).
_ROUNDING = 1e-12

# --------------------------------------------------------------------------- coverage rules


@dataclass(frozen=True, slots=True)
class CoverageRule:
    """At least ``min_available`` available units of ``unit_type`` at ``station``.

    ``station`` ``None``: the rule applies to every station of the fleet (a rule naming the
    station overrides it there).
    """

    unit_type: str
    min_available: int
    station: str | None = None


@dataclass(frozen=True)
class CoverageRules:
    """The coverage rules of a force, loaded from TOML."""

    rules: tuple[CoverageRule, ...]

    def minimum(self, station: str, unit_type: str) -> int:
        """Units of ``unit_type`` that must stay available at ``station`` (0: no rule)."""
        named = [r for r in self.rules if r.station == station and r.unit_type == unit_type]
        general = [r for r in self.rules if r.station is None and r.unit_type == unit_type]
        found = named or general
        return max((r.min_available for r in found), default=0)


def _parse_rule(raw: Any, where: str, unit_types: frozenset[str] | None) -> CoverageRule:
    check_keys(raw, _RULE_KEYS, where)
    unit_type, minimum, station = raw.get("unit_type"), raw.get("min_available"), raw.get("station")
    if not isinstance(unit_type, str):
        raise DataError(f"{where}: unit_type must be a string", field="unit_type")
    if unit_types is not None and unit_type not in unit_types:
        raise DataError(
            f"{where}: unknown unit type {unit_type!r}; known: {', '.join(sorted(unit_types))}",
            field="unit_type",
        )
    if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 1:
        raise DataError(f"{where}: min_available must be an integer >= 1", field="min_available")
    if station is not None and not isinstance(station, str):
        raise DataError(f"{where}: station must be a string (a station id)", field="station")
    return CoverageRule(unit_type, minimum, station)


def parse_coverage_rules(
    doc: Mapping[str, Any], source: str, unit_types: frozenset[str] | None = None
) -> CoverageRules:
    """Coverage rules from a parsed TOML document (unknown keys and unit types refused)."""
    check_keys(doc, ("rule",), source)
    raw_rules = doc.get("rule", [])
    if not isinstance(raw_rules, list):
        raise DataError(f"{source}: 'rule' must be an array of tables ([[rule]])", field="rule")
    rules = tuple(
        _parse_rule(raw, f"{source} [[rule]] {i + 1}", unit_types)
        for i, raw in enumerate(raw_rules)
    )
    seen = Counter((r.station, r.unit_type) for r in rules)
    twice = sorted(f"{s or 'every station'}/{t}" for (s, t), n in seen.items() if n > 1)
    if twice:
        raise DataError(f"{source}: more than one rule for {', '.join(twice)}")
    return CoverageRules(rules)


def _known_types() -> frozenset[str]:
    return frozenset(load_requirements().unit_modes)


@cache
def _bundled_coverage(unit_types: frozenset[str]) -> CoverageRules:
    text = files("citywatch.dispatch").joinpath("data/coverage.toml").read_text("utf-8")
    return parse_coverage_rules(tomllib.loads(text), "coverage.toml", unit_types)


def load_coverage_rules(
    path: str | Path | None = None, unit_types: frozenset[str] | None = None
) -> CoverageRules:
    """Load coverage rules from a TOML file (default: the bundled ``coverage.toml``).

    Parameters
    ----------
    path : str or Path, optional
        A file in the format of ``citywatch/dispatch/data/coverage.toml``.
    unit_types : frozenset of str, optional
        The known unit types (default: those of the bundled requirements).

    Returns
    -------
    CoverageRules

    Raises
    ------
    DataError
        If the file is unreadable, not TOML, has an unknown key (named) or an unknown unit type.
    """
    types = _known_types() if unit_types is None else frozenset(unit_types)
    if path is None:
        return _bundled_coverage(types)
    return parse_coverage_rules(read_toml(path, "coverage rules"), str(path), types)


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken rule: ``available`` units of ``unit_type`` at ``station``, ``required`` needed."""

    station: str
    unit_type: str
    required: int
    available: int

    @property
    def missing(self) -> int:
        """How many units must move up to restore the rule."""
        return self.required - self.available


@dataclass(frozen=True, slots=True)
class RuleMove:
    """One unit to move up to ``station`` (``unit_id`` ``None``: no station can spare one)."""

    station: str
    unit_type: str
    unit_id: str | None
    from_station: str | None
    eta_s: float | None
    metres: float | None


def _available_counts(units: Sequence[UnitView]) -> Counter[tuple[str, str]]:
    return Counter(
        (u.station, u.unit_type) for u in units if u.status == AVAILABLE and u.station is not None
    )


def rule_violations(units: Sequence[UnitView], rules: CoverageRules) -> list[Violation]:
    """The rules the fleet breaks now, sorted by station and unit type.

    Parameters
    ----------
    units : sequence of UnitView
        The whole fleet (any status; only ``available`` units count).  The stations checked by a
        rule without a station are the stations of these units.
    rules : CoverageRules

    Returns
    -------
    list of Violation
    """
    counts = _available_counts(units)
    stations = {u.station for u in units if u.station is not None}
    stations |= {r.station for r in rules.rules if r.station is not None}
    types = sorted({r.unit_type for r in rules.rules})
    out = []
    for station in sorted(stations):
        for unit_type in types:
            need = rules.minimum(station, unit_type)
            have = counts[(station, unit_type)]
            if have < need:
                out.append(Violation(station, unit_type, need, have))
    return out


def suggest_moves(
    units: Sequence[UnitView],
    rules: CoverageRules,
    travel: TravelFn,
    stations: Mapping[str, tuple[float, float]],
    limit_s: float | None = None,
) -> list[RuleMove]:
    """The moves that restore every broken rule: one :class:`RuleMove` per missing unit.

    A donor is an available unit of the rule's type at another station that keeps its own
    minimum after the unit leaves; among donors the one with the shortest road ETA to the short
    station wins (ties: unit id).  Donors are taken one at a time, so a station never gives away
    more than it can spare.

    Parameters
    ----------
    units : sequence of UnitView
        The fleet.
    rules : CoverageRules
    travel : TravelFn
        Road travel, called once per travel mode with all candidate donors of that mode.
    stations : mapping
        Station id -> ``(lon, lat)`` of the station (where a moved-up unit goes).
    limit_s : float, optional
        Donors that cannot arrive within this many seconds are not suggested.

    Returns
    -------
    list of RuleMove
        In the order of :func:`rule_violations`; ``unit_id`` ``None`` when no donor exists.
    """
    counts = _available_counts(units)
    taken: set[str] = set()
    out = []
    for v in rule_violations(units, rules):
        if v.station not in stations:
            raise ValidationError(f"no location for station {v.station!r}", field="stations")
        for _ in range(v.missing):
            move = _best_donor(units, rules, travel, stations[v.station], v, counts, taken, limit_s)
            out.append(move)
            if move.unit_id is not None:
                taken.add(move.unit_id)
                counts[(move.from_station or "", v.unit_type)] -= 1
                counts[(v.station, v.unit_type)] += 1
    return out


def _best_donor(
    units: Sequence[UnitView],
    rules: CoverageRules,
    travel: TravelFn,
    target: tuple[float, float],
    v: Violation,
    counts: Counter[tuple[str, str]],
    taken: set[str],
    limit_s: float | None,
) -> RuleMove:
    donors = [
        u
        for u in units
        if u.status == AVAILABLE
        and u.unit_type == v.unit_type
        and u.station is not None
        and u.station != v.station
        and u.id not in taken
        and counts[(u.station, v.unit_type)] > rules.minimum(u.station, v.unit_type)
    ]
    best: tuple[float, str, UnitView, float] | None = None
    for mode in sorted({u.mode for u in donors}):
        group = [u for u in donors if u.mode == mode]
        sources = np.array([(u.lon, u.lat) for u in group], dtype=float).reshape(-1, 2)
        seconds, metres = travel(sources, mode, target, limit_s)
        for u, s, m in zip(group, seconds.tolist(), metres.tolist(), strict=True):
            ok = math.isfinite(s) and (limit_s is None or s <= limit_s)
            if ok and (best is None or (s, u.id) < (best[0], best[1])):
                best = (s, u.id, u, m)
    if best is None:
        return RuleMove(v.station, v.unit_type, None, None, None, None)
    eta, _, unit, metres_ = best
    return RuleMove(v.station, v.unit_type, unit.id, unit.station, eta, metres_)


# --------------------------------------------------------------------------- DMEXCLP


@dataclass(frozen=True)
class MoveUpModel:
    """Which candidate site covers which demand node, per travel mode, and the demand weights.

    ``covered[mode]`` is a boolean sparse ``(n_sites, n_demand)`` matrix: a unit of that mode at
    site ``s`` reaches demand node ``i`` within the threshold.  Build it once per city and
    threshold (:meth:`from_seconds`); the units' positions change, the model does not.
    """

    covered: Mapping[str, sp.csr_array]
    demand: np.ndarray

    @classmethod
    def from_seconds(
        cls,
        seconds: Mapping[str, Any],
        demand: np.ndarray,
        threshold_s: float = RESPONSE_TARGETS_S[0],
    ) -> MoveUpModel:
        """A model from travel seconds site -> demand node (dense or sparse, per mode).

        For a sparse matrix only stored entries count (store ``seconds + 1`` as
        :func:`citywatch.plan.posts.reach_matrix` does, transposed, so zeros stay stored: the
        stored value minus one is compared with the threshold).
        """
        demand = np.asarray(demand, dtype=np.float64)
        if demand.ndim != 1 or not np.all(np.isfinite(demand)) or bool((demand < 0).any()):
            raise ValidationError("demand weights must be finite and >= 0", field="demand")
        covered = {}
        for mode, matrix in seconds.items():
            if sp.issparse(matrix):
                m = sp.csr_array(matrix)
                m = sp.csr_array((m.data - 1.0 <= threshold_s, m.indices, m.indptr), shape=m.shape)
            else:
                m = sp.csr_array(np.asarray(matrix, dtype=np.float64) <= threshold_s)
            m.eliminate_zeros()
            if m.shape[1] != len(demand):
                raise ValidationError(
                    f"mode {mode}: {m.shape[1]} demand columns for {len(demand)} weights",
                    field="seconds",
                )
            covered[mode] = m.astype(np.float64)
        if len({m.shape[0] for m in covered.values()}) > 1:
            raise ValidationError("every mode needs the same candidate sites", field="seconds")
        return cls(covered, demand)

    @property
    def n_sites(self) -> int:
        """Number of candidate sites."""
        return int(next(iter(self.covered.values())).shape[0])


@dataclass(frozen=True, slots=True)
class Move:
    """The relocation of idle unit ``unit`` (its index) from site ``origin`` to ``destination``.

    ``before``/``after``: expected covered demand (weight units); ``travel_s``: the move's own
    travel time when move times were given.
    """

    unit: int
    origin: int
    destination: int
    before: float
    after: float
    travel_s: float | None = None

    @property
    def gain(self) -> float:
        """Expected covered demand gained by the move."""
        return self.after - self.before


def _check_q(busy_fraction: float) -> float:
    q = float(busy_fraction)
    if not 0.0 <= q < 1.0:
        raise ValidationError("busy fraction must be in [0, 1)", field="busy_fraction")
    return q


def coverage_counts(model: MoveUpModel, sites: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """``k_i``: how many of the given idle units (at ``sites``, in ``modes``) cover each node."""
    sites = np.asarray(sites, dtype=np.int64)
    k = np.zeros(len(model.demand))
    for mode in set(modes):
        if mode not in model.covered:
            raise ValidationError(f"no coverage for mode {mode!r}", field="modes")
        at = sites[np.asarray(modes) == mode]
        per_site = np.bincount(at, minlength=model.n_sites).astype(np.float64)
        k += model.covered[mode].T @ per_site
    return k


def expected_coverage(
    model: MoveUpModel, sites: np.ndarray, modes: Sequence[str], busy_fraction: float
) -> float:
    """Expected covered demand ``sum_i d_i * (1 - q**k_i)`` of idle units at ``sites``."""
    q = _check_q(busy_fraction)
    k = coverage_counts(model, sites, modes)
    return float(model.demand @ (1.0 - q**k))


def best_move(
    model: MoveUpModel,
    sites: np.ndarray,
    modes: Sequence[str],
    busy_fraction: float,
    *,
    movable: np.ndarray | None = None,
    move_s: np.ndarray | None = None,
    max_move_s: float | None = None,
) -> Move | None:
    """The one relocation of an idle unit that maximises expected covered demand (DMEXCLP).

    Parameters
    ----------
    model : MoveUpModel
        Coverage of the candidate sites.
    sites : int array (n_units,)
        The site each idle unit is at (or nearest to).
    modes : sequence of str
        Each idle unit's travel mode (a key of ``model.covered``).
    busy_fraction : float
        ``q``, the probability that a unit is busy (Jagtenberg et al.: the system's busy
        fraction, e.g. offered load / fleet size), in ``[0, 1)``.
    movable : bool array (n_units,), optional
        Which units may move (default all; e.g. only the unit that just became idle).
    move_s : float array (n_units, n_sites), optional
        Road travel time of each unit to each site; required with ``max_move_s``.
    max_move_s : float, optional
        Moves that take longer are not considered.

    Returns
    -------
    Move or None
        The best strictly improving move (ties: shortest move, then lowest unit, then lowest
        site index), or ``None`` when no move improves the expected coverage.

    Notes
    -----
    With ``k_i`` the current coverage counts and ``c`` the 0/1 row of a unit's site, removing the
    unit leaves ``w_i = d_i q**(k_i - c_i)``; adding it at site ``b`` gains
    ``(1 - q) * (C @ w)_b`` (the marginal value ``d_i (1-q) q**(k-1)`` of one more covering unit,
    summed over the nodes ``b`` covers).  So every (unit, site) pair is one sparse product
    ``C @ W``, with one column of ``W`` per distinct (mode, site) of the units.
    """
    q = _check_q(busy_fraction)
    sites = np.asarray(sites, dtype=np.int64)
    mode_arr = np.asarray(list(modes), dtype=object)
    n_units, n_sites = len(sites), model.n_sites
    if len(mode_arr) != n_units or bool(((sites < 0) | (sites >= n_sites)).any()):
        raise ValidationError("one valid site and one mode per unit", field="sites")
    allowed = np.ones((n_units, n_sites), dtype=bool)
    if movable is not None:
        allowed &= np.asarray(movable, dtype=bool)[:, None]
    travel = None
    if move_s is not None:
        travel = np.asarray(move_s, dtype=np.float64)
        if travel.shape != (n_units, n_sites):
            raise ValidationError("move_s must be (units, sites)", field="move_s")
        allowed &= np.isfinite(travel)
        if max_move_s is not None:
            allowed &= travel <= max_move_s
    elif max_move_s is not None:
        raise ValidationError("max_move_s needs move_s", field="max_move_s")
    allowed[np.arange(n_units), sites] = False  # staying is no move
    if n_units == 0 or not allowed.any():
        return None
    d = model.demand
    k = coverage_counts(model, sites, mode_arr.tolist())
    miss_now = d * q**k  # expected uncovered demand per node
    before = float(d.sum() - miss_now.sum())
    gain = np.full((n_units, n_sites), -np.inf)
    for mode in sorted(set(mode_arr.tolist())):
        in_mode = np.flatnonzero(mode_arr == mode)
        cov = model.covered[mode]
        group_sites, group_of = np.unique(sites[in_mode], return_inverse=True)
        own = cov[group_sites].toarray()  # (groups, n): the nodes each unit's site covers
        w = d[None, :] * q ** (k[None, :] - own)  # uncovered demand without the unit
        added = (1.0 - q) * (cov @ w.T)  # (n_sites, groups)
        removed = miss_now.sum() - w.sum(axis=1)  # (groups,): <= 0, coverage lost by leaving
        gain[in_mode] = (added + removed[None, :]).T[group_of]
    gain[~allowed] = -np.inf
    return _pick(gain, travel, sites, before, float(d.sum()))


def _pick(
    gain: np.ndarray, travel: np.ndarray | None, sites: np.ndarray, before: float, total: float
) -> Move | None:
    top = gain.max()
    # Gains equal up to floating-point rounding (relative to the total demand) are ties, won by
    # the shortest move; a gain within rounding of zero is no gain.
    tol = _ROUNDING * max(1.0, total)
    if not top > tol:
        return None
    unit_idx, site_idx = np.nonzero(gain >= top - tol)
    if travel is not None:
        order = np.lexsort((site_idx, unit_idx, travel[unit_idx, site_idx]))
    else:
        order = np.lexsort((site_idx, unit_idx))
    j, b = int(unit_idx[order[0]]), int(site_idx[order[0]])
    return Move(
        unit=j,
        origin=int(sites[j]),
        destination=b,
        before=before,
        after=before + float(gain[j, b]),
        travel_s=None if travel is None else float(travel[j, b]),
    )
