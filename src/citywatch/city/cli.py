"""``citywatch city``: build and describe city packs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from citywatch.city.build import build_pack
from citywatch.city.bundled import BUNDLED, build_bundled, load_pack
from citywatch.city.pack import LEVELS, jurisdiction_sort_key
from citywatch.cli_options import JsonOption
from citywatch.console import console, print_json, print_table
from citywatch.paths import packs_dir

app = typer.Typer(help="Build and describe city packs.", no_args_is_help=True)


@app.command("build")
def build(
    spec: Annotated[str, typer.Argument(help="A build spec (TOML) or the name of a bundled pack.")],
    out: Annotated[Path | None, typer.Option(help="Pack folder to write.")] = None,
    json_: JsonOption = False,
) -> None:
    """Build a city pack from real source files (GraphML, OSM, CSV; GeoJSON; stations)."""
    if spec in BUNDLED:
        folder = build_bundled(spec, out or packs_dir() / spec)
    else:
        folder = build_pack(Path(spec), out or packs_dir() / Path(spec).stem)
    _show(str(folder), json_)


@app.command("info")
def info(
    pack: Annotated[str, typer.Argument(help="Pack folder or bundled pack name.")],
    json_: JsonOption = False,
) -> None:
    """Nodes, directed edges, km of road, areas per jurisdiction, stations, bounding box."""
    _show(pack, json_)


def _show(pack_name: str, json_: bool) -> None:
    summary = load_pack(pack_name).info()
    if json_:
        print_json(summary)
        return
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
    console.print(
        f"{zones} patrol zones; {len(summary['stations'])} stations; {summary['places']} places"
    )
    for credit in summary["credits"]:
        console.print(f"[dim]{credit}[/]")
