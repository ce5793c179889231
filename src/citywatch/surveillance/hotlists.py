"""Hotlists: references to look for (stolen vehicles and e-bikes, wanted persons, watchlists).

Each entry says what to look for (a plate, an e-bike tag or an external subject reference,
stored as its keyed hash: :mod:`citywatch.surveillance.matching`), why (the reason and the
external case reference), who owns it, on what legal basis, until when, and how urgent a hit
is.  Every creation, change, withdrawal and search is audited with the purpose the caller
stated.  Each list names the roles that may read it and those that may change it; a station
officer reads the lists of its role but receives only the alerts of its area (see
:mod:`citywatch.surveillance.alerts`).

These functions work inside the caller's session and transaction (the e-bike registry puts a
stolen tag on the hotlist in the same transaction as the theft report); role checks are made
when a :class:`~citywatch.dispatch.accounts.Principal` is passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.audit import append_audit
from citywatch.domain import PRIORITY_DEFAULT, PRIORITY_RANGE
from citywatch.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from citywatch.store.sightings_models import HotlistEntryRow, HotlistRow
from citywatch.surveillance.matching import HotlistReason, SightingKind, ValueKey, normalise

__all__ = [
    "DEFAULT_EXPIRY_DAYS",
    "DEFAULT_LISTS",
    "LIST_OF_REASON",
    "MAX_EXPIRY_DAYS",
    "HotlistEntry",
    "NewEntry",
    "add_entry",
    "check_purpose",
    "ensure_lists",
    "entry_row",
    "get_entry",
    "list_names",
    "readable_lists",
    "search_entries",
    "update_entry",
    "withdraw_entry",
]

#: An entry without an expiry lapses after this many days; none may run longer than the maximum
#: (a hotlist is reviewed, not kept forever).
DEFAULT_EXPIRY_DAYS: Final = 90
MAX_EXPIRY_DAYS: Final = 365
_MAX_PURPOSE = 500

_OPERATIONS = [Role.ADMIN, Role.COMMANDER, Role.DISPATCHER, Role.STATION_OFFICER]
#: The lists every database has: name -> (title, read roles, write roles).  Analysts and unit
#: devices read none; the watchlist of repeat offenders is for commanders and stations only.
DEFAULT_LISTS: Final[dict[str, tuple[str, list[Role], list[Role]]]] = {
    "stolen_vehicles": ("Stolen vehicles", _OPERATIONS, _OPERATIONS),
    "stolen_ebikes": ("Stolen e-bikes", _OPERATIONS, _OPERATIONS),
    "wanted_persons": ("Wanted persons", _OPERATIONS, [Role.ADMIN, Role.COMMANDER]),
    "watchlist": (
        "Repeat offenders",
        [Role.ADMIN, Role.COMMANDER, Role.STATION_OFFICER],
        [Role.ADMIN, Role.COMMANDER],
    ),
}
#: The list an entry goes on when the caller names none.
LIST_OF_REASON: Final = {
    HotlistReason.STOLEN_VEHICLE: "stolen_vehicles",
    HotlistReason.STOLEN_EBIKE: "stolen_ebikes",
    HotlistReason.WANTED_PERSON: "wanted_persons",
    HotlistReason.REPEAT_OFFENDER: "watchlist",
}
_NEEDS_CASE = frozenset({HotlistReason.WANTED_PERSON, HotlistReason.REPEAT_OFFENDER})


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to put on a hotlist (``list_name`` None: the list of its reason)."""

    kind: str
    value: str
    reason: str
    owner: str
    legal_basis: str
    case_ref: str | None = None
    label: str | None = None
    priority: int = PRIORITY_DEFAULT
    expires_at: datetime | None = None
    list_name: str | None = None
    hashed: bool = False
    synthetic: bool = False
    source: str = "api"


@dataclass(frozen=True, slots=True)
class HotlistEntry:
    """A stored entry as the API shows it (the value only when the service keeps values)."""

    id: int
    list_name: str
    kind: str
    value: str | None
    hashed: bool
    reason: str
    case_ref: str | None
    label: str | None
    owner: str
    legal_basis: str
    priority: int
    expires_at: datetime
    status: str
    synthetic: bool
    source: str
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime

    @classmethod
    def of(cls, row: HotlistEntryRow) -> HotlistEntry:
        """The entry of a row."""
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (times ISO 8601)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("expires_at", "created_at", "updated_at"):
            out[name] = out[name].isoformat()
        return out

    def active(self, at: datetime) -> bool:
        """Whether the entry matches sightings at ``at``."""
        return self.status == "active" and self.expires_at > at


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def check_purpose(purpose: str | None) -> str:
    """The stated purpose of a hotlist operation, trimmed.

    Raises
    ------
    ValidationError
        When it is missing, blank or longer than 500 characters.
    """
    text = (purpose or "").strip()
    if not text or len(text) > _MAX_PURPOSE:
        raise ValidationError(
            f"state the purpose of this hotlist operation (1-{_MAX_PURPOSE} characters)",
            field="purpose",
        )
    return text


