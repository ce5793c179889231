"""Crime statistics and reports: year-over-year change, clearance, quiet days, profiles.

The statistics work on the canonical incident DataFrame; the CompStat report lives in
:mod:`citywatch.analytics.report` (imported on demand: it loads matplotlib).
"""

from citywatch.analytics.compare import ClearanceResult, CompareResult, clearance, compare
from citywatch.analytics.profile import ProfileResult, profile
from citywatch.analytics.quiet import QuietDaysResult, quiet_days
from citywatch.analytics.scope import Period, baseline_period
from citywatch.analytics.survey import SurveyResult, read_survey, satisfaction

__all__ = [
    "ClearanceResult",
    "CompareResult",
    "Period",
    "ProfileResult",
    "QuietDaysResult",
    "SurveyResult",
    "baseline_period",
    "clearance",
    "compare",
    "profile",
    "quiet_days",
    "read_survey",
    "satisfaction",
]
