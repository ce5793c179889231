"""The command-line options every ``citywatch`` command group shares, spelled once.

Use them as parameter annotations in any room's ``cli.py``::

    def command(db: DbOption = None, pack: PackOption = None, json_: JsonOption = False): ...

``--pack`` names a city pack (a bundled name or a pack folder) everywhere; ``--city`` is
accepted as the same option, because that is how analysts say it.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from citywatch.errors import ValidationError

__all__ = [
    "DbOption",
    "HomeOption",
    "IncidentsOption",
    "JsonOption",
    "PackName",
    "PackOption",
    "TzOption",
    "check_tz",
    "ensure_port_free",
]

_PACK_HELP = "City pack: a bundled name (manhattan, shenzhen, ...) or a pack folder."

#: ``--db``: a database URL; ``None`` is ``$CITYWATCH_DB`` or the embedded SQLite database.
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (default: $CITYWATCH_DB, else the embedded SQLite file "
        "citywatch.db in the CityWatch home).",
        show_default=False,
    ),
]

#: ``--incidents``: a canonical incident CSV read instead of the database.
IncidentsOption = Annotated[
    Path | None,
    typer.Option(
        "--incidents",
        help="Canonical incident CSV to read instead of the database.",
        dir_okay=False,
    ),
]

#: ``--pack`` (alias ``--city``) when the pack is optional.
PackOption = Annotated[str | None, typer.Option("--pack", "--city", help=_PACK_HELP)]

#: ``--pack`` (alias ``--city``) when the command always needs a pack (give it a default).
PackName = Annotated[str, typer.Option("--pack", "--city", help=_PACK_HELP)]

#: ``--tz``: an IANA time zone (each command documents its default).
TzOption = Annotated[
    str | None,
    typer.Option("--tz", help="Time zone (IANA name, e.g. America/New_York)."),
]


def check_tz(tz: str) -> None:
    """Refuse a ``--tz`` that is not an IANA time zone.

    Raises
    ------
    ValidationError
        For an unknown zone.
    """
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"unknown time zone {tz!r} (use an IANA name such as America/New_York)", field="tz"
        ) from None


#: ``--json``: print machine-readable JSON on standard output instead of tables.
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

#: ``--home``: the folder for packs, caches and the embedded database (``$CITYWATCH_HOME``).
HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar="CITYWATCH_HOME",
        file_okay=False,
        help="Folder for built packs, caches and the embedded database "
        "(default: var/ in a checkout, else the user data directory).",
        show_default=False,
    ),
]


def ensure_port_free(host: str, port: int) -> None:
    """Fail at once, before any heavy work, when ``host:port`` cannot be listened on.

    Raises
    ------
    ValidationError
        If the port is taken (or the address is not this machine's).
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # The same socket option uvicorn sets, so a port in TIME_WAIT is not reported as busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ValidationError(
                f"cannot listen on {host}:{port} ({exc.strerror}); is another service using "
                "it? Choose another with --port",
                field="port",
            ) from exc
