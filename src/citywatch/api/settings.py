"""Settings of the dispatch service, passed to :func:`citywatch.api.app.create_app`.

``citywatch serve`` builds them from its options; worker processes started by uvicorn receive
them through the ``CITYWATCH_SERVE_SETTINGS`` environment variable (JSON), so that every worker
runs with the same pack, database and signing key.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from citywatch.api.limits import DEFAULT_BODY_TIMEOUT_S, DEFAULT_MAX_BODY_BYTES
from citywatch.dispatch.core import DispatchConfig
from citywatch.dispatch.kpis import RESPONSE_TARGETS_S
from citywatch.errors import ValidationError

__all__ = ["ENV_SETTINGS", "Settings"]

#: Environment variable carrying the settings to uvicorn worker processes.
ENV_SETTINGS = "CITYWATCH_SERVE_SETTINGS"
#: Environment variable with the JWT signing key (a random key per ``serve`` run otherwise).
ENV_JWT_SECRET = "CITYWATCH_JWT_SECRET"


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to start.

    Parameters
    ----------
    pack : str
        City pack name or folder.
    db_url : str, optional
        Database URL; ``None`` is the embedded SQLite file.
    jwt_secret : str
        Key that signs access tokens (HS256); at least 32 characters.
    token_ttl_s : int
        Lifetime of access tokens (default 15 minutes).
    refresh_ttl_s : int
        How long an unused refresh token stays valid (default 7 days); each refresh issues a
        new one, so a screen that keeps refreshing stays logged in.
    stream_recheck_s : float
        How often an open WebSocket event stream re-checks its account (default 30 s): a
        disabled account's stream is closed within this time.
    demo : bool
        Demo mode: demo accounts may log in (their passwords are printed at start).
    migrate : bool
        Run the database migrations when the app starts (``serve`` does it once, before
        starting its workers, and turns this off for them).
    dispatch : DispatchConfig
        Staleness of positions and the ``station_first`` threshold.
    kpi_thresholds_s : tuple of float
        Default "on scene within" thresholds of the KPIs (3 and 10 minutes).
    max_body_bytes : int
        Largest request body accepted (413 beyond, before authentication); 1 MiB.
    body_timeout_s : float
        Time a client has to send its whole request body (408 beyond); 10 s.
    position_retention_days : int
        Days of AVL history kept (PostgreSQL drops older daily partitions); 90.
    audit_home : str, optional
        Folder of the audit key and checkpoint file (``$CITYWATCH_AUDIT_HOME`` or
        ``var/audit`` by default); never inside the database.
    sightings_store_values : bool
        Keep the plates, tags and references of sightings and hotlist entries themselves;
        by default only their keyed hashes are stored (see citywatch.surveillance.matching).
    sightings_retention_days : int
        Days a sighting that matched no hotlist entry is kept (hits stay with their alert); 30.
    """

    pack: str
    db_url: str | None = None
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48), repr=False)
    token_ttl_s: int = 900
    refresh_ttl_s: int = 7 * 86_400
    stream_recheck_s: float = 30.0
    demo: bool = False
    migrate: bool = True
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    kpi_thresholds_s: tuple[float, ...] = RESPONSE_TARGETS_S
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    position_retention_days: int = 90
    audit_home: str | None = None
    sightings_store_values: bool = False
    sightings_retention_days: int = 30

    def __post_init__(self) -> None:
        if len(self.jwt_secret) < 32:
            raise ValidationError(
                "the JWT secret must have at least 32 characters", field="jwt_secret"
            )
        if not 60 <= self.token_ttl_s <= 86_400:
            raise ValidationError("token lifetime must be 60 s to 24 h", field="token_ttl_s")
        if not self.token_ttl_s < self.refresh_ttl_s <= 90 * 86_400:
            raise ValidationError(
                "refresh token lifetime must exceed the access token's and be at most 90 days",
                field="refresh_ttl_s",
            )
        if not 1 <= self.position_retention_days <= 3650:
            raise ValidationError(
                "position retention must be 1 to 3650 days", field="position_retention_days"
            )
        if not 1 <= self.sightings_retention_days <= 3650:
            raise ValidationError(
                "sightings retention must be 1 to 3650 days", field="sightings_retention_days"
            )
        if not 0.1 <= self.stream_recheck_s <= 3600:
            raise ValidationError(
                "stream re-check interval must be 0.1 s to 1 h", field="stream_recheck_s"
            )

    @classmethod
    def from_env(cls) -> Settings:
        """Settings of a worker process: the JSON of ``CITYWATCH_SERVE_SETTINGS``."""
        raw = os.environ.get(ENV_SETTINGS)
        if raw is None:
            raise ValidationError(
                f"{ENV_SETTINGS} is not set; start the service with citywatch serve"
            )
        data: dict[str, Any] = json.loads(raw)
        data["dispatch"] = DispatchConfig(**data["dispatch"])
        data["kpi_thresholds_s"] = tuple(data["kpi_thresholds_s"])
        return cls(**data)

    def to_env(self) -> str:
        """The JSON that :meth:`from_env` reads."""
        return json.dumps(asdict(self))

    def with_secret_from_env(self) -> Settings:
        """These settings with the signing key of ``CITYWATCH_JWT_SECRET`` when it is set."""
        secret = os.environ.get(ENV_JWT_SECRET)
        return replace(self, jwt_secret=secret) if secret else self
