"""``citywatch stats`` and ``citywatch report``: crime statistics and CompStat reports."""

from __future__ import annotations

import typer

stats_app = typer.Typer(help="Crime statistics (CompStat style).", no_args_is_help=True)
report_app = typer.Typer(help="Self-contained bilingual reports.", no_args_is_help=True)
