"""Status timers, welfare check-ins and out-of-service reasons of the roster board (pure).

A unit's timer runs from its last status change or its last welfare check-in, whichever is
later.  Per unit type and status, ``dispatch/data/timers.toml`` sets a warning and an alert
threshold (e.g. on scene for more than 20 minutes without a check-in): :func:`timer_state` says
where a unit stands, and :class:`TimerWatch` turns the levels of the whole fleet, read at each
tick, into the events of the level changes (the API ticks it every :data:`TIMER_TICK_S`
seconds, so an event reaches the dashboard within a second of the crossing).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

from citywatch.dispatch.lifecycle import UNIT_LIFECYCLE
from citywatch.dispatch.policy import load_requirements
from citywatch.errors import DataError
from citywatch.tomlkeys import check_keys, read_toml

__all__ = [
    "TIMER_TICK_S",
    "OutOfService",
    "Thresholds",
    "TimerLevel",
    "TimerRules",
    "TimerState",
    "TimerWatch",
    "load_timer_rules",
    "parse_timer_rules",
    "timer_state",
]

#: Seconds between two evaluations of the timers by the service (events within one second).
TIMER_TICK_S: Final = 0.5


class OutOfService(StrEnum):
    """Why a unit is out of service (set with the status, shown on the roster board)."""

    MEAL = "meal"
    MAINTENANCE = "maintenance"
    TRAINING = "training"


class TimerLevel(StrEnum):
    """Where a unit's status timer stands."""

    OK = "ok"
    WARNING = "warning"
    ALERT = "alert"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Seconds in a status (without a check-in) until the warning and until the alert."""

    warn_s: float
    alert_s: float


@dataclass(frozen=True)
class TimerRules:
    """Thresholds per status, with per-unit-type overrides."""

    by_status: Mapping[str, Thresholds]
    by_type: Mapping[tuple[str, str], Thresholds]

    def thresholds(self, unit_type: str, status: str) -> Thresholds | None:
        """The thresholds of a unit of ``unit_type`` in ``status`` (``None``: no timer)."""
        return self.by_type.get((unit_type, status), self.by_status.get(status))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"status": {...}, "unit_type": {type: {...}}}`` (for API clients)."""
        types: dict[str, dict[str, Any]] = {}
        for (unit_type, status), th in sorted(self.by_type.items()):
            types.setdefault(unit_type, {})[status] = {"warn_s": th.warn_s, "alert_s": th.alert_s}
        return {
            "status": {
                s: {"warn_s": th.warn_s, "alert_s": th.alert_s}
                for s, th in sorted(self.by_status.items())
            },
            "unit_type": types,
        }


def _thresholds(raw: Any, where: str) -> Thresholds:
    if not isinstance(raw, dict):
        raise DataError(f"{where}: must be a table with warn_s and alert_s")
    check_keys(raw, ("warn_s", "alert_s"), where)
    values = []
    for key in ("warn_s", "alert_s"):
        v = raw.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
            raise DataError(f"{where}: {key} must be a positive number of seconds", field=key)
        values.append(float(v))
    if not values[1] > values[0]:
        raise DataError(f"{where}: alert_s must be greater than warn_s", field="alert_s")
    return Thresholds(values[0], values[1])


def _status_table(raw: Any, where: str) -> dict[str, Thresholds]:
    if not isinstance(raw, dict):
        raise DataError(f"{where}: must be a table of statuses")
    check_keys(raw, UNIT_LIFECYCLE.statuses, where)
    return {status: _thresholds(v, f"{where}.{status}") for status, v in raw.items()}


