"""Hand-built canonical incident frames for the analytics tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

# SQLite and PostgreSQL databases (one fresh schema per test) from the store's tests
from tests.store.databases import db_url, pg_url, sqlite_url  # noqa: F401


def make_incidents(
    local_times: Sequence[str],
    tz: str,
    *,
    categories: Sequence[str] | None = None,
    stations: Sequence[str | None] | None = None,
    solved: Sequence[bool | None] | None = None,
    precision: str = "exact",
) -> pd.DataFrame:
    """A canonical incident frame from local wall-clock times ("2024-03-10 23:30")."""
    n = len(local_times)
    received = pd.to_datetime(pd.Series(list(local_times))).dt.tz_localize(tz).dt.tz_convert("UTC")
    return pd.DataFrame(
        {
            "id": [f"test:{i}" for i in range(n)],
            "source": "generic",
            "source_id": [str(i) for i in range(n)],
            "received_at": received,
            "time_precision": precision,
            "category": list(categories) if categories is not None else ["robbery"] * n,
            "priority": 2,
            "lon": np.nan,
            "lat": np.nan,
            "bureau": "B1",
            "station": list(stations) if stations is not None else ["1"] * n,
            "zone": None,
            "solved": pd.array(list(solved) if solved is not None else [None] * n, dtype="boolean"),
        }
    )


def random_incidents(
    seed: int, start: str, end: str, n: int, tz: str, stations: Sequence[str]
) -> pd.DataFrame:
    """``n`` incidents at uniformly random UTC instants between two UTC dates."""
    rng = np.random.default_rng(seed)
    lo = pd.Timestamp(start, tz="UTC").value
    hi = pd.Timestamp(end, tz="UTC").value
    stamps = pd.to_datetime(np.sort(rng.integers(lo, hi, size=n)), utc=True).as_unit("us")
    cats = rng.choice(["robbery", "snatching", "theft"], size=n, p=[0.2, 0.1, 0.7])
    frame = make_incidents(
        ["2000-01-01"] * n,
        tz,
        categories=list(cats),
        stations=list(rng.choice(list(stations), size=n)),
    )
    frame["received_at"] = stamps
    frame["solved"] = pd.array(rng.random(n) < 0.4, dtype="boolean")
    return frame


@pytest.fixture(name="make_incidents")
def make_incidents_fixture() -> object:
    """Factory of hand-built frames (see :func:`make_incidents`)."""
    return make_incidents


@pytest.fixture(name="random_incidents")
def random_incidents_fixture() -> object:
    """Factory of seeded random frames (see :func:`random_incidents`)."""
    return random_incidents
