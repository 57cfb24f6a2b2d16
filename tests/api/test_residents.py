"""Residents, chains and absences: happy paths, bad input (422 naming the field), the audit trail."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.db.models import AuditEntry, Home
from tests.api.conftest import H9_CLAIM_CODE, World


def audit_rows(sessions: sessionmaker[Session]) -> list[tuple[str | None, str, str, int | None]]:
    with sessions() as s:
        return [(e.actor, e.action, e.resource, e.resident_id)
                for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def test_list_and_view_a_resident_with_home_and_chain(client: TestClient, world: World,
                                                      sessions: sessionmaker[Session]) -> None:
    r = client.get("/residents", headers=world.auth("cora"))
    assert r.status_code == 200
    page = r.json()
    assert [x["name"] for x in page["items"]] == ["Mr Smith", "Mrs Jones"]
    assert page["total"] == 2 and page["next_offset"] is None
    jones = client.get(f"/residents/{world.residents['jones']}", headers=world.auth("cora")).json()
    assert jones["home"] == {"id": "h1", "name": "12 Acacia Avenue", "timezone": "Europe/London"}
    assert [(s["position"], s["recipient_name"], s["wait_min"]) for s in jones["chain"]] == [(1, "Anne", 15),
                                                                                             (2, "Bob", 15)]
    rows = audit_rows(sessions)
    assert sorted(rows[:2]) == sorted([("Cora", "list", "resident", world.residents["smith"]),
                                       ("Cora", "list", "resident", world.residents["jones"])])
    assert rows[2:] == [("Cora", "view", "resident", world.residents["jones"])]


def test_search_by_name(client: TestClient, world: World) -> None:
    r = client.get("/residents", params={"q": "jon"}, headers=world.auth("cora"))
    assert [x["name"] for x in r.json()["items"]] == ["Mrs Jones"]


def test_claim_a_home_then_add_its_resident(client: TestClient, world: World,
                                           sessions: sessionmaker[Session]) -> None:
    headers = world.auth("cora")
    r = client.post("/residents", json={"home_id": "h9", "name": "Mrs Green"}, headers=headers)
    assert r.status_code == 422 and "claim it first" in r.json()["error"]["message"]
    assert client.post("/homes/h9/claim", json={"claim_code": H9_CLAIM_CODE}, headers=headers).status_code == 200
    r = client.post("/residents", json={"home_id": "h9", "name": " Mrs Green ", "timezone": "Europe/Dublin",
                                        "notes": "hard of hearing"}, headers=headers)
    assert r.status_code == 201, r.text
    green = r.json()
    assert green["name"] == "Mrs Green" and green["home"]["timezone"] == "Europe/Dublin" and green["chain"] == []
    r = client.post("/residents", json={"home_id": "h9", "name": "Someone else"}, headers=headers)
    assert r.status_code == 409
    with sessions() as s:
        assert s.get(Home, "h9").timezone == "Europe/Dublin"
    assert ("Cora", "create", "resident", green["id"]) in audit_rows(sessions)


def test_bad_resident_input_is_422_naming_the_field(client: TestClient, world: World) -> None:
    headers = world.auth("cora")
    cases = [
        ({"home_id": "h1"}, "body.name: Field required"),
        ({"home_id": "h1", "name": ""}, "body.name"),
        ({"home_id": "h1", "name": "x" * 201}, "body.name"),
        ({"home_id": "h1", "name": "X", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"home_id": "h1", "name": "X", "colour": "red"}, "body.colour: Extra inputs are not permitted"),
        ({"home_id": "h1", "name": "nul\x00"}, "NUL"),
    ]
    for body, message in cases:
        r = client.post("/residents", json=body, headers=headers)
        assert r.status_code == 422, (body, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid" and message in error["message"], (body, error)
        assert error["fields"]
    r = client.post("/residents", content=b"{not json", headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 422
    assert client.get("/residents/0", headers=headers).status_code == 422
    assert client.get("/residents/99999999999", headers=headers).status_code == 422
    assert client.get("/residents/abc", headers=headers).status_code == 422
    assert client.get("/residents/4242", headers=headers).status_code == 404


def test_update_and_delete_a_resident(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    headers, smith = world.auth("cora"), world.residents["smith"]
    r = client.patch(f"/residents/{smith}", json={"notes": "key safe 1234", "timezone": "Europe/Paris"},
                     headers=headers)
    assert r.status_code == 200
    assert r.json()["notes"] == "key safe 1234" and r.json()["home"]["timezone"] == "Europe/Paris"
    assert r.json()["name"] == "Mr Smith"
    assert client.delete(f"/residents/{smith}", headers=headers).status_code == 204
    assert client.get(f"/residents/{smith}", headers=headers).status_code == 404
    rows = audit_rows(sessions)
    assert ("Cora", "update", "resident", smith) in rows and ("Cora", "delete", "resident", smith) in rows


def test_replace_the_chain(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    headers, jones = world.auth("cora"), world.residents["jones"]
    steps = [{"recipient_id": world.recipients["bob"], "wait_min": 10},
             {"recipient_id": world.recipients["anne"], "wait_min": 30}]
    r = client.put(f"/residents/{jones}/chain", json={"steps": steps}, headers=headers)
    assert r.status_code == 200, r.text
    assert [(s["recipient_name"], s["wait_min"]) for s in r.json()["chain"]] == [("Bob", 10), ("Anne", 30)]
    for body in ({"steps": []}, {"steps": [{"recipient_id": world.recipients["bob"], "wait_min": 0}]},
                 {"steps": [{"recipient_id": world.recipients["bob"], "wait_min": 5}] * 2},
                 {"steps": [{"recipient_id": 4242, "wait_min": 5}]}):
        r = client.put(f"/residents/{jones}/chain", json=body, headers=headers)
        assert r.status_code == 422, (body, r.text)
    assert ("Cora", "update", "chain", jones) in audit_rows(sessions)


def test_absences(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    headers, jones = world.auth("cora"), world.residents["jones"]
    r = client.post(f"/residents/{jones}/absences", headers=headers,
                    json={"starts_at": "2026-12-02T08:00:00+01:00", "ends_at": None, "reason": "hospital"})
    assert r.status_code == 201, r.text
    absence = r.json()
    assert absence["starts_at"] == "2026-12-02T07:00:00Z" and absence["ends_at"] is None
    r = client.post(f"/residents/{jones}/absences/{absence['id']}/end",
                    json={"at": "2026-12-05T12:00:00Z"}, headers=headers)
    assert r.status_code == 200 and r.json()["ends_at"] == "2026-12-05T12:00:00Z"
    r = client.post(f"/residents/{jones}/absences/{absence['id']}/end", json={"at": "2026-12-06T00:00:00Z"},
                    headers=headers)
    assert r.status_code == 409 and "ended already" in r.json()["error"]["message"]
    assert client.post(f"/residents/{jones}/absences/4242/end", headers=headers).status_code == 404
    r = client.post(f"/residents/{jones}/absences", headers=headers,  # inside the hospital stay just ended
                    json={"starts_at": "2026-12-04T08:00:00Z", "ends_at": "2026-12-10T08:00:00Z", "reason": "respite"})
    assert r.status_code == 409 and f"absence {absence['id']}" in r.json()["error"]["message"], r.text
    listed = client.get(f"/residents/{jones}/absences", headers=world.auth("anne")).json()
    assert [a["reason"] for a in listed["items"]] == ["hospital"]
    bad = [{"starts_at": "2026-12-02T08:00:00", "reason": "x"},  # naive
           {"starts_at": "2026-12-02T08:00:00Z", "ends_at": "2026-12-01T08:00:00Z", "reason": "x"},
           {"starts_at": "0001-01-01T00:00:00+05:00", "reason": "x"},
           {"starts_at": "2026-12-02T08:00:00Z", "reason": ""}]
    for body in bad:
        r = client.post(f"/residents/{jones}/absences", json=body, headers=headers)
        assert r.status_code == 422, (body, r.text)
    assert client.post(f"/residents/{jones}/absences", json=bad[0], headers=world.auth("anne")).status_code == 403
    rows = audit_rows(sessions)
    assert ("Cora", "create", "absence", jones) in rows and ("Anne", "list", "absences", jones) in rows
