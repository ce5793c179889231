"""AVL routes: the single ``PUT /units/{id}/position`` and the ``POST /positions`` batch.

They are the service's busiest routes (a fleet of 2,000 devices reporting every 5 s is 400
requests/s), so their router is included before every other one: the framework tries the
routes in order, and trying the other routes of the API first was a third of the CPU of a PUT
(profiled).  They take the service from the application state rather than through a
dependency (each dependency is resolved anew for every request).

:class:`PutFastPath` answers the common single PUT without the framework: a JSON body that
:class:`~citywatch.api.schemas.PositionIn` accepts, from a caller whose token this worker
checked within ``auth_cache_s``.  It runs inside :class:`~citywatch.api.limits.RequestLimits`
(body size, body time, clean path) and validates with the route's own model, path pattern
and cached principal; any other request (no or unknown token, a body the model refuses, a
sensor feed account) goes to the route, which gives the canonical answer.  Resolving the
route's dependencies, matching it and serialising its answer was about half of the HTTP
CPU of a PUT (profiled).
"""

from __future__ import annotations

import re
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError as PydanticValidationError

from citywatch.api.errors import error_response
from citywatch.api.limits import ASGIApp, Receive, Scope, Send, replay_body
from citywatch.api.routes import ERROR_RESPONSES, UNIT_ID_PATTERN, UnitId
from citywatch.api.schemas import PositionBatchIn, PositionBatchOut, PositionIn, PositionOut
from citywatch.api.security import CurrentUser, PrincipalCache
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.positions import Fix, FixQueue
from citywatch.dispatch.service import DispatchService
from citywatch.errors import CityWatchError

__all__ = ["PutFastPath", "router"]

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES, tags=["units"])


@router.put("/units/{unit_id}/position", response_model=PositionOut)
async def put_position(
    request: Request, unit_id: UnitId, body: PositionIn, who: CurrentUser
) -> Response:
    """Report an AVL position (a unit device may report only its own).

    Answered once the fix is committed; fixes arriving together share one transaction (group
    commit), validated one by one exactly as ``POST /positions`` validates its fixes."""
    return await _record_one(request.app.state.fixes, who, unit_id, body)


async def _record_one(fixes: FixQueue, who: Principal, unit_id: str, body: PositionIn) -> Response:
    """Queue the fix for the group commit; its answer once committed (the fix's error
    raised).  Serialised by the response model in one pass."""
    fix = Fix(unit_id, body.lon, body.lat, body.at)
    outcome = await fixes.submit(who, fix)
    answer = PositionOut.model_validate(DispatchService.position_answer(fix, outcome))
    return Response(answer.model_dump_json(), media_type="application/json")


@router.post("/positions", response_model=PositionBatchOut)
def post_positions(request: Request, body: PositionBatchIn, who: CurrentUser) -> dict[str, Any]:
    """AVL fixes of many units in one request (an AVL gateway), stored in one transaction.

    Each fix is validated like ``PUT /units/{id}/position``; the answer gives a result per fix
    in request order (stored, applied, or the error that refused it).  200 even when some
    fixes were refused: look at ``refused`` and each result.
    """
    service: DispatchService = request.app.state.service
    fixes = [Fix(f.unit_id, f.lon, f.lat, f.at) for f in body.fixes]
    out = service.record_positions(who, fixes)
    return {**out, "results": [r.as_dict() for r in out["results"]]}


_PUT_PATH: Final = re.compile(rf"/api/v1/units/({UNIT_ID_PATTERN[1:-1]})/position")


class PutFastPath:
    """ASGI middleware answering the common ``PUT /units/{id}/position`` itself (see the
    module documentation); everything else goes to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] == "PUT":
            match = _PUT_PATH.fullmatch(scope["path"])
        who = None if match is None else _cached_caller(scope)
        if match is None or who is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        try:
            fix = PositionIn.model_validate_json(body)
        except PydanticValidationError:  # the route words the 422
            await self.app(scope, replay_body(body, receive), send)
            return
        try:
            response = await _record_one(scope["app"].state.fixes, who, match[1], fix)
        except CityWatchError as exc:
            response = error_response(exc)
        await response(scope, receive, send)


def _cached_caller(scope: Scope) -> Principal | None:
    """The caller of a JSON request whose bearer token is in the worker's cache (never a
    sensor feed account, which the route refuses)."""
    headers = dict(scope["headers"])
    if not headers.get(b"content-type", b"").startswith(b"application/json"):
        return None
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    cache: PrincipalCache | None = getattr(scope["app"].state, "principals", None)
    if scheme.lower() != "bearer" or not token or cache is None:
        return None
    who = cache.get(token)
    return None if who is None or who.role is Role.SENSOR_FEED else who


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
