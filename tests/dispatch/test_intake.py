"""The console over the live service: numbers, duplicates, merges, premise history, notes,
cautions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

import citywatch
from citywatch.city import CityPack
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.audit import verify_chain
from citywatch.dispatch.duplicates import (
    distance_m,
    evaluate_duplicates,
    find_duplicates,
    load_console_config,
    synthetic_calls,
)
from citywatch.dispatch.intake import ConsoleService
from citywatch.dispatch.service import DispatchService
from citywatch.errors import ConflictError, DataError, PermissionDeniedError, ValidationError
from citywatch.incidents.eido import from_eido
from citywatch.incidents.eido_schema import eido_errors
from citywatch.incidents.taxonomy import load_taxonomy
from citywatch.routing import Router
from citywatch.store.db import make_engine, session_factory, upgrade
from citywatch.store.dispatch_models import AuditRecord
from tests.dispatch.conftest import ADMIN, Clock, RecordingSink
from tests.helpers import run
from tests.store.databases import db_url, pg_url, sqlite_url  # noqa: F401 - fixtures

# Union Square (Precinct 13) and a point 80 m north of it.
HERE = (-73.9903, 40.7359)
NEAR = (-73.9903, 40.7366)


@pytest.fixture
def console(service: DispatchService) -> ConsoleService:
    return ConsoleService(service)


def test_numbers_are_per_city_per_year_and_sequential(
    console: ConsoleService, clock: Clock
) -> None:
    svc = console.service
    a, _ = svc.create_incident(ADMIN, category="theft", lon=HERE[0], lat=HERE[1])
    b, _ = svc.create_incident(ADMIN, category="theft", lon=NEAR[0], lat=NEAR[1])
    assert (a["number"], b["number"]) == ("MAN-2026-000001", "MAN-2026-000002")
    # New Year in New York is 05:00 UTC: a call at 04:59 UTC on 1 Jan 2027 is still 2026.
    clock.now = datetime(2027, 1, 1, 4, 59, tzinfo=UTC)
    c, _ = svc.create_incident(ADMIN, category="theft", lon=HERE[0], lat=HERE[1])
    clock.now = datetime(2027, 1, 1, 5, 1, tzinfo=UTC)
    d, _ = svc.create_incident(ADMIN, category="theft", lon=HERE[0], lat=HERE[1])
    assert (c["number"], d["number"]) == ("MAN-2026-000003", "MAN-2027-000001")
    listed = console.decorate(svc.list_incidents(ADMIN))
    assert sorted(i["number"] for i in listed) == [
        "MAN-2026-000001",
        "MAN-2026-000002",
        "MAN-2026-000003",
        "MAN-2027-000001",
    ]


def test_numbers_are_distinct_under_concurrency(
    manhattan: tuple[CityPack, Router],
    clock: Clock,
    db_url: str,  # noqa: F811 - the fixture
) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    svc = DispatchService(session_factory(engine), *manhattan, RecordingSink(), clock=clock)
    numbers: list[str] = []
    errors: list[BaseException] = []

    def take() -> None:
        try:
            for _ in range(5):
                inc, _ = svc.create_incident(ADMIN, category="theft", lon=HERE[0], lat=HERE[1])
                numbers.append(inc["number"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=take) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(numbers) == [f"MAN-2026-{n:06d}" for n in range(1, 31)]
    engine.dispose()


def test_duplicate_flagged_then_merged_keeps_callers_and_timelines(
    console: ConsoleService, clock: Clock
) -> None:
    svc = console.service
    first, _ = svc.create_incident(
        ADMIN, category="robbery", lon=HERE[0], lat=HERE[1], caller_notes="two men, knife"
    )
    clock.advance(240)
    check = console.check(ADMIN, lon=NEAR[0], lat=NEAR[1], category="assault")
    dups = check["duplicates"]["incidents"]
    assert [d["id"] for d in dups] == [first["id"]]
    assert dups[0]["distance_m"] == pytest.approx(distance_m(*NEAR, *HERE), abs=0.1)
    assert dups[0]["age_s"] == 240.0
    # incompatible category, too far, too late: no flag
    assert (
        console.check(ADMIN, lon=NEAR[0], lat=NEAR[1], category="traffic_accident")["duplicates"][
            "incidents"
        ]
        == []
    )
    assert (
        console.check(ADMIN, lon=-73.9903, lat=40.7400, category="assault")["duplicates"][
            "incidents"
        ]
        == []
    )
    second, _ = svc.create_incident(
        ADMIN, category="assault", lon=NEAR[0], lat=NEAR[1], caller_notes="a man was hurt"
    )
    clock.advance(60)
    merged = console.merge(ADMIN, first["id"], second["id"])
    assert merged["callers_moved"] == 1
    detail = console.detail(ADMIN, first["id"])
    assert [c["notes"] for c in detail["callers"]] == ["two men, knife", "a man was hurt"]
    assert [c["original_incident_id"] for c in detail["callers"]] == [first["id"], second["id"]]
    assert detail["merges"] == [
        {
            "incident_id": second["id"],
            "number": second["number"],
            "direction": "REPLACING",
            "at": clock.now,
        }
    ]
    own = [e["type"] for e in detail["timeline"] if e["incident_id"] == first["id"]]
    other = [e["type"] for e in detail["timeline"] if e["incident_id"] == second["id"]]
    assert own == ["incident.created", "incident.merged"]
    assert other == ["incident.created", "incident.status", "incident.merged"]
    dup = console.detail(ADMIN, second["id"])
    assert dup["status"] == "cancelled" and dup["merged_into"] == first["id"]
    assert dup["merges"][0]["direction"] == "REPLACED"
    # the merged one is no longer a duplicate candidate; a second merge is refused
    again = console.check(ADMIN, lon=NEAR[0], lat=NEAR[1], category="assault")
    assert [d["id"] for d in again["duplicates"]["incidents"]] == [first["id"]]
    with pytest.raises(ConflictError):
        console.merge(ADMIN, first["id"], second["id"])
    with svc.sessions() as s:
        assert verify_chain(s).ok
        actions = [r.action for r in s.scalars(select(AuditRecord).order_by(AuditRecord.seq))]
    assert actions.count("incident.merged") == 2


def test_merge_refuses_a_duplicate_with_units(console: ConsoleService) -> None:
    svc = console.service
    svc.create_unit(ADMIN, id="a", unit_type="patrol_car", station="13")
    first, _ = svc.create_incident(ADMIN, category="theft", lon=HERE[0], lat=HERE[1])
    second, _ = svc.create_incident(ADMIN, category="theft", lon=NEAR[0], lat=NEAR[1])
    svc.assign(ADMIN, second["id"], "a")
    with pytest.raises(ConflictError, match="release it"):
        console.merge(ADMIN, first["id"], second["id"])
    with pytest.raises(ValidationError):
        console.merge(ADMIN, first["id"], first["id"])


def test_premise_history_counts_earlier_incidents_within_radius_and_lookback(
    console: ConsoleService, clock: Clock
) -> None:
    svc = console.service
    cfg = console.config
    start = clock.now
    made = []
    # 3 near (0, 40, 80 m) now-ish, 1 far (300 m), 1 near but older than other's 90 days
    for dlat, days_ago in ((0.0, 10), (0.00036, 20), (0.00072, 30), (0.0027, 5), (0.0, 100)):
        clock.now = start - timedelta(days=days_ago)
        # received_at must be within a day of the clock: create at that time
        inc, _ = svc.create_incident(ADMIN, category="theft", lon=HERE[0], lat=HERE[1] + dlat)
        made.append(inc)
    clock.now = start
    theft = console.check(ADMIN, lon=HERE[0], lat=HERE[1], category="theft")["premise"]
    assert theft["lookback_days"] == cfg.premise_default_days == 365
    assert theft["count"] == 4  # the 300 m one is outside 100 m
    other = console.check(ADMIN, lon=HERE[0], lat=HERE[1], category="other")["premise"]
    assert other["lookback_days"] == 90
    assert other["count"] == 3
    assert [i["id"] for i in other["incidents"]] == [made[0]["id"], made[1]["id"], made[2]["id"]]
    brute = [
        i
        for i in made
        if distance_m(HERE[0], HERE[1], i["lon"], i["lat"]) <= cfg.premise_radius_m
        and (start - i["received_at"]).days <= 90
    ]
    assert len(brute) == other["count"]


def test_duplicates_and_premise_share_scope_exclusion_and_their_own_windows(
    console: ConsoleService, clock: Clock
) -> None:
    svc, start = console.service, clock.now
    made = {}
    for name, minutes in (("old", -40), ("now", 0), ("late", 10)):
        clock.now = start + timedelta(minutes=minutes)
        made[name], _ = svc.create_incident(ADMIN, category="assault", lon=HERE[0], lat=HERE[1])
    clock.now = start

    def seen(who: Principal, exclude: str | None = None) -> tuple[list[str], list[str]]:
        got = console.check(who, lon=NEAR[0], lat=NEAR[1], category="assault", exclude=exclude)
        dups = sorted(i["id"] for i in got["duplicates"]["incidents"])
        return dups, sorted(i["id"] for i in got["premise"]["incidents"])

    ids = {name: inc["id"] for name, inc in made.items()}
    # Duplicates: within 30 min either side (a call entered late); premise: up to now.
    assert seen(ADMIN) == (sorted([ids["now"], ids["late"]]), sorted([ids["old"], ids["now"]]))
    assert seen(ADMIN, exclude=ids["now"]) == ([ids["late"]], [ids["old"]])
    here = Principal("o13", Role.STATION_OFFICER, "13")
    assert seen(here) == seen(ADMIN)
    assert seen(Principal("o25", Role.STATION_OFFICER, "25")) == ([], [])


def test_notes_and_cautions_are_audited_and_reach_units(
    console: ConsoleService, clock: Clock
) -> None:
    svc = console.service
    svc.create_unit(ADMIN, id="a", unit_type="patrol_car", station="13")
    inc, _ = svc.create_incident(ADMIN, category="assault", lon=HERE[0], lat=HERE[1])
    note = console.add_note(ADMIN, inc["id"], "caller calls back: suspect left north")
    assert (note["author"], note["at"]) == ("chief", clock.now)
    caution = console.create_caution(
        ADMIN,
        lon=NEAR[0],
        lat=NEAR[1],
        kind="dangerous_animal",
        severity="high",
        text="pit bull in the yard",
        radius_m=100,
        expires_at=clock.now + timedelta(days=1),
    )
    console.create_caution(
        ADMIN, lon=-73.98, lat=40.75, kind="weapons", severity="highest", text="far away"
    )
    at_intake = console.check(ADMIN, lon=HERE[0], lat=HERE[1], category="assault")["cautions"]
    assert [c["id"] for c in at_intake] == [caution["id"]]
    svc.assign(ADMIN, inc["id"], "a")
    device = Principal("car-a", Role.UNIT_DEVICE, unit_id="a")
    seen = console.unit_cautions(device, "a")
    assert [c["text"] for c in seen["cautions"]] == ["pit bull in the yard"]
    with pytest.raises(PermissionDeniedError):
        console.unit_cautions(Principal("car-b", Role.UNIT_DEVICE, unit_id="b"), "a")
    detail = console.detail(ADMIN, inc["id"])
    assert [n["text"] for n in detail["notes"]] == ["caller calls back: suspect left north"]
    assert [c["id"] for c in detail["cautions"]] == [caution["id"]]
    clock.advance(86_401)  # expired
    assert console.check(ADMIN, lon=HERE[0], lat=HERE[1], category="assault")["cautions"] == []
    with pytest.raises(ValidationError, match="kind"):
        console.create_caution(ADMIN, lon=HERE[0], lat=HERE[1], kind="x", severity="high", text="t")
    with pytest.raises(PermissionDeniedError):
        console.add_note(Principal("ana", Role.ANALYST), inc["id"], "no")
    revoked = console.revoke_caution(ADMIN, 2)
    assert revoked["revoked_at"] == clock.now
    with svc.sessions() as s:
        actions = [r.action for r in s.scalars(select(AuditRecord).order_by(AuditRecord.seq))]
        assert verify_chain(s).ok
    for action in ("incident.note", "caution.created", "caution.revoked"):
        assert action in actions


def test_importing_the_service_reads_no_console_config() -> None:
    """console.toml is read when a service is made, not when a module is imported (a CLI
    command that never dispatches does not parse it; a bad file fails where it is used)."""
    probe = "\n".join(
        [
            "import tomllib",
            "texts = []",
            "loads = tomllib.loads",
            "tomllib.loads = lambda text, **kw: texts.append(text) or loads(text, **kw)",
            "import citywatch.api.app, citywatch.dispatch.intake",
            "from citywatch.dispatch.duplicates import load_console_config",
            "imported = sum('[duplicates]' in t for t in texts)",
            "load_console_config()",
            "print(imported, sum('[duplicates]' in t for t in texts))",
        ]
    )
    src = str(Path(citywatch.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.split() == ["0", "1"]  # none at import; the probe sees a real read


def _bundled_console() -> str:
    return resources.files("citywatch.dispatch").joinpath("data/console.toml").read_text("utf-8")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("[numbers]", "[numbers", 1), r"cannot read the console config"),
        (lambda t: t[: t.index("[cautions]")], r"console\.toml: missing key 'cautions'"),
        (
            lambda t: t.replace("prefix = {", 'prefix = "MAN"\nold = {', 1),
            r"\[numbers\]: unknown key\(s\) old",
        ),
        (
            lambda t: t.replace("prefix = {", 'prefix = "MAN"\n#', 1),
            r"console\.toml: invalid console config",
        ),
        (lambda t: t.replace("window_min = 30.0", "window_min = 0"), r"must be positive"),
    ],
)
def test_a_bad_console_config_is_a_data_error_naming_the_file(
    tmp_path: Path, edit: Callable[[str], str], message: str
) -> None:
    path = tmp_path / "console.toml"
    path.write_text(edit(_bundled_console()), encoding="utf-8")
    with pytest.raises(DataError, match=message) as bad:
        load_console_config(path)
    assert str(path) in bad.value.message
    with pytest.raises(DataError, match=str(tmp_path / "absent.toml")):
        load_console_config(tmp_path / "absent.toml")


def test_the_service_takes_a_deployments_console_config(
    manhattan: tuple[CityPack, Router], clock: Clock, tmp_path: Path
) -> None:
    path = tmp_path / "console.toml"
    path.write_text(_bundled_console().replace('manhattan = "MAN"', 'manhattan = "NYC"'), "utf-8")
    engine = make_engine(f"sqlite:///{tmp_path / 'd.db'}")
    upgrade(engine)
    svc = DispatchService(
        session_factory(engine),
        *manhattan,
        RecordingSink(),
        console=load_console_config(path),
        clock=clock,
    )
    inc, _ = svc.create_incident(ADMIN, category="theft", lon=HERE[0], lat=HERE[1])
    assert inc["number"] == "NYC-2026-000001"
    assert ConsoleService(svc).config.prefix("manhattan") == "NYC"
    engine.dispose()


def test_find_duplicates_equals_brute_force() -> None:
    tax = load_taxonomy()
    cfg = load_console_config()
    rng = np.random.default_rng(5)
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    cats = ["robbery", "assault", "theft", "traffic_accident", "hazard", "burglary"]
    active = [
        (
            f"i{k}",
            -73.99 + float(rng.normal(0, 0.002)),
            40.74 + float(rng.normal(0, 0.002)),
            str(rng.choice(cats)),
            t0 + timedelta(minutes=float(rng.uniform(-60, 0))),
        )
        for k in range(300)
    ]
    call = (-73.99, 40.74, "robbery", t0)
    got = [c.incident_id for c in find_duplicates(call, active, cfg, tax)]
    brute = sorted(
        (distance_m(-73.99, 40.74, lo, la), iid)
        for iid, lo, la, cat, at in active
        if distance_m(-73.99, 40.74, lo, la) <= 150
        and (t0 - at) <= timedelta(minutes=30)
        and (cat == "robbery" or cat == "assault" or cat in ("theft", "burglary"))
    )
    assert got == [iid for _, iid in brute]
    assert len(got) > 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_duplicate_precision_and_recall_on_synthetic_multi_caller_incidents(
    manhattan: tuple[CityPack, Router], seed: int
) -> None:
    """SYNTHETIC: 1,500 incidents a day over Manhattan's road nodes, 0.8 extra callers each."""
    pack, _ = manhattan
    tax = load_taxonomy()
    cfg = load_console_config()
    points = np.column_stack((pack.network.lon, pack.network.lat))
    cats = [
        "robbery",
        "assault",
        "shooting",
        "burglary",
        "theft",
        "traffic_accident",
        "disturbance",
        "suspicious",
        "mental_health",
        "hazard",
    ]
    calls = synthetic_calls(
        points,
        cats,
        start=datetime(2026, 3, 2, tzinfo=UTC),
        incidents=1500,
        hours=24,
        seed=seed,
        taxonomy=tax,
    )
    result = evaluate_duplicates(calls, cfg, tax)
    truth = len(calls) - len({c.incident for c in calls})
    assert result["duplicates"] == truth
    assert result["true_positives"] + result["false_negatives"] == truth
    assert result["precision"] >= 0.95
    assert result["recall"] >= 0.95


