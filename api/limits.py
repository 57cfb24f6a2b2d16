"""What one request may cost: a bound on its body, and the client address the login throttle counts by.

* :class:`BodyLimit` answers 413 before a body is read: at once when ``Content-Length`` says it is too large, and
  as soon as the bytes streamed (a chunked body has no length) pass the bound. Without it, bodies were read whole
  before authentication: six unauthenticated 100 MB POSTs took the API from 131 to 1,179 MiB (issue 12).
* :func:`client_address` is the address the server resolves behind its trusted proxies: a request from one of
  them is counted by the right-most address in ``X-Forwarded-For`` that is not a trusted proxy (the left-most
  entries are whatever the client wrote, so they cannot be believed).

Settings (environment, like the gateway's): ``TELECARE_API_MAX_BODY_BYTES`` (default 1 MiB) and
``TELECARE_API_TRUSTED_PROXIES`` (comma-separated addresses or networks, default ``127.0.0.1``).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from functools import cached_property
from typing import Any

from fastapi import Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.exceptions import HTTPException

__all__ = ["ApiLimits", "RequestLimits", "client_address"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ApiLimits(BaseSettings):
    """The API's own limits, read from ``TELECARE_API_*`` (and ``.env``) like the gateway's settings."""

    model_config = SettingsConfigDict(env_prefix="TELECARE_API_", env_file=".env", extra="ignore")

    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Larger request bodies are answered 413")
    trusted_proxies: str = Field("127.0.0.1", description="Proxies whose X-Forwarded-For is believed")

    @cached_property
    def proxy_networks(self) -> tuple[Network, ...]:
        return tuple(ipaddress.ip_network(part.strip(), strict=False)
                     for part in self.trusted_proxies.split(",") if part.strip())


def _too_large_body(limit: int) -> bytes:
    message = f"the request body is larger than {limit:,} bytes"
    return json.dumps({"error": {"status": 413, "code": "too_large", "message": message}}).encode()


class RequestLimits:
    """Pure ASGI middleware: bodies past ``max_bytes`` are a 413 before they are read (nothing is buffered here);
    and the client address, resolved once, is put in the request's state (``request.state.client_address``: the
    audit trail and the login throttle read it)."""

    def __init__(self, app: ASGIApp, limits: ApiLimits) -> None:
        self.app = app
        self.limits = limits
        self.max_bytes = limits.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["client_address"] = resolve_address(scope, self.limits)
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised to whoever is reading the body: FastAPI passes an HTTPException on, and the API's
                    # handler answers it in the one error shape (413, too_large).
                    raise HTTPException(413, f"the request body is larger than {self.max_bytes:,} bytes")
            return message

        await self.app(scope, counted_receive, send)

    async def _refuse(self, send: Send) -> None:
        body = _too_large_body(self.max_bytes)
        # Connection: close: the client may still be sending the body we will not read.
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server (h11, httptools) refuses a malformed length before we are called
    return None


def client_address(request: Request) -> str:
    """The client's address: the peer, or behind a trusted proxy the right-most untrusted ``X-Forwarded-For``."""
    resolved = getattr(request.state, "client_address", None)
    return resolved if isinstance(resolved, str) else resolve_address(request.scope, request.app.state.limits)


def resolve_address(scope: Scope, limits: ApiLimits) -> str:
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    if not _trusted(peer, limits.proxy_networks):
        return peer
    hops = [hop.strip() for name, value in scope.get("headers", ()) if name == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _trusted(hop, limits.proxy_networks):
            return hop[:64]  # bounded: it keys the throttle's tables
    return peer  # every hop is a proxy of ours (or none was given): the request is the proxy's own


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
