"""The ``citywatch plan`` commands end to end through the Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from citywatch.plan.cli import app

runner = CliRunner()


def write_tables(tmp_path: Path) -> list[str]:
    (tmp_path / "demand.csv").write_text("id,weight\na,3\nb,2\nc,5\nd,1\n")
    (tmp_path / "sites.csv").write_text("id,fixed\ns1,0\ns2,0\ns3,1\n")
    (tmp_path / "costs.csv").write_text(
        "demand_id,site_id,cost\na,s1,100\nb,s1,200\nb,s2,50\nc,s2,120\nd,s3,300\nc,s3,500\n"
    )
    return [f"--{n}={tmp_path / (n + '.csv')}" for n in ("demand", "sites", "costs")]


def test_coverage_json(tmp_path: Path) -> None:
    args = write_tables(tmp_path)
    result = runner.invoke(app, ["coverage", *args, "--radius", "120", "--units", "2", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    # s3 is fixed; with s2 (covers b at 50 and c at 120, inclusive) the weight is 2 + 5.
    assert doc["selected_sites"] == ["s2", "s3"]
    assert doc["covered_weight"] == 7.0
    assert doc["total_weight"] == 11.0
    assert (doc["covered_count"], doc["demand_count"]) == (2, 4)
    assert doc["status"] == "optimal"
    assert doc["objective"] == 7.0
    assert doc["gap"] == 0.0


def test_coverage_lscp_and_errors(tmp_path: Path) -> None:
    args = write_tables(tmp_path)
    ok = runner.invoke(app, ["coverage", *args, "--radius", "300", "--model", "lscp", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["selected_sites"] == ["s1", "s2", "s3"]
    missing = runner.invoke(app, ["coverage", *args, "--radius", "120", "--model", "mexclp"])
    assert missing.exit_code != 0
    assert "--units is required" in str(missing.exception)


def test_hypercube_json(tmp_path: Path) -> None:
    spec = {
        "units": 2,
        "service_rate": 1.0,
        "queue": "none",
        "atoms": [
            {"id": "x", "rate": 0.5, "preference": [0, 1]},
            {"id": "y", "rate": 0.5, "preference": [1, 0]},
        ],
        "travel_times": [[1.0, 3.0], [3.0, 1.0]],
    }
    path = tmp_path / "model.json"
    path.write_text(json.dumps(spec))
    result = runner.invoke(app, ["hypercube", str(path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    # Symmetric 2-unit loss system with a = 1: Erlang B(2, 1) = 0.2; each unit busy
    # (P(1 busy)/2 + P(2 busy)) = (0.4/2 + 0.2) = 0.4.
    assert abs(doc["p_all_busy"] - 0.2) < 1e-12
    assert np.allclose(doc["workloads"], [0.4, 0.4])
    assert len(doc["state_probabilities"]) == 4
    assert set(doc["travel_time_by_atom"]) == {"x", "y"}


def test_staffing_json(tmp_path: Path) -> None:
    path = tmp_path / "shifts.csv"
    path.write_text("shift,calls_per_hour,service_minutes\nday,6,30\n")
    result = runner.invoke(app, ["staffing", "--shifts", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["units"] == 7


def test_staffing_needs_exactly_one_input() -> None:
    result = runner.invoke(app, ["staffing"])
    assert result.exit_code != 0
    assert "either --shifts" in str(result.exception)
