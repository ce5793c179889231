"""The real incident data sets bundled for forecasting, read with the incident importers.

=====================  ==============================================================  ==========
name                   what                                                            times
=====================  ==============================================================  ==========
``nyc-thefts``         NYC motor-vehicle thefts 2014-2017 (CODE) inside Manhattan       exact
``nypd-shootings``     NYPD shootings 2006-2018 inside Manhattan                        exact
``nashville``          Metro Nashville PD calls for service, Jan-Aug 2024               exact
``chicago-southside``  1,000 Chicago South Side incidents of 2016, with the study area  exact
``toronto-bikes``      Toronto Police bicycle thefts 2014-2017                          day
=====================  ==============================================================  ==========

The files are in the repository's ``data/`` folder (``data/CREDITS.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import Transformer

from citywatch.errors import NotFoundError
from citywatch.incidents.sources import read_source
from citywatch.paths import data_dir

__all__ = ["DATASETS", "Dataset", "LoadedDataset", "load_dataset"]


@dataclass(frozen=True)
class Dataset:
    """A bundled data set: file (under ``data/``), importer source and the study area."""

    file: str
    source: str
    crs: str
    timezone: str  # the city's: forecast days are its local days
    mapping: str | None = None
    pack: str | None = None  # the study area is this pack's city polygon
    boundary: str | None = None  # or this polygon file (in ``crs``)


DATASETS: Final[dict[str, Dataset]] = {
    "nyc-thefts": Dataset(
        "manhattan/nyc_vehicle_thefts_2014.csv",
        "code",
        "EPSG:32618",
        "America/New_York",
        pack="manhattan",
    ),
    "nypd-shootings": Dataset(
        "manhattan/nypd_shootings_historic.csv",
        "nypd_shootings",
        "EPSG:32618",
        "America/New_York",
        pack="manhattan",
    ),
    "nashville": Dataset(
        "nashville/calls_2024_partial.csv", "nashville", "EPSG:32616", "America/Chicago"
    ),
    "chicago-southside": Dataset(
        "chicago-southside/example.csv.gz",
        "generic",
        # The shapefile's .prj is empty; its coordinates match Illinois East state plane (m).
        "EPSG:26971",
        "America/Chicago",
        mapping="chicago_southside.toml",
        boundary="chicago-southside/SouthSide.shp",
    ),
    "toronto-bikes": Dataset(
        "thefts/toronto_tps_bicycle_thefts_2014_2017.csv.gz",
        "generic",
        "EPSG:32617",
        "America/Toronto",
        mapping="toronto_bicycle_thefts.toml",
    ),
}


@dataclass(frozen=True)
class LoadedDataset:
    """Incidents of a data set and where they may be forecast.

    Attributes
    ----------
    frame
        Canonical incidents inside the study area.
    crs
        Metric CRS for the grid.
    timezone
        The city's time zone.
    study_area
        Shapely polygon in ``crs`` (None: the grid covers the incidents).
    pack
        Pack name for street segments and areas, if any.
    outside
        Incidents dropped for lying outside the study area or having no location.
    """

    frame: pd.DataFrame
    crs: str
    timezone: str
    study_area: Any | None
    pack: str | None
    outside: int


def _to_crs(geometry: Any, crs: str) -> Any:
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return shapely.transform(geometry, lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1])))


def load_dataset(name: str) -> LoadedDataset:
    """Read a bundled data set with its importer and clip it to the study area.

    Raises
    ------
    NotFoundError
        For an unknown name.
    """
    spec = DATASETS.get(name)
    if spec is None:
        raise NotFoundError(f"no data set {name!r}; choose one of {', '.join(DATASETS)}")
    mapping: Path | None = None
    if spec.mapping is not None:
        mapping = Path(str(resources.files("citywatch.forecast") / "data" / spec.mapping))
    frame = read_source(data_dir() / spec.file, spec.source, mapping=mapping).incidents
    area = None
    if spec.pack is not None:
        from citywatch.city import load_pack

        pack = load_pack(spec.pack)
        area = _to_crs(shapely.union_all([j.geometry for j in pack.level("city")]), spec.crs)
    elif spec.boundary is not None:
        area = shapely.union_all(pyogrio.read_dataframe(data_dir() / spec.boundary).geometry)
    located = frame["lon"].notna() & frame["lat"].notna()
    keep = located.to_numpy(dtype=bool, copy=True)
    if area is not None:
        x, y = Transformer.from_crs("EPSG:4326", spec.crs, always_xy=True).transform(
            frame["lon"].fillna(0.0).to_numpy(), frame["lat"].fillna(0.0).to_numpy()
        )
        keep &= shapely.contains_xy(area, x, y)
    return LoadedDataset(
        frame=frame[keep].reset_index(drop=True),
        crs=spec.crs,
        timezone=spec.timezone,
        study_area=area,
        pack=spec.pack,
        outside=int((~keep).sum()),
    )
