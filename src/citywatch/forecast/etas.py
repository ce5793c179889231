"""Self-exciting point process (grid ETAS) fitted by expectation-maximisation.

The model of Mohler et al. (2011, JASA 106: 100-108) in the grid form of Mohler et al. (2015,
JASA 110: 1399-1411): the intensity at a point ``x`` of cell ``c`` at time ``t`` is

    lambda(x, t) = mu_c / |c| + sum_{t_i < t} theta * omega * exp(-omega (t - t_i)) * g(x - x_i)

with a background rate ``mu_c`` (events per day) spread evenly over the cell, ``theta`` the mean
number of events each event triggers, ``1 / omega`` their mean delay (days) and ``g`` an
isotropic Gaussian of standard deviation ``sigma`` (metres). EM (Veen & Schoenberg 2008;
Mohler et al. 2011, section 3) alternates the branching probabilities with closed-form updates.
Pairs are truncated at ``max_days`` and ``max_dist_m``: beyond them triggering is negligible and
leaving them out keeps the work linear in the number of events.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Final

import numba
import numpy as np
from scipy.special import ndtr

from citywatch.errors import ValidationError
from citywatch.forecast.predictors import Fitted
from citywatch.forecast.surface import Events, FloatArray, IntArray, Surface, near_pairs

__all__ = [
    "COLD_START_SIGMAS_M",
    "MIN_SIGMA_M",
    "EtasParams",
    "EtasPredictor",
    "em_fit",
    "simulate_etas",
    "trigger_pairs",
]

_TOL: Final = 1e-5
_MAX_ITER: Final = 500
# Prediction spreads an event's offspring over the cells within this many sigmas.
_SPREAD_SIGMAS: Final = 4.0
# Floor of sigma: real data geocoded to shared points (addresses, rounded coordinates) drive the
# EM estimate to zero, i.e. repeats at the very same point; 1 m keeps the kernel finite.
MIN_SIGMA_M: Final = 1.0


@dataclass(frozen=True)
class EtasParams:
    """Fitted grid-ETAS parameters.

    Attributes
    ----------
    mu
        Background rate per cell, events per day.
    theta, omega, sigma
        Mean offspring per event, decay rate (1/day), spatial standard deviation (m).
    iterations
        EM iterations run; ``converged`` whether the relative change fell below the tolerance.
    log_likelihood
        Log-likelihood of the window's events under the fit (``None`` if not fitted here).
    """

    mu: FloatArray
    theta: float
    omega: float
    sigma: float
    iterations: int = 0
    converged: bool = False
    log_likelihood: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Scalars and the background total, for reports."""
        return {
            "theta": self.theta,
            "omega_per_day": self.omega,
            "mean_delay_days": 1.0 / self.omega if self.omega > 0 else None,
            "sigma_m": self.sigma,
            "background_per_day": float(self.mu.sum()),
            "iterations": self.iterations,
            "converged": self.converged,
            "log_likelihood": self.log_likelihood,
        }


@numba.njit(cache=True)
def _pair_kernel(
    t: FloatArray, x: FloatArray, y: FloatArray, max_dt: float, max_d2: float, fill: bool,
    pi: IntArray, pj: IntArray, dt: FloatArray, d2: FloatArray,
) -> int:  # fmt: skip
    # Events are sorted by time: scan back from each j while the gap is within max_dt.
    n = 0
    for j in range(len(t)):
        i = j - 1
        while i >= 0 and t[j] - t[i] <= max_dt:
            gap = t[j] - t[i]
            dx = x[j] - x[i]
            dy = y[j] - y[i]
            r2 = dx * dx + dy * dy
            if gap > 0.0 and r2 <= max_d2:
                if fill:
                    pi[n] = i
                    pj[n] = j
                    dt[n] = gap
                    d2[n] = r2
                n += 1
            i -= 1
    return n


def trigger_pairs(
    t: FloatArray, xy: FloatArray, max_days: float, max_dist_m: float
) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
    """Every (parent i, child j) with ``0 < t_j - t_i <= max_days`` and distance <= max_dist_m.

    ``t`` must be sorted. Returns parent and child indices, time gaps and squared distances.
    """
    x = np.ascontiguousarray(xy[:, 0])
    y = np.ascontiguousarray(xy[:, 1])
    empty_i = np.zeros(0, dtype=np.int64)
    empty_f = np.zeros(0)
    n = _pair_kernel(t, x, y, max_days, max_dist_m**2, False, empty_i, empty_i, empty_f, empty_f)
    pi = np.empty(n, dtype=np.int64)
    pj = np.empty(n, dtype=np.int64)
    dt = np.empty(n)
    d2 = np.empty(n)
    _pair_kernel(t, x, y, max_days, max_dist_m**2, True, pi, pj, dt, d2)
    return pi, pj, dt, d2


