"""The request body limit (issue 12, finding 3): 413 before the body is read, whether its length is declared or it
streams in chunks; and the client address behind trusted proxies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from api.app import create_app
from api.limits import client_address
from tests.api.conftest import World, settings_for

MIB = 1024 * 1024


def _call(app: FastAPI, method: str, path: str, headers: list[tuple[bytes, bytes]],
          chunks: Iterator[bytes]) -> tuple[int, dict[str, Any], int]:
    """One request straight through ASGI: (status, JSON body, chunks the app took from ``chunks``)."""
    taken = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal taken
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        taken += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), *headers], "client": ("203.0.113.9", 5000),
             "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), taken


def _endless(size: int = 64 * 1024) -> Iterator[bytes]:
    while True:
        yield b"x" * size


@pytest.fixture
def app(tmp_path: Path, sessions: sessionmaker[Session], world: World) -> FastAPI:
    return create_app(settings_for(tmp_path), sessions=sessions)


def test_a_declared_length_past_the_limit_is_413_before_any_byte_is_read(app: FastAPI, world: World) -> None:
    status, body, taken = _call(app, "POST", "/auth/token",
                                [(b"content-type", b"application/x-www-form-urlencoded"),
                                 (b"content-length", str(100 * MIB).encode())], _endless())
    assert (status, taken) == (413, 0)
    assert body == {"error": {"status": 413, "code": "too_large",
                              "message": "the request body is larger than 1,048,576 bytes"}}


def test_a_chunked_body_is_counted_as_it_streams(app: FastAPI, world: World) -> None:
    for path, kind in (("/residents", b"application/json"), ("/auth/token", b"application/x-www-form-urlencoded")):
        status, body, taken = _call(app, "POST", path, [(b"content-type", kind)], _endless())
        assert status == 413 and body["error"]["code"] == "too_large", body
        assert taken == 17, "stopped at the first chunk past 1 MiB (an endless body is never read whole)"


def test_an_authenticated_huge_array_is_413(client: TestClient, world: World) -> None:
    steps = json.dumps({"steps": [{"recipient_id": 1, "wait_min": 1}] * 200_000})
    r = client.put(f"/residents/{world.residents['jones']}/chain", content=steps,
                   headers={**world.auth("cora"), "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    small = json.dumps({"steps": [{"recipient_id": world.recipients["bob"], "wait_min": 1}] * 21})
    r = client.put(f"/residents/{world.residents['jones']}/chain", content=small,
                   headers={**world.auth("cora"), "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "body.steps", "lists are bounded"


def test_the_limit_is_a_setting(tmp_path: Path, sessions: sessionmaker[Session], world: World,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELECARE_API_MAX_BODY_BYTES", "2048")
    app = create_app(settings_for(tmp_path), sessions=sessions)
    with TestClient(app) as c:
        r = c.post("/auth/token", data={"username": "cora@example.org", "password": "p" * 3000})
        assert r.status_code == 413 and "2,048 bytes" in r.json()["error"]["message"]
        assert c.post("/auth/token", data={"username": "cora@example.org", "password": "p" * 20}).status_code == 401


def _request(app: FastAPI, peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "app": app, "headers": headers, "client": (peer, 5000), "method": "GET",
                    "path": "/", "query_string": b""})


def test_the_client_address_behind_trusted_proxies(tmp_path: Path, sessions: sessionmaker[Session],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(settings_for(tmp_path), sessions=sessions)
    assert client_address(_request(app, "198.51.100.7", "1.2.3.4")) == "198.51.100.7", "not a proxy: not believed"
    assert client_address(_request(app, "127.0.0.1", "1.2.3.4, 198.51.100.7")) == "198.51.100.7", \
        "the right-most untrusted hop: the left ones are the client's to write"
    assert client_address(_request(app, "127.0.0.1")) == "127.0.0.1"
    monkeypatch.setenv("TELECARE_API_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")
    app = create_app(settings_for(tmp_path), sessions=sessions)
    assert client_address(_request(app, "10.1.1.1", "6.6.6.6", "198.51.100.7, 10.2.2.2")) == "198.51.100.7"
