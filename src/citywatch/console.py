"""Shared CLI output: JSON for scripts, rich tables and progress bars for people."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from rich.console import Console
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

__all__ = [
    "console",
    "err_console",
    "format_cell",
    "print_json",
    "print_table",
    "progress",
    "to_jsonable",
    "track",
]

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars, dates, paths and NaN into plain JSON values (NaN becomes null)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return to_jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON on standard output (no rich markup, safe for pipes)."""
    print(json.dumps(to_jsonable(value), ensure_ascii=False, indent=2))


#: pandas' missing values, by type name.
_MISSING_TYPES: Final = frozenset({"NAType", "NaTType"})


def format_cell(value: Any) -> str:
    """A table cell for people: floats rounded to what a reader uses, ``None``/NaN empty.

    Integers keep every digit (with thousands separators from 10,000); floats of 100 or more
    show no decimals, from 1 two decimals, below 1 three significant digits.
    """
    # numbers.* covers NumPy's scalars without importing NumPy or pandas (CLI start-up time).
    if value is None or type(value).__name__ in _MISSING_TYPES:
        return ""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}" if abs(int(value)) >= 10_000 else str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            return "" if math.isnan(number) else str(number)
        if number == 0 or abs(number) >= 100:
            return f"{number:,.0f}"
        if abs(number) >= 1:
            return f"{number:.2f}"
        return f"{number:.3g}"
    return str(value)


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a rich table: cells by :func:`format_cell`, never cut.

    Long cells fold onto further lines instead of ending in an ellipsis; when the output is not
    a terminal (a pipe, a file), the table is as wide as it needs to be.
    """
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(format_cell(v) for v in row))
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update(width=10_000), table).maximum
    # Console.print caps its width at the console's, so a wider table needs its own console.
    Console(width=max(console.width, natural), no_color=console.no_color).print(table)


def progress(transient: bool = True) -> Progress:
    """A rich progress bar on standard error, for work that takes more than a second."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
    )


def track(items: Sequence[T], description: str) -> Iterator[T]:
    """Iterate over ``items`` showing a progress bar on standard error."""
    with progress() as bar:
        task = bar.add_task(description, total=len(items))
        for item in items:
            yield item
            bar.advance(task)