def test_cli_eido_export_carries_notes_callers_and_merges(
    tmp_path: Path,
    manhattan: tuple[CityPack, Router],
    clock: Clock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = f"sqlite:///{tmp_path / 'dispatch.db'}"
    engine = make_engine(db)
    upgrade(engine)
    svc = DispatchService(session_factory(engine), *manhattan, RecordingSink(), clock=clock)
    console = ConsoleService(svc)
    first, _ = svc.create_incident(
        ADMIN, category="robbery", lon=HERE[0], lat=HERE[1], location_text="Broadway @ E 14 St"
    )
    second, _ = svc.create_incident(
        ADMIN, category="robbery", lon=NEAR[0], lat=NEAR[1], caller_notes="second caller"
    )
    console.add_note(ADMIN, first["id"], "units told to approach from the north")
    console.merge(ADMIN, first["id"], second["id"])
    engine.dispose()
    out = tmp_path / "live.eido.json"
    code, _, _ = run(["incidents", "export", "--db", db, "--out", str(out), "--json"], capsys)
    assert code == 0
    docs = {from_eido(d).incident.id: d for d in json.loads(out.read_text())}
    assert all(eido_errors(d) == [] for d in docs.values())
    kept, dup = from_eido(docs[first["id"]]), from_eido(docs[second["id"]])
    # the console's number and typed address travel too (as GET /incidents/{id}/eido has them)
    assert (kept.number, kept.location_text) == (first["number"], "Broadway @ E 14 St")
    assert (dup.number, dup.location_text) == (second["number"], None)
    assert [(m.incident_id, m.direction) for m in kept.merges] == [(second["id"], "REPLACING")]
    assert [(m.incident_id, m.direction) for m in dup.merges] == [(first["id"], "REPLACED")]
    texts = [n.text for n in kept.notes]
    assert "units told to approach from the north" in texts
    # the second caller is a further call component: its notes, its location, its incident
    (caller,) = kept.callers
    assert (caller.notes, caller.original_incident_id, caller.taken_by) == (
        "second caller",
        second["id"],
        ADMIN.username,
    )
    assert (caller.lon, caller.lat, caller.location_text) == (NEAR[0], NEAR[1], None)
    assert not any("second caller" in t for t in texts)
