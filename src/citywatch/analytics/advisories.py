"""Near-repeat advisories of the live service: each city's own Knox table, refreshed nightly.

For every enabled category (burglary, robbery, theft; **none by default**) a refresh computes
the near-repeat Knox table (:func:`citywatch.analytics.nearrepeat.near_repeat`) of the pack's
stored incidents of that category over the last ``lookback_days`` and stores it with its
evidence (the table, its p-values and Knox ratios, the date range, the seed) in
``near_repeat_tables``.  The window is drawn from that table by
:func:`citywatch.analytics.nearrepeat.near_repeat_window`, counting only **significant bands**:
``p <= 0.05`` and Knox ratio ``> 1``.  A table without such a band flags nothing.

When a live incident of an enabled category is recorded, :meth:`NearRepeatAdvisor.on_incident`
runs inside the transaction that records it and stores an advisory: a circle of the window's
distance around the incident, valid for the window's days, with the earlier incidents of the
category already inside that window (a series in progress).  The advisory is written to the
incident's timeline and the audit chain and announced on the event stream as
``advisory.created`` with the incident's station, so it reaches that station's officers and the
command centre.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from pyproj import Transformer
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from citywatch.analytics.nearrepeat import (
    SIGNIFICANCE,
    Bands,
    NearRepeatResult,
    near_repeat,
    near_repeat_window,
)
from citywatch.analytics.scope import day_numbers, local_days
from citywatch.city import CityPack
from citywatch.console import to_jsonable
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.audit import append_audit
from citywatch.errors import NotFoundError, PermissionDeniedError, ValidationError
from citywatch.incidents.load import load_incidents
from citywatch.store.advisory_models import AdvisoryRow, NearRepeatTableRow
from citywatch.store.models import IncidentRow

__all__ = [
    "ADVISORY_MIN_RATIO",
    "NEAR_REPEAT_CATEGORIES",
    "REFRESH_ROLES",
    "AdvisoryConfig",
    "NearRepeatAdvisor",
    "latest_tables",
    "next_refresh",
    "refresh_due",
    "refresh_tables",
    "table_events",
]

log = logging.getLogger("citywatch.analytics.advisories")

#: Categories whose live incidents may raise near-repeat advisories (each off until enabled).
NEAR_REPEAT_CATEGORIES: Final = ("burglary", "robbery", "theft")
#: A band counts when its Knox ratio is above 1: the smallest float above 1 as ``min_ratio``
#: of :func:`near_repeat_window` (which counts ``ratio >= min_ratio``).
ADVISORY_MIN_RATIO: Final = float(np.nextafter(1.0, 2.0))
#: Roles that may recompute the tables on demand (the nightly job runs as ``system``).
REFRESH_ROLES: Final = frozenset({Role.ADMIN, Role.COMMANDER, Role.ANALYST})
#: Actor of the scheduled refresh and of advisories (no user raises them).
SYSTEM_ACTOR: Final = "system"

Emit = Callable[..., None]


@dataclass(frozen=True)
class AdvisoryConfig:
    """Settings of the near-repeat advisories (``citywatch serve --advisories CATEGORY``).

    Parameters
    ----------
    categories : tuple of str
        Enabled categories, among :data:`NEAR_REPEAT_CATEGORIES`; empty (all off) by default.
        Taxonomy codes matched exactly: ``theft`` is not its group (no burglaries, no vehicle
        thefts), for the tables as for the incidents that raise advisories.
    spatial_band_m, spatial_bands, temporal_band_days, temporal_bands
        Bands of the Knox table (Near Repeat Calculator definitions): 100 m x 4, 7 days x 4.
    lookback_days : int
        Incidents of the last this many days enter the table (365).
    iterations : int
        Monte Carlo permutations (99: the smallest p-value is 0.01).
    seed : int
        Seed of the permutations, stored with the table (tables are reproducible).
    min_events : int
        Fewer incidents than this give no table (30).
    refresh_hour : int
        Local hour of the nightly refresh (3).
    schedule : bool
        Run the nightly refresh inside the service (off: ``citywatch stats near-repeat-refresh``
        from cron instead).
    """

    categories: tuple[str, ...] = ()
    spatial_band_m: float = 100.0
    spatial_bands: int = 4
    temporal_band_days: int = 7
    temporal_bands: int = 4
    lookback_days: int = 365
    iterations: int = 99
    seed: int = 20_161_201
    min_events: int = 30
    refresh_hour: int = 3
    schedule: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.categories) - set(NEAR_REPEAT_CATEGORIES))
        if unknown:
            raise ValidationError(
                f"near-repeat advisories exist for {', '.join(NEAR_REPEAT_CATEGORIES)}, "
                f"not {', '.join(unknown)}",
                field="advisories",
            )
        self.bands  # noqa: B018 - validates the bands
        if not 1 <= self.lookback_days <= 3650:
            raise ValidationError("lookback must be 1 to 3650 days", field="lookback_days")
        if not 19 <= self.iterations <= 9999:
            raise ValidationError(
                "iterations must be 19 to 9999 (p <= 0.05 needs at least 19)", field="iterations"
            )
        if self.min_events < 2:
            raise ValidationError("min_events must be at least 2", field="min_events")
        if not 0 <= self.refresh_hour <= 23:
            raise ValidationError("refresh hour must be 0 to 23", field="refresh_hour")

    @property
    def bands(self) -> Bands:
        """The Knox table's bands."""
        return Bands(
            self.spatial_band_m, self.spatial_bands, self.temporal_band_days, self.temporal_bands
        )

    def enabled(self, category: str) -> bool:
        """Whether live incidents of ``category`` raise advisories."""
        return category in self.categories

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready settings, with the rule that makes a band count."""
        out = asdict(self)
        out["categories"] = list(self.categories)
        out["available"] = list(NEAR_REPEAT_CATEGORIES)
        out["rule"] = {"p_value_max": SIGNIFICANCE, "knox_ratio_above": 1.0}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdvisoryConfig:
        """Inverse of :func:`dataclasses.asdict` (settings passed to worker processes)."""
        return cls(**{**data, "categories": tuple(data.get("categories", ()))})


# ----------------------------------------------------------------------------- the tables
def table_events(
    frame: pd.DataFrame, pack: CityPack
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Located incidents of a day or finer precision as (metres in the pack's CRS, local days).

    Returns
    -------
    tuple
        ``xy`` (n, 2), ``days`` (n,) day numbers, and the counts of incidents left out by reason.
    """
    dropped: dict[str, int] = {}
    coarse = frame["time_precision"] == "month"
    if coarse.any():
        dropped["month_precision"] = int(coarse.sum())
    located = frame["lon"].notna() & frame["lat"].notna()
    if (~located).any():
        dropped["no_location"] = int((~located).sum())
    used = frame[located & ~coarse]
    x, y = Transformer.from_crs("EPSG:4326", pack.crs, always_xy=True).transform(
        used["lon"].to_numpy(np.float64), used["lat"].to_numpy(np.float64)
    )
    days = day_numbers(local_days(used["received_at"], pack.timezone))
    return np.column_stack([x, y]), days, dropped


