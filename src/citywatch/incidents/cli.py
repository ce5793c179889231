"""``citywatch incidents``: import and export incidents, list the category taxonomy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from citywatch.city import load_pack
from citywatch.city.geo import table_format
from citywatch.cli_options import DbOption, JsonOption, PackOption, TzOption, check_tz
from citywatch.console import console, err_console, print_json, print_table, progress
from citywatch.errors import OptionError
from citywatch.incidents.console_export import console_components
from citywatch.incidents.decoding import check_encoding
from citywatch.incidents.eido_schema import write_eido_file
from citywatch.incidents.export import export_incidents
from citywatch.incidents.importer import ImportReport, import_file
from citywatch.incidents.parquet import write_dataset
from citywatch.incidents.sources import SOURCE_NAMES, reader_for
from citywatch.incidents.storage import iter_incident_frames, load_incidents_frame
from citywatch.incidents.taxonomy import load_taxonomy

__all__ = ["app"]

app = typer.Typer(help="Import and export incidents.", no_args_is_help=True)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="Incident file (CSV, optionally .gz; EIDO JSON).")],
    source: Annotated[str, typer.Option(help=f"Source layout: {', '.join(SOURCE_NAMES)}.")],
    pack: PackOption = None,
    clip: Annotated[
        bool, typer.Option("--clip", help="With --pack: reject incidents outside the pack.")
    ] = False,
    mapping: Annotated[
        Path | None,
        typer.Option(help="Mapping TOML (columns/categories); required for --source generic."),
    ] = None,
    rejected: Annotated[
        Path | None,
        typer.Option(
            help="Where to write rejected rows (default: rejected/ in the CityWatch home)."
        ),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(
            help="Text encoding of the file (utf-8, cp1252, latin-1, gb18030, ...); "
            "default: detect UTF-8 or cp1252."
        ),
    ] = None,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Import an incident file; importing the same file again adds nothing."""
    reader_for(source)  # a typo fails before the pack is built or read
    if encoding is not None:
        check_encoding(encoding)
    city = None if pack is None else load_pack(pack)
    report = import_file(
        file,
        source,
        db=db,
        pack=city,
        clip=clip,
        mapping=mapping,
        rejected_path=rejected,
        encoding=encoding,
    )
    if json_:
        print_json(report.to_dict())
    else:
        _show_report(report)


def _show_report(report: ImportReport) -> None:
    rows: list[tuple[str, object]] = [
        ("read", report.read),
        ("imported", report.imported),
        ("already present", report.already_present),
        ("merged into another row's incident", report.merged),
        ("rejected", report.rejected),
    ]
    rows += [(f"  rejected: {reason}", n) for reason, n in report.rejected_by_reason.items()]
    rows += [(f"note: {name}", n) for name, n in report.notes.items()]
    print_table(
        f"Import of {report.file} ({report.source}, batch {report.batch_id})",
        ["rows", "count"],
        [(name, f"{n:,}" if isinstance(n, int) else n) for name, n in rows],
    )
    if report.rejected_path:
        console.print(f"Rejected rows and reasons: {report.rejected_path}")
    j = report.jurisdictions
    if j is None:
        return
    console.print(
        f"Pack {j.pack}: {j.inside:,} of {j.with_location:,} located incidents inside; "
        f"{j.derived:,} stations derived from the polygons."
    )
    if j.compared:
        console.print(
            f"Source station vs polygon: {j.compared:,} compared, {j.disagreements:,} disagree "
            f"({(j.agreement or 0.0):.1%} agree)."
        )
    if j.foreign:
        console.print(
            f"{j.foreign:,} source station(s) not of {j.pack} inside its polygons: "
            "jurisdictions taken from the polygons."
        )
    if j.pairs:
        print_table(
            "Most frequent disagreements",
            ["source station", "polygon station", "incidents"],
            [(p["source_station"], p["derived_station"], p["count"]) for p in j.pairs],
        )


