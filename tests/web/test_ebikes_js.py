"""The e-bike panel's helpers (ebikes.js) in Node: a theft time typed in the city's wall clock
becomes the instant Python's zoneinfo gives (across DST changes), and stolen items read as
"colour make"."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from citywatch.api.app import STATIC_DIR

NODE = shutil.which("node")
# The browser globals the dashboard's modules read when they load.
STUBS = (
    "const store = { getItem: () => null, setItem: () => {}, removeItem: () => {} };"
    "globalThis.sessionStorage = store; globalThis.localStorage = store;"
    "globalThis.document = { documentElement: {}, addEventListener: () => {} };"
)


def _run(body: str) -> object:
    assert NODE is not None
    script = f"{STUBS} import('{(STATIC_DIR / 'ebikes.js').as_uri()}').then((m) => {{{body}}});"
    res = subprocess.run(
        [NODE, "-e", script], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(res.stdout)


def _walls() -> list[str]:
    """Every half hour of the days around New York's 2026 DST changes, and some other days."""
    days = ["2026-03-07", "2026-03-08", "2026-03-09", "2026-10-31", "2026-11-01", "2026-12-01"]
    out = []
    for day in days:
        start = datetime.fromisoformat(day)
        out += [(start + timedelta(minutes=30 * i)).strftime("%Y-%m-%dT%H:%M") for i in range(48)]
    return out


@pytest.mark.skipif(NODE is None, reason="no node on this machine to run the ES module")
@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Shanghai", "Europe/London"])
def test_city_wall_clock_to_instant_matches_zoneinfo(zone: str) -> None:
    walls = _walls()
    got = _run(
        f"console.log(JSON.stringify({json.dumps(walls)}.map((w) => m.cityTimeToIso(w, "
        f"{json.dumps(zone)}))));"
    )
    assert isinstance(got, list)
    expected = [
        datetime.fromisoformat(w)
        .replace(tzinfo=ZoneInfo(zone))
        .astimezone(UTC)
        .strftime("%Y-%m-%dT%H:%M:%S.000Z")
        for w in walls
    ]
    assert got == expected


@pytest.mark.skipif(NODE is None, reason="no node on this machine to run the ES module")
def test_items_read_as_colour_and_make() -> None:
    items = [
        {"kind": "EL", "make": "OTHER", "colour": "WHIBLK"},
        {"kind": "MT", "make": "RALEIGH", "colour": None},
        {"kind": "EL", "make": None, "colour": None},
    ]
    got = _run(
        f"console.log(JSON.stringify([m.itemsLabel({json.dumps(items)}), m.itemsLabel([])]));"
    )
    assert got == ["WHIBLK OTHER; RALEIGH", ""]
