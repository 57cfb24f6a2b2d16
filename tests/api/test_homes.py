"""Homes: claiming discovered homes, naming them, their devices' rooms and roles."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from gateway.db.models import Device, Home
from tests.api.conftest import H9_CLAIM_CODE, World


def test_list_claim_and_release_homes(client: TestClient, world: World) -> None:
    cora, bea = world.auth("cora"), world.auth("bea")
    homes = client.get("/homes", headers=cora).json()
    assert [(h["id"], h["claimed"], h["resident_id"], h["devices"]) for h in homes["items"]] == [
        ("h1", True, world.residents["jones"], 2), ("h2", True, world.residents["smith"], 0)]
    code = {"claim_code": H9_CLAIM_CODE}
    r = client.post("/homes/h9/claim", json=code, headers=cora)
    assert r.status_code == 200 and r.json()["claimed"] is True
    assert client.post("/homes/h9/claim", headers=cora).status_code == 200  # again: no change
    assert client.post("/homes/h9/claim", json=code, headers=bea).status_code == 404  # claimed by another
    assert client.post("/homes/nowhere/claim", json=code, headers=cora).status_code == 404
    assert client.post("/homes/h1/release", headers=cora).status_code == 409  # has a resident
    r = client.post("/homes/h9/release", headers=cora)
    assert r.status_code == 200 and r.json()["claimed"] is False


def test_rename_a_home_and_set_its_time_zone(client: TestClient, world: World) -> None:
    r = client.patch("/homes/h2", json={"name": "Flat 3", "timezone": "America/New_York"},
                     headers=world.auth("cora"))
    assert r.status_code == 200 and (r.json()["name"], r.json()["timezone"]) == ("Flat 3", "America/New_York")
    r = client.patch("/homes/h2", json={"timezone": "Nowhere/Else"}, headers=world.auth("cora"))
    assert r.status_code == 422 and "time zone" in r.json()["error"]["message"]


def test_devices_get_rooms_and_roles(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    headers = world.auth("cora")
    devices = client.get("/homes/h1/devices", headers=headers).json()["items"]
    assert [d["name"] for d in devices] == ["front_door", "kitchen_pir"]
    pir = devices[1]
    r = client.patch(f"/homes/h1/devices/{pir['id']}", json={"room": "kitchen", "role": "fridge"}, headers=headers)
    assert r.status_code == 200 and (r.json()["room"], r.json()["role"]) == ("kitchen", "fridge")
    r = client.patch(f"/homes/h1/devices/{pir['id']}", json={"role": None}, headers=headers)
    assert r.status_code == 200 and (r.json()["room"], r.json()["role"]) == ("kitchen", None)
    r = client.patch(f"/homes/h1/devices/{pir['id']}", json={"role": "toaster"}, headers=headers)
    assert r.status_code == 422 and "front_door" in r.json()["error"]["message"]
    assert client.patch(f"/homes/h2/devices/{pir['id']}", json={"room": "x"}, headers=headers).status_code == 404
    with sessions() as s:
        assert s.get(Device, pir["id"]).role is None
        assert s.get(Home, "h1").organisation_id == world.org_a
