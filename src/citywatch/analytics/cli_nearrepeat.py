"""``citywatch stats near-repeat`` and ``citywatch stats knox``: reading events, printing results.

Events come from a CSV (projected metres, or lon/lat projected with ``--crs`` or the city pack's
CRS; the Near Repeat Calculator's headerless ``x,y,date`` form with ``--no-header``) or from the
incident store.  The statistics themselves are in :mod:`citywatch.analytics.nearrepeat` and
:mod:`citywatch.analytics.knox`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pandas as pd
import typer
from numpy.typing import NDArray

from citywatch.analytics.knox import DISTANCES, Metric, knox
from citywatch.analytics.nearrepeat import (
    SIGNIFICANCE,
    Bands,
    NearRepeatResult,
    near_repeat,
    verdict,
)
from citywatch.console import console, err_console, print_json, print_table, progress
from citywatch.errors import DataError, ValidationError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "Events",
    "knox_command",
    "near_repeat_command",
    "near_repeat_refresh_command",
    "read_events_csv",
    "read_events_db",
]

#: Date forms tried in turn when no ``--date-format`` is given: ISO, then the NRC's DD/MM/YYYY.
AUTO_DATE_FORMATS = ("ISO8601", "%d/%m/%Y")


@dataclass
class Events:
    """Event locations (projected metres) and times (days), with notes on what was skipped."""

    xy: NDArray[np.float64]
    t: NDArray[Any]
    notes: list[str] = field(default_factory=list)


def _parse_dates(values: pd.Series, date_format: str | None) -> pd.Series:
    formats = [date_format] if date_format else list(AUTO_DATE_FORMATS)
    best: pd.Series | None = None
    for fmt in formats:
        parsed = pd.to_datetime(values.astype(str).str.strip(), format=fmt, errors="coerce")
        if best is None or parsed.notna().sum() > best.notna().sum():
            best = parsed
    assert best is not None
    return best


def _day_numbers(dates: pd.Series) -> NDArray[np.int64]:
    return dates.to_numpy().astype("datetime64[D]").astype(np.int64)


def _project(lon: NDArray[Any], lat: NDArray[Any], crs: str) -> NDArray[np.float64]:
    from pyproj import Transformer
    from pyproj.exceptions import CRSError

    try:
        transformer = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    except CRSError as exc:
        raise ValidationError(f"unknown CRS {crs!r}", field="crs") from exc
    x, y = transformer.transform(lon, lat)
    return np.column_stack([x, y])


def _target_crs(crs: str | None, city: str | None) -> str:
    if crs is not None:
        return crs
    if city is not None:
        from citywatch.city import load_pack

        return load_pack(city).crs
    raise ValidationError("lon/lat needs a metric CRS: give --crs or --city", field="crs")


def read_events_csv(
    path: Path,
    *,
    x: str,
    y: str,
    time: str,
    no_header: bool = False,
    time_unit: str = "date",
    date_format: str | None = None,
    lonlat: bool = False,
    crs: str | None = None,
    city: str | None = None,
) -> Events:
    """Read events from a CSV; rows without usable values are skipped and counted in the notes.

    Parameters
    ----------
    path : pathlib.Path
    x, y, time : str
        Column names (ignored with ``no_header``: the columns are then x, y, time in order).
    no_header : bool
        The NRC's headerless three-column form.
    time_unit : {"date", "days"}
        Dates (day numbers result) or a number of days (fractions allowed).
    date_format : str, optional
        ``strftime`` form of the dates; by default ISO 8601, else DD/MM/YYYY as the NRC.
    lonlat : bool
        ``x`` and ``y`` are WGS-84 longitude and latitude, projected to ``crs`` (or the pack's).
    crs, city : str, optional

    Returns
    -------
    Events
    """
    if time_unit not in ("date", "days"):
        raise ValidationError("--time-unit must be 'date' or 'days'", field="time_unit")
    try:
        if no_header:
            frame = pd.read_csv(path, header=None, usecols=[0, 1, 2], names=["x", "y", "t"])
        else:
            frame = pd.read_csv(path, usecols=lambda c: c in (x, y, time))
            missing = [c for c in (x, y, time) if c not in frame.columns]
            if missing:
                raise DataError(f"{path}: no column(s) {', '.join(missing)}", field="columns")
            frame = frame.rename(columns={x: "x", y: "y", time: "t"})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    xs = pd.to_numeric(frame["x"], errors="coerce")
    ys = pd.to_numeric(frame["y"], errors="coerce")
    if time_unit == "date":
        ts: pd.Series = _parse_dates(frame["t"], date_format)
    else:
        ts = pd.to_numeric(frame["t"], errors="coerce")
    x_values = xs.to_numpy(dtype=float, na_value=np.nan)
    y_values = ys.to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(x_values) & np.isfinite(y_values) & ts.notna().to_numpy()
    notes = []
    if not ok.any():
        raise DataError(f"{path}: no row has a usable x, y and {time_unit}")
    if not ok.all():
        first = int(np.flatnonzero(~ok)[0]) + (1 if no_header else 2)
        notes.append(
            f"skipped {int((~ok).sum())} row(s) without a usable x, y or date (first: line {first})"
        )
    xy = np.column_stack([x_values[ok], y_values[ok]])
    if lonlat:
        xy = _project(xy[:, 0], xy[:, 1], _target_crs(crs, city))
    t = _day_numbers(ts[ok]) if time_unit == "date" else ts.to_numpy(float)[ok]
    return Events(xy, t, notes)


def read_events_db(
    db: str | None,
    *,
    categories: list[str] | None,
    start: date | None,
    end: date | None,
    crs: str | None,
    city: str | None,
    tz: str | None,
) -> Events:
    """Incidents of the store as events: the pack's (or ``crs``) metres and local dates."""
    from citywatch.analytics.scope import day_numbers, local_days, require_precision
    from citywatch.incidents.load import load_incidents

    target = _target_crs(crs, city)
    if tz is None:
        if city is None:
            raise ValidationError("give --tz (the city's time zone) or --city", field="tz")
        from citywatch.city import load_pack

        tz = load_pack(city).timezone
    # a day either side covers any time zone; the local dates are cut exactly below
    frame = load_incidents(
        db,
        start=start - timedelta(days=1) if start else None,
        end=end + timedelta(days=2) if end else None,
        categories=categories,
    ).frame
    days = day_numbers(local_days(frame["received_at"], tz))
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= days >= (start - date(1970, 1, 1)).days
    if end is not None:
        keep &= days <= (end - date(1970, 1, 1)).days
    frame, days = frame[keep], days[keep]
    require_precision(frame.assign(row=np.arange(len(frame))), "day", "near-repeat analysis")
    located = (frame["lon"].notna() & frame["lat"].notna()).to_numpy()
    notes = []
    if not located.all():
        notes.append(f"skipped {int((~located).sum())} incident(s) without a location")
    xy = _project(
        frame["lon"].to_numpy(float)[located], frame["lat"].to_numpy(float)[located], target
    )
    return Events(xy, days[located], notes)


@contextmanager
def _permutation_bar(iterations: int) -> Iterator[Callable[[int], None]]:
    with progress() as bar:
        task = bar.add_task("Permutations", total=iterations)
        yield lambda done: bar.update(task, completed=done)


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        err_console.print(f"Note: {note}", markup=False, highlight=False)


def _metric(distance: str) -> Metric:
    if distance not in DISTANCES:
        raise ValidationError(
            f"unknown distance {distance!r}: use one of {sorted(DISTANCES)}", field="distance"
        )
    return "euclidean" if distance == "euclidean" else "manhattan"


def heatmap(result: NearRepeatResult, title: str) -> Figure:
    """Knox ratios as a heat map (log colour scale around 1), each cell with ratio and p-value."""
    from matplotlib.colors import LogNorm

    from citywatch.analytics.charts import new_figure

    rows, columns = result.bands.row_labels(), result.bands.column_labels()
    ratio = result.knox_ratio
    fig = new_figure(width=1.6 + 1.5 * len(columns), height=1.2 + 0.55 * len(rows))
    ax = fig.subplots()
    finite = ratio[np.isfinite(ratio) & (ratio > 0)]
    span = max(2.0, float(finite.max()) if len(finite) else 2.0)
    image = ax.imshow(
        np.where(ratio > 0, ratio, np.nan),
        cmap="RdBu_r",
        norm=LogNorm(1 / span, span),
        aspect="auto",
    )
    fig.colorbar(image, ax=ax, label="Knox ratio (observed / expected)")
    p = result.p_value
    for r in range(len(rows)):
        for c in range(len(columns)):
            star = "*" if p[r, c] <= SIGNIFICANCE else ""
            text = f"{ratio[r, c]:.2f}{star}\np={p[r, c]:.3g}"
            dark = abs(np.log(ratio[r, c])) > 0.6 * np.log(span) if ratio[r, c] > 0 else False
            ax.text(
                c, r, text, ha="center", va="center", fontsize=8, color="white" if dark else "black"
            )
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("time apart")
    ax.set_ylabel("distance apart")
    ax.set_title(f"{title} (* p <= {SIGNIFICANCE:g})")
    return fig


def _write_png(result: NearRepeatResult, path: Path, title: str) -> None:
    from citywatch.analytics.charts import chart_style

    with chart_style():
        fig = heatmap(result, title)
        try:
            fig.savefig(path, format="png", dpi=150)
        except OSError as exc:
            raise DataError(f"cannot write {path}: {exc}") from exc


def _print_near_repeat(result: NearRepeatResult, lang: str) -> None:
    rows, columns = result.bands.row_labels(), result.bands.column_labels()
    print_table(
        f"Observed pairs ({result.events} events, {result.pairs} pairs)",
        ["", *columns],
        ([rows[r], *(int(v) for v in result.observed[r])] for r in range(len(rows))),
    )
    ratio, p = result.knox_ratio, result.p_value
    print_table(
        f"Knox ratio (p-value), {result.iterations} permutations, seed {result.seed}",
        ["", *columns],
        (
            [rows[r], *(f"{ratio[r, c]:.2f} ({p[r, c]:.3g})" for c in range(len(columns)))]
            for r in range(len(rows))
        ),
    )
    for line in verdict(result, "zh" if lang == "zh" else "en"):
        console.print(line, markup=False, highlight=False)


InFile = Annotated[
    Path | None,
    typer.Argument(help="CSV of events; omit to read incidents from the store (--db)."),
]
XCol = Annotated[str, typer.Option("--x", help="Column of x (metres) or longitude.")]
YCol = Annotated[str, typer.Option("--y", help="Column of y (metres) or latitude.")]
NoHeader = Annotated[
    bool, typer.Option("--no-header", help="Headerless x,y,date (the NRC's own input form).")
]
DateFormat = Annotated[
    str | None,
    typer.Option("--date-format", help="strftime form of dates (default: ISO, else DD/MM/YYYY)."),
]
LonLat = Annotated[
    bool, typer.Option("--lonlat", help="x/y are WGS-84 lon/lat: project with --crs or --city.")
]
Crs = Annotated[str | None, typer.Option("--crs", help="Metric CRS to project lon/lat to.")]
City = Annotated[str | None, typer.Option("--city", help="City pack: its CRS and time zone.")]
Db = Annotated[
    str | None, typer.Option("--db", help="Database URL of the store (default: embedded SQLite).")
]
Category = Annotated[
    list[str] | None,
    typer.Option("--category", "-c", help="Store: category code or group; repeatable."),
]
_DATE = ["%Y-%m-%d"]
From = Annotated[
    datetime | None, typer.Option("--from", formats=_DATE, help="Store: first local day.")
]
To = Annotated[datetime | None, typer.Option("--to", formats=_DATE, help="Store: last day.")]
Tz = Annotated[str | None, typer.Option("--tz", help="Store: city time zone without --city.")]
Distance = Annotated[str, typer.Option("--distance", help="euclidean or manhattan.")]
Iterations = Annotated[int, typer.Option("--iterations", help="Permutations of the dates.")]
Seed = Annotated[int | None, typer.Option("--seed", help="Seed of the permutations.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _read_events(
    file: Path | None,
    db: str | None,
    store: tuple[list[str] | None, datetime | None, datetime | None, str | None],
    place: tuple[str | None, str | None],
    **csv: Any,
) -> Events:
    """Events of FILE, else of the store.

    ``store`` is (categories, from, to, time zone), ``place`` is (crs, city pack).
    """
    categories, start, end, tz = store
    crs, city = place
    if file is not None and db is not None:
        raise ValidationError("give either FILE or --db, not both", field="db")
    if file is None and crs is None and city is None:
        raise ValidationError(
            "give a CSV FILE, or read the store with --city (or --crs and --tz)", field="file"
        )
    with progress() as bar:
        bar.add_task("Reading events", total=None)
        if file is not None:
            return read_events_csv(file, crs=crs, city=city, **csv)
        return read_events_db(
            db,
            categories=categories,
            start=start.date() if start else None,
            end=end.date() if end else None,
            crs=crs,
            city=city,
            tz=tz,
        )


def near_repeat_command(
    spatial_band: Annotated[
        float, typer.Option("--spatial-band", help="Width of a spatial band, metres.")
    ],
    spatial_bands: Annotated[int, typer.Option("--spatial-bands", help="Spatial bands.")],
    temporal_band: Annotated[
        int, typer.Option("--temporal-band", help="Width of a temporal band, whole days.")
    ],
    temporal_bands: Annotated[int, typer.Option("--temporal-bands", help="Temporal bands.")],
    file: InFile = None,
    distance: Distance = "euclidean",
    iterations: Iterations = 999,
    seed: Seed = None,
    x: XCol = "x",
    y: YCol = "y",
    date_column: Annotated[str, typer.Option("--date", help="Column of the dates.")] = "date",
    no_header: NoHeader = False,
    date_format: DateFormat = None,
    lonlat: LonLat = False,
    crs: Crs = None,
    city: City = None,
    db: Db = None,
    category: Category = None,
    start: From = None,
    end: To = None,
    tz: Tz = None,
    nrc_precision: Annotated[
        bool,
        typer.Option("--nrc-precision", help="Round coordinates to float32 as the NRC 1.3 does."),
    ] = False,
    png: Annotated[Path | None, typer.Option("--png", help="Write a heat map PNG.")] = None,
    lang: Annotated[str, typer.Option("--lang", help="zh or en")] = "zh",
    json: Json = False,
) -> None:
    """Near-repeat Knox table (Near Repeat Calculator bands) with a permutation test."""
    if lang not in ("zh", "en"):
        raise ValidationError(f"unknown language {lang!r}: use zh or en", field="lang")
    bands = Bands(spatial_band, spatial_bands, temporal_band, temporal_bands)
    metric = _metric(distance)
    events = _read_events(
        file,
        db,
        (category, start, end, tz),
        (crs, city),
        x=x,
        y=y,
        time=date_column,
        no_header=no_header,
        date_format=date_format,
        lonlat=lonlat,
    )
    with _permutation_bar(iterations) as on_progress:
        result = near_repeat(
            events.xy,
            events.t,
            bands,
            metric=metric,
            iterations=iterations,
            seed=seed,
            single_precision=nrc_precision,
            on_progress=on_progress,
        )
    if png is not None:
        _write_png(result, png, f"Knox ratios, {result.events} events")
    if json:
        out = result.as_dict()
        out["verdict"] = verdict(result, "zh" if lang == "zh" else "en")
        out["notes"] = events.notes
        print_json(out)
    else:
        _print_near_repeat(result, lang)
    _print_notes(events.notes)


def knox_command(
    file: InFile = None,
    x: XCol = "x",
    y: YCol = "y",
    time: Annotated[str, typer.Option("--time", help="Column of the times.")] = "date",
    time_unit: Annotated[
        str, typer.Option("--time-unit", help="'date' (calendar dates) or 'days' (numbers).")
    ] = "date",
    distance_m: Annotated[
        float, typer.Option("--distance", help="Close in space: d <= this, metres.")
    ] = 200.0,
    days: Annotated[float, typer.Option("--days", help="Close in time: t <= this, days.")] = 7.0,
    metric: Annotated[str, typer.Option("--metric", help="euclidean or manhattan.")] = "euclidean",
    iterations: Iterations = 999,
    seed: Seed = None,
    no_header: NoHeader = False,
    date_format: DateFormat = None,
    lonlat: LonLat = False,
    crs: Crs = None,
    city: City = None,
    db: Db = None,
    category: Category = None,
    start: From = None,
    end: To = None,
    tz: Tz = None,
    json: Json = False,
) -> None:
    """Knox test at one distance and one time threshold (Poisson and permutation p-values)."""
    events = _read_events(
        file,
        db,
        (category, start, end, tz),
        (crs, city),
        x=x,
        y=y,
        time=time,
        no_header=no_header,
        time_unit=time_unit,
        date_format=date_format,
        lonlat=lonlat,
    )
    with _permutation_bar(iterations) as on_progress:
        result = knox(
            events.xy,
            events.t,
            distance_m,
            days,
            metric=_metric(metric),
            iterations=iterations,
            seed=seed,
            on_progress=on_progress,
        )
    if json:
        print_json({**result.as_dict(), "notes": events.notes})
    else:
        print_table(
            f"Knox test: d <= {distance_m:g} m, t <= {days:g} days ({result.events} events)",
            ["statistic", "expected", "ratio", "p (Poisson)", "p (permutation)", "seed"],
            [
                [
                    result.statistic,
                    f"{result.expected:.1f}",
                    f"{result.ratio:.3f}",
                    f"{result.p_poisson:.3g}",
                    f"{result.p_permutation:.3g}",
                    result.seed,
                ]
            ],
        )
    _print_notes(events.notes)


def near_repeat_refresh_command(
    pack: Annotated[str, typer.Option("--pack", "--city", help="City pack of the service.")],
    category: Annotated[
        list[str] | None,
        typer.Option(
            "--category", "-c", help="burglary, robbery or theft; repeatable (default: all three)."
        ),
    ] = None,
    db: Db = None,
    lookback_days: Annotated[
        int, typer.Option("--lookback-days", help="Incidents of the last N days.")
    ] = 365,
    spatial_band: Annotated[float, typer.Option("--spatial-band", help="Metres.")] = 100.0,
    spatial_bands: Annotated[int, typer.Option("--spatial-bands")] = 4,
    temporal_band: Annotated[int, typer.Option("--temporal-band", help="Days.")] = 7,
    temporal_bands: Annotated[int, typer.Option("--temporal-bands")] = 4,
    iterations: Annotated[int, typer.Option("--iterations", help="Permutations.")] = 99,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the permutations.")] = 20_161_201,
    json: Json = False,
) -> None:
    """Recompute and store the near-repeat tables the live advisories use (run nightly, e.g.
    from cron, or let `citywatch serve --advisories` schedule it); audited."""
    from citywatch.analytics.advisories import (
        NEAR_REPEAT_CATEGORIES,
        AdvisoryConfig,
        refresh_tables,
    )
    from citywatch.city import load_pack
    from citywatch.store.db import make_engine, upgrade

    config = AdvisoryConfig(
        categories=tuple(category or NEAR_REPEAT_CATEGORIES),
        spatial_band_m=spatial_band,
        spatial_bands=spatial_bands,
        temporal_band_days=temporal_band,
        temporal_bands=temporal_bands,
        lookback_days=lookback_days,
        iterations=iterations,
        seed=seed,
    )
    city = load_pack(pack)
    engine = make_engine(db)
    upgrade(engine)
    with progress() as bar:
        bar.add_task("Near-repeat tables", total=None)
        tables = refresh_tables(engine, city, config, actor="cli")
    if json:
        print_json({"pack": city.name, "tables": tables})
        return
    print_table(
        f"Near-repeat tables of {city.name} (stored)",
        ["category", "events", "from", "to", "window", "p", "Knox ratio"],
        [
            [
                t["category"],
                t["events"],
                t["first_day"] or "–",
                t["last_day"] or "–",
                _window_text(t),
                f"{t['window']['p_value']:.3g}" if t["window"] else "–",
                f"{t['window']['ratio']:.2f}" if t["window"] else "–",
            ]
            for t in tables
        ],
    )


def _window_text(table: dict[str, Any]) -> str:
    w = table["window"]
    if w is None:
        return table["note"] or "no significant band (p <= 0.05, Knox ratio > 1)"
    return f"{w['distance_m']:g} m, {w['days']} days ({w['kind']})"
