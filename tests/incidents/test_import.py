"""Imports into the store end to end: counts add up, idempotency, rejected rows, jurisdictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely

from citywatch.city import load_pack
from citywatch.incidents.importer import ImportReport, import_file
from citywatch.incidents.storage import load_incidents_frame
from citywatch.store.db import make_engine
from tests.helpers import run
from tests.incidents.test_sources import NASHVILLE, SHOOTINGS, THEFTS, WEST_YORKSHIRE


def adds_up(report: ImportReport) -> bool:
    total = report.imported + report.already_present + report.merged + report.rejected
    return total == report.read


@pytest.mark.parametrize(
    ("database", "months"),
    # all three months on SQLite; PostgreSQL runs the same code on one month, to stay quick
    [("sqlite_url", 3), pytest.param("pg_url", 1, marks=pytest.mark.postgres)],
)
def test_acceptance_nypd_and_west_yorkshire(
    database: str, months: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db_url = str(request.getfixturevalue(database))
    uk = [(p, "police_uk") for p in WEST_YORKSHIRE[:months]]
    files = [(SHOOTINGS, "nypd_shootings"), *uk]
    rows = [27_176, 28_537, 31_635][:months]
    first = [import_file(p, s, db=db_url, rejected_path=tmp_path / "rej.csv") for p, s in files]
    assert [r.read for r in first] == [20_659, *rows]
    assert all(adds_up(r) for r in first)
    assert [r.rejected for r in first] == [0] * len(files)
    assert first[0].imported == 16_255 and first[0].merged == 4_404
    assert [r.imported for r in first[1:]] == rows
    again = [import_file(p, s, db=db_url, rejected_path=tmp_path / "rej.csv") for p, s in files]
    assert [r.imported for r in again] == [0] * len(files)
    assert [r.already_present for r in again] == [r.imported for r in first]
    assert all(adds_up(r) for r in again)
    stored = load_incidents_frame(db_url)
    assert len(stored) == sum(r.imported for r in first)
    assert stored.groupby("source").size().to_dict() == {
        "nypd_shootings": 16_255,
        "police_uk": sum(rows),
    }
    engine = make_engine(db_url)
    with engine.connect() as conn:
        batches = conn.exec_driver_sql(
            "SELECT rows_read, rows_imported, rows_already_present, rows_merged, rows_rejected"
            " FROM import_batches ORDER BY id"
        ).all()
    engine.dispose()
    assert [tuple(b) for b in batches[:1]] == [(20_659, 16_255, 0, 4_404, 0)]
    assert [tuple(b) for b in batches[len(files) : len(files) + 1]] == [
        (20_659, 0, 16_255, 4_404, 0)
    ]


def test_rejected_rows_are_written_with_reasons(tmp_path: Path) -> None:
    lines = SHOOTINGS.read_text("utf-8").splitlines()[:21]
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:]]
    rows[2][header.index("OCCUR_DATE")] = "31/31/2017"
    rows[4][header.index("Latitude")] = "abc"
    rows[6][header.index("PRECINCT")] = "12x"
    bad = tmp_path / "shootings.csv"
    bad.write_text("\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n")
    rejected = tmp_path / "out" / "rejected.csv"
    report = import_file(
        bad, "nypd_shootings", db=f"sqlite:///{tmp_path / 'x.db'}", rejected_path=rejected
    )
    assert report.read == 20 and adds_up(report)
    assert report.rejected_by_reason == {
        "bad_coordinates": 1,
        "bad_precinct": 1,
        "bad_received_at": 1,
    }
    written = pd.read_csv(rejected, dtype=str)
    assert written[["line", "reason"]].values.tolist() == [
        ["4", "bad_received_at"],
        ["6", "bad_coordinates"],
        ["8", "bad_precinct"],
    ]
    assert written["INCIDENT_KEY"].tolist() == [rows[i][0] for i in (2, 4, 6)]
    assert not [c for c in written.columns if c.startswith(("PERP_", "VIC_"))]


def test_manhattan_precincts_against_brute_force(tmp_path: Path) -> None:
    pack = load_pack("manhattan")
    db = f"sqlite:///{tmp_path / 'm.db'}"
    report = import_file(SHOOTINGS, "nypd_shootings", db=db, pack=pack)
    j = report.jurisdictions
    assert j is not None and adds_up(report)
    stored = load_incidents_frame(db).set_index("source_id")
    raw = pd.read_csv(SHOOTINGS, dtype=str).drop_duplicates("INCIDENT_KEY")
    raw = raw.set_index("INCIDENT_KEY").loc[stored.index]
    # brute force: the first station polygon (pack order) that holds the point
    points = shapely.points(raw["Longitude"].astype(float), raw["Latitude"].astype(float))
    derived = np.full(len(points), None, dtype=object)
    for station in reversed(pack.level("station")):
        derived[shapely.intersects(station.geometry, points)] = station.id
    city = pack.level("city")[0].geometry
    inside = shapely.intersects(city, points)
    assert j.with_location == len(stored) == 16_255
    assert j.inside == int(inside.sum())
    located = derived != None  # noqa: E711
    # A precinct that is not Manhattan's (the Bronx's 40th, once) gives way to the polygons.
    foreign = located & ~raw["PRECINCT"].isin({s.id for s in pack.level("station")}).to_numpy()
    assert j.foreign == int(foreign.sum()) == 1
    compared = located & ~foreign
    assert j.compared == int(compared.sum())
    differ = compared & (derived != raw["PRECINCT"].to_numpy())
    assert j.disagreements == int(differ.sum()) > 0
    assert j.compared > 1_900  # Manhattan had 2,502 shooting victims, about 1,950 incidents
    assert {s["id"] for s in j.sample} <= set("nypd_shootings:" + raw.index[differ])
    # the NYPD's own precinct is kept; bureau and zone are consistent with it
    assert (stored["station"] == raw["PRECINCT"])[~foreign].all()
    assert (stored["station"].to_numpy()[foreign] == derived[foreign]).all()
    parent = {z.id: z.parent for z in pack.jurisdictions}
    zoned = stored["zone"].notna()
    assert zoned.sum() > 1_500
    assert (stored.loc[zoned, "zone"].map(parent) == stored.loc[zoned, "station"]).all()
    assert not zoned[differ].any()
    in_pack = stored["station"].isin(parent)
    assert (stored.loc[in_pack, "bureau"] == stored.loc[in_pack, "station"].map(parent)).all()


def test_clip_rejects_points_outside_the_pack(tmp_path: Path) -> None:
    pack = load_pack("manhattan")
    report = import_file(
        THEFTS,
        "code",
        db=f"sqlite:///{tmp_path / 'c.db'}",
        pack=pack,
        clip=True,
        rejected_path=tmp_path / "rej.csv",
    )
    raw = pd.read_csv(THEFTS)
    inside = shapely.intersects(
        pack.level("city")[0].geometry, shapely.points(raw["longitude"], raw["latitude"])
    )
    assert report.imported == int(inside.sum())
    assert report.rejected_by_reason == {"outside_pack": int((~inside).sum())}
    assert report.jurisdictions is not None and report.jurisdictions.derived == report.imported


def test_cli_import_export_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the first 3,000 real Nashville calls: station, zone, disposition and solved all set
    lines = NASHVILLE.read_bytes().splitlines(keepends=True)[:3001]
    calls = tmp_path / "calls.csv"
    calls.write_bytes(b"".join(lines))
    db1, db2 = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    code, out, _ = run(
        ["incidents", "import", str(calls), "--source", "nashville", "--db", db1, "--json"],
        capsys,
    )
    assert code == 0 and json.loads(out)["imported"] == 3_000
    exported = tmp_path / "export.csv"
    code, out, _ = run(
        ["incidents", "export", "--db", db1, "--out", str(exported), "--json"], capsys
    )
    assert code == 0 and json.loads(out) == {"out": str(exported), "rows": 3_000}
    code, out, _ = run(
        ["incidents", "import", str(exported), "--source", "canonical", "--db", db2, "--json"],
        capsys,
    )
    assert code == 0 and json.loads(out)["imported"] == 3_000
    first = load_incidents_frame(db1)
    pd.testing.assert_frame_equal(load_incidents_frame(db2), first)
    assert first["solved"].any() and first["zone"].notna().all()
    code, out, _ = run(
        [
            "incidents",
            "export",
            "--db",
            db1,
            "--out",
            str(exported),
            "--category",
            "two_robberies",
            "--since",
            "2024-03-01",
            "--json",
        ],
        capsys,
    )
    raw = pd.read_csv(calls, dtype=str, encoding="utf-8-sig")
    robbery = raw["Tencode"].isin(["53", "1000"])  # holdup/robbery, bank robbery
    after = pd.to_datetime(raw["Call_Received"]).dt.tz_localize("America/Chicago") >= pd.Timestamp(
        "2024-03-01", tz="UTC"
    )
    assert json.loads(out)["rows"] == int((robbery & after).sum()) > 0
    code, out, _ = run(
        ["incidents", "import", str(calls), "--source", "nashville", "--db", db1], capsys
    )
    assert code == 0 and "already present" in out and "3,000" in out


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        [
            "incidents",
            "import",
            str(THEFTS),
            "--source",
            "nypd",
            "--db",
            f"sqlite:///{tmp_path / 'e.db'}",
        ],
        capsys,
    )
    assert code == 1 and err.startswith("Error: unknown source 'nypd'")
    code, _, err = run(
        [
            "incidents",
            "export",
            "--out",
            str(tmp_path / "x.csv"),
            "--tz",
            "Mars/Olympus",
            "--db",
            f"sqlite:///{tmp_path / 'e.db'}",
        ],
        capsys,
    )
    assert code == 1 and "Error: unknown time zone 'Mars/Olympus'" in err
    code, _, err = run(
        [
            "incidents",
            "export",
            "--out",
            str(tmp_path / "x.csv"),
            "--db",
            f"sqlite:///{tmp_path / 'empty.db'}",
        ],
        capsys,
    )
    assert code == 1 and "holds no incidents table yet" in err
    code, _, err = run(
        [
            "incidents",
            "import",
            str(THEFTS),
            "--source",
            "code",
            "--clip",
            "--db",
            f"sqlite:///{tmp_path / 'e.db'}",
        ],
        capsys,
    )
    assert code == 1 and "Error: --clip needs a city pack" in err
    code, _, err = run(
        [
            "incidents",
            "import",
            str(tmp_path / "none.csv"),
            "--source",
            "code",
            "--db",
            f"sqlite:///{tmp_path / 'e.db'}",
        ],
        capsys,
    )
    assert code == 1 and err.strip().startswith("Error: no such file")
    code, out, _ = run(["incidents", "categories", "--json"], capsys)
    groups = {g["code"]: g["categories"] for g in json.loads(out)["groups"]}
    assert code == 0 and groups["two_robberies"] == ["robbery", "snatching"]
