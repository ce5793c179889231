"""Statistics over 10 million incidents in a partitioned Parquet dataset: dask against pandas.

Run: ``.venv/bin/python benchmarks/bench_parquet.py [ROWS]`` (or ``make bench``; default
10,000,000 rows).  The data are **synthetic, made by resampling real incidents**: the NYC vehicle
thefts of 2014 and the NYPD shootings in Manhattan (``data/manhattan``), each copy shifted by a
whole number of days over 2015-2024 so that the hour-of-day and weekday patterns stay real.  They
are written by :func:`citywatch.incidents.parquet.write_dataset` (one folder per month).

Each way runs in its own process, so that its peak memory (max RSS) is its own:

* **dask** (CityWatch): ``stats compare``, ``profile`` and ``quiet-days`` by station through
  :func:`citywatch.analytics.parquet.reduced_frame` (out of core, file by file);
* **pandas** (baseline): the needed columns of every file read into one frame, then the same
  statistics on it.

Both must give identical results (checked).  CPU time counts every thread of the process.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

ROOT = Path(__file__).resolve().parents[1]
TZ = "America/New_York"
PERIOD = (date(2023, 1, 1), date(2023, 12, 31))
CHUNK = 1_000_000


def _real_incidents() -> pd.DataFrame:
    from citywatch.city.bundled import load_pack
    from citywatch.incidents.load import load_incidents

    data = ROOT / "data" / "manhattan"
    files = [
        (data / "nyc_vehicle_thefts_2014.csv", "code"),
        (data / "nypd_shootings_historic.csv", "nypd_shootings"),
    ]
    return load_incidents(files=files, database=False, pack=load_pack("manhattan")).frame


def generate(folder: Path, rows: int) -> int:
    """Write ``rows`` resampled incidents into a dataset; return the real incidents used."""
    from citywatch.incidents.parquet import write_dataset

    real = _real_incidents()
    rng = np.random.default_rng(20261201)
    stamps = real["received_at"].to_numpy().astype("datetime64[us]").astype(np.int64)
    lo = np.datetime64("2015-01-01", "us").astype(np.int64)
    week = 7 * 86_400 * 10**6

    def chunks() -> object:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            pick = rng.integers(0, len(real), size=n)
            part = real.iloc[pick].reset_index(drop=True)
            # whole weeks keep the weekday and the hour (but for daylight saving time)
            target = lo + rng.integers(0, 520, size=n) * week
            weeks = (target - stamps[pick]) // week
            moved = stamps[pick] + weeks * week
            part["received_at"] = pd.to_datetime(moved, unit="us", utc=True)
            part["id"] = [f"synthetic:{start + i}" for i in range(n)]
            part["source_id"] = part["id"]
            part["solved"] = pd.array(rng.random(n) < 0.3, dtype="boolean")
            yield part.sort_values("received_at", kind="stable")

    write_dataset(chunks(), folder)  # type: ignore[arg-type]
    return len(real)


def _peak_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_way(way: str, folder: str) -> dict[str, object]:
    """One way's statistics, CPU time, wall time and peak memory (in this process)."""
    from citywatch.analytics.compare import compare
    from citywatch.analytics.profile import profile
    from citywatch.analytics.quiet import quiet_days
    from citywatch.analytics.scope import Period

    period = Period(*PERIOD)
    cpu, wall = time.process_time(), time.perf_counter()
    if way == "dask":
        from citywatch.analytics.parquet import reduced_frame

        # as the CLI does: local days for counts and zero days, hours of the two years profiled
        daily = reduced_frame(folder, tz=TZ, by="station", resolution="day")
        hourly = reduced_frame(
            folder, tz=TZ, by="station", first_day=period.previous_year().start, last_day=period.end
        )
    else:
        files = sorted(str(p) for p in Path(folder).rglob("*.parquet"))
        columns = ["received_at", "station", "category", "time_precision", "solved"]
        daily = hourly = pd.concat(
            (pd.read_parquet(f, columns=columns) for f in files), ignore_index=True
        )
    read_cpu = time.process_time() - cpu
    results = {
        "compare": compare(daily, period, tz=TZ, by="station").as_dict()["rows"],
        "profile": [r.as_dict() for r in profile(hourly, period, tz=TZ, by="station").rows],
        "quiet": quiet_days(daily, period, tz=TZ, by="station").as_dict()["rows"],
    }
    return {
        "way": way,
        "frame_rows": max(len(daily), len(hourly)),
        "read_cpu_s": read_cpu,
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.perf_counter() - wall,
        "peak_mib": _peak_mib(),
        "results": results,
    }


def main(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "incidents"
        start = time.perf_counter()
        real = generate(folder, rows)
        written = time.perf_counter() - start
        size = sum(p.stat().st_size for p in folder.rglob("*.parquet")) / 2**20
        files = len(list(folder.rglob("*.parquet")))
        out = []
        for way in ("dask", "pandas"):
            done = subprocess.run(
                [sys.executable, __file__, "--way", way, str(folder)],
                capture_output=True,
                text=True,
                check=True,
            )
            out.append(json.loads(done.stdout))
    same = out[0]["results"] == out[1]["results"]
    print(f"Machine: {machine()}")
    print(
        f"\n{rows:,} synthetic incidents resampled from {real:,} real ones (Manhattan), "
        f"{files:,} files, {size:,.0f} MiB on disk, written in {written:.0f} s; "
        f"compare + profile + quiet-days by station for {PERIOD[0]}..{PERIOD[1]}; "
        f"identical results: {'yes' if same else 'NO'}\n"
    )
    print("| way | rows held | read CPU s | total CPU s | wall s | peak memory MiB |")
    print("|---|---|---|---|---|---|")
    for r in out:
        print(
            f"| {r['way']} | {r['frame_rows']:,} | {r['read_cpu_s']:.1f} | {r['cpu_s']:.1f} | "
            f"{r['wall_s']:.1f} | {r['peak_mib']:,.0f} |"
        )
    if not same:
        sys.exit("the dask and pandas results differ")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--way":
        print(json.dumps(run_way(sys.argv[2], sys.argv[3]), default=str))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000)
