"""Helpers shared by test modules of several areas."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event

from citywatch.cli import main

# Manhattan's 22 precincts (data/SOURCES.upstream.md); precinct 22 is Central Park
MANHATTAN_PRECINCTS = [
    "1",
    "5",
    "6",
    "7",
    "9",
    "10",
    "13",
    "14",
    "17",
    "18",
    "19",
    "20",
    "22",
    "23",
    "24",
    "25",
    "26",
    "28",
    "30",
    "32",
    "33",
    "34",
]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the ``citywatch`` entry point in this process.

    Parameters
    ----------
    args : list of str
        Command-line arguments after ``citywatch``.
    capsys : pytest.CaptureFixture
        The test's output capture.

    Returns
    -------
    tuple of (int, str, str)
        Exit code, stdout and stderr.
    """
    old = sys.argv
    sys.argv = ["citywatch", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    return code, out, err


@contextmanager
def sql_statements(engine: Engine, containing: str = "") -> Iterator[list[str]]:
    """The SQL statements that the block sends through ``engine`` (those that contain
    ``containing``, e.g. ``"FROM units"``), to show what does not read the database."""
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if containing in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
