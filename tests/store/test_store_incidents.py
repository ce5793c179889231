"""Bulk insert and query of incidents on SQLite and PostgreSQL: lossless, idempotent, filtered."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from citywatch.errors import ValidationError
from citywatch.incidents.storage import insert_incidents, load_incidents_frame
from citywatch.incidents.taxonomy import load_taxonomy
from citywatch.store.db import make_engine, upgrade
from tests.incidents.factories import random_incidents


@pytest.fixture
def stored(db_url: str) -> tuple[str, pd.DataFrame]:
    frame = random_incidents(400)
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        assert insert_incidents(conn, frame) == len(frame)
    engine.dispose()
    return db_url, frame


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["received_at", "id"]).reset_index(drop=True)


def test_round_trip_is_lossless(stored: tuple[str, pd.DataFrame]) -> None:
    url, frame = stored
    back = load_incidents_frame(url)
    pd.testing.assert_frame_equal(back, _sorted(frame))


def test_inserting_again_adds_nothing(stored: tuple[str, pd.DataFrame]) -> None:
    url, frame = stored
    engine = make_engine(url)
    clash = frame.head(3).copy()
    clash["id"] = ["other:1", "other:2", "other:3"]  # same (source, source_id), new ids
    with engine.begin() as conn:
        assert insert_incidents(conn, frame) == 0
        assert insert_incidents(conn, clash) == 0
        fresh = frame.head(2).assign(source_id=["new1", "new2"], id=["generic:new1", "x"])
        assert insert_incidents(conn, fresh) == 2
    assert len(load_incidents_frame(engine)) == len(frame) + 2
    engine.dispose()


def test_filters_match_brute_force(stored: tuple[str, pd.DataFrame]) -> None:
    url, frame = stored
    tax = load_taxonomy()
    lo = datetime(2017, 3, 1, tzinfo=UTC)
    hi = "2018-01-01T00:00:00-05:00"
    got = load_incidents_frame(url, start=lo, end=hi, categories=["two_robberies", "theft"])
    wanted = tax.expand("two_robberies") | tax.expand("theft")
    assert {"robbery", "snatching", "pickpocketing", "burglary"} <= wanted
    hi_ts = pd.Timestamp(hi)
    expect = frame[
        (frame.received_at >= lo) & (frame.received_at < hi_ts) & frame.category.isin(wanted)
    ]
    assert len(expect) > 10
    pd.testing.assert_frame_equal(got, _sorted(expect))

    criminal = load_incidents_frame(url, categories=["criminal"], stations=["14"])
    expect = frame[frame.category.map(tax.is_criminal) & (frame.station == "14")]
    pd.testing.assert_frame_equal(criminal, _sorted(expect))

    day = load_incidents_frame(url, start=date(2016, 6, 1), end=date(2016, 7, 1))
    assert day.received_at.between(
        pd.Timestamp("2016-06-01", tz="UTC"), pd.Timestamp("2016-07-01", tz="UTC"), "left"
    ).all()
    assert len(day) == int(
        frame.received_at.between(
            pd.Timestamp("2016-06-01", tz="UTC"), pd.Timestamp("2016-07-01", tz="UTC"), "left"
        ).sum()
    )
    assert load_incidents_frame(url, sources=["police_uk"]).empty


def test_bad_filters_raise(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    with pytest.raises(ValidationError, match="unknown category or group"):
        load_incidents_frame(sqlite_url, categories=["robery"])
    with pytest.raises(ValidationError, match="time zone"):
        load_incidents_frame(sqlite_url, start=datetime(2020, 1, 1))
    with pytest.raises(ValidationError, match="not a date"):
        load_incidents_frame(sqlite_url, end="yesterday-ish")
