"""NENA EIDO: schema validation of exports, the standard's sample, lossless round trips."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citywatch.errors import DataError, ValidationError
from citywatch.incidents.eido import (
    CALLER_DATA,
    CAUTION_EXPIRY,
    CITYWATCH_DATA,
    SEVERITIES,
    EidoCaller,
    EidoCaution,
    EidoIncident,
    EidoMerge,
    EidoNote,
    EidoUnit,
    from_eido,
    from_live,
    read_pidf_point,
    to_eido,
)
from citywatch.incidents.eido_schema import (
    SAMPLE,
    eido_errors,
    export_eido,
    read_eido,
    read_eido_documents,
    validate_eido,
    write_eido_file,
)
from citywatch.incidents.record import (
    SOURCES,
    TIME_PRECISIONS,
    Incident,
    from_frame,
    to_frame,
)
from citywatch.incidents.sources import read_source
from citywatch.incidents.taxonomy import load_taxonomy

DATA = Path(__file__).resolve().parents[2] / "data"
BUNDLED = [
    (DATA / "manhattan" / "nypd_shootings_historic.csv", "nypd_shootings"),
    (DATA / "manhattan" / "nyc_vehicle_thefts_2014.csv", "code"),
    (DATA / "nashville" / "calls_2024_partial.csv", "nashville"),
    *((p, "police_uk") for p in sorted((DATA / "west-yorkshire").glob("*.csv.gz"))),
]
T0 = datetime(2024, 3, 5, 14, 7, 9, 123456, tzinfo=UTC)


def _full() -> EidoIncident:
    incident = Incident(
        id="nashville:2024-1",
        source="nashville",
        source_id="2024-1",
        received_at=T0,
        time_precision="exact",
        category="theft",
        priority=2,
        lon=-86.78125,
        lat=36.1627,
        bureau="B1",
        station="13",
        zone="13A",
        dispatched_at=T0 + timedelta(seconds=40),
        arrived_at=T0 + timedelta(seconds=300),
        cleared_at=T0 + timedelta(hours=1),
        disposition="report taken",
        solved=False,
    )
    return EidoIncident(
        incident=incident,
        status="cleared",
        units=(
            EidoUnit(
                "A13-1",
                T0 + timedelta(seconds=40),
                T0 + timedelta(seconds=45),
                T0 + timedelta(seconds=300),
                T0 + timedelta(hours=1),
                "cleared",
                212.5,
            ),
            EidoUnit("A13-2", T0 + timedelta(seconds=50)),
        ),
        notes=(
            EidoNote("phone snatched near the subway", T0, "disp"),
            EidoNote("嫌疑人向北逃跑", T0 + timedelta(seconds=90), "off13"),
        ),
        cautions=(
            EidoCaution(
                "Dog", "high", "dangerous dog at the back door", T0, "disp", T0 + timedelta(days=30)
            ),
            EidoCaution("Hazmat", "normal", "propane store", None, None, None),
        ),
        merges=(EidoMerge("nashville:2024-0", "REPLACING", T0 + timedelta(seconds=60)),),
        agency="nashville.citywatch.invalid",
        number="NAS-2024-000001",
        location_text="Broadway @ 5th Ave N",
        callers=(
            EidoCaller(
                T0 + timedelta(seconds=20),
                "calltaker2",
                "saw two men run towards the river",
                "Broadway & 4th Ave N",
                -86.7809,
                36.16283,
                "nashville:2024-0",
            ),
            EidoCaller(T0 + timedelta(seconds=25)),  # a call with nothing but its time
        ),
    )


def test_full_export_validates_and_maps_to_the_standard_elements() -> None:
    doc = to_eido(_full())
    assert eido_errors(doc) == []
    inc = doc["incidentComponent"]
    assert inc["internalIncidentId"] == "nashville:2024-1"
    assert inc["incidentTypeInternalCode"] == "theft"
    assert inc["incidentCommonPriorityNumber"] == 2
    assert inc["beatOrDispatchGroupText"] == "13A"
    assert inc["reportNumberType"] == "NAS-2024-000001"  # the console's number
    assert inc["dispositionComponent"][0]["dispositionDescriptionText"] == "report taken"
    assert inc["dispositionComponent"][0]["dispositionCategoryText"] == "unsolved"
    call = doc["callComponent"][0]
    assert call["callStartTimestamp"] == "2024-03-05T14:07:09.123456+00:00"
    assert call["priorityIdentifier"] == "high"
    assert doc["dispatchComponent"][0]["lastUpdateTimeStamp"] == "2024-03-05T14:07:49.123456+00:00"
    units = doc["emergencyResourceComponent"]
    assert [u["emergencyResourceName"] for u in units] == ["A13-1", "A13-2"]
    assert [u["primaryUnitStatusRegistryText"] for u in units] == ["Available", "Dispatched"]
    assert units[0]["eta"] == "2024-03-05T14:11:21.623456+00:00"  # assigned + 212.5 s
    assert doc["cautionComponent"][0]["cautionSeverity"] == "high"
    # the caution's text as typed; its expiry in an additional-data component that names the
    # caution in its cautionReference (EIDO 1.0's caution has no expiry element)
    assert doc["cautionComponent"][0]["cautionTypeInternalText"] == "dangerous dog at the back door"
    (expiry,) = [c for c in doc["additionalDataComponent"] if c["urlPurpose"] == CAUTION_EXPIRY]
    assert expiry["additionalDataByValue"] == "2024-04-04T14:07:09.123456+00:00"
    assert expiry["cautionReference"] == [{"$ref": doc["cautionComponent"][0]["$id"]}]
    # every further caller is a call component of its own, after the incident's own call
    own, second, third = doc["callComponent"]
    assert own["callStartTimestamp"] == "2024-03-05T14:07:09.123456+00:00"
    assert second["callStartTimestamp"] == "2024-03-05T14:07:29.123456+00:00"
    assert second["direction"] == "incoming" and second["agentReference"] == [
        {"$ref": "calltaker2"}
    ]
    components = {
        c["$id"]: c
        for key in ("notesComponent", "locationComponent", "additionalDataComponent")
        for c in doc[key]
    }
    (said,) = second["notesReference"]
    assert components[said["$ref"]]["notesActionComments"] == "saw two men run towards the river"
    assert components[said["$ref"]]["updatedByAgentReference"] == {"$ref": "calltaker2"}
    (where,) = second["locationReference"]
    assert components[where["$ref"]]["locationDescriptionText"] == "Broadway & 4th Ave N"
    assert read_pidf_point(components[where["$ref"]]["locationByValue"]) == (-86.7809, 36.16283)
    (data,) = second["additionalDataReference"]
    assert components[data["$ref"]]["urlPurpose"] == CALLER_DATA
    assert json.loads(components[data["$ref"]]["additionalDataByValue"]) == {
        "original_incident_id": "nashville:2024-0"
    }
    assert set(third) >= {"callStartTimestamp", "direction", "callStateRegistryText"}
    assert not {"agentReference", "notesReference", "locationReference"} & set(third)
    assert "calltaker2" in {a["$id"] for a in doc["agentComponent"]}
    # the incident's notes are its own: the callers' are referenced by their calls only
    assert said not in doc["incidentComponent"]["notesReference"]
    assert doc["mergeComponent"][0]["incidentMergeDirectionCode"] == "REPLACING"
    assert [n["notesActionComments"] for n in doc["notesComponent"]][1] == "嫌疑人向北逃跑"
    assert read_pidf_point(doc["locationComponent"][0]["locationByValue"]) == (-86.78125, 36.1627)
    assert doc["locationComponent"][0]["localIdentifier"] == ["bureau:B1", "station:13", "zone:13A"]
    assert doc["locationComponent"][0]["locationDescriptionText"] == "Broadway @ 5th Ave N"


def test_full_round_trip_keeps_everything() -> None:
    item = _full()
    back = from_eido(json.loads(json.dumps(to_eido(item))))
    assert back == item


def test_schema_catches_broken_documents() -> None:
    doc = to_eido(_full())
    for change, where in [
        (lambda d: d.pop("agencyComponent"), "(root)"),
        (lambda d: d.update(eidoVersion="2.0"), "eidoVersion"),
        (lambda d: d["callComponent"][0].update(direction="sideways"), "callComponent/0/direction"),
        (lambda d: d.update(lastUpdateTimeStamp="yesterday"), "lastUpdateTimeStamp"),
        (lambda d: d["cautionComponent"][0].update(cautionSeverity="dire"), "cautionComponent/0"),
        (lambda d: d["emergencyResourceComponent"][0].pop("agentReference"), "emergencyResource"),
        (lambda d: d["callComponent"][1].pop("callStartTimestamp"), "callComponent/1"),
        (lambda d: d["callComponent"][1].update(agentReference="calltaker2"), "callComponent/1"),
    ]:
        broken = copy.deepcopy(doc)
        change(broken)
        errors = eido_errors(broken)
        assert errors and errors[0].startswith(where), errors
        with pytest.raises(ValidationError, match="not a valid EIDO"):
            validate_eido(broken)


def test_the_standards_sample_validates_and_imports() -> None:
    (doc,) = read_eido_documents(SAMPLE)
    assert eido_errors(doc) == []
    item = from_eido(doc)
    assert item.incident.source == "eido"
    assert item.incident.source_id == "urn:emergency:uid:incidentid:a56e556d871:bcf.state.pa.us"
    # callStartTimestamp 2021-04-30T14:40:00.0-04:00
    assert item.incident.received_at == datetime(2021, 4, 30, 18, 40, tzinfo=UTC)
    assert item.incident.category == "other"  # the sample carries no incident component
    # its locations are a civic address and a reference URL: no coordinates to read
    assert (item.incident.lon, item.incident.lat) == (None, None)
    assert item.agency == "idx.state.pa.us"
    parsed = read_eido(SAMPLE, load_taxonomy())
    assert parsed.reasons.isna().all() and len(parsed.incidents) == 1


def test_the_importer_rejects_invalid_and_repeated_documents(tmp_path: Path) -> None:
    good = to_eido(_full())
    bad = copy.deepcopy(good)
    bad.pop("agencyComponent")
    unreadable = copy.deepcopy(good)
    unreadable["locationComponent"][0]["locationByValue"] = "<presence"  # a string, not XML
    path = tmp_path / "in.eido.json"
    path.write_text(json.dumps([good, bad, good, unreadable]), encoding="utf-8")
    parsed = read_eido(path, load_taxonomy())
    assert parsed.reasons.tolist()[1:] == ["invalid_eido", "duplicate_in_file", "unreadable_eido"]
    assert from_frame(parsed.incidents) == [_full().incident]
    assert json.loads(parsed.raw["eido"][1]) == bad


def test_a_file_that_is_not_json_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="cannot read EIDO file"):
        read_eido_documents(path)


def test_pidf_point_reads_only_wgs84_points() -> None:
    assert read_pidf_point("<presence xmlns='urn:ietf:params:xml:ns:pidf'/>") is None
    with pytest.raises(DataError, match="not XML"):
        read_pidf_point("<presence")


def test_a_foreign_eido_uses_the_standard_elements() -> None:
    doc = to_eido(_full())
    doc["additionalDataComponent"] = [
        c for c in doc["additionalDataComponent"] if c["urlPurpose"] != CITYWATCH_DATA
    ]
    doc["callComponent"][0].pop("additionalDataReference")
    doc["incidentComponent"].pop("incidentCommonPriorityNumber")
    assert eido_errors(doc) == []
    inc = from_eido(doc).incident
    assert (inc.source, inc.source_id, inc.id) == ("eido", "nashville:2024-1", "nashville:2024-1")
    assert inc.priority == 2  # from the call's priorityIdentifier "high"
    assert inc.dispatched_at == T0 + timedelta(seconds=40)  # the dispatch component's time
    assert (inc.arrived_at, inc.cleared_at) == (None, None)  # EIDO 1.0 has no element for them


def test_live_detail_becomes_units_and_notes() -> None:
    detail = {
        "id": "live:abc",
        "category": "theft",
        "category_label": {"en": "Theft", "zh": "盗窃"},
        "priority": 3,
        "lon": -73.99,
        "lat": 40.73,
        "bureau": "PBMS",
        "station": "13",
        "zone": None,
        "status": "on_scene",
        "received_at": T0,
        "dispatched_at": T0 + timedelta(seconds=30),
        "arrived_at": None,
        "cleared_at": None,
        "caller_notes": "phone snatched",
        "created_by": "disp",
        "number": "MAN-2024-000042",
        "location_text": "1 Ave @ 110 St",
        "callers": [
            {
                "id": 1,
                "received_at": T0,
                "taken_by": "disp",
                "notes": "phone snatched",
                "location_text": "1 Ave @ 110 St",
                "lon": -73.99,
                "lat": 40.73,
                "original_incident_id": "live:abc",
            },
            {
                "id": 2,
                "received_at": T0 + timedelta(seconds=70),
                "taken_by": "disp2",
                "notes": "he ran into the park",
                "location_text": None,
                "lon": -73.9902,
                "lat": 40.7301,
                "original_incident_id": "live:def",
            },
        ],
        "cautions": [
            {
                "id": 7,
                "kind": "violent_person",
                "severity": "high",
                "text": "threatened officers before",
                "created_by": "admin",
                "created_at": T0 - timedelta(days=2),
                "expires_at": T0 + timedelta(days=28),
            }
        ],
        "assignments": [
            {
                "unit_id": "A13-1",
                "assigned_at": T0 + timedelta(seconds=30),
                "eta_s": 120.0,
                "en_route_at": None,
                "on_scene_at": T0 + timedelta(seconds=200),
                "ended_at": None,
                "outcome": None,
            },
        ],
        "timeline": [
            {"at": T0, "type": "incident.created", "unit_id": None, "actor": "disp", "data": {}},
            {
                "at": T0 + timedelta(seconds=30),
                "type": "assignment.created",
                "unit_id": "A13-1",
                "actor": "disp",
                "data": {"eta_s": 120.0},
            },
        ],
    }
    item = from_live(detail, agency="manhattan.citywatch.invalid")
    assert (item.incident.source, item.incident.source_id) == ("live", "abc")
    assert [n.text for n in item.notes] == [
        "phone snatched",
        "incident.created",
        'assignment.created unit=A13-1 {"eta_s": 120.0}',
    ]
    assert item.units[0].status == "On Scene"
    # the second caller (from the merged live:def) is a caller, not a note
    assert item.callers == (
        EidoCaller(
            T0 + timedelta(seconds=70),
            "disp2",
            "he ran into the park",
            None,
            -73.9902,
            40.7301,
            "live:def",
        ),
    )
    (caution,) = item.cautions
    assert caution.text == "threatened officers before"
    assert caution.expires_at == T0 + timedelta(days=28)
    doc = to_eido(item)
    assert eido_errors(doc) == []
    assert doc["incidentComponent"]["incidentTypeInternalText"] == "Theft"
    assert doc["incidentComponent"]["incidentStatusInternalText"] == ["on_scene"]
    assert (item.number, item.location_text) == ("MAN-2024-000042", "1 Ave @ 110 St")
    assert from_eido(doc) == item


# ---- property: any canonical record round-trips ---------------------------------------------

_TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12)
_OPT_TEXT = st.none() | _TEXT
_TIMES = st.datetimes(datetime(1970, 1, 2), datetime(2100, 1, 1), timezones=st.just(UTC))
_OPT_TIME = st.none() | _TIMES


@st.composite
def incidents(draw: st.DrawFn) -> Incident:
    source = draw(st.sampled_from(SOURCES))
    source_id = draw(_TEXT)
    point = draw(
        st.none()
        | st.tuples(st.floats(-180, 180, allow_nan=False), st.floats(-90, 90, allow_nan=False))
    )
    return Incident(
        id=draw(st.just(f"{source}:{source_id}") | _TEXT),
        source=source,
        source_id=source_id,
        received_at=draw(_TIMES),
        time_precision=draw(st.sampled_from(TIME_PRECISIONS)),
        category=draw(st.sampled_from(load_taxonomy().codes)),
        priority=draw(st.none() | st.integers(1, 5)),
        lon=None if point is None else point[0],
        lat=None if point is None else point[1],
        bureau=draw(_OPT_TEXT),
        station=draw(_OPT_TEXT),
        zone=draw(_OPT_TEXT),
        dispatched_at=draw(_OPT_TIME),
        arrived_at=draw(_OPT_TIME),
        cleared_at=draw(_OPT_TIME),
        disposition=draw(_OPT_TEXT),
        solved=draw(st.none() | st.booleans()),
    )


units = st.builds(
    EidoUnit,
    _TEXT,
    _TIMES,
    _OPT_TIME,
    _OPT_TIME,
    _OPT_TIME,
    _OPT_TEXT,
    st.none() | st.floats(0, 1e5, allow_nan=False),
)
notes = st.builds(EidoNote, st.text(max_size=30), _TIMES, _OPT_TEXT)
cautions = st.builds(
    EidoCaution, _TEXT, st.sampled_from(SEVERITIES), _TEXT, _OPT_TIME, _OPT_TEXT, _OPT_TIME
)


@st.composite
def callers(draw: st.DrawFn) -> EidoCaller:
    point = draw(
        st.none()
        | st.tuples(st.floats(-180, 180, allow_nan=False), st.floats(-90, 90, allow_nan=False))
    )
    return EidoCaller(
        received_at=draw(_TIMES),
        taken_by=draw(_OPT_TEXT),
        notes=draw(st.none() | st.text(max_size=30)),
        location_text=draw(_OPT_TEXT),
        lon=None if point is None else point[0],
        lat=None if point is None else point[1],
        original_incident_id=draw(_OPT_TEXT),
    )


merges = st.builds(EidoMerge, _TEXT, st.sampled_from(("REPLACING", "REPLACED", "SPLIT")), _TIMES)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(incidents())
def test_any_canonical_record_round_trips_through_a_valid_eido(incident: Incident) -> None:
    # through the canonical frame as the exporter does: the record the store would give
    (stored,) = from_frame(to_frame([incident]))
    doc = json.loads(json.dumps(to_eido(EidoIncident(stored))))
    assert eido_errors(doc) == []
    back = from_eido(doc).incident
    assert back == stored
    assert from_frame(to_frame([back])) == [stored]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    incidents(),
    st.lists(units, max_size=3),
    st.lists(notes, max_size=3),
    st.lists(cautions, max_size=2),
    st.lists(merges, max_size=2),
    st.none() | _TEXT,
    _OPT_TEXT,
    _OPT_TEXT,
    st.lists(callers(), max_size=3),
)
def test_any_live_incident_round_trips(
    incident: Incident,
    units_: list[EidoUnit],
    notes_: list[EidoNote],
    cautions_: list[EidoCaution],
    merges_: list[EidoMerge],
    status: str | None,
    number: str | None,
    location_text: str | None,
    callers_: list[EidoCaller],
) -> None:
    item = EidoIncident(
        incident,
        status,
        tuple(units_),
        tuple(notes_),
        tuple(cautions_),
        tuple(merges_),
        number=number,
        location_text=location_text,
        callers=tuple(callers_),
    )
    doc = json.loads(json.dumps(to_eido(item)))
    assert eido_errors(doc) == []
    assert from_eido(doc) == item


# ---- the bundled data -----------------------------------------------------------------------


def _bundled(path: Path, source: str, rows: int | None) -> pd.DataFrame:
    frame = read_source(path, source).incidents
    return frame if rows is None else frame.sample(min(rows, len(frame)), random_state=1)


@pytest.mark.parametrize(("path", "source"), BUNDLED, ids=lambda v: getattr(v, "name", v))
def test_bundled_incidents_export_valid_and_round_trip(
    path: Path, source: str, tmp_path: Path
) -> None:
    frame = _bundled(path, source, 300)
    out = tmp_path / "x.eido.json"
    assert write_eido_file(frame, out) == len(frame)
    parsed = read_eido(out, load_taxonomy())
    assert parsed.reasons.isna().all()
    assert from_frame(parsed.incidents) == from_frame(frame)


@pytest.mark.slow
# Every record of one whole file (16,255 shootings, about 30 s); the other files are sampled
# above (300 records each), since validating all 170,000 bundled records takes minutes.
@pytest.mark.parametrize(("path", "source"), BUNDLED[:1], ids=lambda v: getattr(v, "name", v))
def test_every_bundled_incident_exports_valid_and_round_trips(path: Path, source: str) -> None:
    frame = _bundled(path, source, None)
    docs = export_eido(frame)  # raises on the first invalid document
    assert [from_eido(d).incident for d in docs] == from_frame(frame)


# ---- CLI ------------------------------------------------------------------------------------


def test_cli_eido_export_import_round_trip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from citywatch.incidents.storage import load_incidents_frame
    from tests.helpers import run

    calls = tmp_path / "calls.csv"
    lines = (DATA / "nashville" / "calls_2024_partial.csv").read_bytes().splitlines(True)
    calls.write_bytes(b"".join(lines[:501]))
    db1, db2 = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    code, out, _ = run(
        ["incidents", "import", str(calls), "--source", "nashville", "--db", db1, "--json"],
        capsys,
    )
    assert code == 0 and json.loads(out)["imported"] == 500
    exported = tmp_path / "export.eido.json"  # the suffix alone selects EIDO
    code, out, _ = run(
        ["incidents", "export", "--db", db1, "--out", str(exported), "--json"], capsys
    )
    assert code == 0 and json.loads(out) == {"out": str(exported), "rows": 500}
    docs = json.loads(exported.read_text(encoding="utf-8"))
    assert len(docs) == 500 and all(eido_errors(d) == [] for d in docs[:50])
    code, out, _ = run(
        ["incidents", "import", str(exported), "--source", "eido", "--db", db2, "--json"], capsys
    )
    assert code == 0 and json.loads(out)["imported"] == 500
    pd.testing.assert_frame_equal(load_incidents_frame(db2), load_incidents_frame(db1))
    code, _, err = run(
        ["incidents", "export", "--eido", "--tz", "UTC", "--db", db1, "--out", str(exported)],
        capsys,
    )
    assert code == 2 and "Error: --tz and --format apply to the tables; EIDO times are UTC" in err


def test_cli_eido_errors_are_one_line_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A place that cannot be written (a folder, under a file) and a file that is not JSON:
    ``Error: ...``, exit 1, no traceback."""
    from tests.helpers import run

    db = f"sqlite:///{tmp_path / 'a.db'}"
    code, _, _ = run(["incidents", "import", str(SAMPLE), "--source", "eido", "--db", db], capsys)
    assert code == 0
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    for out in (tmp_path, blocker / "under.json"):
        code, _, err = run(["incidents", "export", "--eido", "--db", db, "--out", str(out)], capsys)
        assert code == 1, err
        assert err.strip().startswith(f"Error: cannot write EIDO file {out}"), err
        assert "Traceback" not in err
    bad = tmp_path / "bad.json"
    bad.write_text("{nope", encoding="utf-8")
    code, _, err = run(["incidents", "import", str(bad), "--source", "eido", "--db", db], capsys)
    assert code == 1 and err.strip().startswith("Error: cannot read EIDO file"), err
    assert "Traceback" not in err
