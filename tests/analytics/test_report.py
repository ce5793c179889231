"""The CompStat report: its numbers equal the ``stats`` JSON; HTML and PDF really render."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from citywatch.analytics import charts, report
from citywatch.errors import DataError
from citywatch.incidents.canonical import write_canonical_csv
from tests.analytics.test_real_data import DATA, MANHATTAN, NY, imported
from tests.helpers import run

YEAR = ["--from", "2018-01-01", "--to", "2018-12-31"]


class Cells(HTMLParser):
    """Collects the ``<td data-table data-row data-col data-value>`` cells of a report."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str, str], str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "td" and "data-table" in a:
            key = (str(a["data-table"]), str(a["data-row"]), str(a["data-col"]))
            self.cells[key] = str(a["data-value"])


def cells_of(html: str) -> dict[tuple[str, str, str], str]:
    parser = Cells()
    parser.feed(html)
    return parser.cells


def same(html_value: str, json_value: object) -> bool:
    """A cell's ``data-value`` equals the JSON value (floats print as their exact repr)."""
    if json_value is None:
        return html_value == "None"
    if isinstance(json_value, float):
        return float(html_value) == json_value
    return html_value == str(json_value)


@pytest.fixture(scope="module")
def shootings_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = imported(DATA / "manhattan" / "nypd_shootings_historic.csv", "nypd_shootings")
    path = tmp_path_factory.mktemp("report") / "manhattan.csv"
    write_canonical_csv(frame[frame["station"].isin(MANHATTAN)], path)
    return path


