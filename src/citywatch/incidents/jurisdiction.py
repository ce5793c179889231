"""Jurisdictions of incidents from a city pack's polygons, and where the source disagrees.

When the source gives no jurisdiction, bureau, station and zone come from point-in-polygon
in the pack. When it gives a station (the NYPD's ``PRECINCT``), the source's value is kept, and
the derived station is compared with it: disagreements are counted and sampled in the import
report. A zone is only filled from the polygons when the derived station agrees with the
source's, so a record never names a zone of another station.  A source station that is not a
station of the pack (a Bronx precinct for a point inside a Manhattan polygon) is not kept: a
point inside the city gets the pack's jurisdictions from the polygons, and is counted as
``foreign``.

:func:`scope_to_pack` is what "the incidents of this city" means everywhere (statistics,
planning, simulation): incidents located inside the city polygon, and incidents without a
location whose jurisdiction ids belong to the pack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

__all__ = ["JurisdictionReport", "PackLike", "assign_jurisdictions", "scope_to_pack"]

#: Reasons of the incidents :func:`scope_to_pack` leaves out.
OUTSIDE = "outside the city pack"
NOT_OF_PACK = "no location and no jurisdiction of the city pack"

#: Disagreements listed in a report (the count covers them all).
SAMPLE_SIZE = 10


class _JurisdictionLike(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def level(self) -> str: ...

    @property
    def parent(self) -> str | None: ...


class PackLike(Protocol):
    """What the importer needs of a :class:`citywatch.city.CityPack`."""

    @property
    def name(self) -> str: ...

    @property
    def jurisdictions(self) -> Sequence[_JurisdictionLike]: ...

    def locate_many(self, lon: Any, lat: Any) -> pd.DataFrame: ...


@dataclass
class JurisdictionReport:
    """How the pack's polygons matched the incidents.

    Attributes
    ----------
    pack
        Pack name.
    with_location
        Incidents that have coordinates.
    inside
        Of those, incidents inside the pack's city polygon.
    derived
        Incidents whose station came from the polygons (the source gave none).
    compared
        Incidents with a source station *and* a derived station.
    disagreements
        Of ``compared``, how many differ.
    foreign
        Incidents inside the city whose source station is not a station of the pack: their
        jurisdictions come from the polygons.
    sample
        Up to :data:`SAMPLE_SIZE` disagreements: id, lon, lat, source and derived station.
    pairs
        Most frequent ``(source station, derived station)`` disagreements with their counts.
    """

    pack: str
    with_location: int = 0
    inside: int = 0
    derived: int = 0
    compared: int = 0
    disagreements: int = 0
    foreign: int = 0
    sample: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def agreement(self) -> float | None:
        """Share of compared incidents whose source and derived stations agree."""
        return None if not self.compared else 1.0 - self.disagreements / self.compared

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary for JSON output."""
        return {
            "pack": self.pack,
            "with_location": self.with_location,
            "inside": self.inside,
            "derived": self.derived,
            "compared": self.compared,
            "disagreements": self.disagreements,
            "foreign": self.foreign,
            "agreement": self.agreement,
            "sample": self.sample,
            "pairs": self.pairs,
        }


