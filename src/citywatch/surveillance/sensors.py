"""The sensor registry's pure model: cameras and readers, their power schedules and status.

A sensor is a fixed camera, a PTZ camera, a plate reader or an e-bike tag reader with a WGS-84
location, an optional viewing direction (compass degrees, clockwise from north), field-of-view
angle and range, an owner, a power schedule (windows of the day when it has no power, e.g. a
market that cuts its circuits at night: ``off 23:00-06:00``) and a status with its history.
CityWatch holds only these facts about sensors: never images, never biometrics.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from citywatch.errors import ValidationError

__all__ = [
    "DEFAULT_FOV_DEG",
    "DEFAULT_RANGE_M",
    "HOURS",
    "RECORD_FIELDS",
    "VIDEO_KINDS",
    "Owner",
    "PowerSchedule",
    "Sensor",
    "SensorKind",
    "SensorStatus",
    "StatusChange",
    "optional_number",
    "optional_text",
    "working_by_hour",
]

#: Hours of the day, 0..23, in the city's local time.
HOURS = 24


class SensorKind(StrEnum):
    """What a sensor is."""

    FIXED_CAMERA = "fixed_camera"
    PTZ = "ptz"
    PLATE_READER = "plate_reader"
    EBIKE_TAG_READER = "ebike_tag_reader"


#: Kinds whose picture counts as video coverage of the street.
VIDEO_KINDS = frozenset({SensorKind.FIXED_CAMERA, SensorKind.PTZ})

#: Range (m) assumed when a record gives none.  Traffic and CCTV cameras identify people and
#: vehicles over about one city block; plate and tag readers read one lane close by.
DEFAULT_RANGE_M: dict[SensorKind, float] = {
    SensorKind.FIXED_CAMERA: 80.0,
    SensorKind.PTZ: 120.0,
    SensorKind.PLATE_READER: 30.0,
    SensorKind.EBIKE_TAG_READER: 15.0,
}

#: Field of view (degrees) assumed when a record gives a direction but no angle.  Without a
#: direction a sensor is taken to see all round (360°): PTZ cameras pan, and for fixed cameras of
#: unknown heading this is the documented optimistic assumption (docs/surveillance.md).
DEFAULT_FOV_DEG: dict[SensorKind, float] = {
    SensorKind.FIXED_CAMERA: 90.0,
    SensorKind.PTZ: 360.0,
    SensorKind.PLATE_READER: 30.0,
    SensorKind.EBIKE_TAG_READER: 120.0,
}


#: The fields of a sensor's flat record (:meth:`Sensor.to_dict` without the history).
RECORD_FIELDS = (
    "id",
    "kind",
    "name",
    "lon",
    "lat",
    "owner",
    "direction_deg",
    "fov_deg",
    "range_m",
    "power_off",
    "status",
    "source",
    "snap_lon",
    "snap_lat",
    "snap_m",
    "bureau",
    "station",
    "zone",
)


def optional_number(value: Any) -> float | None:
    """A float, or None for None, NaN and the empty string."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return None
    return float(value)


