"""Places of the bundled packs: where each comes from and how many of each kind it holds.

The counts are the ones docs/city-packs.md states for each pack ("Where each bundled pack's
places come from"); the Manhattan places are the NYC Open Data files in data/manhattan/places/.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import shapely

from citywatch.city import load_pack

DOC = Path(__file__).resolve().parents[2] / "docs" / "city-packs.md"

#: Places per kind of every bundled pack, as built from data/packs/NAME.toml.
BUNDLED_PLACES: dict[str, dict[str, int]] = {
    "manhattan": {"transit": 150, "market": 42, "hospital": 3},
    "shenzhen": {},
    "shenzhen_futian": {},
    "heidelberg": {"park": 86, "school": 20, "transit": 12, "hospital": 5, "market": 2},
    "baltimore": {"school": 74, "park": 60, "market": 53, "hospital": 10, "transit": 2},
}


@pytest.mark.parametrize("name", ["manhattan", "shenzhen", "shenzhen_futian", "baltimore"])
def test_bundled_pack_place_counts_per_kind(name: str) -> None:
    pack = load_pack(name)
    assert dict(Counter(p.kind for p in pack.places)) == BUNDLED_PLACES[name]
    assert len({p.id for p in pack.places}) == len(pack.places)
    assert pack.info()["place_kinds"] == BUNDLED_PLACES[name]


@pytest.mark.slow
def test_heidelberg_place_counts_per_kind() -> None:
    pack = load_pack("heidelberg")
    assert dict(Counter(p.kind for p in pack.places)) == BUNDLED_PLACES["heidelberg"]


def test_manhattan_places_are_the_open_data_points_inside_the_precincts() -> None:
    pack = load_pack("manhattan")
    city = shapely.union_all([j.geometry for j in pack.level("city")])
    assert all(city.contains(p.geometry) for p in pack.places)
    assert all(p.geometry.geom_type == "Point" and p.name for p in pack.places)
    by_id = {p.id: p for p in pack.places}
    # Rows of the three sources, coordinates as published.
    assert by_id["subway:80"].name == "Times Sq - 42nd St"
    assert by_id["subway:80"].geometry.coords[0] == (-73.98676800153976, 40.75461199851542)
    union_square = next(p for p in pack.places if p.name == "Union Square Greenmarket")
    assert union_square.kind == "market"
    assert union_square.geometry.coords[0] == (-73.990329, 40.737133)
    hospitals = sorted(p.name for p in pack.places if p.kind == "hospital")
    assert hospitals == [
        "Bellevue Hospital Center",
        "Harlem Hospital Center",
        "Metropolitan Hospital Center",
    ]
    # Stations outside the precincts (Marble Hill, Roosevelt Island, the Bronx) were cut.
    names = {p.name for p in pack.places}
    assert "Roosevelt Island - Main St" not in names and "Marble Hill - 225th St" not in names


def test_the_docs_state_each_packs_place_counts() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("Where each bundled pack's places come from:")[1].split("\n\n")[1]
    rows = {
        line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| `")
    }
    manhattan = rows["`manhattan`"]
    assert "195 from" in manhattan
    assert "150 transit" in manhattan and "42 markets" in manhattan and "3 hospitals" in manhattan
    assert rows["`shenzhen`, `shenzhen_futian`"].split("|")[2].strip().startswith("none")
    assert "125 from" in rows["`heidelberg`"] and "86 parks" in rows["`heidelberg`"]
    assert "199 from" in rows["`baltimore`"] and "74 schools" in rows["`baltimore`"]
