"""``GET /audit/export``: an organisation's audit trail as CSV or JSON Lines, for its data protection officer
(admins only, its own rows only, streamed in batches) (issue 12, finding 5)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.routers import audit as audit_router
from gateway.db.models import AuditEntry
from tests.api.conftest import T0, World


def _seed(sessions: sessionmaker[Session], world: World, count: int = 5) -> None:
    with sessions.begin() as s:
        for i in range(count):
            s.add(AuditEntry(organisation_id=world.org_a, at=T0 + timedelta(minutes=i), user_id=world.users["cora"],
                             api_key_id=None, actor="Cora", action="view", resource="resident",
                             resident_id=world.residents["jones"], detail=f"row {i}", client_address="10.0.0.1"))
        s.add(AuditEntry(organisation_id=world.org_b, at=T0, user_id=world.users["bea"], api_key_id=None,
                         actor="Bea", action="view", resource="resident", resident_id=world.residents["brown"],
                         detail="organisation B's"))
        s.add(AuditEntry(organisation_id=world.org_a, at=T0 + timedelta(minutes=30), user_id=None, api_key_id=None,
                         actor="=HYPERLINK(\"http://evil\")", action="login_failed", resource="account",
                         resident_id=None, detail="-1+1"))


def test_csv_export_is_the_organisations_rows_oldest_first(client: TestClient, world: World,
                                                          sessions: sessionmaker[Session]) -> None:
    _seed(sessions, world)
    r = client.get("/audit/export", params={"format": "csv", "to": (T0 + timedelta(hours=1)).isoformat()},
                   headers=world.auth("ada"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"] and r.headers["cache-control"] == "no-store"
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["detail"] for row in table] == [f"row {i}" for i in range(5)] + ["'-1+1"]
    assert {row["organisation_id"] for row in table} == {str(world.org_a)}
    assert table[0]["client_address"] == "10.0.0.1" and table[0]["occurrences"] == "1"
    assert table[0]["at"] == T0.isoformat()
    assert table[-1]["actor"].startswith("'="), "a cell a spreadsheet would run as a formula is defused"


def test_jsonl_export_with_a_period(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    _seed(sessions, world)
    params = {"format": "jsonl", "from": (T0 + timedelta(minutes=1)).isoformat(),
              "to": (T0 + timedelta(minutes=3)).isoformat()}
    r = client.get("/audit/export", params=params, headers=world.auth("ada"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [line["detail"] for line in lines] == ["row 1", "row 2"]
    assert lines[0]["user_id"] == world.users["cora"] and lines[0]["resident_id"] == world.residents["jones"]


def test_export_streams_in_batches(client: TestClient, world: World, sessions: sessionmaker[Session],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_router, "EXPORT_BATCH", 2)
    _seed(sessions, world, count=7)
    with sessions.begin() as s:  # rows at the same instant are paged by id
        s.add_all(AuditEntry(organisation_id=world.org_a, at=T0, user_id=None, api_key_id=None, actor="x",
                             action="view", resource="r", resident_id=None, detail=f"same {i}") for i in range(3))
    r = client.get("/audit/export", params={"format": "jsonl", "to": (T0 + timedelta(minutes=20)).isoformat()},
                   headers=world.auth("ada"))
    details = [json.loads(line)["detail"] for line in r.text.splitlines()]
    assert details == ["row 0", "same 0", "same 1", "same 2"] + [f"row {i}" for i in range(1, 7)]


def test_only_admins_export_and_the_export_is_recorded(client: TestClient, world: World,
                                                       sessions: sessionmaker[Session]) -> None:
    assert client.get("/audit/export", headers=world.auth("cora")).status_code == 403
    assert client.get("/audit/export", headers=world.auth("bea")).status_code == 403
    assert client.get("/audit/export", params={"format": "xml"}, headers=world.auth("ada")).status_code == 422
    r = client.get("/audit/export", params={"from": T0.isoformat(), "to": T0.isoformat()},
                   headers=world.auth("ada"))
    assert r.status_code == 400
    r = client.get("/audit/export", params={"format": "jsonl"}, headers=world.auth("ada"))
    exported = [json.loads(line) for line in r.text.splitlines()]
    assert [(e["action"], e["user_id"]) for e in exported if e["action"] == "export"] == [
        ("export", world.users["ada"])]
    assert all(e["organisation_id"] == world.org_a for e in exported)
