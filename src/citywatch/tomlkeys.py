"""Unknown keys in a TOML file are errors, named with where they are: one check for every file.

A misspelt key (``unitz = 3``) silently ignored is a setting the user thinks applies and does
not; every TOML reader of the project checks its tables with :func:`check_keys`, and reads its
file with :func:`read_toml` (one error for a missing, unreadable or malformed file).
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from citywatch.errors import CityWatchError, DataError

__all__ = ["check_keys", "read_toml"]


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """The TOML document in ``path``.

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        What the file holds, for the error (``"timer rules"``).

    Raises
    ------
    DataError
        ``cannot read {what} {path}: ...`` if the file is missing, unreadable, not UTF-8 or not
        TOML.
    """
    try:
        return tomllib.loads(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"cannot read {what} {path}: {exc}") from exc


def check_keys(
    table: Mapping[str, Any],
    allowed: Collection[str],
    where: str,
    error: type[CityWatchError] = DataError,
) -> None:
    """Raise ``error`` naming the keys of ``table`` that are not ``allowed``.

    Parameters
    ----------
    table : mapping
        A TOML table.
    allowed : collection of str
        Its known keys.
    where : str
        The file and table, as the user should read it (``"requirements.toml [default]"``).
    error : type
        The error class: :class:`~citywatch.errors.DataError` for data files,
        :class:`~citywatch.errors.ValidationError` for user input such as scenarios.

    Raises
    ------
    CityWatchError
        Of class ``error``, listing the unknown and the allowed keys.
    """
    if not isinstance(table, Mapping):
        raise error(f"{where}: expected a table, not {type(table).__name__}", field=where)
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise error(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
            field=where,
        )
