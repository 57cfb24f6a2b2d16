"""``GET /residents`` is the caseload: searched, filtered, sorted and paged in the database (``api.caseload``), on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertKind, Severity
from gateway.alerting import people
from gateway.db.models import AuditEntry, Device, Home, HomeClaim, Resident
from tests.api.conftest import CARE_START, T0, World, raise_alerts


@pytest.fixture
def caseload(world: World, sessions: sessionmaker[Session]) -> dict[str, int]:
    """Organisation A's caseload: Mrs Jones (h1) with an urgent alert, Mr Smith (h2) with a warning and a sensor
    not set up, Mrs Able (h4) whose hub is offline, Mr Quiet (h5) never heard from. Their resident ids."""
    with sessions.begin() as s:
        s.add_all([Home(id="h4", name="1 Birch Close", organisation_id=world.org_a, hub_online=False,
                        last_seen=T0 - timedelta(hours=3)),
                   Home(id="h5", name="9 Yew Walk", organisation_id=world.org_a)])
        s.get_one(Home, "h1").last_seen = T0
        s.get_one(Home, "h2").last_seen = T0 - timedelta(hours=1)
        s.flush()
        s.add_all([HomeClaim(home_id=h, organisation_id=world.org_a, claimed_at=CARE_START) for h in ("h4", "h5")])
        s.add(Device(home_id="h2", name="0x00158d0001", kind="motion"))  # no room, no role
        able = people.add_resident(s, "h4", "Mrs Able")
        quiet = people.add_resident(s, "h5", "Mr Quiet")
        for resident in (able, quiet):
            resident.created_at = CARE_START
        s.flush()
        ids = {"able": able.id, "quiet": quiet.id}
    raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""),
                 ("h2", AlertKind.NO_MEALS, Severity.WARNING, ""))
    return {**world.residents, **ids}


def names(client: TestClient, world: World, who: str = "cora", **params: Any) -> list[str]:
    r = client.get("/residents", params=params, headers=world.auth(who))
    assert r.status_code == 200, (params, r.text)
    return [item["name"] for item in r.json()["items"]]


def test_filters(client: TestClient, world: World, caseload: dict[str, int]) -> None:
    assert names(client, world) == ["Mr Quiet", "Mr Smith", "Mrs Able", "Mrs Jones"]  # by name, as before
    assert names(client, world, alert_state="urgent") == ["Mrs Jones"]
    assert names(client, world, alert_state="warning") == ["Mr Smith"]
    assert names(client, world, alert_state="none") == ["Mr Quiet", "Mrs Able"]
    assert names(client, world, cant_see="true") == ["Mrs Able"]
    assert names(client, world, needs_setting_up="true") == ["Mr Smith"]
    assert names(client, world, carer=world.recipients["anne"]) == ["Mrs Jones"]
    assert names(client, world, carer=world.recipients["bob"]) == ["Mr Smith", "Mrs Jones"]
    assert names(client, world, carer=world.recipients["bob"], alert_state="warning") == ["Mr Smith"]
    # Search: the resident's name, the home's id or name, any case, a part of it; % and _ are plain characters.
    assert names(client, world, q="JON") == ["Mrs Jones"]
    assert names(client, world, q="elm road") == ["Mr Smith"]
    assert names(client, world, q="h4") == ["Mrs Able"]
    assert names(client, world, q="  MR S ") == ["Mr Smith"]  # stripped
    assert names(client, world, q="%") == [] and names(client, world, q="_") == []
    assert names(client, world, q="") == names(client, world)


def test_each_item_says_why_and_the_summary_counts_the_whole_caseload(
        client: TestClient, world: World, caseload: dict[str, int]) -> None:
    r = client.get("/residents", params={"alert_state": "urgent"}, headers=world.auth("cora"))
    page = r.json()
    jones, = page["items"]
    assert (jones["alert_state"], jones["severity"], jones["open_alerts"], jones["oldest_open_at"]) == (
        "urgent", 3, 1, "2026-12-01T09:00:00Z")
    assert (jones["cant_see"], jones["last_heard"], jones["devices_not_set_up"]) == (False, "2026-12-01T09:00:00Z", 0)
    assert jones["home"] == {"id": "h1", "name": "12 Acacia Avenue", "timezone": "Europe/London"}
    assert [s["recipient_name"] for s in jones["chain"]] == ["Anne", "Bob"]
    assert page["summary"] == {"residents": 4, "urgent": 1, "warning": 1, "open_alerts": 2, "cant_see": 1,
                               "needs_setting_up": 1}
    assert (page["total"], page["limit"], page["offset"], page["next_offset"]) == (1, 50, 0, None)
    items = {i["name"]: i for i in client.get("/residents", headers=world.auth("cora")).json()["items"]}
    assert items["Mrs Able"]["cant_see"] is True and items["Mrs Able"]["alert_state"] == "none"
    assert items["Mr Quiet"]["last_heard"] is None and items["Mr Smith"]["devices_not_set_up"] == 1


def test_sort_and_order(client: TestClient, world: World, caseload: dict[str, int]) -> None:
    assert names(client, world, order="desc") == ["Mrs Jones", "Mrs Able", "Mr Smith", "Mr Quiet"]
    assert names(client, world, sort="home") == ["Mrs Jones", "Mr Smith", "Mrs Able", "Mr Quiet"]  # h1 h2 h4 h5
    # The most severe alert first, then the home that can't be seen, then by name.
    assert names(client, world, sort="urgency") == ["Mrs Jones", "Mr Smith", "Mrs Able", "Mr Quiet"]
    # Heard from longest ago first: never, 3 hours, 1 hour, now.
    assert names(client, world, sort="last_heard") == ["Mr Quiet", "Mrs Able", "Mr Smith", "Mrs Jones"]
    assert names(client, world, sort="last_heard", order="desc") == ["Mrs Jones", "Mr Smith", "Mrs Able", "Mr Quiet"]


def test_paging(client: TestClient, world: World, caseload: dict[str, int]) -> None:
    headers = world.auth("cora")
    first = client.get("/residents", params={"limit": 3, "sort": "urgency"}, headers=headers).json()
    assert ([i["name"] for i in first["items"]], first["total"], first["next_offset"]) == (
        ["Mrs Jones", "Mr Smith", "Mrs Able"], 4, 3)
    second = client.get("/residents", params={"limit": 3, "offset": 3, "sort": "urgency"}, headers=headers).json()
    assert ([i["name"] for i in second["items"]], second["total"], second["next_offset"]) == (["Mr Quiet"], 4, None)
    past = client.get("/residents", params={"offset": 10}, headers=headers).json()
    assert (past["items"], past["total"], past["summary"]["residents"]) == ([], 4, 4)


def test_a_carer_and_another_organisation_see_only_theirs(client: TestClient, world: World,
                                                           caseload: dict[str, int]) -> None:
    anne = client.get("/residents", headers=world.auth("anne")).json()
    assert [i["name"] for i in anne["items"]] == ["Mrs Jones"]
    assert anne["summary"] == {"residents": 1, "urgent": 1, "warning": 0, "open_alerts": 1, "cant_see": 0,
                               "needs_setting_up": 0}
    assert names(client, world, "bea") == ["Mr Brown"]
    assert names(client, world, "bea", q="jones") == [] and names(client, world, "ned") == []
    # Another organisation's recipient is not a filter one may use (nor a way to learn they exist).
    r = client.get("/residents", params={"carer": world.recipients["zed"]}, headers=world.auth("cora"))
    assert r.status_code == 422 and "no recipient" in r.json()["error"]["message"]


def test_bad_parameters_get_a_message(client: TestClient, world: World, caseload: dict[str, int]) -> None:
    cases = [({"alert_state": "red"}, "urgent"), ({"sort": "age"}, "urgency"), ({"order": "up"}, "desc"),
             ({"cant_see": "false"}, "cant_see=false"), ({"needs_setting_up": "false"}, "needs_setting_up=false"),
             ({"cant_see": "maybe"}, "cant_see"), ({"q": "x" * 101}, "100"), ({"q": "a\x00b"}, "NUL"),
             ({"q": "a\x1bb"}, "control"), ({"carer": "0"}, "carer"), ({"carer": str(2**31)}, "carer"),
             ({"limit": "501"}, "limit"), ({"limit": "0"}, "limit"), ({"offset": "-1"}, "offset")]
    for params, message in cases:
        r = client.get("/residents", params=params, headers=world.auth("cora"))
        assert r.status_code == 422, (params, r.text)
        assert message in r.json()["error"]["message"], (params, r.text)


def test_only_the_listed_residents_are_audited(client: TestClient, world: World, caseload: dict[str, int],
                                               sessions: sessionmaker[Session]) -> None:
    assert names(client, world, alert_state="urgent") == ["Mrs Jones"]
    with sessions() as s:
        rows = s.execute(select(AuditEntry.action, AuditEntry.resource, AuditEntry.resident_id)
                         .where(AuditEntry.actor == "Cora")).all()
    assert [tuple(r) for r in rows] == [("list", "resident", caseload["jones"])]


def test_a_caseload_of_hundreds_pages_without_overlap(client: TestClient, world: World,
                                                      sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        s.add_all([Home(id=f"bulk-{n:03}", name=f"{n} Long Street", organisation_id=world.org_a)
                   for n in range(520)])
        s.flush()
        s.add_all([Resident(home_id=f"bulk-{n:03}", name=f"Resident {n % 7}", created_at=CARE_START)
                   for n in range(520)])
    raise_alerts(sessions, *((f"bulk-{n:03}", AlertKind.INACTIVITY, Severity.URGENT, "") for n in range(0, 520, 50)))
    seen: list[int] = []
    offset: int | None = 0
    while offset is not None:
        page = client.get("/residents", params={"limit": 200, "offset": offset, "sort": "urgency"},
                          headers=world.auth("cora")).json()
        assert page["total"] == 522 and page["summary"]["urgent"] == 11
        seen += [i["id"] for i in page["items"]]
        offset = page["next_offset"]
    with sessions() as s:
        everyone = set(s.scalars(select(Resident.id).join(Home).where(Home.organisation_id == world.org_a)))
        assert s.scalar(select(func.count()).select_from(Resident)) == 523
    assert len(seen) == len(set(seen)) == 522 and set(seen) == everyone
