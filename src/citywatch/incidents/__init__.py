"""Incident records, the bilingual category taxonomy, importers and the canonical CSV.

The importer itself (:func:`citywatch.incidents.importer.import_file`) lives in its own module
because it needs the database layer; the names here are free of it.
"""

from citywatch.incidents.canonical import read_canonical_csv, write_canonical_csv
from citywatch.incidents.record import COLUMNS, Incident, coerce_frame, from_frame, to_frame
from citywatch.incidents.sources import SOURCE_NAMES, read_source
from citywatch.incidents.taxonomy import Category, Group, Taxonomy, load_taxonomy

__all__ = [
    "COLUMNS",
    "SOURCE_NAMES",
    "Category",
    "Group",
    "Incident",
    "Taxonomy",
    "coerce_frame",
    "from_frame",
    "load_taxonomy",
    "read_canonical_csv",
    "read_source",
    "to_frame",
    "write_canonical_csv",
]
