"""``citywatch demo``: build the demo packs, import the bundled incidents, start the service."""

from __future__ import annotations


def demo() -> None:
    """Build the demo city packs if missing, import bundled incidents and start the service."""
