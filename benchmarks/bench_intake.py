"""Benchmark of the offline geocoder (``python benchmarks/bench_intake.py``).

Real data: the Baltimore pack (street centrelines, 96,964 directed edges) and the 10,578 named
intersections of two or more distinct streets published with them; the Shenzhen Futian pack.
Measured: index build (CPU seconds, peak traced memory) and CPU per crossing query.

Baseline, same run: brute force, i.e. each query answered by scanning every edge of the network
for the two normalised names and intersecting the node sets (no index), on the first
``BRUTE`` queries; the answers' node sets must agree.
"""

from __future__ import annotations

import csv
import gzip
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import machine

from citywatch.city import load_pack
from citywatch.city.geocode import Geocoder, hit_rate, normalise

DATA = Path(__file__).resolve().parents[1] / "data"
BRUTE = 200


def measured(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Result, CPU seconds and peak traced memory (MiB) of one call."""
    tracemalloc.start()
    started = time.process_time()
    out = fn()
    cpu = time.process_time() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, cpu, peak


def queries() -> list[tuple[str, float, float]]:
    rows = []
    with gzip.open(DATA / "baltimore" / "baltimore_named_intersections.csv.gz", "rt") as fh:
        for r in csv.DictReader(fh):
            names: list[str] = []
            for n in r["name"].split(" & "):
                if normalise(n) not in {normalise(x) for x in names}:
                    names.append(n)
            if len(names) >= 2:
                rows.append((" & ".join(names[:2]), float(r["lon"]), float(r["lat"])))
    return rows


def brute(edges: Any, a: str, b: str) -> set[int]:
    """Nodes where edges named ``a`` and ``b`` meet, by a full scan of the edge table."""
    norm = edges["name"].map(lambda x: normalise(x) if isinstance(x, str) else "")
    on_a = edges[norm == a]
    on_b = edges[norm == b]
    return set(np.concatenate([on_a["u"], on_a["v"]]).tolist()) & set(
        np.concatenate([on_b["u"], on_b["v"]]).tolist()
    )


def main() -> None:
    print(machine())
    pack = load_pack("baltimore")
    geo, build_cpu, build_mem = measured(lambda: Geocoder.from_network(pack.network))
    rows = queries()
    result, q_cpu, _ = measured(lambda: hit_rate(geo, rows, within_m=50.0))
    edges = pack.network.edges
    started = time.process_time()
    agree = 0
    for query, _, _ in rows[:BRUTE]:
        a, b = (normalise(p) for p in query.split(" & "))
        expected = brute(edges, a, b)
        got = set()
        if a in geo.nodes_of and b in geo.nodes_of:
            got = set(np.intersect1d(geo.nodes_of[a], geo.nodes_of[b]).tolist())
        agree += got == expected
    brute_cpu = (time.process_time() - started) / BRUTE
    print()
    print(
        "| pack | streets | index build CPU | peak memory | queries | CPU per query |"
        " first within 50 m | any of 5 within 50 m | median error |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| Baltimore | {geo.street_count:,} | {build_cpu:.2f} s | {build_mem:.0f} MiB | "
        f"{len(rows):,} | {q_cpu / len(rows) * 1e3:.2f} ms | {result['hit_rate']:.1%} | "
        f"{result['hit_rate_any']:.1%} | {result['median_m']:.1f} m |"
    )
    futian = load_pack("shenzhen_futian")
    fgeo, fcpu, fmem = measured(lambda: Geocoder.from_network(futian.network))
    _, one, _ = measured(lambda: [fgeo.geocode("深南大道 / 金田路") for _ in range(100)])
    print(
        f"| Shenzhen Futian | {fgeo.street_count:,} | {fcpu:.2f} s | {fmem:.0f} MiB | 100 | "
        f"{one / 100 * 1e3:.2f} ms | – | – | – |"
    )
    print()
    print(
        f"Baseline (brute force, full edge scan per query), same run: "
        f"{brute_cpu * 1e3:.0f} ms CPU per query on the first {BRUTE} queries, "
        f"node sets agree on {agree}/{BRUTE}."
    )


if __name__ == "__main__":
    main()
