"""Every label of the dashboard is translated: the table is complete for both languages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from citywatch.api.app import STATIC_DIR
from citywatch.dispatch.accounts import Role
from citywatch.dispatch.lifecycle import INCIDENT_LIFECYCLE, UNIT_LIFECYCLE
from citywatch.dispatch.policy import REASON_TEXTS, RecommendationStatus, load_requirements
from tests.web.conftest import MESSAGES

CJK = re.compile(r"[\u4e00-\u9fff]")


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in Path(STATIC_DIR).glob("*.js"):
        keys |= set(re.findall(r"\bt\(\"([a-z0-9_.]+)\"", path.read_text(encoding="utf-8")))
        # Keys held in tables, e.g. ["kpi.response_p50", ...] and ["J", "help.next", ...].
        keys |= set(re.findall(r"\"((?:kpi|help)\.[a-z0-9_]+)\"", path.read_text(encoding="utf-8")))
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    keys |= set(re.findall(r'data-i18n(?:-title)?="([a-z0-9_.]+)"', html))
    return keys


def test_both_languages_have_the_same_non_empty_labels() -> None:
    assert set(MESSAGES) == {"en", "zh"}
    assert set(MESSAGES["en"]) == set(MESSAGES["zh"])
    assert all(v.strip() for lang in MESSAGES.values() for v in lang.values())
    # Chinese labels are Chinese (a few are symbols only).
    not_chinese = [k for k, v in MESSAGES["zh"].items() if not CJK.search(v)]
    assert not_chinese == ["help.button"]
    placeholders = re.compile(r"\{[a-z]+\}")
    for key, text in MESSAGES["en"].items():
        assert sorted(placeholders.findall(text)) == sorted(
            placeholders.findall(MESSAGES["zh"][key])
        ), key


def test_every_key_used_by_the_page_is_translated() -> None:
    used = used_keys()
    assert len(used) > 80
    assert used - set(MESSAGES["en"]) == set()


def test_every_status_role_unit_type_and_event_is_translated() -> None:
    keys = set(MESSAGES["en"])
    statuses = set(UNIT_LIFECYCLE.statuses) | set(INCIDENT_LIFECYCLE.statuses)
    assert {f"status.{s}" for s in statuses} <= keys
    assert {f"role.{r.value}" for r in Role} <= keys
    assert {f"unit_type.{u}" for u in load_requirements().unit_modes} <= keys
    events = [
        "incident.created",
        "incident.status",
        "unit.created",
        "unit.moved",
        "unit.status",
        "assignment.created",
    ]
    assert {f"event.{e}" for e in events} <= keys


def test_every_policy_reason_and_recommendation_status_is_translated() -> None:
    # The English strings are the server's own texts, so both can never drift apart.
    assert {
        k[len("reason.") :]: v for k, v in MESSAGES["en"].items() if k.startswith("reason.")
    } == {
        **REASON_TEXTS,
        "or": " or ",
    }
    fields = re.compile(r"\{([a-z_]+)(?::[^}]*)?\}")
    for code, text in REASON_TEXTS.items():
        zh = MESSAGES["zh"][f"reason.{code}"]
        assert sorted(fields.findall(zh)) == sorted(fields.findall(text)), code
        assert CJK.search(zh), code
    assert {f"rec_status.{s}" for s in get_args(RecommendationStatus)} <= set(MESSAGES["zh"])


def test_error_codes_of_the_api_are_translated() -> None:
    codes = ["validation_error", "off_network", "not_authenticated", "forbidden", "not_found"]
    codes += ["conflict", "internal_error"]
    assert {f"error.{c}" for c in codes} <= set(MESSAGES["zh"]) & set(MESSAGES["en"])
