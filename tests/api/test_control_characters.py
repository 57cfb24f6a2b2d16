"""Names and notes refuse control characters (ESC, BEL, C1, bidi overrides) with a 422 naming the field (issue 12,
finding 8): they would reach the console, the logs and the dashboard and change what a person reads there."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertKind, Severity
from tests.api.conftest import KEY, World, raise_alerts

HOSTILE = ["Mrs \x1b[2J Jones", "Mrs Jones\x07", "Mrs \u202eJones", "Mrs \u2066Jones", "Mrs \x9bJones",
           "Mrs\x7fJones"]


def _refused(response: object, field: str) -> None:
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error["code"] == "invalid"
    assert [f["field"] for f in error["fields"]] == [field]
    assert "control characters" in error["message"]


@pytest.mark.parametrize("name", HOSTILE)
def test_names_refuse_control_characters(client: TestClient, world: World, name: str) -> None:
    resident = world.residents["jones"]
    _refused(client.patch(f"/residents/{resident}", json={"name": name}, headers=world.auth("cora")), "body.name")
    _refused(client.post("/users", json={"email": "new@example.org", "name": name, "role": "carer",
                                         "password": "a long passphrase"}, headers=world.auth("ada")), "body.name")
    _refused(client.post("/recipients", json={"name": name, "pushover_user_key": KEY["Bob"]},
                         headers=world.auth("cora")), "body.name")
    _refused(client.patch("/homes/h1", json={"name": name}, headers=world.auth("cora")), "body.name")


def test_a_name_is_one_line(client: TestClient, world: World) -> None:
    resident = world.residents["jones"]
    _refused(client.patch(f"/residents/{resident}", json={"name": "Mrs\nJones"}, headers=world.auth("cora")),
             "body.name")
    r = client.patch(f"/residents/{resident}", json={"name": "Mrs Zoë Jones-Ōta"}, headers=world.auth("cora"))
    assert r.status_code == 200 and r.json()["name"] == "Mrs Zoë Jones-Ōta"


def test_notes_keep_line_breaks_but_refuse_escapes(client: TestClient, world: World) -> None:
    resident = world.residents["jones"]
    url, cora = f"/residents/{resident}", world.auth("cora")
    r = client.patch(url, json={"notes": "Key safe by the door.\n\tCode with the warden."}, headers=cora)
    assert r.status_code == 200 and r.json()["notes"] == "Key safe by the door.\n\tCode with the warden."
    for note in HOSTILE:
        _refused(client.patch(url, json={"notes": note}, headers=cora), "body.notes")


def test_alert_notes_refuse_control_characters(client: TestClient, world: World,
                                              sessions: sessionmaker[Session]) -> None:
    alert, = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    cora = world.auth("cora")
    _refused(client.post(f"/alerts/{alert}/acknowledge", json={"note": "on my way\x1b]0;pwned\x07"}, headers=cora),
             "body.note")
    _refused(client.post(f"/alerts/{alert}/resolve", json={"note": "fine \u202e", "outcome": "false_alarm"},
                         headers=cora), "body.note")
    assert client.post(f"/alerts/{alert}/resolve", json={"note": "fine", "outcome": "false_alarm"},
                       headers=cora).status_code == 200
    _refused(client.post(f"/alerts/{alert}/outcome", json={"outcome": "fall", "note": "\x9b31m"}, headers=cora),
             "body.note")
