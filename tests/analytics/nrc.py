"""The Near Repeat Calculator's published Chicago outputs (data/near-repeat) and the events."""

from __future__ import annotations

import gzip
import html
import re
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

NEAR_REPEAT = Path(__file__).resolve().parents[2] / "data" / "near-repeat"
BURGLARIES = NEAR_REPEAT / "chicago_burglary_2014_2017.csv.gz"


@cache
def burglaries() -> pd.DataFrame:
    """The 45,319 burglaries with ``x``, ``y`` (EPSG:26971 metres) and ``day`` numbers."""
    frame = pd.read_csv(BURGLARIES)
    dates = pd.to_datetime(frame["date_single"], format="%d/%m/%Y")
    frame["year"] = dates.dt.year
    frame["day"] = dates.to_numpy().astype("datetime64[D]").astype(np.int64)
    return frame


def year(y: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates and day numbers of one calendar year's burglaries (the NRC's subsets)."""
    frame = burglaries()
    sub = frame[frame["year"] == y]
    return sub[["x", "y"]].to_numpy(), sub["day"].to_numpy()


def _lines(name: str) -> list[str]:
    with gzip.open(NEAR_REPEAT / name, "rt", encoding="latin-1") as fh:
        return fh.read().splitlines()


def verbose_observed(name: str = "chicago_burglary_2016_NRverbose.csv.gz") -> np.ndarray:
    """The 'Observed frequencies distribution' table of an NRC verbose file."""
    lines = _lines(name)
    start = next(k for k, line in enumerate(lines) if line.startswith("Observed frequencies"))
    rows = []
    for line in lines[start + 3 :]:
        cells = line.split(",")
        if not cells[0].strip().isdigit():
            break
        rows.append([int(v) for v in cells[2:] if v.strip()])
    return np.array(rows)


def verbose_permutations(name: str = "chicago_burglary_2016_NRverbose.csv.gz") -> np.ndarray:
    """The NRC's permuted counts, shape (iterations, rows, columns)."""
    lines = _lines(name)
    cells: dict[tuple[int, int], list[int]] = {}
    for k, line in enumerate(lines):
        match = re.match(r"Row (\d+) Column (\d+),", line)
        if match:
            values = lines[k + 1].split(",")
            assert values[0] == "Expected"
            cells[(int(match[1]) - 1, int(match[2]) - 1)] = [int(v) for v in values[1:] if v]
    n_rows = 1 + max(r for r, _ in cells)
    n_cols = 1 + max(c for _, c in cells)
    out = np.array([[cells[(r, c)] for c in range(n_cols)] for r in range(n_rows)])
    return np.moveaxis(out, 2, 0)


def summary_ratios(name: str) -> np.ndarray:
    """The 'Observed over mean expected frequencies' table of an NRC summary (2 decimals)."""
    with gzip.open(NEAR_REPEAT / name, "rt", encoding="latin-1") as fh:
        text = fh.read()
    section = text[text.index("Observed over mean expected") : text.index("Statistical signif")]
    rows = []
    for row in re.split(r"<th scope=\"row\"", section)[1:]:
        rows.append([float(html.unescape(v)) for v in re.findall(r"class=\"\w+\">([\d.]+)<", row)])
    return np.array(rows)
