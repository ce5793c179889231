"""``citywatch route``: travel time and path between two points."""

from __future__ import annotations

from typing import Annotated

import typer

from citywatch.city import load_pack
from citywatch.cli_options import JsonOption
from citywatch.console import console, print_json
from citywatch.errors import ValidationError
from citywatch.routing.router import Router
from citywatch.routing.speeds import MODES, parse_mode


def parse_lonlat(text: str) -> tuple[float, float]:
    """Parse ``"LON,LAT"`` into a pair of floats."""
    try:
        lon, lat = (float(x) for x in text.split(","))
    except ValueError as exc:
        raise ValidationError(f"expected LON,LAT, got {text!r}") from exc
    return lon, lat


def route(
    pack: Annotated[str, typer.Argument(help="Pack folder or bundled pack name.")],
    from_: Annotated[str, typer.Option("--from", help="Origin as LON,LAT (WGS-84).")],
    to: Annotated[str, typer.Option("--to", help="Destination as LON,LAT (WGS-84).")],
    mode: Annotated[str, typer.Option(help=f"Travel mode: {', '.join(MODES)}.")] = "car",
    json_: JsonOption = False,
) -> None:
    """Travel time, road distance and path between two points."""
    router = Router.from_pack(load_pack(pack))
    result = router.route(parse_lonlat(from_), parse_lonlat(to), parse_mode(mode))
    if json_:
        print_json(
            {
                "mode": mode,
                "seconds": result.seconds,
                "metres": result.metres,
                "snap_distance_m": list(result.snap_distance_m),
                "path": [list(c) for c in result.coords],
            }
        )
        return
    minutes, seconds = divmod(result.seconds, 60)
    console.print(
        f"{mode}: {int(minutes)} min {seconds:.0f} s, {result.metres:,.0f} m "
        f"({len(result.coords)} points on the path)"
    )
