"""A re-claimed home starts clean for the new organisation; the old one keeps reading its own history (issue 12,
finding 1), and claiming a home needs its claim code.

The scenario of the finding: organisation A cares for h1 (Mrs Jones), an alert is raised and notified there, A
removes the resident and releases the home, and B claims it (with the code the operator issued) and creates its
own resident there. Before the fix B saw A's alerts (and the names in their notifications), A's readings in its
resident's timeline and A's learned routine as its baseline, and A got 404 on its own past alerts.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertKind, Severity
from api.app import create_app
from gateway.claims import issue_claim_code
from gateway.db.models import AuditEntry, DeadLetter, DetectorCheckpoint, Home, HomeClaim
from gateway.stores.readings.base import DailySummary, Point
from gateway.stores.readings.sqlite import SqliteReadingStore
from tests.api.conftest import H9_CLAIM_CODE, T0, Clock, World, raise_alerts, settings_for
from tests.api.test_baseline import SAMPLE

HANDOVER = T0 + timedelta(hours=2)  # A releases h1 and B claims it (the world's tokens last 12 hours)


def ms(moment: object) -> int:
    return int(moment.timestamp() * 1000)  # type: ignore[attr-defined]


def _points(home: str, start_ms: int, count: int, device: str) -> list[Point]:
    return [Point("reading", {"home": home, "device": device, "kind": "motion", "room": "kitchen"},
                  {"occupancy": i % 2 == 0}, start_ms + i * 600_000) for i in range(count)]


def hand_over(client: TestClient, world: World, sessions: sessionmaker[Session], clock: Clock) -> tuple[int, int]:
    """A's history in h1, then A lets the home go and B claims it with its code and adds a resident.
    Returns (A's alert, B's resident)."""
    cora, bea = world.auth("cora"), world.auth("bea")
    (alert_a,) = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""), at=T0)
    with sessions.begin() as s:
        s.add(DetectorCheckpoint(home_id="h1", journal_seq=1, version=1, state=b"-", saved_at=T0, baseline=SAMPLE,
                                 baseline_at=T0, care_epoch=s.get_one(Home, "h1").care_epoch))
        s.add(DeadLetter(received_at=T0, home_id="h1", topic="telecare/h1/x", reason="bad_json", detail="A's",
                         payload="{"))
    assert client.get(f"/residents/{world.residents['jones']}/baseline", headers=cora).status_code == 200
    clock.at = HANDOVER
    assert client.delete(f"/residents/{world.residents['jones']}", headers=cora).status_code == 204
    assert client.post("/homes/h1/release", headers=cora).status_code == 200
    with sessions.begin() as s:
        code = issue_claim_code(s.get_one(Home, "h1"))  # the operator: telecare homes claim-code h1
    clock.at = HANDOVER + timedelta(minutes=5)
    assert client.post("/homes/h1/claim", json={"claim_code": code}, headers=bea).status_code == 200
    r = client.post("/residents", json={"home_id": "h1", "name": "Mr White"}, headers=bea)
    assert r.status_code == 201, r.text
    return alert_a, r.json()["id"]


def test_the_new_organisation_never_sees_the_old_ones_alerts(client: TestClient, world: World,
                                                            sessions: sessionmaker[Session], clock: Clock) -> None:
    alert_a, _ = hand_over(client, world, sessions, clock)
    bea = world.auth("bea")
    assert client.get("/alerts?home_id=h1", headers=bea).json()["total"] == 0
    assert client.get("/alerts", headers=bea).json()["total"] == 0
    r = client.get(f"/alerts/{alert_a}", headers=bea)
    assert r.status_code == 404 and "Anne" not in r.text and "Jones" not in r.text
    assert client.post(f"/alerts/{alert_a}/acknowledge", headers=bea).status_code == 404
    # What B's home raises from now on is B's, and A never sees it.
    clock.at = HANDOVER + timedelta(hours=1)
    (alert_b,) = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""), at=clock.at)
    assert [a["id"] for a in client.get("/alerts?home_id=h1", headers=bea).json()["items"]] == [alert_b]
    assert client.get(f"/alerts/{alert_b}", headers=world.auth("cora")).status_code == 404


def test_the_old_organisation_still_reads_its_own_alerts_but_cannot_change_them(
        client: TestClient, world: World, sessions: sessionmaker[Session], clock: Clock) -> None:
    alert_a, _ = hand_over(client, world, sessions, clock)
    cora = world.auth("cora")
    assert [a["id"] for a in client.get("/alerts?home_id=h1", headers=cora).json()["items"]] == [alert_a]
    r = client.get(f"/alerts/{alert_a}", headers=cora)
    assert r.status_code == 200 and r.json()["notifications"], "its own notifications, with its carers' names"
    assert r.json()["state"] == "resolved", "resolved when the home was released: nobody could act on it"
    r = client.post(f"/alerts/{alert_a}/outcome", json={"outcome": "false_alarm"}, headers=cora)
    assert r.status_code == 409 and "no longer cares for" in r.json()["error"]["message"]


def test_an_alert_open_when_the_home_changes_hands_is_not_inherited(
        client: TestClient, world: World, sessions: sessionmaker[Session], clock: Clock) -> None:
    """A hub-offline alert of a home without a resident stays open across a release if nothing resolved it: the
    next organisation gets its own alert when the condition repeats, not the previous one's."""
    cora, bea = world.auth("cora"), world.auth("bea")
    with sessions.begin() as s:
        claim = HomeClaim(home_id="h9", organisation_id=world.org_a, claimed_at=T0)
        s.add(claim)
        s.get_one(Home, "h9").organisation_id = world.org_a
    (old,) = raise_alerts(sessions, ("h9", AlertKind.HUB_OFFLINE, Severity.WARNING, ""), at=T0)
    with sessions.begin() as s:  # handed over behind the API's back: the open alert survived
        s.get_one(Home, "h9").organisation_id = world.org_b
        s.get_one(HomeClaim, claim.id).released_at = HANDOVER
        s.add(HomeClaim(home_id="h9", organisation_id=world.org_b, claimed_at=HANDOVER))
    (new,) = raise_alerts(sessions, ("h9", AlertKind.HUB_OFFLINE, Severity.WARNING, ""), at=HANDOVER)
    assert new != old
    assert client.get(f"/alerts/{old}", headers=cora).json()["state"] == "resolved"
    assert [a["id"] for a in client.get("/alerts?home_id=h9", headers=bea).json()["items"]] == [new]


