"""Crime statistics and reports: year-over-year change, clearance, quiet days, profiles,
near repeats and the Knox test.

The statistics work on the canonical incident DataFrame; the CompStat report lives in
:mod:`citywatch.analytics.report` (imported on demand: it loads matplotlib).
"""

from citywatch.analytics.compare import ClearanceResult, CompareResult, clearance, compare
from citywatch.analytics.knox import KnoxResult, knox
from citywatch.analytics.nearrepeat import Bands, NearRepeatResult, near_repeat, near_repeat_window
from citywatch.analytics.profile import ProfileResult, profile
from citywatch.analytics.quiet import QuietDaysResult, quiet_days
from citywatch.analytics.scope import Period, baseline_period
from citywatch.analytics.survey import SurveyResult, read_survey, satisfaction

__all__ = [
    "Bands",
    "ClearanceResult",
    "CompareResult",
    "KnoxResult",
    "NearRepeatResult",
    "Period",
    "ProfileResult",
    "QuietDaysResult",
    "SurveyResult",
    "baseline_period",
    "clearance",
    "compare",
    "knox",
    "near_repeat",
    "near_repeat_window",
    "profile",
    "quiet_days",
    "read_survey",
    "satisfaction",
]
