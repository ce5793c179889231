"""User accounts, roles scoped to jurisdictions, argon2 password hashes and device API tokens.

Roles
-----
``admin``            everything, including accounts;
``commander``        city-wide: reads and changes everything operational;
``dispatcher``       city-wide: incidents, units, assignments;
``station_officer``  like a dispatcher, but sees and changes only its own station or bureau;
``analyst``          read-only;
``unit_device``      may only post its own unit's position and status;
``sensor_feed``      a recognition system (plate or tag readers, video analytics): may only
                     post sightings (``POST /api/v1/sightings``), reads nothing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from citywatch.dispatch.audit import append_audit
from citywatch.errors import AuthenticationError, ConflictError, NotFoundError, ValidationError
from citywatch.store.dispatch_models import ApiToken, RefreshToken, RevokedToken, User

__all__ = [
    "Principal",
    "Role",
    "active_principal",
    "authenticate_password",
    "authenticate_token",
    "create_refresh_token",
    "create_token",
    "create_user",
    "disable_user",
    "find_user",
    "is_revoked",
    "list_users",
    "mark_demo",
    "revoke_access_token",
    "revoke_refresh_session",
    "rotate_refresh_token",
    "set_password",
    "unlock_user",
]

_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 "low memory" defaults
#: Verified for unknown users, so that they cost what a real one does.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
#: Consecutive failed logins that lock an account, and for how long.
LOCKOUT_AFTER = 10
LOCKOUT_S = 900.0
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
    SENSOR_FEED = "sensor_feed"


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
        if self.role in (Role.UNIT_DEVICE, Role.SENSOR_FEED):
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
    demo: bool = False,
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
    demo : bool
        A demo account: the service refuses it unless it runs in demo mode.
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
    if password is None and parsed not in (Role.UNIT_DEVICE, Role.SENSOR_FEED):
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
        is_demo=demo,
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
        after={"role": parsed.value, "scope": scope, "unit_id": unit_id, "demo": demo},
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
    """Disable an account and revoke its API and refresh tokens (audited); the caller commits."""
    user = _get(session, username)
    before = {"disabled": user.disabled}
    user.disabled = True
    for model in (ApiToken, RefreshToken):
        session.execute(update(model).where(model.user_id == user.id).values(revoked=True))
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


def mark_demo(session: Session, username: str, *, actor: str = "demo") -> User:
    """Mark an existing account as a demo account (audited when it changes); the caller commits.

    The demo commands give their accounts passwords; an account of the same name created
    otherwise must not then keep working outside demo mode.
    """
    user = _get(session, username)
    if not user.is_demo:
        user.is_demo = True
        append_audit(
            session,
            actor=actor,
            action="user.demo",
            entity="user",
            entity_id=username,
            before={"demo": False},
            after={"demo": True},
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


def _refuse_demo(is_demo: bool, allow_demo: bool) -> None:
    if is_demo and not allow_demo:
        raise AuthenticationError("demo accounts work only in demo mode")


def authenticate_password(
    session: Session, username: str, password: str, *, allow_demo: bool = False
) -> Principal:
    """Check a user name and password against the stored argon2 hash.

    An unknown user costs one argon2 verification too (against a dummy hash), so that timing
    does not tell which user names exist.  :data:`LOCKOUT_AFTER` consecutive failures lock the
    account for :data:`LOCKOUT_S` (audited ``user.locked``; ``citywatch users unlock`` ends it).

    Parameters
    ----------
    session : Session
        Database session (failure counters, lockout and a needed rehash are written; the
        caller commits, also when this raises).
    username, password : str
        The credentials.
    allow_demo : bool
        Whether demo accounts may log in (only when the service runs in demo mode).

    Raises
    ------
    AuthenticationError
        For an unknown user, a wrong password, a disabled or locked account (one message for
        all, so that the answer does not reveal which user names exist), or a demo account
        outside demo mode.
    """
    user = session.scalar(select(User).where(User.username == username))
    failure = AuthenticationError("incorrect user name or password")
    usable = user is not None and not user.disabled and user.password_hash is not None
    stored = user.password_hash if usable and user is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
        correct = usable
    except (VerificationError, InvalidHashError):
        correct = False
    if user is None or not usable:
        raise failure
    now = _now()
    if user.locked_until is not None and user.locked_until > now:
        raise failure
    if not correct:
        _count_failure(session, user, now)
        raise failure
    _refuse_demo(user.is_demo, allow_demo)
    user.failed_logins, user.locked_until = 0, None
    if _hasher.check_needs_rehash(stored or ""):
        user.password_hash = _hasher.hash(password)
    return _principal(user)


def _count_failure(session: Session, user: User, now: datetime) -> None:
    user.failed_logins = (user.failed_logins or 0) + 1
    if user.failed_logins >= LOCKOUT_AFTER:
        user.failed_logins = 0
        user.locked_until = now + timedelta(seconds=LOCKOUT_S)
        append_audit(
            session,
            actor="login",
            action="user.locked",
            entity="user",
            entity_id=user.username,
            after={"locked_until": user.locked_until, "after_failures": LOCKOUT_AFTER},
        )


def unlock_user(session: Session, username: str, *, actor: str = "cli") -> User:
    """End an account's lockout and reset its failure count (audited); the caller commits."""
    user = _get(session, username)
    before = {"locked_until": user.locked_until, "failed_logins": user.failed_logins}
    user.failed_logins, user.locked_until = 0, None
    append_audit(
        session,
        actor=actor,
        action="user.unlock",
        entity="user",
        entity_id=username,
        before=before,
        after={"locked_until": None, "failed_logins": 0},
    )
    return user


