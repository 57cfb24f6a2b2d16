"""Pushover adapter: wraps ``pushover_complete`` with a configured base URL, a time bound and retry/give-up errors.

Only the library's public methods are called (``send_message``, ``check_receipt``, ``cancel_receipt``,
``validate``); the dependency is pinned to the major version the contract test covers
(``tests/notify/test_pushover_contract.py``). Those methods build every URL from the module constant
``PUSHOVER_API_URL`` and call the module-level ``requests.get``/``requests.post`` with no timeout and no way to
pass a session (2.x offers a ``session`` only on private methods). Rewriting the constant would point every
client in the process at one server, so the one adaptation is this: the library module's ``requests`` name is
replaced, once, by a router (:class:`_RequestsRouter`) whose ``get``/``post`` send the call in progress *on this
thread* through that call's own :class:`requests.Session`, and fall back to the real ``requests`` for anyone else.
The call's session

* rewrites URLs under the library's constant to this client's ``base_url``, so two clients with different URLs
  work side by side in one process, from any threads;
* sends GET parameters (the token on a receipt poll) in the query string, as Pushover documents, where the
  library would put them in a GET body;
* passes a ``urllib3.Timeout(total=timeout_s)``: connecting plus waiting for the answer is bounded by
  ``timeout_s`` (Pushover's answers are a few hundred bytes, read at once);
* keeps the last response, so a failure is classified from the HTTP status, Pushover's ``errors`` and the
  ``Retry-After``/``X-Limit-App-*`` headers rather than from the library's message string.

A fresh session per call, made current for the calling thread only, keeps the client safe to share between
threads (the dispatcher sends on a small pool); alerts are few, so the lost connection reuse does not matter.
If a release stops calling ``requests`` through its module, the router cannot be installed or is bypassed: the
call fails loudly (never silently to api.pushover.net from a test), and the contract test fails first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pushover_complete.pushover_api as _lib  # type: ignore[import-untyped]
import requests
from pushover_complete import PushoverAPI, PushoverCompleteError  # type: ignore[import-untyped]
from urllib3 import Timeout

from gateway.notify.errors import GiveUp, Retry

__all__ = ["AppLimit", "PushoverClient", "ReceiptStatus", "SendResult"]

DEFAULT_BASE_URL = "https://api.pushover.net/1/"
PRIORITIES = range(-2, 3)
EMERGENCY = 2
MIN_RETRY_S = 30
MAX_EXPIRE_S = 10800


@dataclass(frozen=True, slots=True)
class AppLimit:
    """The application's monthly message allowance, from the ``X-Limit-App-*`` headers of a send."""

    limit: int
    remaining: int
    reset_at: int  # Unix time at which ``remaining`` goes back to ``limit``


@dataclass(frozen=True, slots=True)
class SendResult:
    request_id: str
    receipt: str | None  # only for emergency (priority 2) messages
    app_limit: AppLimit | None = None


@dataclass(frozen=True, slots=True)
class ReceiptStatus:
    """An emergency message's receipt. Times are Unix seconds, ``None`` where Pushover answers 0."""

    acknowledged: bool
    acknowledged_at: int | None
    acknowledged_by: str | None
    acknowledged_by_device: str | None
    expired: bool
    expires_at: int | None
    last_delivered_at: int | None
    called_back: bool


