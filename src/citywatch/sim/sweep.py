"""Parameter sweeps: scenarios x fleet sizes x replications as Dask tasks.

A sweep file names the scenario files, the fleet sizes (a factor on every ``[[fleet]]`` group's
count) and the replications::

    [sweep]
    name = "manhattan-fleet"          # optional; default: the file's stem
    scenarios = ["manhattan_before.toml", "manhattan_after.toml"]   # relative to this file
    fleet_scale = [0.75, 1.0, 1.25]   # optional; default [1.0]
    replications = 10                 # optional; default: each scenario's
    seed = 7                          # optional; default: each scenario's

Every (scenario, fleet size, replication) is one task returning one row of KPIs.  A task's
random numbers come from ``SeedSequence(seed, spawn_key=(replication,))``
(:func:`citywatch.sim.runner.draw_inputs`), so a row does not depend on which worker ran it or
how many there are.  Tasks run on a ``distributed`` cluster: a local one by default, or the
scheduler given by address.  The scheduler re-runs the tasks of a worker that dies; rows are
appended to ``rows.jsonl`` in the output folder as they finish, and a sweep started again with
the same output folder skips the rows already there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from citywatch.errors import ValidationError
from citywatch.sim.kpis import replication_kpis
from citywatch.sim.runner import run_replication
from citywatch.sim.scenario import Scenario, load_scenario
from citywatch.tomlkeys import read_toml

__all__ = [
    "Sweep",
    "SweepTask",
    "load_sweep",
    "run_sweep",
    "run_task",
    "scaled",
    "summarise_sweep",
]

_KEYS = {"name", "scenarios", "fleet_scale", "replications", "seed"}
#: How many times the scheduler may lose a task with its worker before giving up on it.
TASK_RETRIES = 3


@dataclass(frozen=True)
class SweepTask:
    """One task: a scenario at one fleet size, one replication."""

    scenario: Scenario
    fleet_scale: float
    replication: int
    seed: int

    @property
    def key(self) -> tuple[str, float, int]:
        """The row's identity in the results."""
        return (self.scenario.name, self.fleet_scale, self.replication)


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file."""

    name: str
    scenarios: tuple[Scenario, ...]
    fleet_scale: tuple[float, ...]
    replications: int | None
    seed: int | None

    def tasks(self) -> list[SweepTask]:
        """Every task, in a fixed order (scenario, fleet size, replication)."""
        out = []
        for s in self.scenarios:
            reps = self.replications or s.replications
            seed = s.seed if self.seed is None else self.seed
            for scale in self.fleet_scale:
                scaled_s = scaled(s, scale)
                out += [SweepTask(scaled_s, scale, r, seed) for r in range(reps)]
        return out


def scaled(scenario: Scenario, factor: float) -> Scenario:
    """The scenario with every fleet group's count times ``factor`` (rounded, at least 1)."""
    if not factor > 0:
        raise ValidationError("fleet_scale values must be positive", field="fleet_scale")
    if factor == 1.0:
        return scenario
    fleet = tuple(replace(g, count=max(1, round(g.count * factor))) for g in scenario.fleet)
    return replace(scenario, fleet=fleet)


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep file (see the module docstring); unknown keys are refused by name."""
    path = Path(path)
    doc = read_toml(path, "sweep file")
    table = doc.get("sweep")
    if not isinstance(table, dict) or set(doc) != {"sweep"}:
        raise ValidationError(f"{path}: needs exactly one [sweep] table", field="sweep")
    unknown = set(table) - _KEYS
    if unknown:
        raise ValidationError(f"{path}: unknown key(s) in [sweep]: {', '.join(sorted(unknown))}")
    files = table.get("scenarios")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise ValidationError(f"{path}: sweep.scenarios must be a list of scenario files")
    scales = table.get("fleet_scale", [1.0])
    if not isinstance(scales, list) or not scales:
        raise ValidationError(f"{path}: sweep.fleet_scale must be a list of numbers")
    reps, seed = table.get("replications"), table.get("seed")
    if reps is not None and (not isinstance(reps, int) or reps < 1):
        raise ValidationError(f"{path}: sweep.replications must be a positive integer")
    if seed is not None and not isinstance(seed, int):
        raise ValidationError(f"{path}: sweep.seed must be an integer")
    scenarios = tuple(load_scenario(path.parent / f) for f in files)
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise ValidationError(f"{path}: two scenarios share a name ({', '.join(names)})")
    for v in scales:
        scaled(scenarios[0], float(v))  # validates the factor
    return Sweep(
        str(table.get("name", path.stem)),
        scenarios,
        tuple(float(v) for v in scales),
        reps,
        seed,
    )


def run_task(task: SweepTask) -> dict[str, Any]:
    """Run one task and return its KPI row (what a Dask worker executes)."""
    res = run_replication(task.scenario, task.replication, task.seed)
    kpis = replication_kpis(res.incidents, res.units).iloc[0]
    row: dict[str, Any] = {
        "scenario": task.scenario.name,
        "fleet_scale": task.fleet_scale,
        "units": len(res.units),
        "replication": task.replication,
        "seed": task.seed,
    }
    row.update({str(k): (None if math.isnan(v) else float(v)) for k, v in kpis.items()})
    return row


def _distributed() -> Any:
    import distributed  # imported on use: it starts nothing, but takes a second to import

    return distributed


@contextmanager
def _client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    dist = _distributed()
    if scheduler:
        with dist.Client(scheduler) as client:
            yield client
        return
    with (
        dist.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        dist.Client(cluster) as client,
    ):
        yield client


def _done_rows(rows_file: Path | None) -> dict[tuple[str, float, int], dict[str, Any]]:
    if rows_file is None or not rows_file.exists():
        return {}
    rows = {}
    for line in rows_file.read_text("utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            rows[_row_key(r)] = r
    return rows


def summarise_sweep(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean of every KPI over the replications of each (scenario, fleet size)."""
    kpis = [c for c in rows.columns if c not in ("replication", "seed")]
    return rows[kpis].groupby(["scenario", "fleet_scale"], sort=False).mean().reset_index()