def revoke_access_token(session: Session, jti: str, expires_at: datetime) -> None:
    """Deny an access token (by its ``jti``) until it expires; idempotent."""
    if session.get(RevokedToken, jti) is None:
        session.add(RevokedToken(jti=jti, expires_at=expires_at))
    session.execute(delete(RevokedToken).where(RevokedToken.expires_at < _now()))


def is_revoked(session: Session, jti: str) -> bool:
    """Whether the access token with this ``jti`` was revoked (logout)."""
    return session.get(RevokedToken, jti) is not None


def active_principal(session: Session, username: str, *, allow_demo: bool = False) -> Principal:
    """The current role and scope of an enabled account named in an access token.

    One indexed single-row read per request: disabling an account (or changing its role)
    takes effect at once instead of when its access tokens expire.

    Raises
    ------
    AuthenticationError
        If the account no longer exists or is disabled, or is a demo account outside demo mode.
    """
    row = session.execute(
        select(User.role, User.scope, User.unit_id, User.disabled, User.is_demo).where(
            User.username == username
        )
    ).first()
    if row is None or row.disabled:
        raise AuthenticationError(f"account {username!r} is disabled or no longer exists")
    _refuse_demo(row.is_demo, allow_demo)
    return Principal(username, Role(row.role), row.scope, row.unit_id)


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


def authenticate_token(session: Session, token: str, *, allow_demo: bool = False) -> Principal:
    """The account of a valid, unrevoked API token of an enabled user (a demo account's only
    when ``allow_demo``)."""
    row = session.execute(
        select(User, ApiToken.revoked)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == _token_digest(token))
    ).first()
    if row is None or row[1] or row[0].disabled:
        raise AuthenticationError("invalid or revoked API token")
    _refuse_demo(row[0].is_demo, allow_demo)
    return _principal(row[0])


# ------------------------------------------------------------------ refresh tokens
def create_refresh_token(
    session: Session, username: str, ttl_s: int, *, family: str | None = None
) -> str:
    """Issue a single-use refresh token of a login session; only its SHA-256 is stored.

    Parameters
    ----------
    session : Session
        Database session; the caller commits.
    username : str
        The account (enabled).
    ttl_s : int
        Seconds until the token expires unused.
    family : str, optional
        The login session it continues (a new session by default).

    Returns
    -------
    str
        The token: ``cwr_`` followed by 43 URL-safe characters.
    """
    user = _get(session, username)
    token = "cwr_" + secrets.token_urlsafe(32)
    now = _now()
    session.add(
        RefreshToken(
            user_id=user.id,
            family=family or secrets.token_hex(16),
            token_hash=_token_digest(token),
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
            used_at=None,
            revoked=False,
        )
    )
    return token


def rotate_refresh_token(
    session: Session, token: str, ttl_s: int, *, allow_demo: bool = False
) -> tuple[Principal, str] | None:
    """Spend a refresh token: its successor in the same session, and the account.

    The token is claimed by a conditional ``UPDATE ... WHERE used_at IS NULL``, so of two
    concurrent uses exactly one succeeds.  A token that was already used is evidence of a
    copy: the whole session (token family) is revoked and ``None`` returned; the caller must
    commit that revocation and refuse the request.

    Raises
    ------
    AuthenticationError
        For an unknown, expired or revoked token, or one of a disabled (or, outside demo mode,
        demo) account.
    """
    row = session.execute(
        select(RefreshToken, User)
        .join(User, User.id == RefreshToken.user_id)
        .where(RefreshToken.token_hash == _token_digest(token))
    ).first()
    now = _now()
    if row is None or row[0].revoked or row[1].disabled or row[0].expires_at <= now:
        raise AuthenticationError("invalid, expired or revoked refresh token; log in again")
    stored, user = row
    _refuse_demo(user.is_demo, allow_demo)
    claimed = session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == stored.id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked.is_(False),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        _revoke_family(session, stored.family, user.username, actor="refresh-reuse")
        return None
    successor = create_refresh_token(session, user.username, ttl_s, family=stored.family)
    return _principal(user), successor


def _revoke_family(session: Session, family: str, username: str, *, actor: str) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family == family)
        .values(revoked=True)
        .execution_options(synchronize_session=False)
    )
    append_audit(
        session,
        actor=actor,
        action="refresh.revoke",
        entity="user",
        entity_id=username,
        after={"family": family},
    )


def revoke_refresh_session(session: Session, token: str) -> tuple[str, str] | None:
    """Log out: revoke the login session (every token of the family) of a refresh token.

    Returns
    -------
    tuple of str, or None
        The session (family) and its user name, or ``None`` for an unknown token (a no-op, so
        logging out twice is harmless).
    """
    row = session.execute(
        select(RefreshToken.family, User.username)
        .join(User, User.id == RefreshToken.user_id)
        .where(RefreshToken.token_hash == _token_digest(token))
    ).first()
    if row is None:
        return None
    _revoke_family(session, row.family, row.username, actor=row.username)
    return row.family, row.username
