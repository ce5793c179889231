"""``citywatch ebikes``: the e-bike registry, its theft history and statistics.

The registry commands act as the local operator (``cli``, with the admin role), like the
sensor import; each change is audited.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from citywatch.cli_options import DbOption, JsonOption, TzOption
from citywatch.console import console, print_json, print_table
from citywatch.dispatch.accounts import Principal, Role
from citywatch.errors import ValidationError

__all__ = ["THEFT_SOURCES", "app"]

app = typer.Typer(
    help="The e-bike registry (电动车物联网): tags, theft reports, statistics.",
    no_args_is_help=True,
)

#: The sources ``import-thefts`` reads (see citywatch.incidents.thefts).
THEFT_SOURCES: Final = ("toronto_bike_thefts", "nz_stolen_vehicles")
_OPERATOR = Principal("cli", Role.ADMIN)

Pack = Annotated[str, typer.Option("--pack", help="City pack of the registry.")]
Tag = Annotated[str, typer.Argument(help="The e-bike's tag id.")]


def _registry(pack: str, db: str | None) -> Any:
    from citywatch.city import load_pack
    from citywatch.store.db import make_engine, session_factory, upgrade
    from citywatch.surveillance.ebikes import EBikeRegistry

    engine = make_engine(db)
    upgrade(engine)
    return EBikeRegistry(session_factory(engine), load_pack(pack))


def _show(doc: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        print_json(doc)
        return
    print_table(title, ["field", "value"], [(k, v) for k, v in doc.items() if k != "theft_reports"])


@app.command("register")
def register(
    tag: Tag,
    pack: Pack,
    station: Annotated[str, typer.Option("--station", help="Registering station (its id).")],
    make: Annotated[str | None, typer.Option("--make", help="Make, e.g. Yadea.")] = None,
    colour: Annotated[str | None, typer.Option("--colour", help="Colour.")] = None,
    contact: Annotated[
        str | None,
        typer.Option("--contact", help="Owner's telephone or e-mail (optional; nothing else)."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an e-bike by its tag (kept only as a keyed hash and its last 4 characters)."""
    doc = _registry(pack, db).register(
        _OPERATOR, tag, make=make, colour=colour, contact=contact, station=station
    )
    _show(doc, as_json, f"E-bike {doc['id']} registered")


@app.command("show")
def show(tag: Tag, pack: Pack, db: DbOption = None, as_json: JsonOption = False) -> None:
    """One registered e-bike and its theft reports."""
    doc = _registry(pack, db).get(_OPERATOR, tag)
    if as_json:
        print_json(doc)
        return
    _show(doc, False, f"E-bike {doc['id']}")
    for report in doc["theft_reports"]:
        console.print(
            f"theft report {report['id']}: {report['occurred_at']} station {report['station']} "
            f"({report['status']}, incident {report['incident_id']})"
        )


