"""Authentication: OAuth2 password flow issuing short-lived JWTs, and device API tokens.

Every request carries ``Authorization: Bearer <token>`` where the token is either an access
token from ``POST /api/v1/auth/token`` (a JWT signed with HS256, valid ``token_ttl_s``) or a
device API token (``cw_...``, from ``citywatch users token``).  WebSocket clients, which cannot
set headers from a browser, pass the same token as the ``access_token`` query parameter.

Logging in also returns a single-use refresh token (``cwr_...``) that ``POST /auth/refresh``
exchanges for a new access token and a new refresh token, so that a wall screen stays logged
in; ``POST /auth/logout`` revokes it.

A checked token is trusted by its worker for ``auth_cache_s`` (2 s) without reading its account
again (:class:`PrincipalCache`): a stream of AVL fixes costs no database reads for its
authentication.  Every commit through the service that disables an account, changes its role
or scope, revokes an API token or logs a session out empties the affected entries of every
worker's cache before it is acknowledged (and, on PostgreSQL, the other workers' caches through
``NOTIFY``); a change made by another program (the CLI) takes effect within ``auth_cache_s``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

import jwt
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import event, inspect, select
from sqlalchemy import func as sa_func
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from citywatch.api.events import AUTH_CHANGED
from citywatch.dispatch.accounts import (
    Principal,
    Role,
    active_principal,
    authenticate_password,
    authenticate_token,
    create_refresh_token,
    is_revoked,
    revoke_access_token,
    revoke_refresh_session,
    rotate_refresh_token,
)
from citywatch.errors import AuthenticationError, PermissionDeniedError, TooManyRequestsError
from citywatch.store.db import writing
from citywatch.store.dispatch_models import ApiToken, RevokedToken, User

__all__ = [
    "AUTH_CHANGED",
    "DEMO_USER",
    "CurrentUser",
    "FeedUser",
    "LoginGuard",
    "PrincipalCache",
    "TokenIssuer",
    "current_user",
    "feed_user",
    "install_cache_invalidation",
    "login",
    "logout",
    "principal_from_token",
    "refresh",
]

#: The admin account that ``serve --demo`` enables (every demo account works only in demo mode).
DEMO_USER = "demo"
_ALGORITHM = "HS256"

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


class TokenIssuer:
    """Signs and checks access tokens with one key and lifetime."""

    def __init__(self, secret: str, ttl_s: int) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def issue(self, who: Principal, session_id: str | None = None) -> str:
        """A JWT naming the user, role, scope and unit (and the login session it belongs
        to, ``sid``), expiring after ``ttl_s``."""
        now = datetime.now(UTC)
        claims = {
            "jti": secrets.token_hex(16),
            "sid": session_id,
            "sub": who.username,
            "role": who.role.value,
            "scope_id": who.scope,
            "unit_id": who.unit_id,
            "iat": now,
            "exp": now + timedelta(seconds=self.ttl_s),
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def check(self, token: str, *, allow_expired: bool = False) -> dict[str, Any]:
        """The claims of a valid token, unexpired unless ``allow_expired``;
        :class:`AuthenticationError` otherwise."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                options={"require": ["exp", "sub"], "verify_exp": not allow_expired},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("access token expired; log in again") from None
        except jwt.PyJWTError:
            raise AuthenticationError("invalid access token") from None
        return claims


#: Account fields whose change must end cached authentications.
_ACCOUNT_FIELDS = ("username", "role", "scope", "unit_id", "disabled", "is_demo")
_AUTH_TABLES = frozenset({"users", "api_tokens", "revoked_tokens"})
_CHANGED = "citywatch_auth_changed"
_EVERYONE = "*"
#: Tokens a worker remembers (the least recently used are forgotten first).
_CACHED_TOKENS = 20_000


