"""Video surveillance: the sensor registry, camera coverage by hour, blind spots, placement.

CityWatch holds facts about sensors (where, what, whose, powered when, working or not) and
computes what their views cover; it never holds images or biometrics.
"""

from citywatch.surveillance.coverage import NIGHT_HOURS, CameraCoverage, HourlyCoverage
from citywatch.surveillance.registry import read_sensors, snap_sensors, write_sensors
from citywatch.surveillance.sensors import (
    Owner,
    PowerSchedule,
    Sensor,
    SensorKind,
    SensorStatus,
    working_by_hour,
)

__all__ = [
    "NIGHT_HOURS",
    "CameraCoverage",
    "HourlyCoverage",
    "Owner",
    "PowerSchedule",
    "Sensor",
    "SensorKind",
    "SensorStatus",
    "read_sensors",
    "snap_sensors",
    "working_by_hour",
    "write_sensors",
]