def _window(result: NearRepeatResult) -> dict[str, Any] | None:
    """The near-repeat window of significant bands, else the same-location one, else None."""
    near = near_repeat_window(result, min_ratio=ADVISORY_MIN_RATIO)
    if near is not None:
        return {"kind": "near_repeat", **near.as_dict()}
    repeat = near_repeat_window(result, same_location=True, min_ratio=ADVISORY_MIN_RATIO)
    if repeat is not None:
        return {"kind": "repeat", **repeat.as_dict()}
    return None


def refresh_tables(
    engine: Engine,
    pack: CityPack,
    config: AdvisoryConfig,
    *,
    categories: Sequence[str] | None = None,
    now: datetime | None = None,
    actor: str = SYSTEM_ACTOR,
) -> list[dict[str, Any]]:
    """Recompute and store the Knox table of each category (enabled ones by default).

    Every table is a new row (the earlier ones stay, as the evidence of earlier advisories) and
    an audit record ``near_repeat.refreshed``.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The migrated store.
    pack : CityPack
        The city: its incidents (inside it), metric CRS and time zone.
    config : AdvisoryConfig
    categories : sequence of str, optional
        Categories to refresh (default: the enabled ones).
    now : datetime, optional
        End of the lookback window (default: now).
    actor : str
        Who asked (the audit's actor).

    Returns
    -------
    list of dict
        The stored tables (:func:`table_dict`).
    """
    from citywatch.store.db import session_factory, writing

    chosen = list(config.categories if categories is None else categories)
    for category in chosen:
        if category not in NEAR_REPEAT_CATEGORIES:
            raise ValidationError(
                f"no near-repeat table for {category!r}: use {', '.join(NEAR_REPEAT_CATEGORIES)}",
                field="category",
            )
    end = now or datetime.now(UTC)
    start = end - timedelta(days=config.lookback_days)
    sessions = session_factory(engine)
    out = []
    for category in chosen:
        frame = load_incidents(engine, start=start, end=end, categories=[category], pack=pack).frame
        # the code itself, not its taxonomy group ("theft" would take in burglaries): the table
        # is of the very incidents the advisories are raised for
        frame = frame[frame["category"] == category]
        xy, days, dropped = table_events(frame, pack)
        row = NearRepeatTableRow(
            pack=pack.name,
            category=category,
            computed_at=end,
            computed_by=actor,
            events=len(days),
            first_day=_date(days.min()) if len(days) else None,
            last_day=_date(days.max()) if len(days) else None,
        )
        if len(days) < config.min_events:
            row.note = (
                f"{len(days)} located incidents in {config.lookback_days} days; a table needs "
                f"at least {config.min_events}"
            )
        else:
            result = near_repeat(
                xy, days, config.bands, iterations=config.iterations, seed=config.seed
            )
            # JSON has no NaN (PostgreSQL refuses it): cells with nothing expected become null
            row.table = to_jsonable(result.as_dict())
            row.window = to_jsonable(_window(result))
        with writing(sessions) as s:
            s.add(row)
            s.flush()
            doc = table_dict(row)
            append_audit(
                s,
                actor=actor,
                action="near_repeat.refreshed",
                entity="near_repeat_table",
                entity_id=str(row.id),
                after={k: v for k, v in doc.items() if k != "table"} | {"dropped": dropped},
                at=end,
            )
        out.append(doc)
    return out


