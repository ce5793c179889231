"""Incidents written for other tools: the canonical CSV, or a GIS file with point geometries.

The GIS files (GeoJSON, GeoPackage, GeoParquet; :mod:`citywatch.city.geo`) hold the canonical
columns with their types (date-times as date-times, ``solved`` as a boolean) and a WGS-84 point
per incident; incidents without a location keep an empty geometry.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from citywatch.city.geo import table_format, write_table
from citywatch.incidents.canonical import write_canonical_csv
from citywatch.incidents.record import DATETIME_COLUMNS, coerce_frame

__all__ = ["export_incidents"]


def export_incidents(
    frame: pd.DataFrame, out: str | Path, fmt: str | None = None, *, tz: str | None = None
) -> int:
    """Write incidents as a canonical CSV, GeoJSON, GeoPackage or GeoParquet.

    Parameters
    ----------
    frame : pandas.DataFrame
        Canonical incidents.
    out : str or pathlib.Path
        Output file; its suffix chooses the format unless ``fmt`` is given.
    fmt : {"csv", "geojson", "gpkg", "parquet"}, optional
    tz : str, optional
        Write date-times in this time zone instead of UTC.

    Returns
    -------
    int
        Incidents written.
    """
    kind = table_format(out, fmt)
    if kind == "csv":
        return write_canonical_csv(frame, out, tz=tz)
    data = coerce_frame(frame)
    if tz is not None:
        for column in DATETIME_COLUMNS:
            data[column] = data[column].dt.tz_convert(tz)
    return write_table(data, out, kind, layer="incidents")
