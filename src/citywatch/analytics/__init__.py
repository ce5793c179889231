"""Crime statistics and reports: year-over-year change, clearance, quiet days, profiles."""
