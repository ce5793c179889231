"""``citywatch forecast`` end to end, and its risk surface read by ``plan posts --demand``."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.helpers import run


def test_fit_prints_etas_parameters(capsys, tmp_path):
    out = tmp_path / "fit.json"
    code, stdout, _ = run(
        ["forecast", "fit", "--dataset", "chicago-southside", "--until", "2016-10-01",
         "--out", str(out), "--json"], capsys,
    )  # fmt: skip
    assert code == 0
    doc = json.loads(stdout)
    assert doc["until"] == "2016-10-01T00:00:00-05:00"  # Chicago's midnight (CDT)
    assert doc["params"]["converged"] is True and 0 < doc["params"]["theta"] < 1
    assert json.loads(out.read_text())["params"] == doc["params"]


def test_predict_outputs_feed_plan_posts(capsys, tmp_path):
    csv, geo, png = tmp_path / "risk.csv", tmp_path / "risk.geojson", tmp_path / "risk.png"
    code, stdout, _ = run(
        ["forecast", "predict", "--dataset", "nyc-thefts", "--predictor", "kde",
         "--until", "2017-06-01", "--horizon-days", "7", "--csv", str(csv),
         "--geojson", str(geo), "--png", str(png), "--json"], capsys,
    )  # fmt: skip
    assert code == 0
    doc = json.loads(stdout)
    table = pd.read_csv(csv)
    assert list(table.columns) == ["lon", "lat", "weight"]
    assert len(table) == doc["study"]["surface"]["cells"]
    # KDE on a grid gives expected counts: the week's total is the past year's weekly mean.
    year = doc["study"]["events"]
    assert doc["expected_total"] == pytest.approx(table["weight"].sum())
    assert 0 < doc["expected_total"] < year
    assert doc["risk_units"] == "expected incidents"
    features = json.loads(geo.read_text())["features"]
    assert sorted(f["properties"]["rank"] for f in features) == list(range(1, len(table) + 1))
    assert png.stat().st_size > 10_000
    top = tmp_path / "top.csv"  # the 40 riskiest cells keep the planning test quick
    table.sort_values("weight", ascending=False).head(40).to_csv(top, index=False)
    code, stdout, _ = run(
        ["plan", "posts", "manhattan", "--demand", str(top), "--cars", "3", "--json"], capsys
    )
    assert code == 0, stdout
    assert len(json.loads(stdout)["posts"]) == 3


def test_evaluate_json_and_charts(capsys, tmp_path):
    png, audit = tmp_path / "curves.png", tmp_path / "audit.png"
    code, stdout, _ = run(
        ["forecast", "evaluate", "--dataset", "chicago-southside", "--start", "2016-11-01",
         "--end", "2016-12-01", "--horizon-days", "7", "--predictor", "prospective",
         "--png", str(png), "--audit-png", str(audit), "--json"], capsys,
    )  # fmt: skip
    assert code == 0
    doc = json.loads(stdout)
    assert doc["predictors"] == ["naive", "prospective"]  # naive always joins as the baseline
    assert doc["periods"] == 4 and doc["horizon_days"] == 7.0
    assert {r["area"] for r in doc["area_audit"]} == set(doc["study"]["areas"])
    assert png.stat().st_size > 10_000 and audit.stat().st_size > 10_000


def test_evaluate_table_shows_the_area_audit(capsys):
    """The text report, not only the JSON, compares flagged and incident shares per area."""
    code, stdout, _ = run(
        ["forecast", "evaluate", "--dataset", "chicago-southside", "--start", "2016-11-01",
         "--end", "2016-12-01", "--horizon-days", "7", "--predictor", "prospective"], capsys,
    )  # fmt: skip
    assert code == 0
    assert "Per-area audit: share of the flagged 10% of the area" in stdout
    assert "incident share" in stdout and "flagged prospective" in stdout
    assert all(f"R{r}C{c}" in stdout for r in (1, 2, 3) for c in (1, 2, 3))


def test_shift_forecast_on_day_precision_data_is_refused(capsys):
    code, _, stderr = run(
        ["forecast", "evaluate", "--dataset", "toronto-bikes", "--start", "2017-06-01",
         "--end", "2017-06-03", "--horizon-hours", "8"], capsys,
    )  # fmt: skip
    assert code == 1
    assert "Error: a time-of-day model (here a 8-hour horizon) needs exact times" in stderr


@pytest.mark.parametrize(
    ("horizon", "message"),
    [
        (["--horizon-hours", "8"], "a time-of-day model (here a 8-hour horizon) needs exact times"),
        (["--horizon-days", "1"], "a 1-day horizon needs times finer than the data's month"),
        (["--horizon-days", "7"], "a 7-day horizon needs times finer than the data's month"),
    ],
)
def test_police_uk_month_precision_is_refused(capsys, horizon, message):
    """Real data.police.uk records (West Yorkshire, July 2016) carry only their month."""
    from citywatch.paths import data_dir

    path = data_dir() / "west-yorkshire" / "2016-07-west-yorkshire-street.csv.gz"
    code, stdout, stderr = run(
        ["forecast", "evaluate", "--incidents", str(path), "--source", "police_uk",
         "--crs", "EPSG:27700", "--start", "2016-07-10", "--end", "2016-07-20",
         "--predictor", "kde", *horizon], capsys,
    )  # fmt: skip
    assert code == 1
    assert f"Error: {message}" in stderr and "Traceback" not in stdout + stderr


@pytest.mark.parametrize(
    "args",
    [
        ["fit", "--until", "notadate"],
        ["predict", "--until", "2016-13-45"],
        ["evaluate", "--start", "bad", "--end", "2016-12-01"],
        ["evaluate", "--start", "2016-11-01", "--end", ""],
    ],
)
def test_unreadable_dates_are_clear_errors(capsys, args):
    code, stdout, stderr = run(["forecast", *args, "--dataset", "chicago-southside"], capsys)
    assert code == 1
    assert "Error: not a date or date-time" in stderr and "Traceback" not in stdout + stderr


def test_negative_top_is_refused(capsys):
    code, _, stderr = run(
        ["forecast", "predict", "--dataset", "chicago-southside", "--top", "-1"], capsys
    )
    assert code == 1 and "Error: --top must be zero or more" in stderr


def test_feedback_json(capsys):
    code, stdout, _ = run(
        ["forecast", "feedback", "--rates", "1,1", "--days", "300", "--runs", "20", "--json"],
        capsys,
    )
    assert code == 0
    drift = {r["rule"]: r["drift"] for r in json.loads(stdout)["results"]}
    assert drift["discovered"] > 2 * drift["ipw"] and drift["discovered"] > 2 * drift["reported"]


def test_input_errors(capsys):
    code, _, stderr = run(["forecast", "fit"], capsys)
    assert code == 1 and "exactly one of --dataset" in stderr
    code, _, stderr = run(["forecast", "fit", "--dataset", "gotham"], capsys)
    assert code == 1 and "no data set 'gotham'" in stderr


def _chicago_csv(path):
    # Three burglaries, the last at 23:30 in Chicago on 30 September 2016 (04:30 UTC, 1 October).
    path.write_text(
        "id,received_at,category,lon,lat\n"
        "a,2016-09-01T12:00:00-05:00,burglary,-87.62,41.80\n"
        "b,2016-09-15T12:00:00-05:00,burglary,-87.63,41.79\n"
        "c,2016-09-30T23:30:00-05:00,burglary,-87.62,41.80\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("zone", "origin"),
    [("America/Chicago", "2016-10-01T00:00:00-05:00"), (None, "2016-10-02T00:00:00+00:00")],
)
def test_timezone_sets_the_days_of_incidents_without_a_pack(capsys, tmp_path, zone, origin):
    csv = _chicago_csv(tmp_path / "c.csv")
    args = ["forecast", "fit", "--predictor", "naive", "--incidents", str(csv),
            "--crs", "EPSG:26971", "--json"]  # fmt: skip
    code, stdout, stderr = run([*args, *(["--tz", zone] if zone else [])], capsys)
    assert code == 0, stderr
    # The default origin is the first midnight after the last incident, in the city's days.
    assert json.loads(stdout)["until"] == origin


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--incidents", "x.csv", "--crs", "EPSG:26971", "--tz", "Mars/Olympus"],
         "Error: unknown time zone 'Mars/Olympus'"),
        (["--dataset", "chicago-southside", "--tz", "UTC"],
         "Error: --tz applies to --incidents and --db only"),
    ],
)  # fmt: skip
def test_timezone_errors(capsys, extra, message):
    code, _, stderr = run(["forecast", "fit", *extra], capsys)
    assert code == 1 and message in stderr
