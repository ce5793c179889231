"""The CompStat report: one self-contained HTML or PDF file of tables and charts.

The PDF is the HTML page printed on A4 (WeasyPrint), so both hold the same sections.

The report calls the same functions as ``citywatch stats`` (compare, clearance, quiet days,
profile) with the same arguments, so every number in it equals the command's JSON.  Sections
whose statistic the data cannot support (no outcomes for clearance, monthly times for quiet
days or hours) are left out with a note saying why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jinja2
import pandas as pd
from matplotlib.figure import Figure

from citywatch.analytics import charts
from citywatch.analytics.compare import ClearanceResult, CompareResult, clearance, compare
from citywatch.analytics.notes import localise_note
from citywatch.analytics.profile import ProfileResult, profile
from citywatch.analytics.quiet import QuietDaysResult, quiet_days
from citywatch.analytics.scope import (
    ALL,
    CategorySpec,
    Period,
    baseline_period,
    resolve_categories,
    scoped_frame,
)
from citywatch.errors import DataError, InsufficientPrecisionError, ValidationError

__all__ = ["CompstatReport", "build_compstat", "report_format", "write_report"]

Lang = Literal["zh", "en"]

#: Interface text in both languages.
TEXT: dict[str, dict[str, str]] = {
    "title": {"zh": "治安形势分析报告（CompStat）", "en": "CompStat crime report"},
    "period": {"zh": "统计期", "en": "Period"},
    "baseline": {"zh": "对比期", "en": "Compared with"},
    "generated": {"zh": "生成时间", "en": "Generated"},
    "summary": {"zh": "全市警情同比", "en": "City-wide counts"},
    "by_jurisdiction": {"zh": "分辖区警情", "en": "Counts by jurisdiction"},
    "jurisdiction": {"zh": "辖区", "en": "Jurisdiction"},
    "category": {"zh": "类别", "en": "Category"},
    "current": {"zh": "本期", "en": "Current"},
    "previous": {"zh": "同期", "en": "Previous"},
    "change": {"zh": "增减", "en": "Change"},
    "change_pct": {"zh": "增减幅(%)", "en": "Change (%)"},
    "z": {"zh": "z 值", "en": "z"},
    "flag": {"zh": "显著", "en": "Significant"},
    "clearance": {"zh": "破案率", "en": "Clearance"},
    "recorded": {"zh": "立案", "en": "Recorded"},
    "solved": {"zh": "破案", "en": "Solved"},
    "rate": {"zh": "破案率(%)", "en": "Rate (%)"},
    "rate_previous": {"zh": "同期破案率(%)", "en": "Previous rate (%)"},
    "change_pp": {"zh": "变化(百分点)", "en": "Change (points)"},
    "quiet": {"zh": "零发案天数", "en": "Days without incidents"},
    "zero_days": {"zh": "零发案天数", "en": "Zero days"},
    "longest": {"zh": "最长连续零发案", "en": "Longest zero run"},
    "current_run": {"zh": "当前连续零发案(天)", "en": "Current zero run (days)"},
    "at_least": {"zh": "至少", "en": "at least"},
    "incidents": {"zh": "警情数", "en": "Incidents"},
    "trend": {"zh": "月度趋势", "en": "Monthly trend"},
    "bars": {"zh": "各辖区本期与同期", "en": "Current and previous period by jurisdiction"},
    "hours": {"zh": "发案时段分布", "en": "Hour-of-day profile"},
    "hour": {"zh": "时（当地时间）", "en": "hour (local time)"},
    "peak": {"zh": "高发时段", "en": "Peak hours"},
    "test": {"zh": "分布变化检验", "en": "Shift test"},
    "map": {"zh": "分辖区警情分布图", "en": "Map of incidents by jurisdiction"},
    "notes": {"zh": "说明", "en": "Notes"},
    "all": {"zh": "全部警情", "en": "All incidents"},
    "yes": {"zh": "是", "en": "yes"},
}


@dataclass
class CompstatReport:
    """Everything a CompStat report shows, computed once and rendered to HTML or PDF."""

    lang: Lang
    period: Period
    baseline: Period
    by: str
    categories: list[str]
    labels: dict[str, str]
    city_compare: CompareResult
    compare: CompareResult
    clearance: ClearanceResult | None
    quiet: QuietDaysResult | None
    profile: ProfileResult | None
    monthly: pd.DataFrame
    points: pd.DataFrame
    boundaries: Mapping[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    generated: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))

    def text(self, key: str) -> str:
        """Interface text in the report's language."""
        return TEXT[key][self.lang]

    def as_dict(self) -> dict[str, Any]:
        """The numbers of the report, as the ``stats`` commands print them."""
        return {
            "lang": self.lang,
            "period": self.period.as_dict(),
            "baseline": self.baseline.as_dict(),
            "by": self.by,
            "city_compare": self.city_compare.as_dict(),
            "compare": self.compare.as_dict(),
            "clearance": self.clearance.as_dict() if self.clearance else None,
            "quiet_days": self.quiet.as_dict() if self.quiet else None,
            "profile": self.profile.as_dict() if self.profile else None,
            "notes": self.notes,
        }


