"""Backtests on real data (bundled Chicago South Side sample and Toronto bicycle thefts)."""

from __future__ import annotations

import json

import pytest

from citywatch.errors import InsufficientPrecisionError
from citywatch.forecast.pipeline import PREDICTOR_NAMES, run_backtest, study_from_dataset
from citywatch.forecast.surface import to_days


@pytest.fixture(scope="module")
def chicago():
    study = study_from_dataset("chicago-southside", cell_m=250.0)
    result = run_backtest(
        study, list(PREDICTOR_NAMES), start="2016-07-01", end="2017-01-01", horizon_days=7.0,
        options={"etas": {"refit_days": 7.0}},
    )  # fmt: skip
    return study, result


def _row(result, predictor, coverage):
    return next(
        r for r in result.summary() if r["predictor"] == predictor and r["coverage"] == coverage
    )


def test_chicago_study(chicago):
    study, result = chicago
    assert len(study.events) == 1000 and study.dropped == 0
    assert len(study.surface) == 959  # 250 m cells touching the South Side polygon (42 x 48)
    assert result.events.sum() == 519 and len(result.origins) == 26
    # The area audit leaves out the 40 narcotics and weapons records (13 in the test period).
    assert len(study.reported) == 960 and result.audit_events == 506


def test_chicago_backtest_values(chicago):
    _, result = chicago
    naive, etas = _row(result, "naive", 0.1), _row(result, "etas", 0.1)
    assert naive["hit_rate"]["mean"] == pytest.approx(0.1267, abs=0.0001)
    assert etas["hit_rate"]["mean"] == pytest.approx(0.2442, abs=0.0001)
    # ETAS beats last week's counts: the paired interval of the gain excludes zero.
    assert etas["hit_rate_minus_naive"]["low"] > 0
    assert _row(result, "kde", 0.2)["pai"]["mean"] == pytest.approx(1.5783, abs=0.0001)
    assert _row(result, "prospective", 0.05)["pei"]["mean"] == pytest.approx(0.1209, abs=0.0001)
    # The per-area audit covers every month of the test period.
    months = {r["month"] for r in result.area_audit()}
    assert months == {f"2016-{m:02d}" for m in range(7, 13)}
    json.dumps(result.as_dict())  # JSON-ready


def test_toronto_day_precision_refuses_shift_forecasts():
    study = study_from_dataset("toronto-bikes", cell_m=500.0, grid_until=to_days("2017-06-01"))
    assert study.events.precision == "day"
    with pytest.raises(InsufficientPrecisionError, match="exact times"):
        run_backtest(study, ["kde"], start="2017-06-01", end="2017-06-08", horizon_days=8 / 24)
    result = run_backtest(
        study, ["prospective"], start="2017-06-01", end="2017-07-01", horizon_days=7.0
    )
    # 1,233 cells of 500 m held a theft before June 2017; 126 thefts fall outside them.
    assert (len(study.surface), study.dropped) == (1233, 126)
    assert result.events.tolist() == [81.0, 120.0, 114.0, 116.0]
    assert _row(result, "naive", 0.1)["hit_rate"]["mean"] == pytest.approx(0.4426, abs=1e-4)
    assert _row(result, "prospective", 0.1)["hit_rate"]["mean"] == pytest.approx(0.6206, abs=1e-4)
