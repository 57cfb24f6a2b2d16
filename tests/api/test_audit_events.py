"""The complete audit trail (issue 12, finding 5): logins, failed and throttled logins, logouts, password changes,
users, homes, recipients and denied attempts are recorded with who, when, from which address and what; denials
and failed logins are folded into one row a minute per kind."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.db.models import AuditEntry
from tests.api.conftest import H9_CLAIM_CODE, KEY, PASSWORD, Clock, World, app_for

ADDRESS = "testclient"  # the TestClient's peer address


def rows(sessions: sessionmaker[Session], *actions: str) -> list[AuditEntry]:
    with sessions() as s:
        stmt = select(AuditEntry).order_by(AuditEntry.id)
        if actions:
            stmt = stmt.where(AuditEntry.action.in_(actions))
        return list(s.scalars(stmt))


def login(client: TestClient, email: str, password: str = PASSWORD) -> int:
    return client.post("/auth/token", data={"username": email, "password": password}).status_code


def test_logins_failed_logins_and_logouts(client: TestClient, world: World, clock: Clock,
                                          sessions: sessionmaker[Session]) -> None:
    assert login(client, world.emails["cora"]) == 200
    assert login(client, world.emails["cora"], "wrong guess") == 401
    assert login(client, world.emails["cora"], "another guess") == 401
    assert login(client, "nobody@example.org", "x") == 401  # no organisation's account: logged, not audited
    assert client.post("/auth/logout", headers=world.auth("cora")).status_code == 204

    ok, failed, out = (rows(sessions, action) for action in ("login", "login_failed", "logout"))
    assert [(r.user_id, r.organisation_id, r.actor, r.client_address, r.at) for r in ok] == [
        (world.users["cora"], world.org_a, "Cora", ADDRESS, clock.at)]
    assert len(failed) == 1, "two failures within a minute from one address share a row"
    assert failed[0].occurrences == 2 and failed[0].user_id == world.users["cora"]
    assert failed[0].client_address == ADDRESS and failed[0].detail == "wrong password"
    assert [(r.user_id, r.client_address) for r in out] == [(world.users["cora"], ADDRESS)]

    clock.at += timedelta(minutes=2)
    assert login(client, world.emails["cora"], "a third guess") == 401
    assert [r.occurrences for r in rows(sessions, "login_failed")] == [2, 1], "a new minute, a new row"


def test_a_deactivated_accounts_login_is_recorded_as_such(client: TestClient, world: World,
                                                          sessions: sessionmaker[Session]) -> None:
    client.patch(f"/users/{world.users['ned']}", json={"active": False}, headers=world.auth("ada"))
    assert login(client, world.emails["ned"]) == 401
    [failed] = rows(sessions, "login_failed")
    assert failed.user_id == world.users["ned"] and failed.detail == "the account is deactivated"


def test_throttled_logins_are_recorded_once_a_minute(client: TestClient, world: World,
                                                     sessions: sessionmaker[Session]) -> None:
    statuses = [login(client, world.emails["anne"], "guess") for _ in range(12)]
    assert 429 in statuses, statuses
    throttled = rows(sessions, "login_throttled")
    assert len(throttled) == 1 and throttled[0].occurrences == statuses.count(429)
    assert throttled[0].user_id == world.users["anne"] and throttled[0].client_address == ADDRESS


def test_password_changes_and_refusals(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    headers = world.auth("cora")
    r = client.post("/auth/password", json={"current_password": "wrong one", "new_password": "a new passphrase"},
                    headers=headers)
    assert r.status_code == 400
    r = client.post("/auth/password", json={"current_password": PASSWORD, "new_password": "a new passphrase"},
                    headers=headers)
    assert r.status_code == 204
    assert [(r.action, r.user_id) for r in rows(sessions, "password_change", "password_change_failed")] == [
        ("password_change_failed", world.users["cora"]), ("password_change", world.users["cora"])]


def test_users_created_changed_deactivated_and_removed(client: TestClient, world: World,
                                                       sessions: sessionmaker[Session]) -> None:
    admin = world.auth("ada")
    r = client.post("/users", json={"email": "dan@example.org", "name": "Dan", "role": "carer",
                                    "password": PASSWORD}, headers=admin)
    dan = r.json()["id"]
    client.patch(f"/users/{dan}", json={"role": "coordinator", "password": "a reset passphrase"}, headers=admin)
    client.patch(f"/users/{dan}", json={"name": "Dan"}, headers=admin)  # no change: no row
    client.patch(f"/users/{dan}", json={"active": False}, headers=admin)
    client.patch(f"/users/{dan}", json={"active": True}, headers=admin)
    client.delete(f"/users/{dan}", headers=admin)
    trail = [r for r in rows(sessions) if r.resource == "user"]
    assert [r.action for r in trail] == ["create", "update", "deactivate", "reactivate", "delete"]
    assert all(r.user_id == world.users["ada"] and r.client_address == ADDRESS for r in trail)
    assert "dan@example.org" in trail[0].detail and "as carer" in trail[0].detail
    assert "role 'carer' → 'coordinator'" in trail[1].detail and "password reset" in trail[1].detail
    assert PASSWORD not in " ".join(r.detail for r in trail) and "reset passphrase" not in trail[1].detail


def test_deactivating_an_admin_says_which_keys_stop(client: TestClient, world: World,
                                                    sessions: sessionmaker[Session]) -> None:
    r = client.post("/users", json={"email": "alf@example.org", "name": "Alf", "role": "admin",
                                    "password": PASSWORD}, headers=world.auth("ada"))
    alf = r.json()["id"]
    token = client.post("/auth/token", data={"username": "alf@example.org", "password": PASSWORD}).json()
    client.post("/api-keys", json={"name": "crm"}, headers={"Authorization": f"Bearer {token['access_token']}"})
    client.patch(f"/users/{alf}", json={"active": False}, headers=world.auth("ada"))
    [row] = rows(sessions, "deactivate")
    assert "1 API key(s) they own stopped working until reassigned" in row.detail


def test_homes_claimed_and_released(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    assert client.post("/homes/h9/claim", json={"claim_code": H9_CLAIM_CODE},
                       headers=world.auth("ada")).status_code == 200
    assert client.post("/homes/h9/release", headers=world.auth("ada")).status_code == 200
    trail = [(r.action, r.resource, r.user_id) for r in rows(sessions, "claim", "release")]
    assert trail == [("claim", "home", world.users["ada"]), ("release", "home", world.users["ada"])]


def test_a_new_pushover_key_is_recorded_masked_with_whose_alerts_it_redirects(
        client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    new_key = "u" + "x" * 25 + "9876"
    r = client.patch(f"/recipients/{world.recipients['anne']}", json={"pushover_user_key": new_key},
                     headers=world.auth("cora"))
    assert r.status_code == 200, r.text
    [row] = [r for r in rows(sessions, "update") if r.resource == "recipient"]
    assert f"Pushover key …{KEY['Anne'][-4:]} → …9876" in row.detail
    assert f"alerts of resident(s) {world.residents['jones']}" in row.detail
    assert new_key not in row.detail and KEY["Anne"] not in row.detail
    created = client.post("/recipients", json={"name": "Nia", "pushover_user_key": "n" * 26 + "5555"},
                          headers=world.auth("cora")).json()
    client.delete(f"/recipients/{created['id']}", headers=world.auth("cora"))
    trail = [(r.action, r.detail.endswith("…5555")) for r in rows(sessions) if r.resource == "recipient"]
    assert trail == [("update", False), ("create", True), ("delete", True)]


def test_denied_attempts_are_recorded_a_row_a_minute_per_kind(client: TestClient, world: World, clock: Clock,
                                                              sessions: sessionmaker[Session]) -> None:
    brown = world.residents["brown"]  # organisation B's
    for _ in range(3):
        assert client.get(f"/residents/{brown}", headers=world.auth("cora")).status_code == 404
    assert client.post("/api-keys", json={"name": "x"}, headers=world.auth("cora")).status_code == 403
    assert client.get("/residents/1", headers={"Authorization": "Bearer nonsense"}).status_code == 401

    denied = rows(sessions, "denied")
    assert [(r.resource, r.occurrences, r.user_id, r.organisation_id) for r in denied] == [
        ("404 GET /residents/{resident_id}", 3, world.users["cora"], world.org_a),
        ("403 POST /api-keys", 1, world.users["cora"], world.org_a)], "no row for an unknown caller (401)"
    assert denied[0].detail.startswith(f"GET /residents/{brown}: no resident {brown}")
    assert denied[0].client_address == ADDRESS

    clock.at += timedelta(seconds=61)
    client.get(f"/residents/{brown}", headers=world.auth("cora"))
    client.get(f"/residents/{brown}", headers=world.auth("bea"))  # visible to Bea: no denial
    assert [r.occurrences for r in rows(sessions, "denied")] == [3, 1, 1]
    with sessions() as s:  # organisation B's trail does not show A's probes
        assert s.scalar(select(AuditEntry.id).where(AuditEntry.organisation_id == world.org_b,
                                                    AuditEntry.action == "denied")) is None


def test_a_keys_denials_are_its_own(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    key = client.post("/api-keys", json={"name": "crm"}, headers=world.auth("ada")).json()
    assert client.get("/users", headers={"X-API-Key": key["key"]}).status_code == 403
    [row] = rows(sessions, "denied")
    assert row.api_key_id == key["id"] and row.user_id is None and row.actor == "API key crm"
    assert row.resource == "403 GET /users"


def test_the_trail_lists_the_address_and_occurrences(client: TestClient, world: World) -> None:
    client.get(f"/residents/{world.residents['brown']}", headers=world.auth("cora"))
    items = client.get("/audit", params={"action": "denied"}, headers=world.auth("ada")).json()["items"]
    assert [(i["client_address"], i["occurrences"]) for i in items] == [(ADDRESS, 1)]


def test_the_address_is_the_clients_behind_a_trusted_proxy(tmp_path: Path, sessions: sessionmaker[Session],
                                                           world: World, clock: Clock) -> None:
    app = app_for(tmp_path, sessions, clock)
    with TestClient(app, client=("127.0.0.1", 50000)) as proxied:  # 127.0.0.1: the default trusted proxy
        r = proxied.post("/auth/token", data={"username": world.emails["cora"], "password": PASSWORD},
                         headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9"})
        assert r.status_code == 200
        proxied.get(f"/residents/{world.residents['brown']}", headers=world.auth("cora"))
    assert [(r.action, r.client_address) for r in rows(sessions, "login", "denied")] == [
        ("login", "203.0.113.9"), ("denied", "127.0.0.1")]
