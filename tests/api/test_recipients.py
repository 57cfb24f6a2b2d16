"""Recipients, with their Pushover keys checked against a local server that answers as Pushover does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from bench.pushover_server import PushoverServer
from tests.api.conftest import Clock, World, settings_for

pytest_plugins = ["tests.conftest_pushover"]

VALID, UNKNOWN = "u" * 30, "k" * 30


@pytest.fixture
def checked(tmp_path: Path, sessions: sessionmaker[Session], world: World, pushover: PushoverServer,
            clock: Clock) -> Iterator[TestClient]:
    """A client on an app that has a Pushover application token (the local server's)."""
    app = create_app(settings_for(tmp_path, pushover_url=pushover.url, pushover_token="a" * 30,
                                  pushover_timeout_s=2), sessions=sessions)
    app.state.now = clock
    with TestClient(app) as c:
        yield c


def test_a_valid_key_is_accepted(checked: TestClient, world: World, pushover: PushoverServer) -> None:
    r = checked.post("/recipients", json={"name": "Carol", "pushover_user_key": VALID, "pushover_device": "phone"},
                     headers=world.auth("cora"))
    assert r.status_code == 201, r.text
    assert (r.json()["name"], r.json()["pushover_device"], r.json()["residents"]) == ("Carol", "phone", [])
    assert ("POST", "/1/users/validate.json") in pushover.requests


def test_an_invalid_key_is_422_with_what_to_do(checked: TestClient, world: World) -> None:
    r = checked.post("/recipients", json={"name": "Carol", "pushover_user_key": UNKNOWN}, headers=world.auth("cora"))
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_pushover_key"
    assert "Pushover app" in r.json()["error"]["message"]
    assert checked.get("/recipients", headers=world.auth("cora")).json()["total"] == 2  # Anne and Bob only
    r = checked.patch(f"/recipients/{world.recipients['bob']}", json={"pushover_user_key": UNKNOWN},
                      headers=world.auth("cora"))
    assert r.status_code == 422


def test_pushover_away_is_503_not_a_bad_request(checked: TestClient, world: World,
                                                pushover: PushoverServer) -> None:
    pushover.fail_next(5, 503)
    r = checked.post("/recipients", json={"name": "Carol", "pushover_user_key": VALID}, headers=world.auth("cora"))
    assert r.status_code == 503 and r.json()["error"]["code"] == "pushover_unavailable"


def test_without_a_token_keys_are_only_checked_for_form(client: TestClient, world: World) -> None:
    headers = world.auth("cora")
    r = client.post("/recipients", json={"name": "Carol", "pushover_user_key": UNKNOWN}, headers=headers)
    assert r.status_code == 201
    r = client.post("/recipients", json={"name": "Carol", "pushover_user_key": "short"}, headers=headers)
    assert r.status_code == 422 and "pushover_user_key" in r.json()["error"]["message"]


def test_update_list_and_delete(client: TestClient, world: World) -> None:
    headers = world.auth("cora")
    listed = client.get("/recipients", headers=headers).json()
    assert [(x["name"], x["residents"]) for x in listed["items"]] == [
        ("Anne", [world.residents["jones"]]), ("Bob", sorted([world.residents["jones"], world.residents["smith"]]))]
    r = client.patch(f"/recipients/{world.recipients['anne']}", json={"name": "Anne Jones"}, headers=headers)
    assert r.status_code == 200 and r.json()["name"] == "Anne Jones"
    r = client.delete(f"/recipients/{world.recipients['bob']}", headers=headers)
    assert r.status_code == 409 and "chain" in r.json()["error"]["message"]
    carol = client.post("/recipients", json={"name": "Carol", "pushover_user_key": VALID}, headers=headers).json()
    assert client.delete(f"/recipients/{carol['id']}", headers=headers).status_code == 204
    assert client.get(f"/recipients/{carol['id']}", headers=headers).status_code == 404
