"""The layering of docs/ARCHITECTURE.md: the import-linter contracts of pyproject.toml hold.

The contracts are checked on the package as it is, and shown to catch what they are meant to
catch: an upward import and a cycle, each injected into a copy of the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "citywatch"


def _lint(root: Path, package_parent: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports with ``root``'s pyproject.toml on the package in ``package_parent``."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(no_cache=True, no_logo=True))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=False
    )


def test_package_keeps_the_layers() -> None:
    done = _lint(ROOT, ROOT / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(
        PACKAGE, tmp_path / "src" / "citywatch", ignore=shutil.ignore_patterns("static", "*.pyc")
    )
    return tmp_path


def _inject(copy: Path, module: str, line: str) -> None:
    path = copy / "src" / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


def test_an_upward_import_breaks_the_layers(copy: Path) -> None:
    # The store is infrastructure: importing the incidents room from it is upward.
    _inject(copy, "citywatch.store.models", "from citywatch.incidents import record  # noqa")
    done = _lint(copy, copy / "src")
    assert done.returncode != 0
    assert "Rooms import only downwards BROKEN" in done.stdout
    assert "citywatch.store.models -> citywatch.incidents.record" in done.stdout


def test_a_cycle_inside_a_room_is_refused(copy: Path) -> None:
    # A hidden import inside a function counts: the heuristic must not import the models back.
    _inject(
        copy,
        "citywatch.plan.heuristic",
        "def _late():\n    from citywatch.plan.coverage import MCLP  # noqa\n    return MCLP",
    )
    done = _lint(copy, copy / "src")
    assert done.returncode != 0
    assert "No import cycles between the modules of a package BROKEN" in done.stdout
    assert "- .heuristic -> .coverage (1 import)" in done.stdout


def test_a_module_outside_the_layers_is_refused(copy: Path) -> None:
    # The contract is exhaustive: a new room must be placed in the layers to exist.
    (copy / "src" / "citywatch" / "annex.py").write_text("from citywatch import errors\n")
    done = _lint(copy, copy / "src")
    assert done.returncode != 0
    assert "citywatch.annex" in done.stdout and "not listed as layers" in done.stdout
