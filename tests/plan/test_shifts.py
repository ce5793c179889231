"""Per-shift staffing on the Manhattan pack: Erlang units, coverage units via hypercube at posts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from citywatch.city import load_pack
from citywatch.errors import ValidationError
from citywatch.incidents.sources import read_source
from citywatch.plan.posts import incident_demand
from citywatch.plan.shifts import city_staffing, hypercube_at_posts, parse_shifts, shift_call_rate
from citywatch.plan.staffing import erlang_b, share_within
from citywatch.routing import Router

SHOOTINGS = (
    Path(__file__).resolve().parents[2] / "data" / "manhattan" / "nypd_shootings_historic.csv"
)


@pytest.fixture(scope="module")
def setting():  # type: ignore[no-untyped-def]
    pack = load_pack("manhattan")
    parsed = read_source(SHOOTINGS, "nypd_shootings")
    frame = parsed.records[parsed.reasons.isna()]
    frame = frame[frame["lat"].between(40.68, 40.88) & frame["lon"].between(-74.03, -73.90)]
    return pack, Router.from_pack(pack), frame


def test_parse_shifts() -> None:
    assert parse_shifts("7-15, 15-23,23-7") == [(7, 15), (15, 23), (23, 7)]
    with pytest.raises(ValidationError):
        parse_shifts("7to15")


def test_shift_call_rate_by_hand(setting) -> None:  # type: ignore[no-untyped-def]
    pack, _, frame = setting
    demand = incident_demand(pack, frame, (23, 7))
    local = pd.to_datetime(frame["received_at"], utc=True).dt.tz_convert("America/New_York")
    days = (local.max().normalize() - local.min().normalize()).days + 1
    assert shift_call_rate(pack, frame, demand, (23, 7)) == pytest.approx(demand.used / (days * 8))


def test_city_staffing_coverage_units_are_minimal(setting) -> None:  # type: ignore[no-untyped-def]
    pack, router, frame = setting
    shift = (20, 4)
    candidates = np.arange(0, len(pack.network.lon), 7)
    table = city_staffing(
        pack,
        frame,
        [shift],
        30.0,
        max_all_busy=0.05,
        coverage_target=0.6,
        within_s=90.0,
        router=router,
        candidates=candidates,
        calls_per_hour={shift: 3.0},
    )
    row = table.iloc[0]
    assert row["load_erlangs"] == pytest.approx(1.5)
    assert row["units_erlang"] == 4  # B(3, 1.5) = 0.101 > 0.05 >= B(4, 1.5) = 0.048
    assert row["p_all_busy"] == pytest.approx(erlang_b(4, 1.5))
    assert row["units"] == row["units_coverage"] >= 4
    assert row["coverage_share"] >= 0.6
    demand = incident_demand(pack, frame, shift)
    if row["units"] > 4:
        fewer = hypercube_at_posts(
            pack,
            demand,
            int(row["units"]) - 1,
            mode="car",
            radius_s=90.0,
            service_rate=2.0,
            queue="none",
            calls_per_hour=3.0,
            router=router,
            candidates=candidates,
        )
        assert share_within(fewer, fewer.solve("approximate"), 90.0) < 0.6
