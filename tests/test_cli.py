"""The ``citywatch`` command as a new user meets it: one-line errors, checks before work,
tables that keep every id and number, and the CityWatch home."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest

from citywatch.city import load_pack
from citywatch.console import format_cell, print_table
from citywatch.paths import checkout
from tests.helpers import MANHATTAN_PRECINCTS, run


def one_line_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    code, out, err = run(args, capsys)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and out == ""
    return code, lines[0]


STATS = ["stats", "compare", "--incidents", "/nonexistent/incidents.csv", "--tz", "UTC"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["stats", "compare", "--to", "2024-01-31"],
            "Error: Missing option '--from'. (see 'citywatch stats compare --help')",
        ),
        (
            ["stats", "compare", "--frm", "2024-01-01"],
            "Error: No such option: --frm (Possible options: --from, --vs-from) "
            "(see 'citywatch stats compare --help')",
        ),
        (
            ["stats", "compar"],
            "Error: No such command 'compar'. Did you mean 'compare'? "
            "(see 'citywatch stats --help')",
        ),
        (
            ["simulate", "compar", "a.toml", "b.toml"],
            "Error: No such command 'compar'. Did you mean 'compare'? "
            "(see 'citywatch simulate --help')",
        ),
        (
            ["simulat"],
            "Error: No such command 'simulat'. Did you mean 'simulate'? (see 'citywatch --help')",
        ),
        (
            ["plan", "posts", "manhattan", "--cars", "ten"],
            "Error: Invalid value for '--cars': Input should be a valid integer, unable to parse "
            "string as an integer (see 'citywatch plan posts --help')",
        ),
        (
            ["demo", "--port", "70000"],
            "Error: Invalid value for '--port': Input should be less than or equal to 65535 "
            "(see 'citywatch demo --help')",
        ),
        (
            ["city", "info"],
            "Error: Missing argument 'pack'. (see 'citywatch city info --help')",
        ),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert one_line_error(capsys, args) == (2, expected)


def test_report_language_is_checked_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["report", "compstat", "--from", "2024-01-01", "--to", "2024-01-31", "--out", "r.html"]
    code, line = one_line_error(capsys, [*args, "--lang", "fr", "--incidents", "/nonexistent.csv"])
    assert code == 2 and line.startswith("Error: Invalid value for '--lang':")
    assert "'fr' is not one of 'zh', 'en'" in line


def test_conflicting_baselines_are_refused_before_reading(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The incident file does not exist: the options must be refused before it is opened.
    args = [*STATS, "--from", "2024-01-01", "--to", "2024-01-31", "--baseline", "period"]
    args += ["--vs-from", "2023-01-01", "--vs-to", "2023-01-31"]
    assert one_line_error(capsys, args) == (
        2,
        "Error: --baseline period and --vs-from/--vs-to both choose the comparison period: "
        "give one of them",
    )


def test_lscp_with_units_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    missing = ["--demand", "/no/d.csv", "--sites", "/no/s.csv", "--costs", "/no/c.csv"]
    args = ["plan", "coverage", *missing, "--radius", "300", "--model", "lscp", "--units", "5"]
    assert one_line_error(capsys, args) == (
        2,
        "Error: --units does not apply to --model lscp (it finds the fewest sites that cover "
        "all demand); drop --units or use mclp, mexclp or backup",
    )
    args = ["plan", "coverage", *missing, "--radius", "300", "--units", "5"]
    assert one_line_error(capsys, [*args, "--busy-fraction", "0.3"]) == (
        2,
        "Error: --busy-fraction applies to --model mexclp only, not mclp",
    )


def test_keep_current_with_too_few_cars_fails_before_travel_times(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stations = len({s.id for s in load_pack("manhattan").stations})
    args = ["plan", "posts", "manhattan", "--keep-current", "--cars", "3"]
    code, line = one_line_error(capsys, [*args, "--incidents", "/nonexistent.csv"])
    assert (code, line) == (
        2,
        f"Error: {stations} current posts (stations) must stay but only 3 cars are given: "
        f"use --cars {stations} or more",
    )


def test_demo_on_a_busy_port_fails_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = run(["demo", "--port", str(port), "--no-feed"], capsys)
    assert code == 1 and out == ""  # nothing loaded, not even the pack
    assert err.strip() == (
        f"Error: cannot listen on 127.0.0.1:{port} (Address already in use); is another "
        "service using it? Choose another with --port"
    )


def test_pack_option_has_one_name_and_city_is_its_alias(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("--pack", "--city"):
        args = ["plan", "staffing", name, "atlantis", "--incidents", "/no.csv"]
        code, line = one_line_error(capsys, args)
        assert code == 1 and line.startswith("Error: no city pack 'atlantis'")


def test_tables_keep_ids_and_round_floats(capsys: pytest.CaptureFixture[str]) -> None:
    long_id = "violence_and_sexual_offences_in_manhattan_precinct_14"
    print_table(
        "t", ["jurisdiction", "rate", "count", "share"], [[long_id, 1234.567, 20659, 0.04567]]
    )
    out = capsys.readouterr().out
    assert long_id in out and "…" not in out  # on one line, not cut
    assert "1,235" in out and "20,659" in out and "0.0457" in out
    assert [format_cell(v) for v in (3.14159, np.float32(0.5), 7, None, float("nan"), True)] == [
        "3.14",
        "0.5",
        "7",
        "",
        "",
        "True",
    ]


def test_city_info_lists_precincts_in_numeric_order(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["city", "info", "manhattan"], capsys)
    assert code == 0
    listed = [
        cells[2]
        for line in out.splitlines()
        if len(cells := [c.strip() for c in line.split("│")]) > 2 and cells[1] == "station"
    ]
    assert listed == sorted(MANHATTAN_PRECINCTS, key=int)


def test_home_option_holds_the_embedded_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CITYWATCH_DB", raising=False)
    monkeypatch.setenv("CITYWATCH_HOME", str(tmp_path / "unused"))  # restored after the test
    home = tmp_path / "cw"
    code, out, err = run(["--home", str(home), "users", "list", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out) == []
    assert (home / "citywatch.db").is_file()


def test_make_demo_passes_args_through() -> None:
    root = checkout()
    if root is None or shutil.which("make") is None:
        pytest.skip("needs the checkout's Makefile and make")
    dry = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "-C",
            str(root),
            "demo",
            "ARGS=--pack shenzhen --port 8123 --no-feed",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert (
        dry.stdout.splitlines()[-1]
        == ".venv/bin/citywatch demo --pack shenzhen --port 8123 --no-feed"
    )
