"""Logging in and out, tokens that expire or are revoked, API keys, the dashboard's cookie."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.db.models import AuthToken
from tests.api.conftest import PASSWORD, Clock, World


def login(client: TestClient, email: str, password: str = PASSWORD):
    return client.post("/auth/token", data={"username": email, "password": password})


def test_password_flow_issues_a_bearer_token(client: TestClient, world: World,
                                             sessions: sessionmaker[Session]) -> None:
    r = login(client, "CORA@example.org ")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 12 * 3600
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json() | {} == {"user_id": world.users["cora"], "api_key_id": None, "organisation_id": world.org_a,
                              "organisation_name": "Northshire Council", "role": "coordinator",
                              "recipient_id": None, "name": "Cora"}
    with sessions() as s:  # only the hash is stored
        assert body["access_token"] not in {t.token_hash for t in s.scalars(select(AuthToken))}


def test_wrong_password_or_unknown_email_is_401(client: TestClient, world: World) -> None:
    for r in (login(client, world.emails["cora"], "not the password"), login(client, "nobody@example.org")):
        assert r.status_code == 401
        assert r.json()["error"] == {"status": 401, "code": "unauthorized",
                                     "message": "wrong email or password (or the account is deactivated)"}
        assert r.headers["www-authenticate"] == "Bearer"


def test_repeated_wrong_passwords_make_that_accounts_logins_wait(client: TestClient, world: World,
                                                                  clock: Clock) -> None:
    cora = world.emails["cora"]
    for _ in range(5):
        assert login(client, cora, "guess").status_code == 401
    r = login(client, cora)  # even the right password waits now
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_requests"
    assert "try again in" in r.json()["error"]["message"] and int(r.headers["retry-after"]) > 0
    assert login(client, world.emails["ada"]).status_code == 200, "other accounts are not held up"
    clock.at += timedelta(minutes=16)
    assert login(client, cora.upper()).status_code == 200, "the wait is over (and the email's case is one account)"


def test_missing_form_fields_is_422(client: TestClient) -> None:
    r = client.post("/auth/token", data={"username": "cora@example.org"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid"
    assert "body.password" in r.json()["error"]["message"]


def test_no_credentials_is_401_with_a_hint(client: TestClient) -> None:
    r = client.get("/residents")
    assert r.status_code == 401
    assert "POST /auth/token" in r.json()["error"]["message"]
    assert client.get("/residents", headers={"Authorization": "Bearer nonsense"}).status_code == 401


def test_expired_token_is_401(client: TestClient, world: World, clock: Clock) -> None:
    assert client.get("/auth/me", headers=world.auth("cora")).status_code == 200
    clock.at += timedelta(hours=13)  # issued at T0, valid 12 h
    r = client.get("/auth/me", headers=world.auth("cora"))
    assert r.status_code == 401
    assert "expired" in r.json()["error"]["message"]


def test_logout_revokes_the_token(client: TestClient, world: World) -> None:
    assert client.post("/auth/logout", headers=world.auth("cora")).status_code == 204
    r = client.get("/auth/me", headers=world.auth("cora"))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert client.get("/auth/me", headers=world.auth("ada")).status_code == 200  # others stay logged in


def test_the_dashboards_cookie_is_not_accepted_by_the_json_api(client: TestClient, world: World) -> None:
    """A browser sends the cookie with any request, another site's too: only the dashboard's pages (which check a
    CSRF token) take it (issue 12, finding 7; tests/api/test_dashboard_security.py)."""
    client.cookies.set("telecare_token", world.tokens["anne"])
    try:
        r = client.get("/auth/me")
    finally:
        client.cookies.clear()
    assert r.status_code == 401


def test_api_keys_are_shown_once_work_and_can_be_revoked(client: TestClient, world: World) -> None:
    r = client.post("/api-keys", json={"name": "council CRM"}, headers=world.auth("ada"))
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["key"]
    assert key.startswith("tck_") and created["role"] == "coordinator" and key.startswith(created["prefix"])
    listed = client.get("/api-keys", headers=world.auth("ada")).json()
    assert listed["total"] == 1 and "key" not in listed["items"][0]

    me = client.get("/auth/me", headers={"X-API-Key": key})
    assert me.status_code == 200
    assert me.json()["api_key_id"] == created["id"] and me.json()["name"] == "API key council CRM"
    assert client.get("/residents", headers={"X-API-Key": key}).json()["total"] == 2
    assert client.post("/auth/logout", headers={"X-API-Key": key}).status_code == 400

    assert client.delete(f"/api-keys/{created['id']}", headers=world.auth("ada")).status_code == 204
    r = client.get("/auth/me", headers={"X-API-Key": key})
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert client.get("/auth/me", headers={"X-API-Key": "tck_wrong"}).status_code == 401


def test_only_admins_manage_keys_and_keys_cannot_be_carers(client: TestClient, world: World) -> None:
    assert client.post("/api-keys", json={"name": "x"}, headers=world.auth("cora")).status_code == 403
    r = client.post("/api-keys", json={"name": "x", "role": "carer"}, headers=world.auth("ada"))
    assert r.status_code == 422


def test_deactivated_users_cannot_log_in_or_use_their_tokens(client: TestClient, world: World) -> None:
    r = client.patch(f"/users/{world.users['cora']}", json={"active": False}, headers=world.auth("ada"))
    assert r.status_code == 200 and r.json()["active"] is False
    assert client.get("/auth/me", headers=world.auth("cora")).status_code == 401
    assert login(client, world.emails["cora"]).status_code == 401


def test_changing_ones_password_logs_out_everywhere(client: TestClient, world: World) -> None:
    headers = world.auth("cora")
    r = client.post("/auth/password", json={"current_password": "wrong", "new_password": "a new passphrase"},
                    headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "wrong_password"
    r = client.post("/auth/password", json={"current_password": PASSWORD, "new_password": "short"},
                    headers=headers)
    assert r.status_code == 422
    r = client.post("/auth/password", json={"current_password": PASSWORD, "new_password": "a new passphrase"},
                    headers=headers)
    assert r.status_code == 204
    assert client.get("/auth/me", headers=headers).status_code == 401
    assert login(client, world.emails["cora"], "a new passphrase").status_code == 200
