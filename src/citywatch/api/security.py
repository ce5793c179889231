"""Authentication: OAuth2 password flow issuing short-lived JWTs, and device API tokens.

Every request carries ``Authorization: Bearer <token>`` where the token is either an access
token from ``POST /api/v1/auth/token`` (a JWT signed with HS256, valid ``token_ttl_s``) or a
device API token (``cw_...``, from ``citywatch users token``).  WebSocket clients, which cannot
set headers from a browser, pass the same token as the ``access_token`` query parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from citywatch.dispatch.accounts import Principal, Role, authenticate_password, authenticate_token
from citywatch.errors import AuthenticationError

__all__ = [
    "DEMO_USER",
    "CurrentUser",
    "TokenIssuer",
    "current_user",
    "login",
    "principal_from_token",
]

#: The account that logs in only in demo mode.
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

    def check(self, token: str) -> Principal:
        """The principal of a valid, unexpired token; :class:`AuthenticationError` otherwise."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._secret, algorithms=[_ALGORITHM], options={"require": ["exp", "sub"]}
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("access token expired; log in again") from None
        except jwt.PyJWTError:
            raise AuthenticationError("invalid access token") from None
        return Principal(
            claims["sub"], Role(claims["role"]), claims.get("scope_id"), claims.get("unit_id")
        )


def login(request: Request, username: str, password: str) -> dict[str, Any]:
    """Check a password and issue an access token (OAuth2 token response)."""
    state = request.app.state
    if username == DEMO_USER and not state.settings.demo:
        raise AuthenticationError("the demo account works only in demo mode")
    with state.service.sessions.begin() as session:
        who = authenticate_password(session, username, password)
    issuer: TokenIssuer = state.tokens
    return {"access_token": issuer.issue(who), "token_type": "bearer", "expires_in": issuer.ttl_s}


def principal_from_token(request_app: Any, token: str | None) -> Principal:
    """The principal of a bearer token (access token or device API token)."""
    if not token:
        raise AuthenticationError("not authenticated: send Authorization: Bearer <token>")
    if token.startswith("cw_"):
        with request_app.state.service.sessions() as session:
            return authenticate_token(session, token)
    who: Principal = request_app.state.tokens.check(token)
    if who.username == DEMO_USER and not request_app.state.settings.demo:
        raise AuthenticationError("the demo account works only in demo mode")
    return who


def current_user(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """FastAPI dependency: the authenticated caller."""
    return principal_from_token(request.app, token)


CurrentUser = Annotated[Principal, Depends(current_user)]