def ensure_lists(session: Session, now: datetime | None = None) -> None:
    """Create the :data:`DEFAULT_LISTS` that the database lacks (idempotent)."""
    have = set(session.scalars(select(HotlistRow.name)))
    for name, (title, read, write) in DEFAULT_LISTS.items():
        if name not in have:
            session.add(
                HotlistRow(
                    name=name,
                    title=title,
                    read_roles=[r.value for r in read],
                    write_roles=[r.value for r in write],
                    created_at=_now(now),
                )
            )
    session.flush()


def list_names(session: Session) -> set[str]:
    """Names of every hotlist of the database."""
    ensure_lists(session)
    return set(session.scalars(select(HotlistRow.name)))


def _list(session: Session, name: str) -> HotlistRow:
    ensure_lists(session)
    row = session.get(HotlistRow, name)
    if row is None:
        raise NotFoundError(f"no hotlist {name!r}")
    return row


def readable_lists(session: Session, who: Principal) -> list[str]:
    """Names of the hotlists the caller's role may read, sorted."""
    ensure_lists(session)
    rows = session.scalars(select(HotlistRow).order_by(HotlistRow.name))
    return [r.name for r in rows if who.role.value in r.read_roles]


def _check(row: HotlistRow, who: Principal | None, *, write: bool) -> None:
    if who is None:
        return
    roles = row.write_roles if write else row.read_roles
    if who.role.value not in roles:
        verb = "change" if write else "read"
        raise PermissionDeniedError(f"role {who.role} may not {verb} hotlist {row.name}")


def _expiry(expires_at: datetime | None, at: datetime) -> datetime:
    if expires_at is None:
        return at + timedelta(days=DEFAULT_EXPIRY_DAYS)
    if expires_at.tzinfo is None:
        raise ValidationError("expires_at needs a time zone", field="expires_at")
    if expires_at <= at:
        raise ValidationError("expires_at must be in the future", field="expires_at")
    if expires_at > at + timedelta(days=MAX_EXPIRY_DAYS):
        raise ValidationError(
            f"an entry may run at most {MAX_EXPIRY_DAYS} days; review and renew it",
            field="expires_at",
        )
    return expires_at


def _text(value: str | None, name: str, limit: int, *, required: bool) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            raise ValidationError(f"{name} is required", field=name)
        return None
    if len(text) > limit:
        raise ValidationError(f"{name} is longer than {limit} characters", field=name)
    return text


def _validated(entry: NewEntry) -> tuple[SightingKind, HotlistReason, str]:
    try:
        kind = SightingKind(entry.kind)
    except ValueError:
        raise ValidationError(f"unknown kind {entry.kind!r}", field="kind") from None
    try:
        reason = HotlistReason(entry.reason)
    except ValueError:
        raise ValidationError(f"unknown reason {entry.reason!r}", field="reason") from None
    if reason in _NEEDS_CASE and not (entry.case_ref or "").strip():
        raise ValidationError(f"reason {reason} needs an external case reference", field="case_ref")
    if not PRIORITY_RANGE[0] <= entry.priority <= PRIORITY_RANGE[1]:
        raise ValidationError("priority must be {}-{}".format(*PRIORITY_RANGE), field="priority")
    if len(entry.value) > 128:
        raise ValidationError("value is longer than 128 characters", field="value")
    return kind, reason, normalise(kind, entry.value, hashed=entry.hashed)


