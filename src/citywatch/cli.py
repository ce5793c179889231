"""The ``citywatch`` command: one Typer application with a sub-command group per domain.

:func:`main` is the console script: a usage error is one line naming the option as typed
(exit 2), a :class:`~citywatch.errors.CityWatchError` is ``Error: message`` (exit 1, or 2 for an
:class:`~citywatch.errors.OptionError`); neither prints a traceback.
"""

from __future__ import annotations

import sys
from difflib import get_close_matches
from importlib import import_module
from typing import Any

import click
import typer
from typer._click import exceptions as typer_click  # the click copy the locked typer raises
from typer.core import TyperGroup

from citywatch.cli_options import HomeOption
from citywatch.console import err_console
from citywatch.errors import CityWatchError, OptionError
from citywatch.paths import set_home

#: Each command and group, and where it lives.  A room is imported only when its command runs
#: (or for ``--help``), so that a usage error or a busy port is reported at once, not after
#: importing pandas, SciPy, FastAPI and every room.
COMMANDS: dict[str, str] = {
    "city": "citywatch.city.cli:app",
    "incidents": "citywatch.incidents.cli:app",
    "stats": "citywatch.analytics.cli:stats_app",
    "report": "citywatch.analytics.cli:report_app",
    "plan": "citywatch.plan.cli:app",
    "simulate": "citywatch.sim.cli:simulate_app",
    "users": "citywatch.api.cli:users_app",
    "audit": "citywatch.api.cli:audit_app",
    "serve": "citywatch.api.cli:serve",
    "route": "citywatch.routing.cli:route",
    "demo": "citywatch.demo:demo",
    "surveillance": "citywatch.surveillance.cli:app",
    "ebikes": "citywatch.surveillance.ebike_cli:app",
    "sightings": "citywatch.surveillance.sightings_cli:app",
    "forecast": "citywatch.forecast.cli:app",
    "pursuit": "citywatch.pursuit.cli:app",
}


def _load(name: str, where: str) -> Any:
    """The click command of a Typer sub-application or command function."""
    module, attribute = where.split(":")
    target = getattr(import_module(module), attribute)
    holder = typer.Typer()
    if isinstance(target, typer.Typer):
        # Through a parent, as add_typer does: a one-command group stays a group.
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
        holder.callback()(lambda: None)  # a group, so that the command keeps its name
    return typer.main.get_command(holder).commands[name]  # type: ignore[attr-defined]


class _LazyGroup(TyperGroup):
    """The root group: commands of :data:`COMMANDS` are loaded on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands[cmd_name] = _load(cmd_name, COMMANDS[cmd_name])
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        # TyperGroup suggests from the loaded commands only; these are not loaded yet.
        known = self.list_commands(ctx)
        if args and args[0] not in known and not args[0].startswith("-"):
            close = get_close_matches(args[0], known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            ctx.fail(f"No such command {args[0]!r}.{hint}")
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="citywatch",
    cls=_LazyGroup,
    help="CityWatch: police patrol command and dispatch, planning and crime analytics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


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
