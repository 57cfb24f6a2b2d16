"""The watchdog: operators told out of band (Pushover to their group, a health-check ping) when the journal's
consumers or the dispatcher fall behind, or the disk fills; told again while it lasts, and once when it is over."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bench.pushover_server import PushoverServer
from gateway.alerting import people
from gateway.alerting.states import NotificationState
from gateway.db.models import Alert, Notification
from gateway.journal import Journal
from gateway.notify.pushover import PushoverClient
from gateway.watchdog import (
    HealthcheckPing,
    Problem,
    PushoverOperators,
    Watchdog,
    WatchdogBounds,
    disk_check,
    dispatcher_lag_check,
    journal_lag_check,
)
from tests.gateway.conftest import HOME

pytest_plugins = ["tests.conftest_pushover"]
TOKEN, OPERATORS = "a" * 30, "u" * 30
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class Pings:
    """A health-check service: records the paths pinged."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        pings = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._ok()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._ok()

            def _ok(self) -> None:
                pings.paths.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ping/abc"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def pings() -> Iterator[Pings]:
    server = Pings()
    yield server
    server.close()


class Switch:
    """A check whose answer the test sets."""

    def __init__(self) -> None:
        self.problem: Problem | None = None

    def __call__(self) -> Problem | None:
        return self.problem


def test_operators_are_told_once_when_it_starts_again_while_it_lasts_and_once_when_it_is_over(
        pushover: PushoverServer, pings: Pings) -> None:
    clock = [0.0]
    switch = Switch()
    dog = Watchdog([switch], [PushoverOperators(PushoverClient(pushover.url, TOKEN), OPERATORS),
                              HealthcheckPing(pings.url)], repeat_s=3600, monotonic=lambda: clock[0])
    assert dog.run_once() == [] and pushover.messages == [] and pings.paths == ["/ping/abc"]

    switch.problem = Problem("lag:detect", "the detectors are 300,000 readings behind")
    for minute in range(5):
        clock[0] = minute * 60.0
        dog.run_once()
    [alarm] = pushover.messages
    assert alarm["user"] == OPERATORS and alarm["priority"] == "1" and "300,000 readings behind" in alarm["message"]
    assert pings.paths[1:] == ["/ping/abc/fail"] * 5, "the dead man's switch hears every run"

    clock[0] = 3700.0
    dog.run_once()
    assert len(pushover.messages) == 2, "still wrong an hour later: told again"

    switch.problem = None
    clock[0] = 3760.0
    dog.run_once()
    assert pushover.messages[-1]["title"].endswith("all clear") and len(pushover.messages) == 3
    assert pings.paths[-1] == "/ping/abc"


def test_a_check_that_fails_to_run_is_a_problem_not_silence(pushover: PushoverServer) -> None:
    def broken() -> Problem | None:
        raise OSError("database is locked")

    dog = Watchdog([broken], [PushoverOperators(PushoverClient(pushover.url, TOKEN), OPERATORS)])
    [problem] = dog.run_once()
    assert problem.name == "check:broken" and "database is locked" in problem.message
    assert "state is unknown" in pushover.messages[0]["message"]


def test_channels_that_cannot_be_reached_do_not_stop_the_others(pushover: PushoverServer) -> None:
    switch = Switch()
    switch.problem = Problem("disk:/", "disk nearly full")
    dead_ping = HealthcheckPing("http://127.0.0.1:9/ping", timeout_s=0.5)  # discard port: nothing answers
    dog = Watchdog([switch], [dead_ping, PushoverOperators(PushoverClient(pushover.url, TOKEN), OPERATORS)])
    dog.run_once()
    assert len(pushover.messages) == 1
    pushover.fail_next(3, 500)
    dog2 = Watchdog([switch], [PushoverOperators(PushoverClient(pushover.url, TOKEN), OPERATORS)])
    assert dog2.run_once()  # Pushover answering 500 is logged; the problem is still reported to the caller


def test_the_disk_check_warns_well_before_the_disk_fills(tmp_path: Path) -> None:
    assert disk_check(tmp_path, "journal", WatchdogBounds(min_free_bytes=1, min_free_share=0.0))() is None
    problem = disk_check(tmp_path, "journal", WatchdogBounds(min_free_bytes=2**62))()
    assert problem is not None and problem.name == f"disk:{tmp_path}" and "journal" in problem.message


def test_a_consumer_behind_the_journal_by_entries_or_by_age_is_a_problem(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    journal.register("detect")
    received = int(NOW.timestamp() * 1000)
    journal.append([("state", HOME, "kitchen_pir", received, received, True, {"occupancy": True})] * 10)
    bounds = WatchdogBounds(journal_lag_entries=100, journal_lag_s=300)
    assert journal_lag_check(journal, "detect", "detectors", bounds, lambda: received + 60_000)() is None
    late = journal_lag_check(journal, "detect", "detectors", bounds, lambda: received + 600_000)()
    assert late is not None and "10 readings wait for the detectors" in late.message and "10 min ago" in late.message
    simulated = journal_lag_check(journal, "detect", "detectors", bounds, None)  # ages in simulated minutes
    assert simulated() is None, "on a simulated clock, only the entries count"
    many = journal_lag_check(journal, "detect", "detectors", WatchdogBounds(journal_lag_entries=5),
                             lambda: received)()
    assert many is not None and many.name == "lag:detect"
    journal.advance("detect", journal.last_seq)
    assert journal_lag_check(journal, "detect", "detectors", bounds, lambda: received + 600_000)() is None
    journal.close()


def test_a_notification_waiting_past_its_bound_is_a_dispatcher_problem(sessions: sessionmaker[Session]) -> None:
    check = dispatcher_lag_check(sessions, WatchdogBounds(dispatcher_lag_s=300), lambda: NOW)
    assert check() is None
    with sessions() as s:
        resident = people.resident_for(s, HOME)
        alert = Alert(home_id=HOME, resident_id=resident.id, kind="inactivity", subject="", severity=3,
                      state="raised", message="No activity since 13:00", raised_at=NOW - timedelta(hours=1),
                      updated_at=NOW - timedelta(hours=1), details={})
        recipient = people.add_recipient(s, "Anne (daughter)", "u" * 30)
        s.add(alert)
        s.flush()
        s.add(Notification(alert_id=alert.id, recipient_id=recipient.id, step=1, purpose="alert", priority=1,
                           title="t", message="m", state=NotificationState.PENDING, attempts=3, next_attempt_at=NOW,
                           created_at=NOW - timedelta(minutes=12)))
        s.commit()
    problem = check()
    assert problem is not None and problem.name == "lag:dispatcher" and "12 min" in problem.message


def test_the_worker_builds_its_watchdog_from_settings(tmp_path: Path, pushover: PushoverServer, pings: Pings) -> None:
    from gateway.config import load_settings
    from gateway.db.migrate import upgrade
    from telecare.processes import build_worker

    settings = load_settings(data_dir=tmp_path, pushover_url=pushover.url, pushover_token=TOKEN,
                             operator_pushover_user=OPERATORS, healthcheck_url=pings.url, watchdog_min_free_gib=1e9)
    upgrade(settings.database_url)
    worker = build_worker(settings)
    names = {getattr(c, "__name__", "") for c in worker.watchdog.checks}
    assert names == {"disk", "journal_lag", "dispatcher_lag"}
    [problem] = worker.watchdog.run_once()  # a billion GiB free is asked for: the disk is "nearly full"
    assert problem.name.startswith("disk:") and pushover.messages[0]["user"] == OPERATORS
    assert pings.paths == ["/ping/abc/fail"]
    worker.store.close()