def assign_jurisdictions(
    records: pd.DataFrame, pack: PackLike
) -> tuple[pd.DataFrame, pd.Series, JurisdictionReport]:
    """Fill bureau/station/zone from the pack's polygons and compare with the source's station.

    Parameters
    ----------
    records
        Canonical incidents frame.
    pack
        City pack with ``locate_many`` (vectorised point-in-polygon).

    Returns
    -------
    (pandas.DataFrame, pandas.Series, JurisdictionReport)
        The records with jurisdictions filled, a boolean mask of incidents inside the pack's
        city polygon, and the report.
    """
    out = records.copy()
    report = JurisdictionReport(pack=pack.name)
    has_loc = (out["lon"].notna() & out["lat"].notna()).to_numpy()
    report.with_location = int(has_loc.sum())
    levels = ["city", "bureau", "station", "zone"]
    derived = pd.DataFrame(None, index=out.index, columns=levels, dtype=object)
    if has_loc.any():
        located = pack.locate_many(
            out.loc[has_loc, "lon"].to_numpy(), out.loc[has_loc, "lat"].to_numpy()
        )
        for level in levels:
            if level in located.columns:
                values = located[level].astype(object)
                derived.loc[has_loc, level] = values.where(values.notna(), None).to_numpy()
    inside = derived["city"].notna()
    report.inside = int(inside.sum())

    # A station id the pack does not know, for a point inside its polygons, is another force's
    # (or another borough's) id: the polygons decide, as for an incident without one.
    stations = {j.id for j in pack.jurisdictions if j.level == "station"}
    foreign = out["station"].notna() & ~out["station"].isin(stations) & derived["station"].notna()
    report.foreign = int(foreign.sum())
    out.loc[foreign, ["bureau", "station", "zone"]] = None
    source_station = out["station"]
    fill = source_station.isna() & derived["station"].notna()
    report.derived = int(fill.sum())
    for level in ("bureau", "station", "zone"):
        out.loc[fill, level] = out.loc[fill, level].fillna(derived.loc[fill, level])

    kept = source_station.notna()
    compared = kept & derived["station"].notna()
    differ = compared & (source_station != derived["station"])
    agree = compared & ~differ
    report.compared = int(compared.sum())
    report.disagreements = int(differ.sum())
    # The source's station decides the bureau; a derived zone only when the stations agree.
    parent = {j.id: j.parent for j in pack.jurisdictions if j.level == "station"}
    bureau_of_source = source_station.map(parent)
    out.loc[kept, "bureau"] = out.loc[kept, "bureau"].fillna(bureau_of_source[kept])
    out.loc[agree, "zone"] = out.loc[agree, "zone"].fillna(derived.loc[agree, "zone"])
    out = out.astype({c: object for c in ("bureau", "station", "zone")})
    for col in ("bureau", "station", "zone"):
        out[col] = out[col].where(out[col].notna(), None)

    if report.disagreements:
        rows = out.loc[differ, ["id", "lon", "lat", "station"]].assign(
            derived_station=derived.loc[differ, "station"]
        )
        report.sample = [
            {
                "id": str(r["id"]),
                "lon": float(r["lon"]),
                "lat": float(r["lat"]),
                "source_station": str(r["station"]),
                "derived_station": str(r["derived_station"]),
            }
            for r in rows.head(SAMPLE_SIZE).to_dict("records")
        ]
        counts = (
            rows.groupby(["station", "derived_station"])
            .size()
            .rename("count")
            .reset_index()
            .sort_values(["count", "station"], ascending=[False, True])
        )
        report.pairs = [
            {
                "source_station": str(r["station"]),
                "derived_station": str(r["derived_station"]),
                "count": int(r["count"]),
            }
            for r in counts.head(SAMPLE_SIZE).to_dict("records")
        ]
    return out, inside, report


def scope_to_pack(
    records: pd.DataFrame, pack: PackLike
) -> tuple[pd.DataFrame, dict[str, int], JurisdictionReport]:
    """The incidents of the pack's city, with the pack's jurisdictions.

    An incident belongs to the city when its location lies inside the city polygon, or, without
    a location, when its station, zone or bureau is one of the pack's.  Jurisdictions follow
    :func:`assign_jurisdictions` (so the bureau of a kept source station is its parent in the
    pack, whatever level a statistic reports by).

    Parameters
    ----------
    records : pandas.DataFrame
        Canonical incidents.
    pack : PackLike
        The city pack.

    Returns
    -------
    (pandas.DataFrame, dict, JurisdictionReport)
        The incidents of the city (index kept), the counts left out by reason
        (:data:`OUTSIDE`, :data:`NOT_OF_PACK`; only reasons that occur) and the report.
    """
    out, inside, report = assign_jurisdictions(records, pack)
    located = (out["lon"].notna() & out["lat"].notna()).to_numpy()
    ids = {j.id for j in pack.jurisdictions if j.level in ("bureau", "station", "zone")}
    named = out[["bureau", "station", "zone"]].isin(ids).any(axis=1).to_numpy()
    keep = np.where(located, inside.to_numpy(dtype=bool), named)
    dropped = {OUTSIDE: int((located & ~keep).sum()), NOT_OF_PACK: int((~located & ~keep).sum())}
    return out[keep], {k: n for k, n in dropped.items() if n}, report
