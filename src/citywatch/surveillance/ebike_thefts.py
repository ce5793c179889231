"""What was stolen: make and colour of the items of theft incidents, and the theft map layer.

A theft is a canonical incident (category ``ebike_theft``, ``bicycle_theft``, ``moped_theft``
...); the canonical record has no place for the goods, so ``citywatch ebikes import-thefts``
also keeps, per stolen item, its type code, make and colour as the source publishes them in
``theft_descriptions`` (:class:`citywatch.store.theft_models.TheftDescriptionRow`):

=========================  ===================================================================
source                     columns kept (one row per stolen item)
=========================  ===================================================================
``toronto_bike_thefts``    ``Bike_Type``, ``Bike_Make``, ``Bike_Colour`` (rows of one
                           ``event_unique_id`` are the items of one theft, in file order)
``nz_stolen_vehicles``     ``vehicle_type``, ``make_name``, ``color``
=========================  ===================================================================

The Toronto Police publish makes as typed by the reporting officer (``EMMO``, ``DAYMAK``,
sometimes a two-letter code such as ``EM``) and colours as three-letter codes, two for a
two-tone bike (``BLK`` black, ``BLKRED`` black and red); they are kept as published, because
the code list is not part of the data.  Values that say "not known" (:data:`NOT_KNOWN`) are
kept as missing.  Theft reports made to the registry describe the registered bike (kind
:data:`REGISTRY_KIND`).  Nothing about owners is read.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import pandas as pd
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.orm import Session

from citywatch.dispatch.accounts import Principal
from citywatch.errors import ValidationError
from citywatch.incidents.jurisdiction import PackLike
from citywatch.incidents.load import load_incidents
from citywatch.incidents.parsing import read_raw_csv
from citywatch.store.models import IncidentRow
from citywatch.store.theft_models import TheftDescriptionRow
from citywatch.surveillance.ebike_stats import EBIKE_CATEGORIES

__all__ = [
    "DESCRIPTION_COLUMNS",
    "LAYER_LIMIT",
    "NOT_KNOWN",
    "REGISTRY_KIND",
    "describe",
    "read_descriptions",
    "store_descriptions",
    "theft_layer",
]

#: Per source: the columns of the event id, item type, make and colour.
DESCRIPTION_COLUMNS: Final = {
    "toronto_bike_thefts": ("event_unique_id", "Bike_Type", "Bike_Make", "Bike_Colour"),
    "nz_stolen_vehicles": ("vehicle_id", "vehicle_type", "make_name", "color"),
}
#: Published values that mean the make or colour is not known (upper case).
NOT_KNOWN: Final = frozenset({"UNKNOWN", "UNKNOWN MAKE", "UK", "UNK"})
#: The kind of the item of a theft reported to the registry: the registered e-bike.
REGISTRY_KIND: Final = "ebike"
#: The newest thefts drawn on the map (the layer stays light on a wall screen).
LAYER_LIMIT: Final = 5_000
_WIDTH: Final = {"kind": 32, "make": 64, "colour": 32}
_CHUNK: Final = 500


def _clean(values: pd.Series, name: str) -> pd.Series:
    text = values.astype("string").str.split().str.join(" ").str.slice(0, _WIDTH[name])
    return text.mask(text.str.upper().isin(NOT_KNOWN) | (text == ""))


def read_descriptions(path: Path, source: str) -> pd.DataFrame:
    """The stolen items of a theft file, one row each (module docstring).

    Returns
    -------
    pandas.DataFrame
        ``incident_id`` (``f"{source}:{event id}"``, the importer's incident id), ``item``
        (0, 1, ... within the theft, file order), ``kind``, ``make``, ``colour`` (missing when
        not known).

    Raises
    ------
    ValidationError
        For a source without item descriptions.
    """
    if source not in DESCRIPTION_COLUMNS:
        raise ValidationError(
            f"{source!r} has no item descriptions; one of {', '.join(DESCRIPTION_COLUMNS)}",
            field="source",
        )
    event, kind, make, colour = DESCRIPTION_COLUMNS[source]
    raw = read_raw_csv(path, usecols=[event, kind, make, colour])
    ids = raw[event].str.strip()
    raw = raw[ids.notna() & (ids != "")]
    ids = ids[raw.index]
    return pd.DataFrame(
        {
            "incident_id": source + ":" + ids,
            "item": ids.groupby(ids).cumcount().astype(int),
            "kind": _clean(raw[kind], "kind"),
            "make": _clean(raw[make], "make"),
            "colour": _clean(raw[colour], "colour"),
        }
    ).reset_index(drop=True)


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def store_descriptions(conn: Connection, items: pd.DataFrame) -> int:
    """Insert the items of incidents that exist and have no description yet; the number
    inserted (importing a file again adds nothing; rejected thefts have no incident)."""
    wanted = sorted(set(items["incident_id"]))
    known: set[str] = set()
    described: set[str] = set()
    for part in _chunks(wanted):
        known.update(conn.scalars(select(IncidentRow.id).where(IncidentRow.id.in_(part))))
        described.update(
            conn.scalars(
                select(TheftDescriptionRow.incident_id)
                .where(TheftDescriptionRow.incident_id.in_(part))
                .distinct()
            )
        )
    fresh = items[items["incident_id"].isin(known - described)]
    records = fresh.astype(object).where(fresh.notna(), None).to_dict("records")
    rows = [{str(k): v for k, v in r.items()} for r in records]
    if rows:
        conn.execute(insert(TheftDescriptionRow), rows)
    return len(rows)


def describe(
    s: Session | Connection, incident_ids: Iterable[str]
) -> dict[str, list[dict[str, Any]]]:
    """The stolen items of each incident (``kind``, ``make``, ``colour``), in item order;
    incidents without a description are left out."""
    out: dict[str, list[dict[str, Any]]] = {}
    d = TheftDescriptionRow
    for part in _chunks(sorted(set(incident_ids))):
        rows = s.execute(
            select(d.incident_id, d.kind, d.make, d.colour)
            .where(d.incident_id.in_(part))
            .order_by(d.incident_id, d.item)
        )
        for incident_id, kind, make, colour in rows:
            out.setdefault(incident_id, []).append({"kind": kind, "make": make, "colour": colour})
    return out


def _text(value: Any) -> str | None:
    return None if pd.isna(value) else str(value)


def _feature(r: Mapping[Hashable, Any], items: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [float(r["lon"]), float(r["lat"])]},
        "properties": {
            "id": str(r["id"]),
            "source": str(r["source"]),
            "occurred_at": pd.Timestamp(r["received_at"]).isoformat(),
            "time_precision": str(r["time_precision"]),
            "bureau": _text(r["bureau"]),
            "station": _text(r["station"]),
            "items": items.get(str(r["id"]), []),
        },
    }


def theft_layer(
    engine: Engine, pack: PackLike | None, who: Principal, *, limit: int = LAYER_LIMIT
) -> dict[str, Any]:
    """E-bike thefts of the pack with a location, imported and reported alike, in the caller's
    scope: a GeoJSON FeatureCollection of the newest ``limit``, with their stolen items.

    Returns
    -------
    dict
        Features with properties ``id``, ``source``, ``occurred_at`` (ISO, UTC),
        ``time_precision``, ``bureau``, ``station`` and ``items``; ``total`` counts the thefts
        in scope with a location before the limit.
    """
    frame = load_incidents(engine, categories=list(EBIKE_CATEGORIES), pack=pack).frame
    frame = frame[frame["lon"].notna() & frame["lat"].notna()]
    pairs = zip(frame["bureau"], frame["station"], strict=True)
    mine = pd.Series([who.sees(_text(b), _text(s)) for b, s in pairs], frame.index, dtype=bool)
    frame = frame[mine].sort_values("received_at", ascending=False, kind="stable")
    shown = frame.head(max(0, limit))
    with engine.connect() as conn:
        items = describe(conn, shown["id"])
    features = [_feature(r, items) for r in shown.to_dict("records")]
    return {"type": "FeatureCollection", "total": len(frame), "features": features}