def run_sweep(
    sweep: Sweep,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    serial: bool = False,
    out: Path | None = None,
    on_done: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Run every task of a sweep; one row of KPIs per task, sorted by task.

    Parameters
    ----------
    sweep : Sweep
        The sweep.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://HOST:8786``); a local cluster otherwise.
    workers : int, optional
        Worker processes of the local cluster (default: Dask's, one per core).
    serial : bool
        Run in this process, without Dask (the reference the cluster must match).
    out : Path, optional
        Folder for ``rows.jsonl``: rows are appended as they finish, and rows already there are
        not run again.
    on_done : callable, optional
        Called with (finished, total) after each task.

    Returns
    -------
    pandas.DataFrame
        Columns scenario, fleet_scale, units, replication, seed and the KPIs.
    """
    tasks = sweep.tasks()
    rows_file = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        rows_file = out / "rows.jsonl"
    rows = _done_rows(rows_file)
    todo = [t for t in tasks if t.key not in rows]

    def keep(row: dict[str, Any]) -> None:
        rows[_row_key(row)] = row
        if rows_file is not None:
            with rows_file.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
        if on_done:
            on_done(len(rows), len(tasks))

    if serial:
        for t in todo:
            keep(run_task(t))
    elif todo:
        with _client(scheduler, workers) as client:
            futures = [
                client.submit(run_task, t, key=f"sweep-{i}-{t.key}", retries=TASK_RETRIES)
                for i, t in enumerate(todo)
            ]
            for fut in _distributed().as_completed(futures):
                keep(fut.result())
    order = {t.key: n for n, t in enumerate(tasks)}
    ranked = sorted(rows.values(), key=lambda r: order.get(_row_key(r), len(order)))
    return pd.DataFrame([r for r in ranked if _row_key(r) in order])


def _row_key(row: dict[str, Any]) -> tuple[str, float, int]:
    return (row["scenario"], float(row["fleet_scale"]), int(row["replication"]))
