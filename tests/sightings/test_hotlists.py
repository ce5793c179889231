"""Hotlist entries: validation, audit with the stated purpose, roles per list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from citywatch.dispatch.accounts import Principal, Role
from citywatch.errors import ConflictError, PermissionDeniedError, ValidationError
from citywatch.store.base import Base
from citywatch.store.dispatch_models import AuditRecord
from citywatch.surveillance.hotlists import (
    NewEntry,
    add_entry,
    readable_lists,
    search_entries,
    update_entry,
    withdraw_entry,
)
from citywatch.surveillance.matching import SightingKind, ValueKey

OURS = {"hotlists", "hotlist_entries", "sightings", "sighting_alerts", "sighting_alert_recipients"}
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ADMIN = Principal("boss", Role.ADMIN)
ANALYST = Principal("ana", Role.ANALYST)
DISPATCHER = Principal("disp", Role.DISPATCHER)
OFFICER = Principal("off13", Role.STATION_OFFICER, "13")


def _ours(obj: Any, name: str | None, kind: str, _reflected: bool, _other: Any) -> bool:
    table = name if kind == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table in OURS


def test_migration_creates_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": _ours})
        assert compare_metadata(context, Base.metadata) == []


def _bike(**kw: Any) -> NewEntry:
    base: dict[str, Any] = {
        "kind": "ebike_tag",
        "value": "tag-00 17a",
        "reason": "stolen_ebike",
        "owner": "Station 13",
        "legal_basis": "theft report, penal code s.264",
        "case_ref": "T-2026-0001",
        "label": "red Yadea",
    }
    return NewEntry(**{**base, **kw})


def _audits(s: Session, action: str) -> list[AuditRecord]:
    return list(
        s.scalars(select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.seq))
    )


def test_add_entry_is_audited_with_purpose_and_keyed(engine: Engine) -> None:
    key = ValueKey(b"k" * 32)
    with Session(engine) as s, s.begin():
        entry = add_entry(
            s,
            _bike(),
            actor="off13",
            purpose="theft report T-2026-0001",
            who=OFFICER,
            key=key,
            now=NOW,
        )
        assert entry.list_name == "stolen_ebikes"
        assert entry.value is None  # hashes only by default
        assert entry.expires_at == NOW + timedelta(days=90)
        (audit,) = _audits(s, "hotlist.create")
        assert audit.after["purpose"] == "theft report T-2026-0001"
        assert audit.entity_id == str(entry.id)
        # spaces and dashes do not matter, case does not matter
        found = search_entries(
            s,
            actor="off13",
            purpose="check",
            who=OFFICER,
            value="TAG0017A",
            kind="ebike_tag",
            key=key,
            now=NOW,
        )
        assert [e.id for e in found] == [entry.id]
        (search,) = _audits(s, "hotlist.search")
        assert search.after["returned"] == 1 and search.after["purpose"] == "check"
        assert key.of(SightingKind.EBIKE_TAG, "TAG0017A") != ValueKey(b"x" * 32).of(
            SightingKind.EBIKE_TAG, "TAG0017A"
        )


def test_invalid_entries_are_refused(engine: Engine) -> None:
    key = ValueKey(b"k" * 32)
    with Session(engine) as s, s.begin():
        bad: list[tuple[dict[str, Any], str]] = [
            ({"kind": "face"}, "kind"),
            ({"reason": "suspicious"}, "reason"),
            ({"legal_basis": "  "}, "legal_basis"),
            ({"priority": 9}, "priority"),
            ({"expires_at": NOW - timedelta(seconds=1)}, "expires_at"),
            ({"expires_at": NOW + timedelta(days=400)}, "expires_at"),
            ({"reason": "wanted_person", "kind": "subject_ref", "case_ref": None}, "case_ref"),
            ({"value": "xyz", "hashed": True}, "value"),
        ]
        for change, field in bad:
            with pytest.raises(ValidationError) as err:
                add_entry(s, _bike(**change), actor="a", purpose="p", key=key, now=NOW)
            assert err.value.field == field, change
        with pytest.raises(ValidationError, match="purpose"):
            add_entry(s, _bike(), actor="a", purpose=" ", key=key, now=NOW)
        add_entry(s, _bike(), actor="a", purpose="p", key=key, now=NOW)
        with pytest.raises(ConflictError):
            add_entry(s, _bike(value="TAG0017A"), actor="a", purpose="p", key=key, now=NOW)


def test_roles_restrict_lists(engine: Engine) -> None:
    key = ValueKey(b"k" * 32)
    with Session(engine) as s, s.begin():
        assert readable_lists(s, ANALYST) == []
        assert "watchlist" not in readable_lists(s, DISPATCHER)
        assert "watchlist" in readable_lists(s, OFFICER)
        offender = _bike(kind="subject_ref", value="CASE-77", reason="repeat_offender")
        with pytest.raises(PermissionDeniedError):
            add_entry(s, offender, actor="off13", purpose="p", who=OFFICER, key=key, now=NOW)
        entry = add_entry(s, offender, actor="boss", purpose="p", who=ADMIN, key=key, now=NOW)
        with pytest.raises(PermissionDeniedError):
            search_entries(s, actor="disp", purpose="p", who=DISPATCHER, lists=["watchlist"])
        assert search_entries(s, actor="disp", purpose="p", who=DISPATCHER, now=NOW) == []
        with pytest.raises(PermissionDeniedError):
            search_entries(s, actor="ana", purpose="p", who=ANALYST, lists=["stolen_ebikes"])
        changed = update_entry(
            s, entry.id, {"priority": 1}, actor="boss", purpose="escalated", who=ADMIN, now=NOW
        )
        assert changed.priority == 1
        (upd,) = _audits(s, "hotlist.update")
        assert (upd.before["priority"], upd.after["priority"]) == (3, 1)
        gone = withdraw_entry(s, entry.id, actor="boss", purpose="arrested", who=ADMIN, now=NOW)
        assert gone.status == "withdrawn" and not gone.active(NOW)
        with pytest.raises(ConflictError):
            withdraw_entry(s, entry.id, actor="boss", purpose="again", who=ADMIN, now=NOW)
