"""``citywatch city``: build and describe city packs."""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Annotated

import typer

from citywatch.city.build import build_from_spec, build_pack, osm_spec
from citywatch.city.bundled import BUNDLED, build_bundled, load_pack
from citywatch.city.geocode import geocoder_for
from citywatch.city.pack import LEVELS, PLACE_KINDS, jurisdiction_sort_key
from citywatch.city.places import import_places, read_place_file
from citywatch.city.spec import SOURCE_SYSTEMS
from citywatch.cli_options import JsonOption
from citywatch.console import console, print_json, print_table
from citywatch.errors import ValidationError
from citywatch.paths import packs_dir

app = typer.Typer(help="Build and describe city packs.", no_args_is_help=True)


def _peak_memory_mib() -> float:
    # ru_maxrss is in KiB on Linux: the peak resident memory of this process.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@app.command("build")
def build(
    spec: Annotated[
        str | None, typer.Argument(help="A build spec (TOML) or the name of a bundled pack.")
    ] = None,
    osm: Annotated[
        Path | None, typer.Option("--osm", help="Build from one OSM extract (.osm, .pbf).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Pack name (with --osm).")] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone of the city (with --osm).")
    ] = None,
    crs: Annotated[
        str | None, typer.Option(help="Metric CRS (with --osm; default: the UTM zone).")
    ] = None,
    boundary: Annotated[
        Path | None, typer.Option(help="GeoJSON city polygon (with --osm).")
    ] = None,
    stations: Annotated[
        Path | None,
        typer.Option(help="Stations, GeoJSON or CSV id,name,lon,lat (with --osm; default: OSM)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Pack folder to write.")] = None,
    json_: JsonOption = False,
) -> None:
    """Build a city pack from real source files (GraphML, OSM, CSV; GeoJSON; stations).

    Either a SPEC (TOML, full control) or --osm FILE --name NAME --timezone ZONE: roads, places
    and police stations all from one OpenStreetMap extract.
    """
    started = time.process_time()
    if osm is not None:
        if spec is not None:
            raise ValidationError("give either a SPEC or --osm, not both")
        if not name or not timezone:
            raise ValidationError("--osm needs --name and --timezone (e.g. Europe/Berlin)")
        doc = osm_spec(osm, name, timezone, crs=crs, boundary=boundary, stations=stations)
        folder = build_from_spec(doc, Path("/"), out or packs_dir() / name)
    elif spec is None:
        raise ValidationError("give a SPEC (TOML or bundled pack name) or --osm FILE")
    elif any(v is not None for v in (name, timezone, crs, boundary, stations)):
        raise ValidationError("--name, --timezone, --crs, --boundary, --stations need --osm")
    elif spec in BUNDLED:
        folder = build_bundled(spec, out or packs_dir() / spec)
    else:
        folder = build_pack(Path(spec), out or packs_dir() / Path(spec).stem)
    cost = {
        "build_cpu_s": round(time.process_time() - started, 2),
        "peak_memory_mib": round(_peak_memory_mib(), 1),
    }
    _show(str(folder), json_, cost)


@app.command("info")
def info(
    pack: Annotated[str, typer.Argument(help="Pack folder or bundled pack name.")],
    json_: JsonOption = False,
) -> None:
    """Nodes, directed edges, km of road, areas per jurisdiction, stations, bounding box."""
    _show(pack, json_)


@app.command("geocode")
def geocode(
    pack: Annotated[str, typer.Argument(help="Pack folder or bundled pack name.")],
    query: Annotated[
        str,
        typer.Argument(
            help='A street, cross streets ("1 Ave @ 110 St", "深南大道 / 金田路") or "lat, lon".'
        ),
    ],
    limit: Annotated[int, typer.Option(min=1, max=50, help="Most candidates.")] = 5,
    json_: JsonOption = False,
) -> None:
    """Locate an address over the pack's own street names (offline), best candidates first."""
    loaded = load_pack(pack)
    geocoder = geocoder_for(loaded.network)
    found = [c.as_dict() for c in geocoder.geocode(query, limit=limit)]
    for c in found:
        c["inside"] = loaded.contains(c["lon"], c["lat"])
    if json_:
        print_json({"pack": loaded.name, "has_names": geocoder.has_names, "candidates": found})
        return
    if not geocoder.has_names:
        console.print(f"[yellow]pack {loaded.name} has no street names: use coordinates[/]")
    rows = [
        (c["label"], c["kind"], f"{c['score']:.2f}", f"{c['lat']:.6f}", f"{c['lon']:.6f}")
        for c in found
    ]
    print_table(f"{query} in {loaded.name}", ["match", "kind", "score", "lat", "lon"], rows)


