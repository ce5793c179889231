"""AVL routes: the single ``PUT /units/{id}/position`` and the ``POST /positions`` batch.

They are the service's busiest routes (a fleet of 2,000 devices reporting every 5 s is 400
requests/s), so their router is included before every other one: the framework tries the
routes in order, and trying the other routes of the API first was a third of the CPU of a PUT
(profiled).  They take the service from the application state rather than through a
dependency (each dependency is resolved anew for every request).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response

from citywatch.api.routes import ERROR_RESPONSES, UnitId
from citywatch.api.schemas import PositionBatchIn, PositionBatchOut, PositionIn, PositionOut
from citywatch.api.security import CurrentUser
from citywatch.dispatch.positions import Fix, FixQueue
from citywatch.dispatch.service import DispatchService

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES, tags=["units"])


@router.put("/units/{unit_id}/position", response_model=PositionOut)
async def put_position(
    request: Request, unit_id: UnitId, body: PositionIn, who: CurrentUser
) -> Response:
    """Report an AVL position (a unit device may report only its own).

    Answered once the fix is committed; fixes arriving together share one transaction (group
    commit), validated one by one exactly as ``POST /positions`` validates its fixes."""
    fixes: FixQueue = request.app.state.fixes
    fix = Fix(unit_id, body.lon, body.lat, body.at)
    outcome = await asyncio.wrap_future(fixes.submit(who, fix))
    answer = PositionOut.model_validate(DispatchService.position_answer(fix, outcome))
    # Serialised by the response model in one pass (what the framework would do in three).
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
