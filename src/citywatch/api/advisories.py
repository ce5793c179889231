"""Near-repeat advisories and the forecast layer: routes, the incident hook, the nightly job.

``install(app)`` (called by :func:`citywatch.api.app.create_app`) builds the
:class:`~citywatch.analytics.advisories.NearRepeatAdvisor` of the served pack, hands its
``on_incident`` to the dispatch service (run inside the transaction of every new incident), adds
the routes below and, when a category is enabled and ``schedule`` is on, runs the nightly
refresh of the Knox tables inside the service.

* ``GET /api/v1/advisories``: unexpired advisories in the caller's scope (``?all=true``: every);
* ``GET /api/v1/advisories/layer``: the same as GeoJSON points with ``radius_m`` (circles);
* ``GET /api/v1/advisories/{id}``: one advisory with its evidence (table, p-values, dates);
* ``GET /api/v1/near-repeat/tables``: the settings and the newest table of each category;
* ``POST /api/v1/near-repeat/refresh``: recompute now (admin, commander, analyst; audited);
* ``GET /api/v1/forecast/layer``: the newest ``forecast predict --geojson`` output of
  ``settings.forecast_dir`` with its predictor, period and backtest hit rate / PAI.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from citywatch.analytics.advisories import NearRepeatAdvisor, next_refresh
from citywatch.api.dashboard import run_while_serving
from citywatch.api.security import CurrentUser
from citywatch.dispatch.accounts import Role
from citywatch.errors import DataError, NotFoundError, PermissionDeniedError

__all__ = ["install", "router"]

log = logging.getLogger("citywatch.api.advisories")

router = APIRouter(prefix="/api/v1")


def get_advisor(request: Request) -> NearRepeatAdvisor:
    """FastAPI dependency: the advisor of the served pack."""
    advisor: NearRepeatAdvisor = request.app.state.advisor
    return advisor


Advisor = Annotated[NearRepeatAdvisor, Depends(get_advisor)]


class RefreshIn(BaseModel):
    """Which tables to recompute (default: the enabled categories)."""

    model_config = ConfigDict(extra="forbid")

    categories: list[str] | None = Field(default=None, max_length=3)


@router.get("/advisories", tags=["advisories"])
def list_advisories(
    who: CurrentUser,
    advisor: Advisor,
    all_: Annotated[bool, Query(alias="all", description="Expired ones too.")] = False,
    limit: Annotated[int, Query(ge=1, le=2000)] = 500,
) -> list[dict[str, Any]]:
    """Near-repeat advisories in the caller's scope, newest first (unexpired by default)."""
    return advisor.list_advisories(who, active=not all_, limit=limit)


@router.get("/advisories/layer", tags=["advisories"])
def advisories_layer(who: CurrentUser, advisor: Advisor) -> dict[str, Any]:
    """The dashboard layer: unexpired advisories in scope as GeoJSON points; each is drawn as
    a circle of ``radius_m`` metres."""
    features = [
        {
            "type": "Feature",
            "properties": {k: v for k, v in a.items() if k not in ("lon", "lat")},
            "geometry": {"type": "Point", "coordinates": [a["lon"], a["lat"]]},
        }
        for a in advisor.list_advisories(who, active=True)
    ]
    return {
        "type": "FeatureCollection",
        "features": features,
        "settings": advisor.config.as_dict(),
    }


@router.get("/advisories/{advisory_id}", tags=["advisories"])
def get_advisory(advisory_id: str, who: CurrentUser, advisor: Advisor) -> dict[str, Any]:
    """One advisory with its evidence: the stored Knox table (observed, expected, Knox ratios,
    p-values), the window drawn from it and the date range of its incidents."""
    return advisor.get(who, advisory_id)


@router.get("/near-repeat/tables", tags=["advisories"])
def near_repeat_tables(who: CurrentUser, advisor: Advisor) -> dict[str, Any]:
    """The advisory settings and the newest near-repeat table of each category."""
    return advisor.tables(who)


@router.post("/near-repeat/refresh", tags=["advisories"])
def refresh_tables(
    who: CurrentUser, advisor: Advisor, body: RefreshIn | None = None
) -> dict[str, Any]:
    """Recompute the near-repeat tables now (admin, commander, analyst); audited."""
    return advisor.refresh(who, body.categories if body else None)


# ----------------------------------------------------------------------------- forecast layer
def newest_forecast(folder: Path) -> Path | None:
    """The most recently written ``*.geojson`` of ``folder`` (None when there is none)."""
    if not folder.is_dir():
        return None
    found = sorted(folder.glob("*.geojson"), key=lambda p: (p.stat().st_mtime, p.name))
    return found[-1] if found else None


@router.get("/forecast/layer", tags=["forecast"])
def forecast_layer(
    request: Request,
    who: CurrentUser,
    top: Annotated[int, Query(ge=1, le=100_000, description="Highest-ranked cells sent.")] = 1000,
) -> dict[str, Any]:
    """The latest forecast's risk surface (``citywatch forecast predict --geojson`` written to
    the service's forecast folder): its cells by rank, with the predictor, the period and the
    backtest hit rate and PAI when the forecast was made with ``--backtest``."""
    if who.role is Role.UNIT_DEVICE:
        raise PermissionDeniedError("a unit device may only post its own position and status")
    folder = request.app.state.settings.forecast_dir
    path = newest_forecast(Path(folder)) if folder else None
    if path is None:
        raise NotFoundError("no forecast published (citywatch serve --forecast-dir)")
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the forecast {path.name}: {exc}") from exc
    features = [f for f in doc.get("features", []) if f["properties"].get("rank", 0) <= top]
    return {
        "type": "FeatureCollection",
        "features": features,
        "file": path.name,
        "cells": len(doc.get("features", [])),
        "forecast": doc.get("citywatch", {}),
    }


# ----------------------------------------------------------------------------- installation
async def _nightly(advisor: NearRepeatAdvisor) -> None:
    """Refresh the tables that missed the last nightly run, then at every local refresh hour."""
    while True:
        try:
            done = await asyncio.to_thread(advisor.refresh_if_due)
            if done:
                log.info("near-repeat tables refreshed: %s", [d["category"] for d in done])
        except Exception:  # a failed refresh keeps the old tables; try again next night
            log.exception("near-repeat refresh failed")
        now = advisor.clock()
        wake = next_refresh(now, advisor.pack.timezone, advisor.config.refresh_hour)
        await asyncio.sleep(max(1.0, (wake - now).total_seconds()))


def install(app: FastAPI) -> None:
    """Add the advisory and forecast routes, the incident hook and the nightly refresh.

    Parameters
    ----------
    app : fastapi.FastAPI
        The application of :func:`citywatch.api.app.create_app`, with ``state.service`` set.
    """
    service = app.state.service
    config = app.state.settings.advisories
    advisor = NearRepeatAdvisor(service.sessions, service.pack, config, service.clock)
    app.state.advisor = advisor
    if config.categories:
        service.incident_hooks = (*service.incident_hooks, advisor.on_incident)
    app.include_router(router)
    if config.categories and config.schedule:
        run_while_serving(app, lambda: _nightly(advisor), "citywatch-near-repeat")