def _date(day_number: Any) -> date:
    return date(1970, 1, 1) + timedelta(days=int(day_number))


def table_dict(row: NearRepeatTableRow, *, with_table: bool = True) -> dict[str, Any]:
    """A stored table as JSON-ready evidence."""
    out: dict[str, Any] = {
        "id": row.id,
        "pack": row.pack,
        "category": row.category,
        "computed_at": row.computed_at,
        "computed_by": row.computed_by,
        "first_day": row.first_day,
        "last_day": row.last_day,
        "events": row.events,
        "window": row.window,
        "significant": row.window is not None,
        "note": row.note,
    }
    if with_table:
        out["table"] = row.table
    return out


def _latest_query(pack: str, category: str) -> Any:
    return (
        select(NearRepeatTableRow)
        .where(NearRepeatTableRow.pack == pack, NearRepeatTableRow.category == category)
        .order_by(NearRepeatTableRow.computed_at.desc(), NearRepeatTableRow.id.desc())
        .limit(1)
    )


def latest_tables(session: Session, pack: str) -> dict[str, NearRepeatTableRow]:
    """The newest stored table of each category of ``pack``."""
    out = {}
    for category in NEAR_REPEAT_CATEGORIES:
        row = session.scalars(_latest_query(pack, category)).first()
        if row is not None:
            out[category] = row
    return out


def next_refresh(now: datetime, timezone: str, hour: int) -> datetime:
    """The next local ``hour``:00 strictly after ``now`` (UTC), on the city's calendar."""
    tz = ZoneInfo(timezone)
    local = now.astimezone(tz)
    at = datetime.combine(local.date(), time(hour), tz)
    if at <= local:
        at = datetime.combine(local.date() + timedelta(days=1), time(hour), tz)
    return at.astimezone(UTC)


def refresh_due(computed_at: datetime | None, now: datetime, timezone: str, hour: int) -> bool:
    """Whether a table computed at ``computed_at`` missed the last nightly refresh."""
    if computed_at is None:
        return True
    last = next_refresh(now - timedelta(days=1), timezone, hour)
    return computed_at < last


