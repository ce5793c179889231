"""``citywatch route``: travel time and path between two points."""

from __future__ import annotations


def route() -> None:
    """Travel time, distance and path between two points."""
