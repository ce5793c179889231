"""Import incident files into the store, idempotently, accounting for every row read.

Every row of the file ends up in exactly one bucket::

    read = imported + already_present + merged + rejected

``imported`` rows are new in the database; ``already_present`` rows were stored by an earlier
import (same ``source`` and ``source_id``); ``merged`` rows describe an incident another row of
the file already describes (further victims of one NYPD shooting); ``rejected`` rows are
written, with their reason and line number, to the rejected-rows CSV.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, insert, update

from citywatch.console import progress
from citywatch.errors import ValidationError
from citywatch.incidents.decoding import AUTO, UNDECODABLE, check_encoding
from citywatch.incidents.jurisdiction import JurisdictionReport, PackLike, assign_jurisdictions
from citywatch.incidents.parsing import Parsed, undecodable
from citywatch.incidents.sources import read_source, reader_for
from citywatch.incidents.storage import insert_incidents
from citywatch.incidents.taxonomy import Taxonomy
from citywatch.paths import rejected_dir
from citywatch.store.db import engine_scope, upgrade
from citywatch.store.models import ImportBatch

__all__ = ["ImportReport", "default_rejected_path", "file_sha256", "import_file"]


@dataclass
class ImportReport:
    """Counts of one import (see the module documentation for the buckets)."""

    source: str
    file: str
    batch_id: int
    read: int
    imported: int
    already_present: int
    merged: int
    rejected_by_reason: dict[str, int]
    rejected_path: str | None
    notes: dict[str, int] = field(default_factory=dict)
    jurisdictions: JurisdictionReport | None = None

    @property
    def rejected(self) -> int:
        """Total rejected rows."""
        return sum(self.rejected_by_reason.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary for JSON output."""
        return {
            "source": self.source,
            "file": self.file,
            "batch_id": self.batch_id,
            "read": self.read,
            "imported": self.imported,
            "already_present": self.already_present,
            "merged": self.merged,
            "rejected": self.rejected,
            "rejected_by_reason": self.rejected_by_reason,
            "rejected_path": self.rejected_path,
            "notes": self.notes,
            "jurisdictions": None if self.jurisdictions is None else self.jurisdictions.to_dict(),
        }