class _CallSession(requests.Session):
    """One call's session: rewrites the library's URL to ours, bounds time, remembers the response."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        super().__init__()
        self._base_url = base_url
        self._timeout = Timeout(total=timeout_s)
        self.last_response: requests.Response | None = None

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        url = url.decode() if isinstance(url, bytes) else url
        if url.startswith(_lib.PUSHOVER_API_URL):
            url = self._base_url + url[len(_lib.PUSHOVER_API_URL):]
        if method.upper() == "GET" and isinstance(kwargs.get("data"), dict):
            kwargs["params"] = kwargs.pop("data")
        kwargs["timeout"] = self._timeout
        response = super().request(method, url, *args, **kwargs)
        self.last_response = response
        return response


class _RequestsRouter:
    """Stands in for ``requests`` inside ``pushover_complete.pushover_api``: its ``get``/``post`` go through the
    session of the client call in progress on the calling thread, or, when there is none (someone else using the
    library), through the real ``requests``. Every other name is the real module's."""

    routes_pushover_calls = True  # recognised by duck type, so a reloaded adapter reuses the installed router

    def __init__(self, real: ModuleType) -> None:
        self._real = real
        self._current = threading.local()

    @contextmanager
    def routing(self, session: requests.Session) -> Iterator[None]:
        previous = getattr(self._current, "session", None)
        self._current.session = session
        try:
            yield
        finally:
            self._current.session = previous

    def get(self, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        return self._target().get(url, *args, **kwargs)

    def post(self, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        return self._target().post(url, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def _target(self) -> Any:
        session = getattr(self._current, "session", None)
        return self._real if session is None else session


_install_lock = threading.Lock()


def _installed_router() -> _RequestsRouter:
    """The router, installed as the library module's ``requests`` on first use (not at import: importing the
    adapter changes nothing until a client calls Pushover)."""
    with _install_lock:
        current = getattr(_lib, "requests", None)
        if getattr(current, "routes_pushover_calls", False):
            return current  # type: ignore[return-value]
        if current is not requests:
            raise RuntimeError(
                "pushover_complete no longer calls requests through its module, so the adapter cannot give it a "
                "base URL or a timeout; see gateway/notify/pushover.py before upgrading it")
        router = _RequestsRouter(requests)
        _lib.requests = router
        return router


class PushoverClient:
    """Sends alerts through Pushover and follows emergency receipts.

    Every method raises :class:`~gateway.notify.errors.Retry` or :class:`~gateway.notify.errors.GiveUp` on failure
    and never retries by itself: back-off belongs to the caller, on the gateway's clock.
    """

    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"Pushover base URL must be http(s)://host/1/, not {base_url!r}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout_s = timeout_s
        self._api = PushoverAPI(token)  # holds only the token: safe to share between threads

    def __repr__(self) -> str:
        return f"PushoverClient({self.base_url!r}, timeout_s={self.timeout_s})"  # never the token

    def send(
        self,
        user_key: str,
        message: str,
        title: str | None = None,
        priority: int = 0,
        *,
        retry_s: int | None = None,
        expire_s: int | None = None,
        url: str | None = None,
        timestamp: int | None = None,
        sound: str | None = None,
    ) -> SendResult:
        """Queue one message. Priority 2 (emergency) needs ``retry_s`` (>= 30) and ``expire_s`` (<= 10800) and
        returns a receipt to poll; the arguments are checked here so that a programming error is a ``ValueError``,
        not a ``GiveUp`` for the recipient."""
        if priority not in PRIORITIES:
            raise ValueError(f"priority must be -2..2, not {priority}")
        if priority == EMERGENCY:
            if retry_s is None or retry_s < MIN_RETRY_S:
                raise ValueError(f"an emergency message needs retry_s >= {MIN_RETRY_S}")
            if expire_s is None or not 0 < expire_s <= MAX_EXPIRE_S:
                raise ValueError(f"an emergency message needs 0 < expire_s <= {MAX_EXPIRE_S}")
        body, response = self._call(
            lambda api: api.send_message(
                user_key, message, title=title, priority=priority, retry=retry_s, expire=expire_s, url=url,
                timestamp=timestamp, sound=sound))
        return SendResult(str(body.get("request", "")), body.get("receipt"), _app_limit(response))

    def receipt(self, receipt_id: str) -> ReceiptStatus:
        """Poll an emergency message's receipt (Pushover asks for at most one poll every 5 seconds)."""
        body, _ = self._call(lambda api: api.check_receipt(receipt_id))
        return ReceiptStatus(
            acknowledged=bool(body.get("acknowledged")),
            acknowledged_at=body.get("acknowledged_at") or None,
            acknowledged_by=body.get("acknowledged_by") or None,
            acknowledged_by_device=body.get("acknowledged_by_device") or None,
            expired=bool(body.get("expired")),
            expires_at=body.get("expires_at") or None,
            last_delivered_at=body.get("last_delivered_at") or None,
            called_back=bool(body.get("called_back")),
        )

    def cancel(self, receipt_id: str) -> None:
        """Stop Pushover re-sending an emergency message (someone answered the alert another way)."""
        self._call(lambda api: api.cancel_receipt(receipt_id))

    def validate_user(self, user_key: str) -> bool:
        """True if the user or group key exists and has an active device, False if Pushover says the key is
        invalid; anything else (bad token, Pushover away) raises as the other methods do."""
        try:
            self._call(lambda api: api.validate(user_key))
        except GiveUp as e:
            if not e.token_refused and ("user" in e.invalid or any("user" in err for err in e.errors)):
                return False
            raise
        return True

    def _call(self, fn: Callable[[Any], dict[str, Any]]) -> tuple[dict[str, Any], requests.Response]:
        router = _installed_router()
        session = _CallSession(self.base_url, self.timeout_s)
        try:
            with session, router.routing(session):
                body = fn(self._api)
        except requests.Timeout:
            raise Retry(f"Pushover did not answer within {self.timeout_s:g}s") from None
        except requests.ConnectionError as e:
            raise Retry(f"cannot reach Pushover at {self.base_url}: {_short(e)}") from None
        except (PushoverCompleteError, ValueError, TypeError, requests.RequestException) as e:
            # BadAPIRequestError (status != 1), a body that is not JSON (ValueError), or status 0 without
            # ``errors`` (TypeError in the library's join): decide from the response itself. Without a response
            # it is a bug on our side, not Pushover's: let it surface rather than retry it for ever.
            if session.last_response is None and not isinstance(e, requests.RequestException):
                raise
            raise _classify(session.last_response, e) from None
        if session.last_response is None:
            raise RuntimeError(
                "pushover_complete answered without sending through the adapter's session (did an upgrade change "
                "how it calls requests?); see gateway/notify/pushover.py")
        return body, session.last_response


def _classify(response: requests.Response | None, error: Exception) -> Retry | GiveUp:
    if response is None:
        return Retry(f"Pushover request failed: {_short(error)}")
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    errors = [str(e) for e in body.get("errors") or []]
    text = "; ".join(errors) or response.reason or f"HTTP {status}"
    if status == 429:
        return Retry(f"Pushover application limit reached: {text}", status=status,
                     retry_after_s=_retry_after(response, limit_reset=True))
    if 400 <= status < 500:
        invalid = frozenset(k for k, v in body.items() if v == "invalid")
        return GiveUp(text, status=status, errors=errors, invalid=invalid)
    return Retry(f"Pushover answered HTTP {status}: {text}", status=status, retry_after_s=_retry_after(response))


def _retry_after(response: requests.Response, *, limit_reset: bool = False) -> float | None:
    value = response.headers.get("Retry-After")
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass  # an HTTP date: ignore it, the caller backs off on its own
    if limit_reset:
        limit = _app_limit(response)
        if limit is not None:
            # Pushover resets the allowance on its own wall clock, so wall time is the right clock here.
            return max(0.0, limit.reset_at - time.time())
    return None


def _app_limit(response: requests.Response) -> AppLimit | None:
    h = response.headers
    try:
        return AppLimit(int(h["X-Limit-App-Limit"]), int(h["X-Limit-App-Remaining"]), int(h["X-Limit-App-Reset"]))
    except (KeyError, ValueError):
        return None


def _short(error: BaseException) -> str:
    text = str(error)
    return text if len(text) <= 200 else text[:200] + "…"
