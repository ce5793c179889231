"""``GET /api/v1/incidents/{id}/eido``: a live incident as a NENA EIDO (NENA-STA-021.1)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from citywatch.api.routes import Service
from citywatch.api.security import CurrentUser
from citywatch.dispatch.intake import ConsoleService
from citywatch.incidents.eido import from_live, to_eido

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["incidents"])


@router.get("/incidents/{incident_id}/eido")
def get_incident_eido(incident_id: str, who: CurrentUser, service: Service) -> dict[str, Any]:
    """The incident, its units, callers, notes, timeline, merges and caution notes as one EIDO
    document.

    Same scope as ``GET /incidents/{id}``: a station officer sees only the station's or
    bureau's incidents, a unit device none. The issuing element is ``PACK.citywatch.invalid``.
    """
    detail = ConsoleService(service).detail(who, incident_id)
    return to_eido(from_live(detail, agency=f"{service.pack.name}.citywatch.invalid"))
