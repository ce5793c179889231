"""The Knox test for space-time interaction (Knox 1964), with one distance and one time threshold.

Of the ``n (n - 1) / 2`` pairs of events, ``n_space`` are close in space (``d <= D``), ``n_time``
close in time (``t <= T``) and ``statistic`` close in both.  Without interaction the statistic is
about Poisson with mean ``n_space * n_time / n_pairs`` (Knox 1964); the permutation test shuffles
the times over the events, which keeps both margins and every clustering of its own.

The pair machinery here (spatial pairs from a k-d tree, pair counts of a time threshold without
enumerating pairs, seeded permutations) is shared with :mod:`citywatch.analytics.nearrepeat`.
Pure computation: arrays in, results out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree
from scipy.stats import poisson

from citywatch.errors import ValidationError

__all__ = [
    "DISTANCES",
    "KnoxResult",
    "Metric",
    "SpatialPairs",
    "check_events",
    "knox",
    "pairs_closer_in_time",
    "permutations",
    "resolve_seed",
    "spatial_pairs",
]

Metric = Literal["euclidean", "manhattan"]
#: Distance measures between events (Minkowski p of the k-d tree query).
DISTANCES: Final[dict[str, float]] = {"euclidean": 2.0, "manhattan": 1.0}
# the k-d tree and numpy may round a distance differently in the last bit: query a hair wider
# and decide every edge with the distances computed here
_RADIUS_SLACK: Final = 1e-9


@dataclass(frozen=True)
class SpatialPairs:
    """Every pair of events within a radius (``i < j``) and its distance in metres."""

    i: NDArray[np.int32]
    j: NDArray[np.int32]
    distance: NDArray[np.float64]


def check_events(xy: NDArray[Any], t: NDArray[Any]) -> tuple[NDArray[np.float64], NDArray[Any]]:
    """Validate event coordinates ``(n, 2)`` and times ``(n,)``: finite, same length, n >= 2."""
    xy = np.asarray(xy, dtype=np.float64)
    t = np.asarray(t)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValidationError("coordinates must be an (n, 2) array of x, y", field="xy")
    if len(t) != len(xy):
        raise ValidationError(f"{len(xy)} locations but {len(t)} times", field="t")
    if len(xy) < 2:
        raise ValidationError("the test needs at least two events", field="xy")
    if not np.isfinite(xy).all():
        raise ValidationError("coordinates must be finite numbers", field="xy")
    if t.dtype.kind == "f" and not np.isfinite(t).all():
        raise ValidationError("times must be finite numbers", field="t")
    return xy, t


def spatial_pairs(xy: NDArray[np.float64], radius: float, metric: Metric) -> SpatialPairs:
    """All pairs of events at distance ``<= radius`` (a little more; callers cut exactly).

    Parameters
    ----------
    xy : numpy.ndarray
        ``(n, 2)`` projected coordinates in metres.
    radius : float
        Largest distance of interest, metres.
    metric : {"euclidean", "manhattan"}

    Returns
    -------
    SpatialPairs
    """
    if metric not in DISTANCES:
        raise ValidationError(
            f"unknown distance {metric!r}: use one of {sorted(DISTANCES)}", field="distance"
        )
    p = DISTANCES[metric]
    tree = cKDTree(xy)
    pairs = tree.query_pairs(
        radius * (1 + _RADIUS_SLACK) + _RADIUS_SLACK, p=p, output_type="ndarray"
    )
    i = pairs[:, 0].astype(np.int32)
    j = pairs[:, 1].astype(np.int32)
    delta = np.abs(xy[i] - xy[j])
    distance = np.hypot(delta[:, 0], delta[:, 1]) if p == 2.0 else delta.sum(axis=1)
    return SpatialPairs(i, j, distance)


def pairs_closer_in_time(
    t: NDArray[Any], limits: NDArray[Any], *, inclusive: bool
) -> NDArray[np.int64]:
    """Number of event pairs with time difference ``< limit`` (``<=`` if inclusive), per limit.

    Counts over all ``n (n - 1) / 2`` pairs in ``O(n log n)`` from the sorted times, without
    enumerating them.  The comparison is ``later <= earlier + limit``, the same one
    :func:`close_in_time` makes for single pairs, so that both agree to the last bit.
    """
    ts = np.sort(np.asarray(t))
    first_after = np.arange(1, len(ts) + 1)
    side: Literal["left", "right"] = "right" if inclusive else "left"
    # clipped: for a strict limit of 0 the ties before each event would count negatively
    return np.array(
        [
            int(np.maximum(np.searchsorted(ts, ts + limit, side=side) - first_after, 0).sum())
            for limit in limits
        ],
        dtype=np.int64,
    )


def close_in_time(ta: NDArray[Any], tb: NDArray[Any], limit: float) -> NDArray[np.bool_]:
    """Whether each pair's time difference is ``<= limit`` (``later <= earlier + limit``)."""
    close: NDArray[np.bool_] = np.maximum(ta, tb) <= np.minimum(ta, tb) + limit
    return close


