"""Map layers from the pack, checked against the pack's own data; KPI windows across DST."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import shapely
from shapely.geometry import shape

from citywatch.api.layers import local_windows, pack_config, pack_layers, road_segments
from citywatch.city import CityPack
from citywatch.errors import ValidationError


def test_roads_are_every_undirected_segment_once(manhattan: CityPack) -> None:
    net = manhattan.network
    lon, lat = net.lon, net.lat
    # Brute force: the set of unordered node pairs of the directed edges.
    pairs = {
        frozenset((int(u), int(v))) for u, v in zip(net.edges["u"], net.edges["v"], strict=True)
    }
    drawn = [line for lines in road_segments(manhattan).values() for line in lines]
    assert len(drawn) == len(pairs)
    by_coord = {
        (round(float(x), 6), round(float(y), 6)): i
        for i, (x, y) in enumerate(zip(lon, lat, strict=True))
    }
    seen = {frozenset((by_coord[tuple(line[0])], by_coord[tuple(line[-1])])) for line in drawn}
    assert seen == pairs


def test_layers_match_the_pack(manhattan: CityPack) -> None:
    layers = pack_layers(manhattan)
    assert set(layers) == {"roads", "jurisdictions", "stations", "places"}
    juris = layers["jurisdictions"]["features"]
    assert len(juris) == len(manhattan.jurisdictions) == 1 + 2 + 22 + 83
    levels = {f["properties"]["level"] for f in juris}
    assert levels == {"city", "bureau", "station", "zone"}
    # Rounding to 1e-6 degrees moves a boundary by at most ~0.1 m: areas agree to 1e-6.
    for f, j in zip(juris, manhattan.jurisdictions, strict=True):
        assert f["properties"]["id"] == j.id
        assert shapely.area(shape(f["geometry"])) == pytest.approx(j.geometry.area, rel=1e-5)
    stations = layers["stations"]["features"]
    assert [f["properties"]["id"] for f in stations] == [s.id for s in manhattan.stations]
    precinct_5 = next(f for f in stations if f["properties"]["id"] == "5")
    assert list(precinct_5["geometry"]["coordinates"]) == [-73.997489, 40.716188]
    assert precinct_5["properties"]["synthetic"] is False


def test_config_credits_openstreetmap(manhattan: CityPack) -> None:
    cfg = pack_config(manhattan)
    assert cfg["timezone"] == "America/New_York"
    assert any("OpenStreetMap" in c for c in cfg["credits"])
    w, s, e, n = cfg["bbox"]
    assert all(w <= st.lon <= e and s <= st.lat <= n for st in manhattan.stations)


NY = "America/New_York"


@pytest.mark.parametrize(
    ("now_utc", "today_utc", "week_utc"),
    [
        # Sunday 8 March 2026, DST starts at 02:00: the local day began at 05:00 UTC (EST).
        (
            datetime(2026, 3, 8, 16, 0, tzinfo=UTC),
            datetime(2026, 3, 8, 5, tzinfo=UTC),
            datetime(2026, 3, 2, 5, tzinfo=UTC),
        ),
        # Monday after: midnight EDT is 04:00 UTC and the week starts that same midnight.
        (
            datetime(2026, 3, 9, 3, 59, tzinfo=UTC),
            datetime(2026, 3, 8, 5, tzinfo=UTC),
            datetime(2026, 3, 2, 5, tzinfo=UTC),
        ),
        (
            datetime(2026, 3, 9, 4, 0, tzinfo=UTC),
            datetime(2026, 3, 9, 4, tzinfo=UTC),
            datetime(2026, 3, 9, 4, tzinfo=UTC),
        ),
        # Sunday 1 November 2026, DST ends: the day is 25 hours long.
        (
            datetime(2026, 11, 2, 4, 59, tzinfo=UTC),
            datetime(2026, 11, 1, 4, tzinfo=UTC),
            datetime(2026, 10, 26, 4, tzinfo=UTC),
        ),
    ],
)
def test_local_windows_across_dst(
    now_utc: datetime, today_utc: datetime, week_utc: datetime
) -> None:
    w = local_windows(now_utc, NY)
    assert w["today"] == (today_utc, now_utc)
    assert w["week"] == (week_utc, now_utc)


def test_local_windows_day_lengths() -> None:
    # Brute force: the start of "today" one second before and at each local midnight.
    starts = []
    t = datetime(2026, 10, 31, 12, tzinfo=UTC)
    while t < datetime(2026, 11, 3, 12, tzinfo=UTC):
        # In UTC: datetimes sharing one tzinfo subtract as wall-clock times, hiding DST.
        starts.append(local_windows(t, NY)["today"][0].astimezone(UTC))
        t += timedelta(minutes=30)
    distinct = sorted(set(starts))
    lengths = [(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(distinct)]
    assert lengths == [24.0, 25.0, 24.0]  # 31 October, 1 November (DST ends), 2 November
    shanghai = local_windows(datetime(2026, 1, 1, 15, 59, tzinfo=UTC), "Asia/Shanghai")
    assert shanghai["today"][0] == datetime(2025, 12, 31, 16, tzinfo=UTC)


def test_local_windows_need_an_aware_time() -> None:
    with pytest.raises(ValidationError):
        local_windows(datetime(2026, 1, 1, 12), NY)