def default_rejected_path(path: Path, source: str) -> Path:
    """Where rejected rows go by default: ``<file name>.<source>.rejected.csv`` in
    :func:`citywatch.paths.rejected_dir` (``var/rejected/`` in a checkout)."""
    name = path.name.removesuffix(".gz").removesuffix(".csv")
    return rejected_dir() / f"{name}.{source}.rejected.csv"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, as recorded on its import batch.

    Parameters
    ----------
    path : pathlib.Path
        The file.

    Returns
    -------
    str
        Hexadecimal digest.
    """
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_file(
    path: str | Path,
    source: str,
    *,
    db: Engine | str | None = None,
    pack: PackLike | None = None,
    clip: bool = False,
    mapping: str | Path | None = None,
    rejected_path: str | Path | None = None,
    taxonomy: Taxonomy | None = None,
    encoding: str | None = None,
) -> ImportReport:
    """Import one incident file into the database.

    Parameters
    ----------
    path
        The file (CSV, optionally gzip-compressed).
    source
        Source layout (see :data:`citywatch.incidents.sources.SOURCE_NAMES`).
    db
        Engine or database URL; ``None`` is the embedded SQLite database. It is migrated to
        the newest schema first.
    pack
        City pack: derive jurisdictions by point-in-polygon and compare with the source's.
    clip
        With ``pack``: reject incidents outside the pack's city polygon (reason
        ``outside_pack``) instead of importing them without jurisdiction.
    mapping
        Category/column mapping TOML replacing the bundled one (required for ``generic``).
    rejected_path
        Where to write rejected rows (default :func:`default_rejected_path`); nothing is
        written when no row is rejected.
    taxonomy
        Taxonomy to map into (default: the bundled one).
    encoding
        Text encoding (a Python codec name); ``None`` detects UTF-8 or cp1252. Rows with bytes
        invalid in it are rejected as ``undecodable_text``.

    Returns
    -------
    ImportReport
        Counts that add up to the rows read, and the jurisdiction comparison.

    Raises
    ------
    DataError
        If the file cannot be read or lacks the source's columns, or the database is
        unreachable.
    ValidationError
        For an unknown source, or ``clip`` without a pack.
    """
    if clip and pack is None:
        raise ValidationError("--clip needs a city pack (--pack) to clip to", field="clip")
    reader_for(source)  # fail on a typo before any work starts
    if encoding not in (None, AUTO):
        check_encoding(encoding)
    path = Path(path)
    out_path = Path(rejected_path) if rejected_path else default_rejected_path(path, source)
    with progress() as bar, engine_scope(db) as engine:
        reading = bar.add_task(f"Reading {path.name}", total=None)
        parsed = read_source(path, source, mapping=mapping, taxonomy=taxonomy, encoding=encoding)
        _check_text(parsed)
        records, reasons, jurisdictions = _locate(parsed, pack, clip)
        bar.update(reading, total=1, completed=1)
        merged = parsed.merged & reasons.isna()
        keep = (reasons.isna() & ~merged).to_numpy(dtype=bool)
        rejected = {str(k): int(v) for k, v in reasons.value_counts().sort_index().items()}
        upgrade(engine)
        with engine.begin() as conn:
            batch_id = conn.execute(
                insert(ImportBatch).returning(ImportBatch.id),
                {
                    "source": source,
                    "file_name": str(path),
                    "file_sha256": file_sha256(path),
                    "pack": None if pack is None else pack.name,
                    "started_at": datetime.now(UTC),
                    "rows_read": len(records),
                    "rows_imported": 0,
                    "rows_already_present": 0,
                    "rows_merged": int(merged.sum()),
                    "rows_rejected": sum(rejected.values()),
                    "rejected_by_reason": rejected,
                    "rejected_path": str(out_path) if rejected else None,
                },
            ).scalar_one()
            storing = bar.add_task(f"Storing {path.name}", total=int(keep.sum()))
            imported = insert_incidents(
                conn,
                records[keep],
                batch_id=batch_id,
                on_progress=lambda n: bar.advance(storing, n),
            )
            conn.execute(
                update(ImportBatch)
                .where(ImportBatch.id == batch_id)
                .values(
                    rows_imported=imported,
                    rows_already_present=int(keep.sum()) - imported,
                    finished_at=datetime.now(UTC),
                )
            )
    if rejected:
        _write_rejected(parsed.raw, reasons, out_path)
    return ImportReport(
        source=source,
        file=str(path),
        batch_id=int(batch_id),
        read=len(records),
        imported=imported,
        already_present=int(keep.sum()) - imported,
        merged=int(merged.sum()),
        rejected_by_reason=rejected,
        rejected_path=str(out_path) if rejected else None,
        notes=parsed.notes,
        jurisdictions=jurisdictions,
    )


def _check_text(parsed: Parsed) -> None:
    """Reject rows whose bytes were invalid in the file's encoding; note a non-UTF-8 file."""
    if parsed.raw.attrs.get("replaced"):
        bad = undecodable(parsed.raw).to_numpy(dtype=bool)
        parsed.reasons = parsed.reasons.mask(bad, UNDECODABLE)
    encoding = parsed.raw.attrs.get("encoding")
    if encoding not in (None, "utf-8"):
        parsed.notes[f"decoded_as_{encoding}"] = len(parsed.raw)


def _locate(
    parsed: Parsed, pack: PackLike | None, clip: bool
) -> tuple[pd.DataFrame, pd.Series, JurisdictionReport | None]:
    """Records with pack-derived jurisdictions, reject reasons (``outside_pack`` if clipping)."""
    if pack is None:
        return parsed.records, parsed.reasons, None
    # one comparison per incident: rejected rows and merged victims are left out
    todo = parsed.importable.to_numpy(dtype=bool)
    located, inside, report = assign_jurisdictions(parsed.records[todo], pack)
    records = parsed.records.copy()
    records.loc[todo, ["bureau", "station", "zone"]] = located[["bureau", "station", "zone"]]
    reasons = parsed.reasons
    if clip:
        outside = pd.Series(False, index=records.index)
        outside[todo] = ~inside.to_numpy(dtype=bool)
        reasons = reasons.mask(outside, "outside_pack")
    return records, reasons, report


def _write_rejected(raw: pd.DataFrame, reasons: pd.Series, path: Path) -> None:
    bad = reasons.notna().to_numpy(dtype=bool)
    # line 1 is the header, so data row i (0-based) is on line i + 2 (one line per row)
    out = raw[bad].copy()
    out.insert(0, "reason", reasons[bad].to_numpy())
    out.insert(0, "line", raw.index[bad] + 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False, lineterminator="\n")
