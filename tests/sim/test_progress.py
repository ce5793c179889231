"""``simulate compare`` shows what it is doing at every stage, not only the replications."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.progress import Progress, TaskID
from typer.testing import CliRunner

import citywatch.sim.cli as sim_cli
from citywatch.city import CityPack
from citywatch.cli import app
from tests.sim.test_cli import write


class _Recording(Progress):
    """A progress display that remembers every stage it was asked to show."""

    stages: list[str]

    def add_task(self, description: str, *args: Any, **kwargs: Any) -> TaskID:
        self.stages.append(description)
        return super().add_task(description, *args, **kwargs)

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        if "description" in kwargs:
            self.stages.append(str(kwargs["description"]))
        super().update(task_id, **kwargs)


def test_compare_shows_every_stage(
    tmp_path: Path, pack: CityPack, car_travel: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    stages: list[str] = []

    def recording(transient: bool = True) -> Progress:
        bar = _Recording(transient=transient)
        bar.stages = stages
        return bar

    monkeypatch.setattr(sim_cli, "progress", recording)
    a, b = write(tmp_path, pack, "a"), write(tmp_path, pack, "b", count=2)
    args = ["simulate", "compare", str(a), str(b), "--out", str(tmp_path / "o"), "--workers", "1"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert stages == [
        "reading a.toml (demand, travel)",
        "simulating a",
        "writing records and plots of a",
        "reading b.toml (demand, travel)",
        "simulating b",
        "writing records and plots of b",
    ]