def optional_text(value: Any) -> str | None:
    """A string, or None for None, NaN and the empty string."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value) == "":
        return None
    return str(value)


class Owner(StrEnum):
    """Who operates a sensor."""

    POLICE = "police"
    CITY = "city"  # a public agency other than the police (traffic department, city RTCC)
    BUSINESS = "business"
    MARKET = "market"
    PRIVATE_REGISTERED = "private_registered"


class SensorStatus(StrEnum):
    """Whether a sensor works now."""

    ONLINE = "online"
    OFFLINE = "offline"
    MAINTENANCE = "maintenance"


_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_DAY_MINUTES = 24 * 60


def _minute(hours: str, minutes: str, text: str) -> int:
    h, m = int(hours), int(minutes)
    if not (0 <= h <= 24 and 0 <= m < 60) or h * 60 + m > _DAY_MINUTES:
        raise ValidationError(f"power schedule {text!r}: bad time of day", field="power_off")
    return h * 60 + m


@dataclass(frozen=True)
class PowerSchedule:
    """Windows of the local day when a sensor has no power.

    Attributes
    ----------
    off : tuple of (int, int)
        ``(start, end)`` minutes after local midnight; a window with ``end <= start`` runs over
        midnight (``23:00-06:00``).  Empty: powered all day.
    """

    off: tuple[tuple[int, int], ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> PowerSchedule:
        """Parse ``"23:00-06:00"`` or several windows joined by ``;`` (empty: always on).

        Raises
        ------
        ValidationError
            On a malformed window.
        """
        if text is None or not str(text).strip():
            return cls()
        windows = []
        for part in str(text).split(";"):
            match = _WINDOW.match(part)
            if match is None:
                raise ValidationError(
                    f"power schedule {text!r}: expected HH:MM-HH:MM[;HH:MM-HH:MM...]",
                    field="power_off",
                )
            a, b, c, d = match.groups()
            start, end = _minute(a, b, text), _minute(c, d, text)
            if start == end:
                raise ValidationError(f"power schedule {text!r}: empty window", field="power_off")
            windows.append((start % _DAY_MINUTES, end % _DAY_MINUTES))
        return cls(tuple(windows))

    def __str__(self) -> str:
        return ";".join(
            f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in self.off
        )

    def powered_hours(self) -> npt.NDArray[np.bool_]:
        """Boolean per local hour 0..23: powered for the whole hour.

        An hour with any minute off counts as dark: coverage is promised only for hours the
        camera records throughout.
        """
        minutes = np.ones(_DAY_MINUTES, dtype=bool)
        for start, end in self.off:
            if start < end:
                minutes[start:end] = False
            else:
                minutes[start:] = False
                minutes[:end] = False
        return np.asarray(minutes.reshape(HOURS, 60).all(axis=1))


@dataclass(frozen=True)
class StatusChange:
    """One entry of a sensor's status history."""

    at: datetime
    status: SensorStatus
    note: str | None = None


