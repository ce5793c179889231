"""``citywatch plan``: coverage optimisation, hypercube queueing model, staffing."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd
import typer

from citywatch.city import CityPack
from citywatch.cli_options import DbOption, IncidentsOption, JsonOption, PackOption
from citywatch.console import console, err_console, print_json, print_table
from citywatch.dispatch.kpis import RESPONSE_TARGETS_S
from citywatch.errors import DataError, NotFoundError, OptionError, ValidationError
from citywatch.incidents.load import LoadedIncidents, load_incidents
from citywatch.plan.coverage import LSCP, MCLP, MEXCLP, BackupCoverage, CoverageData
from citywatch.plan.heuristic import greedy_local_search
from citywatch.plan.hypercube import HypercubeModel
from citywatch.plan.shifts import city_staffing, parse_shifts
from citywatch.plan.staffing import staffing_table

app = typer.Typer(help="Patrol deployment planning.", no_args_is_help=True)


class CoverageModelName(StrEnum):
    """Models of ``plan coverage``."""

    mclp = "mclp"
    lscp = "lscp"
    mexclp = "mexclp"
    backup = "backup"


class QueueName(StrEnum):
    """Queue disciplines."""

    none = "none"
    infinite = "infinite"


class HypercubeMethod(StrEnum):
    """Solution methods of ``plan hypercube``."""

    auto = "auto"
    exact = "exact"
    approximate = "approximate"


def read_csv(path: Path, id_columns: tuple[str, ...]) -> pd.DataFrame:
    """Read a CSV file with the given columns as strings; clear errors for missing/bad files."""
    if not path.is_file():
        raise NotFoundError(f"file not found: {path}")
    try:
        return pd.read_csv(path, dtype={c: str for c in id_columns}, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from exc


def _check_coverage_options(
    model: CoverageModelName, units: int | None, busy_fraction: float | None, heuristic: bool
) -> None:
    """Refuse missing and conflicting options before any table is read."""
    if model is CoverageModelName.lscp:
        if units is not None:
            raise OptionError(
                "--units does not apply to --model lscp (it finds the fewest sites that cover "
                "all demand); drop --units or use mclp, mexclp or backup",
                field="units",
            )
        if heuristic:
            raise OptionError("--heuristic applies to mclp, mexclp and backup")
    elif units is None:
        raise OptionError(f"--units is required for {model.value}", field="units")
    if model is CoverageModelName.mexclp and busy_fraction is None:
        raise OptionError("--busy-fraction is required for mexclp", field="busy_fraction")
    if model is not CoverageModelName.mexclp and busy_fraction is not None:
        raise OptionError(
            f"--busy-fraction applies to --model mexclp only, not {model.value}",
            field="busy_fraction",
        )


@app.command("coverage")
def coverage(
    demand: Path | None = typer.Option(None, "--demand", help="CSV with columns id,weight."),
    sites: Path | None = typer.Option(
        None, "--sites", help="CSV with column id and optional fixed 0/1."
    ),
    costs: Path | None = typer.Option(
        None, "--costs", help="CSV demand_id,site_id,cost; pairs not listed are unreachable."
    ),
    pack_name: str | None = typer.Option(
        None,
        "--pack",
        help="Instead of the tables: a city pack, demand 1 on every road node, sites on a grid "
        "of --post-spacing, cost = travel seconds by --mode.",
    ),
    spacing: float = typer.Option(
        1000.0, "--post-spacing", help="With --pack: metres between candidate sites."
    ),
    mode: str = typer.Option("car", "--mode", help="With --pack: travel mode of the units."),
    radius: float = typer.Option(..., "--radius", help="Covered when cost <= radius (inclusive)."),
    units: int | None = typer.Option(None, "--units", help="Units to place (not for lscp)."),
    model: CoverageModelName = typer.Option(CoverageModelName.mclp, "--model"),
    busy_fraction: float | None = typer.Option(
        None, "--busy-fraction", help="mexclp: probability q that a unit is busy."
    ),
    theta: float = typer.Option(0.5, "--theta", help="backup: weight of first coverage."),
    time_limit: float | None = typer.Option(
        None, "--time-limit", help="Seconds; return the incumbent and its gap when reached."
    ),
    heuristic: bool = typer.Option(
        False, "--heuristic", help="Greedy + swap heuristic with its gap to the LP bound."
    ),
    as_json: JsonOption = False,
) -> None:
    """Choose sites for any demand/site/cost tables (MCLP, LSCP, MEXCLP or backup coverage)."""
    _check_coverage_options(model, units, busy_fraction, heuristic)
    started = time.perf_counter()
    if pack_name is not None:
        if demand is not None or sites is not None or costs is not None:
            raise OptionError("--pack replaces --demand, --sites and --costs", field="pack")
        data = _city_data(pack_name, spacing, mode, radius)
    else:
        if demand is None or sites is None or costs is None:
            raise OptionError("give --demand, --sites and --costs, or --pack", field="pack")
        data = CoverageData.from_frames(
            read_csv(demand, ("id",)),
            read_csv(sites, ("id",)),
            read_csv(costs, ("demand_id", "site_id")),
            radius,
        )
    build_seconds = time.perf_counter() - started
    solver: LSCP | MCLP | MEXCLP | BackupCoverage
    if model is CoverageModelName.lscp:
        solver = LSCP(data)
    else:
        assert units is not None
        if model is CoverageModelName.mclp:
            solver = MCLP(data, units)
        elif model is CoverageModelName.backup:
            solver = BackupCoverage(data, units, theta=theta)
        else:
            assert busy_fraction is not None
            solver = MEXCLP(data, units, busy_fraction)
    with err_console.status(f"Solving {model.value} ..."):
        if heuristic and not isinstance(solver, LSCP):
            result = greedy_local_search(solver)
        else:
            result = solver.solve(time_limit=time_limit)
    doc = {**result.to_dict(), "build_seconds": build_seconds}
    if as_json:
        print_json(doc)
        return
    print_table(
        f"{model.value.upper()} ({doc['status']})",
        ("measure", "value"),
        [(k, v) for k, v in doc.items() if k != "selected_sites"],
    )
    console.print("Selected sites: " + ", ".join(doc["selected_sites"]))


def _city_data(pack_name: str, spacing: float, mode: str, radius: float) -> CoverageData:
    """Coverage data of ``plan coverage --pack``: every road node, sites on a grid."""
    from citywatch.city import load_pack
    from citywatch.plan.posts import city_coverage_data, road_node_demand, thinned_nodes
    from citywatch.routing import MODES, Router

    if mode not in MODES:
        raise ValidationError(f"unknown travel mode {mode!r}; choose from {', '.join(MODES)}")
    pack = load_pack(pack_name)
    router = Router.from_pack(pack)
    with err_console.status(f"Travel times within {radius:.0f} s ..."):
        return city_coverage_data(
            pack,
            road_node_demand(router, mode),
            radius,
            mode,
            router,
            candidates=thinned_nodes(pack, router, spacing, mode),
        )


@app.command("hypercube")
def hypercube(
    model_file: Path = typer.Argument(..., help="Model JSON: units, service_rate, queue, atoms."),
    method: HypercubeMethod = typer.Option(
        HypercubeMethod.auto, "--method", help="auto: exact up to 16 units, else approximate."
    ),
    states: bool = typer.Option(True, "--states/--no-states", help="Include state probabilities."),
    as_json: JsonOption = False,
) -> None:
    """Solve Larson's hypercube queueing model (exact 2^N chain or the 1975 approximation)."""
    model = HypercubeModel.from_json(model_file)
    with err_console.status(f"Solving the hypercube model ({model.units} units) ..."):
        result = model.solve(method.value)
    doc = result.to_dict(include_states=states)
    if as_json:
        print_json(doc)
        return
    print_table(
        f"Hypercube ({result.method}, {model.units} units, queue {model.queue})",
        ("unit", "workload"),
        [(u, f"{w:.4f}") for u, w in enumerate(result.workloads)],
    )
    console.print(f"P(all busy) = {result.p_all_busy:.4f}")
    console.print(f"Cross-area dispatch fraction = {result.cross_area_fraction:.4f}")
    if result.mean_travel_time is not None:
        console.print(f"Mean travel time = {result.mean_travel_time:.4f}")


