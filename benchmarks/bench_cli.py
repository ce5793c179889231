"""Command-line start-up: how long a user waits for a usage error (or a busy-port error).

Run: ``.venv/bin/python benchmarks/bench_cli.py`` (or ``make bench``).  Each case runs a
command with a usage error in a fresh process, five times (``city info`` without its pack: a
light room; ``stats compare`` without ``--from``: the heaviest room, pandas and SciPy), two ways:

* **CityWatch**: the root command loads only the room that runs (``citywatch.cli.COMMANDS``);
* **baseline**: every room's CLI module imported first, as the root command did before.

Both must print the same one-line error.  Reported: median wall and CPU seconds of the child
process, and the peak memory of the largest child.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from citywatch.cli import COMMANDS

ERRORS = {
    "city info": (
        ["city", "info"],
        "Error: Missing argument 'pack'. (see 'citywatch city info --help')",
    ),
    "stats compare": (
        ["stats", "compare", "--to", "2024-01-31"],
        "Error: Missing option '--from'. (see 'citywatch stats compare --help')",
    ),
}
EAGER = "; ".join(f"import {where.split(':')[0]}" for where in COMMANDS.values())
CASES = {
    "CityWatch (rooms loaded on use)": "from citywatch.cli import main; main()",
    "baseline: every room imported first": f"{EAGER}; from citywatch.cli import main; main()",
}


def run(code: str, args: list[str], expected: str) -> tuple[float, float]:
    """Wall and CPU seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 2 and done.stderr.strip() == expected, done.stderr
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    print(machine())
    print()
    print("| usage error | case | wall s (median of 5) | CPU s (median) |")
    print("|---|---|---|---|")
    for command, (args, expected) in ERRORS.items():
        for name, code in CASES.items():
            samples = [run(code, args, expected) for _ in range(5)]
            wall = statistics.median(s[0] for s in samples)
            cpu = statistics.median(s[1] for s in samples)
            print(f"| {command} | {name} | {wall:.2f} | {cpu:.2f} |")
    # RUSAGE_CHILDREN's max RSS is that of the largest child so far (a baseline run).
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\npeak memory of the largest child: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
