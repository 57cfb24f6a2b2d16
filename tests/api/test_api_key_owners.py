"""API keys belong to the organisation, name their creator, and stop working when their owner (the creator until
reassigned) is no longer an active admin (issue 12, finding 6)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from gateway.db.migrate import upgrade
from gateway.db.models import AuditEntry
from gateway.db.session import make_engine
from tests.api.conftest import PASSWORD, World


def _admin(client: TestClient, world: World, name: str) -> tuple[int, dict[str, str]]:
    """A second admin of organisation A, logged in: (their id, their auth header)."""
    email = f"{name.lower()}@example.org"
    r = client.post("/users", json={"email": email, "name": name, "role": "admin", "password": PASSWORD},
                    headers=world.auth("ada"))
    assert r.status_code == 201, r.text
    token = client.post("/auth/token", data={"username": email, "password": PASSWORD}).json()["access_token"]
    return r.json()["id"], {"Authorization": f"Bearer {token}"}


def _key(client: TestClient, headers: dict[str, str], role: str = "admin") -> dict[str, object]:
    r = client.post("/api-keys", json={"name": "council CRM", "role": role}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def _new_admin_body(email: str) -> dict[str, str]:
    return {"email": email, "name": "Mallory", "role": "admin", "password": PASSWORD}


def test_a_deactivated_admins_key_answers_401_until_reassigned(client: TestClient, world: World) -> None:
    alf_id, alf = _admin(client, world, "Alf")
    created = _key(client, alf)
    assert created["created_by"] == alf_id and created["owner_id"] == alf_id and created["working"] is True
    key = {"X-API-Key": str(created["key"])}
    assert client.post("/users", json=_new_admin_body("m1@example.org"), headers=key).status_code == 201

    assert client.patch(f"/users/{alf_id}", json={"active": False}, headers=world.auth("ada")).status_code == 200
    r = client.get("/auth/me", headers=key)
    assert r.status_code == 401 and "no longer an active admin" in r.json()["error"]["message"]
    assert client.post("/users", json=_new_admin_body("m2@example.org"), headers=key).status_code == 401
    listed = {k["id"]: k for k in client.get("/api-keys", headers=world.auth("ada")).json()["items"]}
    assert listed[created["id"]]["working"] is False

    r = client.post(f"/api-keys/{created['id']}/reassign", json={"owner_id": world.users["ada"]},
                    headers=world.auth("ada"))
    assert r.status_code == 200, r.text
    assert r.json()["owner_id"] == world.users["ada"] and r.json()["created_by"] == alf_id and r.json()["working"]
    assert client.post("/users", json=_new_admin_body("m2@example.org"), headers=key).status_code == 201


def test_a_removed_or_demoted_admins_key_stops_working(client: TestClient, world: World) -> None:
    alf_id, alf = _admin(client, world, "Alf")
    bert_id, bert = _admin(client, world, "Bert")
    alf_key = {"X-API-Key": str(_key(client, alf, role="coordinator")["key"])}
    bert_key = {"X-API-Key": str(_key(client, bert)["key"])}
    assert client.delete(f"/users/{alf_id}", headers=world.auth("ada")).status_code == 204
    assert client.get("/residents", headers=alf_key).status_code == 401
    assert client.patch(f"/users/{bert_id}", json={"role": "coordinator"},
                        headers=world.auth("ada")).status_code == 200
    assert client.get("/residents", headers=bert_key).status_code == 401


def test_a_key_made_by_a_key_is_owned_by_that_keys_owner(client: TestClient, world: World) -> None:
    alf_id, alf = _admin(client, world, "Alf")
    parent = {"X-API-Key": str(_key(client, alf)["key"])}
    child = _key(client, parent, role="coordinator")
    assert child["created_by"] is None and child["owner_id"] == alf_id and child["working"] is True
    assert client.get("/residents", headers={"X-API-Key": str(child["key"])}).status_code == 200
    client.patch(f"/users/{alf_id}", json={"active": False}, headers=world.auth("ada"))
    assert client.get("/residents", headers={"X-API-Key": str(child["key"])}).status_code == 401


def test_a_key_is_reassigned_only_to_an_active_admin_of_its_organisation(client: TestClient, world: World) -> None:
    created = _key(client, world.auth("ada"))
    url = f"/api-keys/{created['id']}/reassign"
    for who in ("cora", "bea"):  # not an admin; another organisation
        r = client.post(url, json={"owner_id": world.users[who]}, headers=world.auth("ada"))
        assert r.status_code == 422 and r.json()["error"]["code"] == "not_an_admin"
    assert client.post(url, json={"owner_id": world.users["ada"]}, headers=world.auth("cora")).status_code == 403
    assert client.delete(f"/api-keys/{created['id']}", headers=world.auth("ada")).status_code == 204
    r = client.post(url, json={"owner_id": world.users["ada"]}, headers=world.auth("ada"))
    assert r.status_code == 409


def test_keys_are_created_revoked_and_reassigned_on_the_record(client: TestClient, world: World,
                                                                sessions: sessionmaker[Session]) -> None:
    created = _key(client, world.auth("ada"))
    client.post(f"/api-keys/{created['id']}/reassign", json={"owner_id": world.users["ada"]},
                headers=world.auth("ada"))
    client.delete(f"/api-keys/{created['id']}", headers=world.auth("ada"))
    client.delete(f"/api-keys/{created['id']}", headers=world.auth("ada"))  # again: nothing more to record
    with sessions() as s:
        rows = list(s.scalars(select(AuditEntry).where(AuditEntry.resource == "api_key").order_by(AuditEntry.id)))
    assert [r.action for r in rows] == ["create", "reassign", "revoke"]
    assert all(r.user_id == world.users["ada"] and r.organisation_id == world.org_a for r in rows)
    assert str(created["key"]) not in " ".join(r.detail for r in rows)
    assert f"key {created['id']} 'council CRM'" in rows[0].detail


def test_existing_keys_are_owned_by_their_creator_after_the_migration(db_url: str) -> None:
    upgrade(db_url, "0004")
    engine = make_engine(db_url)
    try:
        with engine.begin() as c:
            c.execute(text("INSERT INTO organisations (id, name, created_at) VALUES (1, 'A', CURRENT_TIMESTAMP)"))
            c.execute(text("INSERT INTO users (id, organisation_id, email, name, role, password_hash, active, "
                           "created_at) VALUES (7, 1, 'a@example.org', 'A', 'admin', 'x', true, CURRENT_TIMESTAMP)"))
            for key_id, creator in ((1, 7), (2, None)):
                c.execute(text("INSERT INTO api_keys (id, organisation_id, name, role, prefix, key_hash, created_by, "
                               "created_at) VALUES (:id, 1, 'k', 'admin', 'tck_', :hash, :creator, "
                               "CURRENT_TIMESTAMP)"), {"id": key_id, "hash": f"h{key_id}", "creator": creator})
        upgrade(db_url)
        with engine.connect() as c:
            owners = dict(c.execute(text("SELECT id, owner_id FROM api_keys ORDER BY id")).all())
        assert owners == {1: 7, 2: None}, "a key whose creator is gone has no owner: it waits to be reassigned"
    finally:
        engine.dispose()
