"""Bulk writes of many small rows and the digest that lets the audit chain cover them.

High-rate feeds (plate-reader sightings, AVL fixes) are written in batches, one transaction
each, and are not chained row by row: the audit record of a batch (or a seal over batches)
holds a SHA-256 :func:`digest_lines` of the batch's rows, so that a row changed, added or
deleted afterwards no longer matches the record that covers it.

:func:`copy_rows` writes the rows with PostgreSQL's ``COPY ... FROM STDIN`` inside the caller's
transaction (psycopg's ``Copy.write_row``; a third of the service CPU of a multi-row
``INSERT`` for sightings, measured with ``benchmarks/bench_sightings.py``) and with one Core
``INSERT`` (executemany) on other databases.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any, Final

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

__all__ = ["copy_rows", "digest_lines"]

#: Rows per executemany where there is no ``COPY`` (bounds the parameter dicts held at once).
_CHUNK: Final = 10_000


def digest_lines(lines: Iterable[str]) -> str:
    """SHA-256 (hex) of text lines in any order: the lines sorted, each ended by a newline.

    Parameters
    ----------
    lines : iterable of str
        One canonical line per row (no newline inside).

    Returns
    -------
    str
        64 hexadecimal digits; the same for the same lines in any order.
    """
    h = hashlib.sha256()
    for line in sorted(lines):
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


def copy_rows(
    session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Insert ``rows`` (values in the order of ``columns``) into ``table`` in the session's
    transaction: ``COPY`` on PostgreSQL, a Core executemany ``INSERT`` elsewhere.

    Column defaults of the model are not applied by ``COPY``: give every column that has no
    server default.

    Parameters
    ----------
    session : Session
        The transaction the rows commit (or roll back) with.
    table : Table
        The target table.
    columns : sequence of str
        Column names, in the order of each row's values.
    rows : iterable of sequence
        The rows.
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        rest = iter(rows)
        while part := [dict(zip(columns, row, strict=True)) for row in islice(rest, _CHUNK)]:
            session.execute(insert(table), part)
        return
    raw: Any = connection.connection.driver_connection
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