# Kernel widths a cold fit starts from. EM has separate optima on real data: on the Chicago South
# Side burglaries to 2016-12-23, starts at sigma 100 m or wider end at sigma 97 m, theta 0.002
# (log-likelihood -16,503), starts at 10 m or narrower at sigma 1 m, theta 0.049 (-16,292), for
# every theta in 0.1-0.9 and delay in 1-30 days tried. So a cold fit runs from each and keeps the
# likeliest; a warm start stays in the basin of the previous window's optimum.
COLD_START_SIGMAS_M: Final = (10.0, 100.0, 500.0)
_COLD_THETA: Final = 0.5
_COLD_DELAY_DAYS: Final = 7.0


def _starts(
    cells: IntArray, n_cells: int, span: float, init: EtasParams | None
) -> list[EtasParams]:
    counts = np.bincount(cells, minlength=n_cells) / span
    if init is not None:
        # Warm start; a cell without a background would stay at zero forever, so seed new ones.
        mu = np.maximum(init.mu, 0.5 * counts).astype(np.float64)
        return [EtasParams(mu, init.theta, init.omega, init.sigma)]
    mu = (0.5 * counts).astype(np.float64)
    return [EtasParams(mu, _COLD_THETA, 1.0 / _COLD_DELAY_DAYS, s) for s in COLD_START_SIGMAS_M]


def _changed(old: EtasParams, new: EtasParams) -> float:
    scal = max(
        abs(new.theta - old.theta) / max(old.theta, 1e-12),
        abs(new.omega - old.omega) / max(old.omega, 1e-12),
        abs(new.sigma - old.sigma) / max(old.sigma, 1e-12),
    )
    total = abs(new.mu.sum() - old.mu.sum()) / max(old.mu.sum(), 1e-12)
    return float(max(scal, total))


def _m_step(
    p: EtasParams, prob: FloatArray, p_bg: FloatArray, dt: FloatArray, d2: FloatArray,
    cells: IntArray, t: FloatArray, end: float, span: float, max_dist_m: float,
) -> EtasParams:  # fmt: skip
    mu = np.bincount(cells, p_bg, minlength=len(p.mu)) / span
    total = float(prob.sum())
    if total <= 0.0:
        return EtasParams(mu, 0.0, p.omega, p.sigma)
    # Expected offspring of each event inside the window (edge-corrected for late events).
    exposure = float(np.sum(1.0 - np.exp(-p.omega * (end - t))))
    theta = total / exposure
    omega = total / float(np.dot(prob, dt))
    sigma = float(np.sqrt(np.dot(prob, d2) / (2.0 * total)))
    return EtasParams(mu, theta, omega, min(max(sigma, MIN_SIGMA_M), max_dist_m / 2.0))


