"""The console's REST routes on a real server: numbers, intake check, merge, notes, cautions,
EIDO export of a merged incident, geocoding on a pack without street names."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from citywatch.api.app import create_app
from citywatch.api.settings import Settings
from citywatch.city import CityPack, load_pack
from citywatch.incidents.eido import from_eido
from citywatch.incidents.eido_schema import eido_errors
from citywatch.routing import Router
from tests.api.conftest import Server, seed_users, start_server, stop_server


def _node_near(pack: CityPack, lon: float, lat: float) -> tuple[float, float]:
    i = int(np.argmin((pack.network.lon - lon) ** 2 + (pack.network.lat - lat) ** 2))
    return float(pack.network.lon[i]), float(pack.network.lat[i])


def test_call_flagged_merged_and_exported(
    server: Server, manhattan: tuple[CityPack, Router]
) -> None:
    pack, _ = manhattan
    # Inwood (precinct 34): no other test takes calls there.
    lon, lat = _node_near(pack, -73.9205, 40.8680)
    disp, admin = server.client("disp"), server.client("admin")
    r = disp.post(
        "/api/v1/incidents",
        json={
            "category": "robbery",
            "location": {"lon": lon, "lat": lat},
            "caller_notes": "phone taken at knife point",
            "location_text": "Broadway & W 207 St",
        },
    )
    assert r.status_code == 201, r.text
    first = r.json()
    assert re.fullmatch(r"MAN-20\d\d-\d{6}", first["number"]), first["number"]
    assert first["location_text"] == "Broadway & W 207 St"
    r = disp.get(
        "/api/v1/intake/check",
        params={"lon": lon + 0.0003, "lat": lat, "category": "assault"},
    )
    assert r.status_code == 200, r.text
    check = r.json()
    assert [d["id"] for d in check["duplicates"]["incidents"]] == [first["id"]]
    assert check["duplicates"]["incidents"][0]["number"] == first["number"]
    assert check["premise"]["count"] >= 1
    r = disp.get("/api/v1/intake/recommend", params={"lon": lon, "lat": lat, "category": "robbery"})
    assert r.status_code == 200, r.text
    assert r.json()["incident_id"] is None and "candidates" in r.json()
    r = disp.post(
        "/api/v1/incidents",
        json={
            "category": "assault",
            "location": {"lon": lon + 0.0003, "lat": lat},
            "caller_notes": "man hurt outside the bodega",
        },
    )
    second = r.json()
    r = disp.post(f"/api/v1/incidents/{first['id']}/merge", json={"duplicate_id": second["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["callers_moved"] == 1
    r = disp.post(f"/api/v1/incidents/{first['id']}/notes", json={"text": "suspect fled north"})
    assert r.status_code == 201 and r.json()["author"] == "disp"
    r = admin.post(
        "/api/v1/cautions",
        json={
            "location": {"lon": lon, "lat": lat},
            "kind": "violent_person",
            "severity": "high",
            "text": "resident threatened officers before",
            "radius_m": 60,
            "expires_at": "2099-06-30T12:00:00+00:00",
        },
    )
    assert r.status_code == 201, r.text
    caution = r.json()
    detail = disp.get(f"/api/v1/incidents/{first['id']}").json()
    assert len(detail["callers"]) == 2 and detail["merges"][0]["direction"] == "REPLACING"
    assert [n["text"] for n in detail["notes"]] == ["suspect fled north"]
    assert [c["id"] for c in detail["cautions"]] == [caution["id"]]
    listed = {i["id"]: i for i in disp.get("/api/v1/incidents?limit=1000").json()}
    assert listed[second["id"]]["merged_into"] == first["id"]
    assert listed[second["id"]]["status"] == "cancelled"
    doc = disp.get(f"/api/v1/incidents/{first['id']}/eido").json()
    assert eido_errors(doc) == []
    item = from_eido(doc)
    assert (item.number, item.location_text) == (first["number"], "Broadway & W 207 St")
    assert [(m.incident_id, m.direction) for m in item.merges] == [(second["id"], "REPLACING")]
    assert [(c.kind, c.severity, c.text, c.expires_at) for c in item.cautions] == [
        (
            "violent_person",
            "high",
            "resident threatened officers before",
            datetime(2099, 6, 30, 12, tzinfo=UTC),
        )
    ]
    # the second caller is a call component of its own, not a note
    (caller,) = item.callers
    assert (caller.notes, caller.taken_by, caller.original_incident_id) == (
        "man hurt outside the bodega",
        "disp",
        second["id"],
    )
    assert (caller.lon, caller.lat) == (lon + 0.0003, lat)
    assert caller.received_at == datetime.fromisoformat(detail["callers"][1]["received_at"])
    assert not any(n.text.startswith("caller:") for n in item.notes)
    assert any(n.text == "suspect fled north" and n.author == "disp" for n in item.notes)
    dup_doc = disp.get(f"/api/v1/incidents/{second['id']}/eido").json()
    assert eido_errors(dup_doc) == []
    assert [(m.incident_id, m.direction) for m in from_eido(dup_doc).merges] == [
        (first["id"], "REPLACED")
    ]
    # scope and roles
    assert (
        server.client("ana")
        .post(f"/api/v1/incidents/{first['id']}/notes", json={"text": "x"})
        .status_code
        == 403
    )
    assert (
        server.client("off1")
        .get("/api/v1/intake/check", params={"lon": lon, "lat": lat, "category": "assault"})
        .json()["duplicates"]["incidents"]
        == []
    )
    # may_revoke: the page offers Revoke only to whom the server lets revoke it
    assert [c["may_revoke"] for c in detail["cautions"]] == [True]
    at = {"lon": lon, "lat": lat}
    for user, may in (("admin", True), ("disp", True), ("ana", False), ("off1", False)):
        listed_here = server.client(user).get("/api/v1/cautions", params=at).json()
        assert [(c["id"], c["may_revoke"]) for c in listed_here] == [(caution["id"], may)], user
    assert server.client("off1").post(f"/api/v1/cautions/{caution['id']}/revoke").status_code == 403
    r = admin.post(f"/api/v1/cautions/{caution['id']}/revoke")
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    assert admin.post(f"/api/v1/cautions/{caution['id']}/revoke").status_code == 409


def test_manhattan_has_no_street_names_so_geocoding_says_so(server: Server) -> None:
    disp = server.client("disp")
    config = disp.get("/api/v1/intake/config").json()
    assert config["has_names"] is False
    assert {"code": "robbery", "en": "Robbery", "zh": "抢劫", "priority": 1, "parent": None} in (
        config["categories"]
    )
    r = disp.get("/api/v1/geocode", params={"q": "1 Ave @ 110 St"})
    assert r.status_code == 200
    assert r.json()["has_names"] is False and r.json()["candidates"] == []
    assert r.json()["streets"] == 0
    coords = disp.get("/api/v1/geocode", params={"q": "40.7359, -73.9903"}).json()
    assert coords["candidates"][0]["kind"] == "coordinates"
    assert (coords["candidates"][0]["lon"], coords["candidates"][0]["lat"]) == (-73.9903, 40.7359)
    assert disp.get("/api/v1/geocode", params={"q": ""}).status_code == 422


def test_the_street_index_is_built_at_start_not_by_the_first_geocode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service builds the geocoder's street index in its start-up (like the router's
    graphs), so the first geocode finds it ready: no request builds it."""
    from citywatch.city import geocode

    monkeypatch.setattr(geocode, "_CACHE", {})  # no index left by an earlier test
    builds: list[int] = []
    build = geocode.Geocoder.from_network.__func__  # type: ignore[attr-defined]

    def counted(cls: type[geocode.Geocoder], network: object) -> geocode.Geocoder:
        builds.append(id(network))
        return build(cls, network)  # type: ignore[no-any-return]

    monkeypatch.setattr(geocode.Geocoder, "from_network", classmethod(counted))
    pack = load_pack("shenzhen_futian")
    app = create_app(
        Settings(pack="shenzhen_futian", db_url=f"sqlite:///{tmp_path / 'c.db'}"), pack=pack
    )
    assert builds == []  # building the app does not build it either: start-up does
    srv = start_server(app)
    try:
        assert builds == [id(pack.network)]  # built once, during start-up
        seed_users(srv)
        r = srv.client("disp").get("/api/v1/geocode", params={"q": "深南大道 / 金田路"})
        assert r.status_code == 200, r.text
        assert r.json()["has_names"] and r.json()["candidates"]
        assert builds == [id(pack.network)]  # the geocode used the index built at start
    finally:
        stop_server(srv)
