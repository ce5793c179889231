"""Bulk insert and query of incidents, the same on SQLite and PostgreSQL.

Inserts are idempotent: the unique constraint on ``(source, source_id)`` (and the primary key
``id``) with ``INSERT ... ON CONFLICT DO NOTHING`` skips rows already stored; the new rows carry
their import batch's id, which counts them exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Insert, Select, Table, func, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from citywatch.errors import DataError, ValidationError
from citywatch.incidents.record import COLUMNS, DATETIME_COLUMNS, coerce_frame, empty_frame
from citywatch.incidents.taxonomy import Taxonomy, load_taxonomy
from citywatch.store.db import engine_scope
from citywatch.store.models import IncidentRow

__all__ = [
    "as_utc_bound",
    "frame_to_rows",
    "insert_incidents",
    "iter_incident_frames",
    "load_incidents_frame",
]

_TABLE: Table = IncidentRow.__table__  # type: ignore[assignment]
# rows per INSERT statement round: large enough to amortise, small enough for progress updates
_CHUNK = 5000


def _insert_ignoring_duplicates(conn: Connection) -> Insert:
    name = conn.dialect.name
    if name == "sqlite":
        return sqlite.insert(_TABLE).on_conflict_do_nothing()
    if name == "postgresql":
        return postgresql.insert(_TABLE).on_conflict_do_nothing()
    raise DataError(f"unsupported database {name!r}: CityWatch runs on SQLite and PostgreSQL")


def frame_to_rows(frame: pd.DataFrame, batch_id: int | None) -> list[dict[str, Any]]:
    """Turn a canonical frame into parameter dictionaries for the ``incidents`` table.

    Missing values become ``None``, timestamps :class:`datetime.datetime`, numpy scalars
    Python scalars.
    """
    data = coerce_frame(frame)
    columns: dict[str, list[Any]] = {}
    for col in COLUMNS:
        values = data[col]
        if col in DATETIME_COLUMNS:
            # object arrays of datetime (NaT -> None) without a Python loop per value
            present = values.notna().to_numpy()
            as_objects = np.full(len(values), None, dtype=object)
            as_objects[present] = values[present].dt.to_pydatetime()
            columns[col] = as_objects.tolist()
        else:
            # astype(object) yields Python int/float/bool; missing values become None
            columns[col] = values.astype(object).where(values.notna(), None).tolist()
    return [
        {**dict(zip(COLUMNS, row, strict=True)), "batch_id": batch_id}
        for row in zip(*(columns[c] for c in COLUMNS), strict=True)
    ]


def insert_incidents(
    conn: Connection,
    frame: pd.DataFrame,
    *,
    batch_id: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Insert incidents, skipping any whose ``id`` or ``(source, source_id)`` is already stored.

    Parameters
    ----------
    conn
        A connection inside a transaction (the caller commits).
    frame
        Canonical incidents frame.
    batch_id
        Import batch (``import_batches.id``) recorded on the new rows. With a batch the new
        rows are counted exactly on every database; without, the count is the table's growth
        within this transaction (exact unless, on PostgreSQL, another transaction inserts
        incidents at the same moment).
    on_progress
        Called with the number of rows handled after each chunk.

    Returns
    -------
    int
        Number of rows actually inserted.
    """
    # executemany without RETURNING: psycopg pipelines one prepared statement, several times
    # faster than multi-row VALUES with RETURNING, whose huge SQL text psycopg must re-parse.
    stmt = _insert_ignoring_duplicates(conn)
    count = select(func.count()).select_from(_TABLE)
    if batch_id is not None:
        count = count.where(_TABLE.c.batch_id == batch_id)
    before = int(conn.execute(count).scalar_one())
    rows = frame_to_rows(frame, batch_id)
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        conn.execute(stmt, chunk)
        if on_progress is not None:
            on_progress(len(chunk))
    return int(conn.execute(count).scalar_one()) - before


def as_utc_bound(value: datetime | date | str | None, name: str) -> datetime | None:
    """A time bound in UTC: an aware date-time, an ISO string with an offset, or a date
    (midnight UTC); ``None`` stays ``None``.  :class:`ValidationError` naming ``name`` otherwise.
    """
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, OverflowError):  # OutOfBoundsDatetime is a ValueError
        raise ValidationError(f"{name}: not a date or date-time: {value!r}", field=name) from None
    if stamp.tzinfo is None:
        if isinstance(value, datetime) or (isinstance(value, str) and len(value) > 10):
            raise ValidationError(f"{name}: give a time zone (e.g. +00:00)", field=name)
        stamp = stamp.tz_localize("UTC")  # a bare date means that day in UTC
    try:
        return stamp.tz_convert("UTC").to_pydatetime()
    except (ValueError, OverflowError):  # 0001-01-01T00:00+05:00 is in year 0 in UTC
        raise ValidationError(f"{name}: out of the range of dates: {value!r}", field=name) from None


