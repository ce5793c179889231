"""Feedback-loop audit: the urn model of Ensign et al. (2018).

Ensign, Friedler, Neville, Scheidegger & Venkatasubramanian, "Runaway Feedback Loops in
Predictive Policing", FAT* 2018 (PMLR 81: 160-171). Each day one patrol goes to an area drawn
with probability proportional to the model's current weights (the forecast). Incidents happen
in every area at its true rate; the patrol *discovers* those of the area it is in, while
victims *report* a share of all incidents wherever they happen. Update rules:

- ``discovered``: add the discovered incidents to the patrolled area's weight (what a forecast
  trained on its own patrols' discoveries does). With equal true rates this is a Pólya urn: the
  patrol shares drift to a random limit instead of the true shares.
- ``ipw``: add discovered incidents weighted by the inverse of the probability that the area
  was patrolled (Ensign et al.'s correction; Horvitz-Thompson), an unbiased estimate of the
  area's incidents, so the shares stay near the truth.
- ``reported``: use only victim-reported incidents, which do not depend on where patrols go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from citywatch.errors import ValidationError
from citywatch.forecast.surface import FloatArray

__all__ = ["UPDATE_RULES", "UpdateRule", "UrnRun", "simulate_urn"]

UpdateRule = Literal["discovered", "ipw", "reported"]
UPDATE_RULES: Final = ("discovered", "ipw", "reported")


@dataclass(frozen=True)
class UrnRun:
    """Patrol shares over time for several seeded runs of one update rule.

    Attributes
    ----------
    rule
        The update rule.
    truth
        True share of incidents per area (rates / their sum).
    patrol_share
        ``[run, day, area]`` probability of patrolling each area.
    """

    rule: str
    truth: FloatArray
    patrol_share: FloatArray

    @property
    def final(self) -> FloatArray:
        """``[run, area]`` patrol shares on the last day."""
        return self.patrol_share[:, -1, :]

    def drift(self) -> float:
        """Mean over runs of the largest gap between final patrol share and true share."""
        return float(np.abs(self.final - self.truth).max(axis=1).mean())

    def as_dict(self) -> dict[str, Any]:
        """Summary for reports."""
        return {
            "rule": self.rule,
            "truth": self.truth.tolist(),
            "runs": int(self.patrol_share.shape[0]),
            "days": int(self.patrol_share.shape[1]),
            "mean_final_share": self.final.mean(axis=0).tolist(),
            "sd_final_share": self.final.std(axis=0).tolist(),
            "drift": self.drift(),
        }


def simulate_urn(
    rates: list[float] | FloatArray,
    days: int,
    rule: UpdateRule,
    *,
    runs: int = 50,
    report_rate: float = 0.5,
    prior: float = 1.0,
    seed: int = 0,
) -> UrnRun:
    """Simulate the urn model.

    Parameters
    ----------
    rates
        True incidents per day in each area.
    days
        Days simulated.
    rule
        ``discovered``, ``ipw`` or ``reported`` (see the module documentation).
    runs
        Independent seeded runs.
    report_rate
        Probability that a victim reports an incident (for ``reported``).
    prior
        Initial weight of every area.
    seed
        Seed of the random generator shared by the runs.
    """
    lam = np.asarray(rates, dtype=np.float64)
    if lam.ndim != 1 or len(lam) < 2 or np.any(lam < 0) or lam.sum() <= 0:
        raise ValidationError("rates must be two or more non-negative numbers, not all zero")
    if rule not in UPDATE_RULES:
        raise ValidationError(f"unknown update rule {rule!r}; choose from {UPDATE_RULES}")
    if days < 1 or runs < 1 or prior <= 0 or not 0 < report_rate <= 1:
        raise ValidationError("days, runs, prior must be positive and report_rate in (0, 1]")
    k = len(lam)
    rng = np.random.default_rng(seed)
    shares = np.empty((runs, days, k))
    weight = np.full((runs, k), float(prior))
    rows = np.arange(runs)
    for day in range(days):
        p = weight / weight.sum(axis=1, keepdims=True)
        shares[:, day] = p
        # One patrol per run, drawn from the run's current forecast.
        area = np.minimum((rng.random(runs)[:, None] > np.cumsum(p, axis=1)).sum(axis=1), k - 1)
        incidents = rng.poisson(lam, size=(runs, k)).astype(np.float64)
        if rule == "reported":
            weight += rng.binomial(incidents.astype(np.int64), report_rate)
        elif rule == "discovered":
            weight[rows, area] += incidents[rows, area]
        else:
            weight[rows, area] += incidents[rows, area] / p[rows, area]
    return UrnRun(rule, lam / lam.sum(), shares)
