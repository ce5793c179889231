"""Sweeps: a 2-worker Dask LocalCluster gives the serial run's KPIs; rows survive a restart."""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import tomli_w
from typer.testing import CliRunner

from citywatch.cli import app
from citywatch.errors import ValidationError
from citywatch.sim.sweep import load_sweep, run_sweep, scaled, summarise_sweep

START = datetime(2024, 3, 4)
POINTS = [[-73.9897, 40.7411], [-73.9857, 40.7484], [-73.9712, 40.7644], [-74.0060, 40.7128]]


def write_grid(folder: Path, **sweep: object) -> Path:
    for name, policy in (("near", "nearest"), ("first", "station_first")):
        doc = {
            "scenario": {"name": name, "pack": "manhattan", "start": START, "days": 1, "seed": 3},
            "demand": {"kind": "poisson", "rate_per_hour": 3.0, "points": POINTS},
            "dispatch": {"policy": policy, "threshold_s": 200},
            "on_scene": {"default": {"dist": "exponential", "mean_s": 1500}},
            "fleet": [{"stations": ["1", "13", "14", "18"], "unit_type": "patrol_car", "count": 2}],
        }
        (folder / f"{name}.toml").write_text(tomli_w.dumps(doc))
    grid = {"sweep": {"scenarios": ["near.toml", "first.toml"], **sweep}}
    path = folder / "grid.toml"
    path.write_text(tomli_w.dumps(grid))
    return path


def test_local_cluster_equals_serial(tmp_path: Path) -> None:
    spec = load_sweep(write_grid(tmp_path, fleet_scale=[0.5, 1.0], replications=2, seed=11))
    assert len(spec.tasks()) == 2 * 2 * 2
    serial = run_sweep(spec, serial=True)
    dask = run_sweep(spec, workers=2, out=tmp_path / "out")
    pd.testing.assert_frame_equal(serial, dask)
    assert serial["units"].tolist() == [4, 4, 8, 8] * 2  # half and full fleet
    # Replications differ from each other, and the smaller fleet is slower on average.
    assert serial["mean_response_s"].nunique() == len(serial)
    means = summarise_sweep(serial).set_index(["scenario", "fleet_scale"])
    assert means.loc[("near", 0.5), "mean_response_s"] > means.loc[("near", 1.0), "mean_response_s"]
    # Finished rows were written as they came, and a second run re-uses them all.
    lines = (tmp_path / "out" / "rows.jsonl").read_text().splitlines()
    assert len(lines) == 8
    again = run_sweep(spec, serial=True, out=tmp_path / "out")
    pd.testing.assert_frame_equal(again, serial)
    assert len((tmp_path / "out" / "rows.jsonl").read_text().splitlines()) == 8


def test_a_killed_worker_loses_no_task(tmp_path: Path) -> None:
    import distributed

    spec = load_sweep(write_grid(tmp_path, replications=2, seed=11))  # 4 tasks
    serial = run_sweep(spec, serial=True)
    killed: list[str] = []
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):

        def kill_a_busy_worker(done: int, total: int) -> None:
            # after the first row, SIGKILL a worker while it runs a task: the scheduler must
            # run that task again elsewhere (or on the nanny's restarted worker)
            busy = [w for w, keys in client.processing().items() if keys]
            if killed or not busy:
                return
            pids = client.run(os.getpid, workers=[busy[0]])
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(busy[0])

        rows = run_sweep(
            spec,
            scheduler=cluster.scheduler_address,
            out=tmp_path / "out",
            on_done=kill_a_busy_worker,
        )
    assert killed, "no worker was busy after the first task: nothing was killed"
    pd.testing.assert_frame_equal(rows, serial)
    assert len((tmp_path / "out" / "rows.jsonl").read_text().splitlines()) == len(serial)


def test_partial_rows_are_kept_and_only_the_rest_run(tmp_path: Path) -> None:
    spec = load_sweep(write_grid(tmp_path, replications=2))
    full = run_sweep(spec, serial=True)
    out = tmp_path / "out"
    out.mkdir()
    # As if the sweep had been killed after two tasks: only the two others run again.
    first = full.iloc[:2].to_dict(orient="records")
    (out / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in first))
    ran: list[int] = []
    resumed = run_sweep(spec, serial=True, out=out, on_done=lambda done, _: ran.append(done))
    assert ran == [3, 4]
    pd.testing.assert_frame_equal(resumed, full)


def test_scaled_fleet_and_bad_files(tmp_path: Path) -> None:
    spec = load_sweep(write_grid(tmp_path))
    s = spec.scenarios[0]
    assert [g.count for g in scaled(s, 1.5).fleet] == [3]
    assert [g.count for g in scaled(s, 0.1).fleet] == [1]
    with pytest.raises(ValidationError, match="unknown key"):
        load_sweep(write_grid(tmp_path, replicatoins=2))
    with pytest.raises(ValidationError, match="positive"):
        load_sweep(write_grid(tmp_path, fleet_scale=[0.0]))


def test_cli_sweep_json(tmp_path: Path) -> None:
    grid = write_grid(tmp_path, replications=1, fleet_scale=[1.0])
    out = tmp_path / "res"
    res = CliRunner().invoke(
        app, ["simulate", "sweep", str(grid), "--serial", "--out", str(out), "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [r["scenario"] for r in doc["summary"]] == ["near", "first"]
    assert (out / "rows.csv").exists() and (out / "summary.csv").exists()
    bad = CliRunner().invoke(
        app, ["simulate", "sweep", str(grid), "--serial", "--scheduler", "tcp://x:8786"]
    )
    assert bad.exit_code != 0
    assert isinstance(bad.exception, ValidationError)
    assert "cannot be used together" in str(bad.exception)
