"""Near-repeat advisories in the live service: drawn from the city's own Knox table, stored,
audited, routed to the station, off by default and per category."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer
from sqlalchemy import text
from websockets.sync.client import connect

from citywatch.analytics.advisories import (
    ADVISORY_MIN_RATIO,
    AdvisoryConfig,
    NearRepeatAdvisor,
    next_refresh,
    refresh_due,
)
from citywatch.analytics.nearrepeat import near_repeat, near_repeat_window
from citywatch.api.app import _visible, create_app
from citywatch.api.settings import Settings
from citywatch.city import CityPack
from citywatch.dispatch.accounts import Principal, Role
from citywatch.forecast.pipeline import write_risk_geojson
from citywatch.forecast.surface import grid_surface
from citywatch.incidents.record import coerce_frame
from citywatch.incidents.storage import insert_incidents
from citywatch.routing import Router
from tests.api.conftest import Server, _pg_database, seed_users, start_server, stop_server

UNION_SQUARE = (-73.9903, 40.7359)
CONFIG = AdvisoryConfig(categories=("burglary",), iterations=99, schedule=False)


def _history(pack: CityPack, now: datetime) -> pd.DataFrame:
    """Burglaries of the last 300 days: 120 first events at road nodes, each followed by two
    near repeats 0-3 days later within 60 m (a real near-repeat pattern); thefts likewise."""
    rng = np.random.default_rng(7)
    lon, lat = pack.network.lon, pack.network.lat
    nodes = rng.choice(len(lon), size=120, replace=False)
    rows = []
    for k, node in enumerate(nodes):
        start = now - timedelta(days=float(rng.uniform(20, 300)))
        for j in range(3):
            dx, dy = (0.0, 0.0) if j == 0 else rng.uniform(-0.0005, 0.0005, 2)
            at = start + timedelta(days=0 if j == 0 else float(rng.uniform(0, 3)))
            rows.append((f"b{k}-{j}", at, lon[node] + dx, lat[node] + dy * 0.75))
    # the recent burglary next to Union Square that the live one repeats
    rows.append(("recent", now - timedelta(days=2), UNION_SQUARE[0] + 0.0003, UNION_SQUARE[1]))
    frame = pd.DataFrame(rows, columns=["source_id", "received_at", "lon", "lat"])
    # a near repeat off the shore would be left out of the city's table: keep the city's
    frame = frame[[pack.contains(x, y) for x, y in zip(frame["lon"], frame["lat"], strict=True)]]
    frame["received_at"] += pd.to_timedelta(np.arange(len(frame)), unit="s")  # no ties
    out = []
    for category in ("burglary", "theft"):
        f = frame.assign(
            id="seed:" + category + ":" + frame["source_id"],
            source="seed",
            source_id=category + ":" + frame["source_id"],
            category=category,
            time_precision="exact",
        )
        out.append(f)
    return coerce_frame(pd.concat(out, ignore_index=True))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def advised(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    manhattan: tuple[CityPack, Router],
) -> Iterator[tuple[Server, pd.DataFrame]]:
    pack, router = manhattan
    home = Path(tmp_path_factory.mktemp("advisories"))
    if request.param == "postgresql":
        databases = _pg_database()
        url = next(databases)
    else:
        databases, url = iter(()), f"sqlite:///{home / 'citywatch.db'}"
    (home / "forecasts").mkdir()
    settings = Settings(
        pack="manhattan", db_url=url, advisories=CONFIG, forecast_dir=str(home / "forecasts")
    )
    app = create_app(settings, pack=pack, router=router)
    history = _history(pack, datetime.now(UTC))
    engine = app.state.service.sessions.kw["bind"]
    with engine.begin() as conn:
        insert_incidents(conn, history)
    srv = start_server(app)
    seed_users(srv)
    yield srv, history
    stop_server(srv)
    app.state.service.sessions.kw["bind"].dispose()
    next(databases, None)  # drops the PostgreSQL database


def _refreshed(srv: Server) -> dict[str, Any]:
    r = srv.client("ana").post("/api/v1/near-repeat/refresh", json={"categories": ["burglary"]})
    assert r.status_code == 200, r.text
    return dict(r.json()["tables"][0])


def _burglary(srv: Server, user: str = "disp", category: str = "burglary") -> dict[str, Any]:
    lon, lat = UNION_SQUARE
    body = {"category": category, "location": {"lon": lon, "lat": lat}}
    r = srv.client(user).post("/api/v1/incidents", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_evidence_is_the_analytics_functions_output(advised: tuple[Server, pd.DataFrame]) -> None:
    srv, history = advised
    table = _refreshed(srv)
    pack = srv.app.state.service.pack
    burglaries = history[history["category"] == "burglary"].sort_values("received_at")
    x, y = Transformer.from_crs("EPSG:4326", pack.crs, always_xy=True).transform(
        burglaries["lon"].to_numpy(), burglaries["lat"].to_numpy()
    )
    local = burglaries["received_at"].dt.tz_convert(pack.timezone).dt.date
    days = np.array([(d - datetime(1970, 1, 1).date()).days for d in local])
    result = near_repeat(
        np.column_stack([x, y]), days, CONFIG.bands, iterations=99, seed=CONFIG.seed
    )
    assert table["events"] == len(burglaries) > 350
    assert table["table"]["observed"] == result.observed.tolist()
    assert table["table"]["p_value"] == result.p_value.tolist()
    stored = np.array(table["table"]["knox_ratio"], dtype=float)  # NaN travels as null
    np.testing.assert_allclose(stored, result.knox_ratio, equal_nan=True)
    window = near_repeat_window(result, min_ratio=ADVISORY_MIN_RATIO)
    assert window is not None
    assert table["window"] == {"kind": "near_repeat", **window.as_dict()}
    # the planted pattern: within 100 m and 7 days, significant at the smallest p of 99 runs
    assert window.distance_m == 100.0 and window.days == 7 and window.p_value == 0.01
    assert window.ratio > 1
    assert table["first_day"] == str(min(local)) and table["last_day"] == str(max(local))


def test_a_burglary_near_a_recent_one_raises_an_advisory(
    advised: tuple[Server, pd.DataFrame],
) -> None:
    srv, history = advised
    table = _refreshed(srv)
    token = srv.headers["off13"]["Authorization"].split()[1]
    with connect(f"{srv.ws_url}?access_token={token}") as ws:
        incident = _burglary(srv)
        while True:
            event = json.loads(ws.recv(timeout=20))
            if event["type"] == "advisory.created":
                break
    assert event["incident_id"] == incident["id"] and event["station"] == "13"
    assert event["bureau"] == "PBMS" and event["actor"] == "system"
    pushed = event["data"]
    assert pushed["radius_m"] == table["window"]["distance_m"] == 100.0
    assert pushed["days"] == 7 and pushed["p_value"] == table["window"]["p_value"]
    # the recent burglary 25 m east, two days before, is linked; nothing else is that close
    pack = srv.app.state.service.pack
    tr = Transformer.from_crs("EPSG:4326", pack.crs, always_xy=True)
    x0, y0 = tr.transform(*UNION_SQUARE)
    x1, y1 = tr.transform(UNION_SQUARE[0] + 0.0003, UNION_SQUARE[1])
    # Days apart on New York's calendar: 2 at most times of day, but the seed row lies 48 h
    # minus a few minutes back, so near local midnight the two dates are 1 or 3 apart.
    recent = history.loc[history["id"] == "seed:burglary:recent", "received_at"].iloc[0]
    live = datetime.fromisoformat(incident["received_at"])
    apart = (
        live.astimezone(ZoneInfo(pack.timezone)).date() - recent.tz_convert(pack.timezone).date()
    ).days
    assert pushed["linked"] == [
        {
            "incident_id": "seed:burglary:recent",
            "metres": round(float(np.hypot(x1 - x0, y1 - y0)), 1),
            "days": apart,
        }
    ]
    expires = datetime.fromisoformat(pushed["expires_at"])
    assert expires - datetime.fromisoformat(incident["received_at"]) == timedelta(days=7)

    # stored with its evidence, in the incident's timeline and the audit chain
    detail = srv.client("off13").get(f"/api/v1/advisories/{pushed['id']}").json()
    assert detail["evidence"]["id"] == table["id"]
    assert detail["evidence"]["table"] == table["table"]
    timeline = srv.client("disp").get(f"/api/v1/incidents/{incident['id']}").json()["timeline"]
    assert [e["type"] for e in timeline] == ["incident.created", "advisory.created"]
    engine = srv.app.state.service.sessions.kw["bind"]
    with engine.connect() as conn:
        audit = conn.execute(
            text("SELECT actor, entity, after FROM audit_log WHERE action = 'advisory.created'"
                 " AND entity_id = :id"), {"id": pushed["id"]}
        ).one()  # fmt: skip
        refresh = conn.execute(
            text("SELECT actor FROM audit_log WHERE action = 'near_repeat.refreshed'"
                 " AND entity_id = :id"), {"id": str(table["id"])}
        ).one()  # fmt: skip
    after = audit.after if isinstance(audit.after, dict) else json.loads(audit.after)
    assert (audit.actor, audit.entity, after["incident_id"]) == (
        "system",
        "advisory",
        incident["id"],
    )
    assert refresh.actor == "ana"

    # routed to station 13: its officers see it, station 1's do not
    assert _visible(Principal("off13", Role.STATION_OFFICER, "13"), event)
    assert _visible(Principal("offS", Role.STATION_OFFICER, "PBMS"), event)
    assert not _visible(Principal("off1", Role.STATION_OFFICER, "1"), event)
    ids13 = {a["id"] for a in srv.client("off13").get("/api/v1/advisories").json()}
    ids1 = {a["id"] for a in srv.client("off1").get("/api/v1/advisories").json()}
    assert pushed["id"] in ids13 and pushed["id"] not in ids1
    assert srv.client("off1").get(f"/api/v1/advisories/{pushed['id']}").status_code == 403
    layer = srv.client("disp").get("/api/v1/advisories/layer").json()
    mine = [f for f in layer["features"] if f["properties"]["id"] == pushed["id"]]
    assert mine[0]["geometry"]["coordinates"] == list(UNION_SQUARE)
    assert layer["settings"]["rule"] == {"p_value_max": 0.05, "knox_ratio_above": 1.0}


def test_a_disabled_category_raises_nothing(advised: tuple[Server, pd.DataFrame]) -> None:
    srv, history = advised
    # theft has the same planted pattern and a table, but its advisories are not enabled
    r = srv.client("admin").post("/api/v1/near-repeat/refresh", json={"categories": ["theft"]})
    assert r.json()["tables"][0]["window"]["distance_m"] == 100.0
    # the code itself, not the taxonomy's theft group (which holds burglary)
    assert r.json()["tables"][0]["events"] == int((history["category"] == "theft").sum())
    incident = _burglary(srv, category="theft")
    timeline = srv.client("disp").get(f"/api/v1/incidents/{incident['id']}").json()["timeline"]
    assert [e["type"] for e in timeline] == ["incident.created"]
    listed = srv.client("admin").get("/api/v1/advisories", params={"all": "true"}).json()
    assert incident["id"] not in {a["incident_id"] for a in listed}


def test_off_by_default(server: Server) -> None:
    settings = server.app.state.settings
    assert settings.advisories.categories == ()
    assert server.app.state.service.incident_hooks == ()
    incident = _burglary(server)
    timeline = server.client("disp").get(f"/api/v1/incidents/{incident['id']}").json()["timeline"]
    assert [e["type"] for e in timeline] == ["incident.created"]
    tables = server.client("ana").get("/api/v1/near-repeat/tables").json()
    assert tables["settings"]["categories"] == []


def test_roles(advised: tuple[Server, pd.DataFrame]) -> None:
    srv, _ = advised
    for user in ("disp", "off13"):
        r = srv.client(user).post("/api/v1/near-repeat/refresh", json={})
        assert r.status_code == 403, user
        assert r.json()["error"]["code"] == "forbidden"
    assert srv.client("dev-a").get("/api/v1/advisories").status_code == 403
    assert srv.client("dev-a").get("/api/v1/forecast/layer").status_code == 403
    assert srv.client().get("/api/v1/advisories").status_code == 401
    assert srv.client("ana").get("/api/v1/advisories").status_code == 200
    r = srv.client("admin").post("/api/v1/near-repeat/refresh", json={"categories": ["shooting"]})
    assert r.status_code == 422


def test_nightly_schedule_follows_the_local_calendar() -> None:
    # 03:00 New York: 08:00 UTC in winter; 2026-03-08 is the spring-forward day (07:00 UTC)
    now = datetime(2026, 3, 7, 9, 0, tzinfo=UTC)
    assert next_refresh(now, "America/New_York", 3) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert next_refresh(now, "America/New_York", 5) == datetime(2026, 3, 7, 10, 0, tzinfo=UTC)
    assert refresh_due(None, now, "America/New_York", 3)
    assert refresh_due(datetime(2026, 3, 7, 7, 59, tzinfo=UTC), now, "America/New_York", 3)
    assert not refresh_due(datetime(2026, 3, 7, 8, 0, tzinfo=UTC), now, "America/New_York", 3)


def test_settings_refuse_unknown_categories_and_travel_to_workers() -> None:
    with pytest.raises(Exception, match="not shooting"):
        AdvisoryConfig(categories=("shooting",))
    settings = Settings(pack="manhattan", advisories=CONFIG, forecast_dir="/tmp/f")
    os.environ["CITYWATCH_SERVE_SETTINGS"] = settings.to_env()
    try:
        again = Settings.from_env()
    finally:
        del os.environ["CITYWATCH_SERVE_SETTINGS"]
    assert again.advisories == CONFIG and again.forecast_dir == "/tmp/f"


def test_forecast_layer_is_the_newest_published_forecast(
    advised: tuple[Server, pd.DataFrame],
) -> None:
    srv, _ = advised
    folder = Path(srv.app.state.settings.forecast_dir)
    assert srv.client("disp").get("/api/v1/forecast/layer").status_code == 404
    pack = srv.app.state.service.pack
    to_m = Transformer.from_crs("EPSG:4326", pack.crs, always_xy=True)
    x0, y0 = to_m.transform(*UNION_SQUARE)
    points = np.column_stack([x0 + 250.0 * np.arange(10), np.full(10, y0)])
    surface = grid_surface(250.0, pack.crs, points=points)
    risk = np.arange(1.0, 11.0)
    write_risk_geojson(surface, risk * 0, folder / "old.geojson", {"predictor": "naive"})
    meta = {"predictor": "kde", "origin": "2026-11-30T00:00:00+00:00", "backtest": None}
    write_risk_geojson(surface, risk, folder / "new.geojson", meta)
    os.utime(folder / "old.geojson", (1, 1))
    doc = srv.client("off13").get("/api/v1/forecast/layer", params={"top": 3}).json()
    assert doc["file"] == "new.geojson" and doc["cells"] == 10
    assert doc["forecast"] == meta
    # the three riskiest cells: the last three squares east of Union Square
    assert sorted(f["properties"]["cell"] for f in doc["features"]) == [7, 8, 9]
    assert [f["properties"]["rank"] for f in doc["features"]] == [3, 2, 1]


def test_the_nightly_job_refreshes_only_what_missed_its_run(
    advised: tuple[Server, pd.DataFrame],
) -> None:
    srv, _ = advised
    advisor = srv.app.state.advisor
    _refreshed(srv)
    assert advisor.refresh_if_due() == []  # refreshed just now: nothing missed
    later = NearRepeatAdvisor(
        advisor.sessions, advisor.pack, advisor.config, lambda: datetime.now(UTC) + timedelta(2)
    )
    done = later.refresh_if_due()
    assert [t["category"] for t in done] == ["burglary"]  # the enabled category only
    assert done[0]["computed_by"] == "system"
