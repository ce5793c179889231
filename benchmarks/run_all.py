"""Run every benchmark script in this folder and collect their tables in ``benchmarks/RESULTS.md``.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/run_all.py [NAME ...]`` for some of them,
e.g. ``routing plan``).  Each ``bench_*.py`` prints its machine line and Markdown tables.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    sections = []
    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, check=False
        )
        elapsed = time.perf_counter() - start
        print(done.stdout, end="")
        if done.returncode != 0:
            failed.append(script.name)
            print(done.stderr[-3000:], file=sys.stderr)
        sections.append(f"## {script.name} ({elapsed:.0f} s)\n\n{done.stdout.strip()}\n")
    (HERE / "RESULTS.md").write_text(
        "# Benchmark results\n\nWritten by `benchmarks/run_all.py`.\n\n" + "\n".join(sections),
        encoding="utf-8",
    )
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
