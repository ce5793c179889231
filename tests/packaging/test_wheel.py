"""A wheel built from the checkout installs into a fresh virtualenv and works outside it.

The venv gets only CityWatch from the wheel; its dependencies come from the test interpreter's
site-packages through a ``.pth`` line (nothing is downloaded).  The installed copy must find
its bundled data inside the package and write packs and the database to the user data
directory (or ``--home``), never into site-packages.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from citywatch.paths import checkout

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Installed:
    """A venv with the wheel installed, and a clean environment to run it in."""

    venv: Path
    site: Path
    env: dict[str, str]
    cwd: Path
    xdg: Path

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "citywatch"), *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.cwd,
            timeout=timeout,
            check=False,
        )


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = checkout()
    if root is None:
        pytest.skip("needs the source checkout to build a wheel from")
    tmp = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # The build backend from the dev dependencies; pip fetches it only if it is missing here.
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    subprocess.run(
        [*pip, "wheel", str(root), "--no-deps", *isolation, "-w", str(tmp / "dist")],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp / "dist").glob("citywatch-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], check=True)
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # Dependencies from this interpreter's site-packages, after the venv's own (so the wheel's
    # citywatch is the one imported); a plain path line, so no editable checkout is added.
    (site / "zz_shared_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CITYWATCH_") and k not in {"PYTHONPATH", "VIRTUAL_ENV"}
    }
    env["HOME"] = str(tmp / "home")
    env["XDG_DATA_HOME"] = str(tmp / "xdg")
    cwd = tmp / "elsewhere"
    cwd.mkdir()
    return Installed(venv, site, env, cwd, tmp / "xdg")


def test_installed_copy_runs_from_site_packages(installed: Installed) -> None:
    probe = subprocess.run(
        [
            str(installed.venv / "bin" / "python"),
            "-c",
            "import json, citywatch, citywatch.paths as p; print(json.dumps("
            "[citywatch.__file__, str(p.checkout()), str(p.data_dir()), str(p.home())]))",
        ],
        capture_output=True,
        text=True,
        env=installed.env,
        check=True,
    )
    module, root, data, home = json.loads(probe.stdout)
    assert Path(module).is_relative_to(installed.site)
    assert root == "None"
    assert Path(data) == installed.site / "citywatch" / "_data"
    assert Path(home) == installed.xdg / "citywatch"


def test_city_info_builds_into_the_user_data_dir(installed: Installed) -> None:
    before = _files(installed.site)
    out = installed.run("city", "info", "manhattan", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert (info["nodes"], info["directed_edges"]) == (4091, 9452)
    assert (installed.xdg / "citywatch" / "packs" / "manhattan" / "city.toml").is_file()
    assert _files(installed.site) == before  # nothing written into the installed package


def test_usage_error_is_one_line(installed: Installed) -> None:
    out = installed.run("city", "info")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "Error: Missing argument 'pack'. (see 'citywatch city info --help')"
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_no_feed_serves_health(installed: Installed, tmp_path: Path) -> None:
    home = tmp_path / "cw-home"
    port = _free_port()
    before = _files(installed.site)
    proc = subprocess.Popen(
        [
            str(installed.venv / "bin" / "citywatch"),
            "--home",
            str(home),
            "demo",
            "--no-feed",
            "--port",
            str(port),
        ],
        env=installed.env,
        cwd=installed.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/v1/health", timeout=5
                ) as r:
                    health = json.loads(r.read())
                    break
            except OSError:
                time.sleep(1)
        assert health is not None, proc.stdout.read() if proc.poll() is not None else "timeout"
        assert health["status"] == "ok" and health["pack"] == "manhattan"
        assert health["database"] == "sqlite"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert (home / "citywatch.db").is_file()
    assert (home / "packs" / "manhattan" / "city.toml").is_file()
    assert not (installed.xdg / "citywatch" / "citywatch.db").exists()
    assert _files(installed.site) == before