def _labels(codes: Sequence[str], lang: Lang) -> dict[str, str]:
    from citywatch.incidents.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    out = {}
    for code in codes:
        if code == ALL:
            out[code] = TEXT["all"][lang]
        elif code in taxonomy:
            out[code] = taxonomy.label(code, lang)
        else:
            out[code] = code
    return out


def build_compstat(
    incidents: pd.DataFrame,
    period: Period,
    *,
    tz: str,
    by: str = "station",
    categories: Sequence[str] | CategorySpec | None = None,
    baseline_dates: Period | None = None,
    lang: str = "zh",
    city: str = "city",
    jurisdictions: Sequence[str] | None = None,
    boundaries: Mapping[str, Any] | None = None,
) -> CompstatReport:
    """Compute every section of the CompStat report.

    Parameters
    ----------
    incidents : pandas.DataFrame
        Canonical incidents.
    period : Period
        Local dates of the report.
    tz : str
        City time zone.
    by : {"bureau", "station", "zone", "city"}
        Jurisdiction level of the tables and charts.
    categories : sequence of str, mapping or None
        As in :func:`citywatch.analytics.compare.compare`.
    baseline_dates : Period, optional
        Comparison period (default: the previous year).
    lang : {"zh", "en"}
        Language of the report.
    city : str
        City label.
    jurisdictions : sequence of str, optional
        Jurisdictions to list even without incidents.
    boundaries : mapping, optional
        Jurisdiction id to shapely (multi)polygon (WGS-84) at level ``by``: the map becomes a
        choropleth of the counts.

    Returns
    -------
    CompstatReport
    """
    if lang not in ("zh", "en"):
        raise ValidationError(f"unknown language {lang!r}: use zh or en", field="lang")
    language: Lang = "zh" if lang == "zh" else "en"
    previous = baseline_dates or baseline_period(period, "year")
    present = {str(c) for c in incidents["category"].dropna().unique()}
    spec = resolve_categories(categories, present)
    args: dict[str, Any] = {"tz": tz, "categories": spec, "city": city}
    by_args: dict[str, Any] = {**args, "by": by, "jurisdictions": jurisdictions}
    notes: list[str] = []
    city_compare = compare(incidents, period, baseline_dates=previous, **args)
    by_compare = compare(incidents, period, baseline_dates=previous, **by_args)
    clear: ClearanceResult | None = None
    try:
        clear = clearance(incidents, period, baseline_dates=previous, **by_args)
    except DataError as exc:  # no outcomes recorded: leave the section out, say why
        notes.append(f"clearance: {exc.message}")
    quiet: QuietDaysResult | None = None
    try:
        quiet = quiet_days(incidents, period, **by_args)
    except InsufficientPrecisionError as exc:
        notes.append(f"quiet days: {exc.message}")
    prof: ProfileResult | None = None
    try:
        prof = profile(incidents, period, baseline_dates=previous, **args)
    except InsufficientPrecisionError as exc:
        notes.append(f"hour profile: {exc.message}")
    if charts.cjk_font() is None and language == "zh":
        notes.append("no CJK font is installed: chart labels are in English")
    return CompstatReport(
        lang=language,
        period=period,
        baseline=previous,
        by=by,
        categories=list(spec),
        labels=_labels(list(spec), language),
        city_compare=city_compare,
        compare=by_compare,
        clearance=clear,
        quiet=quiet,
        profile=prof,
        monthly=_monthly(incidents, spec, tz, city, previous, period),
        points=_points(incidents, tz, by, city, period),
        boundaries=boundaries,
        notes=[*notes, *quiet.notes] if quiet else notes,
    )


def _monthly(
    incidents: pd.DataFrame,
    spec: CategorySpec,
    tz: str,
    city: str,
    previous: Period,
    period: Period,
) -> pd.DataFrame:
    """Counts per calendar month and category label, from the baseline to the period end."""
    frame, _ = scoped_frame(incidents, tz=tz, categories=spec, city=city)
    first, last = min(previous.start, period.start), max(previous.end, period.end)
    frame = frame[(frame["day"] >= pd.Timestamp(first)) & (frame["day"] <= pd.Timestamp(last))]
    months = pd.period_range(first, last, freq="M")
    table = frame.groupby([frame["day"].dt.to_period("M"), "category"]).size().unstack(fill_value=0)
    return table.reindex(index=months, columns=list(spec), fill_value=0)


