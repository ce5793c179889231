"""Patrol deployment planning: coverage optimisation, the hypercube queueing model, staffing."""

from citywatch.plan.coverage import (
    LSCP,
    MCLP,
    MEXCLP,
    BackupCoverage,
    CoverageData,
    CoverageResult,
    SiteGroup,
)
from citywatch.plan.heuristic import greedy_local_search
from citywatch.plan.hypercube import HypercubeModel, HypercubeResult, erlang_levels, larson_q
from citywatch.plan.posts import (
    NodeDemand,
    PostsPlan,
    density_table,
    incident_demand,
    plan_posts,
)
from citywatch.plan.shifts import city_staffing, hypercube_at_posts, parse_shifts
from citywatch.plan.staffing import (
    erlang_b,
    erlang_c,
    minimum_units,
    minimum_units_for_coverage,
    share_within,
    staffing_table,
)

__all__ = [
    "LSCP",
    "MCLP",
    "MEXCLP",
    "BackupCoverage",
    "CoverageData",
    "CoverageResult",
    "HypercubeModel",
    "HypercubeResult",
    "NodeDemand",
    "PostsPlan",
    "SiteGroup",
    "city_staffing",
    "density_table",
    "erlang_b",
    "erlang_c",
    "erlang_levels",
    "greedy_local_search",
    "hypercube_at_posts",
    "incident_demand",
    "larson_q",
    "minimum_units",
    "minimum_units_for_coverage",
    "parse_shifts",
    "plan_posts",
    "share_within",
    "staffing_table",
]
