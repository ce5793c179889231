"""``citywatch simulate``: run and compare simulation scenarios.

``citywatch simulate SCENARIO.toml`` is short for ``citywatch simulate run SCENARIO.toml``: the
group treats a first argument that is not a sub-command name as the scenario of ``run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from citywatch.cli_options import JsonOption
from citywatch.console import console, print_json, print_table, progress
from citywatch.errors import ValidationError
from citywatch.sim.kpis import format_kpi

__all__ = ["simulate_app"]


class _RunByDefault(TyperGroup):
    """A group where ``simulate X.toml ...`` means ``simulate run X.toml ...``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        first = args[0] if args else ""
        # Only a scenario file means `run`; another word is a mistyped command (click suggests).
        if first not in self.commands and (first.endswith(".toml") or Path(first).is_file()):
            args = ["run", *args]
        return super().parse_args(ctx, args)


simulate_app = typer.Typer(
    cls=_RunByDefault,
    help=(
        "Simulate a fleet and a dispatch policy over a city's incidents. "
        "`citywatch simulate SCENARIO.toml` is short for `citywatch simulate run SCENARIO.toml`."
    ),
    no_args_is_help=True,
)

_REPS = typer.Option(None, "--replications", "-n", help="Replications (default: the scenario's).")
_SEED = typer.Option(None, "--seed", help="Base seed (default: the scenario's).")
_WORKERS = typer.Option(None, "--workers", help="Worker processes (default: CPUs).")


def _run(
    path: Path,
    replications: int | None,
    seed: int | None,
    workers: int | None,
    out: Path | None,
    quiet: bool,
    tables: str | None = None,
    demand: Path | None = None,
) -> tuple[Any, dict[str, Any]]:
    from citywatch.city import load_pack
    from citywatch.sim.report import write_outputs
    from citywatch.sim.runner import run_scenario
    from citywatch.sim.scenario import load_scenario

    if replications is not None and replications < 1:
        raise ValidationError("--replications must be at least 1", field="replications")
    with progress(transient=True) as bar:  # every stage shows, not only the replications
        task = bar.add_task(f"reading {path.name} (demand, travel)", total=None)
        scenario = load_scenario(path)
        if demand is not None:
            from dataclasses import replace

            scenario = replace(scenario, demand=replace(scenario.demand, surface=demand))
        reps = replications or scenario.replications
        bar.update(task, description=f"simulating {scenario.name}", total=reps)
        result = run_scenario(
            scenario,
            replications=reps,
            seed=seed,
            workers=workers,
            on_done=lambda _: bar.advance(task),
        )
        folder = out or Path("simulations") / scenario.name
        bar.update(task, description=f"writing records and plots of {scenario.name}")
        s = write_outputs(result, load_pack(scenario.pack), folder, tables=tables)
    s["output"] = str(folder)
    if not quiet:
        console.print(f"Wrote records, plots and report.html to [bold]{folder}[/bold]")
    return result, s


@simulate_app.command("run")
def run(
    scenario: Path = typer.Argument(..., help="Scenario TOML file."),
    replications: int | None = _REPS,
    seed: int | None = _SEED,
    out: Path | None = typer.Option(
        None, "--out", help="Output folder (default simulations/NAME)."
    ),
    workers: int | None = _WORKERS,
    tables: str | None = typer.Option(
        None,
        "--tables",
        help="Also write the incidents and the KPIs by station and zone to OUT/tables/ as "
        "csv, geojson, gpkg or parquet (GeoParquet).",
    ),
    demand: Path | None = typer.Option(
        None,
        "--demand",
        help="Draw incident locations from a risk surface (forecast predict --geojson or "
        "--csv): a cell by its weight, a point uniform in it.",
    ),
    json: JsonOption = False,
) -> None:
    """Run a scenario: Parquet records, KPIs with 95 % intervals, plots and an HTML report."""
    if tables is not None:
        from citywatch.city.geo import table_format

        table_format("tables", tables)  # refuse a bad format before simulating
    if demand is not None and not demand.is_file():
        raise ValidationError(f"--demand: file not found: {demand}", field="demand")
    _, s = _run(scenario, replications, seed, workers, out, json, tables, demand)
    if json:
        print_json(s)
        return
    print_table(
        f"{s['scenario']}: {s['incidents_total']} incidents, {s['replications']} replications",
        ["KPI", "mean", "95 % interval"],
        [
            (
                k,
                format_kpi(k, v["mean"]),
                f"{format_kpi(k, v['ci_low'])} – {format_kpi(k, v['ci_high'])}",
            )
            for k, v in s["kpis"].items()
        ],
    )


