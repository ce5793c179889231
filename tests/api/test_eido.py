"""``GET /api/v1/incidents/{id}/eido``: a live incident as a valid EIDO, in the detail's scope."""

from __future__ import annotations

from citywatch.incidents.eido import from_eido
from citywatch.incidents.eido_schema import eido_errors
from tests.api.conftest import Server


def test_live_incident_as_eido(server: Server) -> None:
    admin, disp = server.client("admin"), server.client("disp")
    r = admin.post(
        "/api/v1/units", json={"id": "EIDO-1", "unit_type": "patrol_car", "station": "13"}
    )
    assert r.status_code == 201, r.text
    r = disp.post(
        "/api/v1/incidents",
        json={
            "category": "theft",
            "priority": 2,
            "location": {"lon": -73.9903, "lat": 40.7359},  # Union Square, precinct 13
            "caller_notes": "bag snatched by the fountain",
        },
    )
    assert r.status_code == 201, r.text
    incident = r.json()
    r = disp.post(f"/api/v1/incidents/{incident['id']}/assignments", json={"unit_id": "EIDO-1"})
    assert r.status_code == 201, r.text
    r = disp.get(f"/api/v1/incidents/{incident['id']}/eido")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert eido_errors(doc) == []
    item = from_eido(doc)
    assert item.incident.id == incident["id"] and item.incident.priority == 2
    assert item.incident.station == "13"
    assert [u.unit_id for u in item.units] == ["EIDO-1"]
    assert item.notes[0].text == "bag snatched by the fountain" and item.notes[0].author == "disp"
    assert any(n.text.startswith("assignment.created unit=EIDO-1") for n in item.notes)
    assert doc["issuingElementIdentification"] == "manhattan.citywatch.invalid"
    # the detail's scope: precinct 1's officer may not see precinct 13's incident
    assert server.client("off1").get(f"/api/v1/incidents/{incident['id']}/eido").status_code in (
        403,
        404,
    )
    assert server.client("off13").get(f"/api/v1/incidents/{incident['id']}/eido").status_code == 200
    assert disp.get("/api/v1/incidents/live:nope/eido").status_code == 404
    assert server.client().get(f"/api/v1/incidents/{incident['id']}/eido").status_code == 401
