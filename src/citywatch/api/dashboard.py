"""HTTP routes that feed the command-centre dashboard, and the hook that installs them.

``install(app)`` is called by :func:`citywatch.api.app.create_app`; it adds

* ``GET /api/v1/dashboard/config`` (public): the city's name, time zone, bounding box, credits,
  whether the service runs in demo mode and whether a simulated feed is running, the KPI
  thresholds and the unit and incident lifecycles (status -> statuses allowed next);
* ``GET /api/v1/dashboard/layers`` (public): the pack's map layers as GeoJSON
  (:func:`citywatch.api.layers.pack_layers`), gzip-compressed when the client accepts it;
* ``GET /api/v1/dashboard/summary`` (authenticated): the KPI tiles and charts for today and
  this week in the city's time zone, within the caller's scope;
* ``GET /api/v1/dashboard/route`` (authenticated): the road route of a unit to an incident;
* ``/vendor/leaflet/`` : Leaflet's files, served from the ``xstatic-leaflet`` package.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import xstatic.pkg.leaflet as leaflet
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.staticfiles import StaticFiles

from citywatch.api.layers import local_windows, pack_config, pack_layers
from citywatch.api.routes import Service
from citywatch.api.security import CurrentUser
from citywatch.city import CityPack
from citywatch.dispatch.lifecycle import INCIDENT_LIFECYCLE, UNIT_ASSIGNED, UNIT_LIFECYCLE

__all__ = ["LEAFLET_URL", "dashboard_router", "extend_lifespan", "install"]

#: Where the browser finds leaflet.js and leaflet.css.
LEAFLET_URL = "/vendor/leaflet"

dashboard_router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])


_LAYERS: dict[Path, tuple[bytes, bytes]] = {}


def _layers_bytes(pack: CityPack) -> tuple[bytes, bytes]:
    # The layers never change while the service runs: build and compress them once per pack.
    if pack.path not in _LAYERS:
        raw = json.dumps(pack_layers(pack), ensure_ascii=False, separators=(",", ":")).encode()
        _LAYERS[pack.path] = (raw, gzip.compress(raw, compresslevel=6))
    return _LAYERS[pack.path]


@dashboard_router.get("/config")
def config(request: Request, service: Service) -> dict[str, Any]:
    """The city and the service mode (no authentication: it is shown on the login screen)."""
    feed = getattr(request.app.state, "feed", None)
    return {
        **pack_config(service.pack),
        "demo": bool(request.app.state.settings.demo),
        "feed": None if feed is None else feed.describe(),
        "thresholds_s": list(request.app.state.settings.kpi_thresholds_s),
        # The allowed status changes, so that the client never keeps its own copy of the rules.
        "lifecycles": {
            "incident": INCIDENT_LIFECYCLE.as_dict(),
            "unit": UNIT_LIFECYCLE.as_dict(),
            "unit_assigned": sorted(UNIT_ASSIGNED),
        },
    }


@dashboard_router.get("/layers")
def layers(request: Request, service: Service) -> Response:
    """Roads, jurisdictions, stations and places of the pack as GeoJSON (public city data)."""
    raw, packed = _layers_bytes(service.pack)
    headers = {"Cache-Control": "public, max-age=3600", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(packed, media_type="application/json", headers=headers)
    return Response(raw, media_type="application/json", headers=headers)


def _only_group(kpis: dict[str, Any]) -> dict[str, Any]:
    group: dict[str, Any] = kpis["groups"][0]
    return {k: v for k, v in group.items() if k != "group"}


@dashboard_router.get("/summary")
def summary(request: Request, who: CurrentUser, service: Service) -> dict[str, Any]:
    """KPI tiles and charts: today and this week (local calendar), by station and by hour.

    ``today``/``week``: incidents, shares on scene within the thresholds, response p50/p90.
    ``by_station``: today's incidents and the current available / on-street units of every
    station in scope.  ``by_hour``: this week's incidents by local hour of the call (24 values).
    ``units``: available and on-street units, and on-street units per km².
    """
    thresholds = tuple(request.app.state.settings.kpi_thresholds_s)
    now = service.clock()
    windows = local_windows(now, service.pack.timezone)
    # The KPI windows are half-open; stretch the end so that a call received right now counts.
    end = now + timedelta(milliseconds=1)
    t0, w0 = windows["today"][0], windows["week"][0]
    today = service.kpis(who, start=t0, end=end, thresholds_s=thresholds)
    week = service.kpis(who, start=w0, end=end, thresholds_s=thresholds)
    stations = service.kpis(who, start=t0, end=end, by="station", thresholds_s=thresholds)
    hours = service.kpis(who, start=w0, end=end, by="hour", thresholds_s=thresholds)
    per_station = {g["group"]: g["incidents"] for g in stations["groups"]}
    by_hour = [0] * 24
    for g in hours["groups"]:
        by_hour[int(g["group"])] = int(g["incidents"])
    coverage = today["units"]
    return {
        "now": now,
        "timezone": service.pack.timezone,
        "thresholds_s": list(thresholds),
        "today": {"from": t0, **_only_group(today)},
        "week": {"from": w0, **_only_group(week)},
        "by_station": [
            {"station": sid, "incidents": int(per_station.get(sid, 0)), **row}
            for sid, row in coverage["by_station"].items()
        ],
        "by_hour": by_hour,
        "units": {k: v for k, v in coverage.items() if k != "by_station"},
    }


@dashboard_router.get("/route")
def route(
    who: CurrentUser,
    service: Service,
    incident_id: Annotated[str, Query(min_length=1)],
    unit_id: Annotated[str, Query(min_length=1)],
) -> dict[str, Any]:
    """The fastest road route of a unit (from where it is located now) to an incident."""
    incident = service.get_incident(who, incident_id)
    unit = service.get_unit(who, unit_id)
    origin = (unit["located"]["lon"], unit["located"]["lat"])
    r = service.router.route(origin, (incident["lon"], incident["lat"]), unit["mode"])
    return {
        "incident_id": incident_id,
        "unit_id": unit_id,
        "mode": unit["mode"],
        "seconds": r.seconds,
        "metres": r.metres,
        "coords": [[round(x, 6), round(y, 6)] for x, y in r.coords],
    }


def install(app: FastAPI) -> None:
    """Add the dashboard's routes and Leaflet's files to the service application.

    Parameters
    ----------
    app : fastapi.FastAPI
        The application built by :func:`citywatch.api.app.create_app` (before it mounts the
        dashboard's static files at ``/``, which must come last).
    """
    app.include_router(dashboard_router)
    app.mount(LEAFLET_URL, StaticFiles(directory=leaflet.BASE_DIR), name="leaflet")


def extend_lifespan(
    app: FastAPI, extra: Callable[[FastAPI], AbstractAsyncContextManager[None]]
) -> None:
    """Run ``extra(app)`` inside the application's lifespan: entered after its start-up (the
    event bus is listening), left before its shutdown, whatever stops the server.

    Parameters
    ----------
    app : fastapi.FastAPI
        The application.
    extra : callable
        Returns an async context manager (e.g. a function decorated with
        :func:`contextlib.asynccontextmanager`).
    """
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with inner(a) as state, extra(a):
            yield state

    app.router.lifespan_context = lifespan


def run_while_serving(
    app: FastAPI, work: Callable[[], Coroutine[Any, Any, None]], name: str
) -> None:
    """Run ``work()`` as a task for as long as the application serves (see
    :func:`extend_lifespan`); it is cancelled, and awaited, when the server stops.

    Parameters
    ----------
    app : fastapi.FastAPI
        The application.
    work : callable
        Makes the coroutine to run (called once, at start-up).
    name : str
        The task's name (for debugging).
    """

    @asynccontextmanager
    async def running(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(work(), name=name)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    extend_lifespan(app, running)
