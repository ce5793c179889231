"""Replaying imported incidents: from a canonical CSV file and from the incident store."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from citywatch.city import CityPack
from citywatch.incidents.canonical import write_canonical_csv
from citywatch.sim.runner import run_scenario
from tests.sim.conftest import make_scenario
from tests.sim.test_travel import near_nodes

START = datetime(2024, 3, 4, tzinfo=ZoneInfo("America/New_York"))


def incidents(pack: CityPack, n: int) -> pd.DataFrame:
    """n located incidents, most inside a one-day window, a few before and after it."""
    rng = np.random.default_rng(5)
    pts = near_nodes(pack, rng, n)
    offsets = np.sort(rng.uniform(-3600, 86400 + 3600, n))
    return pd.DataFrame(
        {
            "id": [f"canonical:{i}" for i in range(n)],
            "source": "canonical",
            "source_id": [str(i) for i in range(n)],
            "received_at": [START + timedelta(seconds=float(s)) for s in offsets],
            "time_precision": "exact",
            "category": "theft",
            "priority": 3,
            "lon": pts[:, 0],
            "lat": pts[:, 1],
        }
    )


def replay(pack: CityPack, demand: dict, scale: float = 1.0):
    return run_scenario(
        make_scenario(
            pack,
            {
                "scenario": {"start": START, "days": 1, "replications": 2, "seed": 3},
                "demand": {"kind": "replay", "scale": scale, **demand},
                "fleet": [{"stations": "all", "unit_type": "patrol_car", "count": 1}],
            },
        ),
        workers=1,
    )


def test_replay_from_canonical_csv(pack: CityPack, car_travel: object, tmp_path: Path) -> None:
    frame = incidents(pack, 60)
    path = tmp_path / "incidents.csv"
    write_canonical_csv(frame, path)
    res = replay(pack, {"files": [{"path": str(path), "source": "canonical"}]})
    inside = frame[
        (frame["received_at"] >= START) & (frame["received_at"] < START + timedelta(days=1))
    ]
    located = pack.locate_many(inside["lon"], inside["lat"])["city"].notna().to_numpy()
    want = inside[located]
    for _, rep in res.incidents.groupby("replication"):
        assert list(rep["id"]) == list(want["id"])  # every incident of the window, in order
        got = rep["received_at"].dt.tz_convert("UTC").to_numpy()
        np.testing.assert_array_equal(got, pd.to_datetime(want["received_at"], utc=True).to_numpy())
    assert len(res.dropped) == 0 or set(res.dropped) <= {
        "outside the city pack",
        "more than 250 m from the road network",
    }
    half = replay(pack, {"files": [{"path": str(path), "source": "canonical"}]}, scale=0.5)
    n = half.incidents.groupby("replication").size()
    assert (n < len(want)).all() and (n > 0).all()
    assert set(half.incidents["id"]) <= set(want["id"])


def test_replay_from_the_incident_store(pack: CityPack, car_travel: object, tmp_path: Path) -> None:
    store = pytest.importorskip("citywatch.incidents.storage")
    from citywatch.store.db import make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'incidents.db'}"
    engine = make_engine(url)
    upgrade(engine)
    frame = incidents(pack, 40)
    with engine.begin() as conn:
        assert store.insert_incidents(conn, frame) == 40
    res = replay(pack, {"database": url})
    inside = frame[
        (frame["received_at"] >= START) & (frame["received_at"] < START + timedelta(days=1))
    ]
    located = pack.locate_many(inside["lon"], inside["lat"])["city"].notna().to_numpy()
    assert sorted(res.incidents.loc[res.incidents["replication"] == 0, "id"]) == sorted(
        inside[located]["id"]
    )
