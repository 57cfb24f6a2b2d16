"""API fixtures: a migrated database (SQLite and PostgreSQL) with two organisations, and a client on the app.

Organisation A ("Northshire Council"): admin Ada, coordinator Cora, carer Anne (recipient Anne), carer Ned (no
recipient link). Homes h1 (Mrs Jones; chain Anne 15 → Bob 15) and h2 (Mr Smith; chain Bob 15). Organisation B
("Care Co"): coordinator Bea, home h3 (Mr Brown; chain Zed 10). Home h9 is discovered and unassigned; its claim
code is :data:`H9_CLAIM_CODE`. The homes were claimed, and their residents created, at :data:`CARE_START`.

Passwords are hashed once per session: argon2 is slow on purpose.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import Action, AlertEvent, AlertKind, Severity
from api.app import create_app
from api.security import hash_password, issue_token
from bench.services import free_port
from gateway.alerting import people
from gateway.alerting.record import apply_events
from gateway.claims import set_claim_code
from gateway.config import Settings
from gateway.db.migrate import upgrade
from gateway.db.models import Device, Home, HomeClaim, Organisation, User
from gateway.db.session import make_engine, make_session_factory

PASSWORD = "correct horse battery"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CARE_START = datetime(2026, 1, 1, tzinfo=UTC)  # when the world's organisations claimed their homes and residents
H9_CLAIM_CODE = "h9-label-code-7K3PQ9XM2"  # on h9's hub label: the proof a claim needs
KEY = {name: (name.lower() + "0" * 30)[:30] for name in ("Anne", "Bob", "Zed")}


@cache
def password_hash() -> str:
    return hash_password(PASSWORD)


@dataclass
class World:
    org_a: int
    org_b: int
    users: dict[str, int]  # ada, cora, anne, ned, bea
    emails: dict[str, str]
    recipients: dict[str, int]  # anne, bob, zed
    residents: dict[str, int]  # jones (h1), smith (h2), brown (h3)
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    with sessions.begin() as s:
        a, b = Organisation(name="Northshire Council"), Organisation(name="Care Co")
        s.add_all([a, b])
        s.flush()
        s.add_all([Home(id="h1", name="12 Acacia Avenue", organisation_id=a.id),
                   Home(id="h2", name="3 Elm Road", organisation_id=a.id),
                   Home(id="h3", name="7 Oak Lane", organisation_id=b.id),
                   Home(id="h9", first_seen=T0)])
        s.flush()
        s.add_all([HomeClaim(home_id=h, organisation_id=org.id, claimed_at=CARE_START)
                   for h, org in (("h1", a), ("h2", a), ("h3", b))])
        set_claim_code(s.get_one(Home, "h9"), H9_CLAIM_CODE)
        s.add_all([Device(home_id="h1", name="front_door", kind="contact", role="front_door", room="hall",
                          battery=80),
                   Device(home_id="h1", name="kitchen_pir", kind="motion", room="kitchen", battery=9),
                   Device(home_id="h3", name="bed_pad", kind="bed", battery=5)])
        anne = people.add_recipient(s, "Anne", KEY["Anne"], organisation_id=a.id)
        bob = people.add_recipient(s, "Bob", KEY["Bob"], organisation_id=a.id)
        zed = people.add_recipient(s, "Zed", KEY["Zed"], organisation_id=b.id)
        jones = people.add_resident(s, "h1", "Mrs Jones")
        smith = people.add_resident(s, "h2", "Mr Smith")
        brown = people.add_resident(s, "h3", "Mr Brown")
        for resident in (jones, smith, brown):
            resident.created_at = CARE_START
        people.set_chain(s, "h1", [(anne.id, 15), (bob.id, 15)])
        people.set_chain(s, "h2", [(bob.id, 15)])
        people.set_chain(s, "h3", [(zed.id, 10)])
        specs = {"ada": (a.id, "admin", None), "cora": (a.id, "coordinator", None),
                 "anne": (a.id, "carer", anne.id), "ned": (a.id, "carer", None),
                 "bea": (b.id, "coordinator", None)}
        users: dict[str, User] = {}
        for who, (org, role, recipient) in specs.items():
            users[who] = User(organisation_id=org, email=f"{who}@example.org", name=who.title(), role=role,
                              password_hash=password_hash(), recipient_id=recipient, active=True)
        s.add_all(users.values())
        s.flush()
        tokens = {who: issue_token(s, user, T0)[0] for who, user in users.items()}
        return World(org_a=a.id, org_b=b.id, users={w: u.id for w, u in users.items()},
                     emails={w: u.email for w, u in users.items()},
                     recipients={"anne": anne.id, "bob": bob.id, "zed": zed.id},
                     residents={"jones": jones.id, "smith": smith.id, "brown": brown.id}, tokens=tokens)


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"data_dir": tmp_path / "data", "pushover_token": None, "db_url": None}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class Clock:
    """The API's clock, moved by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock(T0.replace(hour=10))


def app_for(tmp_path: Path, sessions: sessionmaker[Session], clock: Clock) -> FastAPI:
    """The API over the test database, on the test clock."""
    app = create_app(settings_for(tmp_path), sessions=sessions)
    app.state.now = clock
    return app


@pytest.fixture
def client(tmp_path: Path, sessions: sessionmaker[Session], world: World, clock: Clock) -> Iterator[TestClient]:
    app = app_for(tmp_path, sessions, clock)
    with TestClient(app) as c:
        yield c


def raise_alerts(sessions: sessionmaker[Session], *events: tuple[str, AlertKind, Severity, str],
                 at: datetime = T0) -> list[int]:
    """Raise alerts as the detectors would: (home, kind, severity, subject) each. Returns their ids."""
    ms = int(at.timestamp() * 1000)
    with sessions.begin() as s:
        alerts = apply_events(s, [AlertEvent(Action.RAISE, kind, home, ms, severity, f"{kind} at {home}",
                                             subject=subject, details={"since": ms})
                                  for home, kind, severity, subject in events], at)
        return [a.id for a in alerts]


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` under a real uvicorn on a free loopback port (what a browser or a raw socket talks to)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