def _query(
    start: datetime | date | str | None,
    end: datetime | date | str | None,
    categories: Iterable[str] | None,
    sources: Iterable[str] | None,
    stations: Iterable[str] | None,
    taxonomy: Taxonomy,
) -> Select[Any]:
    stmt = select(*(_TABLE.c[c] for c in COLUMNS)).order_by(_TABLE.c.received_at, _TABLE.c.id)
    lo, hi = as_utc_bound(start, "start"), as_utc_bound(end, "end")
    if lo is not None:
        stmt = stmt.where(_TABLE.c.received_at >= lo)
    if hi is not None:
        stmt = stmt.where(_TABLE.c.received_at < hi)
    if categories is not None:
        stmt = stmt.where(_TABLE.c.category.in_(sorted(taxonomy.expand_many(categories))))
    if sources is not None:
        stmt = stmt.where(_TABLE.c.source.in_(list(sources)))
    if stations is not None:
        stmt = stmt.where(_TABLE.c.station.in_(list(stations)))
    return stmt


def load_incidents_frame(
    engine_or_url: Engine | str | None = None,
    *,
    start: datetime | date | str | None = None,
    end: datetime | date | str | None = None,
    categories: Iterable[str] | None = None,
    sources: Iterable[str] | None = None,
    stations: Iterable[str] | None = None,
    taxonomy: Taxonomy | None = None,
) -> pd.DataFrame:
    """Load stored incidents as a canonical frame, ordered by ``received_at``.

    Parameters
    ----------
    engine_or_url
        An engine, a database URL, or ``None`` for the default database.
    start, end
        Half-open range ``start <= received_at < end``; tz-aware date-times, ISO strings with
        an offset, or dates (midnight UTC).
    categories
        Category or group codes (``"two_robberies"``, ``"criminal"``, ``"theft"`` ...),
        expanded with the taxonomy.
    sources, stations
        Keep only these sources / station ids.
    taxonomy
        Taxonomy for expanding ``categories`` (default: the bundled one).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`citywatch.incidents.record.COLUMNS`, date-times in UTC.

    Raises
    ------
    ValidationError
        For an unknown category or group, or a naive date-time bound.
    DataError
        If the database is unreachable or has never been migrated.
    """
    tax = taxonomy if taxonomy is not None else load_taxonomy()
    stmt = _query(start, end, categories, sources, stations, tax)
    frames = list(_frames(engine_or_url, stmt, None))
    return frames[0] if frames else empty_frame()


def iter_incident_frames(
    engine_or_url: Engine | str | None = None,
    *,
    chunk_rows: int = 200_000,
    start: datetime | date | str | None = None,
    end: datetime | date | str | None = None,
    categories: Iterable[str] | None = None,
    sources: Iterable[str] | None = None,
    taxonomy: Taxonomy | None = None,
) -> Iterator[pd.DataFrame]:
    """Stored incidents as canonical frames of at most ``chunk_rows`` rows, in time order.

    For exports larger than memory: the rows are streamed from the database, never all held.
    Parameters other than ``chunk_rows`` are those of :func:`load_incidents_frame`.

    Yields
    ------
    pandas.DataFrame
        Canonical frames, ordered by ``received_at`` within and across chunks.
    """
    if chunk_rows < 1:
        raise ValidationError("chunk_rows must be at least 1", field="chunk_rows")
    tax = taxonomy if taxonomy is not None else load_taxonomy()
    yield from _frames(
        engine_or_url, _query(start, end, categories, sources, None, tax), chunk_rows
    )


def _frames(
    engine_or_url: Engine | str | None, stmt: Select[Any], chunk_rows: int | None
) -> Iterator[pd.DataFrame]:
    """Yield the rows of ``stmt`` as canonical frames (all in one when ``chunk_rows`` is None)."""
    with engine_scope(engine_or_url) as engine:
        try:
            with engine.connect() as conn:
                if not inspect(conn).has_table(_TABLE.name):
                    raise DataError(
                        f"{engine.url!r} holds no incidents table yet: "
                        "import incidents first (citywatch incidents import)"
                    )
                if chunk_rows is None:
                    rows = conn.execute(stmt).all()
                    if rows:
                        yield coerce_frame(pd.DataFrame.from_records(rows, columns=list(COLUMNS)))
                    return
                result = conn.execution_options(yield_per=chunk_rows).execute(stmt)
                for part in result.partitions():
                    yield coerce_frame(pd.DataFrame.from_records(part, columns=list(COLUMNS)))
        except OperationalError as exc:
            raise DataError(f"cannot read incidents from {engine.url!r}: {exc.orig}") from None
