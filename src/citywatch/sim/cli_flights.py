"""``citywatch simulate flights PACK``: the share of robberies whose offender a fleet would
intercept, with and without motorcycle teams at the markets (:mod:`citywatch.sim.flights`)."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from citywatch.cli_options import JsonOption
from citywatch.console import print_json, print_table, progress
from citywatch.errors import ValidationError

__all__ = ["flights", "write_robberies_csv"]


def _ci(d: dict[str, float], pct: bool = True) -> str:
    f = 100.0 if pct else 1.0
    return f"{f * d['mean']:.1f} [{f * d['ci_low']:.1f}, {f * d['ci_high']:.1f}]"


def write_robberies_csv(doc: dict[str, Any], path: Path) -> Path:
    """One row per robbery: position, then per fleet the plan's share of fresh routes
    intercepted, the naive plan's share and the motorcycle teams the plan used."""
    fleets = list(doc["fleets"])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            ["node", "lon", "lat"]
            + [f"{f}:{c}" for f in fleets for c in ("share", "naive", "motorcycles")]
        )
        for r in doc["robberies"]:
            out.writerow(
                [r["node"], r["lon"], r["lat"]]
                + [r[f][c] for f in fleets for c in ("share", "naive", "motorcycles")]
            )
    return path


def flights(
    pack: Annotated[str, typer.Argument(help="City pack with market places (e.g. baltimore).")],
    robberies: Annotated[int, typer.Option("--robberies", help="Robberies drawn.")] = 40,
    routes: Annotated[int, typer.Option("--routes", help="Simulated routes per robbery.")] = 300,
    k: Annotated[int, typer.Option("-k", help="Checkpoints per plan.")] = 6,
    teams: Annotated[int, typer.Option("--teams", help="Motorcycle teams at markets.")] = 6,
    cars: Annotated[int, typer.Option("--cars-per-station", help="Patrol cars per station.")] = 3,
    mode: Annotated[
        str, typer.Option("--mode", help="Offender mode: motorcycle, bicycle (e-bike), ...")
    ] = "motorcycle",
    delay: Annotated[float, typer.Option("--delay", help="Seconds before units move.")] = 60.0,
    time: Annotated[
        str | None, typer.Option("--time", help="Robbery time, ISO 8601 with offset.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    csv_: Annotated[
        Path | None, typer.Option("--csv", help="Write the per-robbery shares to a CSV file.")
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Fly robberies near markets: each fleet's exact checkpoint plan, scored on fresh routes;
    shares with 95 % bootstrap intervals and paired differences between fleets."""
    from citywatch.city import load_pack
    from citywatch.routing.speeds import parse_mode
    from citywatch.sim.flights import FlightScenario, run_flights

    extra: dict[str, Any] = {}
    if time is not None:
        try:
            at = datetime.fromisoformat(time)
        except ValueError:
            raise ValidationError(f"--time must be ISO 8601, got {time!r}", field="time") from None
        if at.tzinfo is None:
            raise ValidationError("--time needs a UTC offset", field="time")
        extra["at"] = at
    scenario = FlightScenario(
        robberies=robberies,
        routes=routes,
        k=k,
        teams=teams,
        cars_per_station=cars,
        offender_mode=parse_mode(mode, field="mode"),
        delay_s=delay,
        seed=seed,
        **extra,
    )
    city = load_pack(pack)
    with progress(transient=True) as bar:
        task = bar.add_task("robberies", total=robberies)
        result = run_flights(city, scenario, progress=lambda n: bar.update(task, completed=n))
    doc = result.as_dict()
    if csv_ is not None:
        write_robberies_csv(doc, csv_)
    if json_:
        print_json(doc)
        return
    print_table(
        f"{pack}: share of robberies intercepted (%, 95 % bootstrap CI), offender on {mode}",
        ["fleet", "units", "plan", "naive (nearest to scene)", "motorcycles per plan"],
        [
            [
                name,
                s["units"],
                _ci(s["plan"]),
                _ci(s["naive"]),
                f"{s['motorcycles_per_plan']:.2f}",
            ]
            for name, s in doc["summary"].items()
        ],
    )
    print_table(
        "Paired differences (percentage points, same robberies and routes)",
        ["comparison", "difference"],
        [[name, _ci(d)] for name, d in doc["differences"].items()],
    )
    gap = doc["mode_gap"]
    print_table(
        "Where a motorcycle can beat a car",
        ["motorcycle-only km", "car km", "km motorcycles ride faster"],
        [[gap["motorcycle_only_km"], gap["car_km"], gap["motorcycle_faster_km"]]],
    )
