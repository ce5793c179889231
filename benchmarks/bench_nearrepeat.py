"""Near-repeat Knox tables on real Chicago burglaries: CityWatch against a plain Python baseline.

Run: ``.venv/bin/python benchmarks/bench_nearrepeat.py`` (or ``make bench``).  Data:
``data/near-repeat/chicago_burglary_2014_2017.csv.gz`` (45,319 burglaries; the 2014 subset of
12,334 is the one the Near Repeat Calculator 1.3 took 8 min 54 s over, with 99 iterations).
Every case runs in its own child process; the parent reads the child's peak resident memory from
``wait4``, and the child reports wall and CPU time of the computation alone (data already read)
and its peak resident memory before the computation (imports and the data), so the difference
is what the computation adds.  Implementations, checked to give the same table:

``citywatch``
    :func:`citywatch.analytics.nearrepeat.near_repeat`: k-d tree pairs within the largest band,
    then per permutation one vectorised date difference and ``np.bincount`` of the cell indices.
``python-radius-graph``
    the same radius graph (``cKDTree.query_ball_point``) walked in plain Python per permutation,
    with ``random.shuffle`` and per-pair band arithmetic: the obvious implementation.
"""

from __future__ import annotations

import bisect
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from citywatch.analytics.nearrepeat import Bands, near_repeat

DATA = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "near-repeat"
    / "chicago_burglary_2014_2017.csv.gz"
)
ITERATIONS = 99
#: (case name, years, bands): the NRC's two published set-ups, then the whole file
CASES = {
    "2014, 200 m x 7 d": ((2014,), Bands(200, 1, 7, 1)),
    "2014, 3 x 100 m x 2 x 2 d": ((2014,), Bands(100, 3, 2, 2)),
    "2014-2017, 200 m x 7 d": ((2014, 2015, 2016, 2017), Bands(200, 1, 7, 1)),
    "2014-2017, 3 x 100 m x 2 x 2 d": ((2014, 2015, 2016, 2017), Bands(100, 3, 2, 2)),
}
BASELINE_CASES = ("2014, 200 m x 7 d", "2014, 3 x 100 m x 2 x 2 d")


def events(years: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(DATA)
    dates = pd.to_datetime(frame["date_single"], format="%d/%m/%Y")
    keep = dates.dt.year.isin(years).to_numpy()
    days = dates.to_numpy().astype("datetime64[D]").astype(np.int64)
    return frame[["x", "y"]].to_numpy()[keep], days[keep]


def python_radius_graph(xy: np.ndarray, days: np.ndarray, bands: Bands, seed: int) -> np.ndarray:
    """Observed table and permutation exceedances, pair by pair in plain Python."""
    m, n_s, t_w, n_t = (
        bands.spatial_band,
        bands.spatial_bands,
        bands.temporal_band,
        bands.temporal_bands,
    )
    tree = cKDTree(xy)
    pairs = []
    for i, near in enumerate(tree.query_ball_point(xy, n_s * m)):
        for j in near:
            if j > i:
                d = float(np.hypot(*(xy[i] - xy[j])))
                if d < n_s * m:
                    pairs.append((i, j, 0 if d == 0 else int(d // m) + 1))
    t = [int(v) for v in days]
    ordered = sorted(t)
    n = len(t)
    totals = [0] * (n_t + 1)
    for k, ti in enumerate(ordered):  # pairs closer in time than each edge, from sorted dates
        last = k + 1
        for c in range(n_t):
            upto = bisect.bisect_left(ordered, ti + (c + 1) * t_w)
            totals[c] += upto - last
            last = upto
        totals[n_t] += n - last

    def table(tt: list[int]) -> list[list[int]]:
        counts = [[0] * (n_t + 1) for _ in range(n_s + 2)]
        for i, j, row in pairs:
            counts[row][min(abs(tt[i] - tt[j]) // t_w, n_t)] += 1
        for c in range(n_t + 1):
            counts[n_s + 1][c] = totals[c] - sum(counts[r][c] for r in range(n_s + 1))
        return counts

    observed = table(t)
    rng = random.Random(seed)
    for _ in range(ITERATIONS):
        shuffled = t[:]
        rng.shuffle(shuffled)
        table(shuffled)
    return np.array(observed)


def child(case: str, impl: str) -> None:
    years, bands = CASES[case]
    xy, days = events(years)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    t0, c0 = time.perf_counter(), time.process_time()
    if impl == "citywatch":
        observed = near_repeat(xy, days, bands, iterations=ITERATIONS, seed=1).observed
    else:
        observed = python_radius_graph(xy, days, bands, seed=1)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"case": case, "impl": impl, "events": len(days), "wall_s": wall, "cpu_s": cpu}
    out |= {"rss_before_mb": before, "observed": observed.tolist()}
    print(json.dumps(out))


def run_child(case: str, impl: str) -> dict[str, object]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", case, impl], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{impl} on {case} failed with status {status}")
    row: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
    row["peak_rss_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    return row


def main() -> None:
    print(f"Machine: {machine()}")
    print(f"Permutations: {ITERATIONS}; times exclude reading the CSV.\n")
    print("| case | events | implementation | wall s | CPU s | RSS before MB | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for case in CASES:
        impls = ["citywatch", "python-radius-graph"] if case in BASELINE_CASES else ["citywatch"]
        rows = [run_child(case, impl) for impl in impls]
        if len(rows) == 2 and rows[0]["observed"] != rows[1]["observed"]:
            raise SystemExit(f"{case}: the implementations disagree")
        for r in rows:
            print(
                f"| {r['case']} | {r['events']:,} | {r['impl']} | {r['wall_s']:.2f} | "
                f"{r['cpu_s']:.2f} | {r['rss_before_mb']:.0f} | {r['peak_rss_mb']:.0f} |"
            )
    print("\nNear Repeat Calculator 1.3 (its published 2014 run, 200 m x 7 d, 99 iterations):")
    print("534 s (0 h 8 min 54 s, data/near-repeat/chicago_burglary_2014_NRsummary.htm.gz).")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
