"""Unit state kept in memory in each worker, so that recommendations read no units from the
database.

Every worker process holds one :class:`LiveUnits`: the type, mode, station, capabilities, post,
status (and since when), last welfare check-in and latest AVL position of every unit.  It is
loaded from the database once, then kept current by the changes themselves:

* a change committed by this worker is applied when its transaction commits (before the
  request that made it is answered), so a recommendation after an acknowledged write sees it;
* changes committed by other workers arrive from the event bus (PostgreSQL ``LISTEN``) and are
  applied as they are delivered, so every worker converges within the bus delay;
* a periodic merge with the database (:meth:`LiveUnits.refresh`, every
  :data:`RESYNC_INTERVAL_S` from the service's background task, and after the bus reconnects)
  repairs anything written outside the service, without ever undoing a newer change.

Ordering: a position moves a unit only when it is newer than the unit's current one (the
database's rule); a status change is applied only when its timeline event id is larger than the
last one applied to the unit (ids are taken under the unit's row lock, so they follow the order
of the changes).  A merge skips the units changed by an event since the merge began.

:meth:`LiveUnits.fleet` gives the :class:`~citywatch.dispatch.policy.Fleet` that
:func:`~citywatch.dispatch.policy.recommend` takes, the simulator's entry point too, built once
per state version and reused until a unit changes or a position turns stale.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from citywatch.dispatch.lifecycle import UnitStatus
from citywatch.dispatch.policy import Fleet, UnitView

__all__ = ["RESYNC_INTERVAL_S", "UNIT_EVENTS", "LiveUnit", "LiveUnits"]

#: Seconds between two merges of the in-memory state with the database.
RESYNC_INTERVAL_S: Final = 30.0
#: Event types that change a unit's state.
UNIT_EVENTS: Final = frozenset(
    {"unit.created", "unit.moved", "unit.status", "assignment.created", "unit.checkin"}
)
#: Where a status change's payload carries the time the unit entered its new status.
_STATUS_TIME: Final = {"unit.status": "at", "assignment.created": "assigned_at"}


@dataclass(slots=True)
class LiveUnit:
    """One unit as a dispatch decision reads it (a change replaces the whole record)."""

    id: str
    unit_type: str
    mode: str
    station: str | None
    status: str
    capabilities: frozenset[str]
    lon: float | None
    lat: float | None
    position_at: datetime | None
    post_lon: float | None
    post_lat: float | None
    #: When the unit entered its status and its last welfare check-in (the status timers);
    #: ``None``: not known from the change applied (the next read merges).
    status_at: datetime | None = None
    checkin_at: datetime | None = None
    #: Largest timeline event id of a status change applied (0: from the database).
    status_event: int = 0
    #: State version of the unit's last change (its located view is rebuilt after one).
    stamp: int = 0


def _parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


class LiveUnits:
    """The units of one worker, in memory (see the module documentation).

    Parameters
    ----------
    load : callable
        Returns every unit as :class:`LiveUnit` records, read from the database.
    located : callable
        ``located(unit, now)``: the :class:`UnitView` of a record at time ``now`` (its position,
        or its post or station when the position is stale).
    stale_after_s : float
        Age after which a position is stale (when the cached fleet must be rebuilt).
    """

    def __init__(
        self,
        load: Callable[[], Iterable[LiveUnit]],
        located: Callable[[LiveUnit, datetime], UnitView],
        stale_after_s: float,
    ) -> None:
        self._load = load
        self._located = located
        self._stale = timedelta(seconds=stale_after_s)
        self._lock = threading.Lock()
        self._merging = threading.Lock()
        self._units: dict[str, LiveUnit] = {}
        self._loaded = False
        self._reload = False
        #: Bumped by every applied change; the cached fleet is of one version.
        self.version = 0
        self._touched: dict[str, int] = {}
        self._fleet: tuple[int, datetime, datetime, Fleet] | None = None
        #: unit id -> (stamp, built at, valid until, view): a fix rebuilds one view, not all.
        self._views: dict[str, tuple[int, datetime, datetime, UnitView]] = {}
        #: How many changes were applied from events, and merges done (for tests and metrics).
        self.applied = 0
        self.merges = 0

    # ------------------------------------------------------------------ reading
    def fleet(self, now: datetime) -> Fleet:
        """The available units located at ``now`` (units without any location left out), as
        the policy's :class:`Fleet`, cached per version until a position turns stale."""
        if not self._loaded or self._reload:
            self.refresh()
        with self._lock:
            cached = self._fleet
            if cached is not None:
                version, built, valid_until, fleet = cached
                if version == self.version and built <= now <= valid_until:
                    return fleet
            units = list(self._units.values())
            version = self.version
        # The available units with a location: what the database query of a recommendation
        # selected before this state existed.
        never = datetime.max.replace(tzinfo=now.tzinfo)
        views, valid_until = [], never
        cache = self._views
        for u in units:
            if u.status != UnitStatus.AVAILABLE:
                continue
            hit = cache.get(u.id)
            if hit is not None and hit[0] == u.stamp and hit[1] <= now <= hit[2]:
                view, until = hit[3], hit[2]
            else:
                view = self._located(u, now)
                until = never
                if u.position_at is not None and not view.position_stale:
                    until = u.position_at + self._stale
                cache[u.id] = (u.stamp, now, until, view)
            if math.isfinite(view.lon):
                views.append(view)
                valid_until = min(valid_until, until)
        fleet = Fleet(views)
        with self._lock:
            if version == self.version:
                self._fleet = (version, now, valid_until, fleet)
        return fleet

    def get(self, unit_id: str) -> LiveUnit | None:
        """One unit's current record (do not modify it), ``None`` when unknown."""
        if not self._loaded or self._reload:
            self.refresh()
        return self._units.get(unit_id)

    def units(self) -> list[LiveUnit]:
        """Every unit's current record (do not modify them), without reading the database
        unless a merge is due."""
        if not self._loaded or self._reload:
            self.refresh()
        with self._lock:
            return list(self._units.values())

    def __len__(self) -> int:
        return len(self._units)

    # ------------------------------------------------------------------ merging
    def refresh(self) -> None:
        """Merge the database's units into the state: new units are added, removed ones
        dropped, and every unit not changed by an event since the merge began is replaced."""
        # One merge at a time (the timer tick merges from its own thread): a merge that read
        # the database earlier but ends later would drop the units a newer one added.
        with self._merging:
            self._merge()

    def _merge(self) -> None:
        with self._lock:
            start = self.version
            self._reload = False
        fresh = {u.id: u for u in self._load()}
        with self._lock:
            self.version += 1
            for uid, unit in fresh.items():
                if self._touched.get(uid, -1) > start:
                    continue  # an event newer than this read changed it meanwhile
                old = self._units.get(uid)
                if old is not None:
                    unit.status_event = old.status_event
                unit.stamp = self.version
                self._units[uid] = unit
            for uid in [u for u in self._units if u not in fresh]:
                if self._touched.get(uid, -1) <= start:
                    del self._units[uid]
            self._touched = {u: v for u, v in self._touched.items() if v > start}
            self._views = {u: v for u, v in self._views.items() if u in self._units}
            self._loaded = True
            self.merges += 1

    def invalidate(self) -> None:
        """Merge with the database before the next read (after a lost bus connection, or an
        event that does not carry the whole change)."""
        self._reload = True

    # ------------------------------------------------------------------ events
    def apply_all(self, events: Iterable[Mapping[str, Any]]) -> None:
        """:meth:`apply` each event in order."""
        for e in events:
            self.apply(e)

    def apply(self, event: Mapping[str, Any]) -> None:
        """Apply one committed change (an event of the bus) to the state.

        Events of other kinds are ignored; an event that cannot be applied from its payload
        (a new unit, a truncated payload, a unit not known yet) makes the next read merge with
        the database instead.
        """
        kind = event.get("type")
        if kind == "resync":
            self.invalidate()
            return
        if kind not in UNIT_EVENTS:
            return
        data = event.get("data")
        unit_id = event.get("unit_id")
        if kind == "unit.created" and unit_id is not None and str(unit_id) in self._units:
            return  # created once: already merged (this worker's own change, echoed by the bus)
        if kind == "unit.created" or not isinstance(data, Mapping) or unit_id is None:
            self.invalidate()
            return
        with self._lock:
            unit = self._units.get(str(unit_id))
            if unit is None:
                self._reload = True
                return
            if kind == "unit.moved":
                changed = self._move(unit, data)
            elif kind == "unit.checkin":
                changed = self._checkin(unit, data)
            else:
                changed = self._status(unit, kind, data, event.get("id"))
                if changed is not None and changed.status_at is None:
                    self._reload = True  # a status change without its time: merge for it
            if changed is not None:
                # A new record, never one changed in place: readers holding the old one see
                # a whole state, old or new.
                self.version += 1
                self.applied += 1
                changed.stamp = self._touched[unit.id] = self.version
                self._units[unit.id] = changed

    @staticmethod
    def _move(unit: LiveUnit, data: Mapping[str, Any]) -> LiveUnit | None:
        at = _parse_time(data.get("at"))
        lon, lat = data.get("lon"), data.get("lat")
        if at is None or lon is None or lat is None:
            return None
        if unit.position_at is not None and not unit.position_at < at:
            return None  # older than the current position: history only (as in the database)
        return replace(unit, lon=float(lon), lat=float(lat), position_at=at)

    @staticmethod
    def _checkin(unit: LiveUnit, data: Mapping[str, Any]) -> LiveUnit | None:
        at = _parse_time(data.get("at"))
        if at is None or (unit.checkin_at is not None and not unit.checkin_at < at):
            return None  # no time, or not newer than the check-in applied (an echo)
        return replace(unit, checkin_at=at)

    @staticmethod
    def _status(
        unit: LiveUnit, kind: str, data: Mapping[str, Any], event_id: Any
    ) -> LiveUnit | None:
        seq = event_id if isinstance(event_id, int) else math.inf
        if seq <= unit.status_event:
            return None  # an older change, delivered after a newer one (or twice)
        if kind == "assignment.created":
            status = UnitStatus.DISPATCHED.value
        else:
            status = str(data.get("to"))
        done = event_id if isinstance(event_id, int) else unit.status_event
        since = _parse_time(data.get(_STATUS_TIME[kind]))
        return replace(unit, status=status, status_at=since, status_event=done)
