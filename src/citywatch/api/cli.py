"""``citywatch serve``, ``citywatch users`` and ``citywatch audit``."""

from __future__ import annotations

import typer

users_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
audit_app = typer.Typer(help="Inspect and verify the audit trail.", no_args_is_help=True)


def serve() -> None:
    """Start the dispatch service."""
    raise typer.Exit(1)
