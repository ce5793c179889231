"""``citywatch city``: build and describe city packs."""

from __future__ import annotations

import typer

app = typer.Typer(help="Build and describe city packs.", no_args_is_help=True)