def test_the_new_residents_timeline_summaries_and_baseline_start_clean(
        tmp_path: Path, world: World, sessions: sessionmaker[Session], clock: Clock) -> None:
    store = SqliteReadingStore(tmp_path / "readings.sqlite3")
    app = create_app(settings_for(tmp_path), sessions=sessions, store=store)
    app.state.now = clock
    with TestClient(app) as client:
        _, white = hand_over(client, world, sessions, clock)
        since = clock.at
        # A's readings and days, then B's resident's.
        store.write(_points("h1", ms(T0), 10, "a_pir") + _points("h1", ms(since + timedelta(minutes=1)), 12, "b_pir"))
        day = since.date()
        store.write_daily_summaries([DailySummary("h1", day - timedelta(days=d), {"activities": 100 + d})
                                     for d in range(0, 4)] + [DailySummary("h1", day + timedelta(days=1),
                                                                           {"activities": 7})])
        clock.at = since + timedelta(hours=8)
        bea = world.auth("bea")
        r = client.get(f"/residents/{white}/timeline", params={"start": (T0 - timedelta(hours=1)).isoformat(),
                                                                "end": (since + timedelta(days=2)).isoformat(),
                                                                "include": "all"}, headers=bea)
        assert r.status_code == 200, r.text
        devices = {e["device"] for e in r.json()["items"]}
        assert devices == {"b_pir"}, "nothing from before the claim and the resident"
        r = client.get(f"/residents/{white}/daily", params={"from": str(day - timedelta(days=3)),
                                                             "to": str(day + timedelta(days=1))}, headers=bea)
        assert r.status_code == 200, r.text
        assert [(d["day"], d["activities"]) for d in r.json()["days"]] == [(str(day + timedelta(days=1)), 7)]
        assert date.fromisoformat(r.json()["missing_days"][0]) == day - timedelta(days=3)
        r = client.get(f"/residents/{white}/baseline", headers=bea)
        assert r.status_code == 404 and r.json()["error"]["code"] == "no_baseline", "A's routine is not B's"
        with sessions.begin() as s:  # the detectors learn again, in the home's new epoch
            s.get_one(DetectorCheckpoint, "h1").care_epoch = s.get_one(Home, "h1").care_epoch
        assert client.get(f"/residents/{white}/baseline", headers=bea).status_code == 200
        client.cookies.set("telecare_token", world.tokens["bea"])
        page = client.get(f"/dashboard/residents/{white}")
        assert page.status_code == 200 and "a_pir" not in page.text
    store.close()


