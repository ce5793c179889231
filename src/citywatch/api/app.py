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

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect, status
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from citywatch.api.advisories import install as install_advisories
from citywatch.api.board import router as board_router
from citywatch.api.board import watch_timers
from citywatch.api.console import router as console_router
from citywatch.api.dashboard import install as install_dashboard
from citywatch.api.ebikes import router as ebike_router
from citywatch.api.eido import router as eido_router
from citywatch.api.errors import install_error_handlers
from citywatch.api.events import AUTH_CHANGED, CHANNEL, EventBus, PostgresBus, make_bus
from citywatch.api.limits import RequestLimits
from citywatch.api.positions import PutFastPath
from citywatch.api.positions import router as positions_router
from citywatch.api.pursuit import router as pursuit_router
from citywatch.api.routes import router as api_router
from citywatch.api.security import (
    LoginGuard,
    PrincipalCache,
    TokenIssuer,
    install_cache_invalidation,
    principal_from_token,
)
from citywatch.api.settings import Settings
from citywatch.api.sightings import keep_sightings
from citywatch.api.sightings import router as sightings_router
from citywatch.api.surveillance import router as surveillance_router
from citywatch.city import CityPack, load_pack
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.audit import AuditTrail, use_trail
from citywatch.dispatch.intake import ConsoleService
from citywatch.dispatch.live import RESYNC_INTERVAL_S
from citywatch.dispatch.positions import SEAL_INTERVAL_S, FixQueue
from citywatch.dispatch.service import DispatchService
from citywatch.errors import CityWatchError
from citywatch.routing import Router
from citywatch.store.db import make_engine, session_factory, upgrade
from citywatch.surveillance.alerts import visible as alert_visible

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
    if event.get("audience") is not None:  # sightings alerts: their list's roles, recipients
        return alert_visible(who, event["audience"])
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
        REST API under ``/api/v1`` (OpenAPI at ``/openapi.json``, interactive docs at ``/docs``
        with locally served assets), WebSocket
        event stream at ``/api/v1/events``, and the dashboard at ``/`` when installed.
    """
    _install_log_redaction()
    engine = make_engine(settings.db_url, pool_size=settings.db_pool_size)
    if settings.migrate:
        upgrade(engine)
    sessions = session_factory(engine)
    use_trail(engine, AuditTrail.open(Path(settings.audit_home) if settings.audit_home else None))
    pack = pack or load_pack(settings.pack)
    road = router or Router.from_pack(pack)
    bus = make_bus(engine, sessions)
    service = DispatchService(sessions, pack, road, bus, config=settings.dispatch)
    principals = PrincipalCache(settings.auth_cache_s)
    pg = isinstance(bus, PostgresBus)
    install_cache_invalidation(sessions, principals, notify_channel=CHANNEL if pg else None)
    if isinstance(bus, PostgresBus):
        bus.bureau_of = dict(service.bureau_of)
        # Other workers' changes: to this worker's units in memory and token cache.
        bus.listeners.append(service.live.apply)
        bus.listeners.append(_forget_tokens(principals))
        bus.on_gap.append(service.live.invalidate)
        bus.on_gap.append(lambda: principals.forget({"*"}))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Compile the graphs and the snapping index now rather than during the first call,
        # and the geocoder's street index rather than during the first geocode.
        await asyncio.to_thread(road.prepare)
        await asyncio.to_thread(ConsoleService(service).prepare)
        # The pack and graphs are millions of long-lived objects: freezing them keeps full
        # garbage collections (~100 ms pauses measured in bench_dispatch) off request paths.
        gc.collect()
        gc.freeze()
        await bus.start()
        await asyncio.to_thread(service.live.refresh)  # after LISTEN: no change is missed
        keeper = asyncio.create_task(_keep_positions(service, settings), name="citywatch-seal")
        timers = asyncio.create_task(watch_timers(service, bus), name="citywatch-timers")
        purger = asyncio.create_task(keep_sightings(app), name="citywatch-sightings-purge")
        try:
            yield
        finally:
            for task in (keeper, timers, purger):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await fixes.close()  # answer the fixes still queued
            await service.close_writer()
            await asyncio.to_thread(service.seal_positions)  # nothing stored goes unsealed
            await bus.stop()
            app.state.login_guard.close()
            engine.dispose()

    # Swagger UI at /docs from the assets fastapi-offline ships, not a CDN: a control room may
    # have no internet.  No ReDoc: its page still loads a logo from its vendor's CDN.
    app = FastAPIOffline(
        redoc_url=None,
        title="CityWatch dispatch service",
        version="1.0",
        description="Incidents, units, nearest-unit recommendation over the road network, KPIs.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.bus = bus
    app.state.tokens = TokenIssuer(settings.jwt_secret, settings.token_ttl_s)
    app.state.login_guard = LoginGuard()
    app.state.principals = principals
    # Group commit of single fixes, one writer per worker: a transaction costs about the
    # same whatever its size, and two writers per worker halved the groups (bench_live: with
    # two workers on PostgreSQL the CPU per fix then doubled).
    app.state.fixes = fixes = FixQueue(service.record_fixes_async)
    install_error_handlers(app)
    app.include_router(positions_router)  # first: the busiest routes are matched first
    app.include_router(api_router)
    app.include_router(surveillance_router)
    app.include_router(sightings_router)
    app.include_router(eido_router)
    app.include_router(board_router)
    app.include_router(pursuit_router)
    app.include_router(console_router)
    app.include_router(ebike_router)
    _document_enums(app, service)
    app.add_middleware(PutFastPath)  # inside the limits: added first
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
    )

    @app.websocket("/api/v1/events")
    async def events(websocket: WebSocket, access_token: str | None = None) -> None:
        """Every committed change, as JSON: incident.created, incident.status, unit.created,
        unit.moved, unit.status, assignment.created, assignment.ended; after a lost database
        connection, the changes committed meanwhile are replayed (``"replayed": true``)."""
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
    install_advisories(app)
    _answer_wrong_methods(app)  # after every /api/v1 route, before the dashboard's mount
    if STATIC_DIR.is_dir():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="web")
    return app


def _forget_tokens(cache: PrincipalCache) -> Callable[[dict[str, Any]], None]:
    def forget(event: dict[str, Any]) -> None:
        if event.get("type") == AUTH_CHANGED:
            cache.forget(set(event.get("users") or ["*"]))

    return forget


async def _keep_positions(service: DispatchService, settings: Settings) -> None:
    """Seal new position batches into the audit chain every second; keep the history's
    partitions made ahead and within the retention every hour; merge the in-memory units
    with the database every :data:`~citywatch.dispatch.live.RESYNC_INTERVAL_S`."""
    loop = asyncio.get_running_loop()
    next_maintenance = loop.time()
    next_resync = loop.time() + RESYNC_INTERVAL_S
    while True:
        try:
            if loop.time() >= next_resync:
                await asyncio.to_thread(service.live.refresh)
                next_resync = loop.time() + RESYNC_INTERVAL_S
            if loop.time() >= next_maintenance:
                await asyncio.to_thread(service.maintain_history, settings.position_retention_days)
                next_maintenance = loop.time() + 3600
            await asyncio.to_thread(service.seal_positions)
        except Exception:  # a database hiccup must not end the sealing for good
            log.exception("sealing AVL positions failed; retrying")
        await asyncio.sleep(SEAL_INTERVAL_S)


def _answer_wrong_methods(app: FastAPI) -> None:
    """``405 Method Not Allowed`` (with ``Allow``) for a known ``/api/v1`` path asked with
    another method, ``404`` for unknown paths, before the dashboard's catch-all mount."""
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    catch_all = "/api/v1/{rest:path}"

    @app.api_route(catch_all, methods=methods, include_in_schema=False)
    async def _fallback(request: Request, rest: str) -> None:
        allowed = [m for m in methods if m != request.method and _routed(app, request, m)]
        if allowed:
            raise StarletteHTTPException(
                405, f"{request.method} is not allowed here; use {', '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )  # fmt: skip
        raise StarletteHTTPException(404, f"no such endpoint: /api/v1/{rest}")

    # The API's own routes: those before this one (the dashboard's static mount comes after).
    before = len(app.router.routes) - 1

    def _routed(app: FastAPI, request: Request, method: str) -> bool:
        scope = {**request.scope, "method": method}
        return any(r.matches(scope)[0] is Match.FULL for r in app.router.routes[:before])


def _document_enums(app: FastAPI, service: DispatchService) -> None:
    """List the pack's stations, the taxonomy's categories and the unit types as enums in the
    OpenAPI document (they are data of the pack and the rules, not of the code)."""
    enums = {
        "station": sorted(service.stations),
        "category": sorted(service.taxonomy.categories),
        "unit_type": sorted(service.rules.unit_modes),
    }
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = base()
            for model in schema.get("components", {}).get("schemas", {}).values():
                for name, prop in model.get("properties", {}).items():
                    if name in enums:
                        target = next(
                            (p for p in prop.get("anyOf", []) if p.get("type") == "string"), prop
                        )
                        target["enum"] = enums[name]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def worker_app() -> FastAPI:
    """Application factory for uvicorn worker processes (settings from the environment)."""
    return create_app(Settings.from_env())
