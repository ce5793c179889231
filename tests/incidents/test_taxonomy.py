"""The bundled bilingual taxonomy: codes, labels, groups, priorities and checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from citywatch.errors import DataError, ValidationError
from citywatch.incidents.taxonomy import load_taxonomy

# The categories the issue requires, with the Chinese terms police in China report.
REQUIRED = {
    "robbery": "抢劫",
    "snatching": "抢夺",
    "theft": "盗窃",
    "pickpocketing": "扒窃",
    "fraud": "诈骗",
    "telecom_fraud": "电信诈骗",
    "public_order": "治安",
    "traffic": "交通",
    "assistance": "求助",
}


def test_required_categories_have_their_chinese_labels() -> None:
    tax = load_taxonomy()
    for code, zh in REQUIRED.items():
        assert tax.label(code, "zh") == zh
    assert tax.label("shooting", "en") == "Shooting"
    assert "vehicle_theft" in tax.codes


def test_codes_are_snake_case_and_priorities_in_range() -> None:
    tax = load_taxonomy()
    for code, cat in tax.categories.items():
        assert code.isascii() and code == code.lower() and " " not in code
        assert 1 <= cat.priority <= 5


def test_groups() -> None:
    tax = load_taxonomy()
    assert tax.expand("two_robberies") == frozenset({"robbery", "snatching"})
    assert tax.label("two_robberies", "zh") == "两抢"
    assert tax.label("criminal", "zh") == "刑事"
    criminal = tax.expand("criminal")
    # brute force: exactly the categories flagged criminal
    assert criminal == {c for c, cat in tax.categories.items() if cat.criminal}
    assert {"robbery", "theft", "telecom_fraud", "shooting"} <= criminal
    assert not {"traffic", "assistance", "public_order"} & criminal
    # a category expands to itself and its descendants
    assert tax.expand("fraud") == frozenset({"fraud", "telecom_fraud"})
    assert {"pickpocketing", "vehicle_theft", "burglary"} <= tax.expand("theft")
    assert tax.expand("robbery") == frozenset({"robbery"})
    # nested groups: property contains the two robberies and all thefts
    assert tax.expand("two_robberies") | tax.expand("theft") <= tax.expand("property")


def test_criminal_flag_and_priority() -> None:
    tax = load_taxonomy()
    assert tax.is_criminal("theft") is True
    assert tax.is_criminal("traffic_accident") is False
    assert tax.priority("robbery") == 1
    assert tax.priority("police_activity") == 5


def test_proactive_categories_are_what_patrols_find() -> None:
    tax = load_taxonomy()
    assert tax.proactive_codes() == {"drugs", "weapons", "police_activity"}
    assert tax.is_proactive("drugs") and not tax.is_proactive("burglary")


def test_unknown_codes_raise_validation_errors() -> None:
    tax = load_taxonomy()
    with pytest.raises(ValidationError, match="unknown incident category 'burgalry'"):
        tax.is_criminal("burgalry")
    with pytest.raises(ValidationError, match="unknown category or group"):
        tax.expand("nope")
    with pytest.raises(ValidationError, match="language"):
        tax.label("theft", "fr")  # type: ignore[arg-type]


def test_malformed_files_are_rejected(tmp_path: Path) -> None:
    bad_parent = tmp_path / "a.toml"
    bad_parent.write_text(
        '[categories.x]\nzh = "x"\nen = "x"\npriority = 3\ncriminal = true\nparent = "y"\n'
    )
    with pytest.raises(DataError, match="unknown parent 'y'"):
        load_taxonomy(bad_parent)
    cycle = tmp_path / "b.toml"
    cycle.write_text(
        '[categories.x]\nzh = "x"\nen = "x"\npriority = 3\ncriminal = true\n'
        '[groups.a]\nzh = "a"\nen = "a"\nmembers = ["b"]\n'
        '[groups.b]\nzh = "b"\nen = "b"\nmembers = ["a"]\n'
    )
    with pytest.raises(DataError, match="cycle"):
        load_taxonomy(cycle)
    missing = tmp_path / "c.toml"
    missing.write_text('[categories.x]\nzh = "x"\npriority = 3\ncriminal = true\n')
    with pytest.raises(DataError, match="missing key 'en'"):
        load_taxonomy(missing)