class PrincipalCache:
    """Checked bearer tokens and their principals, trusted for ``ttl_s`` seconds (never beyond
    the token's own expiry); thread-safe."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self.hits = 0

    def get(self, token: str) -> Principal | None:
        """The cached principal of ``token``, ``None`` when unknown or too old."""
        with self._lock:
            found = self._entries.get(token)
            if found is None:
                return None
            if found[1] < time.monotonic():
                del self._entries[token]
                return None
            self.hits += 1
            return found[0]

    def put(self, token: str, who: Principal, expires_at: float | None = None) -> None:
        """Remember a checked token until ``ttl_s`` from now or ``expires_at`` (epoch s)."""
        if self.ttl_s <= 0:
            return
        until = time.monotonic() + self.ttl_s
        if expires_at is not None:
            until = min(until, time.monotonic() + expires_at - time.time())
        with self._lock:
            self._entries[token] = (who, until)
            while len(self._entries) > _CACHED_TOKENS:
                self._entries.popitem(last=False)

    def forget(self, usernames: set[str]) -> None:
        """Drop the tokens of these accounts (every token when the set holds ``"*"``)."""
        with self._lock:
            if _EVERYONE in usernames:
                self._entries.clear()
                return
            for token in [t for t, (w, _) in self._entries.items() if w.username in usernames]:
                del self._entries[token]


def _account_changes(session: Session) -> set[str]:
    changed: set[str] = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, User):
            state = inspect(obj)
            if obj in session.new or obj in session.deleted:
                changed.add(obj.username)
            elif any(state.attrs[f].history.has_changes() for f in _ACCOUNT_FIELDS):
                changed.add(obj.username)
                changed.update(state.attrs.username.history.deleted or ())
        elif isinstance(obj, ApiToken | RevokedToken):
            changed.add(_EVERYONE)
    return changed


def install_cache_invalidation(
    sessions: sessionmaker[Session], cache: PrincipalCache, *, notify_channel: str | None
) -> None:
    """Empty ``cache``'s affected entries when a transaction of ``sessions`` changes accounts,
    API tokens or revoked tokens (ORM changes and bulk ``UPDATE``/``DELETE`` statements).

    With ``notify_channel`` (PostgreSQL) the change is also announced to the other workers
    (an :data:`AUTH_CHANGED` event on the bus, delivered at commit).
    """

    def note(session: Session, users: set[str]) -> None:
        if not users:
            return
        session.info.setdefault(_CHANGED, set()).update(users)
        if notify_channel is not None:
            payload = json.dumps({"type": AUTH_CHANGED, "users": sorted(users)})
            session.connection().execute(select(sa_func.pg_notify(notify_channel, payload)))

    def after_flush(session: Session, _context: Any) -> None:
        note(session, _account_changes(session))

    def bulk(state: ORMExecuteState) -> None:
        if state.is_update or state.is_delete:
            tables = {t.name for t in getattr(state.statement, "_from_objects", ())} | {
                getattr(getattr(state.statement, "table", None), "name", "")
            }
            if tables & _AUTH_TABLES:
                note(state.session, {_EVERYONE})

    def after_commit(session: Session) -> None:
        users = session.info.pop(_CHANGED, None)
        if users:
            cache.forget(users)

    event.listen(sessions, "after_flush", after_flush)
    event.listen(sessions, "do_orm_execute", bulk)
    event.listen(sessions, "after_commit", after_commit)
    event.listen(sessions, "after_rollback", lambda s: s.info.pop(_CHANGED, None))


def _token_response(
    state: Any, who: Principal, refresh_token: str, session_id: str | None = None
) -> dict[str, Any]:
    issuer: TokenIssuer = state.tokens
    return {
        "access_token": issuer.issue(who, session_id),
        "token_type": "bearer",
        "expires_in": issuer.ttl_s,
        "refresh_token": refresh_token,
        "refresh_expires_in": state.settings.refresh_ttl_s,
    }


#: Failed logins allowed before backing off: per account, and per client address (higher:
#: a command centre's screens share one address), then the back-off.
ACCOUNT_FREE_ATTEMPTS: Final = 3
CLIENT_FREE_ATTEMPTS: Final = 20
BACKOFF_BASE_S: Final = 1.0
BACKOFF_MAX_S: Final = 60.0
#: Clients and accounts remembered (the least recently failed are forgotten first).
_REMEMBERED = 50_000


@dataclass
class _Failures:
    count: int
    last: float


class LoginGuard:
    """Keeps password logins from stalling dispatch.

    * per account name and per client address: after :data:`ACCOUNT_FREE_ATTEMPTS` (or
      :data:`CLIENT_FREE_ATTEMPTS`) failures, each further attempt must wait
      ``BACKOFF_BASE_S * 2**k`` seconds (at most :data:`BACKOFF_MAX_S`), answered 429 with
      ``Retry-After`` without hashing anything;
    * argon2 runs in a bounded pool of its own (``workers`` threads), never on the event loop
      nor in the pool that serves dispatch requests; when ``max_waiting`` logins already wait
      for it, a login is refused at once (429).

    The counters live in the worker process; the account lockout
    (:func:`~citywatch.dispatch.accounts.authenticate_password`) lives in the database.
    """

    def __init__(self, *, workers: int = 1, max_waiting: int = 8) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="citywatch-argon2")
        self._max_waiting = max_waiting
        self._waiting = 0
        self._seen: OrderedDict[str, _Failures] = OrderedDict()

    def _wait_s(self, key: str, free: int, now: float) -> float:
        f = self._seen.get(key)
        if f is None or f.count < free:
            return 0.0
        backoff = min(BACKOFF_BASE_S * 2.0 ** (f.count - free), BACKOFF_MAX_S)
        if now - f.last > 2 * BACKOFF_MAX_S:  # quiet for long enough: forgiven
            del self._seen[key]
            return 0.0
        return max(0.0, f.last + backoff - now)

    def check(self, client: str, username: str) -> None:
        """:class:`TooManyRequestsError` if the client or account must still wait."""
        now = time.monotonic()
        wait = max(
            self._wait_s(f"c:{client}", CLIENT_FREE_ATTEMPTS, now),
            self._wait_s(f"u:{username}", ACCOUNT_FREE_ATTEMPTS, now),
        )
        if wait > 0:
            raise TooManyRequestsError(
                f"too many failed logins; try again in {wait:.0f} s", retry_after_s=wait
            )

    def failed(self, client: str, username: str) -> None:
        """Count a failed login of the client and of the account."""
        now = time.monotonic()
        for key in (f"c:{client}", f"u:{username}"):
            f = self._seen.pop(key, None) or _Failures(0, now)
            f.count, f.last = f.count + 1, now
            self._seen[key] = f
        while len(self._seen) > _REMEMBERED:
            self._seen.popitem(last=False)

    def succeeded(self, client: str, username: str) -> None:
        """Forget the failures of the client and account."""
        self._seen.pop(f"c:{client}", None)
        self._seen.pop(f"u:{username}", None)

    async def run(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in the hashing pool; 429 when too many logins wait for it already."""
        if self._waiting >= self._max_waiting:
            raise TooManyRequestsError("too many logins at once; try again", retry_after_s=1)
        self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._waiting -= 1

    def close(self) -> None:
        """Stop the hashing pool."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _login_in_pool(state: Any, username: str, password: str) -> tuple[Principal, str, str]:
    # Commits the failure counters and a lockout even when the login fails.
    failure: AuthenticationError | None = None
    family = secrets.token_hex(16)
    with writing(state.service.sessions) as session:
        try:
            who = authenticate_password(session, username, password, allow_demo=state.settings.demo)
        except AuthenticationError as exc:
            failure = exc
        else:
            refresh_token = create_refresh_token(
                session, username, state.settings.refresh_ttl_s, family=family
            )
    if failure is not None:
        raise failure
    return who, refresh_token, family


async def login(request: Request, username: str, password: str) -> dict[str, Any]:
    """Check a password (throttled, off the event loop); issue an access token and the first
    refresh token of a session."""
    state = request.app.state
    guard: LoginGuard = state.login_guard
    client = request.client.host if request.client else "unknown"
    guard.check(client, username)
    try:
        who, refresh_token, family = await guard.run(_login_in_pool, state, username, password)
    except AuthenticationError:
        guard.failed(client, username)
        raise
    guard.succeeded(client, username)
    return _token_response(state, who, refresh_token, family)


def refresh(request: Request, refresh_token: str) -> dict[str, Any]:
    """Exchange a refresh token (spent) for a new access token and a new refresh token."""
    state = request.app.state
    with writing(state.service.sessions) as session:
        rotated = rotate_refresh_token(
            session, refresh_token, state.settings.refresh_ttl_s, allow_demo=state.settings.demo
        )
    if rotated is None:
        raise AuthenticationError(
            "refresh token already used: the session is revoked for safety; log in again"
        )
    who, successor = rotated
    return _token_response(state, who, successor)


def logout(request: Request, refresh_token: str, access_token: str | None = None) -> None:
    """Revoke the login session of a refresh token (unknown tokens are ignored) and the access
    token given with it, when it belongs to that session (same user; same login when the
    token says which): its ``jti`` is denied on every worker until it expires."""
    claims = None
    if access_token and not access_token.startswith("cw_"):
        claims = request.app.state.tokens.check(access_token, allow_expired=True)
    with writing(request.app.state.service.sessions) as session:
        ended = revoke_refresh_session(session, refresh_token)
        if ended is None or claims is None or "jti" not in claims:
            return
        family, username = ended
        if claims["sub"] == username and claims.get("sid") in (None, family):
            expires = datetime.fromtimestamp(claims["exp"], UTC)
            revoke_access_token(session, claims["jti"], expires)


def principal_from_token(
    request_app: Any, token: str | None, *, allow_expired: bool = False
) -> Principal:
    """The principal of a bearer token (access token or device API token) of an enabled
    account; demo accounts only in demo mode.  ``allow_expired`` accepts an expired access
    token: an open event stream, authenticated when it connected, outlives its token as long
    as the account stays enabled.  A token checked within ``auth_cache_s`` is answered from
    the worker's :class:`PrincipalCache` (which account changes empty)."""
    if not token:
        raise AuthenticationError("not authenticated: send Authorization: Bearer <token>")
    cache: PrincipalCache | None = getattr(request_app.state, "principals", None)
    if cache is not None and not allow_expired:
        hit = cache.get(token)
        if hit is not None:
            return hit
    allow_demo: bool = request_app.state.settings.demo
    expires: float | None = None
    with request_app.state.service.sessions() as session:
        if token.startswith("cw_"):
            who = authenticate_token(session, token, allow_demo=allow_demo)
        else:
            claims = request_app.state.tokens.check(token, allow_expired=allow_expired)
            if "jti" in claims and is_revoked(session, claims["jti"]):
                raise AuthenticationError("access token revoked (logged out); log in again")
            who = active_principal(session, claims["sub"], allow_demo=allow_demo)
            expires = float(claims["exp"])
    if cache is not None and not allow_expired:
        cache.put(token, who, expires)
    return who


async def current_user(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """FastAPI dependency: the authenticated caller (never a sensor feed account, which may
    only post sightings: see :func:`feed_user`)."""
    who = await _cached_principal(request, token)
    if who.role is Role.SENSOR_FEED:
        raise PermissionDeniedError("a sensor feed account may only post sightings")
    return who


async def feed_user(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """FastAPI dependency of ``POST /sightings``: any authenticated caller, sensor feeds too."""
    return await _cached_principal(request, token)


async def _cached_principal(request: Request, token: str | None) -> Principal:
    """The caller from the token cache without leaving the event loop; a token not cached is
    checked in a worker thread."""
    cache: PrincipalCache | None = getattr(request.app.state, "principals", None)
    if token and cache is not None:
        hit = cache.get(token)
        if hit is not None:
            return hit
    return await asyncio.to_thread(principal_from_token, request.app, token)


CurrentUser = Annotated[Principal, Depends(current_user)]
FeedUser = Annotated[Principal, Depends(feed_user)]