def city_incidents(path: Path | None, database: str | None, pack: CityPack) -> LoadedIncidents:
    """The incidents of the pack's city, from a canonical CSV or (no file) the incident store."""
    return load_incidents(
        database,
        files=[] if path is None else [(path, "canonical")],
        database=path is None,
        pack=pack,
    )


@app.command("staffing")
def staffing(
    shifts: Path | None = typer.Option(
        None, "--shifts", help="CSV with columns shift,calls_per_hour,service_minutes."
    ),
    pack_name: PackOption = None,
    incidents: IncidentsOption = None,
    database: DbOption = None,
    shift_hours: str = typer.Option(
        "7-15,15-23,23-7", "--shift-hours", help="With --pack: local shift hours."
    ),
    service_minutes: float = typer.Option(
        30.0, "--service-minutes", help="With --pack: mean minutes a unit spends per call."
    ),
    coverage: float | None = typer.Option(
        None, "--coverage", help="With --pack: share of calls to answer within --within."
    ),
    within: float = typer.Option(
        RESPONSE_TARGETS_S[0], "--within", help="Response-time threshold, seconds."
    ),
    max_all_busy: float = typer.Option(
        0.05, "--max-all-busy", help="Target probability that all units are busy."
    ),
    queue: QueueName = typer.Option(
        QueueName.none, "--queue", help="none: Erlang B; infinite: Erlang C."
    ),
    officers_per_unit: float = typer.Option(2.0, "--officers-per-unit"),
    as_json: JsonOption = False,
) -> None:
    """Minimum units per shift: all-busy target (Erlang B/C) and, on a pack, 3-minute coverage."""
    if (shifts is None) == (pack_name is None):
        raise OptionError("give either --shifts (a table) or --pack (a city pack)", field="pack")
    if shifts is not None:
        table = staffing_table(
            read_csv(shifts, ("shift",)), max_all_busy, queue.value, officers_per_unit
        )
    else:
        from citywatch.city import load_pack

        assert pack_name is not None
        city = load_pack(pack_name)
        loaded = city_incidents(incidents, database, city)
        for note in loaded.notes():
            err_console.print(f"Note: {note}", markup=False, highlight=False)
        with err_console.status("Planning posts and solving hypercube models per shift ..."):
            table = city_staffing(
                city,
                loaded.frame,
                parse_shifts(shift_hours),
                service_minutes,
                max_all_busy=max_all_busy,
                queue=queue.value,
                coverage_target=coverage,
                within_s=within,
                officers_per_unit=officers_per_unit,
            )
    if as_json:
        print_json(table.to_dict(orient="records"))
        return
    print_table(
        f"Minimum units per shift (P(all busy) <= {max_all_busy:g}, queue {queue.value})",
        list(table.columns),
        [
            [f"{v:.4f}" if isinstance(v, float | np.floating) else v for v in row]
            for row in table.itertuples(index=False)
        ],
    )