def _show(pack_name: str, json_: bool, cost: dict[str, float] | None = None) -> None:
    summary = load_pack(pack_name).info()
    if json_:
        print_json({**summary, **(cost or {})})
        return
    if cost:
        console.print(
            f"built in {cost['build_cpu_s']:.1f} s CPU, "
            f"peak memory {cost['peak_memory_mib']:,.0f} MiB"
        )
    synthetic = "  [bold red](stations SYNTHETIC)[/]" if summary["synthetic_stations"] else ""
    console.print(f"[bold]{summary['name']}[/] {summary['name_zh']}{synthetic}")
    console.print(
        f"{summary['nodes']:,} nodes, {summary['directed_edges']:,} directed edges, "
        f"{summary['road_km']:,.1f} km of road; "
        f"time zone {summary['timezone']}, CRS {summary['crs']}"
    )
    console.print(f"bounding box (lon/lat): {summary['bbox']}")
    rows = [
        (lvl, j["id"], j["name"], j["parent"] or "", f"{j['area_km2']:.2f}")
        for lvl in LEVELS
        for j in sorted(summary["jurisdictions"][lvl], key=lambda j: jurisdiction_sort_key(j["id"]))
        if lvl in ("city", "bureau", "station")
    ]
    print_table("Jurisdictions (zones: see --json)", ["level", "id", "name", "parent", "km²"], rows)
    zones = len(summary["jurisdictions"]["zone"])
    kinds = ", ".join(f"{n} {k}" for k, n in summary["place_kinds"].items())
    console.print(
        f"{zones} patrol zones; {len(summary['stations'])} stations; {summary['places']} places"
        + (f" ({kinds})" if kinds else "")
    )
    for credit in summary["credits"]:
        console.print(f"[dim]{credit}[/]")


places_app = typer.Typer(
    help="Places of a pack (markets, urban villages, ...).", no_args_is_help=True
)
app.add_typer(places_app, name="places")


@places_app.command("import")
def places_import(
    pack: Annotated[str, typer.Argument(help="Pack folder or bundled pack name.")],
    file: Annotated[Path, typer.Argument(help="GeoJSON (points/polygons) or CSV (lon, lat).")],
    kind: Annotated[
        str | None, typer.Option(help=f"Kind of every place: {', '.join(PLACE_KINDS)}.")
    ] = None,
    id_field: Annotated[str, typer.Option("--id-field", help="Id property/column.")] = "id",
    name_field: Annotated[str, typer.Option("--name-field", help="Name property/column.")] = "name",
    source_crs: Annotated[
        str, typer.Option(help=f"Coordinates of the file: {', '.join(SOURCE_SYSTEMS)}.")
    ] = "wgs84",
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Add places (e.g. urban villages 城中村, which OSM does not tag) to a built pack.

    A place whose id is already in the pack replaces it.  Rebuilding the pack drops imported
    places: to keep them, add a [[places]] table to the pack's build spec.
    """
    if source_crs not in SOURCE_SYSTEMS:
        raise ValidationError(f"--source-crs must be one of {', '.join(SOURCE_SYSTEMS)}")
    folder = load_pack(pack).path
    places = read_place_file(
        file,
        kind=kind,
        id_field=id_field,
        name_field=name_field,
        system=source_crs,
    )
    total = import_places(folder, places)
    result = {"pack": str(folder), "imported": len(places), "places": total}
    if json_:
        print_json(result)
    else:
        console.print(f"imported {len(places)} places into {folder}; it now holds {total}")
