"""Security headers on every response (issue 12, finding 7): a pure ASGI middleware, so streaming and
background tasks behave as without it.

* ``Content-Security-Policy``: no script at all, styles and images from this origin only, forms posted here only,
  never framed. The dashboard has no inline script or style (its stylesheet is ``/dashboard/static``).
* ``/docs`` and ``/redoc`` are FastAPI's pages, with Swagger UI and ReDoc served from the package (api/api_docs.py),
  started by an inline script. They get their own policy: scripts from this origin and the inline scripts of
  the page itself by their sha256 (hashed as served, so a FastAPI upgrade that changes them keeps working), still
  never framed. They show no health data (only the schema), and render nothing from the query string.
* ``X-Frame-Options: DENY`` for browsers that predate ``frame-ancestors``; ``X-Content-Type-Options: nosniff``.
* ``Referrer-Policy: same-origin``, not ``no-referrer``: with ``no-referrer`` a browser sends ``Origin: null`` on
  form posts, and the dashboard's CSRF check needs the real Origin of its own pages.
* ``Strict-Transport-Security`` only when the request came over TLS: uvicorn sets the scheme from
  ``X-Forwarded-Proto`` when the proxy is one of its ``--forwarded-allow-ips`` (127.0.0.1 by default), so a
  TLS-terminating proxy in front counts and a client's own header does not.
* ``Cache-Control: no-store`` on everything but static assets and the API's description: pages and JSON carry
  health data, which must not stay in a shared computer's cache or a proxy's.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DOCS_PATHS", "STRICT_CSP", "SecurityHeaders", "docs_csp"]

STRICT_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
              "frame-ancestors 'none'; base-uri 'none'")
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
CACHEABLE_PREFIXES = ("/dashboard/static/", "/docs/assets/")
CACHEABLE_PATHS = frozenset({"/openapi.json"}) | DOCS_PATHS  # no health data in these
HSTS = "max-age=31536000; includeSubDomains"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def docs_csp(html: bytes) -> str:
    """The policy for FastAPI's documentation pages: their assets from the package (api/api_docs.py, no CDN), and
    their own inline scripts by hash.

    Styles may be inline there (ReDoc adds ``<style>`` elements as it renders; a style cannot run code)."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(body).digest()).decode()}'"
                      for body in _INLINE_SCRIPT.findall(html))
    return (f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; font-src 'self' data:; "
            "img-src 'self' data:; connect-src 'self'; worker-src blob:; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def _headers(scope: Scope, csp: str, existing: Iterable[bytes]) -> list[tuple[bytes, bytes]]:
    path: str = scope.get("path", "")
    names = set(existing)
    out = [(b"content-security-policy", csp.encode()), (b"x-frame-options", b"DENY"),
           (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
    if scope.get("scheme") == "https":
        out.append((b"strict-transport-security", HSTS.encode()))
    cacheable = path in CACHEABLE_PATHS or path.startswith(CACHEABLE_PREFIXES)
    if not cacheable and b"cache-control" not in names:
        out.append((b"cache-control", b"no-store"))
    return [(name, value) for name, value in out if name not in names]


class SecurityHeaders:
    """Adds the headers above to every HTTP response (those a route set itself are kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") in DOCS_PATHS:
            await self._docs(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += _headers(scope, STRICT_CSP, (name.lower() for name, _ in headers))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hold the (small) page until it is complete, to hash its inline scripts into its policy."""
        start: Message | None = None
        body: list[bytes] = []

        async def buffer(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            html = b"".join(body)
            headers = [(n, v) for n, v in start.get("headers", []) if n.lower() != b"content-length"]
            headers += _headers(scope, docs_csp(html), (name.lower() for name, _ in headers))
            headers.append((b"content-length", str(len(html)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": html})

        await self.app(scope, receive, buffer)
