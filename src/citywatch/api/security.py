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

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from citywatch.dispatch.accounts import (
    Principal,
    active_principal,
    authenticate_password,
    authenticate_token,
    create_refresh_token,
    revoke_refresh_session,
    rotate_refresh_token,
)
from citywatch.errors import AuthenticationError

__all__ = [
    "DEMO_USER",
    "CurrentUser",
    "TokenIssuer",
    "current_user",
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

    def issue(self, who: Principal) -> str:
        """A JWT naming the user, role, scope and unit, expiring after ``ttl_s``."""
        now = datetime.now(UTC)
        claims = {
            "sub": who.username,
            "role": who.role.value,
            "scope_id": who.scope,
            "unit_id": who.unit_id,
            "iat": now,
            "exp": now + timedelta(seconds=self.ttl_s),
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def check(self, token: str, *, allow_expired: bool = False) -> str:
        """The user name of a valid token, unexpired unless ``allow_expired``;
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
        username: str = claims["sub"]
        return username


def _token_response(state: Any, who: Principal, refresh_token: str) -> dict[str, Any]:
    issuer: TokenIssuer = state.tokens
    return {
        "access_token": issuer.issue(who),
        "token_type": "bearer",
        "expires_in": issuer.ttl_s,
        "refresh_token": refresh_token,
        "refresh_expires_in": state.settings.refresh_ttl_s,
    }


def login(request: Request, username: str, password: str) -> dict[str, Any]:
    """Check a password; issue an access token and the first refresh token of a session."""
    state = request.app.state
    with state.service.sessions.begin() as session:
        who = authenticate_password(session, username, password, allow_demo=state.settings.demo)
        refresh_token = create_refresh_token(session, username, state.settings.refresh_ttl_s)
    return _token_response(state, who, refresh_token)


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


def logout(request: Request, refresh_token: str) -> None:
    """Revoke the login session of a refresh token (unknown tokens are ignored)."""
    with request.app.state.service.sessions.begin() as session:
        revoke_refresh_session(session, refresh_token)


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
        username = request_app.state.tokens.check(token, allow_expired=allow_expired)
        return active_principal(session, username, allow_demo=allow_demo)


def current_user(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """FastAPI dependency: the authenticated caller."""
    return principal_from_token(request.app, token)


CurrentUser = Annotated[Principal, Depends(current_user)]
