"""Users, device health, dead letters, the audit endpoint, pagination and the shape of every error."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertKind, Severity
from gateway.db.models import DeadLetter, Home
from tests.api.conftest import PASSWORD, T0, World, raise_alerts


def test_admins_manage_their_organisations_users(client: TestClient, world: World) -> None:
    ada = world.auth("ada")
    users = client.get("/users", headers=ada).json()
    assert sorted(u["email"] for u in users["items"]) == sorted(
        world.emails[w] for w in ("ada", "cora", "anne", "ned"))
    r = client.post("/users", headers=ada, json={"email": "Bob@Example.org", "name": "Bob", "role": "carer",
                                                 "password": "long enough pw", "recipient_id": world.recipients["bob"]})
    assert r.status_code == 201, r.text
    bob = r.json()
    assert (bob["email"], bob["recipient_id"]) == ("bob@example.org", world.recipients["bob"])
    token = client.post("/auth/token", data={"username": "bob@example.org", "password": "long enough pw"}).json()
    seen = client.get("/residents", headers={"Authorization": f"Bearer {token['access_token']}"}).json()
    assert seen["total"] == 2  # Bob is in both chains
    for body, status in [({"email": "bob@example.org", "name": "B", "role": "carer", "password": PASSWORD}, 409),
                         ({"email": "not-an-email", "name": "B", "role": "carer", "password": PASSWORD}, 422),
                         ({"email": "c@example.org", "name": "B", "role": "king", "password": PASSWORD}, 422),
                         ({"email": "c@example.org", "name": "B", "role": "carer", "password": "short"}, 422),
                         ({"email": "c@example.org", "name": "B", "role": "carer", "password": PASSWORD,
                           "recipient_id": world.recipients["zed"]}, 422)]:
        assert client.post("/users", json=body, headers=ada).status_code == status, body
    r = client.patch(f"/users/{world.users['ned']}", json={"recipient_id": world.recipients["anne"]}, headers=ada)
    assert r.status_code == 200 and r.json()["recipient_id"] == world.recipients["anne"]
    assert client.get(f"/users/{world.users['bea']}", headers=ada).status_code == 404  # another organisation
    assert client.patch(f"/users/{world.users['ada']}", json={"role": "carer"}, headers=ada).status_code == 409
    assert client.delete(f"/users/{world.users['ada']}", headers=ada).status_code == 409
    assert client.delete(f"/users/{bob['id']}", headers=ada).status_code == 204
    assert client.get(f"/users/{bob['id']}", headers=ada).status_code == 404


def test_device_health(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    silent, = raise_alerts(sessions, ("h1", AlertKind.SENSOR_SILENT, Severity.LOW, "front_door"))
    with sessions.begin() as s:
        s.get(Home, "h2").hub_online = False
        s.get(Home, "h2").hub_changed_at = T0 - timedelta(hours=1)
    r = client.get("/devices/health", headers=world.auth("cora"))
    assert r.status_code == 200
    problems = [(p["home_id"], p["problem"], p["device"], p["alert_id"]) for p in r.json()["items"]]
    assert sorted(problems, key=str) == sorted([("h1", "sensor_silent", "front_door", silent),
                                                ("h1", "low_battery", "kitchen_pir", None),
                                                ("h2", "hub_offline", None, None)], key=str)
    r = client.get("/devices/health", params={"problem": "low_battery"}, headers=world.auth("cora"))
    assert [p["battery"] for p in r.json()["items"]] == [9]
    # Organisation B's low battery (h3) is B's.
    assert [p["home_id"] for p in client.get("/devices/health", headers=world.auth("bea")).json()["items"]] == ["h3"]


def test_dead_letters_of_the_organisations_homes_only(client: TestClient, world: World,
                                                      sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        for i, home in enumerate(["h1", "h3", None, "h1"]):
            s.add(DeadLetter(received_at=T0 + timedelta(minutes=i), journal_seq=i, home_id=home, device="d",
                             topic=f"telecare/{home}/d", reason="bad_json" if i else "too_large", detail="x",
                             payload="{"))
    r = client.get("/dead-letters", headers=world.auth("cora"))
    items = r.json()["items"]
    assert [d["received_at"] for d in items] == [
        "2026-12-01T09:03:00Z", "2026-12-01T09:00:00Z"]
    assert client.get("/dead-letters", params={"reason": "too_large"},
                      headers=world.auth("cora")).json()["total"] == 1
    assert client.get(f"/dead-letters/{items[0]['id']}", headers=world.auth("cora")).status_code == 200
    assert client.get(f"/dead-letters/{items[0]['id']}", headers=world.auth("bea")).status_code == 404


def test_the_audit_trail_by_resident(client: TestClient, world: World) -> None:
    jones, smith = world.residents["jones"], world.residents["smith"]
    client.get(f"/residents/{jones}", headers=world.auth("anne"))
    client.get(f"/residents/{smith}", headers=world.auth("cora"))
    client.get(f"/residents/{world.residents['brown']}", headers=world.auth("bea"))
    r = client.get("/audit", params={"resident_id": jones}, headers=world.auth("cora"))
    assert r.status_code == 200
    assert [(e["actor"], e["action"], e["resource"], e["user_id"]) for e in r.json()["items"]] == [
        ("Anne", "view", "resident", world.users["anne"])]
    assert r.json()["items"][0]["at"] == "2026-12-01T10:00:00Z"
    assert client.get("/audit", headers=world.auth("cora")).json()["total"] == 2  # B's views are B's
    assert client.get("/audit", params={"user_id": world.users["cora"]},
                      headers=world.auth("ada")).json()["total"] == 1
    assert client.get("/audit", headers=world.auth("anne")).status_code == 403


def test_pagination(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        for i in range(7):
            s.add(DeadLetter(received_at=T0 + timedelta(minutes=i), journal_seq=i, home_id="h1", device="d",
                             topic="telecare/h1/d", reason="bad_json", detail="x", payload="{"))
    headers = world.auth("cora")
    seen: list[int] = []
    offset: int | None = 0
    while offset is not None:
        page = client.get("/dead-letters", params={"limit": 3, "offset": offset}, headers=headers).json()
        assert page["total"] == 7 and page["limit"] == 3 and len(page["items"]) <= 3
        seen += [d["id"] for d in page["items"]]
        offset = page["next_offset"]
    assert len(seen) == len(set(seen)) == 7
    past = client.get("/dead-letters", params={"offset": 50}, headers=headers).json()
    assert (past["items"], past["next_offset"]) == ([], None)


def test_every_error_has_the_same_shape(client: TestClient, world: World) -> None:
    headers = world.auth("cora")
    for method, path, status, code in [("GET", "/nowhere", 404, "not_found"),
                                       ("DELETE", "/alerts", 405, "method_not_allowed"),
                                       ("GET", "/residents/4242", 404, "not_found"),
                                       ("GET", "/residents/x", 422, "invalid")]:
        r = client.request(method, path, headers=headers)
        assert r.status_code == status
        error = r.json()["error"]
        assert (error["status"], error["code"]) == (status, code) and error["message"]


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/auth/token", "/residents", "/alerts/{alert_id}/resolve", "/audit"} <= set(schema["paths"])
