"""A year of daily grid-ETAS forecasts on the NYC vehicle thefts over Manhattan's grid.

Run: ``.venv/bin/python benchmarks/bench_forecast.py [--baseline-days N]``. Data: the bundled
CODE extract, Manhattan only (inside the pack's city polygon), 250 m cells. Every day of 2017
the model is refitted on the last 365 days (EM warm-started from the day before) and forecasts
the next day.

Baseline, in the same run: the textbook EM with all-pairs ``n x n`` matrices and a cold start
(``em_fit(..., dense=True)``, same model and truncation), on every ``365 / N``-th day (it is too
slow for all 365); the fast EM cold-started on the same days must give the same parameters.
Times are wall-clock and CPU seconds; peak memory is tracemalloc's peak of each phase.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from citywatch.forecast.etas import EtasPredictor, em_fit
from citywatch.forecast.pipeline import study_from_dataset
from citywatch.forecast.surface import Events, to_days

WINDOW = 365.0


def measured(fn: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """Result, wall seconds, CPU seconds and peak traced MiB of one call."""
    tracemalloc.start()
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, wall, cpu, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline-days", type=int, default=6)
    args = parser.parse_args()
    study = study_from_dataset("nyc-thefts", cell_m=250.0)
    surface, events = study.surface, study.events
    origins = np.arange(to_days("2017-01-01"), to_days("2018-01-01"))
    print(f"machine: {machine()}")
    print(f"data: {len(events):,} Manhattan vehicle thefts 2014-2017, {len(surface):,} cells")
    model = EtasPredictor(surface, window_days=WINDOW)
    model.fit(events, float(origins[0]))  # compile the numba kernel outside the timing

    def year() -> list[int]:
        iterations = []
        for origin in origins:
            model.fit(events, float(origin)).predict(1.0)
            assert model.fitted is not None
            iterations.append(model.fitted.iterations)
        return iterations

    its, wall, cpu, peak = measured(year)
    print(
        f"fast: {len(origins)} daily fits + forecasts in {wall:.2f} s wall, {cpu:.2f} s CPU "
        f"({1e3 * wall / len(origins):.1f} ms each; mean {np.mean(its):.1f} EM iterations), "
        f"peak {peak:.1f} MiB"
    )
    days = origins[:: max(1, len(origins) // args.baseline_days)][: args.baseline_days]
    cells = surface.assign(events.xy)

    def cold(dense: bool) -> list[Any]:
        fits = []
        for origin in days:
            lo, hi = np.searchsorted(events.t, [origin - WINDOW, origin])
            window = Events(events.xy[lo:hi], events.t[lo:hi], events.precision, events.crs)
            fits.append(
                em_fit(window, cells[lo:hi], surface.measure, origin - WINDOW, origin, dense=dense)
            )
        return fits

    fast_fits, f_wall, f_cpu, f_peak = measured(lambda: cold(False))
    slow_fits, s_wall, s_cpu, s_peak = measured(lambda: cold(True))
    gap = max(
        abs(a.theta - b.theta) / b.theta + abs(a.sigma - b.sigma) / b.sigma
        for a, b in zip(fast_fits, slow_fits, strict=True)
    )
    n = len(days)
    print(
        f"cold-start fits on {n} days: fast {1e3 * f_wall / n:.1f} ms each "
        f"({f_cpu:.2f} s CPU, peak {f_peak:.1f} MiB); all-pairs numpy baseline "
        f"{1e3 * s_wall / n:.1f} ms each ({s_cpu:.2f} s CPU, peak {s_peak:.1f} MiB); "
        f"largest relative parameter difference {gap:.1e}"
    )
    print(
        f"a year of daily forecasts: fast {wall:.1f} s; baseline (cold all-pairs EM each day, "
        f"extrapolated) {s_wall / n * len(origins):.0f} s, {s_wall / n * len(origins) / wall:.0f}x"
    )


if __name__ == "__main__":
    main()