def add_entry(
    session: Session,
    entry: NewEntry,
    *,
    actor: str,
    purpose: str,
    who: Principal | None = None,
    key: ValueKey | None = None,
    store_values: bool = False,
    now: datetime | None = None,
) -> HotlistEntry:
    """Put a reference on a hotlist, audited (``hotlist.create``) with the stated purpose.

    Parameters
    ----------
    session : Session
        The caller's session; the entry commits (or rolls back) with its transaction.
    entry : NewEntry
        What to look for and why.
    actor : str
        Who does it (user name, or ``"system"``), for the audit trail.
    purpose : str
        Why, in the caller's words (audited).
    who : Principal, optional
        When given, its role must be among the list's write roles.
    key : ValueKey, optional
        The sightings key (:meth:`ValueKey.open` by default).
    store_values : bool
        Keep the value itself, not only its keyed hash.
    now : datetime, optional
        The time of the change (now by default).

    Returns
    -------
    HotlistEntry
        The new entry.

    Raises
    ------
    ValidationError
        For an unknown kind or reason, a missing legal basis, owner or case reference, a bad
        priority, or an expiry in the past or more than :data:`MAX_EXPIRY_DAYS` ahead.
    PermissionDeniedError
        When ``who`` may not change the list.
    ConflictError
        When the list already has an active entry for that value.
    """
    at = _now(now)
    why = check_purpose(purpose)
    values = entry_row(
        entry, actor=actor, key=key or ValueKey.open(), store_values=store_values, at=at
    )
    hotlist = _list(session, values["list_name"])
    _check(hotlist, who, write=True)
    clash = session.scalar(
        select(HotlistEntryRow.id).where(
            HotlistEntryRow.list_name == hotlist.name,
            HotlistEntryRow.value_key == values["value_key"],
            HotlistEntryRow.status == "active",
        )
    )
    if clash is not None:
        raise ConflictError(f"hotlist {hotlist.name} already has this value (entry {clash})")
    row = HotlistEntryRow(**values)
    session.add(row)
    session.flush()
    out = HotlistEntry.of(row)
    _audit(session, actor, "hotlist.create", out, None, why, at)
    return out


def entry_row(
    entry: NewEntry, *, actor: str, key: ValueKey, store_values: bool, at: datetime
) -> dict[str, Any]:
    """The validated column values of a new entry (see :func:`add_entry`; the list is not
    looked up here).

    Raises
    ------
    ValidationError
        As :func:`add_entry` does.
    """
    kind, reason, normal = _validated(entry)
    return {
        "list_name": entry.list_name or LIST_OF_REASON[reason],
        "kind": kind.value,
        "value_key": key.of_normal(kind, normal, hashed=entry.hashed),
        "value": normal if store_values else None,
        "hashed": entry.hashed,
        "reason": reason.value,
        "case_ref": _text(entry.case_ref, "case_ref", 100, required=False),
        "label": _text(entry.label, "label", 200, required=False),
        "owner": _text(entry.owner, "owner", 100, required=True),
        "legal_basis": _text(entry.legal_basis, "legal_basis", 2000, required=True),
        "priority": entry.priority,
        "expires_at": _expiry(entry.expires_at, at),
        "status": "active",
        "synthetic": entry.synthetic,
        "source": entry.source,
        "created_by": actor,
        "created_at": at,
        "updated_by": actor,
        "updated_at": at,
    }


def _audit(
    session: Session,
    actor: str,
    action: str,
    entry: HotlistEntry,
    before: dict[str, Any] | None,
    purpose: str,
    at: datetime,
) -> None:
    after = {**entry.to_dict(), "purpose": purpose}
    append_audit(
        session,
        actor=actor,
        action=action,
        entity="hotlist_entry",
        entity_id=str(entry.id),
        before=before,
        after=after,
        at=at,
    )


def get_entry(session: Session, entry_id: int, *, who: Principal | None = None) -> HotlistEntry:
    """One entry (its list must be readable by ``who`` when given).

    Raises
    ------
    NotFoundError
        When there is no such entry.
    """
    row = session.get(HotlistEntryRow, entry_id)
    if row is None:
        raise NotFoundError(f"no hotlist entry {entry_id}")
    _check(_list(session, row.list_name), who, write=False)
    return HotlistEntry.of(row)


#: Attributes of an entry that :func:`update_entry` may change.
_CHANGEABLE = ("label", "legal_basis", "priority", "expires_at", "case_ref", "owner")


def update_entry(
    session: Session,
    entry_id: int,
    changes: dict[str, Any],
    *,
    actor: str,
    purpose: str,
    who: Principal | None = None,
    now: datetime | None = None,
) -> HotlistEntry:
    """Change an active entry's label, legal basis, priority, expiry, case reference or owner;
    audited (``hotlist.update``) with the entry before and after and the purpose.

    Raises
    ------
    ValidationError
        For an attribute that cannot be changed or an invalid value.
    ConflictError
        When the entry was withdrawn.
    """
    at = _now(now)
    why = check_purpose(purpose)
    unknown = sorted(set(changes) - set(_CHANGEABLE))
    if unknown:
        raise ValidationError(f"cannot change {', '.join(unknown)}", field=unknown[0])
    row, before = _active_row(session, entry_id, who, "was withdrawn")
    probe = NewEntry(
        kind=row.kind,
        value=row.value_key,
        reason=row.reason,
        owner=changes.get("owner", row.owner),
        legal_basis=changes.get("legal_basis", row.legal_basis),
        case_ref=changes.get("case_ref", row.case_ref),
        priority=int(changes.get("priority", row.priority)),
        hashed=True,
    )
    _validated(probe)
    if "expires_at" in changes:
        row.expires_at = _expiry(changes["expires_at"], at)
    row.priority = probe.priority
    row.owner = _text(probe.owner, "owner", 100, required=True) or row.owner
    row.legal_basis = _text(probe.legal_basis, "legal_basis", 2000, required=True) or ""
    row.case_ref = _text(probe.case_ref, "case_ref", 100, required=False)
    if "label" in changes:
        row.label = _text(changes["label"], "label", 200, required=False)
    row.updated_by, row.updated_at = actor, at
    return _changed(session, row, "hotlist.update", actor, before, why, at)


