"""The dispatch policy's scoring, compiled: rank scored units and pick the team, on arrays.

:func:`citywatch.dispatch.policy.recommend` (the live service) calls :func:`rank_units` after
its travel calls, and the simulator's compiled event loop calls the same function on its own
arrays: one policy, one implementation.  Reasons, texts and the result objects stay in
:mod:`citywatch.dispatch.policy`; this module only orders indices.

The order is the stable sort of every reachable unit by ``(eta - preferred-type slack, eta,
unit id, position)``, in groups under ``station_first`` (own station first when one of its
units can arrive within the threshold), but only the units that can be shown are sorted.

A caller whose travel times are only known up to a *horizon* (the simulator's bounded
searches: every unit left at ``inf`` is known to need more than ``horizon`` seconds) asks
:func:`rank_units` whether the answer is already **decided**, i.e. the same whatever those
unknown times are; if not, it searches further and calls again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np

__all__ = [
    "GROUP_BY_TRAVEL_TIME",
    "GROUP_OTHER_STATION",
    "GROUP_OWN_STATION",
    "GROUP_OWN_TOO_SLOW",
    "STATUS_ALL_STALE",
    "STATUS_NONE_WITHIN_LIMIT",
    "STATUS_OK",
    "STATUS_SHORT",
    "compiled",
    "compiled_with_python",
    "inlined",
    "rank_units",
]

# Group codes: the reason a shown unit has its rank.
GROUP_BY_TRAVEL_TIME, GROUP_OWN_STATION, GROUP_OTHER_STATION, GROUP_OWN_TOO_SLOW = range(4)
# Status codes of a ranking (before the "none available"/"all stale" checks on the views).
STATUS_OK, STATUS_SHORT, STATUS_ALL_STALE, STATUS_NONE_WITHIN_LIMIT = range(4)

_F = TypeVar("_F", bound=Callable[..., Any])


def compiled(fn: _F) -> _F:
    """Compile ``fn`` with numba (nopython, cached on disk, releasing the GIL)."""
    return cast(_F, numba.njit(cache=True, nogil=True)(fn))


def compiled_with_python(fn: _F) -> _F:
    """Like :func:`compiled`, but holding the GIL: for a function with a ``numba.objmode`` block
    (a call back into Python), which cannot run without it.  Its compiled callers may still
    release the GIL; the block takes it back for the call."""
    return cast(_F, numba.njit(cache=True)(fn))


def inlined(fn: _F) -> _F:
    """Like :func:`compiled`, inlined into its compiled callers: for small functions called in
    inner loops with tuples of arrays, whose every call would otherwise count references."""
    return cast(_F, numba.njit(cache=True, nogil=True, inline="always")(fn))


@compiled
def _before(i: int, j: int, primary: Any, eta: Any, id_rank: Any) -> bool:
    if primary[i] != primary[j]:
        return bool(primary[i] < primary[j])
    if eta[i] != eta[j]:
        return bool(eta[i] < eta[j])
    if id_rank[i] != id_rank[j]:
        return bool(id_rank[i] < id_rank[j])
    return i < j


@compiled
def _best(idx: Any, m: int, primary: Any, eta: Any, id_rank: Any) -> Any:
    """The best ``m`` units of ``idx`` in the policy's order (every tie of the m-th considered)."""
    if m <= 0 or len(idx) == 0:
        return idx[:0]
    pool = idx
    if len(idx) > m:
        kth = np.partition(primary[idx], m - 1)[m - 1]
        pool = idx[primary[idx] <= kth]
    out = pool.copy()
    for a in range(1, len(out)):  # insertion sort: the pool is about m units
        x = out[a]
        b = a - 1
        while b >= 0 and _before(x, out[b], primary, eta, id_rank):
            out[b + 1] = out[b]
            b -= 1
        out[b + 1] = x
    return out[:m]