def _points(incidents: pd.DataFrame, tz: str, by: str, city: str, period: Period) -> pd.DataFrame:
    """Located incidents of the period, with their jurisdiction, for the map."""
    frame, _ = scoped_frame(
        incidents, tz=tz, by=by, categories={ALL: None}, city=city, extra_columns=["lon", "lat"]
    )
    inside = (frame["day"] >= pd.Timestamp(period.start)) & (
        frame["day"] <= pd.Timestamp(period.end)
    )
    return frame.loc[
        inside & frame["lon"].notna() & frame["lat"].notna(), ["lon", "lat", "jurisdiction"]
    ]


def _figures(report: CompstatReport) -> list[tuple[str, Figure]]:
    """The report's charts with their section titles, labelled in a language the font has."""
    chart_lang: Lang = report.lang if charts.cjk_font() else "en"
    label_map = _labels(report.categories, chart_lang)

    def t(key: str) -> str:
        return TEXT[key][chart_lang]

    legend = (f"{t('current')} {report.period}", f"{t('previous')} {report.baseline}")
    figures = [
        ("trend", charts.trend_chart(report.monthly, lambda c: label_map[c], t("trend"))),
    ]
    main = report.categories[0]
    rows = report.compare.table[report.compare.table["category"] == main]
    figures.append(
        (
            "bars",
            charts.bar_chart(
                rows["jurisdiction"].tolist(),
                rows["current"].tolist(),
                rows["previous"].tolist(),
                legend,
                f"{t('bars')} — {label_map[main]}",
            ),
        )
    )
    if report.profile is not None:
        hours = report.profile.rows[0]
        figures.append(
            (
                "hours",
                charts.hour_chart(
                    hours.hours, legend, f"{t('hours')} — {label_map[hours.category]}", t("hour")
                ),
            )
        )
    all_rows = report.compare.table[report.compare.table["category"] == main]
    counts = dict(zip(all_rows["jurisdiction"], all_rows["current"], strict=True))
    figures.append(("map", charts.map_chart(report.points, counts, t("map"), report.boundaries)))
    return figures


_ENV = jinja2.Environment(
    loader=jinja2.FunctionLoader(
        lambda name: resources.files("citywatch.analytics").joinpath(name).read_text("utf-8")
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if isinstance(value, bool):
        return "✔" if value else ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(rate: Any) -> str:
    return _fmt(None if rate is None or pd.isna(rate) else 100 * rate)


def render_html(report: CompstatReport) -> str:
    """The report as one HTML page with inline SVG charts (no external file or network)."""
    with charts.chart_style():
        svgs = {name: charts.figure_to_svg(fig) for name, fig in _figures(report)}
    template = _ENV.get_template("compstat.html.j2")
    return template.render(
        r=report,
        t=report.text,
        svgs=svgs,
        fmt=_fmt,
        pct=_pct,
        compare_rows=report.compare.as_dict()["rows"],
        city_rows=report.city_compare.as_dict()["rows"],
        clearance_rows=report.clearance.as_dict()["rows"] if report.clearance else None,
        quiet_rows=report.quiet.as_dict()["rows"] if report.quiet else None,
        profile_rows=report.profile.as_dict()["rows"] if report.profile else None,
        notes=[localise_note(note, report.lang) for note in report.notes],
        local=lambda text: localise_note(text, report.lang),
    )


def render_pdf(report: CompstatReport, path: Path) -> None:
    """The report as an A4 PDF: the HTML report laid out for print by WeasyPrint.

    The same page as :func:`render_html` (every section, the same numbers), with the print
    rules of its stylesheet: A4 pages with page numbers, table headers repeated on every page a
    table continues on, rows and charts never cut in two.  The text is searchable.

    Raises
    ------
    DataError
        WeasyPrint cannot load its system libraries (Pango).
    """
    try:
        import weasyprint
    except OSError as exc:  # the wheel is there but not the Pango library it drives
        raise DataError(
            f"writing a PDF needs the Pango library ({exc}); on Debian: apt-get install "
            "libpango-1.0-0 libpangoft2-1.0-0, or write the report as .html"
        ) from None
    weasyprint.HTML(string=render_html(report)).write_pdf(path)


def report_format(path: str | Path) -> Literal["html", "pdf"]:
    """``"html"`` or ``"pdf"`` from the file name; raise ValidationError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix == ".pdf":
        return "pdf"
    if suffix in (".html", ".htm"):
        return "html"
    raise ValidationError(f"--out must end in .html or .pdf, not {Path(path).name!r}", field="out")


def write_report(report: CompstatReport, out: str | Path) -> Path:
    """Write the report to ``out``; the suffix (``.html`` or ``.pdf``) chooses the format.

    Parameters
    ----------
    report : CompstatReport
    out : str or pathlib.Path

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(out)
    kind = report_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "pdf":
        render_pdf(report, path)
    else:
        path.write_text(render_html(report), encoding="utf-8")
    return path
