"""Numbers of the domain that several rooms check, defined once.

This module sits at the bottom of the layers (with :mod:`citywatch.errors`): the store's check
constraints, the incident records, the dispatch service and the API schemas all read it.
"""

from __future__ import annotations

__all__ = [
    "CLOCK_SKEW_S",
    "LAT_RANGE",
    "LON_RANGE",
    "PRIORITY_DEFAULT",
    "PRIORITY_RANGE",
]

#: Incident priorities: 1 (most urgent) to 5.
PRIORITY_RANGE: tuple[int, int] = (1, 5)
#: Priority of an incident whose source and category give none (the middle of the range).
PRIORITY_DEFAULT = 3
#: WGS-84 longitude and latitude, degrees.
LON_RANGE: tuple[float, float] = (-180.0, 180.0)
LAT_RANGE: tuple[float, float] = (-90.0, 90.0)
#: How far in the future a client's time stamp may be (clocks of devices and servers drift):
#: a call received or a position taken later than now plus this is refused.  Small, because a
#: fix dated ahead would make every real fix that follows look older and be ignored.
CLOCK_SKEW_S = 5.0
