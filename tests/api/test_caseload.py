"""The caseload query (api/caseload.py) on SQLite and PostgreSQL: search, filters, sort, paging, counts, isolation,
and a constant number of queries whatever the caseload's size."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertKind, Severity
from api.caseload import AlertFilter, CaseloadQuery, CaseloadSort, caseload, open_alerts
from api.deps import Principal
from gateway.db.models import Device, Home, HomeClaim, Resident
from tests.api.conftest import CARE_START, T0, World, raise_alerts


def principal(world: World, who: str = "cora", *, org: int | None = None, role: str = "coordinator",
              recipient: int | None = None) -> Principal:
    return Principal(user_id=world.users.get(who), api_key_id=None, organisation_id=org or world.org_a, role=role,
                     recipient_id=recipient, name=who.title())


def names(session: Session, who: Principal, **query: object) -> list[str]:
    return [r.name for r in caseload(session, who, CaseloadQuery(**query)).rows]  # type: ignore[arg-type]


@contextlib.contextmanager
def counting(session: Session) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_the_whole_caseload_urgent_first_with_its_counts(sessions: sessionmaker[Session], world: World) -> None:
    raise_alerts(sessions, ("h2", AlertKind.INACTIVITY, Severity.URGENT, ""),
                 ("h1", AlertKind.LOW_BATTERY, Severity.LOW, "kitchen_pir"),
                 ("h3", AlertKind.PENDANT, Severity.EMERGENCY, ""))  # another organisation's
    with sessions() as s:
        page = caseload(s, principal(world), CaseloadQuery())
        assert [r.name for r in page.rows] == ["Mr Smith", "Mrs Jones"], "urgent first; Mr Brown is Care Co's"
        smith, jones = page.rows
        assert (smith.alert_state, smith.severity, smith.open_alerts) == (AlertFilter.URGENT, 3, 1)
        assert (jones.alert_state, jones.open_alerts, jones.cant_see) == (AlertFilter.WARNING, 1, False)
        assert jones.not_set_up == 0, "kitchen_pir has a room and front_door a role: both described"
        assert page.total == 2
        assert page.summary.residents == 2 and page.summary.urgent == 1 and page.summary.warning == 1
        assert page.summary.open_alerts == 2
        alerts = open_alerts(s, principal(world), [smith.resident_id, jones.resident_id])
        assert [a.kind for a in alerts[smith.resident_id]] == ["inactivity"]


@pytest.fixture
def described(sessions: sessionmaker[Session], world: World) -> World:
    """h1's devices all described except one button; h2 has one device with neither room nor role."""
    with sessions.begin() as s:
        for d in s.query(Device).filter(Device.home_id == "h1"):
            d.room = d.room or "hall"
        s.add_all([Device(home_id="h1", name="button_1", kind="button", room="lounge"),
                   Device(home_id="h2", name="0x00124b0001", kind="motion"),
                   Device(home_id="h2", name="pendant", kind="button", role="pendant")])
    return world


def test_needs_setting_up_matches_the_detectors_rule(sessions: sessionmaker[Session], described: World) -> None:
    with sessions() as s:
        rows = {r.name: r for r in caseload(s, principal(described), CaseloadQuery()).rows}
        assert (rows["Mrs Jones"].not_set_up, rows["Mrs Jones"].buttons_not_set_up) == (1, 1)
        assert (rows["Mr Smith"].not_set_up, rows["Mr Smith"].buttons_not_set_up) == (1, 0)
        assert names(s, principal(described))[0] == "Mrs Jones", "a button not set up comes before a sensor"
    with sessions.begin() as w:
        w.query(Device).filter(Device.name == "0x00124b0001").one().room = "hall"
    with sessions() as s:
        assert names(s, principal(described), needs_setting_up=True) == ["Mrs Jones"]


def test_search_by_name_home_id_and_home_name(sessions: sessionmaker[Session], world: World) -> None:
    with sessions() as s:
        who = principal(world)
        assert names(s, who, search="JONES") == ["Mrs Jones"]
        assert names(s, who, search=" h2 ") == ["Mr Smith"]
        assert names(s, who, search="elm road") == ["Mr Smith"]
        assert names(s, who, search="brown") == [], "another organisation's resident is never found"
        assert names(s, who, search="%") == [], "LIKE wildcards are matched literally"
        assert names(s, who, search="_") == []
        assert caseload(s, who, CaseloadQuery(search="zzz")).summary.residents == 2, "counts ignore filters"


