"""``citywatch incidents``: import and export incidents, list the category taxonomy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from citywatch.city import load_pack
from citywatch.console import console, print_json, print_table
from citywatch.errors import ValidationError
from citywatch.incidents.canonical import write_canonical_csv
from citywatch.incidents.eido_schema import write_eido_file
from citywatch.incidents.importer import ImportReport, import_file
from citywatch.incidents.sources import SOURCE_NAMES
from citywatch.incidents.taxonomy import load_taxonomy
from citywatch.store.incidents import load_incidents_frame

__all__ = ["app"]

app = typer.Typer(help="Import and export incidents.", no_args_is_help=True)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: $CITYWATCH_DB or var/citywatch.db)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="Incident file (CSV, optionally .gz; EIDO JSON).")],
    source: Annotated[str, typer.Option(help=f"Source layout: {', '.join(SOURCE_NAMES)}.")],
    pack: Annotated[
        str | None,
        typer.Option(help="City pack (name or folder): derive jurisdictions from its polygons."),
    ] = None,
    clip: Annotated[
        bool, typer.Option("--clip", help="With --pack: reject incidents outside the pack.")
    ] = False,
    mapping: Annotated[
        Path | None,
        typer.Option(help="Mapping TOML (columns/categories); required for --source generic."),
    ] = None,
    rejected: Annotated[
        Path | None,
        typer.Option(help="Where to write rejected rows (default var/rejected/...)."),
    ] = None,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Import an incident file; importing the same file again adds nothing."""
    city = None if pack is None else load_pack(pack)
    report = import_file(
        file,
        source,
        db=db,
        pack=city,
        clip=clip,
        mapping=mapping,
        rejected_path=rejected,
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
    if j.pairs:
        print_table(
            "Most frequent disagreements",
            ["source station", "polygon station", "incidents"],
            [(p["source_station"], p["derived_station"], p["count"]) for p in j.pairs],
        )


@app.command("export")
def export(
    out: Annotated[
        Path, typer.Option("--out", help="File to write: canonical CSV, or EIDO JSON (--eido).")
    ],
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
    tz: Annotated[
        str | None, typer.Option(help="Write times in this time zone (default UTC).")
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
    """Export stored incidents as a canonical CSV (read back with --source canonical) or EIDO."""
    if tz is not None:
        _check_tz(tz)
    eido = eido or out.name.endswith(".eido.json")
    if eido and tz is not None:
        raise ValidationError("--tz applies to the CSV; EIDO times are UTC", field="tz")
    frame = load_incidents_frame(
        db, start=since, end=until, categories=category or None, sources=source or None
    )
    rows = write_eido_file(frame, out) if eido else write_canonical_csv(frame, out, tz=tz)
    if json_:
        print_json({"out": str(out), "rows": rows})
    else:
        console.print(f"Wrote {rows:,} incidents to {out}")


def _check_tz(tz: str) -> None:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {tz!r}", field="tz") from None


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
