"""Crime statistics on a million incidents: CityWatch against straightforward baselines.

Run: ``.venv/bin/python benchmarks/bench_analytics.py`` (or ``make bench``).  The data are
1,000,000 seeded synthetic incidents over three years in 80 stations and 10 categories
(America/New_York).  Baselines, run on the same data in the same process, and checked to give
the same numbers:

* quiet days: a day-by-day Python loop over each (station, category) with a set of busy days,
  the obvious way to count zero days and runs;
* compare: one boolean mask per (station, category) and period, the obvious pandas way.

The CompStat report row times computing every section plus rendering the HTML (four SVG charts).
"""

from __future__ import annotations

import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, summary_ms, timings

from citywatch.analytics.compare import compare
from citywatch.analytics.quiet import quiet_days
from citywatch.analytics.report import build_compstat, write_report
from citywatch.analytics.scope import Period, local_days

TZ = "America/New_York"
N = 1_000_000
STATIONS = [str(s) for s in range(1, 81)]
CATEGORIES = [
    "robbery",
    "snatching",
    "theft",
    "burglary",
    "fraud",
    "assault",
    "drugs",
    "vehicle_theft",
    "criminal_damage",
    "public_order",
]
PERIOD = Period(date(2023, 1, 1), date(2023, 12, 31))
PREVIOUS = PERIOD.previous_year()


def incidents(n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(2024)
    lo = pd.Timestamp("2021-01-01", tz="UTC").value
    hi = pd.Timestamp("2024-01-01", tz="UTC").value
    weights = rng.dirichlet(np.ones(len(CATEGORIES)) * 0.5)
    return pd.DataFrame(
        {
            "received_at": pd.to_datetime(rng.integers(lo, hi, n), utc=True),
            "time_precision": "exact",
            "category": rng.choice(CATEGORIES, n, p=weights),
            "station": rng.choice(STATIONS, n),
            "lon": -73.97 + rng.normal(0, 0.02, n),
            "lat": 40.77 + rng.normal(0, 0.03, n),
            "solved": pd.array(rng.random(n) < 0.3, dtype="boolean"),
        }
    )


def baseline_quiet(frame: pd.DataFrame) -> dict[tuple[str, str], tuple[int, int]]:
    days = local_days(frame["received_at"], TZ).dt.date
    out = {}
    for station in STATIONS:
        for category in CATEGORIES:
            sel = (frame["station"] == station) & (frame["category"] == category)
            busy = set(days[sel])
            zero = longest = run = 0
            day = PERIOD.start
            while day <= PERIOD.end:
                if day in busy:
                    run = 0
                else:
                    zero, run = zero + 1, run + 1
                    longest = max(longest, run)
                day += timedelta(days=1)
            out[(station, category)] = (zero, longest)
    return out


def baseline_compare(frame: pd.DataFrame) -> dict[tuple[str, str], tuple[int, int]]:
    days = local_days(frame["received_at"], TZ).dt.date
    in_cur = (days >= PERIOD.start) & (days <= PERIOD.end)
    in_prev = (days >= PREVIOUS.start) & (days <= PREVIOUS.end)
    out = {}
    for station in STATIONS:
        for category in CATEGORIES:
            sel = (frame["station"] == station) & (frame["category"] == category)
            out[(station, category)] = (int((sel & in_cur).sum()), int((sel & in_prev).sum()))
    return out


def main() -> None:
    frame = incidents()
    spec = {c: {c} for c in CATEGORIES}
    kwargs = {"tz": TZ, "by": "station", "categories": spec}

    quiet = quiet_days(frame, PERIOD, **kwargs)
    expected_quiet = baseline_quiet(frame)
    assert {
        (r.jurisdiction, r.category): (r.zero_days, r.longest_zero_run.days) for r in quiet.rows
    } == expected_quiet
    comp = compare(frame, PERIOD, **kwargs).table
    assert {
        (r.jurisdiction, r.category): (r.current, r.previous) for r in comp.itertuples()
    } == baseline_compare(frame)

    out = Path(tempfile.mkdtemp()) / "report.html"

    def report() -> None:
        write_report(build_compstat(frame, PERIOD, tz=TZ, by="station", lang="en"), out)

    rows = [
        (
            "quiet-days, 80 stations x 10 categories",
            "citywatch quiet_days",
            summary_ms(timings(lambda: quiet_days(frame, PERIOD, **kwargs), 3)),
        ),
        ("", "baseline: day-by-day loop", summary_ms(timings(lambda: baseline_quiet(frame), 1))),
        (
            "compare 2023 vs 2022, 80 x 10",
            "citywatch compare",
            summary_ms(timings(lambda: compare(frame, PERIOD, **kwargs), 3)),
        ),
        ("", "baseline: mask per group", summary_ms(timings(lambda: baseline_compare(frame), 1))),
        (
            "CompStat report (all sections, HTML)",
            "citywatch build + write",
            summary_ms(timings(report, 1)),
        ),
    ]
    print(f"Machine: {machine()}")
    print(
        f"{N:,} synthetic incidents, 2021-2023, {len(STATIONS)} stations, "
        f"{len(CATEGORIES)} categories, {TZ}; results checked equal to the baselines\n"
    )
    print("| task | method | p50 s | mean s |\n|---|---|---|---|")
    for task, method, s in rows:
        print(f"| {task} | {method} | {s['p50_ms'] / 1e3:.2f} | {s['mean_ms'] / 1e3:.2f} |")


if __name__ == "__main__":
    main()
