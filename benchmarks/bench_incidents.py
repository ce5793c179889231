"""Incident import and storage: CityWatch against straightforward baselines, on the real files.

Run: ``.venv/bin/python benchmarks/bench_incidents.py`` (or ``make bench``).  Measured in one
process, on the files in ``data/``:

* reading each source file into canonical records;
* inserting the 16,255 NYPD shooting incidents, on SQLite and (when reachable) PostgreSQL:
  CityWatch's ``executemany`` of ``INSERT ... ON CONFLICT DO NOTHING`` against two baselines,
  the naive one ``INSERT`` per row, and the multi-row ``VALUES ... RETURNING`` form
  (SQLAlchemy's "insertmanyvalues") that CityWatch used first;
* a whole ``import_file`` (read + insert + batch record) of all 20,659 shooting rows, first and
  second time (the second adds nothing), and of the three West Yorkshire months;
* deriving Manhattan jurisdictions for the 16,255 incidents with the pack's vectorised
  point-in-polygon, against calling ``pack.locate`` point by point.

Every method is checked to store / derive the same result as CityWatch.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.exc import OperationalError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from citywatch.city import load_pack
from citywatch.incidents.importer import import_file
from citywatch.incidents.jurisdiction import assign_jurisdictions
from citywatch.incidents.sources import read_source
from citywatch.incidents.storage import _insert_ignoring_duplicates, frame_to_rows, insert_incidents
from citywatch.store.db import make_engine, upgrade
from citywatch.store.models import IncidentRow

DATA = Path(__file__).resolve().parents[1] / "data"
SHOOTINGS = DATA / "manhattan" / "nypd_shootings_historic.csv"
FILES = [
    (SHOOTINGS, "nypd_shootings"),
    (DATA / "manhattan" / "nyc_vehicle_thefts_2014.csv", "code"),
    (DATA / "nashville" / "calls_2024_partial.csv", "nashville"),
    *((p, "police_uk") for p in sorted((DATA / "west-yorkshire").glob("*.csv.gz"))),
]
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TABLE = IncidentRow.__table__
#: the per-point baselines run on the first rows only; their rate is scaled to all rows
BASELINE_ROWS = 2_000


def seconds(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(TABLE)).scalar_one())


def fresh(url: str) -> Engine:
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(TABLE.delete())
        conn.execute(text("DELETE FROM import_batches"))
    return engine


def insert_rows(engine: Engine, frame: pd.DataFrame, how: str) -> None:
    with engine.begin() as conn:
        if how == "citywatch":
            insert_incidents(conn, frame)
            return
        stmt = _insert_ignoring_duplicates(conn)
        rows = frame_to_rows(frame, None)
        if how == "row by row":
            for row in rows:
                conn.execute(stmt, row)
        else:  # multi-row VALUES with RETURNING ("insertmanyvalues")
            conn.execute(stmt.returning(TABLE.c.id), rows).all()


def database_rows(name: str, url: str, incidents: pd.DataFrame) -> list[tuple[str, str, float]]:
    out = []
    head = incidents.head(BASELINE_ROWS)
    for how, frame in [
        ("citywatch", incidents),
        ("row by row", head),
        ("VALUES ... RETURNING", incidents),
    ]:
        engine = fresh(url)
        took, _ = seconds(lambda e=engine, f=frame, h=how: insert_rows(e, f, h))
        assert count(engine) == len(frame)  # same rows stored
        scaled = took * len(incidents) / len(frame)
        note = "" if len(frame) == len(incidents) else f" ({len(frame):,} rows, scaled)"
        out.append((f"insert 16,255 shootings, {name}", how + note, scaled))
        engine.dispose()
    engine = fresh(url)
    took, first = seconds(lambda: import_file(SHOOTINGS, "nypd_shootings", db=engine))
    assert first.imported == 16_255
    out.append((f"import_file all 20,659 shooting rows, {name}", "first import", took))
    took, again = seconds(lambda: import_file(SHOOTINGS, "nypd_shootings", db=engine))
    assert again.imported == 0 and again.already_present == 16_255
    out.append(("", "second import (adds 0)", took))
    months = [p for p, s in FILES if s == "police_uk"]
    took, reports = seconds(lambda: [import_file(p, "police_uk", db=engine) for p in months])
    assert sum(r.imported for r in reports) == 27_176 + 28_537 + 31_635
    out.append((f"import_file 3 West Yorkshire months (87,348 rows), {name}", "first import", took))
    engine.dispose()
    return out


def postgres_url() -> str | None:
    admin = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.begin() as conn:
            schema = f"cw_bench_{uuid.uuid4().hex[:8]}"
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError:
        return None
    finally:
        admin.dispose()
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


def drop_schema(url: str) -> None:
    schema = url.rsplit("%3D", 1)[1]
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def main() -> None:
    rows: list[tuple[str, str, float]] = []
    for path, source in FILES:
        took, parsed = seconds(lambda p=path, s=source: read_source(p, s))
        rows.append((f"read {path.name} ({len(parsed.raw):,} rows)", source, took))
    parsed = read_source(SHOOTINGS, "nypd_shootings")
    incidents = parsed.records[~parsed.merged.to_numpy()].reset_index(drop=True)

    with tempfile.TemporaryDirectory() as tmp:
        rows += database_rows("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}", incidents)
    pg = postgres_url()
    if pg is not None:
        try:
            rows += database_rows("PostgreSQL", pg, incidents)
        finally:
            drop_schema(pg)

    pack = load_pack("manhattan")
    unlabelled = incidents.assign(station=None)  # so that every station is derived
    took, (located, _, report) = seconds(lambda: assign_jurisdictions(unlabelled, pack))
    rows.append(("jurisdictions of 16,255 incidents (Manhattan)", "vectorised locate_many", took))
    head = incidents.head(BASELINE_ROWS)
    took, one_by_one = seconds(
        lambda: [pack.locate(x, y)["station"] for x, y in zip(head.lon, head.lat, strict=True)]
    )
    assert one_by_one == located["station"].head(BASELINE_ROWS).tolist()
    scale = len(incidents) / BASELINE_ROWS
    rows.append(("", f"pack.locate per point ({BASELINE_ROWS:,} rows, scaled)", took * scale))

    print(f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f} (shared machine)")
    print(
        "Real files from data/; PostgreSQL "
        + ("at 127.0.0.1:5432" if pg else "not reachable: skipped")
        + f"; {report.derived:,} shootings located in a Manhattan precinct\n"
    )
    print("| task | method | seconds |\n|---|---|---|")
    for task, method, s in rows:
        print(f"| {task} | {method} | {s:.2f} |")


if __name__ == "__main__":
    main()
