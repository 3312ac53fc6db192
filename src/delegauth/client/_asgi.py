"""A plain ASGI middleware (ASGI 3) that guards an application with delegauth.

Verification and the decision run in a worker thread (the client is synchronous), so
the event loop never waits on delegauth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from delegauth.client._client import Delegauth
from delegauth.client._exceptions import ClientError
from delegauth.client._guard import Refusal
from delegauth.client._wsgi import ENVIRON_KEY, Rule, requirement_for

__all__ = ["ASGIMiddleware"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SCOPE_KEY = ENVIRON_KEY  # "delegauth.token"


class ASGIMiddleware:
    """Answer 401, 403 or 503 (problem+json) unless the request's bearer token is valid
    and delegauth allows what ``require`` names; the verified AccessToken is passed on
    in ``scope["delegauth.token"]``. A refused WebSocket is closed before it is accepted
    (the server answers 403); lifespan events pass through."""

    def __init__(self, app: Any, delegauth: Delegauth, require: Rule = None) -> None:
        self._app = app
        self._delegauth = delegauth
        self._rule = require

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        requirement = requirement_for(self._rule, scope.get("method", "GET"), scope.get("path", ""))
        values = [v for k, v in scope.get("headers", []) if k.lower() == b"authorization"]
        # Two Authorization headers are one malformed header, never a choice between them.
        header = b", ".join(values).decode("latin-1") if values else None
        try:
            token = await asyncio.to_thread(self._delegauth.authorize, header, requirement)
        except ClientError as ex:
            await _refuse(scope, send, Refusal.of(ex))
            return
        await self._app({**scope, SCOPE_KEY: token}, receive, send)


async def _refuse(scope: Scope, send: Send, refusal: Refusal) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})  # policy violation
        return
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in refusal.headers]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": refusal.body})