def parse_timer_rules(
    doc: Mapping[str, Any], source: str, unit_types: Iterable[str] | None = None
) -> TimerRules:
    """Timer rules from a parsed TOML document; unknown keys, statuses and unit types refused.

    Parameters
    ----------
    doc : mapping
        The parsed document (see ``citywatch/dispatch/data/timers.toml``).
    source : str
        Its name, for error messages.
    unit_types : iterable of str, optional
        The known unit types (default: those of the bundled dispatch requirements).

    Returns
    -------
    TimerRules

    Raises
    ------
    DataError
        Naming the table and key at fault.
    """
    check_keys(doc, ("status", "unit_type"), source)
    by_status = _status_table(doc.get("status", {}), f"{source} [status]")
    if unit_types is None:
        unit_types = load_requirements().unit_modes
    types_raw = doc.get("unit_type", {})
    if not isinstance(types_raw, dict):
        raise DataError(f"{source} [unit_type]: must be a table of unit types")
    check_keys(types_raw, tuple(sorted(unit_types)), f"{source} [unit_type]")
    by_type = {
        (unit_type, status): th
        for unit_type, table in types_raw.items()
        for status, th in _status_table(table, f"{source} [unit_type.{unit_type}]").items()
    }
    return TimerRules(by_status, by_type)


@cache
def _bundled() -> TimerRules:
    text = files("citywatch.dispatch").joinpath("data/timers.toml").read_text("utf-8")
    return parse_timer_rules(tomllib.loads(text), "timers.toml")


def load_timer_rules(path: str | Path | None = None) -> TimerRules:
    """Load timer rules from a TOML file (default: the bundled ``timers.toml``).

    Raises
    ------
    DataError
        If the file cannot be read or parsed, or holds an unknown key, status or unit type.
    """
    if path is None:
        return _bundled()
    return parse_timer_rules(read_toml(path, "timer rules"), str(path))


@dataclass(frozen=True, slots=True)
class TimerState:
    """A unit's timer: level, seconds since it started, when it started, its thresholds."""

    level: TimerLevel
    elapsed_s: float
    since: datetime
    thresholds: Thresholds | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``warn_s``/``alert_s`` ``None`` when the status has no timer)."""
        th = self.thresholds
        return {
            "level": self.level.value,
            "elapsed_s": self.elapsed_s,
            "since": self.since,
            "warn_s": th.warn_s if th else None,
            "alert_s": th.alert_s if th else None,
        }


def timer_state(
    rules: TimerRules,
    unit_type: str,
    status: str,
    status_at: datetime,
    checkin_at: datetime | None,
    now: datetime,
) -> TimerState:
    """Where a unit's status timer stands at ``now``.

    Parameters
    ----------
    rules : TimerRules
    unit_type, status : str
        The unit's type and current status.
    status_at : datetime
        When the unit entered its status.
    checkin_at : datetime or None
        Its last welfare check-in; one before ``status_at`` belongs to an earlier status and is
        ignored.
    now : datetime

    Returns
    -------
    TimerState
        ``elapsed_s`` from the later of ``status_at`` and ``checkin_at``; the level is
        ``warning`` from ``warn_s`` (inclusive), ``alert`` from ``alert_s``.
    """
    since = max(status_at, checkin_at) if checkin_at is not None else status_at
    elapsed = max(0.0, (now - since).total_seconds())
    th = rules.thresholds(unit_type, status)
    level = TimerLevel.OK
    if th is not None:
        if elapsed >= th.alert_s:
            level = TimerLevel.ALERT
        elif elapsed >= th.warn_s:
            level = TimerLevel.WARNING
    return TimerState(level, elapsed, since, th)


class TimerWatch:
    """The level changes of a fleet's timers between two ticks.

    ``tick(states)`` takes ``unit id -> (station, TimerState)`` of every unit at this tick and
    returns one ``unit.timer`` event per unit whose level changed since the previous tick
    (units first seen are reported only when their level is not ``ok``).
    """

    def __init__(self) -> None:
        self._levels: dict[str, TimerLevel] = {}

    def tick(
        self, states: Mapping[str, tuple[str | None, TimerState]], now: datetime
    ) -> list[dict[str, Any]]:
        """The ``unit.timer`` events of this tick (see the class docstring)."""
        events = []
        for unit_id, (station, st) in sorted(states.items()):
            old = self._levels.get(unit_id, TimerLevel.OK)
            if st.level != old:
                events.append(
                    {
                        "type": "unit.timer",
                        "at": now.isoformat(),
                        "unit_id": unit_id,
                        "station": station,
                        "data": {"unit_id": unit_id, "from": old.value, **st.as_dict()},
                    }
                )
            self._levels[unit_id] = st.level
        for gone in set(self._levels) - set(states):
            del self._levels[gone]
        return events