@app.command("list")
def list_(
    pack: Pack,
    station: Annotated[str | None, typer.Option("--station", help="Only this station.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="registered or stolen.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Registered e-bikes."""
    bikes = _registry(pack, db).bikes(_OPERATOR, station=station, status=status)
    if as_json:
        print_json(bikes)
        return
    print_table(
        f"{len(bikes)} e-bike(s)",
        ["id", "tag", "make", "colour", "station", "status"],
        [
            (b["id"], f"…{b['tag_hint']}", b["make"], b["colour"], b["station"], b["status"])
            for b in bikes
        ],
    )


@app.command("report-theft")
def report_theft(
    tag: Tag,
    pack: Pack,
    at: Annotated[
        datetime,
        typer.Option("--at", help="When it was stolen, ISO 8601 with offset.", formats=None),
    ],
    lon: Annotated[float | None, typer.Option("--lon", help="Where (WGS-84).")] = None,
    lat: Annotated[float | None, typer.Option("--lat", help="Where (WGS-84).")] = None,
    note: Annotated[str | None, typer.Option("--note", help="Short note.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report a registered e-bike stolen: incident, report and stolen_ebikes hotlist entry."""
    if at.tzinfo is None:
        raise ValidationError("--at needs a UTC offset, e.g. 2026-12-01T08:30:00+08:00")
    doc = _registry(pack, db).report_theft(
        _OPERATOR, tag, occurred_at=at, lon=lon, lat=lat, note=note
    )
    _show(doc, as_json, f"Theft report {doc['id']}")


@app.command("recover")
def recover(tag: Tag, pack: Pack, db: DbOption = None, as_json: JsonOption = False) -> None:
    """The stolen e-bike was found: close the report, withdraw the hotlist entry."""
    doc = _registry(pack, db).recover(_OPERATOR, tag)
    _show(doc, as_json, f"Theft report {doc['id']} closed")


@app.command("deregister")
def deregister(tag: Tag, pack: Pack, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Delete a registered e-bike and its owner contact."""
    doc = _registry(pack, db).deregister(_OPERATOR, tag)
    _show(doc, as_json, f"E-bike {doc['id']} deregistered")


@app.command("import-thefts")
def import_thefts(
    file: Annotated[Path, typer.Argument(help="Theft file (CSV, optionally .gz).")],
    source: Annotated[str, typer.Option("--source", help=f"One of {', '.join(THEFT_SOURCES)}.")],
    pack: Annotated[
        str | None, typer.Option("--pack", help="City pack: jurisdictions by polygon.")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import real theft records as incidents (e-bikes as ``ebike_theft``, mopeds as
    ``moped_theft``) through the incident importer, with the make and colour of each stolen
    item; importing again adds nothing."""
    from citywatch.city import load_pack
    from citywatch.incidents.importer import import_file
    from citywatch.store.db import make_engine
    from citywatch.surveillance.ebike_thefts import read_descriptions, store_descriptions

    if source not in THEFT_SOURCES:
        raise ValidationError(
            f"unknown theft source {source!r}; choose one of {', '.join(THEFT_SOURCES)}",
            field="source",
        )
    engine = make_engine(db)
    report = import_file(file, source, db=engine, pack=None if pack is None else load_pack(pack))
    with engine.begin() as conn:
        described = store_descriptions(conn, read_descriptions(file, source))
    if as_json:
        print_json({**report.to_dict(), "items_described": described})
        return
    print_table(
        f"Import of {report.file} ({source})",
        ["rows", "count"],
        [
            ("read", report.read),
            ("imported", report.imported),
            ("already present", report.already_present),
            ("merged (several bicycles, one theft)", report.merged),
            ("rejected", report.rejected),
            ("stolen items described (make, colour)", described),
        ],
    )


@app.command("stats")
def stats(
    pack: Annotated[
        str | None, typer.Option("--pack", help="City pack: its areas and time zone.")
    ] = None,
    tz: TzOption = None,
    incidents: Annotated[
        Path | None, typer.Option("--incidents", help="Read this file instead of the database.")
    ] = None,
    source: Annotated[str, typer.Option("--source", help="Source of --incidents.")] = "canonical",
    mopeds: Annotated[bool, typer.Option("--mopeds", help="Count moped thefts too.")] = False,
    png: Annotated[Path | None, typer.Option("--png", help="Write a heat map here.")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Areas in the table and map.")] = 25,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """E-bike thefts by area and local hour of day (registry reports and imported thefts)."""
    from citywatch.city import load_pack
    from citywatch.incidents.load import load_incidents
    from citywatch.surveillance.ebike_stats import (
        EBIKE_CATEGORIES,
        MOPED_CATEGORY,
        theft_stats,
        theft_stats_png,
    )

    city = None if pack is None else load_pack(pack)
    zone = tz or (None if city is None else city.timezone)
    if zone is None:
        raise ValidationError("give --tz (the local time zone of the hours) or --pack", field="tz")
    categories = list(EBIKE_CATEGORIES) + ([MOPED_CATEGORY] if mopeds else [])
    loaded = load_incidents(
        db,
        files=[] if incidents is None else [(incidents, source)],
        database=incidents is None,
        categories=categories,
        pack=city,
    )
    areas = [] if city is None else [j.id for j in city.jurisdictions if j.level == "station"]
    result = theft_stats(loaded.frame, zone, mopeds=mopeds, areas=areas)
    if png is not None:
        where = city.name if city is not None else zone
        theft_stats_png(result, png, f"E-bike thefts by area and hour ({where})", top=top)
    doc = result.to_dict()
    if png is not None:
        doc["png"] = str(png)
    if as_json:
        print_json(doc)
        return
    console.print(
        f"{doc['total']:,} theft(s); {doc['with_hour']:,} with an hour "
        f"({doc['no_hour']:,} known only to the day)"
    )
    print_table(
        "Thefts by local hour",
        ["hour", "thefts"],
        [(h, n) for h, n in enumerate(doc["by_hour"])],
    )
    print_table(
        f"Thefts by area (top {top})",
        ["area", "thefts", "peak hour"],
        [
            (a["area"], a["total"], int(max(range(24), key=lambda h: a["by_hour"][h])))
            for a in doc["by_area"][:top]
        ],
    )
