"""The ``citywatch`` command: one Typer application with a sub-command group per domain.

:func:`main` is the console script: a usage error is one line naming the option as typed
(exit 2), a :class:`~citywatch.errors.CityWatchError` is ``Error: message`` (exit 1, or 2 for an
:class:`~citywatch.errors.OptionError`); neither prints a traceback.
"""

from __future__ import annotations

import sys

import click
import typer
from typer._click import exceptions as typer_click  # the click copy the locked typer raises

from citywatch.analytics.cli import report_app, stats_app
from citywatch.api.cli import audit_app, serve, users_app
from citywatch.city.cli import app as city_app
from citywatch.cli_options import HomeOption
from citywatch.console import err_console
from citywatch.demo import demo
from citywatch.errors import CityWatchError, OptionError
from citywatch.incidents.cli import app as incidents_app
from citywatch.paths import set_home
from citywatch.plan.cli import app as plan_app
from citywatch.routing.cli import route
from citywatch.sim.cli import simulate_app

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
app.command("serve")(serve)
app.command("route")(route)
app.command("demo")(demo)


@app.callback()
def _root(home: HomeOption = None) -> None:
    """CityWatch: police patrol command and dispatch, planning and crime analytics."""
    if home is not None:
        set_home(home)


def _usage_line(exc: typer_click.UsageError | click.UsageError) -> str:
    """One line: the error (options named as typed) and where to find the command's help."""
    message = " ".join(exc.format_message().split())
    ctx = exc.ctx
    if ctx is not None and ctx.command.get_help_option(ctx) is not None:  # type: ignore[arg-type]
        message += f" (see '{ctx.command_path} {ctx.help_option_names[0]}')"
    return f"Error: {message}"


def main() -> None:
    """Entry point: run the CLI with one-line errors and no tracebacks (see the module doc)."""
    try:
        result = app(prog_name="citywatch", standalone_mode=False)
    except CityWatchError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        sys.exit(2 if isinstance(exc, OptionError) else 1)
    except (typer.Abort, click.Abort, KeyboardInterrupt):
        err_console.print("Aborted.")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer_click.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (typer_click.UsageError, click.UsageError) as exc:
        print(_usage_line(exc), file=sys.stderr)
        sys.exit(exc.exit_code)
    except (typer_click.ClickException, click.ClickException) as exc:
        print(f"Error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(result if isinstance(result, int) else 0)