def resolve_seed(seed: int | None) -> int:
    """The seed to use and report: ``seed``, or fresh entropy when ``None`` (runs can be redone)."""
    if seed is None:
        return int(np.random.SeedSequence().entropy) % 2**63  # type: ignore[arg-type]
    if seed < 0:
        raise ValidationError("the seed must be a non-negative integer", field="seed")
    return seed


def permutations(
    t: NDArray[Any],
    iterations: int,
    seed: int,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[NDArray[Any]]:
    """``iterations`` random permutations of the times (numpy ``Generator`` seeded by ``seed``)."""
    if iterations < 1:
        raise ValidationError("give at least one iteration", field="iterations")
    rng = np.random.default_rng(seed)
    for k in range(iterations):
        yield t[rng.permutation(len(t))]
        if on_progress is not None:
            on_progress(k + 1)


@dataclass(frozen=True)
class KnoxResult:
    """Result of :func:`knox`.

    Attributes
    ----------
    statistic : int
        Pairs close in space and time (``d <= distance``, ``t <= days``).
    expected : float
        ``n_space * n_time / n_pairs``.
    p_poisson : float
        ``P(X >= statistic)`` for ``X ~ Poisson(expected)``.
    p_permutation : float
        ``(1 + #permutations with a statistic >= observed) / (1 + iterations)``.
    permuted_mean : float
        Mean statistic of the permuted data.
    """

    events: int
    pairs: int
    n_space: int
    n_time: int
    statistic: int
    expected: float
    p_poisson: float
    p_permutation: float
    permuted_mean: float
    distance_m: float
    days: float
    metric: str
    iterations: int
    seed: int

    @property
    def ratio(self) -> float:
        """Observed over expected (NaN when nothing is expected)."""
        return self.statistic / self.expected if self.expected > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "statistic": self.statistic,
            "expected": self.expected,
            "ratio": self.ratio,
            "p_poisson": self.p_poisson,
            "p_permutation": self.p_permutation,
            "permuted_mean": self.permuted_mean,
            "n_space": self.n_space,
            "n_time": self.n_time,
            "pairs": self.pairs,
            "events": self.events,
            "distance_m": self.distance_m,
            "days": self.days,
            "distance": self.metric,
            "iterations": self.iterations,
            "seed": self.seed,
        }


def knox(
    xy: NDArray[Any],
    t: NDArray[Any],
    distance: float,
    days: float,
    *,
    metric: Metric = "euclidean",
    iterations: int = 999,
    seed: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> KnoxResult:
    """Knox test of space-time interaction at one distance and one time threshold.

    Parameters
    ----------
    xy : numpy.ndarray
        ``(n, 2)`` projected coordinates, metres.
    t : numpy.ndarray
        ``(n,)`` times in days (integer day numbers or fractional days).
    distance : float
        Spatial threshold ``D`` in metres; pairs with ``d <= D`` are close.
    days : float
        Temporal threshold ``T`` in days; pairs with ``|t_i - t_j| <= T`` are close.
    metric : {"euclidean", "manhattan"}
    iterations : int
        Permutations of the times for ``p_permutation``.
    seed : int, optional
        Seed of the permutations (fresh entropy, reported in the result, when omitted).
    on_progress : callable, optional
        Called with the number of permutations done.

    Returns
    -------
    KnoxResult
    """
    xy, t = check_events(xy, t)
    if not (distance >= 0 and days >= 0):
        raise ValidationError("distance and days must be non-negative", field="distance")
    seed = resolve_seed(seed)
    near = spatial_pairs(xy, distance, metric)
    keep = near.distance <= distance
    i, j = near.i[keep], near.j[keep]
    n = len(t)
    n_pairs = n * (n - 1) // 2
    n_space = len(i)
    n_time = int(pairs_closer_in_time(t, np.array([days]), inclusive=True)[0])
    statistic = int(close_in_time(t[i], t[j], days).sum())
    permuted = np.array(
        [
            int(close_in_time(tp[i], tp[j], days).sum())
            for tp in permutations(t, iterations, seed, on_progress)
        ]
    )
    expected = n_space * n_time / n_pairs
    return KnoxResult(
        events=n,
        pairs=n_pairs,
        n_space=n_space,
        n_time=n_time,
        statistic=statistic,
        expected=expected,
        # sf(k - 1) = P(X >= k)
        p_poisson=float(poisson.sf(statistic - 1, expected)),
        p_permutation=float((1 + (permuted >= statistic).sum()) / (1 + iterations)),
        permuted_mean=float(permuted.mean()),
        distance_m=float(distance),
        days=float(days),
        metric=metric,
        iterations=iterations,
        seed=seed,
    )
