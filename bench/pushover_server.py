"""A local HTTP server that answers as Pushover's API documents (https://pushover.net/api), for tests.

Endpoints: ``POST /1/messages.json``, ``GET /1/receipts/{receipt}.json?token=``,
``POST /1/receipts/{receipt}/cancel.json`` and ``POST /1/users/validate.json``. Bodies are form-encoded, as
Pushover takes them; answers are Pushover's JSON with its statuses and error texts (HTTP 400 with
``{"status": 0, "errors": [...], "<param>": "invalid"}``; 404 for an unknown receipt). Every accepted message is
recorded in :attr:`PushoverServer.messages`; priority 2 messages get a receipt that the test can acknowledge or
expire. Knobs: :meth:`fail_next` (429 or 5xx for the next N requests), :meth:`recover` (forget the failures
still queued), :attr:`delay_s` (answer slowly) and :attr:`slow_users` (answer slowly for those user keys only).
Messages answers carry the ``X-Limit-App-*`` headers.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

RECEIPTS_PATH = "/1/receipts/"
MIN_RETRY_S = 30
MAX_EXPIRE_S = 10800


@dataclass
class Receipt:
    id: str
    user: str
    retry: int
    expire: int
    sent_at: int
    acknowledged_at: int = 0
    acknowledged_by: str = ""
    acknowledged_by_device: str = ""
    expired_at: int = 0
    cancelled: bool = False

    def as_json(self) -> dict[str, Any]:
        acknowledged = bool(self.acknowledged_at)
        expired = bool(self.expired_at) or (not acknowledged and time.time() >= self.sent_at + self.expire)
        return {
            "status": 1,
            "request": secrets.token_hex(16),
            "acknowledged": int(acknowledged),
            "acknowledged_at": self.acknowledged_at,
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_by_device": self.acknowledged_by_device,
            "last_delivered_at": self.sent_at,
            "expired": int(expired),
            "expires_at": self.expired_at or self.sent_at + self.expire,
            "called_back": 0,
            "called_back_at": 0,
        }


@dataclass
class PushoverServer:
    """``url`` (``http://127.0.0.1:<port>/1/``) is the base URL to give the client."""

    tokens: set[str] = field(default_factory=lambda: {"a" * 30})
    users: set[str] = field(default_factory=lambda: {"u" * 30})
    app_limit: int = 10000
    delay_s: float = 0.0
    slow_users: dict[str, float] = field(default_factory=dict)  # user key → seconds to wait before answering
    messages: list[dict[str, str]] = field(default_factory=list)
    receipts: dict[str, Receipt] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of every request

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[tuple[int, dict[str, str]]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/1/"

    def start(self) -> None:
        server = self

        class Handler(_Handler):
            pushover = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="pushover-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    # --- what the test does -------------------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 500, *, retry_after: float | None = None) -> None:
        """Answer the next ``n`` requests with ``status`` (429, 500, 503 ...) instead of serving them."""
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        with self._lock:
            self._failures.extend([(status, headers)] * n)

    def recover(self) -> None:
        """The outage is over: answer normally from now on."""
        with self._lock:
            self._failures.clear()

    def acknowledge(self, receipt: str, by_user: str, device: str = "phone") -> None:
        with self._lock:
            r = self.receipts[receipt]
            r.acknowledged_at, r.acknowledged_by, r.acknowledged_by_device = int(time.time()), by_user, device

    def expire(self, receipt: str) -> None:
        with self._lock:
            self.receipts[receipt].expired_at = int(time.time())

    # --- what the handler asks ------------------------------------------------------------------------------

    def _next_failure(self) -> tuple[int, dict[str, str]] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _limit_headers(self) -> dict[str, str]:
        now = time.gmtime()
        next_month = (now.tm_year + (now.tm_mon == 12), now.tm_mon % 12 + 1)
        reset = int(time.mktime((*next_month, 1, 0, 0, 0, 0, 0, -1)))
        remaining = max(0, self.app_limit - len(self.messages))
        return {"X-Limit-App-Limit": str(self.app_limit), "X-Limit-App-Remaining": str(remaining),
                "X-Limit-App-Reset": str(reset)}


def _invalid(param: str, error: str, status: int = 400) -> tuple[int, dict[str, Any]]:
    return status, {param: "invalid", "errors": [error], "status": 0, "request": secrets.token_hex(16)}


class _Handler(BaseHTTPRequestHandler):
    pushover: PushoverServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        server = self.pushover
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        form = {k: v[-1] for k, v in parse_qs(raw if method == "POST" else parts.query).items()}
        server.requests.append((method, parts.path))
        if server.delay_s:
            time.sleep(server.delay_s)
        if form.get("user") in server.slow_users:
            time.sleep(server.slow_users[form["user"]])
        failure = server._next_failure()
        if failure is not None:
            status, headers = failure
            if status == 429:
                headers = {**headers, **server._limit_headers(), "X-Limit-App-Remaining": "0"}
                body: dict[str, Any] = {"status": 0, "errors": ["application has exceeded its message limit"],
                                        "request": secrets.token_hex(16)}
                self._answer(status, body, headers)
            else:
                self._answer_raw(status, b"<html><body>Service Unavailable</body></html>", "text/html", headers)
            return
        status, body, headers = self._route(method, parts.path, form)
        self._answer(status, body, headers)

    def _route(self, method: str, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        server = self.pushover
        if form.get("token") not in server.tokens:
            return (*_invalid("token", "application token is invalid"), {})
        if method == "POST" and path == "/1/messages.json":
            return self._message(form)
        if method == "POST" and path == "/1/users/validate.json":
            if form.get("user") not in server.users:
                return (*_invalid("user", "user key is invalid"), {})
            return 200, {"status": 1, "group": 0, "devices": ["phone"], "licenses": ["Android"],
                         "request": secrets.token_hex(16)}, {}
        if path.startswith(RECEIPTS_PATH):
            rest = path[len(RECEIPTS_PATH):]
            if method == "GET" and rest.endswith(".json") and "/" not in rest:
                receipt = server.receipts.get(rest.removesuffix(".json"))
                if receipt is None:
                    return (*_invalid("receipt", "receipt not found; may be invalid or expired", 404), {})
                return 200, receipt.as_json(), {}
            if method == "POST" and rest.endswith("/cancel.json"):
                receipt = server.receipts.get(rest.removesuffix("/cancel.json"))
                if receipt is None:
                    return (*_invalid("receipt", "receipt not found; may be invalid or expired", 404), {})
                receipt.cancelled = True
                return 200, {"status": 1, "request": secrets.token_hex(16)}, {}
        return 404, {"status": 0, "errors": ["not found"], "request": secrets.token_hex(16)}, {}

    def _message(self, form: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        server = self.pushover
        if form.get("user") not in server.users:
            return (*_invalid("user", "user identifier is invalid"), {})
        if not form.get("message"):
            return (*_invalid("message", "message cannot be blank"), {})
        priority = int(form.get("priority") or 0)
        if not -2 <= priority <= 2:
            return (*_invalid("priority", "priority is invalid"), {})
        body: dict[str, Any] = {"status": 1, "request": secrets.token_hex(16)}
        if priority == 2:
            if not form.get("retry"):
                return (*_invalid("retry", "retry must be supplied with priority of 2"), {})
            if not form.get("expire"):
                return (*_invalid("expire", "expire must be supplied with priority of 2"), {})
            retry, expire = int(form["retry"]), int(form["expire"])
            if retry < MIN_RETRY_S:
                return (*_invalid("retry", f"retry must be at least {MIN_RETRY_S} seconds"), {})
            if expire > MAX_EXPIRE_S:
                return (*_invalid("expire", f"expire must be at most {MAX_EXPIRE_S} seconds"), {})
            receipt = secrets.token_hex(15)
            with server._lock:
                server.receipts[receipt] = Receipt(receipt, form["user"], retry, expire, int(time.time()))
            body["receipt"] = receipt
        with server._lock:
            server.messages.append(form)
        return 200, body, server._limit_headers()

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        self._answer_raw(status, json.dumps(body).encode(), "application/json; charset=utf-8", headers)

    def _answer_raw(self, status: int, data: bytes, content_type: str, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test)
