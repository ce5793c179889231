"""User accounts, roles scoped to jurisdictions, argon2 password hashes and device API tokens.

Roles
-----
``admin``            everything, including accounts;
``commander``        city-wide: reads and changes everything operational;
``dispatcher``       city-wide: incidents, units, assignments;
``station_officer``  like a dispatcher, but sees and changes only its own station or bureau;
``analyst``          read-only;
``unit_device``      may only post its own unit's position and status.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from citywatch.dispatch.audit import append_audit
from citywatch.errors import AuthenticationError, ConflictError, NotFoundError, ValidationError
from citywatch.store.dispatch_models import ApiToken, User

__all__ = [
    "Principal",
    "Role",
    "authenticate_password",
    "authenticate_token",
    "create_token",
    "create_user",
    "disable_user",
    "find_user",
    "list_users",
    "set_password",
]

_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 "low memory" defaults
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
MIN_PASSWORD_LENGTH = 10


class Role(StrEnum):
    """What a user may do."""

    ADMIN = "admin"
    COMMANDER = "commander"
    DISPATCHER = "dispatcher"
    STATION_OFFICER = "station_officer"
    ANALYST = "analyst"
    UNIT_DEVICE = "unit_device"


#: Roles that may change operational state (incidents, units, assignments).
WRITE_ROLES = frozenset({Role.ADMIN, Role.COMMANDER, Role.DISPATCHER, Role.STATION_OFFICER})


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request."""

    username: str
    role: Role
    scope: str | None = None
    unit_id: str | None = None

    @property
    def can_write(self) -> bool:
        """Whether the role may change incidents, units and assignments."""
        return self.role in WRITE_ROLES

    def sees(self, bureau: str | None, station: str | None) -> bool:
        """Whether an object located in ``bureau``/``station`` is within the caller's scope."""
        if self.role is Role.UNIT_DEVICE:
            return False
        if self.role is not Role.STATION_OFFICER:
            return True
        return self.scope is not None and self.scope in (bureau, station)


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise ValidationError(f"unknown role {role!r}; known: {known}", field="role") from None


def create_user(
    session: Session,
    username: str,
    role: str,
    *,
    password: str | None = None,
    scope: str | None = None,
    unit_id: str | None = None,
    actor: str = "cli",
) -> User:
    """Create an account (audited).

    Parameters
    ----------
    session : Session
        Database session; the caller commits.
    username : str
        2-64 characters: letters, digits, ``_.@-``.
    role : str
        One of :class:`Role`.
    password : str, optional
        At least 10 characters; device accounts may have none (they use API tokens).
    scope : str, optional
        Station or bureau id; required for ``station_officer``.
    unit_id : str, optional
        The unit a ``unit_device`` account speaks for; required for that role.
    actor : str
        Who creates the account, for the audit trail.

    Returns
    -------
    User
        The new account.
    """
    if not _USERNAME.match(username):
        raise ValidationError("username must be 2-64 letters, digits or _.@-", field="username")
    parsed = _parse_role(role)
    if parsed is Role.STATION_OFFICER and not scope:
        raise ValidationError(
            "a station officer needs a scope (station or bureau id)", field="scope"
        )
    if parsed is Role.UNIT_DEVICE and not unit_id:
        raise ValidationError("a unit device account needs a unit id", field="unit_id")
    if password is None and parsed is not Role.UNIT_DEVICE:
        raise ValidationError("a password is required for this role", field="password")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"password must have at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConflictError(f"user {username!r} already exists", field="username")
    user = User(
        username=username,
        password_hash=_hasher.hash(password) if password is not None else None,
        role=parsed.value,
        scope=scope,
        unit_id=unit_id,
        disabled=False,
        created_at=_now(),
    )
    session.add(user)
    session.flush()
    append_audit(
        session,
        actor=actor,
        action="user.create",
        entity="user",
        entity_id=username,
        after={"role": parsed.value, "scope": scope, "unit_id": unit_id},
    )
    return user


def list_users(session: Session) -> list[User]:
    """All accounts, by user name."""
    return list(session.scalars(select(User).order_by(User.username)))


def find_user(session: Session, username: str) -> User | None:
    """The account named ``username``, or ``None``."""
    return session.scalar(select(User).where(User.username == username))


def _get(session: Session, username: str) -> User:
    user = find_user(session, username)
    if user is None:
        raise NotFoundError(f"no user {username!r}", field="username")
    return user


def disable_user(session: Session, username: str, *, actor: str = "cli") -> User:
    """Disable an account and revoke its API tokens (audited); the caller commits."""
    user = _get(session, username)
    before = {"disabled": user.disabled}
    user.disabled = True
    for token in session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)):
        token.revoked = True
    append_audit(
        session,
        actor=actor,
        action="user.disable",
        entity="user",
        entity_id=username,
        before=before,
        after={"disabled": True},
    )
    return user


def set_password(session: Session, username: str, password: str, *, actor: str = "cli") -> User:
    """Replace an account's password (audited, without the password); the caller commits."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"password must have at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    user = _get(session, username)
    user.password_hash = _hasher.hash(password)
    append_audit(session, actor=actor, action="user.password", entity="user", entity_id=username)
    return user


def _principal(user: User) -> Principal:
    return Principal(user.username, Role(user.role), user.scope, user.unit_id)


def authenticate_password(session: Session, username: str, password: str) -> Principal:
    """Check a user name and password against the stored argon2 hash.

    Raises
    ------
    AuthenticationError
        For an unknown user, a wrong password or a disabled account (one message for all, so
        that the answer does not reveal which user names exist).
    """
    user = session.scalar(select(User).where(User.username == username))
    failure = AuthenticationError("incorrect user name or password")
    if user is None or user.disabled or user.password_hash is None:
        raise failure
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise failure from None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return _principal(user)


def _token_digest(token: str) -> str:
    # Tokens are 256-bit random, so a plain SHA-256 suffices (no need for a slow hash).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    session: Session, username: str, name: str = "device", *, actor: str = "cli"
) -> str:
    """Issue a new API token for an account (audited); only its hash is stored.

    Returns
    -------
    str
        The token, shown once: ``cw_`` followed by 43 URL-safe characters.
    """
    user = _get(session, username)
    if user.disabled:
        raise ConflictError(f"user {username!r} is disabled", field="username")
    token = "cw_" + secrets.token_urlsafe(32)
    session.add(
        ApiToken(user_id=user.id, token_hash=_token_digest(token), name=name, created_at=_now())
    )
    append_audit(
        session,
        actor=actor,
        action="token.create",
        entity="user",
        entity_id=username,
        after={"name": name},
    )
    return token


def authenticate_token(session: Session, token: str) -> Principal:
    """The account of a valid, unrevoked API token of an enabled user."""
    row = session.execute(
        select(User, ApiToken.revoked)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == _token_digest(token))
    ).first()
    if row is None or row[1] or row[0].disabled:
        raise AuthenticationError("invalid or revoked API token")
    return _principal(row[0])
