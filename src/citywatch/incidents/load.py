"""The one way every command reads incidents: from files and/or the store, with one set of rules.

Statistics (``citywatch stats``, ``report``), planning (``citywatch plan``) and the simulator
(``citywatch simulate``) all call :func:`load_incidents`:

1. files are read with their source's reader (a canonical CSV strictly: an invalid row is an
   error; other sources leniently: invalid rows are left out and counted, and rows merged into
   another row's incident, such as further victims of one shooting, are not incidents);
2. the store is read with the filters pushed into SQL;
3. file rows get the same filters: sources, categories (taxonomy codes or groups), and the
   half-open time window ``start <= received_at < end``;
4. with a city pack, only the incidents of that city are kept (:func:`scope_to_pack`: inside
   the city polygon, or without a location but with jurisdiction ids of the pack), and a
   source's station that is not one of the pack's is replaced by the polygons' one.

Whatever is left out is counted by reason, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from citywatch.errors import NotFoundError
from citywatch.incidents.canonical import read_canonical_csv
from citywatch.incidents.jurisdiction import PackLike, scope_to_pack
from citywatch.incidents.record import empty_frame
from citywatch.incidents.sources import read_source
from citywatch.incidents.storage import as_utc_bound, load_incidents_frame
from citywatch.incidents.taxonomy import Taxonomy, load_taxonomy

__all__ = ["INVALID_IN_FILES", "LoadedIncidents", "load_incidents"]

#: Reason of the rows of source files that their reader refuses.
INVALID_IN_FILES = "invalid rows in source files"

Bound = datetime | date | str | None


@dataclass(frozen=True)
class LoadedIncidents:
    """Incidents read by :func:`load_incidents`, and how many were left out, by reason."""

    frame: pd.DataFrame
    dropped: dict[str, int] = field(default_factory=dict)

    def notes(self) -> list[str]:
        """One line per reason, for a command's notes."""
        return [f"{n} incident(s) left out: {reason}" for reason, n in self.dropped.items()]


def _read_file(
    path: Path, source: str, taxonomy: Taxonomy, dropped: dict[str, int]
) -> pd.DataFrame:
    if not path.is_file():
        raise NotFoundError(f"file not found: {path}")
    if source == "canonical":
        return read_canonical_csv(path, taxonomy)
    parsed = read_source(path, source, taxonomy=taxonomy)
    ok = parsed.reasons.isna()
    merged = parsed.merged.reindex(ok.index, fill_value=False).astype(bool)
    if (~ok).any():
        dropped[INVALID_IN_FILES] = dropped.get(INVALID_IN_FILES, 0) + int((~ok).sum())
    return parsed.records[ok & ~merged]


def _filter(
    frame: pd.DataFrame,
    start: Bound,
    end: Bound,
    categories: frozenset[str] | None,
    sources: list[str] | None,
    dropped: dict[str, int],
) -> pd.DataFrame:
    """The rules the store applies in SQL, applied to rows read from files."""
    lo, hi = as_utc_bound(start, "start"), as_utc_bound(end, "end")
    # Each rule sees what the ones before it kept: a row is counted under its first reason.
    rules: list[tuple[str, Callable[[pd.DataFrame], pd.Series] | None]] = [
        ("other sources", None if sources is None else lambda f: ~f["source"].isin(sources)),
        (
            "other categories",
            None if categories is None else lambda f: ~f["category"].isin(categories),
        ),
        ("received before the start", None if lo is None else lambda f: f["received_at"] < lo),
        ("received at or after the end", None if hi is None else lambda f: f["received_at"] >= hi),
    ]
    for reason, rule in rules:
        out = None if rule is None else rule(frame)
        if out is not None and out.any():
            dropped[reason] = dropped.get(reason, 0) + int(out.sum())
            frame = frame[~out]
    return frame


def load_incidents(
    db: Engine | str | None = None,
    *,
    files: Sequence[tuple[str | Path, str]] = (),
    database: bool = True,
    start: Bound = None,
    end: Bound = None,
    categories: Iterable[str] | None = None,
    sources: Iterable[str] | None = None,
    pack: PackLike | None = None,
    taxonomy: Taxonomy | None = None,
) -> LoadedIncidents:
    """Read incidents from files and/or the store, filter them and scope them to a city.

    Parameters
    ----------
    db : Engine, str or None
        The store: an engine, a URL, or ``None`` for the embedded database.
    files : sequence of (path, source)
        Incident files and their source layout (``"canonical"``, ``"nypd_shootings"``, ...).
    database : bool
        Whether to read the store as well (``False``: the files only).
    start, end : datetime, date or str, optional
        Half-open window ``start <= received_at < end`` (time-zone-aware, or dates in UTC).
    categories : iterable of str, optional
        Category or group codes, expanded with the taxonomy.
    sources : iterable of str, optional
        Keep only these sources (``police_uk``, ``nypd_shootings``, ``live`` ...).
    pack : CityPack, optional
        Keep only the incidents of this city, with its jurisdictions (see the module notes).
    taxonomy : Taxonomy, optional
        Default: the bundled one.

    Returns
    -------
    LoadedIncidents
        Canonical incidents ordered by ``received_at`` (then as read), and what was left out.

    Raises
    ------
    NotFoundError
        For a missing file.
    ValidationError
        For an unknown category or source layout, or a naive time bound.
    DataError
        For an unreadable file, an invalid canonical CSV, or a store never migrated.
    """
    tax = taxonomy if taxonomy is not None else load_taxonomy()
    codes = None if categories is None else frozenset(tax.expand_many(categories))
    wanted = None if sources is None else list(sources)
    dropped: dict[str, int] = {}
    frames = [
        _filter(_read_file(Path(p), source, tax, dropped), start, end, codes, wanted, dropped)
        for p, source in files
    ]
    if database:
        frames.append(
            load_incidents_frame(
                db, start=start, end=end, categories=codes, sources=wanted, taxonomy=tax
            )
        )
    frames = [f for f in frames if len(f)]
    frame = pd.concat(frames, ignore_index=True) if frames else empty_frame()
    if pack is not None:
        frame, outside, _ = scope_to_pack(frame, pack)
        for reason, n in outside.items():
            dropped[reason] = dropped.get(reason, 0) + n
    frame = frame.sort_values("received_at", kind="stable").reset_index(drop=True)
    return LoadedIncidents(frame, dropped)
