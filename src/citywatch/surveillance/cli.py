"""``citywatch surveillance``: the sensor registry, coverage, blind spots and placement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from citywatch.city import CityPack
from citywatch.console import console, err_console, print_json, print_table, progress
from citywatch.errors import NotFoundError, ValidationError
from citywatch.surveillance.coverage import NIGHT_HOURS, CameraCoverage
from citywatch.surveillance.registry import FORMATS, read_sensors, snap_sensors, write_sensors
from citywatch.surveillance.sensors import HOURS, PowerSchedule, Sensor

__all__ = ["app"]

app = typer.Typer(help="Video surveillance: sensors, coverage, blind spots.", no_args_is_help=True)
sensors_app = typer.Typer(help="The sensor registry (database).", no_args_is_help=True)
app.add_typer(sensors_app, name="sensors")

Pack = Annotated[str, typer.Argument(help="City pack (name or folder).")]
Cameras = Annotated[
    Path, typer.Option("--cameras", help="Sensor file: registry CSV/GeoJSON or a camera list.")
]
Format = Annotated[str, typer.Option("--format", help=f"File format: {', '.join(FORMATS)}.")]
Db = Annotated[str | None, typer.Option("--db", help="Database URL (default: embedded SQLite).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
PowerOff = Annotated[
    list[str],
    typer.Option(
        "--power-off",
        help="OWNER_OR_ID=HH:MM-HH:MM: no power in that window (e.g. market=23:00-06:00).",
    ),
]
Outage = Annotated[list[str], typer.Option("--outage", help="Sensor id out of order all day.")]
Incidents = Annotated[
    Path | None, typer.Option("--incidents", help="Incident file (see --source).")
]
Source = Annotated[
    str, typer.Option("--source", help="Incident file source: canonical, nypd_shootings, ...")
]
Category = Annotated[
    list[str], typer.Option("-c", "--category", help="Incident category or group (repeatable).")
]
Hours = Annotated[
    str | None, typer.Option("--hours", help="Local hours: 22-6 (wrapping, end excluded) or 1,2,3.")
]
Level = Annotated[str, typer.Option("--level", help="Jurisdiction level: bureau, station, zone.")]


def parse_hours(text: str | None, default: Sequence[int] | None = None) -> list[int] | None:
    """``"22-6"`` -> 22, 23, 0..5; ``"1,2"`` -> 1, 2; None -> ``default``."""
    if text is None:
        return None if default is None else list(default)
    try:
        if "-" in text:
            start, end = (int(v) for v in text.split("-", 1))
            if not (0 <= start < HOURS and 0 <= end <= HOURS) or start == end:
                raise ValueError
            return [h % HOURS for h in range(start, end if end > start else end + HOURS)]
        hours = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValidationError(f"bad --hours {text!r}: use 22-6 or 1,2,3", field="hours") from None
    if any(not 0 <= h < HOURS for h in hours):
        raise ValidationError("hours must be 0..23", field="hours")
    return hours


def apply_power_off(sensors: list[Sensor], rules: Sequence[str]) -> list[Sensor]:
    """Give sensors (by id, or all of an owner) a power schedule from ``OWNER_OR_ID=WINDOWS``."""
    out = list(sensors)
    for rule in rules:
        target, sep, windows = rule.partition("=")
        if not sep:
            raise ValidationError(f"bad --power-off {rule!r}: use OWNER_OR_ID=HH:MM-HH:MM")
        schedule = PowerSchedule.parse(windows)
        hits = [i for i, s in enumerate(out) if target in (s.id, s.owner.value)]
        if not hits:
            raise NotFoundError(f"--power-off {rule!r}: no sensor or owner {target!r}")
        for i in hits:
            out[i] = replace(out[i], power=schedule)
    return out


def load_cameras(path: Path, fmt: str, power_off: Sequence[str]) -> list[Sensor]:
    """Read a sensor file for an analysis command, reporting refused rows on stderr."""
    if not path.is_file():
        raise NotFoundError(f"file not found: {path}")
    result = read_sensors(path, fmt)
    if result.rejected:
        line, reason = result.rejected[0]
        err_console.print(
            f"{len(result.rejected)} row(s) of {path} refused (first: line {line}: {reason})"
        )
    return apply_power_off(result.sensors, power_off)


def load_incidents(
    pack: CityPack, path: Path | None, source: str, db: str | None, categories: Sequence[str]
) -> pd.DataFrame | None:
    """Incidents in the pack's city area, from a file of a supported source or the database,
    of the given categories or groups (all without)."""
    from citywatch.incidents.load import load_incidents as read_incidents

    if path is None and db is None:
        return None
    loaded = read_incidents(
        db,
        files=[] if path is None else [(path, source)],
        database=path is None,
        categories=categories or None,
        pack=pack,
    )
    return loaded.frame.reset_index(drop=True)


def _build(pack_name: str, sensors: list[Sensor]) -> CameraCoverage:
    from citywatch.city import load_pack

    with progress() as bar:
        bar.add_task("Placing cameras and computing their views", total=None)
        pack = load_pack(pack_name)
        cov = CameraCoverage.build(pack, sensors)
    if cov.refused:
        err_console.print(f"{len(cov.refused)} sensor(s) not placed (first: {cov.refused[0][1]})")
    return cov


def _header(cov: CameraCoverage, read: int) -> dict[str, Any]:
    return {
        "pack": cov.pack.name,
        "sensors_read": read,
        "cameras_placed": len(cov.sensors),
        "cameras_refused": len(cov.refused),
    }


@app.command("coverage")
def coverage_command(
    pack: Pack,
    cameras: Cameras,
    fmt: Format = "auto",
    power_off: PowerOff = [],  # noqa: B006 - typer reads the default
    outage: Outage = [],  # noqa: B006
    cut_hours: Annotated[
        str | None,
        typer.Option("--cut-hours", help="Local hours of a mains power cut: 22-6 or 1,2,3."),
    ] = None,
    incidents: Incidents = None,
    source: Source = "canonical",
    category: Category = [],  # noqa: B006
    db: Db = None,
    level: Level = "station",
    as_json: Json = False,
) -> None:
    """Share of street length in view of a working camera, by local hour and jurisdiction;
    with incidents, the share of them in view at their hour.  During ``--cut-hours`` only
    cameras with backup power work."""
    sensors = load_cameras(cameras, fmt, power_off)
    cov = _build(pack, sensors)
    working = cov.working(outage, parse_hours(cut_hours) or [])
    hourly = cov.coverage_by_hour(working, level)
    doc = {**_header(cov, len(sensors)), **hourly.to_dict()}
    frame = load_incidents(cov.pack, incidents, source, db, category)
    if frame is not None:
        doc["incidents"] = cov.incident_coverage(frame, working).to_dict()
    if as_json:
        print_json(doc)
        return
    console.print(
        f"{doc['cameras_placed']} cameras placed on {doc['total_km']:.1f} km of street "
        f"({doc['cameras_refused']} refused)"
    )
    print_table(
        "Street length in view by local hour",
        ["hour", "km", "share"],
        [
            (h, f"{km:.2f}", f"{100 * s:.2f} %")
            for h, (km, s) in enumerate(
                zip(doc["covered_km_by_hour"], doc["share_by_hour"], strict=True)
            )
        ],
    )
    if "incidents" in doc:
        inc = doc["incidents"]
        console.print(
            f"Incidents in view at their hour: {inc['seen']} of {inc['incidents']} "
            f"({100 * inc['share']:.1f} %), {inc['off_network']} off the street network"
        )


@app.command("blind-spots")
def blind_spots_command(
    pack: Pack,
    cameras: Cameras,
    fmt: Format = "auto",
    power_off: PowerOff = [],  # noqa: B006
    outage: Outage = [],  # noqa: B006
    hours: Hours = None,
    incidents: Incidents = None,
    source: Source = "canonical",
    category: Category = [],  # noqa: B006
    db: Db = None,
    night: Annotated[
        bool, typer.Option("--night", help="Night view: what the night's power loss takes away.")
    ] = False,
    power_cut: Annotated[
        bool, typer.Option("--power-cut", help="With --night: mains cut all night.")
    ] = False,
    backup: Annotated[
        list[str], typer.Option("--backup", help="Sensor id with backup power.")
    ] = [],  # noqa: B006
    top: Annotated[int, typer.Option("--top", help="Rows to print.")] = 20,
    geojson: Annotated[Path | None, typer.Option("--geojson", help="Write the segments.")] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Write a PNG map.")] = None,
    level: Level = "station",
    as_json: Json = False,
) -> None:
    """Street segments no working camera sees, ranked by the incidents nobody saw there; or,
    with ``--night``, what the night (or a power cut) takes away."""
    from citywatch.surveillance.blindspots import blind_spots, night_view
    from citywatch.surveillance.maps import segments_geojson, write_geojson, write_png

    if top < 1:
        raise ValidationError("--top must be at least 1", field="top")
    sensors = load_cameras(cameras, fmt, power_off)
    cov = _build(pack, sensors)
    frame = load_incidents(cov.pack, incidents, source, db, category)
    if night:
        hour_list = parse_hours(hours, NIGHT_HOURS) or list(NIGHT_HOURS)
        table = night_view(
            cov, hours=hour_list, power_cut=power_cut, outages=outage, backup=backup, level=level
        )
        table = table[table["lost_m"] > 1e-9].sort_values("lost_m", ascending=False)
        label, key = "lost at night", "lost_m"
    else:
        hour_list = parse_hours(hours) or list(range(HOURS))
        working = cov.working(outage)
        table = blind_spots(cov, frame, hours=hour_list, working=working, level=level)
        label, key = "blind spots", "uncovered_m"
    if geojson is not None:
        write_geojson(segments_geojson(cov, table), geojson)
    if png is not None:
        write_png(cov, png, highlight=table.head(max(top, 200)), highlight_label=label)
    doc = {
        **_header(cov, len(sensors)),
        "view": "night" if night else "blind_spots",
        "hours": hour_list,
        "segments": len(table),
        f"total_{key}": float(table[key].sum()),
        "top": table.head(top).to_dict(orient="records"),
    }
    if as_json:
        print_json(doc)
        return
    console.print(f"{len(table)} segments, {doc[f'total_{key}'] / 1000:.2f} km {label}")
    columns = [c for c in table.columns if c not in ("lon", "lat")]
    print_table(label, columns, table.head(top)[columns].itertuples(index=False))


@app.command("place")
def place_command(
    pack: Pack,
    cameras: Cameras,
    new: Annotated[int | None, typer.Option("--new", help="New cameras to place.")] = None,
    backup_budget: Annotated[
        int | None, typer.Option("--backup-budget", help="Cameras that may get backup power.")
    ] = None,
    min_degree: Annotated[
        int,
        typer.Option("--min-degree", help="With --new: candidate nodes join this many streets."),
    ] = 3,
    fmt: Format = "auto",
    power_off: PowerOff = [],  # noqa: B006
    outage: Outage = [],  # noqa: B006
    hours: Hours = None,
    power_cut: Annotated[
        bool, typer.Option("--power-cut", help="With --backup-budget: mains cut all night.")
    ] = False,
    incidents: Incidents = None,
    source: Source = "canonical",
    category: Category = [],  # noqa: B006
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Exact placement with HiGHS: ``--new K`` camera sites at intersections (nodes joining
    ``--min-degree`` streets), or which cameras get backup power (``--backup-budget B``) to
    keep the night covered."""
    from citywatch.surveillance.placement import (
        candidate_intersections,
        choose_backup,
        place_cameras,
    )

    if (new is None) == (backup_budget is None):
        raise ValidationError("give exactly one of --new and --backup-budget", field="new")
    sensors = load_cameras(cameras, fmt, power_off)
    cov = _build(pack, sensors)
    frame = load_incidents(cov.pack, incidents, source, db, category)
    with progress() as bar:
        bar.add_task("Solving with HiGHS", total=None)
        if new is not None:
            result = place_cameras(
                cov,
                new,
                candidates=candidate_intersections(cov, min_degree),
                incidents=frame,
                hours=parse_hours(hours),
                working=cov.working(outage),
            )
        else:
            result = choose_backup(
                cov,
                int(backup_budget or 0),
                hours=parse_hours(hours, NIGHT_HOURS) or list(NIGHT_HOURS),
                power_cut=power_cut,
                outages=outage,
                incidents=frame,
            )
    doc = {**_header(cov, len(sensors)), **result.to_dict()}
    if as_json:
        print_json(doc)
        return
    console.print(
        f"{result.problem}: weighted coverage {100 * doc['share_before']:.2f} % -> "
        f"{100 * doc['share_after']:.2f} % ({doc['status']}, {doc['seconds']:.1f} s)"
    )
    columns = list(result.chosen[0]) if result.chosen else ["id"]
    print_table("Chosen", columns, [[c[k] for k in columns] for c in result.chosen])


