"""The Ensign et al. (2018) urn: drift with discovered-only feedback, none when corrected."""

from __future__ import annotations

import numpy as np
import pytest

from citywatch.errors import ValidationError
from citywatch.forecast.feedback import simulate_urn


def test_discovered_only_drifts_on_equal_rates():
    run = simulate_urn([1.0, 1.0], 1000, "discovered", runs=60, seed=1)
    # A Polya urn: final shares spread over (0, 1) instead of settling at the true 0.5.
    assert run.final[:, 0].std() > 0.2
    assert run.drift() > 0.2
    assert (np.abs(run.final[:, 0] - 0.5) > 0.2).mean() > 0.3


@pytest.mark.parametrize("rule", ["ipw", "reported"])
def test_corrected_updates_stay_near_the_truth(rule):
    run = simulate_urn([1.0, 1.0], 1000, rule, runs=60, seed=1)
    assert run.drift() < 0.06
    assert abs(np.median(run.final[:, 0]) - 0.5) < 0.03


def test_unequal_rates_inverse_probability_weighting_tracks_the_truth():
    ipw = simulate_urn([1.0, 3.0], 1000, "ipw", runs=60, seed=2)
    assert np.median(ipw.final[:, 1]) == pytest.approx(0.75, abs=0.03)
    assert ipw.drift() < simulate_urn([1.0, 3.0], 1000, "discovered", runs=60, seed=2).drift()


def test_bad_inputs():
    with pytest.raises(ValidationError):
        simulate_urn([1.0], 10, "ipw")
    with pytest.raises(ValidationError):
        simulate_urn([1.0, 1.0], 10, "magic")  # type: ignore[arg-type]
