"""Numbers of the domain that several rooms check, defined once.

This module sits at the bottom of the layers (with :mod:`citywatch.errors`): the store's check
constraints, the incident records, the dispatch service and the API schemas all read it.
"""

from __future__ import annotations

__all__ = [
    "ALERT_KINDS",
    "ALERT_STATUSES",
    "CLOCK_SKEW_S",
    "HOTLIST_REASONS",
    "LAT_RANGE",
    "LON_RANGE",
    "PRIORITY_DEFAULT",
    "PRIORITY_RANGE",
    "SIGHTING_KINDS",
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

# --- sightings and hotlists (issue 14 §3): the store's constraints and the surveillance room
#: What a recognition system reads: a number plate, an e-bike's IoT tag, or a subject reference
#: of an external system (never a biometric template).
SIGHTING_KINDS: tuple[str, ...] = ("plate", "ebike_tag", "subject_ref")
#: Why a reference is on a hotlist; ``wanted_person`` needs an external case reference.
HOTLIST_REASONS: tuple[str, ...] = (
    "stolen_vehicle",
    "stolen_ebike",
    "wanted_person",
    "repeat_offender",
)
#: A hotlist hit, or a watchlist subject seen entering a station's area (惯犯进入辖区).
ALERT_KINDS: tuple[str, ...] = ("hotlist_hit", "area_entry")
#: An alert's life: open, acknowledged by a station, an incident opened from it, closed.
ALERT_STATUSES: tuple[str, ...] = ("open", "acknowledged", "incident", "closed")
