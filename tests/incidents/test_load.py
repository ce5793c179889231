"""load_incidents: the same filters on files as on the store, every row accounted for."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from citywatch.errors import ValidationError
from citywatch.incidents.load import INVALID_IN_FILES, load_incidents
from citywatch.incidents.sources import read_source
from citywatch.incidents.storage import as_utc_bound, insert_incidents
from citywatch.store.db import make_engine, upgrade

SHOOTINGS = (
    Path(__file__).resolve().parents[2] / "data" / "manhattan" / "nypd_shootings_historic.csv"
)


def test_file_and_store_give_the_same_incidents(tmp_path: Path) -> None:
    parsed = read_source(SHOOTINGS, "nypd_shootings")
    valid = parsed.records[parsed.reasons.isna() & ~parsed.merged]
    url = f"sqlite:///{tmp_path / 'i.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        insert_incidents(conn, valid)
    engine.dispose()
    window = {"start": date(2017, 1, 1), "end": date(2018, 1, 1)}
    from_file = load_incidents(files=[(SHOOTINGS, "nypd_shootings")], database=False, **window)
    from_store = load_incidents(url, **window)
    assert list(from_file.frame["id"]) == list(from_store.frame["id"])
    # counted independently: received times in UTC against the window
    received = valid["received_at"]
    before = int((received < pd.Timestamp("2017-01-01", tz="UTC")).sum())
    after = int((received >= pd.Timestamp("2018-01-01", tz="UTC")).sum())
    assert from_file.dropped == {
        **(
            {INVALID_IN_FILES: int(parsed.reasons.notna().sum())}
            if parsed.reasons.notna().any()
            else {}
        ),
        "received before the start": before,
        "received at or after the end": after,
    }
    assert len(from_file.frame) + before + after == len(valid)
    assert from_file.frame["received_at"].is_monotonic_increasing
    other = load_incidents(
        files=[(SHOOTINGS, "nypd_shootings")], database=False, categories=["theft"]
    )
    assert other.frame.empty and other.dropped["other categories"] == len(valid)


@pytest.mark.parametrize(
    "bound", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2024-13-01"]
)
def test_time_bounds_past_the_calendar_are_refused_by_name(bound: str) -> None:
    with pytest.raises(ValidationError, match=r"^start: "):
        as_utc_bound(bound, "start")
