"""Hotlists in bulk: a CSV file of entries imported in one audited transaction, and exported.

An agency's hotlist (the national stolen-vehicle file, a city's stolen e-bike tags) holds up to
millions of references.  :func:`import_entries` validates every row as
:func:`~citywatch.surveillance.hotlists.add_entry` would, skips the values the list already
holds (active), inserts the rest in bulk (``COPY`` on PostgreSQL, then ``ANALYZE``: with the
statistics of a much smaller table the planner may match a batch of reads by scanning every
active entry, 0.4-0.9 s per batch on 1,000,000 entries instead of 1 ms) and writes **one**
``hotlist.import`` audit record with the purpose, the counts and a SHA-256 of the imported keys
(an audit record per entry would put a million appends through the chain).

The CSV columns are the fields of :class:`~citywatch.surveillance.hotlists.NewEntry`
(``kind,value,reason,owner,legal_basis`` required; ``case_ref,label,priority,expires_at,list,
hashed,synthetic`` optional).  An export writes the same columns plus ``id`` and ``status``;
the value is empty where the service stores only hashes (such a file documents the list and
cannot be imported again).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Table, select, text
from sqlalchemy.orm import Session

from citywatch.dispatch.audit import append_audit
from citywatch.domain import PRIORITY_DEFAULT
from citywatch.errors import CityWatchError, DataError
from citywatch.store.bulk import copy_rows, digest_lines
from citywatch.store.sightings_models import HotlistEntryRow
from citywatch.surveillance import hotlists
from citywatch.surveillance.hotlists import NewEntry
from citywatch.surveillance.matching import ValueKey

__all__ = ["CSV_FIELDS", "ImportResult", "import_entries", "read_entries", "write_entries"]

#: Columns of a hotlist CSV file (``id`` and ``status`` are written by exports only).
CSV_FIELDS: Final = (
    "id",
    "list",
    "kind",
    "value",
    "hashed",
    "reason",
    "case_ref",
    "label",
    "owner",
    "legal_basis",
    "priority",
    "expires_at",
    "status",
    "synthetic",
)
_REQUIRED = ("kind", "value", "reason", "owner", "legal_basis")
_CHUNK = 10_000


@dataclass
class ImportResult:
    """What an import did: entries created, values already on their list, rows refused."""

    created: int = 0
    already_listed: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (refused rows as ``{row, reason}``, first 100)."""
        return {
            "created": self.created,
            "already_listed": self.already_listed,
            "refused": len(self.refused),
            "refused_rows": [{"row": n, "reason": r} for n, r in self.refused[:100]],
        }


def _flag(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes", "y")


def read_entries(path: Path | str) -> tuple[list[NewEntry], list[tuple[int, str]]]:
    """Entries of a hotlist CSV file and the rows that could not be read (line, reason).

    Raises
    ------
    DataError
        When the file lacks a required column.
    """
    out: list[NewEntry] = []
    bad: list[tuple[int, str]] = []
    with Path(path).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                expires = row.get("expires_at") or None
                out.append(
                    NewEntry(
                        kind=row["kind"],
                        value=row["value"],
                        reason=row["reason"],
                        owner=row["owner"],
                        legal_basis=row["legal_basis"],
                        case_ref=row.get("case_ref") or None,
                        label=row.get("label") or None,
                        priority=int(row.get("priority") or PRIORITY_DEFAULT),
                        expires_at=datetime.fromisoformat(expires) if expires else None,
                        list_name=row.get("list") or None,
                        hashed=_flag(row.get("hashed")),
                        synthetic=_flag(row.get("synthetic")),
                        source="import",
                    )
                )
            except (ValueError, TypeError) as exc:
                bad.append((line, str(exc)))
    return out, bad


def write_entries(entries: Sequence[hotlists.HotlistEntry], path: Path | str) -> Path:
    """Write entries as a hotlist CSV file."""
    target = Path(path)
    with target.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for e in entries:
            writer.writerow(
                {
                    "id": e.id,
                    "list": e.list_name,
                    "kind": e.kind,
                    "value": e.value or "",
                    "hashed": str(e.hashed).lower(),
                    "reason": e.reason,
                    "case_ref": e.case_ref or "",
                    "label": e.label or "",
                    "owner": e.owner,
                    "legal_basis": e.legal_basis,
                    "priority": e.priority,
                    "expires_at": e.expires_at.isoformat(),
                    "status": e.status,
                    "synthetic": str(e.synthetic).lower(),
                }
            )
    return target


def _table(model: type[Any] = HotlistEntryRow) -> Table:
    table: Table = model.__table__
    return table


def import_entries(
    session: Session,
    entries: Sequence[NewEntry],
    *,
    actor: str,
    purpose: str,
    key: ValueKey | None = None,
    store_values: bool = False,
    now: datetime | None = None,
) -> ImportResult:
    """Put many entries on their hotlists in the caller's transaction, with one audit record.

    Rows are validated like :func:`~citywatch.surveillance.hotlists.add_entry`; a value its
    list already holds (active), or that appears twice in the file, is counted in
    ``already_listed`` and skipped.
    """
    at = now or datetime.now(UTC)
    why = hotlists.check_purpose(purpose)
    secret = key or ValueKey.open()
    known = hotlists.list_names(session)
    result = ImportResult()
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for n, entry in enumerate(entries, start=1):
        try:
            row = hotlists.entry_row(
                entry, actor=actor, key=secret, store_values=store_values, at=at
            )
        except CityWatchError as exc:
            result.refused.append((n, exc.message))
            continue
        if row["list_name"] not in known:
            result.refused.append((n, f"no hotlist {row['list_name']!r}"))
            continue
        ident = (row["list_name"], row["value_key"])
        if ident in seen:
            result.already_listed += 1
            continue
        seen.add(ident)
        rows.append(row)
    table = _table()
    fresh: list[dict[str, Any]] = []
    for start in range(0, len(rows), _CHUNK):
        part = rows[start : start + _CHUNK]
        listed = {
            (name, value_key)
            for name, value_key in session.execute(
                select(table.c.list_name, table.c.value_key).where(
                    table.c.value_key.in_([r["value_key"] for r in part]),
                    table.c.status == "active",
                )
            )
        }
        for r in part:
            if (r["list_name"], r["value_key"]) in listed:
                result.already_listed += 1
            else:
                fresh.append(r)
    if fresh:
        columns = tuple(fresh[0])  # every row of entry_row() has the same columns
        copy_rows(session, table, columns, (tuple(r[c] for c in columns) for r in fresh))
        if session.get_bind().dialect.name == "postgresql":
            # fresh statistics, so that the next match of a batch of reads is planned on the
            # hotlist's real size (PostgreSQL allows ANALYZE inside the transaction)
            session.execute(text(f"ANALYZE {table.name}"))
    result.created = len(fresh)
    by_list: dict[str, int] = {}
    for r in fresh:
        by_list[r["list_name"]] = by_list.get(r["list_name"], 0) + 1
    append_audit(
        session,
        actor=actor,
        action="hotlist.import",
        entity="hotlist",
        entity_id=None,
        after={
            "purpose": why,
            "created": result.created,
            "by_list": by_list,
            "already_listed": result.already_listed,
            "refused": len(result.refused),
            "synthetic": sum(1 for r in fresh if r["synthetic"]),
            "digest": digest_lines(f"{r['list_name']}|{r['value_key']}" for r in fresh),
        },
        at=at,
    )
    return result
