"""Contract with pushover-complete: exactly what reaches a Pushover server for each call the gateway makes.

The adapter (gateway/notify/pushover.py) calls only the library's public methods; this pins, per call, the HTTP
method, the path, the query string, the form body and its content type that arrive at the local server, so an
upgrade of pushover-complete that changes what is sent (a renamed field, a JSON body, a dropped parameter, the
token moved) fails here before it reaches a carer's phone. It also holds the one adaptation to its proof: two
clients with different base URLs, used from two threads at once, each reach their own server.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from pushover_complete import pushover_api  # type: ignore[import-untyped]

from bench.pushover_server import PushoverServer
from gateway.notify import PushoverClient

TOKEN = "a" * 30
USER = "u" * 30
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Exchange:
    """One request as the server saw it. Fields keep every value given for a name, so a repeated one shows."""

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    content_type: str | None


class _Recording:
    """Handler mixin: notes the whole request, then lets the test server answer it as usual."""

    exchanges: list[Exchange]

    def _serve(self, method: str) -> None:
        handler: Any = self
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        self.exchanges.append(Exchange(
            method, parts.path, parse_qs(parts.query, keep_blank_values=True),
            parse_qs(raw.decode(), keep_blank_values=True), handler.headers.get("Content-Type")))
        # The server's own handler reads the body again; the connection (kept alive) goes on from the socket.
        connection, handler.rfile = handler.rfile, io.BytesIO(raw)
        try:
            super()._serve(method)  # type: ignore[misc]
        finally:
            handler.rfile = connection


class RecordingServer(PushoverServer):
    """The local Pushover server, also keeping every request whole in :attr:`exchanges`."""

    def start(self) -> None:
        super().start()
        self.exchanges: list[Exchange] = []
        httpd: Any = self._httpd
        httpd.RequestHandlerClass = type(
            "RecordingHandler", (_Recording, httpd.RequestHandlerClass), {"exchanges": self.exchanges})


@pytest.fixture
def server() -> Any:
    s = RecordingServer()
    s.start()
    try:
        yield s
    finally:
        s.stop()


def one(**fields: str) -> dict[str, list[str]]:
    return {name: [value] for name, value in fields.items()}


def test_a_normal_message_is_one_form_post(server: RecordingServer) -> None:
    PushoverClient(server.url, TOKEN).send(
        USER, "Mrs Jones: no movement since 09:00", "Telecare", 1, url="https://example.org/alerts/1",
        timestamp=1764320000, sound="siren")
    # Unset options are left out; the library sends its ``html`` default as "False", which Pushover reads as off
    # (only 1 turns HTML on).
    assert server.exchanges == [Exchange("POST", "/1/messages.json", {}, one(
        token=TOKEN, user=USER, message="Mrs Jones: no movement since 09:00", title="Telecare", priority="1",
        url="https://example.org/alerts/1", timestamp="1764320000", sound="siren", html="False"), FORM)]


def test_a_message_without_options_sends_only_what_it_has(server: RecordingServer) -> None:
    PushoverClient(server.url, TOKEN).send(USER, "Back door open")
    assert server.exchanges == [Exchange("POST", "/1/messages.json", {}, one(
        token=TOKEN, user=USER, message="Back door open", priority="0", html="False"), FORM)]


def test_an_emergency_message_carries_retry_and_expire(server: RecordingServer) -> None:
    result = PushoverClient(server.url, TOKEN).send(USER, "Pendant pressed", "Telecare", 2, retry_s=60,
                                                     expire_s=3600)
    assert result.receipt is not None
    assert server.exchanges == [Exchange("POST", "/1/messages.json", {}, one(
        token=TOKEN, user=USER, message="Pendant pressed", title="Telecare", priority="2", retry="60",
        expire="3600", html="False"), FORM)]


def test_a_receipt_poll_is_a_get_with_the_token_in_the_query(server: RecordingServer) -> None:
    client = PushoverClient(server.url, TOKEN)
    receipt = client.send(USER, "Fall suspected", "Telecare", 2, retry_s=30, expire_s=600).receipt
    assert receipt is not None
    client.receipt(receipt)
    assert server.exchanges[1:] == [Exchange("GET", f"/1/receipts/{receipt}.json", one(token=TOKEN), {}, None)]


def test_a_receipt_cancel_is_a_form_post_of_the_token(server: RecordingServer) -> None:
    client = PushoverClient(server.url, TOKEN)
    receipt = client.send(USER, "Fall suspected", "Telecare", 2, retry_s=30, expire_s=600).receipt
    assert receipt is not None
    client.cancel(receipt)
    assert server.exchanges[1:] == [
        Exchange("POST", f"/1/receipts/{receipt}/cancel.json", {}, one(token=TOKEN), FORM)]
    assert server.receipts[receipt].cancelled


def test_a_user_validation_is_a_form_post_of_token_and_user(server: RecordingServer) -> None:
    assert PushoverClient(server.url, TOKEN).validate_user(USER) is True
    assert server.exchanges == [Exchange("POST", "/1/users/validate.json", {}, one(token=TOKEN, user=USER), FORM)]


def test_two_clients_with_different_base_urls_on_two_threads_at_once(server: RecordingServer) -> None:
    other = RecordingServer(tokens={"c" * 30}, users={"v" * 30})
    other.start()
    # Each server holds its answers back long enough that both threads' requests are in flight together.
    server.slow_users[USER] = other.slow_users["v" * 30] = 0.05
    clients = {"first": (PushoverClient(server.url, TOKEN), USER),
               "second": (PushoverClient(other.url, "c" * 30), "v" * 30)}
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def send_many(name: str) -> None:
        client, user = clients[name]
        try:
            start.wait(5)
            for i in range(10):
                client.send(user, f"{name} {i}")
        except BaseException as e:  # reported by the main thread, where pytest sees it
            failures.append(e)

    threads = [threading.Thread(target=send_many, args=(name,)) for name in clients]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        other.stop()
    assert failures == []
    assert [m["message"] for m in server.messages] == [f"first {i}" for i in range(10)]
    assert [m["message"] for m in other.messages] == [f"second {i}" for i in range(10)]
    assert {e.form["token"][0] for e in server.exchanges} == {TOKEN}
    assert {e.form["token"][0] for e in other.exchanges} == {"c" * 30}
    assert pushover_api.PUSHOVER_API_URL == "https://api.pushover.net/1/"  # the library's constant is untouched


def test_the_library_used_directly_still_reaches_the_real_requests(server: RecordingServer) -> None:
    # Outside a client's call the adaptation steps aside: anyone else calling the library's module ``requests``
    # gets plain requests (here pointed at the local server by hand), with no base URL rewrite and no timeout.
    PushoverClient(server.url, TOKEN).validate_user(USER)  # makes sure the adaptation is installed
    answer = pushover_api.requests.post(server.url + "users/validate.json", data={"token": TOKEN, "user": USER})
    assert isinstance(answer, requests.Response) and answer.json()["status"] == 1
    assert pushover_api.requests.Session is requests.Session
    assert [(e.method, e.path) for e in server.exchanges] == [("POST", "/1/users/validate.json")] * 2


def test_a_release_that_no_longer_calls_requests_through_its_module_is_refused(
        server: RecordingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # As if an upgrade had moved to another HTTP client: the adapter cannot give it a base URL or a timeout.
    monkeypatch.setattr(pushover_api, "requests", object())
    with pytest.raises(RuntimeError, match="no longer calls requests through its module"):
        PushoverClient(server.url, TOKEN).send(USER, "hello")
    assert server.exchanges == []


def test_an_answer_that_bypassed_the_clients_session_is_refused(
        server: RecordingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # As if an upgrade made its own session: whatever it answered did not come from the configured server.
    monkeypatch.setattr(pushover_api.PushoverAPI, "validate", lambda self, user, device=None: {"status": 1})
    with pytest.raises(RuntimeError, match="without sending through the adapter's session"):
        PushoverClient(server.url, TOKEN).validate_user(USER)
