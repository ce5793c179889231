"""Incident files as users have them: Excel's cp1252, broken bytes, binary files, unclosed
quotes, priorities on another scale, categories nobody mapped."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from citywatch.errors import DataError
from citywatch.incidents.decoding import decode_csv
from citywatch.incidents.importer import import_file
from citywatch.incidents.sources import NYPD_COLUMNS, read_source
from tests.helpers import run

HEADER = "case,when,type,place,priority\n"
MAPPING = (
    'dataset = "sd"\n'
    'timezone = "America/Los_Angeles"\n'
    "[columns]\n"
    'source_id = "case"\nreceived_at = "when"\ncategory = "type"\n'
    '[categories]\n"THEFT" = "theft"\n"ROBBERY" = "robbery"\n'
)


def _mapping(tmp_path: Path, top: str = "", tables: str = "", columns: str = "") -> Path:
    """The test mapping with extra top-level keys, [columns] entries and tables."""
    path = tmp_path / "m.toml"
    path.write_text(top + MAPPING.replace("[categories]", columns + "[categories]") + tables)
    return path


def _csv(tmp_path: Path, body: bytes, name: str = "calls.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(HEADER.encode() + body)
    return path


def test_latin1_excel_export_is_detected_as_cp1252(tmp_path: Path) -> None:
    body = "1,2024-05-01 10:00,THEFT,Café Olé,\n2,2024-05-01 11:00,ROBBERY,Peñasquitos,\n"
    path = _csv(tmp_path, body.encode("cp1252"))
    parsed = read_source(path, "generic", mapping=_mapping(tmp_path))
    assert parsed.raw["place"].tolist() == ["Café Olé", "Peñasquitos"]
    assert parsed.raw.attrs["encoding"] == "cp1252"
    assert parsed.reasons.isna().all()
    report = import_file(
        path, "generic", db=f"sqlite:///{tmp_path / 'x.db'}", mapping=_mapping(tmp_path)
    )
    assert (report.imported, report.notes) == (2, {"decoded_as_cp1252": 2})


def test_broken_bytes_in_utf8_reject_their_rows_with_the_line(tmp_path: Path) -> None:
    body = (
        "1,2024-05-01 10:00,THEFT,Café,\n".encode()
        + b"2,2024-05-01 11:00,THEFT,Caf\xe9 \xff,\n"  # cp1252 bytes in a UTF-8 file
        + "3,2024-05-01 12:00,ROBBERY,Peñasquitos,\n".encode()
    )
    path = _csv(tmp_path, body)
    rejected = tmp_path / "rejected.csv"
    report = import_file(
        path,
        "generic",
        db=f"sqlite:///{tmp_path / 'x.db'}",
        mapping=_mapping(tmp_path),
        rejected_path=rejected,
    )
    assert (report.imported, report.rejected_by_reason) == (2, {"undecodable_text": 1})
    written = pd.read_csv(rejected, dtype=str)
    assert written[["line", "reason", "case"]].values.tolist() == [["3", "undecodable_text", "2"]]


def test_explicit_encoding_and_cli_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = "1,2024-05-01 10:00,THEFT,深圳,\n".encode("gb18030")
    path = _csv(tmp_path, body)
    parsed = read_source(path, "generic", mapping=_mapping(tmp_path), encoding="gb18030")
    assert parsed.raw["place"].tolist() == ["深圳"]
    db = f"sqlite:///{tmp_path / 'x.db'}"
    args = ["incidents", "import", str(path), "--source", "generic", "--db", db]
    args += ["--mapping", str(_mapping(tmp_path))]
    code, _, err = run([*args, "--encoding", "klingon"], capsys)
    assert (code, err.strip()) == (
        1,
        "Error: unknown text encoding 'klingon' (e.g. utf-8, cp1252, latin-1, gb18030)",
    )
    code, out, _ = run([*args, "--encoding", "gb18030", "--json"], capsys)
    assert code == 0 and '"imported": 1' in out


def test_gzip_by_magic_number_and_byte_order_mark(tmp_path: Path) -> None:
    text = "\ufeff" + HEADER + "1,2024-05-01 10:00,THEFT,x,\n"
    path = tmp_path / "calls.dat"
    path.write_bytes(gzip.compress(text.encode()))
    decoded = decode_csv(path)
    assert decoded.data.startswith(b"case,when") and decoded.encoding == "utf-8"


def test_binary_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "calls.xlsx.csv"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00\x00\x00" * 50)
    code, _, err = run(
        [
            "incidents",
            "import",
            str(path),
            "--source",
            "code",
            "--db",
            f"sqlite:///{tmp_path / 'x.db'}",
        ],
        capsys,
    )
    assert code == 1
    assert err.strip() == (
        "Error: calls.xlsx.csv is not a text CSV (it holds NUL bytes: a spreadsheet or other "
        "binary file?); export it as CSV first"
    )


def test_unclosed_quote_is_named_with_its_line(tmp_path: Path) -> None:
    body = (
        b'1,2024-05-01 10:00,THEFT,x,\n2,"2024-05-01 11:00,THEFT,y,\n3,2024-05-01 12:00,THEFT,z,\n'
    )
    path = _csv(tmp_path, body)
    message = (
        "calls.csv: a quoted field opened on line 3 is never closed (an unbalanced '\"'); "
        "every row from there to the end of the file would be one cell"
    )
    with pytest.raises(DataError) as info:
        read_source(path, "generic", mapping=_mapping(tmp_path))
    assert info.value.message == message
    # also when only some columns are read (the NYPD reader's usecols)
    nypd = tmp_path / "nypd.csv"
    nypd.write_text(
        ",".join(NYPD_COLUMNS) + "\n1,01/01/2017,10:00:00,MANHATTAN,1,false,40.7,-74.0\n"
        '2,"01/01/2017,10:00:00,MANHATTAN,1,false,40.7,-74.0\n'
    )
    with pytest.raises(DataError) as info:
        read_source(nypd, "nypd_shootings")
    assert info.value.message == message.replace("calls.csv", "nypd.csv")


def test_priorities_on_another_scale(tmp_path: Path) -> None:
    # San Diego's calls for service use priorities 0 (most urgent) to 9.
    table = '[priorities]\n"0" = 1\n"1" = 1\n"2" = 2\n"3" = 3\n"4" = 4\n"9" = 5\n'
    mapping = _mapping(tmp_path, tables=table, columns='priority = "priority"\n')
    body = b"".join(
        f"{i},2024-05-01 10:00,THEFT,x,{p}\n".encode()
        for i, p in enumerate(["0", "2", "9", "7", ""])
    )
    parsed = read_source(_csv(tmp_path, body), "generic", mapping=mapping)
    assert parsed.reasons.tolist() == [pd.NA, pd.NA, pd.NA, "unmapped_priority", pd.NA]
    # the empty cell takes the category's default priority (theft: 3)
    assert parsed.records["priority"].tolist()[:3] + parsed.records["priority"].tolist()[4:] == [
        1,
        2,
        5,
        3,
    ]
    bad = _mapping(tmp_path, tables='[priorities]\n"0" = 0\n', columns='priority = "priority"\n')
    with pytest.raises(DataError, match=r"\[priorities\] '0' = 0: give a priority 1-5"):
        read_source(_csv(tmp_path, body), "generic", mapping=bad)


def test_unmapped_categories_go_to_a_default(tmp_path: Path) -> None:
    body = (
        b"1,2024-05-01 10:00,THEFT,x,\n2,2024-05-01 10:00,LOUD MUSIC,x,\n3,2024-05-01 10:00,,x,\n"
    )
    path = _csv(tmp_path, body)
    strict = read_source(path, "generic", mapping=_mapping(tmp_path))
    assert strict.reasons.tolist() == [pd.NA, "unmapped_category", "unmapped_category"]
    lenient = read_source(
        path, "generic", mapping=_mapping(tmp_path, 'default_category = "other"\n')
    )
    assert lenient.reasons.isna().all()
    assert lenient.records["category"].tolist() == ["theft", "other", "other"]
    assert lenient.notes == {"category_defaulted_to_other": 2}
    with pytest.raises(DataError, match="default_category 'misc' is not a taxonomy category"):
        read_source(path, "generic", mapping=_mapping(tmp_path, 'default_category = "misc"\n'))
