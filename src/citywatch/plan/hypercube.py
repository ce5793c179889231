"""Larson's hypercube queueing model: exact (1974) and approximate (1975) solutions.

``N`` identical units (service rate ``mu`` each) answer calls from atoms of demand; atom ``a``
generates Poisson calls at rate ``lambda_a`` and is served by the first free unit of its fixed
preference list (a permutation of all units).  When every unit is busy a call is lost
(``queue="none"``) or waits in one first-come-first-served queue (``queue="infinite"``) and goes
to whichever unit frees first.

Exact model (Larson 1974): a continuous-time Markov chain on the ``2^N`` busy/free states.  With
full preference lists every non-saturated state has total upward rate ``lambda`` and a state with
``k`` busy units has downward rate ``k mu``, so the probability of having ``k`` busy units is
exactly Erlang's (M/M/N/N or M/M/N); the queue tail of the infinite-queue model is geometric
behind the all-busy state.  The chain is solved by block Gauss-Seidel over the two parity classes
of the hypercube (every transition changes the number of busy units by one, so each class has no
internal transitions) with the level totals rescaled to Erlang's after each sweep
(aggregation-disaggregation), which converges in tens of sweeps for ``N = 15`` (32,768 states).

Approximate model (Larson 1975, "Approximating the performance of urban emergency service
systems", Operations Research 23(5)): treat units as independently busy with workload ``rho_n``
corrected by Larson's factor ``Q(N, rho, j)`` and solve the workload equations by fixed-point
iteration; cost ``O(atoms x N)`` per iteration, fine for hundreds of units.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy.special import gammaln

from citywatch.errors import DataError, NotFoundError, SolverError, ValidationError

__all__ = ["HypercubeModel", "HypercubeResult", "erlang_levels", "larson_q"]

Queue = Literal["infinite", "none"]


def erlang_levels(units: int, load: float, queue: Queue) -> tuple[np.ndarray, float]:
    """Probabilities of ``k = 0..N`` busy units in M/M/N/N (``"none"``) or M/M/N (``"infinite"``).

    Parameters
    ----------
    units : int
        ``N``.
    load : float
        Offered load ``a = lambda / mu`` in erlangs.
    queue : {"infinite", "none"}
        Queue discipline.

    Returns
    -------
    levels : numpy.ndarray
        ``P(k busy)`` for ``k < N``; the last entry is ``P(all busy)`` (queue included).
    tail : float
        For the infinite queue, ``P(all busy) / P(all busy, empty queue) = 1 / (1 - a/N)``;
        1 for the loss system.
    """
    k = np.arange(units + 1)
    log_terms = k * math.log(load) - gammaln(k + 1) if load > 0 else np.where(k == 0, 0.0, -np.inf)
    tail = 1.0
    if queue == "infinite":
        rho = load / units
        if rho >= 1:
            raise ValidationError(
                f"offered load {load:.3f} erlangs needs more than {units} units for a stable queue"
            )
        tail = 1.0 / (1.0 - rho)
    log_terms = log_terms.astype(np.float64)
    log_terms[-1] += math.log(tail)
    levels = np.exp(log_terms - np.max(log_terms))
    return levels / levels.sum(), tail


def larson_q(units: int, load: float, queue: Queue) -> np.ndarray:
    """Larson's correction factors ``Q(N, rho, j)`` for ``j = 0..N-1``.

    ``Q(N, rho, j) rho^j (1 - rho)`` is the probability that ``j`` given units are busy and one
    other given unit is free when, given ``k`` busy units, every set of ``k`` busy units is
    equally likely (Larson 1975, eq. for ``Q``; ``rho`` is the mean workload of a unit):
    ``Q = sum_{k=j}^{N-1} P_k C(N-j-1, k-j) / C(N, k) / (rho^j (1 - rho))``.
    For ``N = 3`` and ``rho = 1/2`` with an infinite queue this gives 1, 0.73684 and 0.63158,
    the values printed in Larson & Odoni, Urban Operations Research (1981), section 5.5.3.
    """
    levels, _ = erlang_levels(units, load, queue)
    n = units
    rho = float(levels @ np.minimum(np.arange(n + 1), n)) / n  # mean fraction of busy units
    q = np.empty(n)
    k = np.arange(n)
    for j in range(n):
        kk = k[j:]
        log_ratio = (
            gammaln(n - j)
            - gammaln(kk - j + 1)
            - gammaln(n - kk)  # log C(N-j-1, k-j)
            - (gammaln(n + 1) - gammaln(kk + 1) - gammaln(n - kk + 1))  # - log C(N, k)
        )
        q[j] = float(levels[kk] @ np.exp(log_ratio))
        q[j] /= rho**j * (1.0 - rho) if rho > 0 else 1.0
    return q


@dataclass
class HypercubeResult:
    """Performance measures of a hypercube model.

    Attributes
    ----------
    method : str
        ``"exact"`` or ``"approximate"``.
    workloads : numpy.ndarray
        Fraction of time each unit is busy (queue time included).
    p_all_busy : float
        Probability that every unit is busy (Erlang B / Erlang C for identical units).
    dispatch : numpy.ndarray
        ``dispatch[n, a]``: fraction of all dispatches that send unit ``n`` to atom ``a``.
    cross_area_fraction : float
        Share of dispatches to a unit that is not the atom's first preference.
    state_probabilities : numpy.ndarray or None
        Exact mode: probability of each state, indexed by the bit mask of busy units (bit ``n``
        = unit ``n``); the all-busy state includes every queue length.
    travel_time_by_atom, mean_travel_time : numpy.ndarray or None, float or None
        Mean travel time to calls from each atom and overall, when travel times are given.
    iterations : int
        Sweeps (exact) or fixed-point iterations (approximate).
    """

    method: str
    workloads: np.ndarray
    p_all_busy: float
    dispatch: np.ndarray
    cross_area_fraction: float
    state_probabilities: np.ndarray | None = None
    travel_time_by_atom: np.ndarray | None = None
    mean_travel_time: float | None = None
    iterations: int = 0
    atom_ids: list[str] = field(default_factory=list)

    def to_dict(self, *, include_states: bool = True) -> dict[str, Any]:
        """The JSON document of ``citywatch plan hypercube --json``."""
        out: dict[str, Any] = {
            "method": self.method,
            "workloads": self.workloads,
            "p_all_busy": self.p_all_busy,
            "cross_area_fraction": self.cross_area_fraction,
            "iterations": self.iterations,
        }
        if include_states and self.state_probabilities is not None:
            out["state_probabilities"] = self.state_probabilities
        if self.travel_time_by_atom is not None:
            out["travel_time_by_atom"] = dict(
                zip(self.atom_ids, self.travel_time_by_atom.tolist(), strict=True)
            )
            out["mean_travel_time"] = self.mean_travel_time
        return out


@dataclass(frozen=True)
class HypercubeModel:
    """A hypercube model: ``N`` identical units, atoms with rates and dispatch preferences.

    Parameters
    ----------
    units : int
        ``N``.
    service_rate : float
        ``mu``, calls per unit of time per unit (same time unit as the rates).
    queue : {"infinite", "none"}
        Calls arriving when all units are busy wait (``"infinite"``) or are lost (``"none"``).
    rates : numpy.ndarray
        ``lambda_a`` per atom.
    preferences : numpy.ndarray
        ``(atoms, N)`` integer array; row ``a`` lists every unit, most preferred first.
    travel_times : numpy.ndarray, optional
        ``(N, atoms)`` travel time from unit ``n`` to atom ``a``.
    atom_ids : list of str, optional
    """

    units: int
    service_rate: float
    queue: Queue
    rates: np.ndarray
    preferences: np.ndarray
    travel_times: np.ndarray | None = None
    atom_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = self.units
        if n < 1:
            raise ValidationError("units must be at least 1", field="units")
        if not (self.service_rate > 0 and math.isfinite(self.service_rate)):
            raise ValidationError("service_rate must be a positive number", field="service_rate")
        if self.queue not in ("infinite", "none"):
            raise ValidationError('queue must be "infinite" or "none"', field="queue")
        rates = np.asarray(self.rates, dtype=np.float64)
        if rates.ndim != 1 or len(rates) == 0:
            raise ValidationError("at least one atom is needed", field="atoms")
        if np.any(~np.isfinite(rates)) or np.any(rates < 0) or rates.sum() <= 0:
            raise ValidationError("atom rates must be non-negative with a positive total")
        pref = np.asarray(self.preferences)
        if pref.shape != (len(rates), n) or np.any(np.sort(pref, axis=1) != np.arange(n)):
            raise ValidationError(
                "each atom's preference must list every unit index 0..N-1 exactly once",
                field="preference",
            )
        if self.travel_times is not None and np.shape(self.travel_times) != (n, len(rates)):
            raise ValidationError("travel_times must be a units x atoms table", field="travel")
        object.__setattr__(self, "rates", rates)
        object.__setattr__(self, "preferences", pref.astype(np.int64))
        if not self.atom_ids:
            object.__setattr__(self, "atom_ids", tuple(str(a) for a in range(len(rates))))

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> HypercubeModel:
        """Build from the JSON document of ``citywatch plan hypercube`` (see docs/plan.md)."""
        try:
            atoms = spec["atoms"]
            travel = spec.get("travel_times")
            return cls(
                units=int(spec["units"]),
                service_rate=float(spec["service_rate"]),
                queue=spec.get("queue", "infinite"),
                rates=np.array([float(a["rate"]) for a in atoms]),
                preferences=np.array([[int(u) for u in a["preference"]] for a in atoms]),
                travel_times=None if travel is None else np.asarray(travel, dtype=np.float64),
                atom_ids=tuple(str(a.get("id", i)) for i, a in enumerate(atoms)),
            )
        except KeyError as exc:
            raise DataError(f"hypercube model: missing field {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise DataError(f"hypercube model: {exc}") from exc

    @classmethod
    def from_json(cls, path: str | Path) -> HypercubeModel:
        """Read a model file (see :meth:`from_dict`)."""
        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"file not found: {path}")
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: invalid JSON ({exc})") from exc
        if not isinstance(spec, dict):
            raise DataError(f"{path}: expected a JSON object")
        return cls.from_dict(spec)

    @property
    def load(self) -> float:
        """Offered load ``lambda / mu`` in erlangs."""
        return float(self.rates.sum() / self.service_rate)

    def solve(self, method: Literal["auto", "exact", "approximate"] = "auto") -> HypercubeResult:
        """Solve exactly for up to 16 units and approximately beyond (or as asked)."""
        if method == "auto":
            method = "exact" if self.units <= 16 else "approximate"
        return self.solve_exact() if method == "exact" else self.solve_approximate()

    # -- exact ---------------------------------------------------------------------------

    def _groups(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct preference lists and, per atom, the index of its list."""
        unique, inverse = np.unique(self.preferences, axis=0, return_inverse=True)
        return unique, inverse.ravel()

    def _first_free(self, pref: np.ndarray, states: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """For one preference list, the states in which each unit is the first free one."""
        out = []
        remaining = states
        for unit in pref:
            free = ((remaining >> unit) & 1) == 0
            out.append((int(unit), remaining[free]))
            remaining = remaining[~free]
            if len(remaining) == 0:
                break
        return out

    def solve_exact(self, *, tol: float = 1e-13, max_sweeps: int = 20000) -> HypercubeResult:
        """Solve the ``2^N``-state chain (see the module docstring).

        Raises
        ------
        ValidationError
            For more than 20 units (``2^N`` states would not fit in memory comfortably).
        SolverError
            When the iteration does not converge to ``tol`` in ``max_sweeps`` sweeps.
        """
        n, mu = self.units, self.service_rate
        if n > 20:
            raise ValidationError("the exact hypercube is limited to 20 units; use approximate")
        size = 1 << n
        states = np.arange(size, dtype=np.int64)
        full = size - 1
        busy = np.zeros(size, dtype=np.int64)
        for u in range(n):
            busy += (states >> u) & 1
        groups, group_of = self._groups()
        group_rate = np.bincount(group_of, self.rates, len(groups))
        up = np.zeros((size, n))  # up[s, u]: rate at which unit u becomes busy in state s
        non_full = states[:-1]
        for pref, rate in zip(groups, group_rate, strict=True):
            for unit, where in self._first_free(pref, non_full):
                up[where, unit] += rate
        levels, tail = erlang_levels(n, self.load, self.queue)
        # Unnormalised targets for the 2^N chain: the all-busy state without its queue tail.
        target = levels.copy()
        target[-1] /= tail
        target /= target.sum()
        out_rate = up.sum(axis=1) + busy * mu
        parity = busy & 1
        pi = target[busy] / np.bincount(busy, minlength=n + 1)[busy]
        # Per unit: states where it is busy, the same states with it free, and the rate of the
        # upward move between them; precomputed once, reused every sweep.
        moves = []
        for u in range(n):
            has = states[((states >> u) & 1) == 1]
            moves.append((has, has ^ (1 << u), up[has ^ (1 << u), u]))

        def inflow_of(p: np.ndarray) -> np.ndarray:
            inflow = np.zeros(size)
            for has, without, rate in moves:
                inflow[has] += p[without] * rate
                inflow[without] += p[has] * mu
            return inflow

        iterations = 0
        for sweep in range(1, max_sweeps + 1):
            for cls in (0, 1):
                sel = parity == cls
                pi[sel] = inflow_of(pi)[sel] / out_rate[sel]
            pi *= (target / np.bincount(busy, pi, n + 1))[busy]
            residual = float(np.abs(inflow_of(pi) - pi * out_rate).sum()) / (self.load * mu)
            if residual < tol:
                iterations = sweep
                break
        else:
            raise SolverError(f"hypercube chain did not converge in {max_sweeps} sweeps")
        # Scale to the true distribution: the all-busy state carries the queue tail.
        probs = pi / target.sum()
        probs = probs * (1.0 / (probs.sum() + probs[full] * (tail - 1.0)))
        probs[full] *= tail
        workloads = np.array([probs[has].sum() for has, _, _ in moves])
        dispatch = np.zeros((n, len(self.rates)))
        for g, pref in enumerate(groups):
            share = np.zeros(n)
            for unit, where in self._first_free(pref, non_full):
                share[unit] = probs[where].sum()
            atoms = np.nonzero(group_of == g)[0]
            dispatch[:, atoms] = share[:, None] * self.rates[atoms][None, :]
        return self._finish("exact", workloads, float(probs[full]), dispatch, probs, iterations)

    # -- approximate ---------------------------------------------------------------------

    def solve_approximate(self, *, tol: float = 1e-10, max_iter: int = 10000) -> HypercubeResult:
        """Larson's (1975) approximate procedure.

        Workloads solve ``rho_n = (1 - rho_n) V_n + c`` with
        ``V_n = sum_a (lambda_a / mu) Q(N, rho, k - 1) prod_{l < k} rho_{pref(a, l)}`` over the
        atoms whose ``k``-th preference is ``n``, and ``c = lambda P_Q / (N mu)`` for the share
        of queued calls each unit serves (0 without a queue).

        Raises
        ------
        SolverError
            When the fixed-point iteration does not converge.
        """
        n, mu = self.units, self.service_rate
        levels, _ = erlang_levels(n, self.load, self.queue)
        p_all = float(levels[-1])
        q = larson_q(n, self.load, self.queue)
        groups, group_of = self._groups()
        group_rate = np.bincount(group_of, self.rates, len(groups))
        queued = self.load * p_all / n if self.queue == "infinite" else 0.0
        served = self.load * (1.0 - p_all) if self.queue == "none" else self.load
        rho = np.full(n, served / n)
        for iteration in range(1, max_iter + 1):
            busy_before = self._busy_before(groups, rho)  # prod_{l<k} rho_pref(l) * Q(k-1)
            coeff = busy_before * q[None, :] * (group_rate / mu)[:, None]
            v = np.bincount(groups.ravel(), coeff.ravel(), n)
            new = (v + queued) / (1.0 + v)
            change = float(np.abs(new - rho).max())
            rho = new
            if change < tol:
                iterations = iteration
                break
        else:
            raise SolverError(f"Larson's approximation did not converge in {max_iter} iterations")
        busy_before = self._busy_before(groups, rho)
        share = busy_before * q[None, :] * (1.0 - rho[groups])  # P(unit at position k answers)
        dispatch = np.zeros((n, len(self.rates)))
        for g, pref in enumerate(groups):
            atoms = np.nonzero(group_of == g)[0]
            dispatch[pref[:, None], atoms[None, :]] = share[g][:, None] * self.rates[atoms]
        return self._finish("approximate", rho, p_all, dispatch, None, iterations)

    @staticmethod
    def _busy_before(groups: np.ndarray, rho: np.ndarray) -> np.ndarray:
        """``prod_{l<k} rho[pref[l]]`` for each preference list and position ``k``."""
        ordered = rho[groups]
        ahead = np.cumprod(ordered, axis=1)
        return np.concatenate([np.ones((len(groups), 1)), ahead[:, :-1]], axis=1)

    # -- shared --------------------------------------------------------------------------

    def _finish(
        self,
        method: str,
        workloads: np.ndarray,
        p_all_busy: float,
        immediate: np.ndarray,
        probs: np.ndarray | None,
        iterations: int,
    ) -> HypercubeResult:
        """Add queued dispatches, normalise to fractions and derive travel and cross-area."""
        n = self.units
        dispatch = immediate.copy()
        if self.queue == "infinite":
            # A queued call goes to whichever unit frees first: each with probability 1/N.
            dispatch += (self.rates * p_all_busy / n)[None, :]
        dispatch /= dispatch.sum()
        first = self.preferences[:, 0]
        primary = dispatch[first, np.arange(len(self.rates))]
        result = HypercubeResult(
            method=method,
            workloads=workloads,
            p_all_busy=p_all_busy,
            dispatch=dispatch,
            cross_area_fraction=float(1.0 - primary.sum()),
            state_probabilities=probs,
            iterations=iterations,
            atom_ids=list(self.atom_ids),
        )
        if self.travel_times is not None:
            t = np.asarray(self.travel_times, dtype=np.float64)
            per_atom = dispatch.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                result.travel_time_by_atom = (dispatch * t).sum(axis=0) / per_atom
            result.mean_travel_time = float((dispatch * t).sum())
        return result
