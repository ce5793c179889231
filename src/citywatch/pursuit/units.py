"""Available units for a pursuit plan: a CSV file (id,type,lon,lat) or the service's database."""

from __future__ import annotations

import csv
from pathlib import Path

from citywatch.dispatch.policy import load_requirements
from citywatch.errors import DataError, ValidationError
from citywatch.pursuit.intercept import PursuitUnit
from citywatch.routing.speeds import parse_mode

__all__ = ["read_units_csv", "units_from_db"]

_COLUMNS = ("id", "type", "lon", "lat")


def read_units_csv(path: Path) -> list[PursuitUnit]:
    """Units from a CSV with columns ``id,type,lon,lat`` (type: a dispatch unit type).

    Raises
    ------
    DataError
        On a missing column, a bad number or an unknown unit type (with the line number).
    """
    rules = load_requirements()
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
            out = []
            for line, row in enumerate(reader, start=2):
                try:
                    mode = parse_mode(rules.mode_of(row["type"]))
                    out.append(
                        PursuitUnit(
                            row["id"], row["type"], mode, float(row["lon"]), float(row["lat"])
                        )
                    )
                except (ValueError, ValidationError) as exc:
                    raise DataError(f"{path}:{line}: {exc}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    if not out:
        raise DataError(f"{path}: no units")
    return out


def units_from_db(url: str | None) -> list[PursuitUnit]:
    """The service's available units that have a position (or a post)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from citywatch.store.db import make_engine
    from citywatch.store.dispatch_models import Unit

    engine = make_engine(url)
    out = []
    with Session(engine) as session:
        for u in session.scalars(select(Unit).where(Unit.status == "available").order_by(Unit.id)):
            lon, lat = (u.lon, u.lat) if u.lon is not None else (u.post_lon, u.post_lat)
            if lon is not None and lat is not None:
                out.append(PursuitUnit(u.id, u.unit_type, parse_mode(u.mode), lon, lat))
    engine.dispose()
    if not out:
        raise DataError("the database has no available unit with a position")
    return out
