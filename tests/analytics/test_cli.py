"""The ``citywatch stats`` commands end to end, on a canonical incident CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from citywatch.incidents.canonical import write_canonical_csv
from tests.analytics.conftest import make_incidents, random_incidents
from tests.helpers import run

NY = "America/New_York"


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = random_incidents(21, "2022-10-01", "2024-02-01", 1500, NY, ["1", "5", "14"])
    path = tmp_path_factory.mktemp("cli") / "incidents.csv"
    write_canonical_csv(frame, path)
    return path


def test_compare_json_and_table(csv_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "stats",
        "compare",
        "--from",
        "2023-11-01",
        "--to",
        "2024-01-31",
        "--incidents",
        str(csv_file),
        "--tz",
        NY,
        "--by",
        "station",
        "-c",
        "two_robberies",
        "-c",
        "all",
    ]
    code, out, _ = run([*args, "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["baseline"] == {"from": "2022-11-01", "to": "2023-01-31", "days": 92}
    rows = {(r["jurisdiction"], r["category"]): r for r in data["rows"]}
    assert set(rows) == {(s, c) for s in ("1", "5", "14") for c in ("two_robberies", "all")}
    assert sum(rows[(s, "all")]["current"] for s in ("1", "5", "14")) > 0
    code, out, _ = run(args, capsys)
    assert code == 0 and "two_robberies" in out


def test_quiet_days_json_shape(csv_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        [
            "stats",
            "quiet-days",
            "--from",
            "2023-12-01",
            "--to",
            "2024-01-31",
            "--incidents",
            str(csv_file),
            "--tz",
            NY,
            "-c",
            "robbery",
            "--json",
        ],
        capsys,
    )
    assert code == 0
    row = json.loads(out)["rows"][0]
    assert set(row) == {
        "jurisdiction",
        "category",
        "days",
        "zero_days",
        "longest_zero_run",
        "current_zero_run",
        "incidents",
    }
    assert set(row["longest_zero_run"]) == {"days", "first", "last"}
    assert {"days", "since", "lower_bound"} <= set(row["current_zero_run"])
    assert row["days"] == 62 and row["jurisdiction"] == "city"


def test_profile_clearance_survey(
    csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [
        "--from",
        "2023-06-01",
        "--to",
        "2023-12-31",
        "--incidents",
        str(csv_file),
        "--tz",
        NY,
        "--json",
    ]
    code, out, _ = run(["stats", "profile", *base, "-c", "theft"], capsys)
    assert code == 0
    assert len(json.loads(out)["rows"][0]["hours"]["current"]) == 24
    code, out, _ = run(["stats", "clearance", *base, "--baseline", "period"], capsys)
    assert code == 0
    # 214 days just before 2023-06-01
    assert json.loads(out)["baseline"] == {"from": "2022-10-30", "to": "2023-05-31", "days": 214}
    survey = tmp_path / "s.csv"
    survey.write_text("respondent,area,answer\n1,A,5\n2,A,2\n3,B,4\n")
    code, out, _ = run(["stats", "survey", str(survey), "--json"], capsys)
    assert code == 0
    assert [r["satisfied"] for r in json.loads(out)["rows"]] == [2, 1, 1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give --tz"),
        (["--tz", NY, "--by", "precinct"], "jurisdiction level"),
        (["--tz", NY, "-c", "no_such_thing"], "unknown category or group"),
        (["--tz", NY, "--to", "2023-01-01"], "ends (2023-01-01) before it starts"),
    ],
)
def test_errors_are_clear(
    csv_file: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    args = [
        "stats",
        "compare",
        "--from",
        "2023-06-01",
        "--to",
        "2023-12-31",
        "--incidents",
        str(csv_file),
        *extra,
    ]
    code, _, err = run(args, capsys)
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and message in errors[0]


def test_monthly_data_refused_for_quiet_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "uk.csv"
    write_canonical_csv(
        make_incidents(["2018-07-01 12:00"] * 2, "Europe/London", precision="month"), path
    )
    code, _, err = run(
        [
            "stats",
            "quiet-days",
            "--from",
            "2018-07-01",
            "--to",
            "2018-07-31",
            "--incidents",
            str(path),
            "--tz",
            "Europe/London",
        ],
        capsys,
    )
    assert code == 1 and "known only to the month" in err
