"""Every TOML file the project reads refuses an unknown key, naming it and where it is.

Each case takes a real bundled file, adds one misspelt key to one table and reads it back
through the product's own reader.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest

from citywatch.dispatch.duplicates import load_console_config
from citywatch.dispatch.policy import load_requirements
from citywatch.errors import DataError
from citywatch.incidents.parsing import load_mapping
from citywatch.incidents.sources import read_source
from citywatch.incidents.taxonomy import load_taxonomy

SHOOTINGS = (
    Path(__file__).resolve().parents[1] / "data" / "manhattan" / "nypd_shootings_historic.csv"
)


def _bundled(package: str, name: str) -> str:
    return resources.files(package).joinpath(name).read_text("utf-8")


def _with_key(text: str, table: str, line: str) -> str:
    """``text`` with ``line`` added as the first key of ``[table]`` (``""``: the top level)."""
    if not table:
        return f"{line}\n{text}"
    header = f"[{table}]\n"
    assert header in text, header
    return text.replace(header, f"{header}{line}\n", 1)


CASES: list[tuple[str, str, str, str, Callable[[Path], object], str]] = [
    (
        "citywatch.dispatch",
        "data/requirements.toml",
        "default",
        "unitz = 3",
        load_requirements,
        r"requirements\.toml \[default\]: unknown key\(s\) unitz; allowed: prefer_slack_s, units",
    ),
    (
        "citywatch.dispatch",
        "data/requirements.toml",
        "unit_types.foot",
        'speed = "fast"',
        load_requirements,
        r"\[unit_types\.foot\]: unknown key\(s\) speed",
    ),
    (
        "citywatch.dispatch",
        "data/requirements.toml",
        "[rules]",
        "max_prio = 2",
        load_requirements,
        r"rule 1 \(.*\): unknown key\(s\) max_prio",
    ),
    (
        "citywatch.dispatch",
        "data/requirements.toml",
        "",
        "defaults = 1",
        load_requirements,
        r"unknown key\(s\) defaults; allowed: default, rules, unit_types",
    ),
    (
        "citywatch.dispatch",
        "data/console.toml",
        "duplicates",
        "radius = 100.0",
        load_console_config,
        r"console\.toml \[duplicates\]: unknown key\(s\) radius; allowed: compatible, radius_m",
    ),
    (
        "citywatch.dispatch",
        "data/console.toml",
        "premise.lookback_days",
        "shootin = 30",
        load_console_config,
        r"console\.toml \[premise\.lookback_days\]: unknown category shootin",
    ),
    (
        "citywatch.incidents",
        "data/taxonomy.toml",
        "categories.shooting",
        "priorty = 2",
        load_taxonomy,
        r"\[categories\.shooting\]: unknown key\(s\) priorty",
    ),
    (
        "citywatch.incidents",
        "data/taxonomy.toml",
        "",
        "verison = 2",
        load_taxonomy,
        r"unknown key\(s\) verison",
    ),
    (
        "citywatch.incidents",
        "data/mappings/nypd_shootings.toml",
        "",
        'time_zone = "UTC"',
        load_mapping,
        r"mapping .*nypd_shootings\.toml: unknown key\(s\) time_zone",
    ),
    (
        "citywatch.incidents",
        "data/mappings/nypd_shootings.toml",
        "disposition",
        'wounded = "injured"',
        lambda p: read_source(SHOOTINGS, "nypd_shootings", mapping=p),
        r"\[disposition\]: unknown key\(s\) wounded; allowed: fatal, non_fatal",
    ),
]


@pytest.mark.parametrize(("package", "name", "table", "line", "read", "message"), CASES)
def test_unknown_key_is_named(
    tmp_path: Path,
    package: str,
    name: str,
    table: str,
    line: str,
    read: Callable[[Path], object],
    message: str,
) -> None:
    text = _bundled(package, name)
    path = tmp_path / Path(name).name
    path.write_text(text, encoding="utf-8")
    read(path)  # the bundled file itself is accepted
    if table == "[rules]":  # an array of tables: the first [[rules]] entry
        changed = text.replace("[[rules]]\n", f"[[rules]]\n{line}\n", 1)
    else:
        changed = _with_key(text, table, line)
    path.write_text(changed, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read(path)