def test_dead_letters_follow_the_claim_periods(client: TestClient, world: World, sessions: sessionmaker[Session],
                                              clock: Clock) -> None:
    hand_over(client, world, sessions, clock)
    with sessions.begin() as s:
        s.add(DeadLetter(received_at=clock.at + timedelta(minutes=1), home_id="h1", topic="telecare/h1/y",
                         reason="bad_json", detail="B's", payload="{"))
    bea, cora = world.auth("bea"), world.auth("cora")
    assert [d["detail"] for d in client.get("/dead-letters", headers=bea).json()["items"]] == ["B's"]
    a_sees = [d["detail"] for d in client.get("/dead-letters?home_id=h1", headers=cora).json()["items"]]
    assert a_sees == ["A's"], "its own, from when it cared for the home"
    with sessions() as s:
        a_row = s.scalar(select(DeadLetter.id).where(DeadLetter.detail == "A's"))
    assert client.get(f"/dead-letters/{a_row}", headers=bea).status_code == 404


def test_a_claim_needs_the_code_and_the_code_works_once(client: TestClient, world: World,
                                                       sessions: sessionmaker[Session]) -> None:
    cora, bea = world.auth("cora"), world.auth("bea")
    unknown = client.post("/homes/nowhere/claim", json={"claim_code": H9_CLAIM_CODE}, headers=cora)
    for body in (None, {}, {"claim_code": "wrong-code-000000"}, {"claim_code": H9_CLAIM_CODE[:-1]}):
        r = client.post("/homes/h9/claim", json=body, headers=bea)
        assert r.status_code == 404, body
        # The same answer as for a home that does not exist: no oracle.
        assert r.json()["error"]["message"].replace("'h9'", "'nowhere'") == unknown.json()["error"]["message"]
    with sessions() as s:
        denied = s.scalars(select(AuditEntry).where(AuditEntry.action == "denied",
                                                    AuditEntry.organisation_id == world.org_b)).all()
        assert denied and sum(d.occurrences for d in denied) == 4 and "claim" in denied[0].resource
    assert client.post("/homes/h9/claim", json={"claim_code": f" {H9_CLAIM_CODE} "}, headers=bea).status_code == 200
    assert client.post("/homes/h9/release", headers=bea).status_code == 200
    r = client.post("/homes/h9/claim", json={"claim_code": H9_CLAIM_CODE}, headers=cora)
    assert r.status_code == 404, "the code was spent by the first claim"
    with sessions() as s:
        claims = s.scalars(select(HomeClaim).where(HomeClaim.home_id == "h9")).all()
        assert [(c.organisation_id, c.released_at is not None) for c in claims] == [(world.org_b, True)]
        assert s.get_one(Home, "h9").care_epoch == 2, "the claim and the release each start a new care"


def test_unassigned_homes_are_no_longer_listed(client: TestClient, world: World) -> None:
    r = client.get("/homes/unassigned", headers=world.auth("bea"))
    assert r.status_code == 410 and "claim code" in r.json()["error"]["message"] and "h9" not in r.text


def test_wrong_claim_codes_back_off(client: TestClient, world: World, clock: Clock) -> None:
    bea = world.auth("bea")
    for i in range(5):
        assert client.post("/homes/h9/claim", json={"claim_code": f"guess-{i:012d}"}, headers=bea).status_code == 404
    r = client.post("/homes/h9/claim", json={"claim_code": H9_CLAIM_CODE}, headers=bea)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0, "the right code does not jump the queue"
    assert "claim code" in r.json()["error"]["message"]
    assert client.post("/homes/h9/claim", json={"claim_code": H9_CLAIM_CODE},
                       headers=world.auth("cora")).status_code == 200, "another organisation is not held up"
