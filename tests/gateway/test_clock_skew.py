"""Issue 11: a hub's clock never costs a reading, the gateway notices its own clock being behind, and a huge
topic is never stored whole. Through :class:`Ingest` into a real journal (no broker needed for these)."""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from analytics.alerts import DEVICE_HEALTH, Action, AlertKind
from analytics.detector import HomeDetector
from gateway.contract import Limits
from gateway.hub_clocks import HubClocks
from gateway.ingest import Ingest
from gateway.journal import Entry, Journal
from gateway.metrics import IngestMetrics

NOW = 1_764_000_000_000
SIX_MIN = 6 * 60_000


class FixedClock:
    def __init__(self) -> None:
        self.ms = NOW

    def now_ms(self) -> int:
        return self.ms

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.is_set()


def make(tmp_path: Path) -> tuple[Ingest, Journal, IngestMetrics]:
    journal = Journal(tmp_path / "j.sqlite3")
    journal.register("t")
    metrics = IngestMetrics()
    return Ingest(journal, FixedClock(), metrics, batch_max=100, clock_check_s=0), journal, metrics


def run(ingest: Ingest, journal: Journal, messages: list[tuple[str, bytes]]) -> list[Entry]:
    for mid, (topic, payload) in enumerate(messages, start=1):
        ingest.offer(mid, 1, topic, payload)
    while ingest.step():
        pass
    return journal.read("t", 1000)


