"""``citywatch simulate``: the shorthand, run, compare, outputs and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from citywatch.city import CityPack
from citywatch.cli import app
from citywatch.errors import CityWatchError
from citywatch.sim.runner import prepare
from citywatch.sim.scenario import load_scenario

SMALL = """
[scenario]
name = "{name}"
pack = "{pack}"
start = 2024-03-04T00:00:00
days = 0.5
replications = 2
seed = 1

[demand]
kind = "poisson"
rate_per_hour = 3.0
points = [[-73.9897, 40.7411], [-73.9712, 40.7644]]
category = "theft"

[dispatch]
policy = "{policy}"

[on_scene.default]
dist = "exponential"
mean_s = 900

[[fleet]]
stations = ["13", "14", "18"]
unit_type = "patrol_car"
count = {count}
"""


def write(tmp: Path, pack: CityPack, name: str, policy: str = "nearest", count: int = 1) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(SMALL.format(name=name, pack=pack.path, policy=policy, count=count))
    return path


def test_shorthand_run_writes_every_output(
    tmp_path: Path, pack: CityPack, car_travel: object
) -> None:
    scenario = write(tmp_path, pack, "small")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["simulate", str(scenario), "--out", str(out), "--workers", "1", "--json"]
    )
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["replications"] == 2 and s["units"] == 3 and s["policy"] == "nearest"
    for name in (
        "incidents.parquet",
        "assignments.parquet",
        "units.parquet",
        "summary.json",
        "response_times.png",
        "kpis_by_hour.png",
        "zone_map.png",
        "report.html",
    ):
        assert (out / name).stat().st_size > 0, name
    inc = pd.read_parquet(out / "incidents.parquet")
    assert len(inc) == s["incidents_total"]
    assert inc["received_at"].dt.tz is not None
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "share on scene within 3 min" in html
    # The long form gives the same numbers.
    res2 = CliRunner().invoke(
        app,
        [
            "simulate",
            "run",
            str(scenario),
            "--out",
            str(tmp_path / "o2"),
            "--workers",
            "1",
            "--json",
        ],
    )
    assert json.loads(res2.stdout)["kpis"] == s["kpis"]


def test_compare_pairs_replications(tmp_path: Path, pack: CityPack, car_travel: object) -> None:
    a = write(tmp_path, pack, "a", "station_first", 1)
    b = write(tmp_path, pack, "b", "nearest", 2)
    res = CliRunner().invoke(
        app,
        [
            "simulate",
            "compare",
            str(a),
            str(b),
            "--out",
            str(tmp_path / "cmp"),
            "--workers",
            "1",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["paired"] is True
    d = out["difference"]["on_scene_3min"]
    assert d["diff"] == pytest.approx(
        out["b"]["kpis"]["on_scene_3min"]["mean"] - out["a"]["kpis"]["on_scene_3min"]["mean"]
    )
    assert d["ci_low"] <= d["diff"] <= d["ci_high"]
    # Same seed, same demand: the two scenarios saw the same incidents.
    assert d is not None and out["difference"]["incidents"]["diff"] == 0
    assert (tmp_path / "cmp" / "A" / "report.html").exists() and (
        tmp_path / "cmp" / "B" / "report.html"
    ).exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("count = 1", "count = 0"), "fleet[0].count must be at least 1"),
        (
            ('policy = "nearest"', 'policy = "fastest"'),
            "dispatch.policy must be nearest or station_first",
        ),
        (("seed = 1", "seed = 1\nspeed = 3"), "scenario: unknown key(s) speed"),
        (('stations = ["13", "14", "18"]', 'stations = ["999"]'), "unknown station(s) ['999']"),
        (('unit_type = "patrol_car"', 'unit_type = "tank"'), "unknown unit type 'tank'"),
        (("rate_per_hour = 3.0", "rate_per_hour = 0"), "poisson demand needs rate_per_hour > 0"),
    ],
)
def test_invalid_scenarios_are_refused(
    tmp_path: Path, pack: CityPack, edit: tuple[str, str], message: str
) -> None:
    path = write(tmp_path, pack, "bad")
    path.write_text(path.read_text().replace(*edit))
    with pytest.raises(CityWatchError) as err:
        prepare(load_scenario(path))
    assert message in err.value.message


def test_cli_error_is_one_line_and_exit_1(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from citywatch.cli import main; main()",
            "simulate",
            str(tmp_path / "missing.toml"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"Error: no scenario file {tmp_path / 'missing.toml'}"
