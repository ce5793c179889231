"""KPI arithmetic on hand-made frames."""

from __future__ import annotations

import pandas as pd
import pytest

from citywatch.dispatch.kpis import compute_kpis, duration_stats
from citywatch.errors import ValidationError


def frame() -> pd.DataFrame:
    ts = pd.Timestamp
    return pd.DataFrame(
        {
            # 01:30 EST and 03:30 EDT: the clocks sprang forward at 02:00 on 8 March 2026.
            "received_at": [
                ts("2026-03-08 06:30Z"),
                ts("2026-03-08 07:30Z"),
                ts("2026-03-08 07:40Z"),
            ],
            "dispatched_at": [ts("2026-03-08 06:31Z"), ts("2026-03-08 07:32Z"), pd.NaT],
            "arrived_at": [ts("2026-03-08 06:35Z"), ts("2026-03-08 07:45Z"), pd.NaT],
            "station": ["13", "13", None],
            "zone": ["13A", "13B", None],
            "status": ["cleared", "on_scene", "received"],
        }
    )


def test_by_local_hour_across_dst() -> None:
    groups = compute_kpis(frame(), "hour", timezone="America/New_York", thresholds_s=(300, 900))
    assert [(g["group"], g["incidents"]) for g in groups] == [(1, 1), (3, 2)]
    early, late = groups
    assert early["response_s"] == {"n": 1, "mean": 300.0, "p50": 300.0, "p90": 300.0}
    assert early["share_on_scene_within"] == {"300": 1.0, "900": 1.0}
    # Late group: one reached in 15 min, one never reached (still counts in the denominator).
    assert late["share_on_scene_within"] == {"300": 0.0, "900": 0.5}
    assert late["travel_s"]["mean"] == 13 * 60


def test_groupings_and_errors() -> None:
    assert [g["group"] for g in compute_kpis(frame(), "zone")] == ["13A", "13B", "unknown"]
    assert compute_kpis(frame().iloc[:0], "none")[0]["response_s"] == {
        "n": 0,
        "mean": None,
        "p50": None,
        "p90": None,
    }
    with pytest.raises(ValidationError, match="by must be"):
        compute_kpis(frame(), "weekday")
    with pytest.raises(ValidationError, match="positive"):
        compute_kpis(frame(), thresholds_s=(0,))


def test_duration_percentiles_match_numpy_type_7() -> None:
    stats = duration_stats(pd.Series([10.0, 20.0, 30.0, 40.0, None]))
    assert stats == {"n": 4, "mean": 25.0, "p50": 25.0, "p90": 37.0}
