"""``forecast predict --backtest``: the dashboard layer's metadata is the evaluation's numbers."""

from __future__ import annotations

import json

import pytest

from citywatch.errors import DataError
from citywatch.forecast.pipeline import backtest_summary
from tests.helpers import run


def test_predict_carries_the_backtest_of_its_predictor(capsys, tmp_path):
    report, geo = tmp_path / "eval.json", tmp_path / "risk.geojson"
    code, _, _ = run(
        ["forecast", "evaluate", "--dataset", "chicago-southside", "--start", "2016-11-01",
         "--end", "2016-12-01", "--horizon-days", "7", "--predictor", "prospective",
         "--out", str(report)], capsys,
    )  # fmt: skip
    assert code == 0
    code, stdout, _ = run(
        ["forecast", "predict", "--dataset", "chicago-southside", "--predictor", "prospective",
         "--until", "2016-12-01", "--horizon-days", "7", "--backtest", str(report),
         "--geojson", str(geo), "--json"], capsys,
    )  # fmt: skip
    assert code == 0
    predicted = json.loads(stdout)
    evaluation = json.loads(report.read_text())
    meta = json.loads(geo.read_text())["citywatch"]
    assert meta["predictor"] == "prospective" and meta["horizon_days"] == 7.0
    assert meta["origin"] == predicted["origin"] == "2016-12-01T00:00:00-06:00"  # Chicago (CST)
    assert meta["until"] == "2016-12-08T00:00:00-06:00"
    # prospective risks are scores, not expected counts: no total is claimed
    assert meta["expected_total"] is None and predicted["expected_total"] is None
    assert meta["risk_units"] == predicted["risk_units"] == "score"
    rows = meta["backtest"]["rows"]
    wanted = [r for r in evaluation["summary"] if r["predictor"] in ("prospective", "naive")]
    assert rows == [{k: r[k] for k in ("predictor", "coverage", "hit_rate", "pai")} for r in wanted]
    assert {r["coverage"] for r in rows} == {0.01, 0.05, 0.1, 0.2}
    assert meta["backtest"]["periods"] == evaluation["periods"] == 4
    with pytest.raises(DataError, match="no backtest of 'etas'"):
        backtest_summary(evaluation, "etas")
