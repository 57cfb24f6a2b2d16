"""Roles and organisations: what each may see and do. Not visible is 404, not allowed is 403."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertKind, Severity
from tests.api.conftest import H9_CLAIM_CODE, World, raise_alerts


def test_a_carer_cannot_create_residents(client: TestClient, world: World) -> None:
    r = client.post("/residents", json={"home_id": "h9", "name": "X"}, headers=world.auth("anne"))
    assert r.status_code == 403
    assert r.json()["error"] == {"status": 403, "code": "forbidden",
                                 "message": "a carer may not do this; it needs the role admin or coordinator"}


@pytest.mark.parametrize("path", ["/users", "/api-keys"])
def test_only_admins_manage_users(client: TestClient, world: World, path: str) -> None:
    assert client.get(path, headers=world.auth("cora")).status_code == 403
    assert client.get(path, headers=world.auth("anne")).status_code == 403
    assert client.get(path, headers=world.auth("ada")).status_code == 200


@pytest.mark.parametrize("path", ["/homes", "/recipients", "/devices/health", "/dead-letters", "/audit"])
def test_carers_do_not_see_the_organisations_setup(client: TestClient, world: World, path: str) -> None:
    assert client.get(path, headers=world.auth("anne")).status_code == 403
    assert client.get(path, headers=world.auth("cora")).status_code == 200


def test_another_organisations_resident_is_not_found(client: TestClient, world: World) -> None:
    brown = world.residents["brown"]
    for method, path, body in [("GET", f"/residents/{brown}", None), ("PATCH", f"/residents/{brown}", {"name": "x"}),
                               ("DELETE", f"/residents/{brown}", None),
                               ("PUT", f"/residents/{brown}/chain", {"steps": [{"recipient_id": 1, "wait_min": 5}]}),
                               ("GET", f"/residents/{brown}/absences", None)]:
        r = client.request(method, path, json=body, headers=world.auth("cora"))
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"
    assert client.get(f"/residents/{brown}", headers=world.auth("bea")).status_code == 200
    names = [r["name"] for r in client.get("/residents", headers=world.auth("bea")).json()["items"]]
    assert names == ["Mr Brown"]


def test_another_organisations_homes_recipients_and_alerts_are_not_found(
        client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    (alert_b,) = raise_alerts(sessions, ("h3", AlertKind.INACTIVITY, Severity.URGENT, ""))
    headers = world.auth("cora")
    assert client.get("/homes/h3", headers=headers).status_code == 404
    assert client.get("/homes/h3/devices", headers=headers).status_code == 404
    assert client.post("/homes/h3/claim", headers=headers).status_code == 404  # claimed by B: not confirmed
    assert client.post("/homes/h3/claim", json={"claim_code": H9_CLAIM_CODE}, headers=headers).status_code == 404
    assert client.get(f"/recipients/{world.recipients['zed']}", headers=headers).status_code == 404
    assert client.get(f"/alerts/{alert_b}", headers=headers).status_code == 404
    assert client.post(f"/alerts/{alert_b}/acknowledge", headers=headers).status_code == 404
    assert client.get("/alerts", headers=headers).json()["total"] == 0
    # A chain cannot name another organisation's recipient.
    r = client.put(f"/residents/{world.residents['jones']}/chain",
                   json={"steps": [{"recipient_id": world.recipients["zed"], "wait_min": 5}]}, headers=headers)
    assert r.status_code == 422 and "no recipient" in r.json()["error"]["message"]


def test_a_carer_sees_only_the_residents_they_care_for(client: TestClient, world: World,
                                                       sessions: sessionmaker[Session]) -> None:
    jones_alert, smith_alert = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""),
                                            ("h2", AlertKind.NO_MEALS, Severity.WARNING, ""))
    anne = world.auth("anne")
    listed = client.get("/residents", headers=anne).json()
    assert [r["name"] for r in listed["items"]] == ["Mrs Jones"] and listed["total"] == 1
    assert client.get(f"/residents/{world.residents['smith']}", headers=anne).status_code == 404
    assert [a["id"] for a in client.get("/alerts", headers=anne).json()["items"]] == [jones_alert]
    assert client.get(f"/alerts/{smith_alert}", headers=anne).status_code == 404
    assert client.post(f"/alerts/{smith_alert}/acknowledge", headers=anne).status_code == 404
    assert client.post(f"/alerts/{smith_alert}/resolve", json={"note": "x"}, headers=anne).status_code == 404
    r = client.post(f"/alerts/{jones_alert}/acknowledge", json={"note": "on my way"}, headers=anne)
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "Anne"


def test_a_carer_without_a_recipient_link_sees_nobody(client: TestClient, world: World,
                                                      sessions: sessionmaker[Session]) -> None:
    raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    assert client.get("/residents", headers=world.auth("ned")).json()["total"] == 0
    assert client.get("/alerts", headers=world.auth("ned")).json()["total"] == 0
