"""Authentication: OAuth2 password flow issuing short-lived JWTs, and device API tokens.

Every request carries ``Authorization: Bearer <token>`` where the token is either an access
token from ``POST /api/v1/auth/token`` (a JWT signed with HS256, valid ``token_ttl_s``) or a
device API token (``cw_...``, from ``citywatch users token``).  WebSocket clients, which cannot
set headers from a browser, pass the same token as the ``access_token`` query parameter.

Logging in also returns a single-use refresh token (``cwr_...``) that ``POST /auth/refresh``
exchanges for a new access token and a new refresh token, so that a wall screen stays logged
in; ``POST /auth/logout`` revokes it.  Every authenticated request re-reads its account (one
indexed row), so disabling an account or leaving demo mode shuts its tokens out at once.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

import jwt
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

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

__all__ = [
    "DEMO_USER",
    "CurrentUser",
    "FeedUser",
    "LoginGuard",
    "TokenIssuer",
    "current_user",
    "feed_user",
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
    with state.service.sessions.begin() as session:
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
    with state.service.sessions.begin() as session:
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
    with request.app.state.service.sessions.begin() as session:
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
    as the account stays enabled."""
    if not token:
        raise AuthenticationError("not authenticated: send Authorization: Bearer <token>")
    allow_demo: bool = request_app.state.settings.demo
    with request_app.state.service.sessions() as session:
        if token.startswith("cw_"):
            return authenticate_token(session, token, allow_demo=allow_demo)
        claims = request_app.state.tokens.check(token, allow_expired=allow_expired)
        if "jti" in claims and is_revoked(session, claims["jti"]):
            raise AuthenticationError("access token revoked (logged out); log in again")
        return active_principal(session, claims["sub"], allow_demo=allow_demo)


def current_user(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """FastAPI dependency: the authenticated caller (never a sensor feed account, which may
    only post sightings: see :func:`feed_user`)."""
    who = principal_from_token(request.app, token)
    if who.role is Role.SENSOR_FEED:
        raise PermissionDeniedError("a sensor feed account may only post sightings")
    return who


def feed_user(request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]) -> Principal:
    """FastAPI dependency of ``POST /sightings``: any authenticated caller, sensor feeds too."""
    return principal_from_token(request.app, token)


CurrentUser = Annotated[Principal, Depends(current_user)]
FeedUser = Annotated[Principal, Depends(feed_user)]
