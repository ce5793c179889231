"""``citywatch demo``: the bundled city's command centre with a simulated live feed.

:mod:`citywatch.demo.cli` is the command (pack, incidents, accounts, fleet, service);
:mod:`citywatch.demo.calls` the simulated calls; :mod:`citywatch.demo.feed` the background feed
that takes them and drives the units through the live dispatch service.
"""

from citywatch.demo.cli import demo

__all__ = ["demo"]
