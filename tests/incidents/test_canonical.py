"""The canonical incident CSV: lossless round trip, defaults, and per-row validation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from citywatch.errors import DataError
from citywatch.incidents.canonical import (
    parse_canonical,
    read_canonical_csv,
    write_canonical_csv,
)
from citywatch.incidents.parsing import read_raw_csv
from citywatch.incidents.record import COLUMNS, from_frame, to_frame
from tests.incidents.factories import random_incidents


def test_round_trip_is_lossless(tmp_path: Path) -> None:
    frame = random_incidents(300, seed=11)
    path = tmp_path / "incidents.csv"
    assert write_canonical_csv(frame, path) == 300
    back = read_canonical_csv(path)
    pd.testing.assert_frame_equal(back, frame)
    header = path.read_text("utf-8").splitlines()[0]
    assert header == ",".join(COLUMNS)


def test_local_offsets_keep_the_instant(tmp_path: Path) -> None:
    frame = random_incidents(50, seed=3)
    path = tmp_path / "ny.csv"
    write_canonical_csv(frame, path, tz="America/New_York")
    text = path.read_text("utf-8")
    assert "-05:00" in text and "-04:00" in text  # winter and summer offsets
    pd.testing.assert_frame_equal(read_canonical_csv(path), frame)


def test_dataclass_round_trip() -> None:
    frame = random_incidents(40, seed=5)
    pd.testing.assert_frame_equal(to_frame(from_frame(frame)), frame)


def test_minimal_file_gets_defaults(tmp_path: Path) -> None:
    path = tmp_path / "min.csv"
    path.write_text(
        "id,received_at,category\n"
        "a1,2024-03-10T01:30:00-05:00,robbery\n"
        "a2,2024-03-10T08:00:00Z,telecom_fraud\n"
    )
    frame = read_canonical_csv(path)
    assert frame["source"].tolist() == ["canonical", "canonical"]
    assert frame["source_id"].tolist() == ["a1", "a2"]
    assert frame["time_precision"].tolist() == ["exact", "exact"]
    assert frame["received_at"].tolist() == [
        pd.Timestamp("2024-03-10 06:30", tz="UTC"),
        pd.Timestamp("2024-03-10 08:00", tz="UTC"),
    ]
    assert frame["priority"].isna().all() and frame["lon"].isna().all()


def test_bad_rows_are_named_with_reasons(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "id,received_at,category,priority,lon,lat,solved\n"
        "ok,2024-01-01T00:00:00+00:00,theft,3,-73.9,40.7,true\n"
        "naive,2024-01-01T00:00:00,theft,,,,\n"
        "cat,2024-01-01T00:00:00+00:00,burgalry,,,,\n"
        "prio,2024-01-01T00:00:00+00:00,theft,7,,,\n"
        "frac,2024-01-01T00:00:00+00:00,theft,2.5,,,\n"
        "lat,2024-01-01T00:00:00+00:00,theft,,-73.9,95,\n"
        "half,2024-01-01T00:00:00+00:00,theft,,-73.9,,\n"
        "solved,2024-01-01T00:00:00+00:00,theft,,,,maybe\n"
        ",2024-01-01T00:00:00+00:00,theft,,,,\n"
        "nodate,,theft,,,,\n"
        "ok,2024-01-02T00:00:00+00:00,theft,,,,\n"
    )
    parsed = parse_canonical(read_raw_csv(path))
    assert parsed.reasons.tolist() == [
        pd.NA,
        "bad_received_at",
        "unknown_category",
        "bad_priority",
        "bad_priority",
        "bad_coordinates",
        "bad_coordinates",
        "bad_solved",
        "missing_id",
        "missing_received_at",
        "duplicate_in_file",
    ]
    with pytest.raises(DataError, match=r"10 invalid rows \(line 3: bad_received_at; line 4"):
        read_canonical_csv(path)


def test_structural_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("id,received_at\n1,2024-01-01T00:00:00Z\n")
    with pytest.raises(DataError, match="missing columns category"):
        read_canonical_csv(path)
    path.write_text("id,received_at,category,colour\n1,2024-01-01T00:00:00Z,theft,red\n")
    with pytest.raises(DataError, match="unknown columns colour"):
        read_canonical_csv(path)
    with pytest.raises(DataError, match="no such file"):
        read_canonical_csv(tmp_path / "missing.csv")
