"""Travel times and distances over a city pack's road network, per travel mode."""

from citywatch.routing.router import Route, Router, Snap, TravelTimes
from citywatch.routing.speeds import MODES, Mode

__all__ = ["MODES", "Mode", "Route", "Router", "Snap", "TravelTimes"]
