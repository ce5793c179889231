"""``citywatch simulate``: run and compare simulation scenarios."""

from __future__ import annotations

import typer

simulate_app = typer.Typer(help="Simulate a fleet and a dispatch policy.", no_args_is_help=True)
