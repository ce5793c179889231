"""Incident records, the bilingual category taxonomy, importers and the canonical CSV."""
