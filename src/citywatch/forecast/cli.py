"""``citywatch forecast``: fit, predict and evaluate hotspot forecasts; the feedback-loop audit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from citywatch.cli_options import TzOption, check_tz
from citywatch.console import err_console, print_json, print_table, progress, to_jsonable
from citywatch.errors import DataError, ValidationError

app = typer.Typer(
    help="Hotspot forecasts (naive, KDE, prospective, ETAS) and their honest evaluation.",
    no_args_is_help=True,
)

Dataset = Annotated[
    str | None,
    typer.Option("--dataset", help="Bundled data set: nyc-thefts, nypd-shootings, nashville, "
                 "chicago-southside, toronto-bikes."),
]  # fmt: skip
IncidentsFile = Annotated[
    Path | None, typer.Option("--incidents", help="Incident file (see --source).")
]
Source = Annotated[str, typer.Option("--source", help="Importer of --incidents (code, ...).")]
Mapping = Annotated[Path | None, typer.Option("--mapping", help="Mapping TOML (generic).")]
Db = Annotated[str | None, typer.Option("--db", help="Read incidents from this database URL.")]
Pack = Annotated[
    str | None, typer.Option("--pack", help="City pack: CRS, study area, streets, precincts.")
]
Crs = Annotated[str | None, typer.Option("--crs", help="Metric CRS without a pack (EPSG:...).")]
Category = Annotated[
    list[str] | None, typer.Option("--category", help="Keep only this category (repeatable).")
]
CellM = Annotated[float, typer.Option("--cell-m", help="Grid cell width (m).")]
Segments = Annotated[
    bool, typer.Option("--segments", help="Forecast on the pack's street segments, not a grid.")
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
HorizonDays = Annotated[float, typer.Option("--horizon-days", help="Forecast length in days.")]
HorizonHours = Annotated[
    float | None,
    typer.Option("--horizon-hours", help="Shift forecast (hours); needs exact incident times."),
]
WindowDays = Annotated[
    float, typer.Option("--window-days", help="Training window of KDE and ETAS (days).")
]
PredictorName = Annotated[str, typer.Option("--predictor", help="naive, kde, prospective or etas.")]
Until = Annotated[
    str | None,
    typer.Option(
        "--until", help="Forecast origin; fit on incidents before it (default: last day)."
    ),
]
RefitDays = Annotated[
    float, typer.Option("--refit-days", help="ETAS: re-estimate at most this often (days).")
]


def _study(
    dataset: str | None,
    incidents: Path | None,
    source: str,
    mapping: Path | None,
    db: str | None,
    pack_name: str | None,
    crs: str | None,
    categories: list[str] | None,
    cell_m: float,
    segments: bool,
    grid_until: str | None = None,
    timezone: str | None = None,
) -> Any:
    from citywatch.forecast.pipeline import study_from_dataset, study_from_frame

    given = [x is not None for x in (dataset, incidents, db)]
    if sum(given) != 1:
        raise ValidationError("give exactly one of --dataset, --incidents or --db")
    if timezone is not None:
        check_tz(timezone)
    with progress() as bar:
        bar.add_task("Reading incidents", total=None)
        if dataset is not None:
            if categories:
                raise ValidationError("--category applies to --incidents and --db only")
            if timezone is not None:
                raise ValidationError("--tz applies to --incidents and --db only")
            return study_from_dataset(
                dataset, cell_m=cell_m, segments=segments, grid_until=grid_until
            )
        pack = None
        if pack_name is not None:
            from citywatch.city import load_pack

            pack = load_pack(pack_name)
        metric = crs or (pack.crs if pack is not None else None)
        if metric is None:
            raise ValidationError("give --pack or --crs (a metric CRS) for the grid", field="crs")
        if incidents is not None:
            from citywatch.incidents.sources import read_source

            frame = read_source(incidents, source, mapping=mapping).incidents
        else:
            from citywatch.incidents.load import load_incidents

            frame = load_incidents(db).frame
        if categories:
            frame = frame[frame["category"].isin(categories)]
        name = str(incidents or db)
        return study_from_frame(
            name,
            frame,
            crs=metric,
            cell_m=cell_m,
            segments=segments,
            pack=pack,
            grid_until=grid_until,
            timezone=timezone,
        )


def _options(window_days: float, refit_days: float) -> dict[str, dict[str, Any]]:
    return {
        "kde": {"window_days": window_days},
        "etas": {"window_days": window_days, "refit_days": refit_days},
    }


def _horizon(days: float, hours: float | None) -> float:
    if hours is not None:
        if hours <= 0:
            raise ValidationError("--horizon-hours must be positive", field="horizon_hours")
        return hours / 24.0
    if days <= 0:
        raise ValidationError("--horizon-days must be positive", field="horizon_days")
    return days


def _emit(doc: dict[str, Any], out: Path | None, as_json: bool) -> bool:
    """Write ``doc`` to ``out`` (JSON) if given; print it as JSON when asked (True: printed)."""
    if out is not None:
        import json

        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(to_jsonable(doc), indent=2))
    if as_json:
        print_json(doc)
    return as_json


def _expected_total(predictor: str, surface: Any, risk: Any) -> float | None:
    """Expected incidents over the horizon: the sum of the risks where they are expected counts
    (naive, ETAS, KDE on a grid); ``None`` where they are scores (prospective, KDE on segments)."""
    counts = predictor in ("naive", "etas") or (predictor == "kde" and surface.kind == "grid")
    return float(risk.sum()) if counts else None


def _fitted(study: Any, predictor: str, until: str | None, options: dict[str, Any]) -> Any:
    """The fitted model and its origin (local ISO time): ``until``, or the city's next midnight
    after the last incident."""
    from citywatch.forecast.pipeline import make_predictor
    from citywatch.forecast.surface import local_time, next_local_midnight, to_days

    tz = study.timezone
    origin = to_days(until, tz) if until else next_local_midnight(study.events.t[-1], tz)
    model = make_predictor(predictor, study.surface, **options.get(predictor, {}))
    model.fit(study.events, origin)
    return model, local_time(origin, tz).isoformat()


@app.command("fit")
def fit(
    predictor: PredictorName = "etas",
    until: Until = None,
    dataset: Dataset = None, incidents: IncidentsFile = None, source: Source = "canonical",
    mapping: Mapping = None, db: Db = None, pack: Pack = None, crs: Crs = None,
    tz: TzOption = None, category: Category = None, cell_m: CellM = 250.0,
    segments: Segments = False,
    window_days: WindowDays = 365.0,
    out: Annotated[Path | None, typer.Option("--out", help="Write the parameters (JSON).")] = None,
    json_: Json = False,
) -> None:  # fmt: skip
    """Fit a predictor and show its parameters (ETAS: theta, omega, sigma, background)."""
    study = _study(
        dataset, incidents, source, mapping, db, pack, crs, category, cell_m, segments,
        timezone=tz,
    )  # fmt: skip
    model, origin = _fitted(study, predictor, until, _options(window_days, 0.0))
    result = {
        "predictor": predictor,
        "until": origin,
        "study": study.as_dict(),
        "params": model.params(),
    }
    if _emit(result, out, json_):
        return
    print_table(
        f"{predictor} fitted on {len(study.events):,} incidents before {result['until']}",
        ["parameter", "value"],
        [(k, v if not isinstance(v, float) else f"{v:.4g}") for k, v in result["params"].items()],
    )


@app.command("predict")
def predict(
    predictor: PredictorName = "etas",
    until: Until = None,
    horizon_days: HorizonDays = 1.0, horizon_hours: HorizonHours = None,
    dataset: Dataset = None, incidents: IncidentsFile = None, source: Source = "canonical",
    mapping: Mapping = None, db: Db = None, pack: Pack = None, crs: Crs = None,
    tz: TzOption = None, category: Category = None, cell_m: CellM = 250.0,
    segments: Segments = False,
    window_days: WindowDays = 365.0,
    geojson: Annotated[Path | None, typer.Option("--geojson", help="Risk cells (GeoJSON).")] = None,
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Risk lon,lat,weight (plan posts --demand).")
    ] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Risk map (PNG).")] = None,
    backtest: Annotated[
        Path | None,
        typer.Option(
            "--backtest",
            help="A forecast evaluate --out report: its hit rate and PAI of this predictor go "
            "into the GeoJSON (the dashboard's forecast layer shows them).",
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Cells listed.")] = 10,
    json_: Json = False,
) -> None:  # fmt: skip
    """Forecast risk per cell for the horizon after --until; write GeoJSON, CSV and PNG."""
    import pandas as pd

    from citywatch.forecast.charts import risk_png
    from citywatch.forecast.pipeline import backtest_summary, risk_table, write_risk_geojson
    from citywatch.forecast.surface import require_precision

    horizon = _horizon(horizon_days, horizon_hours)
    if top < 0:
        raise ValidationError("--top must be zero or more", field="top")
    evaluation = None
    if backtest is not None:
        import json

        try:
            report = json.loads(backtest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read the evaluation report {backtest}: {exc}") from exc
        evaluation = backtest_summary(report, predictor)
    study = _study(
        dataset, incidents, source, mapping, db, pack, crs, category, cell_m, segments,
        timezone=tz,
    )  # fmt: skip
    require_precision(study.events, horizon)
    model, origin = _fitted(study, predictor, until, _options(window_days, 0.0))
    risk = model.predict(horizon)
    expected_total = _expected_total(predictor, study.surface, risk)
    table = risk_table(study.surface, risk)
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        table[["lon", "lat", "weight"]].to_csv(csv, index=False)
    if geojson is not None:
        meta = {
            "predictor": predictor,
            "origin": origin,
            "horizon_days": horizon,
            "until": (pd.Timestamp(origin) + pd.Timedelta(days=horizon)).isoformat(),
            "study": study.name,
            "expected_total": expected_total,
            "risk_units": "score" if expected_total is None else "expected incidents",
            "backtest": evaluation,
        }
        write_risk_geojson(study.surface, risk, geojson, meta)
    if png is not None:
        risk_png(
            study.surface, risk, png, f"{study.name}: {predictor}, {horizon:g} d from {origin}"
        )
    ranked = table.assign(density=risk / study.surface.measure).sort_values(
        "density", ascending=False, kind="stable"
    )
    result = {
        "predictor": predictor,
        "origin": origin,
        "horizon_days": horizon,
        "study": study.as_dict(),
        "params": model.params(),
        "expected_total": expected_total,
        "risk_units": "score" if expected_total is None else "expected incidents",
        "top": ranked.head(top).drop(columns="density").to_dict(orient="records"),
        "outputs": {"csv": csv, "geojson": geojson, "png": png},
    }
    if json_:
        print_json(result)
        return
    print_table(
        f"{predictor}: top {top} cells for {horizon:g} day(s) from {origin}",
        ["cell", "lon", "lat", "risk"],
        [
            (r["cell"], f"{r['lon']:.5f}", f"{r['lat']:.5f}", f"{r['weight']:.4g}")
            for r in result["top"]
        ],
    )


@app.command("evaluate")
def evaluate(
    start: Annotated[str, typer.Option("--start", help="First day of the test period.")],
    end: Annotated[str, typer.Option("--end", help="Day after the test period.")],
    predictor: Annotated[
        list[str] | None, typer.Option("--predictor", help="Predictors (repeatable; default all).")
    ] = None,
    horizon_days: HorizonDays = 1.0, horizon_hours: HorizonHours = None,
    dataset: Dataset = None, incidents: IncidentsFile = None, source: Source = "canonical",
    mapping: Mapping = None, db: Db = None, pack: Pack = None, crs: Crs = None,
    tz: TzOption = None, category: Category = None, cell_m: CellM = 250.0,
    segments: Segments = False,
    window_days: WindowDays = 365.0, refit_days: RefitDays = 7.0,
    png: Annotated[Path | None, typer.Option("--png", help="Coverage curves (PNG).")] = None,
    audit_png: Annotated[
        Path | None, typer.Option("--audit-png", help="Per-area flagged vs incident shares (PNG).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the full report (JSON).")] = None,
    json_: Json = False,
) -> None:  # fmt: skip
    """Rolling-origin backtest: hit rate, PAI, PEI at 1/5/10/20 % of the area, vs naive."""
    from citywatch.forecast import charts
    from citywatch.forecast.pipeline import PREDICTOR_NAMES, run_backtest

    horizon = _horizon(horizon_days, horizon_hours)
    study = _study(
        dataset, incidents, source, mapping, db, pack, crs, category, cell_m, segments, start,
        timezone=tz,
    )  # fmt: skip
    names = list(predictor or PREDICTOR_NAMES)
    with progress() as bar:
        task = bar.add_task("Backtesting", total=None)
        result = run_backtest(
            study,
            names,
            start=start,
            end=end,
            horizon_days=horizon,
            options=_options(window_days, refit_days),
            time_of_day=horizon_hours is not None,
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    report = {"study": study.as_dict(), **result.as_dict()}
    if png is not None:
        charts.coverage_png(
            result, png, f"{study.name}: {horizon:g}-day forecasts, {start} to {end}"
        )
    if audit_png is not None:
        shown = result.predictors[-1]  # the last predictor asked for (ETAS by default)
        charts.audit_png(result, shown, audit_png, f"{study.name}: {shown}, top 10 % of the area")
    if _emit(report, out, json_):
        return
    _print_summary(report)


def _fmt_ci(ci: dict[str, Any], scale: float = 1.0) -> str:
    if ci["mean"] is None:
        return "-"
    if ci["low"] is None:
        return f"{ci['mean'] * scale:.3f}"
    return f"{ci['mean'] * scale:.3f} [{ci['low'] * scale:.3f}, {ci['high'] * scale:.3f}]"


def _print_summary(report: dict[str, Any]) -> None:
    rows = []
    for r in report["summary"]:
        gain = r.get("hit_rate_minus_naive")
        rows.append((
            r["predictor"], f"{r['coverage']:.0%}", _fmt_ci(r["hit_rate"]), _fmt_ci(r["pai"]),
            _fmt_ci(r["pei"]), "-" if gain is None else _fmt_ci(gain),
        ))  # fmt: skip
    print_table(
        f"{report['study']['name']}: {report['periods']} periods "
        f"({report['periods_with_events']} with incidents), {report['events']:,} incidents; "
        "means with 95 % CIs",
        ["predictor", "area", "hit rate", "PAI", "PEI", "hit rate - naive"],
        rows,
    )
    _print_area_audit(report)


def _print_area_audit(report: dict[str, Any]) -> None:
    """Per area: share of the flagged cells against share of the incidents, by month."""
    audit = report["area_audit"]
    if not audit:
        return
    predictors = report["predictors"]
    months = sorted({r["month"] for r in audit})
    coverage = report["area_audit_coverage"]

    def mean(values: list[float | None]) -> str:
        known = [v for v in values if v is not None]
        return f"{sum(known) / len(known):.3f}" if known else "-"

    by_area: dict[str, list[dict[str, Any]]] = {}
    for r in audit:
        by_area.setdefault(r["area"], []).append(r)
    last = predictors[-1]
    rows = []
    for area, entries in by_area.items():
        over = sum(
            1
            for r in entries
            if r["incident_share"] is not None and r[f"flagged_share_{last}"] > r["incident_share"]
        )
        rows.append([
            area, mean([r["incident_share"] for r in entries]),
            *(mean([r[f"flagged_share_{p}"] for r in entries]) for p in predictors),
            f"{over} / {len(entries)}",
        ])  # fmt: skip
    print_table(
        f"Per-area audit: share of the flagged {coverage:.0%} of the area vs share of the "
        f"incidents, mean over {len(months)} month(s) ({months[0]} to {months[-1]}; by month in "
        "--json/--out and --audit-png)",
        ["area", "incident share", *(f"flagged {p}" for p in predictors),
         f"months {last} flags more than its share"],
        rows,
    )  # fmt: skip


@app.command("feedback")
def feedback(
    rates: Annotated[str, typer.Option("--rates", help="True rates per area a day: a,b")] = "1,1",
    days: Annotated[int, typer.Option("--days", help="Days simulated.")] = 1000,
    runs: Annotated[int, typer.Option("--runs", help="Seeded runs per rule.")] = 50,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    png: Annotated[Path | None, typer.Option("--png", help="Patrol shares by day (PNG).")] = None,
    json_: Json = False,
) -> None:  # fmt: skip
    """Ensign et al. (2018) urn audit: drift when only discovered incidents feed back."""
    from citywatch.forecast.feedback import UPDATE_RULES, simulate_urn

    try:
        lam = [float(x) for x in rates.split(",")]
    except ValueError as exc:
        raise ValidationError(f"--rates must be numbers separated by commas: {rates!r}") from exc
    result = {rule: simulate_urn(lam, days, rule, runs=runs, seed=seed) for rule in UPDATE_RULES}
    if png is not None:
        from citywatch.forecast.charts import urn_png

        urn_png(
            {k: v for k, v in result.items()}, png, f"rates {rates}, {runs} runs of {days} days"
        )
    summary = [r.as_dict() for r in result.values()]
    if json_:
        print_json({"rates": lam, "results": summary})
        return
    print_table(
        f"Urn model, true shares {[round(x, 3) for x in summary[0]['truth']]}",
        ["update rule", "mean final share", "sd final share", "drift"],
        [
            (s["rule"], [round(x, 3) for x in s["mean_final_share"]],
             [round(x, 3) for x in s["sd_final_share"]], f"{s['drift']:.3f}")
            for s in summary
        ],
    )  # fmt: skip
    err_console.print("drift = mean over runs of the largest |final patrol share - true share|")