class _Pairs:
    """Candidate (parent, child) pairs of a window and the intensity they give (sparse or dense)."""

    def __init__(self, events: Events, max_days: float, max_dist_m: float, dense: bool) -> None:
        t, xy = events.t, events.xy
        self.n = len(t)
        self.dense = dense
        if dense:
            dt_m = t[None, :] - t[:, None]
            d2_m = ((xy[None, :, :] - xy[:, None, :]) ** 2).sum(axis=2)
            self.mask = (dt_m > 0) & (dt_m <= max_days) & (d2_m <= max_dist_m**2)
            self.dt_m, self.d2_m = dt_m, d2_m
            self.dt, self.d2 = dt_m[self.mask], d2_m[self.mask]
        else:
            _, self.pj, self.dt, self.d2 = trigger_pairs(t, xy, max_days, max_dist_m)

    def intensity(self, p: EtasParams, bg: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Intensity at every event and the branching probability of every pair."""
        norm = p.theta * p.omega / (2.0 * np.pi * p.sigma**2)
        if self.dense:
            arg = -p.omega * self.dt_m - self.d2_m / (2.0 * p.sigma**2)
            k_m = norm * np.exp(arg, out=np.zeros_like(arg), where=self.mask)
            lam = bg + k_m.sum(axis=0)
            return lam, (k_m / lam[None, :])[self.mask]
        k = norm * np.exp(-p.omega * self.dt - self.d2 / (2.0 * p.sigma**2))
        lam = bg + np.bincount(self.pj, k, minlength=self.n)
        return lam, k / lam[self.pj]


def _log_likelihood(
    lam: FloatArray, p: EtasParams, t: FloatArray, end: float, span: float
) -> float:
    # log L = sum log lambda(x_j, t_j) - the integral of lambda over the window (the Gaussian
    # integrates to 1 over the plane; the offspring of late events are edge-corrected).
    compensator = float(p.mu.sum()) * span + p.theta * float(
        np.sum(1.0 - np.exp(-p.omega * (end - t)))
    )
    return float(np.log(lam).sum()) - compensator


def em_fit(
    events: Events,
    cells: IntArray,
    measure: FloatArray,
    start: float,
    end: float,
    *,
    init: EtasParams | None = None,
    max_days: float = 90.0,
    max_dist_m: float = 1000.0,
    tol: float = _TOL,
    max_iter: int = _MAX_ITER,
    dense: bool = False,
) -> EtasParams:
    """Fit grid ETAS by EM to events in ``[start, end)``.

    Parameters
    ----------
    events
        Events of the window (sorted), all inside the surface.
    cells
        Cell of every event.
    measure
        Measure (area) of every cell.
    start, end
        The observation window (days).
    init
        Parameters to start from (warm start). Default: a cold fit, EM from half the counts as
        background, ``theta = 0.5``, a 7-day delay and each of :data:`COLD_START_SIGMAS_M`,
        keeping the fit of highest log-likelihood.
    max_days, max_dist_m
        Pair truncation.
    tol, max_iter
        Stop when the largest relative parameter change is below ``tol``.
    dense
        Use the naive all-pairs ``n x n`` matrices (the benchmark's baseline; same result).

    Returns
    -------
    EtasParams
        The fit, with its EM iterations (summed over the starts) and log-likelihood.
    """
    if end <= start:
        raise ValidationError("the ETAS window must have a positive length")
    span = end - start
    pairs = _Pairs(events, max_days, max_dist_m, dense)
    fits = [
        _em(pairs, p, cells, measure, events.t, end, span, max_dist_m, tol, max_iter)
        for p in _starts(cells, len(measure), span, init)
    ]
    best = max(fits, key=lambda f: -np.inf if f.log_likelihood is None else f.log_likelihood)
    total = sum(f.iterations for f in fits)
    return replace(best, iterations=total)


def _em(
    pairs: _Pairs, p: EtasParams, cells: IntArray, measure: FloatArray, t: FloatArray,
    end: float, span: float, max_dist_m: float, tol: float, max_iter: int,
) -> EtasParams:  # fmt: skip
    converged, it = False, 0
    while it < max_iter and not converged:
        it += 1
        bg = p.mu[cells] / measure[cells]
        lam, prob = pairs.intensity(p, bg)
        new = _m_step(p, prob, bg / lam, pairs.dt, pairs.d2, cells, t, end, span, max_dist_m)
        converged = _changed(p, new) < tol
        p = new
    lam, _ = pairs.intensity(p, p.mu[cells] / measure[cells])
    ll = _log_likelihood(lam, p, t, end, span)
    return EtasParams(p.mu, p.theta, p.omega, p.sigma, it, converged, ll)


def _offspring_mass(
    surface: Surface, xy: FloatArray, sigma: float
) -> tuple[IntArray, IntArray, FloatArray]:
    """Share of each event's offspring distribution falling in each nearby cell."""
    reach = _SPREAD_SIGMAS * sigma + surface.cell_size
    ev, cell, _ = near_pairs(xy, surface.centroids, reach)
    if surface.kind == "grid":
        # Exact Gaussian mass of a square: product of two normal-CDF differences.
        half = surface.cell_size / 2.0
        lo = (surface.centroids[cell] - half - xy[ev]) / sigma
        hi = (surface.centroids[cell] + half - xy[ev]) / sigma
        mass = np.prod(ndtr(hi) - ndtr(lo), axis=1)
        return ev, cell, mass
    # Segments: offspring happen on streets, so share the mass over nearby segments by
    # Gaussian density at the midpoint times length.
    d2 = ((surface.centroids[cell] - xy[ev]) ** 2).sum(axis=1)
    w = np.exp(-d2 / (2.0 * sigma**2)) * surface.measure[cell]
    totals = np.bincount(ev, w, minlength=len(xy))
    return ev, cell, w / np.where(totals[ev] > 0, totals[ev], 1.0)


@dataclass
class EtasPredictor(Fitted):
    """Grid ETAS (Mohler et al. 2015): background per cell plus self-excitation.

    ``fit`` re-estimates the parameters on the last ``window_days`` (warm-started from the
    previous fit) unless the previous fit is younger than ``refit_days``; ``predict`` integrates
    the intensity over each cell and the horizon.
    """

    window_days: float = 365.0
    max_days: float = 90.0
    max_dist_m: float = 1000.0
    refit_days: float = 0.0
    name: ClassVar[str] = "etas"
    time_of_day: ClassVar[bool] = False
    fitted: EtasParams | None = field(default=None, init=False)
    fitted_at: float = field(default=float("-inf"), init=False)

    def fit(self, events: Events, until: float) -> EtasPredictor:
        """Fit (or reuse a fit younger than ``refit_days``) on the window before ``until``."""
        history = self._remember(events, until)
        if self.fitted is not None and until - self.fitted_at < self.refit_days:
            return self
        window = history.between(until - self.window_days, until)
        cells = self.surface.assign(window.xy)
        inside = cells >= 0
        window = Events(window.xy[inside], window.t[inside], window.precision, window.crs)
        if len(window) == 0:
            raise ValidationError("no events inside the surface in the ETAS training window")
        self.fitted = em_fit(
            window,
            cells[inside],
            self.surface.measure,
            until - self.window_days,
            until,
            init=self.fitted,
            max_days=self.max_days,
            max_dist_m=self.max_dist_m,
        )
        self.fitted_at = until
        return self

    def predict(self, horizon: float) -> FloatArray:
        """Expected events per cell in ``[until, until + horizon)``."""
        history = self._history()
        if self.fitted is None:
            raise ValidationError("call fit() before predict()")
        p = self.fitted
        recent = history.between(self.until - self.max_days, self.until)
        cells = self.surface.assign(recent.xy)
        xy, t = recent.xy[cells >= 0], recent.t[cells >= 0]
        risk = p.mu * horizon
        if len(t) and p.theta > 0:
            ev, cell, mass = _offspring_mass(self.surface, xy, p.sigma)
            age = self.until - t
            due = p.theta * (np.exp(-p.omega * age) - np.exp(-p.omega * (age + horizon)))
            risk = risk + np.bincount(cell, due[ev] * mass, minlength=len(self.surface))
        return np.asarray(risk, dtype=np.float64)

    def params(self) -> dict[str, Any]:
        """The fitted parameters."""
        base = {"window_days": self.window_days, "max_days": self.max_days}
        return base | ({} if self.fitted is None else self.fitted.as_dict())


def simulate_etas(
    surface: Surface,
    mu: FloatArray,
    theta: float,
    omega: float,
    sigma: float,
    days: float,
    seed: int,
) -> Events:
    """Simulate grid ETAS on ``[0, days)`` by branching (for tests and documentation).

    Background events fall uniformly in their grid cell; each event has Poisson(theta)
    children, delayed Exp(omega) days and displaced N(0, sigma^2) in each coordinate.
    """
    if surface.kind != "grid":
        raise ValidationError("simulate_etas needs a grid surface")
    rng = np.random.default_rng(seed)
    n_bg = rng.poisson(mu * days)
    cell = np.repeat(np.arange(len(mu)), n_bg)
    half = surface.cell_size / 2.0
    xy = surface.centroids[cell] + rng.uniform(-half, half, size=(len(cell), 2))
    t = rng.uniform(0.0, days, size=len(cell))
    all_xy, all_t = [xy], [t]
    while len(t):
        kids = rng.poisson(theta, size=len(t))
        t = np.repeat(t, kids) + rng.exponential(1.0 / omega, size=int(kids.sum()))
        xy = np.repeat(xy, kids, axis=0) + rng.normal(0.0, sigma, size=(int(kids.sum()), 2))
        keep = t < days
        t, xy = t[keep], xy[keep]
        all_xy.append(xy)
        all_t.append(t)
    return Events.from_arrays(np.concatenate(all_xy), np.concatenate(all_t), "exact", surface.crs)