def withdraw_entry(
    session: Session,
    entry_id: int,
    *,
    actor: str,
    purpose: str,
    who: Principal | None = None,
    now: datetime | None = None,
) -> HotlistEntry:
    """Take an entry off its list (the bike was recovered, the warrant served); audited
    (``hotlist.withdraw``).  Kept, with its alerts, for the record.

    Raises
    ------
    ConflictError
        When the entry was already withdrawn.
    """
    at = _now(now)
    why = check_purpose(purpose)
    row, before = _active_row(session, entry_id, who, "was already withdrawn")
    row.status, row.updated_by, row.updated_at = "withdrawn", actor, at
    return _changed(session, row, "hotlist.withdraw", actor, before, why, at)


def _active_row(
    session: Session, entry_id: int, who: Principal | None, withdrawn: str
) -> tuple[HotlistEntryRow, dict[str, Any]]:
    """An active entry the caller may change, and its state before the change."""
    row = session.get(HotlistEntryRow, entry_id)
    if row is None:
        raise NotFoundError(f"no hotlist entry {entry_id}")
    _check(_list(session, row.list_name), who, write=True)
    if row.status != "active":
        raise ConflictError(f"hotlist entry {entry_id} {withdrawn}")
    return row, HotlistEntry.of(row).to_dict()


def _changed(
    session: Session,
    row: HotlistEntryRow,
    action: str,
    actor: str,
    before: dict[str, Any],
    why: str,
    at: datetime,
) -> HotlistEntry:
    """Flush a changed entry and audit the change."""
    session.flush()
    out = HotlistEntry.of(row)
    _audit(session, actor, action, out, before, why, at)
    return out


def search_entries(
    session: Session,
    *,
    actor: str,
    purpose: str,
    who: Principal | None = None,
    lists: Sequence[str] | None = None,
    value: str | None = None,
    kind: str | None = None,
    hashed: bool = False,
    case_ref: str | None = None,
    include_inactive: bool = False,
    limit: int = 100,
    key: ValueKey | None = None,
    now: datetime | None = None,
) -> list[HotlistEntry]:
    """Search the hotlists ``who`` may read; audited (``hotlist.search``) with the filters, the
    purpose and the number of entries returned.

    A ``value`` (with its ``kind``) is searched by its keyed hash, so it is found even when the
    service keeps only hashes.
    """
    at = _now(now)
    why = check_purpose(purpose)
    if who is not None:
        allowed = readable_lists(session, who)
    else:
        ensure_lists(session)
        allowed = sorted(session.scalars(select(HotlistRow.name)))
    wanted = list(lists) if lists else allowed
    for name in wanted:
        _check(_list(session, name), who, write=False)
    stmt = select(HotlistEntryRow).where(HotlistEntryRow.list_name.in_(wanted))
    if value is not None:
        if kind is None:
            raise ValidationError("searching by value needs its kind", field="kind")
        try:
            parsed = SightingKind(kind)
        except ValueError:
            raise ValidationError(f"unknown kind {kind!r}", field="kind") from None
        value_key = (key or ValueKey.open()).of(parsed, value, hashed=hashed)
        stmt = stmt.where(HotlistEntryRow.value_key == value_key)
    elif kind is not None:
        stmt = stmt.where(HotlistEntryRow.kind == kind)
    if case_ref is not None:
        stmt = stmt.where(HotlistEntryRow.case_ref == case_ref)
    if not include_inactive:
        stmt = stmt.where(HotlistEntryRow.status == "active", HotlistEntryRow.expires_at > at)
    # callers with a role page through 1,000 at most; the CLI (who None) exports everything
    cap = limit if who is None else min(limit, 1000)
    stmt = stmt.order_by(HotlistEntryRow.id.desc()).limit(max(1, cap))
    found = [HotlistEntry.of(r) for r in session.scalars(stmt)]
    filters = {
        "lists": wanted,
        "kind": kind,
        "by_value": value is not None,
        "case_ref": case_ref,
        "include_inactive": include_inactive,
    }
    append_audit(
        session,
        actor=actor,
        action="hotlist.search",
        entity="hotlist",
        entity_id=None,
        after={"purpose": why, "filters": filters, "returned": len(found)},
        at=at,
    )
    return found