def test_a_pendant_press_six_minutes_ahead_is_journaled_at_receipt_time_with_its_skew(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 11, finding 4: this press was a future_timestamp dead letter and raised no alert."""
    ingest, journal, metrics = make(tmp_path)
    with caplog.at_level(logging.WARNING, "gateway.hub_clocks"):
        [e, report] = run(ingest, journal, [("telecare/h1/pendant",
                                             orjson.dumps({"action": "single", "last_seen": NOW + SIX_MIN}))])
    assert (e.kind, e.home, e.device, e.time_ms, e.received_ms, e.timed) == (
        "state", "h1", "pendant", NOW, NOW, False)
    assert e.body == {"action": "single", "clock_skew_ms": SIX_MIN}
    # the hub is flagged in device health: the detectors raise hub_misbehaving from this entry
    assert (report.kind, report.home, report.time_ms, report.body["quota"]) == ("quota", "h1", NOW, "clock")
    assert report.body["what"].startswith("its clock runs 6 min ahead of the gateway's")
    assert metrics.sample("telecare_readings_retimed_total", {"reason": "future_timestamp"}) == 1
    assert metrics.sample("telecare_messages_rejected_total", {"reason": "future_timestamp"}) is None
    assert metrics.sample("telecare_hub_clock_skew_seconds", {"home": "h1"}) == 360
    assert any("home h1: hub clock wrong: last_seen 360 s ahead" in r.getMessage() for r in caplog.records)


def test_a_normal_reading_keeps_its_event_time_and_shows_the_hubs_skew(tmp_path: Path) -> None:
    ingest, journal, metrics = make(tmp_path)
    [e] = run(ingest, journal, [("telecare/h1/pir", orjson.dumps({"occupancy": True, "last_seen": NOW - 800}))])
    assert (e.time_ms, e.timed, e.body) == (NOW - 800, True, {"occupancy": True})
    assert metrics.sample("telecare_hub_clock_skew_seconds", {"home": "h1"}) == -0.8
    assert metrics.sample("telecare_readings_retimed_total", {"reason": "future_timestamp"}) is None


@pytest.mark.parametrize("last_seen", [0, "yesterday", NOW + 100 * 365 * 86_400_000, "2025-01-15T09:41:07",
                                       1e300, -1e300, 2**63 - 1])
def test_a_button_with_an_absurd_timestamp_still_goes_through(tmp_path: Path, last_seen: object) -> None:
    ingest, journal, metrics = make(tmp_path)
    entries = run(ingest, journal, [("telecare/h1/pendant", orjson.dumps({"action": "hold", "last_seen": last_seen}))])
    assert [(e.kind, e.time_ms, e.body.get("action")) for e in entries] == [
        ("state", NOW, "hold"), ("quota", NOW, None)]
    retimed = sum(metrics.sample("telecare_readings_retimed_total", {"reason": reason}) or 0
                  for reason in ("future_timestamp", "bad_timestamp"))
    assert retimed == 1


def test_the_gateway_warns_when_most_hubs_run_ahead_of_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 11: a gateway whose own clock runs behind rejected every hub; now it says its clock is the odd one."""
    ingest, journal, metrics = make(tmp_path)
    ahead = [(f"telecare/h{i}/t0", orjson.dumps({"temperature": 20, "last_seen": NOW + 7 * 60_000}))
             for i in range(3)]
    with caplog.at_level(logging.WARNING, "gateway.hub_clocks"):
        entries = run(ingest, journal, ahead)
    assert [(e.kind, e.time_ms) for e in entries] == [("state", NOW)] * 3 + [("quota", NOW)] * 3  # each kept
    assert metrics.sample("telecare_gateway_clock_behind") == 1
    assert metrics.sample("telecare_hubs_median_clock_skew_seconds") == 420
    assert any("the gateway's clock looks 420 s behind" in r.getMessage() for r in caplog.records)


def test_one_fast_hub_is_not_the_gateways_fault(tmp_path: Path) -> None:
    ingest, journal, metrics = make(tmp_path)
    run(ingest, journal, [("telecare/fast/t0", orjson.dumps({"temperature": 20, "last_seen": NOW + SIX_MIN}))])
    assert metrics.sample("telecare_gateway_clock_behind") == 0  # one hub: no verdict on the gateway
    assert math.isnan(metrics.sample("telecare_hubs_median_clock_skew_seconds") or 0.0)
    run(ingest, journal, [(f"telecare/ok{i}/t0", orjson.dumps({"temperature": 20, "last_seen": NOW - 50}))
                          for i in range(2)])
    assert metrics.sample("telecare_gateway_clock_behind") == 0
    assert metrics.sample("telecare_hubs_median_clock_skew_seconds") == -0.05


def test_a_60_kB_topics_dead_letter_holds_the_topic_clipped(tmp_path: Path) -> None:
    """Issue 11, finding 3: 2,000 such messages added 677 MB; each topic was stored whole."""
    ingest, journal, _ = make(tmp_path)
    topic = "telecare/h1/" + "x" * 60_000
    [e] = run(ingest, journal, [(topic, b'{"occupancy": true}')])
    assert (e.kind, e.home, e.device) == ("dead", "h1", None)
    assert e.body["reason"] == "bad_topic" and e.body["topic"] == topic[:256]
    assert e.body["topic_bytes"] == len(topic) and str(len(topic)) in e.body["detail"]
    assert len(orjson.dumps(e.body)) < 1024
    raw = journal._conn().execute("SELECT SUM(LENGTH(entries)) FROM batches").fetchone()[0]
    assert raw < 2048  # nothing of the topic beyond its first 256 bytes reached the journal


def test_a_hubs_estimate_is_its_freshest_message_and_forgets_old_windows() -> None:
    clocks = HubClocks(tolerance_ms=300_000, window_ms=60_000)
    clocks.observe("h1", NOW, 1_000)
    clocks.observe("h1", NOW + 1, -90_000)  # zigbee2mqtt's made-up occupancy false: an old last_seen
    assert clocks.estimate_ms("h1") == 1_000
    clocks.observe("h1", NOW + 60_000, -5_000)  # a new window: the last one's still counts
    assert clocks.estimate_ms("h1") == 1_000
    clocks.observe("h1", NOW + 120_000, -6_000)  # two windows on: the clock was set back
    assert clocks.estimate_ms("h1") == -5_000
    clocks.observe("h1", NOW + 400_000, -7_000)  # quiet for longer than a window: only what is new
    assert clocks.estimate_ms("h1") == -7_000


def test_hub_clocks_stay_bounded_whatever_homes_arrive() -> None:
    clocks = HubClocks(tolerance_ms=300_000, recent_ms=60_000, max_homes=3)
    for i in range(3):
        clocks.observe(f"h{i}", NOW, 0)
    assert clocks.observe("new", NOW + 1, 0) == [] and clocks.estimate_ms("new") is None  # full of recent homes
    assert sorted(clocks.observe("later", NOW + 60_000, 0)) == ["h0", "h1", "h2"]  # the stale ones make room
    assert clocks.estimate_ms("later") == 0 and clocks.estimate_ms("h0") is None


def test_the_limits_default_tolerance_is_the_skew_tolerance(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    ingest = Ingest(journal, FixedClock(), IngestMetrics(), limits=Limits(max_future_ms=60_000))
    assert ingest.clock_watch.hubs.tolerance_ms == 60_000


def test_the_warning_ends_once_the_gateways_clock_is_set_right(tmp_path: Path) -> None:
    ingest, journal, metrics = make(tmp_path)
    hubs = [f"telecare/h{i}/t0" for i in range(3)]
    run(ingest, journal, [(t, orjson.dumps({"temperature": 20, "last_seen": NOW + 7 * 60_000})) for t in hubs[:2]]
        + [(hubs[2], orjson.dumps({"temperature": 20, "last_seen": NOW}))])
    assert metrics.sample("telecare_gateway_clock_behind") == 1  # two hubs of three: most
    clock = ingest.clock
    assert isinstance(clock, FixedClock)
    clock.ms += 25 * 60_000  # NTP sets the gateway right; its hubs' older estimates age out
    run(ingest, journal, [(t, orjson.dumps({"temperature": 20, "last_seen": clock.ms})) for t in hubs])
    assert metrics.sample("telecare_gateway_clock_behind") == 0
    assert metrics.sample("telecare_hub_clock_skew_seconds", {"home": "h0"}) == 0


def test_a_hub_running_fast_is_reported_to_device_health_once_an_hour(tmp_path: Path) -> None:
    ingest, journal, _ = make(tmp_path)
    clock = ingest.clock
    assert isinstance(clock, FixedClock)

    def fast(n: int) -> list[tuple[str, bytes]]:
        return [("telecare/h1/pir", orjson.dumps({"occupancy": True, "last_seen": clock.ms + SIX_MIN}))] * n

    first = run(ingest, journal, fast(3))
    assert [e.kind for e in first] == ["state"] * 3 + ["quota"]
    clock.ms += 59 * 60_000
    assert [e.kind for e in run(ingest, journal, fast(2))[len(first):]] == ["state"] * 2  # reported already
    clock.ms += 60_000
    assert [e.kind for e in run(ingest, journal, fast(1))[len(first) + 2:]] == ["state", "quota"]  # an hour on


def test_a_batch_that_fails_to_commit_reports_again_when_retried(tmp_path: Path) -> None:
    ingest, journal, _ = make(tmp_path)
    ingest.offer(1, 1, "telecare/h1/pir", orjson.dumps({"occupancy": True, "last_seen": NOW + SIX_MIN}))
    append = journal.append

    def failing(entries: object, urgent: object = (), states: object = None) -> None:
        raise OSError("disk full")

    journal.append = failing  # type: ignore[method-assign]
    with pytest.raises(OSError):
        ingest.step()
    journal.append = append  # type: ignore[method-assign]
    assert ingest.step() == 1
    assert [e.kind for e in journal.read("t", 10)] == ["state", "quota"]


def test_the_report_raises_one_hub_misbehaving_alert_in_the_homes_detectors(tmp_path: Path) -> None:
    ingest, journal, _ = make(tmp_path)
    pressed = orjson.dumps({"action": "single", "last_seen": NOW + SIX_MIN})
    report = run(ingest, journal, [("telecare/h1/pendant", pressed)])[-1]
    detector = HomeDetector("h1", ZoneInfo("Europe/London"))
    [raised] = detector.hub_misbehaving(report.time_ms, report.body["what"])  # as gateway.detect feeds it
    assert (raised.action, raised.kind, raised.subject) == (Action.RAISE, AlertKind.HUB_MISBEHAVING, "hub")
    assert raised.kind in DEVICE_HEALTH
    assert raised.message.startswith("Hub misbehaving: its clock runs 6 min ahead of the gateway's")
