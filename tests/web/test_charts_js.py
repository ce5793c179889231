"""The dashboard's count axes (charts.js) have whole-number ticks, run in Node when present."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from citywatch.api.app import STATIC_DIR

NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="no node on this machine to run the ES module")
def test_count_ticks_are_whole_numbers_and_cover_the_data() -> None:
    script = (
        f"import('{(STATIC_DIR / 'charts.js').as_uri()}').then((m) => {{"
        "const out = [];"
        "for (let x = 0; x <= 500; x++) {"
        " const max = m.niceMax(x); out.push([x, max, m.countTicks(max)]); }"
        "console.log(JSON.stringify(out)); });"
    )
    assert NODE is not None
    res = subprocess.run(
        [NODE, "-e", script], capture_output=True, text=True, check=True, timeout=60
    )
    rows = json.loads(res.stdout)
    assert len(rows) == 501
    for x, top, ticks in rows:
        assert top >= max(x, 1), x
        assert all(float(t).is_integer() for t in ticks), (x, ticks)  # never 2.5 incidents
        assert ticks[0] == 0 and ticks[-1] == top
        assert top < 2 * max(x, 1) + 2, x  # the axis is not wastefully tall
    assert [r[1] for r in rows[:8]] == [1, 1, 2, 4, 4, 6, 6, 8]
