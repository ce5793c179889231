"""The FastAPI application factory of the dispatch service.

``create_app(settings)`` wires the database, city pack, router, event bus and routes together;
``worker_app()`` is the factory uvicorn worker processes call (settings from the environment).

The command-centre dashboard, when installed, is served from ``citywatch/web/static`` at ``/``
(mounted last, so that ``/api/v1`` and ``/docs`` keep precedence).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect, status
from fastapi.staticfiles import StaticFiles

from citywatch.api.eido import router as eido_router
from citywatch.api.errors import install_error_handlers
from citywatch.api.events import EventBus, make_bus
from citywatch.api.routes import router as api_router
from citywatch.api.security import TokenIssuer, principal_from_token
from citywatch.api.settings import Settings
from citywatch.api.surveillance import router as surveillance_router
from citywatch.city import CityPack, load_pack
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.service import DispatchService
from citywatch.errors import CityWatchError
from citywatch.routing import MODES, Router
from citywatch.store.db import make_engine, session_factory, upgrade
from citywatch.web.routes import install as install_dashboard

__all__ = ["STATIC_DIR", "create_app", "worker_app"]

log = logging.getLogger("citywatch.api")

#: Where the web dashboard's built files live; mounted at "/" when the folder exists.
STATIC_DIR = Path(str(files("citywatch.web"))) / "static"


class _RedactTokens(logging.Filter):
    """Blank ``access_token=...`` in uvicorn's log lines (WebSocket URLs carry the token)."""

    _pattern = re.compile(r"(access_token=)[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._pattern.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def _install_log_redaction() -> None:
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactTokens) for f in logger.filters):
            logger.addFilter(_RedactTokens())


def _visible(who: Principal, event: dict[str, Any]) -> bool:
    """Whether a WebSocket client may see an event (scope of station officers and devices)."""
    if event.get("type") == "resync":
        return True
    if who.role is Role.UNIT_DEVICE:
        return event.get("unit_id") == who.unit_id
    return who.sees(event.get("bureau"), event.get("station"))


async def _stream(
    websocket: WebSocket,
    bus: EventBus,
    who: Principal,
    recheck: Callable[[], Principal],
    recheck_s: float,
) -> None:
    """Send the events ``who`` may see; re-check the account every ``recheck_s`` seconds and
    close the stream (1008) once it is disabled."""
    queue = bus.subscribe()
    loop = asyncio.get_running_loop()
    next_check = loop.time() + recheck_s

    async def drain_client() -> None:
        # Clients send nothing we need, but reading is how a disconnect is noticed.
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()

    reader = asyncio.create_task(drain_client())
    try:
        while not reader.done():
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait(
                {getter, reader},
                timeout=max(0.0, next_check - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:
                getter.cancel()
                try:
                    who = await asyncio.to_thread(recheck)
                except CityWatchError as exc:
                    await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=exc.message)
                    break
                next_check = loop.time() + recheck_s
                continue
            if getter not in done:
                getter.cancel()
                break
            event = getter.result()
            if event is None:
                await websocket.close(code=status.WS_1013_TRY_AGAIN_LATER, reason="client too slow")
                break
            if _visible(who, event):
                await websocket.send_json(event)
    finally:
        bus.unsubscribe(queue)
        reader.cancel()


def create_app(
    settings: Settings, *, pack: CityPack | None = None, router: Router | None = None
) -> FastAPI:
    """Build the dispatch service application.

    Parameters
    ----------
    settings : Settings
        Pack, database, signing key, demo mode, operational settings.
    pack : CityPack, optional
        The already loaded pack named by ``settings.pack`` (loaded here by default).
    router : Router, optional
        A router of that pack to share (built here by default).

    Returns
    -------
    fastapi.FastAPI
        REST API under ``/api/v1`` (OpenAPI at ``/openapi.json``, docs at ``/docs``), WebSocket
        event stream at ``/api/v1/events``, and the dashboard at ``/`` when installed.
    """
    _install_log_redaction()
    engine = make_engine(settings.db_url)
    if settings.migrate:
        upgrade(engine)
    sessions = session_factory(engine)
    pack = pack or load_pack(settings.pack)
    road = router or Router.from_pack(pack)
    bus = make_bus(engine, sessions)
    service = DispatchService(sessions, pack, road, bus, config=settings.dispatch)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Compile every mode's graph now rather than during the first emergency call.
        await asyncio.to_thread(lambda: [road.graph(mode) for mode in MODES])
        # The pack and graphs are millions of long-lived objects: freezing them keeps full
        # garbage collections (~100 ms pauses measured in bench_dispatch) off request paths.
        gc.collect()
        gc.freeze()
        await bus.start()
        try:
            yield
        finally:
            await bus.stop()
            engine.dispose()

    app = FastAPI(
        title="CityWatch dispatch service",
        version="1.0",
        description="Incidents, units, nearest-unit recommendation over the road network, KPIs.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.bus = bus
    app.state.tokens = TokenIssuer(settings.jwt_secret, settings.token_ttl_s)
    install_error_handlers(app)
    app.include_router(api_router)
    app.include_router(surveillance_router)
    app.include_router(eido_router)

    @app.websocket("/api/v1/events")
    async def events(websocket: WebSocket, access_token: str | None = None) -> None:
        """Every committed change, as JSON: incident.created, incident.status, unit.created,
        unit.moved, unit.status, assignment.created (and resync after a listener reconnect)."""
        token = access_token
        auth = websocket.headers.get("authorization", "")
        if token is None and auth.lower().startswith("bearer "):
            token = auth[7:]

        def recheck() -> Principal:
            return principal_from_token(websocket.app, token, allow_expired=True)

        try:
            who = await asyncio.to_thread(principal_from_token, websocket.app, token)
        except CityWatchError as exc:
            await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=exc.message)
            return
        await websocket.accept()
        await _stream(websocket, bus, who, recheck, settings.stream_recheck_s)

    install_dashboard(app)
    if STATIC_DIR.is_dir():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="web")
    return app


def worker_app() -> FastAPI:
    """Application factory for uvicorn worker processes (settings from the environment)."""
    return create_app(Settings.from_env())
