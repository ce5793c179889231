"""Available units for a pursuit plan: a CSV file (id,type,lon,lat) or the service's database;
and a stored sighting to start from (the surveillance room's sightings in that database)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from citywatch.dispatch.policy import load_requirements
from citywatch.errors import DataError, ValidationError
from citywatch.pursuit.intercept import PursuitUnit
from citywatch.routing.speeds import parse_mode
from citywatch.surveillance.sightings import SightingFix

__all__ = ["read_units_csv", "sighting_from_db", "units_from_db"]

_COLUMNS = ("id", "type", "lon", "lat")


def read_units_csv(path: Path) -> list[PursuitUnit]:
    """Units from a CSV with columns ``id,type,lon,lat`` (type: a dispatch unit type).

    Raises
    ------
    DataError
        If the file cannot be read, or on a missing column, an empty or repeated id, a bad or
        non-finite number or an unknown unit type (with the line number).
    """
    rules = load_requirements()
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
            out = []
            seen: set[str] = set()
            for line, row in enumerate(reader, start=2):
                try:
                    unit_id = (row["id"] or "").strip()
                    if not unit_id:
                        raise ValueError("empty unit id")
                    if unit_id in seen:
                        raise ValueError(f"unit {unit_id!r} is listed twice")
                    mode = parse_mode(rules.mode_of(row["type"] or ""))
                    lon, lat = float(row["lon"] or ""), float(row["lat"] or "")
                    if not (math.isfinite(lon) and math.isfinite(lat)):
                        raise ValueError(f"({lon}, {lat}) is not a finite lon/lat")
                    seen.add(unit_id)
                    out.append(PursuitUnit(unit_id, row["type"], mode, lon, lat))
                except (ValueError, ValidationError) as exc:
                    raise DataError(f"{path}:{line}: {exc}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable UTF-8 CSV file ({exc})") from None
    if not out:
        raise DataError(f"{path}: no units")
    return out


def units_from_db(url: str | None) -> list[PursuitUnit]:
    """The service's available units that have a position (or a post).

    Raises
    ------
    DataError
        If the database cannot be reached or holds no units table (not migrated), or has no
        available unit with a position.
    """
    from sqlalchemy import select
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.orm import Session

    from citywatch.store.db import make_engine
    from citywatch.store.dispatch_models import Unit

    engine = make_engine(url)
    out = []
    try:
        with Session(engine) as session:
            query = select(Unit).where(Unit.status == "available").order_by(Unit.id)
            for u in session.scalars(query):
                lon, lat = (u.lon, u.lat) if u.lon is not None else (u.post_lon, u.post_lat)
                if lon is not None and lat is not None:
                    out.append(PursuitUnit(u.id, u.unit_type, parse_mode(u.mode), lon, lat))
    except DBAPIError as exc:
        raise _unreadable(engine, exc, "units") from None
    finally:
        engine.dispose()
    if not out:
        raise DataError("the database has no available unit with a position")
    return out


def sighting_from_db(url: str | None, pack: str, sighting_id: int) -> SightingFix:
    """The stored sighting ``sighting_id`` of ``pack`` in the service's database.

    Raises
    ------
    NotFoundError
        If the pack has no such sighting.
    DataError
        If the database cannot be reached or holds no sightings table (not migrated).
    """
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.orm import Session

    from citywatch.store.db import make_engine
    from citywatch.surveillance.sightings import sighting_fix

    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return sighting_fix(session, pack, sighting_id)
    except DBAPIError as exc:
        raise _unreadable(engine, exc, "sightings") from None
    finally:
        engine.dispose()


def _unreadable(engine: Any, exc: Any, what: str) -> DataError:
    """``cannot read the WHAT of URL: first line of the driver's message`` (no password)."""
    where = engine.url.render_as_string(hide_password=True)
    text = str(exc.orig).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return DataError(f"cannot read the {what} of {where}: {first}")