def stats_json(capsys: pytest.CaptureFixture[str], command: str, *args: str) -> dict:
    code, out, err = run(["stats", command, *args, "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def check_table(cells: dict, table: str, rows: list[dict], columns: list[str]) -> int:
    """Assert every listed column of every JSON row is in the HTML with the same value."""
    checked = 0
    for row in rows:
        for col in columns:
            value = row[col]
            for part in col.split("."):
                value = row[part] if part == col else value
            key = (table, f"{row['jurisdiction']}|{row['category']}", col)
            assert key in cells, key
            assert same(cells[key], value), (key, cells[key], value)
            checked += 1
    return checked


def test_html_numbers_equal_stats_json(
    shootings_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    source = ["--incidents", str(shootings_csv), "--tz", NY]
    code, printed, err = run(
        ["report", "compstat", *YEAR, *source, "--by", "station", "--out", str(out), "--json"],
        capsys,
    )
    assert code == 0, err
    assert json.loads(printed)["out"] == str(out)
    html = out.read_text(encoding="utf-8")
    # self-contained: nothing to fetch (namespace URIs inside the SVGs are names, not links)
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", html)
    assert "<link" not in html and "@import" not in html and "<script" not in html
    assert html.count("<svg") == 4  # trend, bars, hours, map
    assert "治安形势分析报告" in html and "枪击" in html
    cells = cells_of(html)
    base = [*YEAR, *source]
    by_station = stats_json(capsys, "compare", *base, "--by", "station")
    city = stats_json(capsys, "compare", *base)
    quiet = stats_json(capsys, "quiet-days", *base, "--by", "station")
    hours = stats_json(capsys, "profile", *base)
    numbers = ["current", "previous", "change", "change_pct", "z", "flag"]
    checked = check_table(cells, "compare", by_station["rows"], numbers)
    checked += check_table(cells, "city_compare", city["rows"], numbers)
    for row in quiet["rows"]:
        key = f"{row['jurisdiction']}|{row['category']}"
        assert cells[("quiet", key, "zero_days")] == str(row["zero_days"])
        assert cells[("quiet", key, "longest_zero_run")] == str(row["longest_zero_run"]["days"])
        assert cells[("quiet", key, "current_zero_run")] == str(row["current_zero_run"]["days"])
        assert cells[("quiet", key, "incidents")] == str(row["incidents"])
        checked += 4
    for row in hours["rows"]:
        key = f"{row['jurisdiction']}|{row['category']}"
        assert cells[("profile", key, "incidents")] == str(row["incidents"]["current"])
        assert same(cells[("profile", key, "p_value")], row["hour_shift_test"]["p_value"])
        checked += 2
    assert checked == len(cells)  # no number in the HTML left unchecked
    # no outcome in the shootings file: the clearance section is left out, with the reason
    assert "clearance" not in {k[0] for k in cells} and "无已知处理结果" in html


def test_clearance_section_and_month_only_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [DATA / "west-yorkshire" / f"20{y}-07-west-yorkshire-street.csv.gz" for y in (17, 18)]
    import pandas as pd

    path = tmp_path / "wy.csv"
    frame = pd.concat([imported(f, "police_uk") for f in files])
    # three crime types keep the file small; "all" then means all three
    write_canonical_csv(frame[frame["category"].isin(["burglary", "robbery", "drugs"])], path)
    out = tmp_path / "wy.html"
    july = [
        "--from",
        "2018-07-01",
        "--to",
        "2018-07-31",
        "--incidents",
        str(path),
        "--tz",
        "Europe/London",
        "--by",
        "city",
        "-c",
        "burglary",
        "-c",
        "all",
    ]
    code, _, err = run(["report", "compstat", *july, "--out", str(out), "--lang", "en"], capsys)
    assert code == 0, err
    html = out.read_text(encoding="utf-8")
    cells = cells_of(html)
    rows = stats_json(capsys, "clearance", *july)["rows"]
    assert len(rows) == 2
    check_table(
        cells, "clearance", rows, ["recorded", "solved", "rate", "rate_previous", "change_pp"]
    )
    # months only: no quiet-day or hour sections, and the report says why
    assert not {k[0] for k in cells} & {"quiet", "profile"}
    assert html.count("known only to the month") == 2
    assert "CompStat crime report" in html


def non_blank(png: Path) -> None:
    pixels = image.imread(png)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert float(np.std(pixels[..., :3])) > 0.02  # not a blank page


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not on PATH")
def test_html_renders_in_headless_chromium(
    shootings_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    code, _, err = run(
        [
            "report",
            "compstat",
            *YEAR,
            "--incidents",
            str(shootings_csv),
            "--tz",
            NY,
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    subprocess.run(
        ["chromium", *flags, f"--screenshot={shot}", "--window-size=1200,2400", out.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    non_blank(shot)
    dom = subprocess.run(
        ["chromium", *flags, "--dump-dom", out.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert cells_of(dom) == cells_of(out.read_text(encoding="utf-8"))


def pdf_to_pngs(pdf: Path, folder: Path) -> list[Path]:
    """Pages of a PDF as PNGs, with pdftoppm or else pypdfium2; skip when neither exists."""
    if shutil.which("pdftoppm"):
        subprocess.run(
            ["pdftoppm", "-r", "60", "-png", str(pdf), str(folder / "page")],
            check=True,
            timeout=120,
        )
        return sorted(folder.glob("page*.png"))
    pdfium = pytest.importorskip("pypdfium2", reason="neither pdftoppm nor pypdfium2 is present")
    pages = []
    for i, page in enumerate(pdfium.PdfDocument(str(pdf))):
        path = folder / f"page-{i}.png"
        page.render(scale=60 / 72).to_pil().save(path)
        pages.append(path)
    return pages


class Headings(HTMLParser):
    """The ``<h2>`` section headings of a report, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._inside = tag == "h2"
        if self._inside:
            self.headings.append("")

    def handle_endtag(self, tag: str) -> None:
        self._inside = self._inside and tag != "h2"

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.headings[-1] += data


A4_PT = (595.28, 841.89)  # 210 x 297 mm in PDF points


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_pdf_is_the_html_report_on_a4(
    shootings_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], lang: str
) -> None:
    pypdf = pytest.importorskip("pypdf")
    if lang == "zh" and charts.cjk_font() is None:
        pytest.skip("no CJK font is installed: the PDF's Chinese text has no glyphs to extract")
    source = ["--incidents", str(shootings_csv), "--tz", NY, "--by", "station", "--lang", lang]
    outs = {kind: tmp_path / f"report.{kind}" for kind in ("pdf", "html")}
    for out in outs.values():
        code, _, err = run(["report", "compstat", *YEAR, *source, "--out", str(out)], capsys)
        assert code == 0, err
    pdf = pypdf.PdfReader(outs["pdf"])
    sizes = {(float(p.mediabox.width), float(p.mediabox.height)) for p in pdf.pages}
    assert len(sizes) == 1 and np.allclose(next(iter(sizes)), A4_PT, atol=0.5)
    texts = [page.extract_text() for page in pdf.pages]
    text = "\n".join(texts)
    # Every section of the HTML report, in the same order, with a page number on every page.
    parser = Headings()
    parser.feed(outs["html"].read_text(encoding="utf-8"))
    headings = parser.headings
    t = report.TEXT
    assert [t[k][lang] for k in ("summary", "by_jurisdiction", "quiet", "hours", "map")] == [
        h for h in headings if h != t["notes"][lang]
    ]
    assert headings[-1] == t["notes"][lang]  # no outcomes in the file: the notes say so
    at = [text.index(h) for h in headings]
    assert at == sorted(at)
    assert all(f"{i} / {len(pdf.pages)}" in page for i, page in enumerate(texts, 1))
    # The first page is not a title alone: the city table and the next section follow it.
    assert t["title"][lang] in texts[0] and t["by_jurisdiction"][lang] in texts[0]
    # Every number row of the by-station table, and the shift test with its p-value.
    by_station = stats_json(capsys, "compare", *YEAR, *source[:4], "--by", "station")["rows"]
    lines = set(text.splitlines())
    for row in by_station:
        cells = [row["jurisdiction"], None, row["current"], row["previous"], row["change"]]
        assert any(
            line.startswith(f"{cells[0]} ") and f" {cells[2]} {cells[3]} {cells[4]} " in line
            for line in lines
        ), row
    hours = stats_json(capsys, "profile", *YEAR, *source[:4])["rows"][0]["hour_shift_test"]
    shift_name = {"en": hours["test"], "zh": "卡方齐性检验（蒙特卡洛 p 值）"}[lang]
    assert t["test"][lang] in text and shift_name in text and f"{hours['p_value']:.4f}" in text
    note = {
        "en": "none of these incidents has a known outcome",
        "zh": "破案率：这些警情均无已知处理结果",
    }[lang]
    assert note in text.replace("\n", "")
    if lang == "zh":
        assert "none of these" not in text
    for page in pdf_to_pngs(outs["pdf"], tmp_path):
        non_blank(page)


def test_bad_output_suffix(
    shootings_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        [
            "report",
            "compstat",
            *YEAR,
            "--incidents",
            str(shootings_csv),
            "--tz",
            NY,
            "--out",
            str(tmp_path / "r.docx"),
        ],
        capsys,
    )
    assert code == 1 and "must end in .html or .pdf" in err


def test_city_pack_gives_time_zone_and_every_precinct(
    shootings_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [*YEAR, "--incidents", str(shootings_csv), "--city", "manhattan"]
    rows = stats_json(capsys, "quiet-days", *base, "--by", "station", "-c", "shooting")["rows"]
    assert [r["jurisdiction"] for r in rows] == MANHATTAN  # precinct 22 (Central Park) included
    central_park = rows[MANHATTAN.index("22")]
    assert central_park["incidents"] == 0 and central_park["current_zero_run"]["lower_bound"]
    city = stats_json(capsys, "compare", *base, "-c", "all")["rows"]
    assert [(r["jurisdiction"], r["current"], r["previous"]) for r in city] == [
        ("manhattan", 86, 101)
    ]


def test_renders_without_a_cjk_font(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_incidents
) -> None:
    from datetime import date

    from citywatch.analytics import charts
    from citywatch.analytics.report import build_compstat, write_report
    from citywatch.analytics.scope import Period

    monkeypatch.setattr(charts, "cjk_font", lambda: None)
    frame = make_incidents(["2023-03-01 02:30", "2024-03-02 22:10", "2024-05-01 12:00"], NY)
    rep = build_compstat(frame, Period(date(2024, 1, 1), date(2024, 12, 31)), tz=NY, by="city")
    assert "no CJK font is installed: chart labels are in English" in rep.notes
    titles = [fig.axes[0].get_title() for _, fig in report._figures(rep)]
    assert titles[0] == "Monthly trend" and titles[-1] == "Map of incidents by jurisdiction"
    html = write_report(rep, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "治安形势分析报告" in html  # the page text stays Chinese
    assert write_report(rep, tmp_path / "r.pdf").stat().st_size > 1000


def test_map_is_a_choropleth_with_boundaries(make_incidents) -> None:
    from datetime import date

    from shapely.geometry import box

    from citywatch.analytics.report import build_compstat
    from citywatch.analytics.scope import Period

    frame = make_incidents(["2024-03-01 02:30"] * 3, NY, stations=["A", "A", "B"])
    frame["lon"] = [0.5, 0.6, 1.5]
    frame["lat"] = [0.5, 0.5, 0.5]
    squares = {"A": box(0, 0, 1, 1), "B": box(1, 0, 2, 1), "C": box(2, 0, 3, 1)}
    rep = build_compstat(
        frame,
        Period(date(2024, 1, 1), date(2024, 12, 31)),
        tz=NY,
        by="station",
        categories=["all"],
        jurisdictions=list(squares),
        boundaries=squares,
    )
    figure = dict(report._figures(rep))["map"]
    ax = figure.axes[0]
    assert len(ax.patches) == 3  # one filled polygon per jurisdiction
    assert sorted(t.get_text() for t in ax.texts) == ["A: 2", "B: 1", "C: 0"]
    shades = [p.get_facecolor() for p in ax.patches]
    assert shades[0] != shades[1] != shades[2]  # counts 2, 1, 0 get different shades


def _untranslated(note: str) -> list[str]:
    """English words left in a Chinese note (names of a column and of a table row are kept)."""
    return [w for w in re.findall(r"[A-Za-z]{3,}", note) if w not in ("solved", "unassigned")]


def test_notes_of_a_chinese_report_are_chinese(make_incidents) -> None:
    from datetime import date

    from citywatch.analytics.notes import localise_note
    from citywatch.analytics.report import build_compstat, render_html
    from citywatch.analytics.scope import Period, require_month_aligned

    year = Period(date(2024, 1, 1), date(2024, 12, 31))
    times = ["2023-03-01 02:30", "2024-03-02 22:10", "2024-05-01 12:00"]
    # Months only and no outcomes: no clearance, no quiet days, no hours, each with its reason.
    months = make_incidents(times, NY, precision="month")
    # Data from March to May and an incident without a station: the quiet days say so.
    partial = make_incidents([*times[1:], "2024-04-01 10:00"], NY, stations=["1", None, "1"])
    notes = [
        *build_compstat(months, year, tz=NY).notes,
        *build_compstat(partial, year, tz=NY).notes,
    ]
    with pytest.raises(DataError) as month_cut:
        require_month_aligned(months, [Period(date(2024, 1, 5), date(2024, 2, 29))])
    no_font = "no CJK font is installed: chart labels are in English"
    notes = [n for n in notes if n != no_font]  # present on a machine without CJK fonts
    assert len(notes) == 7
    for note in [*notes, month_cut.value.message, no_font]:
        zh = localise_note(note, "zh")
        assert zh != note and not _untranslated(zh), (note, zh)
        assert localise_note(note, "en") == note
    by_text = {localise_note(n, "zh") for n in notes}
    assert "数据始于 2024-03-02，晚于统计期开始：此前的日子按零发案计，但其实际情况未知" in by_text
    assert "零发案天数：统计零发案天数需要精确到日的时间，但有 3 起警情的时间仅精确到月" in by_text
    unassigned = "1 起警情没有所属派出所辖区，计入“unassigned”（导入时指定城市数据包即可划分辖区）"
    assert unassigned in by_text
    partial_report = build_compstat(partial, year, tz=NY)
    html = render_html(partial_report)
    assert all(localise_note(n, "zh") in html for n in partial_report.notes)
    assert "the data starts on" not in html