def _check_angle(value: float | None, name: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    if not np.isfinite(value) or not low <= value <= high:
        raise ValidationError(f"{name} must be between {low:g} and {high:g}", field=name)
    return float(value)


@dataclass(frozen=True)
class Sensor:
    """One sensor of a city's registry.

    ``lon``/``lat`` are where the record puts it; once snapped (see
    :func:`citywatch.surveillance.registry.snap_sensors`) ``snap_lon``/``snap_lat`` are the
    nearest street point, ``snap_m`` its distance and ``bureau``/``station``/``zone`` the pack's
    jurisdictions of that point.
    """

    id: str
    kind: SensorKind
    lon: float
    lat: float
    owner: Owner
    name: str | None = None
    direction_deg: float | None = None
    fov_deg: float | None = None
    range_m: float | None = None
    power: PowerSchedule = field(default_factory=PowerSchedule)
    status: SensorStatus = SensorStatus.ONLINE
    history: tuple[StatusChange, ...] = ()
    source: str | None = None
    snap_lon: float | None = None
    snap_lat: float | None = None
    snap_m: float | None = None
    bureau: str | None = None
    station: str | None = None
    zone: str | None = None

    def __post_init__(self) -> None:
        for name, enum in (("kind", SensorKind), ("owner", Owner), ("status", SensorStatus)):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, enum(value))  # accept the plain string too
            except ValueError:
                allowed = ", ".join(e.value for e in enum)
                raise ValidationError(
                    f"sensor {self.id}: unknown {name} {value!r}; use one of {allowed}", field=name
                ) from None
        if not self.id or len(self.id) > 64:
            raise ValidationError("a sensor id must have 1 to 64 characters", field="id")
        if not (np.isfinite(self.lon) and np.isfinite(self.lat)):
            raise ValidationError(f"sensor {self.id}: coordinates must be finite", field="lon")
        if abs(self.lon) > 180 or abs(self.lat) > 90:
            raise ValidationError(f"sensor {self.id}: coordinates out of range", field="lon")
        _check_angle(self.direction_deg, "direction_deg", 0.0, 360.0)
        _check_angle(self.fov_deg, "fov_deg", 0.0, 360.0)
        if self.range_m is not None and not (np.isfinite(self.range_m) and self.range_m > 0):
            raise ValidationError(f"sensor {self.id}: range must be positive", field="range_m")

    @property
    def effective_range_m(self) -> float:
        """The record's range, or the kind's default (:data:`DEFAULT_RANGE_M`)."""
        return self.range_m if self.range_m is not None else DEFAULT_RANGE_M[self.kind]

    @property
    def effective_fov_deg(self) -> float:
        """360° without a direction; else the record's angle or the kind's default."""
        if self.direction_deg is None:
            return 360.0
        return self.fov_deg if self.fov_deg is not None else DEFAULT_FOV_DEG[self.kind]

    @property
    def is_video(self) -> bool:
        """Whether the sensor's picture counts as video coverage."""
        return self.kind in VIDEO_KINDS

    @classmethod
    def from_record(cls, record: dict[str, Any], history: tuple[StatusChange, ...] = ()) -> Sensor:
        """A sensor from a flat record (:data:`RECORD_FIELDS`; absent or empty values are None,
        ``status`` defaults to online): a CSV row, a database row, a request body.

        Raises
        ------
        ValidationError
            On an unknown kind, owner or status, or a bad value.
        KeyError, ValueError
            When ``id``, ``kind``, ``lon``, ``lat`` or ``owner`` is missing or not a number.
        """
        number, text = optional_number, optional_text
        return cls(
            id=str(record["id"]),
            kind=record["kind"],  # enum strings are checked in __post_init__
            lon=float(record["lon"]),
            lat=float(record["lat"]),
            owner=record["owner"],
            name=text(record.get("name")),
            direction_deg=number(record.get("direction_deg")),
            fov_deg=number(record.get("fov_deg")),
            range_m=number(record.get("range_m")),
            power=PowerSchedule.parse(text(record.get("power_off"))),
            status=text(record.get("status")) or SensorStatus.ONLINE,  # type: ignore[arg-type]
            history=history,
            source=text(record.get("source")),
            snap_lon=number(record.get("snap_lon")),
            snap_lat=number(record.get("snap_lat")),
            snap_m=number(record.get("snap_m")),
            bureau=text(record.get("bureau")),
            station=text(record.get("station")),
            zone=text(record.get("zone")),
        )

    def with_status(
        self, status: SensorStatus | str, at: datetime | None = None, note: str | None = None
    ) -> Sensor:
        """A copy with a new status and the change appended to the history."""
        new = SensorStatus(status)
        when = at or datetime.now(UTC)
        change = StatusChange(when, new, note)
        return replace(self, status=new, history=(*self.history, change))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (the columns of the registry CSV, plus the history)."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "name": self.name,
            "lon": self.lon,
            "lat": self.lat,
            "owner": self.owner.value,
            "direction_deg": self.direction_deg,
            "fov_deg": self.fov_deg,
            "range_m": self.range_m,
            "power_off": str(self.power) or None,
            "status": self.status.value,
            "source": self.source,
            "snap_lon": self.snap_lon,
            "snap_lat": self.snap_lat,
            "snap_m": self.snap_m,
            "bureau": self.bureau,
            "station": self.station,
            "zone": self.zone,
            "history": [
                {"at": h.at.isoformat(), "status": h.status.value, "note": h.note}
                for h in self.history
            ],
        }


def working_by_hour(
    sensors: Sequence[Sensor],
    outages: Iterable[str] = (),
    power_cut_hours: Iterable[int] = (),
    backup: Iterable[str] = (),
) -> npt.NDArray[np.bool_]:
    """Which sensors work at each local hour: shape ``(24, n)``.

    A sensor works at hour ``h`` when its status is ``online``, it is not in ``outages``, its
    power schedule has it on for the whole hour and, during ``power_cut_hours`` (a city-wide
    cut of the public supply), it has backup power.  Sensors in ``backup`` keep working through
    their own schedule's off windows and through power cuts.

    Parameters
    ----------
    sensors : sequence of Sensor
    outages : iterable of str
        Ids of sensors out of order for the whole day (on top of their status).
    power_cut_hours : iterable of int
        Local hours 0..23 without mains power.
    backup : iterable of str
        Ids of sensors with backup power.
    """
    out_ids, backed = set(outages), set(backup)
    cut = np.zeros(HOURS, dtype=bool)
    for hour in power_cut_hours:
        if not 0 <= int(hour) < HOURS:
            raise ValidationError("power-cut hours must be 0..23", field="power_cut_hours")
        cut[int(hour)] = True
    on = np.zeros((HOURS, len(sensors)), dtype=bool)
    for j, sensor in enumerate(sensors):
        if sensor.status is not SensorStatus.ONLINE or sensor.id in out_ids:
            continue
        if sensor.id in backed:
            on[:, j] = True
        else:
            on[:, j] = sensor.power.powered_hours() & ~cut
    return on
