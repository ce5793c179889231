"""Pursuit: where a fleeing offender can be, where he may hide, and where to cut him off.

* :mod:`~citywatch.pursuit.reach`: streets reachable within 1, 3, 5, 10 minutes (isochrones);
* :mod:`~citywatch.pursuit.routes`: a seeded route-choice simulation of the flight;
* :mod:`~citywatch.pursuit.hiding`: places and blocks ranked by where simulated routes end;
* :mod:`~citywatch.pursuit.intercept`: interception points and units (HiGHS MILP, greedy).
"""

from citywatch.pursuit.reach import HORIZONS_MIN, Incident, Reach, Ring, reachable

__all__ = ["HORIZONS_MIN", "Incident", "Reach", "Ring", "reachable"]