@app.command("posts")
def posts(
    pack_name: str = typer.Argument(..., help="City pack name or folder."),
    incidents: IncidentsOption = None,
    database: DbOption = None,
    demand_file: Path | None = typer.Option(
        None,
        "--demand",
        help="Instead of incidents: a risk surface (forecast predict --geojson or --csv; "
        "any CSV lon,lat[,weight]).",
    ),
    every_node: bool = typer.Option(
        False, "--every-node", help="Instead of incidents: demand 1 on every road node."
    ),
    spacing: float | None = typer.Option(
        None, "--post-spacing", help="Candidate posts on a grid of this many metres."
    ),
    shift: str | None = typer.Option(None, "--shift", help="Local hours START-END, e.g. 7-15."),
    cars: int = typer.Option(10, "--cars", help="Car units to post."),
    motorcycles: int = typer.Option(0, "--motorcycles", help="Motorcycle units to post."),
    radius: float = typer.Option(
        RESPONSE_TARGETS_S[0], "--radius", help="Response-time radius in seconds."
    ),
    busy_fraction: float | None = typer.Option(
        None, "--busy-fraction", help="Use MEXCLP with this busy fraction instead of MCLP."
    ),
    candidates: Path | None = typer.Option(
        None,
        "--candidates",
        help="CSV with node_id (allowed posts) and optional fixed 0/1 (posts that must stay).",
    ),
    keep_current: bool = typer.Option(
        False, "--keep-current", help="Current posts (stations) keep one car each."
    ),
    min_per_station: int = typer.Option(0, "--min-per-station"),
    max_per_station: int | None = typer.Option(None, "--max-per-station"),
    officers_per_unit: float = typer.Option(2.0, "--officers-per-unit"),
    time_limit: float | None = typer.Option(None, "--time-limit", help="Seconds for HiGHS."),
    geojson: Path | None = typer.Option(None, "--geojson", help="Write posts as GeoJSON."),
    png: Path | None = typer.Option(None, "--png", help="Write a map as PNG."),
    as_json: JsonOption = False,
) -> None:
    """Choose patrol posts on a city pack from a shift's incidents (exact MCLP / MEXCLP)."""
    from citywatch.city import load_pack
    from citywatch.plan.posts import (
        incident_demand,
        must_stay_nodes,
        plan_posts,
        road_node_demand,
        thinned_nodes,
    )
    from citywatch.routing import Router

    if demand_file is not None and (incidents is not None or shift is not None):
        raise OptionError("--demand replaces --incidents and --shift", field="demand")
    window = None if shift is None else parse_shifts(shift)[0]
    pack = load_pack(pack_name)
    if every_node and (demand_file is not None or incidents is not None or shift is not None):
        raise OptionError(
            "--every-node replaces --demand, --incidents and --shift", field="every_node"
        )
    allowed, fixed_nodes = None, None
    if candidates is not None:
        table = read_csv(candidates, ("node_id",))
        if "node_id" not in table.columns:
            raise DataError(f"{candidates}: missing column node_id")
        position = pd.Index(pack.network.nodes["node_id"].astype(str)).get_indexer(
            pd.Index(table["node_id"].astype(str))
        )
        if np.any(position < 0):
            unknown = table["node_id"][position < 0].head(5).tolist()
            raise DataError(f"{candidates}: unknown node ids {', '.join(map(str, unknown))}")
        allowed = position
        if "fixed" in table.columns:
            fixed_nodes = position[pd.to_numeric(table["fixed"], errors="coerce").fillna(0) == 1]
    if spacing is not None and allowed is not None:
        raise OptionError("--post-spacing replaces --candidates", field="post_spacing")
    units = {"car": cars, "motorcycle": motorcycles}
    # Options that cannot work fail here, before incidents are read and travel times computed.
    must_stay_nodes(pack, units, fixed_nodes=fixed_nodes, keep_current=keep_current)
    router = Router.from_pack(pack)
    if spacing is not None:
        allowed = thinned_nodes(pack, router, spacing)
    outside_city = 0
    if every_node:
        demand = road_node_demand(router)
    elif demand_file is not None:
        from citywatch.plan.risk import read_risk_surface

        demand = incident_demand(pack, read_risk_surface(demand_file).frame())
    else:
        loaded = city_incidents(incidents, database, pack)
        outside_city = sum(loaded.dropped.values())
        demand = incident_demand(pack, loaded.frame, window)
    with err_console.status("Computing travel times and solving ..."):
        plan = plan_posts(
            pack,
            demand,
            units,
            radius,
            router=router,
            candidates=allowed,
            fixed_nodes=fixed_nodes,
            keep_current=keep_current,
            min_per_station=min_per_station,
            max_per_station=max_per_station,
            busy_fraction=busy_fraction,
            officers_per_unit=officers_per_unit,
            time_limit=time_limit,
        )
    if geojson is not None:
        plan.write_geojson(geojson)
    if png is not None:
        plan.write_png(pack, png)
    if as_json:
        doc = plan.to_dict()
        doc["incidents"]["outside_city"] = outside_city
        print_json(doc)
        return
    print_table(
        f"Posts on {pack.name} ({plan.result.status}, gap {plan.result.gap:.2g})",
        ("unit", "node", "lon", "lat", "station"),
        [
            (r.mode, r.node_id, f"{r.lon:.5f}", f"{r.lat:.5f}", r.station)
            for r in plan.posts.itertuples(index=False)
        ],
    )
    console.print(f"Demand within {radius:.0f} s: {plan.covered_share:.1%}")
    console.print(
        f"Travel times and model data {plan.build_seconds:.1f} s, HiGHS {plan.result.seconds:.1f} s"
    )
    if plan.current_covered_share is not None:
        console.print(f"Current posts (stations): {plan.current_covered_share:.1%}")
    density = plan.density[(plan.density["units_before"] > 0) | (plan.density["units_after"] > 0)]
    print_table(
        "Units per km² by station (before -> after)",
        ("station", "km²", "units", "units/km²", "officers/km²"),
        [
            (
                r.station,
                f"{r.area_km2:.2f}",
                f"{r.units_before} -> {r.units_after}",
                f"{r.units_per_km2_before:.2f} -> {r.units_per_km2_after:.2f}",
                f"{r.officers_per_km2_before:.2f} -> {r.officers_per_km2_after:.2f}",
            )
            for r in density.itertuples(index=False)
        ],
    )
    d = plan.demand
    console.print(
        f"Incidents used {d.used}; left out: {outside_city} outside {pack.name}, "
        f"{d.off_network} off network, {d.no_location} without location, "
        f"{d.outside_shift} outside the shift"
    )