@simulate_app.command("compare")
def compare(
    a: Path = typer.Argument(..., help="Scenario A (e.g. before the reform)."),
    b: Path = typer.Argument(..., help="Scenario B (e.g. after the reform)."),
    replications: int | None = _REPS,
    seed: int | None = _SEED,
    out: Path | None = typer.Option(
        None, "--out", help="Output folder; A and B go in sub-folders (default simulations/)."
    ),
    workers: int | None = _WORKERS,
    json: JsonOption = False,
) -> None:
    """Run two scenarios with the same seeds and show B - A with its 95 % interval."""
    from citywatch.sim.kpis import compare as compare_kpis
    from citywatch.sim.kpis import replication_kpis

    base = out or Path("simulations")
    ra, sa = _run(a, replications, seed, workers, base / "A", True)
    rb, sb = _run(b, replications, seed, workers, base / "B", True)
    paired = ra.seed == rb.seed and ra.replications == rb.replications
    table = compare_kpis(
        replication_kpis(ra.incidents, ra.units),
        replication_kpis(rb.incidents, rb.units),
        paired=paired,
    )
    if json:
        print_json(
            {
                "a": sa,
                "b": sb,
                "paired": paired,
                "difference": {k: row.to_dict() for k, row in table.iterrows()},
            }
        )
        return
    print_table(
        f"A = {sa['scenario']}, B = {sb['scenario']} "
        f"({'paired by replication' if paired else 'independent'}; outputs in {base})",
        ["KPI", "A", "B", "B - A", "95 % interval of B - A"],
        [
            (
                k,
                format_kpi(k, r["a"]),
                format_kpi(k, r["b"]),
                format_kpi(k, r["diff"]),
                f"{format_kpi(k, r['ci_low'])} – {format_kpi(k, r['ci_high'])}",
            )
            for k, r in table.iterrows()
            if isinstance(k, str)
        ],
    )


@simulate_app.command("sweep")
def sweep(
    grid: Path = typer.Argument(..., help="Sweep TOML file ([sweep] scenarios, fleet_scale, ...)."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Dask scheduler address, e.g. tcp://HOST:8786 (default: local)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Worker processes of the local cluster (default: one per core)."
    ),
    serial: bool = typer.Option(False, "--serial", help="Run in this process, without Dask."),
    out: Path | None = typer.Option(
        None, "--out", help="Output folder (default simulations/NAME); finished rows are kept."
    ),
    json: JsonOption = False,
) -> None:
    """Run scenarios x fleet sizes x replications as Dask tasks; KPIs per task and their means."""
    from citywatch.sim.sweep import load_sweep, run_sweep, summarise_sweep

    if workers is not None and workers < 1:
        raise ValidationError("--workers must be at least 1", field="workers")
    if serial and scheduler:
        raise ValidationError("--serial and --scheduler cannot be used together")
    spec = load_sweep(grid)
    folder = out or Path("simulations") / spec.name
    with progress(transient=True) as bar:
        task = bar.add_task(f"sweep {spec.name}", total=len(spec.tasks()))
        rows = run_sweep(
            spec,
            scheduler=scheduler,
            workers=workers,
            serial=serial,
            out=folder,
            on_done=lambda done, _: bar.update(task, completed=done),
        )
    rows.to_csv(folder / "rows.csv", index=False)
    means = summarise_sweep(rows)
    means.to_csv(folder / "summary.csv", index=False)
    if json:
        print_json(
            {
                "sweep": spec.name,
                "output": str(folder),
                "rows": rows.to_dict(orient="records"),
                "summary": means.to_dict(orient="records"),
            }
        )
        return
    shown = ["on_scene_3min", "on_scene_10min", "mean_response_s", "utilisation"]
    print_table(
        f"{spec.name}: {len(rows)} tasks, means over replications (rows in {folder})",
        ["scenario", "fleet x", "units", *shown],
        [
            (r.scenario, f"{r.fleet_scale:g}", int(r.units), *(format_kpi(k, r[k]) for k in shown))
            for _, r in means.iterrows()
        ],
    )


# Flight scenarios of pursuits (citywatch.sim.flights), in their own module.
def _register_flights() -> None:
    from citywatch.sim.cli_flights import flights

    simulate_app.command("flights")(flights)


_register_flights()
