"""``citywatch stats`` and ``citywatch report``: crime statistics and CompStat reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar

import pandas as pd
import typer

from citywatch.analytics.cli_nearrepeat import (
    knox_command,
    near_repeat_command,
    near_repeat_refresh_command,
)
from citywatch.analytics.compare import clearance, compare
from citywatch.analytics.profile import profile
from citywatch.analytics.quiet import quiet_days
from citywatch.analytics.scope import LEVELS, Baseline, Period, baseline_period
from citywatch.analytics.survey import read_survey, satisfaction
from citywatch.cli_options import DbOption, IncidentsOption, JsonOption, PackOption, TzOption
from citywatch.console import console, err_console, print_json, print_table, progress
from citywatch.errors import OptionError, ValidationError
from citywatch.incidents.load import load_incidents
from citywatch.incidents.taxonomy import Language

__all__ = ["report_app", "stats_app"]

stats_app = typer.Typer(help="Crime statistics (CompStat style).", no_args_is_help=True)
report_app = typer.Typer(help="Self-contained bilingual reports.", no_args_is_help=True)

_DATE = ["%Y-%m-%d"]
From = Annotated[
    datetime, typer.Option("--from", formats=_DATE, help="First local day (YYYY-MM-DD).")
]
To = Annotated[datetime, typer.Option("--to", formats=_DATE, help="Last local day, included.")]
Category = Annotated[
    list[str] | None,
    typer.Option(
        "--category",
        "-c",
        help="Category code or group (two_robberies, criminal, ...); repeatable. "
        "Default: each category present and 'all'.",
    ),
]
By = Annotated[str, typer.Option("--by", help="Jurisdiction level: city, bureau, station, zone.")]
BaselineOpt = Annotated[
    str | None,
    typer.Option(
        "--baseline",
        help="Comparison period: 'year' (previous year, the default) or 'period' (just before).",
        show_default=False,
    ),
]
VsFrom = Annotated[
    datetime | None,
    typer.Option("--vs-from", formats=_DATE, help="Explicit comparison period start."),
]
VsTo = Annotated[
    datetime | None, typer.Option("--vs-to", formats=_DATE, help="Explicit comparison period end.")
]
ParquetOpt = Annotated[
    Path | None,
    typer.Option(
        "--parquet",
        help="A Parquet dataset folder (incidents export --parquet) read out of core with dask; "
        "with --pack, that city's partitions.",
    ),
]
SourceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--source",
        help="Only incidents of this source (police_uk, nypd_shootings, live, ...); repeatable.",
    ),
]


@dataclass
class Source:
    """Incidents with the time zone, city label and known jurisdictions to report them by."""

    incidents: pd.DataFrame
    tz: str
    city: str
    jurisdictions: dict[str, list[str]]
    boundaries: dict[str, dict[str, Any]]
    #: What reading left out (other cities, other sources), for the statistic's notes.
    notes: list[str] = field(default_factory=list)

    def kwargs(self, by: str) -> dict[str, Any]:
        """Keyword arguments shared by every statistic."""
        return {
            "tz": self.tz,
            "by": by,
            "city": self.city,
            "jurisdictions": self.jurisdictions.get(by) or None,
        }


def load_source(
    db: str | None,
    incidents: Path | None,
    tz: str | None,
    city: str | None,
    by: str = "city",
    sources: list[str] | None = None,
    *,
    parquet: Path | None = None,
    days: tuple[date | None, date | None] = (None, None),
    hours: bool = False,
) -> Source:
    """Read the incidents of a city (or all) from a canonical CSV or the database.

    With a city pack, only the incidents of that city count (located inside it, or without a
    location but with its jurisdiction ids: see :func:`citywatch.incidents.load.load_incidents`);
    what is left out is reported in the notes.

    Parameters
    ----------
    db : str or None
        Database URL; ``None`` is the embedded SQLite database.
    incidents : pathlib.Path or None
        Canonical incident CSV; takes the place of the database.
    tz : str or None
        Time zone; overrides the city pack's.
    city : str or None
        City pack name or folder.
    by : str
        Jurisdiction level the statistic will use (checked before reading anything).
    sources : list of str, optional
        Keep only incidents of these sources.
    parquet : pathlib.Path, optional
        A Parquet dataset (``incidents export --parquet``) read out of core with dask into a
        reduced frame (:mod:`citywatch.analytics.parquet`); takes the place of the database.
    days : (date or None, date or None)
        With ``parquet``: the first and last local day the statistic needs (months outside
        are not read).
    hours : bool
        With ``parquet``: keep local hours (the hour-of-day profile), not only local days.

    Returns
    -------
    Source
    """
    if by not in LEVELS:  # fail before reading a large file
        raise ValidationError(f"unknown jurisdiction level {by!r}: use one of {LEVELS}", field="by")
    given = [
        name for name, v in (("--db", db), ("--incidents", incidents), ("--parquet", parquet)) if v
    ]
    if len(given) > 1:
        raise OptionError(f"give one of {', '.join(given)}, not several", field="incidents")
    jurisdictions: dict[str, list[str]] = {}
    boundaries: dict[str, dict[str, Any]] = {}
    label = "city"
    pack = None
    if city is not None:
        from citywatch.city import load_pack

        pack = load_pack(city)
        tz = tz or pack.timezone
        label = pack.name
        for j in pack.jurisdictions:
            jurisdictions.setdefault(j.level, []).append(j.id)
            # the city polygon is labelled with the pack's name, as the statistics label it
            boundaries.setdefault(j.level, {})[pack.name if j.level == "city" else j.id] = (
                j.geometry
            )
    if tz is None:
        raise ValidationError("give --tz (the city's time zone) or --city", field="tz")
    if parquet is not None:
        return _parquet_source(
            parquet,
            tz,
            label if pack else None,
            by,
            sources,
            days,
            hours,
            jurisdictions,
            boundaries,
        )
    with progress() as bar:
        bar.add_task("Reading incidents", total=None)
        loaded = load_incidents(
            db,
            files=[] if incidents is None else [(incidents, "canonical")],
            database=incidents is None,
            sources=sources,
            pack=pack,
        )
    return Source(loaded.frame, tz, label, jurisdictions, boundaries, loaded.notes())


def _parquet_source(
    folder: Path,
    tz: str,
    city: str | None,
    by: str,
    sources: list[str] | None,
    days: tuple[date | None, date | None],
    hours: bool,
    jurisdictions: dict[str, list[str]],
    boundaries: dict[str, dict[str, Any]],
) -> Source:
    from citywatch.analytics.parquet import reduced_frame

    with progress() as bar:
        task = bar.add_task(f"Reading {folder} (dask)", total=None)
        frame = reduced_frame(
            folder,
            tz=tz,
            by=by,
            city=city,
            sources=sources,
            resolution="hour" if hours else "day",
            first_day=days[0],
            last_day=days[1],
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    note = f"read out of core from the Parquet dataset {folder}"
    return Source(frame, tz, city or "city", jurisdictions, boundaries, [note])


def _period(start: datetime, end: datetime) -> Period:
    return Period(start.date(), end.date())


def _baseline(
    period: Period, baseline: str | None, vs_from: datetime | None, vs_to: datetime | None
) -> Period:
    if baseline is not None and (vs_from is not None or vs_to is not None):
        raise OptionError(
            f"--baseline {baseline} and --vs-from/--vs-to both choose the comparison period: "
            "give one of them",
            field="baseline",
        )
    baseline = baseline or "year"
    if baseline not in ("year", "period"):
        raise ValidationError(
            f"unknown baseline {baseline!r}: use 'year' or 'period'", field="baseline"
        )
    mode: Baseline = "year" if baseline == "year" else "period"
    return baseline_period(
        period, mode, vs_from.date() if vs_from else None, vs_to.date() if vs_to else None
    )


@dataclass(frozen=True)
class _Input:
    """Where a statistic reads its incidents: the options every ``stats`` command shares."""

    db: str | None
    incidents: Path | None
    parquet: Path | None
    tz: str | None
    city: str | None
    sources: list[str] | None

    def load(
        self, by: str, *, days: tuple[date | None, date | None] = (None, None), hours: bool = False
    ) -> Source:
        return load_source(
            self.db,
            self.incidents,
            self.tz,
            self.city,
            by,
            self.sources,
            parquet=self.parquet,
            days=days,
            hours=hours,
        )


class _Noted(Protocol):
    notes: list[str]


_R = TypeVar("_R", bound=_Noted)


def _against_baseline(
    stat: Callable[..., _R],
    window: tuple[datetime, datetime, str | None, datetime | None, datetime | None],
    category: list[str] | None,
    by: str,
    data: _Input,
    hours: bool = False,
) -> _R:
    """Read the incidents and run a statistic of a period against its comparison period.

    ``window`` is the options ``--from``, ``--to``, ``--baseline``, ``--vs-from``, ``--vs-to``.
    """
    start, end, baseline, vs_from, vs_to = window
    period = _period(start, end)
    against = _baseline(period, baseline, vs_from, vs_to)  # options first, then the data
    days = (min(period.start, against.start), max(period.end, against.end))
    source = data.load(by, days=days, hours=hours)
    result = stat(
        source.incidents,
        period,
        categories=category,
        baseline_dates=against,
        **source.kwargs(by),
    )
    result.notes[:0] = source.notes
    return result


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        err_console.print(f"Note: {note}", markup=False, highlight=False)


@stats_app.command("compare")
def compare_command(
    start: From,
    end: To,
    category: Category = None,
    by: By = "city",
    baseline: BaselineOpt = None,
    vs_from: VsFrom = None,
    vs_to: VsTo = None,
    db: DbOption = None,
    incidents: IncidentsOption = None,
    parquet: ParquetOpt = None,
    tz: TzOption = None,
    city: PackOption = None,
    source: SourceOpt = None,
    json: JsonOption = False,
) -> None:
    """Counts against the previous year (or period), % change and Poisson z-score."""
    result = _against_baseline(
        compare,
        (start, end, baseline, vs_from, vs_to),
        category,
        by,
        _Input(db, incidents, parquet, tz, city, source),
    )
    if json:
        print_json(result.as_dict())
        return
    print_table(
        f"Incidents {result.period} vs {result.baseline}",
        ["jurisdiction", "category", "current", "previous", "change %", "z", "flag"],
        (
            [
                r["jurisdiction"],
                r["category"],
                r["current"],
                r["previous"],
                _fmt(r["change_pct"]),
                _fmt(r["z"], 2),
                "*" if r["flag"] else "",
            ]
            for r in result.as_dict()["rows"]
        ),
    )
    _print_notes(result.notes)


@stats_app.command("clearance")
def clearance_command(
    start: From,
    end: To,
    category: Category = None,
    by: By = "city",
    baseline: BaselineOpt = None,
    vs_from: VsFrom = None,
    vs_to: VsTo = None,
    db: DbOption = None,
    incidents: IncidentsOption = None,
    parquet: ParquetOpt = None,
    tz: TzOption = None,
    city: PackOption = None,
    source: SourceOpt = None,
    json: JsonOption = False,
) -> None:
    """Clearance rate (solved / recorded) with its change in percentage points."""
    result = _against_baseline(
        clearance,
        (start, end, baseline, vs_from, vs_to),
        category,
        by,
        _Input(db, incidents, parquet, tz, city, source),
    )
    if json:
        print_json(result.as_dict())
        return
    print_table(
        f"Clearance {result.period} vs {result.baseline}",
        ["jurisdiction", "category", "solved/recorded", "rate %", "previous", "rate %", "Δ pp"],
        (
            [
                r["jurisdiction"],
                r["category"],
                f"{r['solved']}/{r['recorded']}",
                _pct(r["rate"]),
                f"{r['solved_previous']}/{r['recorded_previous']}",
                _pct(r["rate_previous"]),
                _fmt(r["change_pp"]),
            ]
            for r in result.as_dict()["rows"]
        ),
    )
    _print_notes(result.notes)


def _pct(rate: float | None) -> str:
    return _fmt(None if rate is None else 100 * rate)


@stats_app.command("quiet-days")
def quiet_days_command(
    start: From,
    end: To,
    category: Category = None,
    by: By = "city",
    db: DbOption = None,
    incidents: IncidentsOption = None,
    parquet: ParquetOpt = None,
    tz: TzOption = None,
    city: PackOption = None,
    source: SourceOpt = None,
    json: JsonOption = False,
) -> None:
    """Days without incidents, the longest zero run and the current one ("days since")."""
    # every month is read: the current zero run may reach back before the period, and the
    # first and last days of the data are reported
    data = _Input(db, incidents, parquet, tz, city, source).load(by)
    result = quiet_days(data.incidents, _period(start, end), categories=category, **data.kwargs(by))
    result.notes[:0] = data.notes
    if json:
        print_json(result.as_dict())
        return
    rows = []
    for r in result.rows:
        longest, current = r.longest_zero_run, r.current_zero_run
        rows.append(
            [
                r.jurisdiction,
                r.category,
                r.incidents,
                f"{r.zero_days}/{r.days}",
                f"{longest.days} ({longest.first}..{longest.last})" if longest.days else "0",
                ("at least " if r.lower_bound else "") + str(current.days),
                _fmt(r.last_incident),
            ]
        )
    print_table(
        f"Days without incidents {result.period}",
        [
            "jurisdiction",
            "category",
            "incidents",
            "zero days",
            "longest run",
            "current run",
            "last incident",
        ],
        rows,
    )
    _print_notes(result.notes)


@stats_app.command("profile")
def profile_command(
    start: From,
    end: To,
    category: Category = None,
    by: By = "city",
    baseline: BaselineOpt = None,
    vs_from: VsFrom = None,
    vs_to: VsTo = None,
    db: DbOption = None,
    incidents: IncidentsOption = None,
    parquet: ParquetOpt = None,
    tz: TzOption = None,
    city: PackOption = None,
    source: SourceOpt = None,
    json: JsonOption = False,
) -> None:
    """Hour-of-day and weekday profile of two periods, peak hours and a shift test."""
    result = _against_baseline(
        profile,
        (start, end, baseline, vs_from, vs_to),
        category,
        by,
        _Input(db, incidents, parquet, tz, city, source),
        hours=True,
    )
    if json:
        print_json(result.as_dict())
        return
    for row in result.rows:
        test = row.hour_test
        print_table(
            f"{row.jurisdiction} / {row.category}: {result.period} vs {result.baseline}",
            ["hour", "current", "previous"],
            ([f"{h:02d}", int(row.hours[0][h]), int(row.hours[1][h])] for h in range(24)),
        )
        console.print(
            f"peak hours {row.peak_hours(0)} vs {row.peak_hours(1)}; {test.test}: "
            f"p = {_fmt(test.p_value, 4)}" + (f" ({test.note})" if test.note else ""),
            markup=False,
            highlight=False,
        )
    _print_notes(result.notes)


@stats_app.command("survey")
def survey_command(
    file: Annotated[Path, typer.Argument(help="CSV: respondent, area, answer (1-5), [weight].")],
    confidence: Annotated[float, typer.Option(help="Confidence level of the interval.")] = 0.95,
    json: JsonOption = False,
) -> None:
    """Satisfaction rate (answers 4-5 of 5) with a Wilson confidence interval by area."""
    result = satisfaction(read_survey(file), confidence)
    if json:
        print_json(result.as_dict())
        return
    print_table(
        "Public satisfaction",
        ["area", "responses", "satisfied", "rate %", f"{confidence:.0%} CI %"],
        (
            [
                r["area"],
                r["responses"],
                r["satisfied"],
                _pct(r["weighted_rate"]),
                f"{100 * r['ci_low']:.1f}–{100 * r['ci_high']:.1f}",
            ]
            for r in result.as_dict()["rows"]
        ),
    )
    _print_notes(result.notes)


@report_app.command("compstat")
def compstat_command(
    start: From,
    end: To,
    out: Annotated[Path, typer.Option("--out", help="report.html or report.pdf")],
    lang: Annotated[Language, typer.Option("--lang", help="zh or en")] = "zh",
    category: Category = None,
    by: By = "station",
    baseline: BaselineOpt = None,
    db: DbOption = None,
    incidents: IncidentsOption = None,
    tz: TzOption = None,
    city: PackOption = None,
    source: SourceOpt = None,
    json: JsonOption = False,
) -> None:
    """A self-contained CompStat report (HTML or PDF) with tables and charts."""
    from citywatch.analytics.report import build_compstat, report_format, write_report

    report_format(out)  # refuse bad options before reading any data
    period = _period(start, end)
    against = _baseline(period, baseline, None, None)
    data = load_source(db, incidents, tz, city, by, source)
    with progress() as bar:
        bar.add_task("Computing statistics", total=None)
        report = build_compstat(
            data.incidents,
            period,
            categories=category,
            baseline_dates=against,
            lang=lang,
            boundaries=data.boundaries.get(by),
            **data.kwargs(by),
        )
    report.notes[:0] = data.notes
    with progress() as bar:
        bar.add_task(f"Writing {out}", total=None)
        write_report(report, out)
    if json:
        print_json({"out": out, **report.as_dict()})
        return
    console.print(f"Wrote {out}", markup=False, highlight=False)
    _print_notes(report.notes)


stats_app.command("near-repeat")(near_repeat_command)
stats_app.command("knox")(knox_command)
stats_app.command("near-repeat-refresh")(near_repeat_refresh_command)
