"""Placement and backup power equal brute-force enumeration on small instances."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from citywatch.errors import ValidationError
from citywatch.surveillance.coverage import NIGHT_HOURS, CameraCoverage
from citywatch.surveillance.placement import (
    candidate_intersections,
    choose_backup,
    place_cameras,
    sample_weights,
)
from citywatch.surveillance.sensors import (
    Owner,
    PowerSchedule,
    Sensor,
    SensorKind,
)
from tests.surveillance.networks import grid_pack
from tests.surveillance.test_coverage import _incidents, cam


def _existing(rng: np.random.Generator, n: int) -> list[Sensor]:
    out = []
    for k in range(n):
        x, y = 90.0 * rng.integers(0, 4), rng.uniform(0, 120)
        out.append(
            cam(
                f"e{k}",
                x,
                y,
                range_m=float(rng.uniform(40, 90)),
                power=PowerSchedule.parse("23:00-06:00" if k % 2 else None),
            )
        )
    return out


def _weighted_cover(seen: np.ndarray, weights: np.ndarray) -> float:
    """Weight of samples seen, averaged over hours: seen is (samples, hours)."""
    return float((weights[:, None] * seen).sum() / seen.shape[1])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 2, 3])
def test_new_cameras_equal_brute_force(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    pack = grid_pack(nx_=4, ny=3, block_x=90.0, block_y=60.0)
    cov = CameraCoverage.build(pack, _existing(rng, 3), spacing_m=9.0)
    incidents = _incidents(
        [
            (float(rng.uniform(0, 270)), 60.0 * int(rng.integers(0, 3)), int(rng.integers(0, 24)))
            for _ in range(8)
        ]
    )
    result = place_cameras(cov, k, incidents=incidents)
    weights = sample_weights(cov, incidents)
    # Brute force: add each k-subset of intersections as PTZ cameras and recompute coverage.
    nodes = candidate_intersections(cov)
    net = pack.network
    best = -1.0
    for subset in combinations(nodes.tolist(), k):
        extra = [
            Sensor(
                id=f"new{n}",
                kind=SensorKind.PTZ,
                lon=float(net.lon[n]),
                lat=float(net.lat[n]),
                owner=Owner.POLICE,
            )
            for n in subset
        ]
        trial = CameraCoverage.build(pack, cov.sensors + extra, spacing_m=9.0)
        best = max(best, _weighted_cover(trial.seen_by_hour(), weights))
    assert result.weight_after == pytest.approx(best, rel=1e-9)
    assert result.weight_before == pytest.approx(
        _weighted_cover(cov.seen_by_hour(), weights), rel=1e-9
    )
    assert result.solver is not None and result.solver.status == "optimal"
    assert len(result.chosen) == k


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("budget", [1, 2])
@pytest.mark.parametrize("power_cut", [False, True])
def test_backup_power_equals_brute_force(seed: int, budget: int, power_cut: bool) -> None:
    rng = np.random.default_rng(100 + seed)
    pack = grid_pack(nx_=4, ny=3, block_x=90.0, block_y=60.0)
    sensors = _existing(rng, 6)
    cov = CameraCoverage.build(pack, sensors, spacing_m=9.0)
    result = choose_backup(cov, budget, power_cut=power_cut)
    weights = sample_weights(cov)
    hours = list(NIGHT_HOURS)
    cut = hours if power_cut else []
    best = max(
        _weighted_cover(
            cov.seen_by_hour(cov.working(power_cut_hours=cut, backup=b))[:, hours], weights
        )
        for b in combinations(cov.ids, budget)
    )
    assert result.weight_after == pytest.approx(best, rel=1e-9)
    assert len(result.chosen) <= budget


def test_placement_refuses_impossible_k() -> None:
    pack = grid_pack(nx_=3, ny=3)
    cov = CameraCoverage.build(pack, [cam("c", 0, 0)])
    with pytest.raises(ValidationError, match="between 1 and"):
        place_cameras(cov, 0)
    with pytest.raises(ValidationError, match="non-negative"):
        choose_backup(cov, -1)
