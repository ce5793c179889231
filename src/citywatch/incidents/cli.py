"""``citywatch incidents``: import and export incidents."""

from __future__ import annotations

import typer

app = typer.Typer(help="Import and export incidents.", no_args_is_help=True)
