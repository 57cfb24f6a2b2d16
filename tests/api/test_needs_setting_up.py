"""Devices that still need setting up, in the API: counted on the home, a filter on its devices, and one list across
the organisation's homes with a button not set up first (issue 11, finding 5)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from gateway.db.models import Device
from tests.api.conftest import World


def discovered(sessions: sessionmaker[Session]) -> None:
    """h1 (conftest: front_door described, kitchen_pir with a room) gains what a hub reports undescribed."""
    with sessions.begin() as s:
        s.add_all([Device(home_id="h1", name="0x00158d0001a2b3c4", kind="motion"),  # no room, no role
                   Device(home_id="h1", name="hall_button", kind="button", room="hall"),  # a room but no role
                   Device(home_id="h1", name="pendant", kind="button", role="pendant")])


def test_a_home_counts_what_needs_setting_up_and_a_button_apart(client: TestClient, world: World,
                                                                 sessions: sessionmaker[Session]) -> None:
    headers = world.auth("cora")
    assert client.get("/homes/h1", headers=headers).json()["needs_setting_up"] == 0
    discovered(sessions)
    home = client.get("/homes/h1", headers=headers).json()
    assert (home["devices"], home["needs_setting_up"], home["buttons_not_set_up"]) == (5, 2, 1)
    listed = {h["id"]: h for h in client.get("/homes", headers=headers).json()["items"]}
    assert listed["h1"]["buttons_not_set_up"] == 1 and listed["h2"]["needs_setting_up"] == 0


def test_a_homes_devices_filtered_on_needing_setting_up_the_button_first(client: TestClient, world: World,
                                                                       sessions: sessionmaker[Session]) -> None:
    discovered(sessions)
    headers = world.auth("cora")
    r = client.get("/homes/h1/devices", params={"needs_setting_up": "true"}, headers=headers)
    assert r.status_code == 200
    items = r.json()["items"]
    assert [(d["name"], d["needs_setting_up"]) for d in items] == [("hall_button", True),
                                                                   ("0x00158d0001a2b3c4", True)]
    assert "each press is raised as a possible pendant press" in items[0]["setting_up"]
    assert items[1]["setting_up"].startswith("no room or role")
    others = client.get("/homes/h1/devices", params={"needs_setting_up": "false"}, headers=headers).json()
    assert [(d["name"], d["setting_up"]) for d in others["items"]] == [("front_door", None), ("kitchen_pir", None),
                                                                       ("pendant", None)]
    everything = client.get("/homes/h1/devices", headers=headers).json()
    assert everything["total"] == 5 and {d["name"] for d in everything["items"] if d["needs_setting_up"]} == {
        "hall_button", "0x00158d0001a2b3c4"}


def test_across_the_organisation_and_gone_once_the_button_is_given_its_role(
        client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    discovered(sessions)
    cora = world.auth("cora")
    r = client.get("/devices/needs-setting-up", headers=cora)
    assert r.status_code == 200
    assert [(d["home_id"], d["name"]) for d in r.json()["items"]] == [("h1", "hall_button"),
                                                                     ("h1", "0x00158d0001a2b3c4")]
    # Organisation B's undescribed bed pad (h3) is B's alone.
    assert [d["name"] for d in client.get("/devices/needs-setting-up", headers=world.auth("bea")).json()["items"]] \
        == ["bed_pad"]
    assert client.get("/devices/needs-setting-up", params={"home_id": "h2"}, headers=cora).json()["total"] == 0

    button = r.json()["items"][0]
    assert client.patch(f"/homes/h1/devices/{button['id']}", json={"role": "pendant"},
                        headers=cora).json()["needs_setting_up"] is False
    assert [d["name"] for d in client.get("/devices/needs-setting-up", headers=cora).json()["items"]] == [
        "0x00158d0001a2b3c4"]
    home = client.get("/homes/h1", headers=cora).json()
    assert (home["needs_setting_up"], home["buttons_not_set_up"]) == (1, 0)


def test_a_carer_may_not_list_them(client: TestClient, world: World) -> None:
    assert client.get("/devices/needs-setting-up", headers=world.auth("anne")).status_code == 403
