"""``citywatch pursuit``: reachable area, hiding areas and the interception plan of a flight."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from citywatch.city import CityPack, load_pack
from citywatch.cli_options import DbOption
from citywatch.console import print_json, print_table
from citywatch.errors import OptionError, ValidationError, writes_to
from citywatch.pursuit.analysis import Flight, camera_points, hiding_report, plan_report
from citywatch.pursuit.maps import write_pursuit_png
from citywatch.pursuit.reach import HORIZONS_MIN, Incident, reachable, segment_sets
from citywatch.pursuit.units import read_units_csv, sighting_from_db, units_from_db
from citywatch.routing import Router
from citywatch.routing.speeds import parse_mode
from citywatch.surveillance.registry import read_sensors

__all__ = ["app"]

app = typer.Typer(
    help="Pursuit: reachable area, hiding areas, interception plan.", no_args_is_help=True
)

Pack = Annotated[str, typer.Argument(help="City pack (name or folder).")]
At = Annotated[str, typer.Option("--at", help="Incident (or last sighting) position LON,LAT.")]
Time = Annotated[str, typer.Option("--time", help="Incident time, ISO 8601 with offset.")]
ModeOpt = Annotated[
    str, typer.Option("--mode", help="Offender mode: foot, bicycle, motorcycle, car.")
]
Heading = Annotated[
    float | None,
    typer.Option(
        "--heading",
        help="Direction first seen at --at (deg clockwise from north; with a sighting use "
        "--sighting-heading).",
    ),
]
Sighting = Annotated[
    str | None,
    typer.Option("--sighting", help="Later sighting LON,LAT,ISO: moves origin and time."),
]
SightingId = Annotated[
    int | None,
    typer.Option(
        "--sighting-id",
        help="A stored sighting of the service's database (--db): moves origin and time.",
    ),
]
SightingHeading = Annotated[
    float | None,
    typer.Option(
        "--sighting-heading", help="Direction the offender was seen taking at the sighting (deg)."
    ),
]
Routes = Annotated[int, typer.Option("--routes", help="Simulated routes.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Cameras = Annotated[
    Path | None,
    typer.Option(
        "--cameras",
        help="Sensor file: destinations a working camera sees at the hour weigh less.",
    ),
]
GeoJson = Annotated[Path | None, typer.Option("--geojson", help="Write a GeoJSON file.")]
Png = Annotated[
    Path | None, typer.Option("--png", help="Write a PNG map (rings, hiding areas, plan).")
]


def _lonlat(text: str, what: str) -> tuple[float, float]:
    try:
        lon, lat = (float(v) for v in text.split(","))
    except ValueError:
        raise ValidationError(f"{what} must be LON,LAT, got {text!r}") from None
    return lon, lat


def _time(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"--time must be ISO 8601, got {text!r}") from None
    if at.tzinfo is None:
        raise ValidationError("--time needs a UTC offset, e.g. 2026-12-01T21:30:00-05:00")
    return at


def _incident(
    at: str,
    time: str,
    mode: str,
    heading: float | None,
    sighting: str | None,
    *,
    sighting_id: int | None = None,
    sighting_heading: float | None = None,
    db: str | None = None,
    pack: str = "",
) -> Incident:
    """The incident, moved to its later sighting when one is given (by hand or stored)."""
    lon, lat = _lonlat(at, "--at")
    inc = Incident(lon, lat, _time(time), parse_mode(mode), heading)
    if sighting is not None and sighting_id is not None:
        raise OptionError("give one of --sighting or --sighting-id", field="sighting")
    if sighting is None and sighting_id is None:
        if sighting_heading is not None:
            raise OptionError("--sighting-heading needs --sighting or --sighting-id")
        return inc
    if heading is not None:
        raise OptionError(
            "--heading is the direction first seen at --at; with a sighting give "
            "--sighting-heading",
            field="heading",
        )
    if sighting is not None:
        parts = sighting.split(",", 2)
        if len(parts) != 3:
            raise ValidationError("--sighting must be LON,LAT,ISO")
        s_lon, s_lat = _lonlat(",".join(parts[:2]), "--sighting")
        s_at = _time(parts[2])
    else:
        assert sighting_id is not None
        fix = sighting_from_db(db, pack, sighting_id)
        s_lon, s_lat, s_at = fix.lon, fix.lat, fix.seen_at
    return inc.sighted(s_lon, s_lat, s_at, sighting_heading)


def _flight(city: CityPack, inc: Incident, routes: int, seed: int, cameras: Path | None) -> Flight:
    covered = None
    if cameras is not None:
        covered = camera_points(city, read_sensors(cameras).sensors, inc.at)
    return Flight.simulate(city, inc, n_routes=routes, seed=seed, covered_xy=covered)


def _write(path: Path | None, doc: dict[str, Any]) -> None:
    if path is not None:
        with writes_to(path):
            path.write_text(json.dumps(doc), encoding="utf-8")


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    with writes_to(path), path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


@app.command("reach")
def reach_command(
    pack: Pack,
    at: At,
    time: Time,
    mode: ModeOpt = "motorcycle",
    heading: Heading = None,
    sighting: Sighting = None,
    sighting_id: SightingId = None,
    sighting_heading: SightingHeading = None,
    db: DbOption = None,
    geojson: GeoJson = None,
    segments: Annotated[
        Path | None,
        typer.Option(
            "--segments", help="Write the segment sets as CSV (minutes,edge,u,v,reached)."
        ),
    ] = None,
    json_: Json = False,
) -> None:
    """Streets reachable within 1, 3, 5, 10 minutes: isochrone polygons and segment sets."""
    city = load_pack(pack)
    inc = _incident(
        at, time, mode, heading, sighting, sighting_id=sighting_id,
        sighting_heading=sighting_heading, db=db, pack=city.name,
    )  # fmt: skip
    router = Router.from_pack(city)
    result = reachable(router, inc, HORIZONS_MIN)
    rows = segment_sets(router, result)
    _write(geojson, result.to_geojson())
    if segments is not None:
        _write_csv(segments, rows, ["minutes", "edge", "u", "v", "reached"])
    if json_:
        print_json(
            {
                "origin": [inc.lon, inc.lat],
                "at": inc.at.isoformat(),
                "mode": inc.mode,
                "heading_deg": inc.heading_deg,
                "rings": result.summary(),
                "segment_sets": [
                    {
                        "minutes": r.minutes,
                        "edges": [x["edge"] for x in rows if x["minutes"] == r.minutes],
                        "reached": [x["reached"] for x in rows if x["minutes"] == r.minutes],
                    }
                    for r in result.rings
                ],
                "geojson": result.to_geojson(),
            }
        )
        return
    print_table(
        f"Reachable by {inc.mode} from {inc.lon:.5f},{inc.lat:.5f}",
        ["minutes", "segments", "street km"],
        [[r["minutes"], r["segments"], r["street_km"]] for r in result.summary()],
    )


@app.command("hide")
def hide_command(
    pack: Pack,
    at: At,
    time: Time,
    mode: ModeOpt = "motorcycle",
    heading: Heading = None,
    sighting: Sighting = None,
    sighting_id: SightingId = None,
    sighting_heading: SightingHeading = None,
    db: DbOption = None,
    routes: Routes = 2000,
    seed: Seed = 0,
    cameras: Cameras = None,
    top: Annotated[int, typer.Option("--top", help="Places and blocks to list.")] = 20,
    geojson: GeoJson = None,
    png: Png = None,
    json_: Json = False,
) -> None:
    """Places and blocks ranked by the probability that flight routes end there."""
    if top <= 0:
        raise ValidationError("--top must be positive", field="top")
    city = load_pack(pack)
    inc = _incident(
        at, time, mode, heading, sighting, sighting_id=sighting_id,
        sighting_heading=sighting_heading, db=db, pack=city.name,
    )  # fmt: skip
    flight = _flight(city, inc, routes, seed, cameras)
    rep = hiding_report(flight, cameras=cameras is not None, top=top)
    _write(geojson, rep["geojson"])
    if png is not None:
        write_pursuit_png(
            png,
            flight.pack,
            (inc.lon, inc.lat),
            reach=reachable(flight.router, inc, HORIZONS_MIN),
            hiding=[*rep["places"], *rep["blocks"]],
            title=f"{flight.pack.name}: hiding areas, offender on {inc.mode}",
        )
    rows = [
        {k: v for k, v in r.items() if k != "geometry"} for r in [*rep["places"], *rep["blocks"]]
    ]
    if json_:
        print_json({"assumptions": rep["assumptions"], "ranking": rows})
        return
    print_table(
        "Hiding areas (share of simulated routes)",
        ["id", "kind", "name", "p_end", "p_pass"],
        [[r["id"], r["kind"], r["name"], r["p_end"], r["p_pass"]] for r in rows],
    )


@app.command("plan")
def plan_command(
    pack: Pack,
    at: At,
    time: Time,
    mode: ModeOpt = "motorcycle",
    units: Annotated[Path | None, typer.Option("--units", help="CSV id,type,lon,lat.")] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="The service's database: its available units (unless --units), the store of "
            "--sighting-id.",
        ),
    ] = None,
    k: Annotated[int, typer.Option("-k", help="Checkpoints.")] = 6,
    heading: Heading = None,
    sighting: Sighting = None,
    sighting_id: SightingId = None,
    sighting_heading: SightingHeading = None,
    routes: Routes = 2000,
    seed: Seed = 0,
    cameras: Cameras = None,
    delay: Annotated[float, typer.Option("--delay", help="Seconds before units move.")] = 60.0,
    geojson: GeoJson = None,
    png: Png = None,
    json_: Json = False,
) -> None:
    """Interception plan: K checkpoints and their units, against the naive plan."""
    if units is None and db is None:
        raise OptionError("give --units FILE or --db URL", field="units")
    if units is not None and db is not None and sighting_id is None:
        raise OptionError(
            "give exactly one of --units FILE or --db URL (both only with --sighting-id)",
            field="units",
        )
    if k <= 0 or routes <= 0 or delay < 0:
        raise ValidationError("-k and --routes must be positive and --delay >= 0")
    city = load_pack(pack)
    inc = _incident(
        at, time, mode, heading, sighting, sighting_id=sighting_id,
        sighting_heading=sighting_heading, db=db, pack=city.name,
    )  # fmt: skip
    fleet = read_units_csv(units) if units is not None else units_from_db(db)
    flight = _flight(city, inc, routes, seed, cameras)
    rep = plan_report(flight, fleet, k, delay_s=delay)
    if png is not None:
        write_pursuit_png(
            png,
            flight.pack,
            (inc.lon, inc.lat),
            reach=reachable(flight.router, inc, HORIZONS_MIN),
            hiding=hiding_report(flight, top=10)["places"][:10],
            checkpoints=rep["checkpoints"],
            units=fleet,
            title=f"{flight.pack.name}: checkpoint plan (k={k}), offender on {inc.mode}, "
            f"{rep['out_of_sample']['share']:.0%} of fresh routes intercepted",
        )
    _write(
        geojson,
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [c["lon"], c["lat"]]},
                    "properties": {k2: v for k2, v in c.items() if k2 not in ("lon", "lat")},
                }
                for c in rep["checkpoints"]
            ],
        },
    )
    if json_:
        print_json(rep)
        return
    print_table(
        f"Interception plan ({rep['method']}, k={k})",
        ["unit", "type", "node", "lon", "lat", "eta s"],
        [
            [
                c["unit"],
                c["unit_type"],
                c["node"],
                round(c["lon"], 5),
                round(c["lat"], 5),
                c["eta_s"],
            ]
            for c in rep["checkpoints"]
        ],
    )
    oos, naive = rep["out_of_sample"], rep["naive"]
    print_table(
        "Share of flight routes intercepted",
        ["plan", "share", "95% CI"],
        [
            ["plan (in sample)", rep["in_sample"]["share"], ""],
            ["plan (fresh routes)", oos["share"], f"{oos['ci_low']:.3f}-{oos['ci_high']:.3f}"],
            [
                "naive (nearest to incident)",
                naive["share"],
                f"{naive['ci_low']:.3f}-{naive['ci_high']:.3f}",
            ],
        ],
    )