def test_filters_by_alert_state_cant_see_and_carer(sessions: sessionmaker[Session], world: World) -> None:
    raise_alerts(sessions, ("h1", AlertKind.HUB_OFFLINE, Severity.LOW, "hub"))
    with sessions() as s:
        who = principal(world)
        assert names(s, who, alert_state=AlertFilter.WARNING) == ["Mrs Jones"]
        assert names(s, who, alert_state=AlertFilter.NONE) == ["Mr Smith"]
        assert names(s, who, alert_state=AlertFilter.URGENT) == []
        assert names(s, who, cant_see=True) == ["Mrs Jones"]
        assert caseload(s, who, CaseloadQuery()).summary.cant_see == 1
        assert names(s, who, carer=world.recipients["anne"]) == ["Mrs Jones"], "Anne is only in Mrs Jones's chain"
        assert sorted(names(s, who, carer=world.recipients["bob"])) == ["Mr Smith", "Mrs Jones"]
        assert names(s, who, carer=world.recipients["zed"]) == [], "another organisation's carer names nobody here"
    with sessions.begin() as w:
        w.get_one(Home, "h2").hub_online = False
    with sessions() as s:
        assert names(s, who, cant_see=True, sort=CaseloadSort.NAME) == ["Mr Smith", "Mrs Jones"]


def test_a_carer_sees_only_the_residents_whose_chain_names_them(sessions: sessionmaker[Session],
                                                                 world: World) -> None:
    with sessions() as s:
        anne = principal(world, "anne", role="carer", recipient=world.recipients["anne"])
        assert names(s, anne) == ["Mrs Jones"]
        assert caseload(s, anne, CaseloadQuery()).summary.residents == 1
        assert names(s, principal(world, "ned", role="carer")) == [], "a carer linked to nobody sees nobody"


def test_sorts_and_pages(sessions: sessionmaker[Session], world: World) -> None:
    with sessions.begin() as s:
        s.get_one(Home, "h1").last_seen = T0
        s.get_one(Home, "h2").last_seen = T0 - timedelta(hours=5)
    with sessions() as s:
        who = principal(world)
        assert names(s, who, sort=CaseloadSort.NAME) == ["Mr Smith", "Mrs Jones"]
        assert names(s, who, sort=CaseloadSort.NAME, descending=True) == ["Mrs Jones", "Mr Smith"]
        assert names(s, who, sort=CaseloadSort.HOME, descending=True) == ["Mr Smith", "Mrs Jones"]
        assert names(s, who, sort=CaseloadSort.LAST_HEARD) == ["Mr Smith", "Mrs Jones"], "quietest first"
        page = caseload(s, who, CaseloadQuery(sort=CaseloadSort.NAME, limit=1, offset=1))
        assert [r.name for r in page.rows] == ["Mrs Jones"] and page.total == 2
        assert caseload(s, who, CaseloadQuery(limit=10, offset=10)).rows == []
        row = caseload(s, who, CaseloadQuery(search="jones")).rows[0]
        assert row.last_heard == T0 and row.timezone == "Europe/London" and row.home_name == "12 Acacia Avenue"


def test_never_heard_from_sorts_as_the_quietest(sessions: sessionmaker[Session], world: World) -> None:
    with sessions.begin() as s:
        s.get_one(Home, "h1").last_seen = T0
    with sessions() as s:
        assert names(s, principal(world), sort=CaseloadSort.LAST_HEARD) == ["Mr Smith", "Mrs Jones"]
        assert names(s, principal(world), sort=CaseloadSort.LAST_HEARD, descending=True) == ["Mrs Jones",
                                                                                             "Mr Smith"]


def test_six_hundred_residents_in_a_constant_number_of_queries(sessions: sessionmaker[Session],
                                                                 world: World) -> None:
    with sessions.begin() as s:
        s.add_all([Home(id=f"big-{i:03d}", name=f"{i} Long Street", organisation_id=world.org_a)
                   for i in range(600)])
        s.flush()
        s.add_all([HomeClaim(home_id=f"big-{i:03d}", organisation_id=world.org_a, claimed_at=CARE_START)
                   for i in range(600)])
        s.add_all([Resident(home_id=f"big-{i:03d}", name=f"Resident {i:03d}", created_at=CARE_START)
                   for i in range(600)])
        s.add_all([Device(home_id=f"big-{i:03d}", name="mystery") for i in range(0, 600, 3)])
    raise_alerts(sessions, *[(f"big-{i:03d}", AlertKind.NOT_UP, Severity.WARNING, "") for i in range(0, 600, 7)])
    with sessions() as s:
        who = principal(world)
        with counting(s) as statements:
            page = caseload(s, who, CaseloadQuery(limit=50))
            alerts = open_alerts(s, who, [r.resident_id for r in page.rows])
        assert len(statements) == 3, "the counts, the page (with the matching count), the page's alerts"
        assert page.total == 602 and len(page.rows) == 50
        assert page.summary.warning == 86 and page.summary.needs_setting_up == 200
        assert all(r.alert_state is AlertFilter.WARNING for r in page.rows[:50])
        assert sum(len(v) for v in alerts.values()) == 50
        last = caseload(s, who, CaseloadQuery(search="resident", sort=CaseloadSort.NAME, limit=50, offset=550))
        assert [r.name for r in last.rows][-1] == "Resident 599" and last.total == 600
        with counting(s) as statements:
            past = caseload(s, who, CaseloadQuery(search="resident", offset=1000))
        assert past.rows == [] and past.total == 600 and len(statements) == 3, "past the end: counted apart"
        assert caseload(s, who, CaseloadQuery(search="nobody")).total == 0
