"""A real plate-reader feed to replay: the Seattle Police ALPR reads of October 2021.

The file (``seattle_spd_alpr_reads_*.csv.gz``, pipe-separated:
``zipcode|dt|location|address|device|plate_hash|lon|lat``) holds reads of car-mounted readers,
the plates already hashed (40 hex digits) by the source, ``dt`` in Seattle local time
(``MM/DD/YYYY - HH:MM:SS``).  Reads without coordinates are skipped (counted).

No CityWatch pack covers Seattle, so a replay onto a served pack **relocates** the reads: a
linear map takes the box of the reads (1st to 99th percentile) onto the pack's city box (inset
by 10 %).  Times, devices and the sequences of plate hashes stay real; the positions become
synthetic and are labelled so.  The seeded hotlist of a replay is synthetic too: plate hashes
drawn, with a seed, from plates read at least twice (so that hits build tracks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from citywatch.errors import DataError, ValidationError

__all__ = [
    "ALPR_COLUMNS",
    "SEATTLE_TZ",
    "AlprFeed",
    "Relocation",
    "read_alpr",
    "replay_offsets",
    "sensor_id_of",
    "synthetic_hotlist",
]

ALPR_COLUMNS: Final = ("zipcode", "dt", "location", "address", "device", "plate_hash", "lon", "lat")
SEATTLE_TZ: Final = "America/Los_Angeles"
_NOT_ID = re.compile(r"[^A-Za-z0-9_.:-]+")


def sensor_id_of(device: str) -> str:
    """The registry id of a reader device (characters a sensor id may not hold become ``_``)."""
    return ("spd-" + _NOT_ID.sub("_", device.strip()))[:64]


@dataclass(frozen=True)
class AlprFeed:
    """Reads of a file in time order, and what was skipped."""

    reads: pd.DataFrame  # sensor_id, device, seen_at (UTC), plate_hash, lon, lat
    rows: int
    without_position: int

    def summary(self) -> dict[str, Any]:
        """Counts of the file."""
        r = self.reads
        return {
            "rows": self.rows,
            "reads": len(r),
            "without_position": self.without_position,
            "devices": int(r["device"].nunique()),
            "plates": int(r["plate_hash"].nunique()),
            "first": r["seen_at"].min().isoformat() if len(r) else None,
            "last": r["seen_at"].max().isoformat() if len(r) else None,
        }


def read_alpr(path: Path | str, tz: str = SEATTLE_TZ) -> AlprFeed:
    """Read an ALPR file (plain or gzipped).

    Raises
    ------
    DataError
        When the file lacks a column or holds an unreadable time or hash.
    """
    try:
        frame = pd.read_csv(path, sep="|", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not an ALPR file ({exc})") from None
    missing = [c for c in ("dt", "device", "plate_hash", "lon", "lat") if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    rows = len(frame)
    blank = {"", "NA", "NAN", "NULL", "NONE"}
    has_pos = ~frame["lon"].str.strip().str.upper().isin(blank) & ~frame[
        "lat"
    ].str.strip().str.upper().isin(blank)
    frame = frame[has_pos]
    try:
        local = pd.to_datetime(frame["dt"], format="%m/%d/%Y - %H:%M:%S")
        lon = frame["lon"].astype(float).to_numpy()
        lat = frame["lat"].astype(float).to_numpy()
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None
    seen = local.dt.tz_localize(ZoneInfo(tz), ambiguous="NaT", nonexistent="NaT")
    hashes = frame["plate_hash"].str.strip().str.lower()
    if not hashes.str.fullmatch(r"[0-9a-f]{16,128}").all():
        raise DataError(f"{path}: plate_hash must be hexadecimal digests")
    reads = pd.DataFrame(
        {
            "sensor_id": frame["device"].map(sensor_id_of).to_numpy(),
            "device": frame["device"].to_numpy(),
            "seen_at": seen.dt.tz_convert(UTC).to_numpy(),
            "plate_hash": hashes.to_numpy(),
            "lon": lon,
            "lat": lat,
        }
    )
    reads["seen_at"] = pd.to_datetime(reads["seen_at"], utc=True)
    reads = reads.dropna(subset=["seen_at"]).sort_values("seen_at", kind="stable")
    return AlprFeed(reads.reset_index(drop=True), rows, int((~has_pos).sum()))


@dataclass(frozen=True)
class Relocation:
    """A linear map of (lon, lat) from one box onto another."""

    source: tuple[float, float, float, float]  # min lon, min lat, max lon, max lat
    target: tuple[float, float, float, float]

    @classmethod
    def onto(
        cls, lon: np.ndarray, lat: np.ndarray, target: tuple[float, float, float, float]
    ) -> Relocation:
        """Map the 1st-99th percentile box of the points onto ``target`` inset by 10 %."""
        if len(lon) == 0:
            raise ValidationError("no reads to relocate", field="file")
        lo_x, hi_x = np.percentile(lon, [1, 99])
        lo_y, hi_y = np.percentile(lat, [1, 99])
        if hi_x <= lo_x or hi_y <= lo_y:
            hi_x, hi_y = lo_x + 1e-3, lo_y + 1e-3
        x0, y0, x1, y1 = target
        dx, dy = (x1 - x0) * 0.1, (y1 - y0) * 0.1
        return cls((lo_x, lo_y, hi_x, hi_y), (x0 + dx, y0 + dy, x1 - dx, y1 - dy))

    def __call__(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The mapped points."""
        sx0, sy0, sx1, sy1 = self.source
        tx0, ty0, tx1, ty1 = self.target
        x = tx0 + (np.asarray(lon) - sx0) * (tx1 - tx0) / (sx1 - sx0)
        y = ty0 + (np.asarray(lat) - sy0) * (ty1 - ty0) / (sy1 - sy0)
        return x, y


def replay_offsets(seen_at: pd.Series, speed: float) -> np.ndarray:
    """Seconds after the replay's start at which each read is due: its time since the first
    read divided by ``speed`` (``0``: all at once, as fast as the service takes them).

    Raises
    ------
    ValidationError
        For a negative or non-finite speed.
    """
    if not (np.isfinite(speed) and speed >= 0):
        raise ValidationError("speed must be 0 (as fast as possible) or positive", field="speed")
    if speed == 0 or len(seen_at) == 0:
        return np.zeros(len(seen_at))
    first = seen_at.iloc[0]
    return np.asarray((seen_at - first).dt.total_seconds().to_numpy() / speed, dtype=float)


def synthetic_hotlist(plates: pd.Series, n: int, seed: int = 7) -> list[str]:
    """``n`` plate hashes drawn with ``seed`` from those read at least twice (fewer if the
    reads have fewer), sorted: the synthetic hotlist of a replay."""
    counts = plates.value_counts()
    pool = sorted(counts[counts >= 2].index)
    if n <= 0 or not pool:
        return []
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    return sorted(pool[i] for i in picked)


def now_utc() -> datetime:
    """The current UTC time (the replay's clock)."""
    return datetime.now(UTC)
