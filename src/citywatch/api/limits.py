"""Limits on what a request may send, enforced before any route, authentication or parsing.

:class:`RequestLimits` is a pure ASGI middleware:

* a body larger than ``max_body_bytes`` is refused with 413 as soon as its ``Content-Length``
  (or, for chunked bodies, its running size) says so, before authentication and before any
  byte is parsed;
* a body that does not arrive within ``body_timeout_s`` (a slow or stalled client) is refused
  with 408 and the connection closed, so that half-sent requests cannot pin workers;
* a path, query string or form body containing a NUL character or bytes that are not UTF-8
  (lone surrogates included) is refused with 422: PostgreSQL cannot store NUL in text, and
  such strings are never meaningful input.

JSON bodies are checked by the schemas (:mod:`citywatch.api.schemas`): every string is bounded
and refuses NUL; pydantic refuses lone surrogates in JSON.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from citywatch.api.errors import error_body

__all__ = [
    "DEFAULT_BODY_TIMEOUT_S",
    "DEFAULT_MAX_BODY_BYTES",
    "ASGIApp",
    "Receive",
    "RequestLimits",
    "Scope",
    "Send",
    "bad_text",
    "replay_body",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: 1 MiB: a batch of 1,000 AVL fixes is about 100 kB.
DEFAULT_MAX_BODY_BYTES: Final = 1 << 20
#: Seconds a client may take to send its whole body.
DEFAULT_BODY_TIMEOUT_S: Final = 10.0


def bad_text(raw: bytes) -> str | None:
    """Why percent-decoded ``raw`` is not acceptable text (NUL, not UTF-8), or ``None``."""
    if b"\x00" in raw:
        return "NUL characters are not allowed"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "text must be UTF-8 (no lone surrogates)"
    return None


def _path_problem(scope: Scope) -> str | None:
    raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogatepass")
    for part in (raw_path, scope.get("query_string", b"")):
        problem = bad_text(unquote_to_bytes(part.replace(b"+", b" ")))
        if problem is not None:
            return problem
    return None


@dataclass
class _Refusal(Exception):
    status: int
    code: str
    message: str


class RequestLimits:
    """ASGI middleware enforcing body size, body time and clean text (see the module doc).

    Parameters
    ----------
    app : ASGI application
    max_body_bytes : int
        Largest accepted request body.
    body_timeout_s : float
        Time allowed to receive a whole body.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        problem = _path_problem(scope)
        if problem is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": problem})
                return
            await _answer(send, 422, "validation_error", problem)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        try:
            length = int(headers.get(b"content-length", b"0"))
        except ValueError:
            await _answer(send, 400, "bad_request", "Content-Length is not a number")
            return
        if length > self.max_body_bytes:
            await _answer(send, 413, "payload_too_large", self._too_large())
            return
        try:
            body = await asyncio.wait_for(self._read_body(receive), self.body_timeout_s)
        except TimeoutError:
            msg = f"request body not received within {self.body_timeout_s:g} s"
            await _answer(send, 408, "request_timeout", msg, close=True)
            return
        except _Refusal as refusal:
            await _answer(send, refusal.status, refusal.code, refusal.message)
            return
        if headers.get(b"content-type", b"").startswith(b"application/x-www-form-urlencoded"):
            problem = bad_text(unquote_to_bytes(body.replace(b"+", b" ")))
            if problem is not None:
                await _answer(send, 422, "validation_error", problem)
                return
        await self.app(scope, replay_body(body, receive), send)

    def _too_large(self) -> str:
        return f"request body larger than {self.max_body_bytes} bytes"

    async def _read_body(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refusal(400, "bad_request", "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _Refusal(413, "payload_too_large", self._too_large())
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the already read body to the app, then the real stream."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(send: Send, status: int, code: str, message: str, *, close: bool = False) -> None:
    payload = json.dumps(error_body(status, code, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
