"""Tables of the live dispatch service: units, assignments, the event timeline, users, audit.

A live incident is a row of the shared ``incidents`` table (``source = "live"``) plus one row of
``incident_dispatch`` holding what only the live service needs: its status, the Idempotency-Key
of the request that created it, who created it and the caller's notes.

Atomic assignment rests on two guards that hold on SQLite and PostgreSQL alike: the conditional
``UPDATE units ... WHERE status = 'available'`` in the service, and the partial unique index
``uq_assignments_active_unit`` (one open assignment per unit).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from citywatch.store.base import Base, UTCDateTime

__all__ = [
    "ApiToken",
    "Assignment",
    "AuditRecord",
    "DispatchEvent",
    "IncidentDispatch",
    "PositionBatch",
    "RefreshToken",
    "RevokedToken",
    "Unit",
    "UnitPosition",
    "User",
]


class Unit(Base):
    """A police unit: type and travel mode, home station, shift, status and last AVL position."""

    __tablename__ = "units"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit_type: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))
    station: Mapped[str | None] = mapped_column(String(32), index=True)
    shift: Mapped[str | None] = mapped_column(String(32))
    capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Incident of the unit's open assignment (null when it has none).
    incident_id: Mapped[str | None] = mapped_column(String(255))
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    position_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Patrol post where a unit with a stale position is assumed to be (its station if null).
    post_lon: Mapped[float | None] = mapped_column(Float)
    post_lat: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UnitPosition(Base):
    """Every AVL position received, including late ones that did not move the unit."""

    __tablename__ = "unit_positions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The :class:`PositionBatch` whose digest covers this fix (null before ``0004``).
    batch_id: Mapped[int | None] = mapped_column(Integer, index=True)

    __table_args__ = (Index("ix_unit_positions_unit_at", "unit_id", "at"),)


class IncidentDispatch(Base):
    """Live-service state of an incident of the ``incidents`` table."""

    __tablename__ = "incident_dispatch"

    incident_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Unique per creating user (``created_by``): two users' equal keys are two requests.
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    #: SHA-256 of the request body that used the key: a retry must send the same body.
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    caller_notes: Mapped[str | None] = mapped_column(Text)
    place_kinds: Mapped[list[str]] = mapped_column(JSON, default=list)

    __table_args__ = (UniqueConstraint("created_by", "idempotency_key"),)


class Assignment(Base):
    """One unit sent to one incident, with the times of its progress."""

    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    assigned_by: Mapped[str] = mapped_column(String(64))
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime())
    eta_s: Mapped[float | None] = mapped_column(Float)
    metres: Mapped[float | None] = mapped_column(Float)
    en_route_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    on_scene_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: How the assignment ended: completed, called_off, incident_cancelled.
    outcome: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        Index(
            "uq_assignments_active_unit",
            "unit_id",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
    )


class DispatchEvent(Base):
    """Timeline of every change: what happened, to which incident or unit, who did it, when."""

    __tablename__ = "dispatch_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    type: Mapped[str] = mapped_column(String(32))
    incident_id: Mapped[str | None] = mapped_column(String(255), index=True)
    unit_id: Mapped[str | None] = mapped_column(String(64), index=True)
    station: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class User(Base):
    """An account: role, optional jurisdiction scope, argon2 password hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    #: Jurisdiction a station officer is limited to (a station or a bureau id).
    scope: Mapped[str | None] = mapped_column(String(32))
    #: The unit a device account speaks for.
    unit_id: Mapped[str | None] = mapped_column(String(64))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A demo account (``citywatch demo``, ``serve --demo``): refused outside demo mode.
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Consecutive failed password logins (reset by a successful one or an unlock).
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    #: Password logins are refused until then (lockout after repeated failures).
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiToken(Base):
    """A long-lived device token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class RefreshToken(Base):
    """A single-use refresh token of a login session; only its SHA-256 is stored.

    Every refresh marks the presented token used and issues a successor of the same
    ``family`` (the login session).  Presenting a used token again means it was copied: the
    whole family is revoked (refresh-token rotation with reuse detection, RFC 9700 §4.14.2).
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family: Mapped[str] = mapped_column(String(32), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditRecord(Base):
    """One write, hash-chained to the previous record (see :mod:`citywatch.dispatch.audit`)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str | None] = mapped_column(String(255))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: Id of the HMAC key that signed the record (null: unkeyed, written before 0004).
    key_id: Mapped[str | None] = mapped_column(String(16))


class PositionBatch(Base):
    """One accepted set of AVL fixes (a batch request or one PUT) and the digest covering them.

    ``audit_seq`` is the ``positions.sealed`` audit record that covers the batch (null until
    sealed): the chain covers every stored fix without serialising each one through it.
    """

    __tablename__ = "position_batches"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    fixes: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())
    audit_seq: Mapped[int | None] = mapped_column(Integer, index=True)


class RevokedToken(Base):
    """An access token revoked before its expiry (logout), by its ``jti`` claim."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
