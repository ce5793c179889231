"""Statistics of e-bike thefts by area and local hour of day, with a heat-map PNG.

The thefts are canonical incidents of category ``ebike_theft`` (and with ``mopeds``
``moped_theft``), read by the one reader every command uses
(:func:`citywatch.incidents.load.load_incidents`): reports made to the registry
(:mod:`citywatch.surveillance.ebikes`) and imported thefts alike.  The *area* of a theft is its
station, else its bureau, else ``unassigned``; with a city pack these are the pack's
jurisdictions (point in polygon).  The *hour* is the local hour of the occurrence time; thefts
known only to the day or month (the New Zealand records) count in the area totals and in
``no_hour``, not in an hour.  The Toronto Police round many occurrence times to the hour;
``on_the_hour`` gives the share of exact times at minute 0 so that a reader can judge the hour
profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")  # headless: charts are written by the CLI and in CI
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from citywatch.errors import ValidationError
from citywatch.surveillance.sensors import HOURS

__all__ = ["EBIKE_CATEGORIES", "UNASSIGNED", "TheftStats", "theft_stats", "theft_stats_png"]

#: The categories counted (``moped_theft`` only when asked).
EBIKE_CATEGORIES: Final = ("ebike_theft",)
MOPED_CATEGORY: Final = "moped_theft"
UNASSIGNED: Final = "unassigned"


@dataclass(frozen=True)
class TheftStats:
    """Counts of thefts by area (rows) and local hour (columns 0..23).

    ``by_area`` has one row per area, sorted by total thefts (descending, then name), columns
    ``0..23`` (thefts with an exact time), ``no_hour`` and ``total``.
    """

    categories: tuple[str, ...]
    timezone: str
    by_area: pd.DataFrame
    on_the_hour: float | None

    @property
    def total(self) -> int:
        """All thefts counted."""
        return int(self.by_area["total"].sum())

    @property
    def by_hour(self) -> list[int]:
        """Thefts with an exact time, per local hour 0..23, all areas."""
        return [int(self.by_area[h].sum()) for h in range(HOURS)]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``citywatch ebikes stats --json``."""
        return {
            "categories": list(self.categories),
            "timezone": self.timezone,
            "total": self.total,
            "with_hour": int(sum(self.by_hour)),
            "no_hour": int(self.by_area["no_hour"].sum()),
            "on_the_hour": self.on_the_hour,
            "by_hour": self.by_hour,
            "by_area": [
                {
                    "area": str(area),
                    "total": int(row["total"]),
                    "no_hour": int(row["no_hour"]),
                    "by_hour": [int(row[h]) for h in range(HOURS)],
                }
                for area, row in self.by_area.iterrows()
            ],
        }


def theft_stats(
    incidents: pd.DataFrame,
    timezone: str,
    *,
    mopeds: bool = False,
    areas: Sequence[str] = (),
) -> TheftStats:
    """Count e-bike thefts by area and local hour (module docstring).

    Parameters
    ----------
    incidents : pandas.DataFrame
        Canonical incidents (any categories: the e-bike ones are selected here).
    timezone : str
        IANA time zone of the local hours.
    mopeds : bool
        Count moped thefts too.
    areas : sequence of str
        Areas to list even without thefts (a pack's stations).

    Raises
    ------
    ValidationError
        For an unknown time zone.
    """
    categories = EBIKE_CATEGORIES + ((MOPED_CATEGORY,) if mopeds else ())
    thefts = incidents[incidents["category"].isin(categories)]
    area = (
        thefts["station"]
        .astype("string")
        .fillna(thefts["bureau"].astype("string"))
        .fillna(UNASSIGNED)
    )
    exact = (thefts["time_precision"] == "exact").to_numpy(dtype=bool)
    try:
        local = thefts["received_at"].dt.tz_convert(timezone)
    except Exception as exc:  # zoneinfo and pytz raise different classes
        raise ValidationError(f"unknown time zone {timezone!r}", field="tz") from exc
    hour = pd.Series(np.where(exact, local.dt.hour.to_numpy(), -1), index=thefts.index)
    names = sorted(set(area) | set(areas))
    table = pd.crosstab(area, hour).reindex(index=names, fill_value=0)
    table = table.reindex(columns=list(range(-1, HOURS)), fill_value=0)
    table = table.rename(columns={-1: "no_hour"})
    table["total"] = table.sum(axis=1)
    table = table.reset_index(names="area")
    table = table.sort_values(["total", "area"], ascending=[False, True], kind="stable")
    table = table.set_index("area")
    minutes = local.dt.minute[exact]
    on_hour = float((minutes == 0).mean()) if len(minutes) else None
    table.columns.name = None
    return TheftStats(categories, timezone, table.astype(np.int64), on_hour)


def theft_stats_png(stats: TheftStats, path: Path, title: str, top: int = 25) -> None:
    """Heat map of thefts by area (the ``top`` areas with most) and local hour, with the city's
    hourly total above it."""
    shown = stats.by_area.head(top)
    grid = shown[list(range(HOURS))].to_numpy(dtype=float)
    fig, (ax_top, ax) = plt.subplots(
        2,
        1,
        figsize=(10, 2.2 + 0.32 * max(len(shown), 1)),
        gridspec_kw={"height_ratios": [1, max(len(shown), 1) / 4 + 1]},
        sharex=True,
    )
    ax_top.bar(range(HOURS), stats.by_hour, color="#b03a2e")
    ax_top.set_ylabel("thefts")
    ax_top.set_title(title)
    image = ax.imshow(grid, aspect="auto", cmap="YlOrRd", interpolation="nearest")
    ax.set_yticks(range(len(shown)), [str(a) for a in shown.index])
    ax.set_xticks(range(HOURS), [str(h) for h in range(HOURS)])
    ax.set_xlabel(f"local hour ({stats.timezone})")
    ax.set_ylabel("area")
    fig.colorbar(image, ax=ax, label="thefts", shrink=0.8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
