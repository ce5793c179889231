"""Discrete-event simulation of a city's incidents under a fleet and a dispatch policy.

The main entry points; ``citywatch.sim.report`` (plots, HTML) is imported on demand because it
loads matplotlib.
"""

from citywatch.sim.demand import DemandModel, IncidentBatch, fit_demand, generate_incidents
from citywatch.sim.kpis import compare, replication_kpis, summarise
from citywatch.sim.runner import SimResult, prepare, run_scenario
from citywatch.sim.scenario import Scenario, load_scenario, parse_scenario
from citywatch.sim.travel import SearchTravel

__all__ = [
    "DemandModel",
    "IncidentBatch",
    "Scenario",
    "SearchTravel",
    "SimResult",
    "compare",
    "fit_demand",
    "generate_incidents",
    "load_scenario",
    "parse_scenario",
    "prepare",
    "replication_kpis",
    "run_scenario",
    "summarise",
]
