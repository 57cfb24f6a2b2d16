"""The login throttle (issue 12, finding 2): by client address and account together, with back-off, so that an
attacker elsewhere slows guessing without locking the owner out; ``/auth/password`` throttled too; bounded state.

The API sits behind a trusted proxy here (the peer is 127.0.0.1): each request's address is its
``X-Forwarded-For``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.throttle import LoginThrottle, SharedLoginThrottle, TooManyLogins
from gateway.db.models import AuditEntry, LoginThrottleEntry
from tests.api.conftest import PASSWORD, T0, Clock, World, settings_for

OWNER, ATTACKER, ELSEWHERE = "198.51.100.10", "203.0.113.66", "192.0.2.44"


@pytest.fixture
def proxied(tmp_path: Path, sessions: sessionmaker[Session], world: World, clock: Clock) -> Iterator[TestClient]:
    app = create_app(settings_for(tmp_path), sessions=sessions)
    app.state.now = clock
    with TestClient(app, client=("127.0.0.1", 50000)) as c:
        yield c


def login(client: TestClient, email: str, password: str = PASSWORD, *, address: str) -> Response:
    return client.post("/auth/token", data={"username": email, "password": password},
                       headers={"X-Forwarded-For": address})


def test_an_attacker_elsewhere_cannot_lock_the_owner_out(proxied: TestClient, world: World) -> None:
    cora = world.emails["cora"]
    assert login(proxied, cora, address=OWNER).status_code == 200  # her phone, known from now on
    statuses = {login(proxied, cora, "guess", address=ATTACKER).status_code for _ in range(12)}
    assert statuses == {401, 429}, "the attacker is slowed"
    assert login(proxied, cora, address=OWNER).status_code == 200, "the owner is not"


def test_a_new_address_is_slowed_not_blocked_during_an_attack(proxied: TestClient, world: World,
                                                              clock: Clock) -> None:
    cora = world.emails["cora"]
    for i in range(10):  # a distributed attack: ten addresses, one guess each
        assert login(proxied, cora, "guess", address=f"203.0.113.{i}").status_code == 401
    assert login(proxied, cora, address=ELSEWHERE).status_code == 200, "a first attempt is never held up"
    # Another address of hers, mistyped once: now it waits a minute at most (the account is under attack).
    assert login(proxied, cora, "typo", address="192.0.2.45").status_code == 401
    r = login(proxied, cora, address="192.0.2.45")
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 60
    clock.at += timedelta(seconds=61)
    assert login(proxied, cora, address="192.0.2.45").status_code == 200


def test_failures_from_one_address_back_off_exponentially(proxied: TestClient, world: World, clock: Clock) -> None:
    cora = world.emails["cora"]
    for _ in range(5):
        assert login(proxied, cora, "guess", address=ATTACKER).status_code == 401
    waits = []
    for _ in range(3):
        r = login(proxied, cora, "guess", address=ATTACKER)
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_requests"
        waits.append(int(r.headers["retry-after"]))
        clock.at += timedelta(seconds=waits[-1])
        assert login(proxied, cora, "guess", address=ATTACKER).status_code == 401
    assert waits == [15, 30, 60]
    r = login(proxied, cora, address=ATTACKER)
    assert r.status_code == 429, "the right password does not jump the queue (it would tell which guess was right)"
    assert login(proxied, cora, address=OWNER).status_code == 200, "another address is not held up"
    assert login(proxied, world.emails["ada"], address=ATTACKER).status_code == 200, "nor another account"


def test_an_address_spraying_accounts_is_capped(proxied: TestClient, world: World, clock: Clock) -> None:
    proxied.app.state.login_throttle = LoginThrottle(address_failures=4)  # type: ignore[attr-defined]
    for who in ("cora", "anne", "ned", "bea"):
        assert login(proxied, world.emails[who], "guess", address=ATTACKER).status_code == 401
    r = login(proxied, world.emails["ada"], address=ATTACKER)
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 15 * 60
    assert login(proxied, world.emails["ada"], address=OWNER).status_code == 200
    clock.at += timedelta(minutes=15)
    assert login(proxied, world.emails["ada"], address=ATTACKER).status_code == 200


def test_forwarded_for_from_an_untrusted_peer_is_not_believed(client: TestClient, world: World) -> None:
    cora = world.emails["cora"]
    for i in range(5):  # the peer is "testclient", not a proxy: rotating the header changes nothing
        assert login(client, cora, "guess", address=f"203.0.113.{i}").status_code == 401
    assert login(client, cora, "guess", address="203.0.113.99").status_code == 429


def test_password_changes_are_throttled(proxied: TestClient, world: World) -> None:
    def change(current: str) -> Response:
        return proxied.post("/auth/password", json={"current_password": current, "new_password": "a new passphrase"},
                            headers={**world.auth("cora"), "X-Forwarded-For": ATTACKER})

    for _ in range(5):
        r = change("guess")
        assert r.status_code == 400 and r.json()["error"]["code"] == "wrong_password"
    r = change(PASSWORD)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert login(proxied, world.emails["cora"], address=OWNER).status_code == 200, "the password did not change"


def test_the_password_change_still_works(proxied: TestClient, world: World) -> None:
    r = proxied.post("/auth/password", json={"current_password": PASSWORD, "new_password": "a new passphrase"},
                     headers={**world.auth("cora"), "X-Forwarded-For": OWNER})
    assert r.status_code == 204
    assert login(proxied, world.emails["cora"], "a new passphrase", address=OWNER).status_code == 200
    assert proxied.get("/auth/me", headers=world.auth("cora")).status_code == 401, "every session logged out"


def test_the_state_is_bounded_and_expires() -> None:
    throttle = LoginThrottle(max_entries=100)
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}", f"user{i}@example.org", T0)
    assert len(throttle) <= 300, "least recently used entries are evicted past the cap"
    later = T0 + timedelta(hours=1)
    for i in range(100):  # new failures sweep entries whose window and back-off are over
        throttle.failed("192.0.2.1", "someone@example.org", later + timedelta(seconds=i))
    assert len(throttle) <= 10
    known = LoginThrottle(max_entries=100)
    known.succeeded(OWNER, "cora@example.org", T0)
    for _ in range(20):
        known.failed(ATTACKER, "cora@example.org", T0)
    known.check(OWNER, "cora@example.org", T0)  # a known address is not held up by others' failures


def test_on_postgresql_the_state_is_shared_by_api_processes(tmp_path: Path, db_url: str, world: World,
                                                            clock: Clock) -> None:
    apps = [create_app(settings_for(tmp_path, db_url=db_url)) for _ in range(2)]  # two API processes
    if not db_url.startswith("postgresql"):
        assert all(type(app.state.login_throttle) is LoginThrottle for app in apps), "SQLite: in the process"
        return
    assert all(isinstance(app.state.login_throttle, SharedLoginThrottle) for app in apps)
    cora = world.emails["cora"]
    with TestClient(apps[0], client=("127.0.0.1", 1)) as first, TestClient(apps[1], client=("127.0.0.1", 2)) as second:
        for app in apps:
            app.state.now = clock
        for c in (first, second, first, second, first):
            assert login(c, cora, "guess", address=ATTACKER).status_code == 401
        r = login(second, cora, "guess", address=ATTACKER)
        assert r.status_code == 429 and int(r.headers["retry-after"]) == 15, "five failures across both processes"
        assert login(first, cora, address=OWNER).status_code == 200


def test_the_shared_state_is_bounded_and_expires(sessions: sessionmaker[Session]) -> None:
    throttle = SharedLoginThrottle(sessions, max_entries=20)
    throttle.SWEEP_EVERY = 10
    for i in range(60):
        throttle.failed(f"10.0.0.{i}", "cora@example.org", T0)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(LoginThrottleEntry)) <= 20 + 3 * 10
        assert "cora" not in " ".join(s.scalars(select(LoginThrottleEntry.key))), "no email in clear"
    for i in range(10):
        throttle.failed("192.0.2.1", "ada@example.org", T0 + timedelta(hours=2, seconds=i))
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(LoginThrottleEntry)) <= 3, "expired rows are deleted"
    throttle.succeeded(OWNER, "cora@example.org", T0)
    for _ in range(20):
        throttle.failed(ATTACKER, "cora@example.org", T0)
    throttle.check(OWNER, "cora@example.org", T0)
    with pytest.raises(TooManyLogins):
        SharedLoginThrottle(sessions).check(ATTACKER, "cora@example.org", T0)  # another process sees it


def test_the_audit_trail_records_the_resolved_address(proxied: TestClient, world: World,
                                                      sessions: sessionmaker[Session]) -> None:
    assert login(proxied, world.emails["cora"], address=f"6.6.6.6, {OWNER}").status_code == 200
    assert login(proxied, world.emails["cora"], "guess", address=ATTACKER).status_code == 401
    with sessions() as s:
        rows = s.execute(select(AuditEntry.action, AuditEntry.client_address)
                         .where(AuditEntry.user_id == world.users["cora"]).order_by(AuditEntry.id)).all()
    assert [tuple(row) for row in rows] == [("login", OWNER), ("login_failed", ATTACKER)]
