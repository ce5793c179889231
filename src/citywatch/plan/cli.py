"""``citywatch plan``: coverage optimisation, hypercube queueing model, staffing."""

from __future__ import annotations

import typer

app = typer.Typer(help="Patrol deployment planning.", no_args_is_help=True)
