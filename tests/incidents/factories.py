"""Seeded synthetic incident frames for round-trip and filter tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from citywatch.incidents.record import coerce_frame
from citywatch.incidents.taxonomy import load_taxonomy

__all__ = ["random_incidents"]


def random_incidents(n: int, seed: int = 7) -> pd.DataFrame:
    """Seeded incidents exercising every column, null pattern and microsecond times."""
    rng = np.random.default_rng(seed)
    codes = load_taxonomy().codes
    start = pd.Timestamp("2016-01-01", tz="UTC")
    received = start + pd.to_timedelta(rng.integers(0, 3 * 365 * 86400 * 10**6, n), unit="us")
    missing = rng.random(n) < 0.2
    lon = np.where(missing, np.nan, -74.05 + 0.2 * rng.random(n))
    lat = np.where(missing, np.nan, 40.6 + 0.3 * rng.random(n))
    later = received + pd.to_timedelta(rng.integers(1, 3600 * 10**6, n), unit="us")
    frame = pd.DataFrame(
        {
            "id": [f"generic:t{i}" for i in range(n)],
            "source": "generic",
            "source_id": [f"t{i}" for i in range(n)],
            "received_at": received,
            "time_precision": rng.choice(["exact", "day", "month"], n),
            "category": rng.choice(codes, n),
            "priority": pd.array(
                [None if rng.random() < 0.3 else int(rng.integers(1, 6)) for _ in range(n)],
                dtype="Int64",
            ),
            "lon": lon,
            "lat": lat,
            "bureau": rng.choice(np.array(["PBMS", "PBMN", None], dtype=object), n),
            "station": rng.choice(np.array(["1", "14", "32", None], dtype=object), n),
            "zone": rng.choice(np.array(["14A", None], dtype=object), n),
            "dispatched_at": pd.Series(later).where(rng.random(n) < 0.5),
            "arrived_at": pd.Series(later + pd.Timedelta(seconds=90)).where(rng.random(n) < 0.5),
            "cleared_at": pd.Series(later + pd.Timedelta(hours=1)).where(rng.random(n) < 0.5),
            "disposition": rng.choice(
                np.array(['Arrest, "custodial"', "已破案 solved", None], dtype=object), n
            ),
            "solved": pd.array(rng.choice([True, False, None], n), dtype="boolean"),
        }
    )
    return coerce_frame(frame)