@compiled
def rank_units(
    eta: Any,
    is_pref: Any,
    is_req: Any,
    own: Any,
    id_rank: Any,
    stale: Any,
    slack_s: float,
    station_first: bool,
    threshold_s: float,
    limit_s: float,
    units_needed: int,
    k: int,
    has_required: bool,
    horizon_s: float,
) -> tuple[Any, Any, Any, int, bool, bool]:
    """Rank units by the policy's order and choose the team.

    Parameters
    ----------
    eta : ndarray of float
        Travel seconds of each unit (``inf``: unreachable, beyond the limit, or unknown beyond
        ``horizon_s``), in the order of the travel calls.
    is_pref, is_req, own, stale : ndarray of bool
        Unit of a preferred type, of a required type, of the incident's own station (only read
        when ``station_first``), with a stale position.
    id_rank : ndarray of int
        Rank of each unit's id in string order (equal ids, equal ranks).
    slack_s : float
        How much slower a preferred-type unit may be and still rank first (0 when the incident
        prefers no type).
    station_first : bool
        Whether the ``station_first`` policy applies (policy and incident station given).
    threshold_s, limit_s : float
        The station-first threshold and the policy's limit (``inf`` for none).
    units_needed, k : int
        Team size, and how many candidates to show (at least the team size are shown).
    has_required : bool
        Whether the team must hold a unit of a required type.
    horizon_s : float
        Times up to this are exact; ``inf`` when every time is known.

    Returns
    -------
    shown : ndarray of int
        Indices of the shown candidates, best first.
    groups : ndarray of int
        Group code (``GROUP_*``) of each shown candidate.
    team : ndarray of int
        Indices of the suggested team.
    status : int
        ``STATUS_*``.
    required_missing : bool
        Whether no unit of a required type can be sent.
    decided : bool
        Whether the answer holds whatever the unknown times beyond ``horizon_s`` are.
    """
    n = len(eta)
    empty = np.zeros(0, np.int64)
    if horizon_s >= limit_s:  # everyone beyond the horizon is beyond the limit too
        horizon_s = math.inf
    reach = np.zeros(n, np.bool_)
    # Units whose time is unknown (beyond the horizon), counted where they could matter.
    unknown_own = unknown_other = 0
    unknown_req_own = unknown_req_other = 0  # of a required type, own station or not
    for i in range(n):
        reach[i] = math.isfinite(eta[i]) and eta[i] <= limit_s
        if not math.isfinite(eta[i]) and horizon_s < math.inf:
            if station_first and own[i]:
                unknown_own += 1
                if is_req[i]:
                    unknown_req_own += 1
            else:
                unknown_other += 1
                if is_req[i]:
                    unknown_req_other += 1
    unknown_all = unknown_own + unknown_other
    idx = np.flatnonzero(reach)
    if len(idx) == 0:
        return empty, empty, empty, STATUS_NONE_WITHIN_LIMIT, False, unknown_all == 0
    primary = eta.copy()
    for i in range(n):
        if is_pref[i]:
            primary[i] = eta[i] - slack_s
    # Unknown units have eta > horizon, hence primary > bound: they cannot precede a known
    # unit whose primary is at most the bound.
    bound = horizon_s - slack_s
    decided = True

    # The policy's groups, ranked one after the other, and how many unknown units each holds.
    if station_first:
        own_idx = idx[own[idx]]
        quick = False
        for i in own_idx:
            quick = quick or eta[i] <= threshold_s
        if not quick and threshold_s >= horizon_s and unknown_own > 0:
            decided = False  # an own unit beyond the horizon might still be within threshold
        if quick:
            g_idx = [own_idx, idx[~own[idx]]]
            g_code = [GROUP_OWN_STATION, GROUP_OTHER_STATION]
            g_unknown = [unknown_own, unknown_other]
            g_unknown_req = [unknown_req_own, unknown_req_other]
        else:
            g_idx = [idx, empty]
            g_code = [GROUP_OWN_TOO_SLOW, GROUP_OWN_TOO_SLOW]
            g_unknown = [unknown_all, 0]
            g_unknown_req = [unknown_req_own + unknown_req_other, 0]
    else:
        g_idx = [idx, empty]
        g_code = [GROUP_BY_TRAVEL_TIME, GROUP_BY_TRAVEL_TIME]
        g_unknown = [unknown_all, 0]
        g_unknown_req = [unknown_req_own + unknown_req_other, 0]

    m = max(k, units_needed)
    shown = np.empty(m, np.int64)
    groups = np.empty(m, np.int64)
    n_shown = 0
    for g in range(2):
        need = m - n_shown
        best = _best(g_idx[g], need, primary, eta, id_rank)
        for b in best:
            shown[n_shown] = b
            groups[n_shown] = g_code[g]
            n_shown += 1
        if need > 0 and g_unknown[g] > 0 and (len(best) < need or primary[best[-1]] > bound):
            decided = False

    team = shown[: min(units_needed, n_shown)].copy()
    required_missing = False
    extra = np.zeros(0, np.int64)
    extra_groups = np.zeros(0, np.int64)
    has_req_in_team = False
    for i in team:
        has_req_in_team = has_req_in_team or is_req[i]
    if has_required and not has_req_in_team:
        best_required = -1
        for g in range(2):  # the best one of the first group that holds one
            cand = g_idx[g][is_req[g_idx[g]]]
            found = _best(cand, 1, primary, eta, id_rank)
            # A unit of this group beyond the horizon could be that best one (or, when the
            # group has none reached, the group's only ones, ahead of any later group's).
            if g_unknown_req[g] > 0 and (len(found) == 0 or primary[found[0]] > bound):
                decided = False
            if len(found):
                best_required = found[0]
                break
        if best_required < 0:
            required_missing = True
        else:
            keep = team[: max(units_needed - 1, 0)]
            team = np.append(keep, best_required)
            rid = id_rank[best_required]
            listed = False
            for s in shown[:n_shown]:
                listed = listed or id_rank[s] == rid
            if not listed:  # list it too, with every unit of the same id further down
                for g in range(2):
                    same = g_idx[g][id_rank[g_idx[g]] == rid]
                    got = _best(same, len(same), primary, eta, id_rank)
                    extra = np.append(extra, got)
                    extra_groups = np.append(extra_groups, np.full(len(got), g_code[g]))
    shown_all = np.concatenate((shown[:n_shown], extra))
    groups_all = np.concatenate((groups[:n_shown], extra_groups))
    if required_missing or len(team) < units_needed:
        status = STATUS_SHORT
    else:
        status = STATUS_ALL_STALE
        for s in shown_all:
            if not stale[s]:
                status = STATUS_OK
                break
    return shown_all, groups_all, team, status, required_missing, decided
