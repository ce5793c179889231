"""The ``citywatch`` command: one Typer application with a sub-command group per domain."""

from __future__ import annotations

import sys

import typer

from citywatch.analytics.cli import report_app, stats_app
from citywatch.api.cli import audit_app, serve, users_app
from citywatch.city.cli import app as city_app
from citywatch.console import err_console
from citywatch.demo import demo
from citywatch.errors import CityWatchError
from citywatch.incidents.cli import app as incidents_app
from citywatch.plan.cli import app as plan_app
from citywatch.pursuit.cli import app as pursuit_app
from citywatch.routing.cli import route
from citywatch.sim.cli import simulate_app
from citywatch.surveillance.cli import app as surveillance_app

app = typer.Typer(
    name="citywatch",
    help="CityWatch: police patrol command and dispatch, planning and crime analytics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(city_app, name="city")
app.add_typer(incidents_app, name="incidents")
app.add_typer(stats_app, name="stats")
app.add_typer(report_app, name="report")
app.add_typer(plan_app, name="plan")
app.add_typer(simulate_app, name="simulate")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(surveillance_app, name="surveillance")
app.add_typer(pursuit_app, name="pursuit")
app.command("serve")(serve)
app.command("route")(route)
app.command("demo")(demo)


def main() -> None:
    """Entry point: run the CLI, turning any :class:`CityWatchError` into ``Error: message``."""
    try:
        result = app(standalone_mode=False)
    except CityWatchError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        sys.exit(1)
    except typer.Abort:
        err_console.print("Aborted.")
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(result if isinstance(result, int) else 0)