# ----------------------------------------------------------------------------- registry
@sensors_app.command("import")
def sensors_import(
    file: Annotated[Path, typer.Argument(help="Sensor file.")],
    pack: Annotated[str, typer.Option("--pack", help="City pack the sensors belong to.")],
    fmt: Format = "auto",
    power_off: PowerOff = [],  # noqa: B006
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Import sensors into the registry: snapped to the pack's streets, jurisdictions filled,
    audited.  Every row is accounted for."""
    from citywatch.city import load_pack
    from citywatch.store.db import make_engine, session_scope, upgrade
    from citywatch.surveillance.store import save_sensors

    if not file.is_file():
        raise NotFoundError(f"file not found: {file}")
    result = read_sensors(file, fmt)
    sensors = apply_power_off(result.sensors, power_off)
    city = load_pack(pack)
    placed = snap_sensors(sensors, city)
    engine = make_engine(db)
    upgrade(engine)
    with session_scope(engine) as session:
        created, updated = save_sensors(session, city.name, placed.sensors, actor="cli")
    doc: dict[str, Any] = {
        "pack": city.name,
        "format": result.format,
        "rows": result.rows,
        "created": created,
        "updated": updated,
        "unchanged": len(placed.sensors) - created - updated,
        "rejected": [{"line": line, "reason": r} for line, r in result.rejected],
        "not_placed": [{"id": i, "reason": r} for i, r in placed.refused],
    }
    if as_json:
        print_json(doc)
        return
    console.print(
        f"{doc['rows']} rows: {created} created, {updated} updated, {doc['unchanged']} unchanged, "
        f"{len(doc['rejected'])} rejected, {len(doc['not_placed'])} not placed on {city.name}"
    )


def _stored(pack: str, db: str | None, station: str | None) -> tuple[str, list[Sensor]]:
    from citywatch.city import load_pack
    from citywatch.store.db import make_engine, session_scope, upgrade
    from citywatch.surveillance.store import load_sensors

    name = load_pack(pack).name
    engine = make_engine(db)
    upgrade(engine)
    with session_scope(engine) as session:
        return name, load_sensors(session, name, station=station)


@sensors_app.command("export")
def sensors_export(
    pack: Annotated[str, typer.Option("--pack", help="City pack.")],
    out: Annotated[Path, typer.Option("--out", help="Output .csv, .geojson or .json.")],
    station: Annotated[str | None, typer.Option("--station", help="Only this station.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Export the registry of a pack as CSV or GeoJSON (reads back with ``import``)."""
    name, sensors = _stored(pack, db, station)
    write_sensors(sensors, out)
    if as_json:
        print_json({"pack": name, "sensors": len(sensors), "path": str(out)})
    else:
        console.print(f"{len(sensors)} sensors of {name} written to {out}")


@sensors_app.command("list")
def sensors_list(
    pack: Annotated[str, typer.Option("--pack", help="City pack.")],
    station: Annotated[str | None, typer.Option("--station", help="Only this station.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """List the registry of a pack."""
    name, sensors = _stored(pack, db, station)
    if as_json:
        print_json([s.to_dict() for s in sensors])
        return
    print_table(
        f"Sensors of {name}",
        ["id", "kind", "owner", "status", "power off", "station", "name"],
        [
            (s.id, s.kind.value, s.owner.value, s.status.value, str(s.power), s.station, s.name)
            for s in sensors
        ],
    )