# ----------------------------------------------------------------------------- advisories
class NearRepeatAdvisor:
    """Flags near-repeat windows around new incidents and answers the advisory routes.

    Parameters
    ----------
    sessions : sessionmaker
        Sessions on the dispatch service's database.
    pack : CityPack
    config : AdvisoryConfig
    clock : callable
        Current UTC time.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        pack: CityPack,
        config: AdvisoryConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self.sessions = sessions
        self.pack = pack
        self.config = config
        self.clock = clock

    @cached_property
    def _to_metres(self) -> Transformer:
        return Transformer.from_crs("EPSG:4326", self.pack.crs, always_xy=True)

    # ------------------------------------------------------------------ the hook
    def on_incident(
        self, session: Session, who: Principal, incident: dict[str, Any], emit: Emit
    ) -> None:
        """Store and announce the advisory of a new incident (inside its transaction).

        Nothing happens unless the category is enabled and its latest table has a significant
        band.  A failure to read the table or the earlier incidents is logged and never stops
        the incident from being recorded.
        """
        category = incident["category"]
        if not self.config.enabled(category) or incident.get("lon") is None:
            return
        try:
            table = session.scalars(_latest_query(self.pack.name, category)).first()
            if table is None or table.window is None:
                return
            window = table.window
            linked = self._linked(session, incident, window)
        except Exception:  # an advisory must never block a call being recorded
            log.exception("near-repeat advisory of incident %s failed", incident["id"])
            return
        received: datetime = incident["received_at"]
        row = AdvisoryRow(
            id=f"nr:{uuid.uuid4().hex}",
            incident_id=incident["id"],
            table_id=table.id,
            pack=self.pack.name,
            category=category,
            kind=window["kind"],
            lon=incident["lon"],
            lat=incident["lat"],
            radius_m=float(window["distance_m"]),
            days=int(window["days"]),
            bureau=incident.get("bureau"),
            station=incident.get("station"),
            zone=incident.get("zone"),
            created_at=self.clock(),
            expires_at=received + timedelta(days=int(window["days"])),
            linked=linked,
        )
        session.add(row)
        session.flush()
        emit(
            session,
            SYSTEM_ACTOR,
            "advisory.created",
            incident_id=row.incident_id,
            station=row.station,
            data=self.advisory_dict(row, table, evidence=False),
        )

    def _linked(
        self, session: Session, incident: dict[str, Any], window: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Earlier incidents of the category inside the window: closer than its distance (the
        same point for a repeat window) and fewer than its days apart on the local calendar."""
        radius, days = float(window["distance_m"]), int(window["days"])
        received: datetime = incident["received_at"]
        lon, lat = float(incident["lon"]), float(incident["lat"])
        dlat = radius / 111_000.0 + 1e-6
        dlon = dlat / max(math.cos(math.radians(lat)), 0.01)
        rows = session.execute(
            select(IncidentRow.id, IncidentRow.lon, IncidentRow.lat, IncidentRow.received_at)
            .where(
                IncidentRow.category == incident["category"],
                IncidentRow.id != incident["id"],
                IncidentRow.received_at <= received,
                IncidentRow.received_at >= received - timedelta(days=days + 1),
                IncidentRow.lon.between(lon - dlon, lon + dlon),
                IncidentRow.lat.between(lat - dlat, lat + dlat),
            )
            .order_by(IncidentRow.received_at.desc())
        ).all()
        if not rows:
            return []
        x0, y0 = self._to_metres.transform(lon, lat)
        xs, ys = self._to_metres.transform(
            np.array([r.lon for r in rows]), np.array([r.lat for r in rows])
        )
        metres = np.hypot(np.asarray(xs) - x0, np.asarray(ys) - y0)
        tz = ZoneInfo(self.pack.timezone)
        today = received.astimezone(tz).date()
        out = []
        for r, d in zip(rows, metres, strict=True):
            apart = (today - r.received_at.astimezone(tz).date()).days
            near = d == 0 if radius == 0 else d < radius
            if near and apart < days:
                out.append({"incident_id": r.id, "metres": round(float(d), 1), "days": apart})
        return out

    # ------------------------------------------------------------------ reading
    def _check_reader(self, who: Principal) -> None:
        if who.role is Role.UNIT_DEVICE:
            raise PermissionDeniedError("a unit device may only post its own position and status")

    def advisory_dict(
        self, row: AdvisoryRow, table: NearRepeatTableRow | None, *, evidence: bool
    ) -> dict[str, Any]:
        """An advisory as JSON; with ``evidence`` the whole stored table it was drawn from."""
        window = table.window if table is not None and table.window else {}
        out: dict[str, Any] = {
            "id": row.id,
            "incident_id": row.incident_id,
            "category": row.category,
            "kind": row.kind,
            "lon": row.lon,
            "lat": row.lat,
            "radius_m": row.radius_m,
            "days": row.days,
            "bureau": row.bureau,
            "station": row.station,
            "zone": row.zone,
            "created_at": row.created_at,
            "expires_at": row.expires_at,
            "active": row.expires_at > self.clock(),
            "linked": list(row.linked or []),
            "table_id": row.table_id,
            "p_value": window.get("p_value"),
            "knox_ratio": window.get("ratio"),
        }
        if evidence and table is not None:
            out["evidence"] = table_dict(table)
        return out

    def list_advisories(
        self, who: Principal, *, active: bool = True, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Advisories in the caller's scope, newest first (only unexpired ones by default)."""
        self._check_reader(who)
        query = select(AdvisoryRow).where(AdvisoryRow.pack == self.pack.name)
        if active:
            query = query.where(AdvisoryRow.expires_at > self.clock())
        if who.role is Role.STATION_OFFICER:
            query = query.where(
                (AdvisoryRow.station == who.scope) | (AdvisoryRow.bureau == who.scope)
            )
        query = query.order_by(AdvisoryRow.created_at.desc()).limit(limit)
        with self.sessions() as s:
            rows = list(s.scalars(query))
            tables = {
                t.id: t
                for t in s.scalars(
                    select(NearRepeatTableRow).where(
                        NearRepeatTableRow.id.in_({r.table_id for r in rows})
                    )
                )
            }
            return [self.advisory_dict(r, tables.get(r.table_id), evidence=False) for r in rows]

    def get(self, who: Principal, advisory_id: str) -> dict[str, Any]:
        """One advisory with its evidence (the stored table, its p-values, the date range)."""
        self._check_reader(who)
        with self.sessions() as s:
            row = s.get(AdvisoryRow, advisory_id)
            if row is None or row.pack != self.pack.name:
                raise NotFoundError(f"no advisory {advisory_id!r}", field="advisory_id")
            if not who.sees(row.bureau, row.station):
                raise PermissionDeniedError(
                    f"advisory {advisory_id} belongs to station {row.station}, outside your "
                    f"scope ({who.scope or who.role})"
                )
            return self.advisory_dict(row, s.get(NearRepeatTableRow, row.table_id), evidence=True)

    def tables(self, who: Principal) -> dict[str, Any]:
        """The settings and the newest table of every category (enabled or not)."""
        self._check_reader(who)
        with self.sessions() as s:
            latest = {c: table_dict(r) for c, r in latest_tables(s, self.pack.name).items()}
        return {"settings": self.config.as_dict(), "tables": latest}

    def refresh(self, who: Principal, categories: Sequence[str] | None = None) -> dict[str, Any]:
        """Recompute the tables now (admin, commander, analyst); audited."""
        if who.role not in REFRESH_ROLES:
            raise PermissionDeniedError(
                f"role {who.role} may not recompute near-repeat tables (admin, commander, analyst)"
            )
        engine = self.sessions.kw["bind"]
        done = refresh_tables(
            engine, self.pack, self.config, categories=categories, now=self.clock(),
            actor=who.username,
        )  # fmt: skip
        return {"tables": done}

    def refresh_if_due(self) -> list[dict[str, Any]]:
        """The nightly job: recompute the enabled categories whose table missed the last run."""
        now = self.clock()
        with self.sessions() as s:
            latest = latest_tables(s, self.pack.name)
        due = [
            c
            for c in self.config.categories
            if refresh_due(
                latest[c].computed_at if c in latest else None,
                now,
                self.pack.timezone,
                self.config.refresh_hour,
            )
        ]
        if not due:
            return []
        engine = self.sessions.kw["bind"]
        return refresh_tables(engine, self.pack, self.config, categories=due, now=now)
