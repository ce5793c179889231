"""Unit state kept in memory in each worker, so that recommendations read no units from the
database.

Every worker process holds one :class:`LiveUnits`: the type, mode, station, capabilities, post,
status and latest AVL position of every unit.  It is loaded from the database once, then kept
current by the changes themselves:

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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from citywatch.dispatch.lifecycle import UnitStatus
from citywatch.dispatch.policy import Fleet, UnitView

__all__ = ["RESYNC_INTERVAL_S", "UNIT_EVENTS", "LiveUnit", "LiveUnits"]

#: Seconds between two merges of the in-memory state with the database.
RESYNC_INTERVAL_S: Final = 30.0
#: Event types that change a unit's state.
UNIT_EVENTS: Final = frozenset({"unit.created", "unit.moved", "unit.status", "assignment.created"})


@dataclass(slots=True)
class LiveUnit:
    """One unit as a dispatch decision reads it (mutable: updated in place under the lock)."""

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
    #: Largest timeline event id of a status change applied (0: from the database).
    status_event: int = 0


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
        self._units: dict[str, LiveUnit] = {}
        self._loaded = False
        self._reload = False
        #: Bumped by every applied change; the cached fleet is of one version.
        self.version = 0
        self._touched: dict[str, int] = {}
        self._fleet: tuple[int, datetime, datetime, Fleet] | None = None
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
        free = [u for u in units if u.status == UnitStatus.AVAILABLE]
        views = [self._located(u, now) for u in free]
        kept = [(u, v) for u, v in zip(free, views, strict=True) if math.isfinite(v.lon)]
        fleet = Fleet([v for _, v in kept])
        # Rebuild once the first fresh position turns stale.
        turns = [
            u.position_at + self._stale
            for u, v in kept
            if u.position_at is not None and not v.position_stale
        ]
        valid_until = min(turns) if turns else datetime.max.replace(tzinfo=now.tzinfo)
        with self._lock:
            if version == self.version:
                self._fleet = (version, now, valid_until, fleet)
        return fleet

    def get(self, unit_id: str) -> LiveUnit | None:
        """A copy-free view of one unit's record (do not modify), ``None`` when unknown."""
        if not self._loaded:
            self.refresh()
        return self._units.get(unit_id)

    def __len__(self) -> int:
        return len(self._units)

    # ------------------------------------------------------------------ merging
    def refresh(self) -> None:
        """Merge the database's units into the state: new units are added, removed ones
        dropped, and every unit not changed by an event since the merge began is replaced."""
        with self._lock:
            start = self.version
            self._reload = False
        fresh = {u.id: u for u in self._load()}
        with self._lock:
            for uid, unit in fresh.items():
                if self._touched.get(uid, -1) > start:
                    continue  # an event newer than this read changed it meanwhile
                old = self._units.get(uid)
                if old is not None:
                    unit.status_event = old.status_event
                self._units[uid] = unit
            for uid in [u for u in self._units if u not in fresh]:
                if self._touched.get(uid, -1) <= start:
                    del self._units[uid]
            self._touched = {u: v for u, v in self._touched.items() if v > start}
            self._loaded = True
            self.version += 1
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
            else:
                changed = self._status(unit, kind, data, event.get("id"))
            if changed:
                self.version += 1
                self.applied += 1
                self._touched[unit.id] = self.version

    @staticmethod
    def _move(unit: LiveUnit, data: Mapping[str, Any]) -> bool:
        at = _parse_time(data.get("at"))
        lon, lat = data.get("lon"), data.get("lat")
        if at is None or lon is None or lat is None:
            return False
        if unit.position_at is not None and not unit.position_at < at:
            return False  # older than the current position: history only (as in the database)
        unit.lon, unit.lat, unit.position_at = float(lon), float(lat), at
        return True

    @staticmethod
    def _status(unit: LiveUnit, kind: str, data: Mapping[str, Any], event_id: Any) -> bool:
        seq = event_id if isinstance(event_id, int) else math.inf
        if seq <= unit.status_event:
            return False  # an older change, delivered after a newer one (or twice)
        if kind == "assignment.created":
            status = UnitStatus.DISPATCHED.value
        else:
            status = str(data.get("to"))
        unit.status = status
        if isinstance(event_id, int):
            unit.status_event = event_id
        return True
