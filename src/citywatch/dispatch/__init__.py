"""Unit and incident lifecycles and the dispatch recommendation policies (no HTTP, no SQL)."""
