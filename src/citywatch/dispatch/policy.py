"""Dispatch recommendation: which available units should go to an incident, fastest first.

Pure Python on plain values, with no HTTP and no SQL, so that the live service and the
simulator call exactly the same code.  The travel times come from a :class:`TravelFn` (the
Router's ``many_to_one`` wrapped by :func:`router_travel`), called once per travel mode with
*every* candidate unit of that mode: there is no straight-line shortlist that could miss the
truly fastest unit.

Policies
--------
``nearest``
    Integrated patrol: rank every unit by road travel time, whatever its station.
``station_first``
    Traditional: the incident's own station's units come first when one of them can arrive
    within a threshold; otherwise every unit is ranked by travel time.

Requirements (how many units, preferred and required unit types) depend on the incident's
category, priority and the kinds of place it lies in, and are data: see
:mod:`citywatch.dispatch.requirements` (re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

import numpy as np

from citywatch.dispatch import kernel
from citywatch.dispatch.lifecycle import UnitStatus
from citywatch.dispatch.requirements import Requirement, RequirementRules, load_requirements
from citywatch.errors import DataError, ValidationError
from citywatch.routing import Router
from citywatch.routing.speeds import parse_mode

__all__ = [
    "POLICY_NAMES",
    "REASON_TEXTS",
    "STATION_FIRST_THRESHOLD_S",
    "Candidate",
    "Fleet",
    "IncidentView",
    "KeyedTravel",
    "Policy",
    "Reason",
    "Recommendation",
    "Requirement",
    "RequirementRules",
    "TravelFn",
    "UnitView",
    "load_requirements",
    "make_policy",
    "nearest",
    "parse_policy_name",
    "recommend",
    "router_travel",
    "station_first",
]

#: Status in which a unit may be recommended and assigned.
AVAILABLE = UnitStatus.AVAILABLE

#: The dispatch policies, by name: the one registry that the service, the API and the
#: simulator's scenarios parse (see :func:`make_policy`).
PolicyName = Literal["nearest", "station_first"]
POLICY_NAMES: tuple[PolicyName, ...] = ("nearest", "station_first")
#: Default threshold of ``station_first``: own-station units go first if one arrives within it.
STATION_FIRST_THRESHOLD_S = 300.0

RecommendationStatus = Literal["ok", "short", "none_available", "all_stale", "none_within_limit"]

#: English text of every reason code; clients translate the codes with the same parameters
#: (the dashboard's ``reason.<code>`` strings).  The codes are a stable interface.
REASON_TEXTS: dict[str, str] = {
    # why a candidate has its rank
    "by_travel_time": "by road travel time",
    "own_station": "own station {station}, which can arrive within {threshold_s} s",
    "other_station": "other station, after own station {station}",
    "own_station_too_slow": "no unit of station {station} within {threshold_s} s: by travel time",
    "preferred_type": "preferred type {unit_type} (may be {slack_s} s slower)",
    "required_type": "required type {unit_type}",
    "position_stale": "position stale: located at its post or station",
    # why a recommendation is not "ok"
    "none_available": "no unit is available ({in_service} units in service)",
    "all_stale": "all {available} available units have stale positions",
    "none_within_limit": "none of {available} available units can arrive within {limit_s} s",
    "none_by_road": "none of {available} available units can arrive by road",
    "required_type_missing": "no {unit_types} unit can be sent",
    "team_short": "{needed} units needed, only {suitable} suitable",
    "all_candidates_stale": "every candidate's position is stale: ranked from its post or station",
}


@dataclass(frozen=True, slots=True)
class Reason:
    """A reason as a stable machine ``code`` with its parameters, and its English ``text``.

    Parameters are JSON scalars, or lists of unit types (read as alternatives, "a or b").
    """

    code: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, code: str, **params: Any) -> Reason:
        """A reason with the given code and parameters (the code must be known)."""
        if code not in REASON_TEXTS:
            raise ValueError(f"unknown reason code {code!r}")
        return cls(code, tuple(sorted(params.items())))

    @property
    def text(self) -> str:
        """The English text."""
        shown = {k: " or ".join(v) if isinstance(v, list) else v for k, v in self.params}
        return REASON_TEXTS[self.code].format(**shown)

    def as_dict(self) -> dict[str, Any]:
        """``{"code", "params", "text"}``, JSON-ready."""
        return {"code": self.code, "params": dict(self.params), "text": self.text}


def _joined(reasons: Sequence[Reason]) -> str:
    return "; ".join(r.text for r in reasons)


@dataclass(frozen=True, slots=True)
class UnitView:
    """What the dispatcher knows about one unit at the moment of the call.

    ``lon``/``lat`` is the last AVL position, or the unit's post or station when that position is
    older than the staleness limit (then ``position_stale`` is true).
    """

    id: str
    unit_type: str
    mode: str
    station: str | None
    lon: float
    lat: float
    status: str = AVAILABLE
    position_stale: bool = False
    capabilities: frozenset[str] = frozenset()
    #: Opaque key of the position for a travel backend that precomputes its locations (the
    #: simulator's :class:`~citywatch.sim.travel.SearchTravel` location id); ``None`` otherwise.
    position_key: Any = None


@dataclass(frozen=True, slots=True)
class IncidentView:
    """The facts about an incident that the policies look at."""

    id: str
    category: str
    priority: int | None
    lon: float
    lat: float
    station: str | None = None
    place_kinds: frozenset[str] = frozenset()
    #: Opaque key of the location for a keyed travel backend (see :class:`KeyedTravel`).
    position_key: Any = None


class TravelFn(Protocol):
    """Road travel from many sources to one target in one mode.

    Returns ``(seconds, metres)`` arrays aligned with ``sources``; ``inf`` seconds when a source
    cannot reach the target (or only beyond ``limit_s``).
    """

    def __call__(
        self,
        sources: np.ndarray,
        mode: str,
        target: tuple[float, float],
        limit_s: float | None,
    ) -> tuple[np.ndarray, np.ndarray]: ...


class KeyedTravel(TravelFn, Protocol):
    """A :class:`TravelFn` that can also be asked by opaque position keys instead of coordinates.

    :func:`recommend` calls ``by_key`` for a mode when every unit of that mode (and the incident)
    carries a ``position_key``, and the plain call otherwise.  The answer must be the same as the
    plain call with the coordinates the keys stand for.
    """

    def by_key(
        self,
        keys: np.ndarray,
        mode: str,
        target: tuple[float, float],
        target_key: Any,
        limit_s: float | None,
    ) -> tuple[np.ndarray, np.ndarray]: ...


def router_travel(router: Router) -> TravelFn:
    """Adapt a :class:`citywatch.routing.Router` to the :class:`TravelFn` protocol.

    Parameters
    ----------
    router : citywatch.routing.Router
        Any object with ``many_to_one(sources, target, mode, limit_s)`` returning a result with
        ``seconds`` and ``metres`` arrays.

    Returns
    -------
    TravelFn
        A function that calls ``router.many_to_one`` once per call.
    """

    def travel(
        sources: np.ndarray, mode: str, target: tuple[float, float], limit_s: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        res = router.many_to_one(sources, target, mode=parse_mode(mode), limit_s=limit_s)
        return np.asarray(res.seconds, dtype=float), np.asarray(res.metres, dtype=float)

    return travel


# --------------------------------------------------------------------------- policies


@dataclass(frozen=True, slots=True)
class Policy:
    """How candidates are ordered.  Build with :func:`nearest` or :func:`station_first`.

    ``limit_s``: units that cannot arrive within this many seconds are not candidates.
    ``allow_stale``: whether units whose position is stale (located at their post or station)
    may be recommended.
    """

    name: PolicyName
    threshold_s: float | None = None
    limit_s: float | None = None
    allow_stale: bool = True


def nearest(*, limit_s: float | None = None, allow_stale: bool = True) -> Policy:
    """Integrated patrol: the fastest unit by road, whatever its station.

    Parameters
    ----------
    limit_s : float, optional
        Ignore units that cannot arrive within this many seconds.
    allow_stale : bool
        Whether units with a stale position may be recommended.

    Returns
    -------
    Policy
    """
    return Policy("nearest", None, limit_s, allow_stale)


def station_first(
    threshold_s: float = STATION_FIRST_THRESHOLD_S,
    *,
    limit_s: float | None = None,
    allow_stale: bool = True,
) -> Policy:
    """Traditional dispatch: the incident's own station first, others when it cannot be quick.

    Parameters
    ----------
    threshold_s : float
        Own-station units are ranked first when at least one of them can arrive within this many
        seconds; otherwise every unit is ranked by travel time.
    limit_s : float, optional
        Ignore units that cannot arrive within this many seconds.
    allow_stale : bool
        Whether units with a stale position may be recommended.

    Returns
    -------
    Policy
    """
    if not threshold_s > 0:
        raise ValidationError("station_first threshold must be positive", field="threshold_s")
    return Policy("station_first", float(threshold_s), limit_s, allow_stale)


def parse_policy_name(name: str, field: str = "policy") -> PolicyName:
    """Check a policy name given by a user or a file.

    Parameters
    ----------
    name : str
        The name as given.
    field : str
        What to call it in the error (``"policy"``, ``"dispatch.policy"``).

    Returns
    -------
    {"nearest", "station_first"}

    Raises
    ------
    ValidationError
        For any other name; the message lists the known ones.
    """
    for known in POLICY_NAMES:
        if name == known:
            return known
    raise ValidationError(f"{field} must be {' or '.join(POLICY_NAMES)}, not {name!r}", field=field)


def make_policy(
    name: str,
    *,
    threshold_s: float | None = None,
    limit_s: float | None = None,
    allow_stale: bool = True,
    field: str = "policy",
) -> Policy:
    """The policy called ``name``, built by its constructor.

    Parameters
    ----------
    name : str
        ``nearest`` or ``station_first`` (checked by :func:`parse_policy_name`).
    threshold_s : float, optional
        ``station_first``'s threshold (default :data:`STATION_FIRST_THRESHOLD_S`); ignored by
        ``nearest``.
    limit_s, allow_stale
        As for :func:`nearest` and :func:`station_first`.
    field : str
        What to call the name in an error.

    Returns
    -------
    Policy
    """
    if parse_policy_name(name, field) == "station_first":
        threshold = STATION_FIRST_THRESHOLD_S if threshold_s is None else threshold_s
        return station_first(threshold, limit_s=limit_s, allow_stale=allow_stale)
    return nearest(limit_s=limit_s, allow_stale=allow_stale)


# --------------------------------------------------------------------------- recommend


@dataclass(frozen=True, slots=True)
class Candidate:
    """One ranked unit: travel time and road distance from its position, and why it is here
    (``reasons``: the rank's reason first, then notes on type and staleness)."""

    rank: int
    unit_id: str
    unit_type: str
    mode: str
    station: str | None
    eta_s: float
    metres: float
    position_stale: bool
    reasons: tuple[Reason, ...]

    @property
    def reason(self) -> str:
        """The reasons in English, separated by semicolons."""
        return _joined(self.reasons)


@dataclass(frozen=True, slots=True)
class Recommendation:
    """Ranked candidates and the suggested team.

    ``status`` is ``"ok"``, ``"short"`` (fewer suitable units than needed, or no unit of a
    required type), ``"none_available"``, ``"all_stale"`` or ``"none_within_limit"``;
    ``reasons`` explain any status other than ``"ok"``.
    """

    incident_id: str
    policy: str
    status: RecommendationStatus
    candidates: tuple[Candidate, ...]
    team: tuple[str, ...]
    requirement: Requirement
    reasons: tuple[Reason, ...] = ()

    @property
    def reason(self) -> str | None:
        """The reasons in English, separated by semicolons (``None`` when there are none)."""
        return _joined(self.reasons) or None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (infinite values never occur among candidates)."""
        req = self.requirement
        return {
            "incident_id": self.incident_id,
            "policy": self.policy,
            "status": self.status,
            "reason": self.reason,
            "reasons": [r.as_dict() for r in self.reasons],
            "team": list(self.team),
            "requirement": {
                "units": req.units,
                "preferred_types": sorted(req.preferred_types),
                "required_types": sorted(req.required_types),
                "rules": list(req.rules),
            },
            "candidates": [
                {
                    "rank": c.rank,
                    "unit_id": c.unit_id,
                    "unit_type": c.unit_type,
                    "mode": c.mode,
                    "station": c.station,
                    "eta_s": c.eta_s,
                    "metres": c.metres,
                    "position_stale": c.position_stale,
                    "reason": c.reason,
                    "reasons": [r.as_dict() for r in c.reasons],
                }
                for c in self.candidates
            ],
        }


#: The unit facts the kernel reads (see :func:`policy_arrays`).
_Facts = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
#: Requirement and station combinations whose facts a :class:`Fleet` keeps.
_FACTS_KEPT = 256


@dataclass(frozen=True, slots=True)
class _ModeGroup:
    """The units of one travel mode, in their given order, with the arrays a travel call takes."""

    mode: str
    units: list[UnitView]
    sources: np.ndarray
    keys: np.ndarray | None


def _by_mode(units: Sequence[UnitView]) -> tuple[list[UnitView], list[_ModeGroup]]:
    """Units grouped by travel mode (modes sorted, units in their given order within a mode)."""
    modes = [u.mode for u in units]
    distinct = sorted(set(modes))
    if len(distinct) == 1:
        by_mode = {distinct[0]: list(units)}
    else:  # one comprehension per mode: much cheaper than appending unit by unit
        by_mode = {m: [u for u, um in zip(units, modes, strict=True) if um == m] for m in distinct}
    groups = []
    for mode, group in by_mode.items():
        keys = [u.position_key for u in group]
        groups.append(
            _ModeGroup(
                mode,
                group,
                np.array([(u.lon, u.lat) for u in group], dtype=float).reshape(-1, 2),
                None if None in keys else np.asarray(keys),
            )
        )
    return [u for g in groups for u in g.units], groups


class Fleet(Sequence[UnitView]):
    """Units with what :func:`recommend` derives from them computed once.

    A plain sequence of units is read afresh on every call (a pass over every unit to pick the
    available ones, group them by mode and gather their positions).  A caller that asks many
    times about the same units (the simulator between events, the live service between AVL
    fixes and status changes) builds a ``Fleet`` once and passes it instead: the answer is the
    same, the per-call work is the routing only.  A ``Fleet`` is immutable; build a new one when
    a unit moves or changes status.

    Parameters
    ----------
    units : iterable of UnitView
        All units (any status).
    """

    __slots__ = ("_facts", "_prepared", "_units", "free")

    def __init__(self, units: Sequence[UnitView]) -> None:
        self._units = tuple(units)
        self.free = [u for u in self._units if u.status == AVAILABLE]
        self._prepared: dict[bool, tuple[list[UnitView], list[UnitView], list[_ModeGroup]]] = {}
        self._facts: dict[tuple[bool, frozenset[str], frozenset[str], str | None], _Facts] = {}

    def __len__(self) -> int:
        return len(self._units)

    def __getitem__(self, i: Any) -> Any:
        return self._units[i]

    def usable(self, allow_stale: bool) -> tuple[list[UnitView], list[UnitView], list[_ModeGroup]]:
        """The usable units, and the same in travel-call order with their mode groups."""
        if allow_stale not in self._prepared:
            usable = self.free if allow_stale else [u for u in self.free if not u.position_stale]
            self._prepared[allow_stale] = (usable, *_by_mode(usable))
        return self._prepared[allow_stale]

    def facts(self, allow_stale: bool, req: Requirement, station: str | None) -> _Facts:
        """:func:`policy_arrays` of the usable units in travel-call order, kept per
        requirement and station (incidents differ in few of them, the units not at all)."""
        key = (allow_stale, req.preferred_types, req.required_types, station)
        found = self._facts.get(key)
        if found is None:
            if len(self._facts) >= _FACTS_KEPT:
                self._facts.clear()
            found = self._facts[key] = policy_arrays(self.usable(allow_stale)[1], req, station)
        return found


def _travel_all(
    groups: list[_ModeGroup], incident: IncidentView, travel: TravelFn, limit_s: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Travel time of every unit: one travel call per mode with all units of that mode.

    Returns the seconds and metres as float arrays aligned with the units of ``groups`` in order.
    """
    target = (incident.lon, incident.lat)
    target_key = incident.position_key
    by_key = getattr(travel, "by_key", None) if target_key is not None else None
    seconds_all: list[np.ndarray] = []
    metres_all: list[np.ndarray] = []
    for g in groups:
        if by_key is not None and g.keys is not None:
            seconds, metres = by_key(g.keys, g.mode, target, target_key, limit_s)
        else:
            seconds, metres = travel(g.sources, g.mode, target, limit_s)
        if len(seconds) != len(g.units) or len(metres) != len(g.units):
            raise DataError(
                f"travel function returned {len(seconds)} times for {len(g.units)} units"
            )
        seconds_all.append(np.asarray(seconds, dtype=float).reshape(-1))
        metres_all.append(np.asarray(metres, dtype=float).reshape(-1))
    if len(seconds_all) == 1:
        return seconds_all[0], metres_all[0]
    return np.concatenate(seconds_all), np.concatenate(metres_all)


#: Search limits (s) tried in turn when the policy sets none: a search stops at the first limit
#: whose answer :func:`citywatch.dispatch.kernel.rank_units` reports *decided* (the same
#: whatever the times of the units beyond the limit), so
#: a city-wide fleet costs what the few minutes around the incident cost.  ``None``: unbounded.
SEARCH_LIMITS_S: tuple[float | None, ...] = (180.0, 900.0, 3600.0, None)


def recommend(
    incident: IncidentView,
    units: Sequence[UnitView],
    travel: TravelFn,
    policy: Policy,
    k: int = 5,
    rules: RequirementRules | None = None,
) -> Recommendation:
    """Rank the available units for an incident by road travel time under a policy.

    Parameters
    ----------
    incident : IncidentView
        The incident to serve.
    units : sequence of UnitView, or Fleet
        All units (any status; only ``available`` ones are considered).  Pass a :class:`Fleet`
        to reuse what is derived from the units between calls.
    travel : TravelFn
        Road travel times; called once per travel mode with every candidate unit of that mode
        (through ``by_key`` for a :class:`KeyedTravel` when the units and the incident carry
        position keys).
    policy : Policy
        :func:`nearest` or :func:`station_first`.
    k : int
        How many candidates to return (at least the team size).
    rules : RequirementRules, optional
        Requirement rules; the bundled ones by default.

    Returns
    -------
    Recommendation
        Candidates ranked best first, the suggested team, and a status with the reason when
        nothing (or not enough) suitable is available.

    Notes
    -----
    Every unit is scored, and the order is the stable sort of all of them by
    ``(eta_s - preferred-type slack, eta_s, unit id)`` (own station first under
    ``station_first``), but only the units that can be shown are sorted: the best
    ``max(k, team size)`` of each group the policy ranks separately, and the best unit of a
    required type.  The ordering is the compiled :func:`citywatch.dispatch.kernel.rank_units`,
    which the simulator's event loop calls too.
    """
    if k < 1:
        raise ValidationError("k must be at least 1", field="k")
    if not (math.isfinite(incident.lon) and math.isfinite(incident.lat)):
        raise ValidationError("incident has no valid location", field="location")
    req = (rules or load_requirements()).requirement_for(incident)
    fleet = units if isinstance(units, Fleet) else Fleet(units)
    if not fleet.free:
        why = Reason.of("none_available", in_service=len(units))
        return Recommendation(incident.id, policy.name, "none_available", (), (), req, (why,))
    usable, scored, by_mode = fleet.usable(policy.allow_stale)
    if not usable:
        why = Reason.of("all_stale", available=len(fleet.free))
        return Recommendation(incident.id, policy.name, "all_stale", (), (), req, (why,))
    ranking = _Ranker(
        incident, policy, k, req, scored, fleet.facts(policy.allow_stale, req, incident.station)
    )
    if policy.limit_s is not None:  # units beyond the policy's limit are no candidates anyway
        eta, metres = _travel_all(by_mode, incident, travel, policy.limit_s)
        ranked = ranking(eta, math.inf)
    else:
        # The widening search: limits of SEARCH_LIMITS_S in turn, until the compiled kernel
        # reports its answer decided whatever the times of the units not reached yet are.
        for limit in SEARCH_LIMITS_S:
            eta, metres = _travel_all(by_mode, incident, travel, limit)
            ranked = ranking(eta, math.inf if limit is None else limit)
            if ranked[-1]:
                break
    return ranking.result(eta, metres, ranked)


_STATUS: dict[int, RecommendationStatus] = {
    kernel.STATUS_OK: "ok",
    kernel.STATUS_SHORT: "short",
    kernel.STATUS_ALL_STALE: "all_stale",
    kernel.STATUS_NONE_WITHIN_LIMIT: "none_within_limit",
}
_GROUP_REASON = {
    kernel.GROUP_BY_TRAVEL_TIME: "by_travel_time",
    kernel.GROUP_OWN_STATION: "own_station",
    kernel.GROUP_OTHER_STATION: "other_station",
    kernel.GROUP_OWN_TOO_SLOW: "own_station_too_slow",
}


#: What :func:`citywatch.dispatch.kernel.rank_units` returns: shown, groups, team, status,
#: required_missing, decided.
_Ranked = tuple[np.ndarray, np.ndarray, np.ndarray, int, bool, bool]


def policy_arrays(units: Sequence[UnitView], req: Requirement, station: str | None) -> _Facts:
    """The unit facts :func:`citywatch.dispatch.kernel.rank_units` reads, as arrays.

    Returns ``is_pref``, ``is_req``, ``own`` (of ``station``), ``id_rank`` and ``stale``,
    aligned with ``units``.
    """
    n = len(units)
    types = [u.unit_type for u in units]
    is_pref = np.fromiter((t in req.preferred_types for t in types), np.bool_, n)
    is_req = np.fromiter((t in req.required_types for t in types), np.bool_, n)
    own = np.fromiter((u.station == station for u in units), np.bool_, n)
    # String order of the ids (equal ids share a rank), as Python's sort compares them.
    _, id_rank = np.unique(np.array([u.id for u in units], dtype=str), return_inverse=True)
    stale = np.fromiter((u.position_stale for u in units), np.bool_, n)
    return is_pref, is_req, own, id_rank.astype(np.int64), stale


class _Ranker:
    """The scored units of one call as the kernel's arrays, ranked for each travel round."""

    __slots__ = ("arrays", "incident", "k", "limit_s", "policy", "req", "scored", "sf", "threshold")

    def __init__(
        self,
        incident: IncidentView,
        policy: Policy,
        k: int,
        req: Requirement,
        scored: list[UnitView],
        arrays: _Facts,
    ) -> None:
        self.incident, self.policy, self.k, self.req, self.scored = incident, policy, k, req, scored
        self.arrays = arrays  # policy_arrays() of the scored units (kept by the Fleet)
        self.sf = policy.name == "station_first" and incident.station is not None
        self.threshold = policy.threshold_s if policy.threshold_s is not None else math.inf
        self.limit_s = math.inf if policy.limit_s is None else policy.limit_s

    def __call__(self, eta: np.ndarray, horizon_s: float) -> _Ranked:
        """:func:`citywatch.dispatch.kernel.rank_units` on these travel times (``inf``:
        unreachable, or not reached within ``horizon_s``)."""
        is_pref, is_req, own, id_rank, stale = self.arrays
        req = self.req
        return cast(
            _Ranked,
            kernel.rank_units(
                np.ascontiguousarray(eta, dtype=np.float64),
                is_pref,
                is_req,
                own,
                id_rank,
                stale,
                req.prefer_slack_s if req.preferred_types else 0.0,
                self.sf,
                self.threshold,
                self.limit_s,
                req.units,
                self.k,
                bool(req.required_types),
                horizon_s,
            ),
        )

    def result(self, eta: np.ndarray, metres: np.ndarray, ranked: _Ranked) -> Recommendation:
        """The recommendation of a ranking, with its reasons."""
        incident, policy, req, scored = self.incident, self.policy, self.req, self.scored
        shown_idx, groups, team_idx, status, required_missing, _ = ranked
        station = incident.station
        if status == kernel.STATUS_NONE_WITHIN_LIMIT:
            why = (
                Reason.of("none_within_limit", available=len(scored), limit_s=round(policy.limit_s))
                if policy.limit_s is not None
                else Reason.of("none_by_road", available=len(scored))
            )
            return Recommendation(
                incident.id, policy.name, "none_within_limit", (), (), req, (why,)
            )
        params: dict[str, Any] = {
            "station": station,
            "threshold_s": round(self.threshold) if self.sf else 0,
        }
        group_reason = {
            code: Reason.of(
                name, **{p: v for p, v in params.items() if "{" + p in REASON_TEXTS[name]}
            )
            for code, name in _GROUP_REASON.items()
        }
        candidates = tuple(
            Candidate(
                rank=r + 1,
                unit_id=(u := scored[int(i)]).id,
                unit_type=u.unit_type,
                mode=u.mode,
                station=u.station,
                eta_s=float(eta[i]),
                metres=float(metres[i]),
                position_stale=u.position_stale,
                reasons=_annotate(u, group_reason[int(g)], req),
            )
            for r, (i, g) in enumerate(zip(shown_idx, groups, strict=True))
        )
        team = tuple(scored[int(i)].id for i in team_idx)
        reasons: list[Reason] = []
        if status == kernel.STATUS_SHORT:
            if required_missing:
                reasons.append(
                    Reason.of("required_type_missing", unit_types=sorted(req.required_types))
                )
            if len(team_idx) < req.units:
                reasons.append(Reason.of("team_short", needed=req.units, suitable=len(team_idx)))
        elif status == kernel.STATUS_ALL_STALE:
            reasons.append(Reason.of("all_candidates_stale"))
        return Recommendation(
            incident.id, policy.name, _STATUS[status], candidates, team, req, tuple(reasons)
        )


def _annotate(unit: UnitView, why: Reason, req: Requirement) -> tuple[Reason, ...]:
    notes = [why]
    unit_type = unit.unit_type
    if unit_type in req.preferred_types:
        notes.append(
            Reason.of("preferred_type", unit_type=unit_type, slack_s=round(req.prefer_slack_s))
        )
    if unit_type in req.required_types:
        notes.append(Reason.of("required_type", unit_type=unit_type))
    if unit.position_stale:
        notes.append(Reason.of("position_stale"))
    return tuple(notes)