@app.command("export")
def export(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="File to write: .csv (canonical), .geojson, .gpkg, .parquet, or EIDO JSON "
            "(--eido or .eido.json).",
        ),
    ] = None,
    parquet: Annotated[
        Path | None,
        typer.Option(
            "--parquet",
            help="Instead of --out: a Parquet dataset folder partitioned by city and month, "
            "streamed from the store (for data larger than memory; read by stats --parquet).",
        ),
    ] = None,
    packs: Annotated[
        list[str] | None,
        typer.Option(
            "--pack",
            "--city",
            help="With --parquet: a city pack to partition by (repeatable); incidents outside "
            "every pack are left out and counted.  Default: one partition 'all'.",
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="With --parquet: replace cities already in the folder."),
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="Only incidents received at or after (ISO date/time).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only incidents received before (ISO date/time).")
    ] = None,
    category: Annotated[
        list[str] | None,
        typer.Option(help="Category or group code (repeatable), e.g. two_robberies."),
    ] = None,
    source: Annotated[list[str] | None, typer.Option(help="Source (repeatable).")] = None,
    tz: TzOption = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="csv, geojson, gpkg or parquet (default: from --out)."),
    ] = None,
    eido: Annotated[
        bool,
        typer.Option(
            "--eido",
            help="Write NENA EIDO JSON (an array, schema-checked; also for a .eido.json --out).",
        ),
    ] = False,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Export stored incidents as a canonical CSV (read back with --source canonical), as
    GeoJSON, GeoPackage or GeoParquet points, as NENA EIDO JSON, or as a Parquet dataset
    partitioned by city and month (--parquet); CSV times are written in --tz (default UTC)."""
    if (out is None) == (parquet is None):
        raise OptionError("give either --out FILE or --parquet DIR", field="out")
    if parquet is not None:
        if eido or fmt is not None or tz is not None:
            raise OptionError(
                "--eido, --format and --tz apply to --out files; a Parquet dataset keeps UTC",
                field="parquet",
            )
        _export_parquet(parquet, packs or [], overwrite, since, until, category, source, db, json_)
        return
    if packs or overwrite:
        raise OptionError("--pack and --overwrite apply to --parquet", field="pack")
    assert out is not None
    if tz is not None:
        check_tz(tz)
    eido = eido or out.name.endswith(".eido.json")
    if eido and (tz is not None or fmt is not None):
        raise OptionError("--tz and --format apply to the tables; EIDO times are UTC", field="tz")
    if not eido:
        table_format(out, fmt)  # refuse a bad name before reading the database
    frame = load_incidents_frame(
        db, start=since, end=until, categories=category or None, sources=source or None
    )
    if eido:
        # live incidents: their notes, further callers and merges from the console's tables
        rows = write_eido_file(frame, out, console_components(db, frame["id"]))
    else:
        rows = export_incidents(frame, out, fmt, tz=tz)
    if json_:
        print_json({"out": str(out), "rows": rows})
    else:
        console.print(f"Wrote {rows:,} incidents to {out}")


def _export_parquet(
    folder: Path,
    pack_names: list[str],
    overwrite: bool,
    since: str | None,
    until: str | None,
    category: list[str] | None,
    source: list[str] | None,
    db: str | None,
    json_: bool,
) -> None:
    loaded = [load_pack(name) for name in pack_names]
    packs = [(pack.name, pack) for pack in loaded]
    chunks = iter_incident_frames(
        db, start=since, end=until, categories=category or None, sources=source or None
    )
    with progress() as bar:
        task = bar.add_task(f"Writing {folder}", total=None)
        written = write_dataset(
            _counted(chunks, lambda n: bar.advance(task, n)),
            folder,
            packs=packs,
            overwrite=overwrite,
        )
    if json_:
        print_json(written.as_dict())
        return
    console.print(
        f"Wrote {sum(written.rows.values()):,} incidents to {folder} "
        f"({written.files:,} files, {len(written.months):,} months)"
    )
    for reason, n in written.dropped.items():
        err_console.print(f"Note: {n:,} incident(s) left out: {reason}", markup=False)


def _counted(
    chunks: Iterator[pd.DataFrame], advance: Callable[[int], None]
) -> Iterator[pd.DataFrame]:
    for chunk in chunks:
        yield chunk
        advance(len(chunk))


@app.command("categories")
def categories(json_: JsonOption = False) -> None:
    """List the bilingual category taxonomy and its groups."""
    tax = load_taxonomy()
    if json_:
        print_json(
            {
                "categories": [
                    {
                        "code": c.code,
                        "zh": c.zh,
                        "en": c.en,
                        "priority": c.priority,
                        "criminal": c.criminal,
                        "parent": c.parent,
                    }
                    for c in tax.categories.values()
                ],
                "groups": [
                    {"code": g.code, "zh": g.zh, "en": g.en, "categories": sorted(tax.expand(code))}
                    for code, g in tax.groups.items()
                ],
            }
        )
        return
    print_table(
        "Incident categories",
        ["code", "中文", "English", "priority", "criminal", "parent"],
        [
            (c.code, c.zh, c.en, c.priority, "yes" if c.criminal else "", c.parent or "")
            for c in tax.categories.values()
        ],
    )
    print_table(
        "Groups",
        ["code", "中文", "English", "categories"],
        [(g.code, g.zh, g.en, ", ".join(sorted(tax.expand(g.code)))) for g in tax.groups.values()],
    )
