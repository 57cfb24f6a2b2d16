"""The InfluxDB adapter's write path against a real VictoriaMetrics, which takes InfluxDB 2.x write requests
(``/api/v2/write``) exactly as influxdb-client sends them.

VictoriaMetrics turns each field into a series named ``<measurement>_<field>`` labelled by the tags; booleans
become 1/0 and texts become 0 (a sample that exists). It runs with deduplication at 1 ms, which stands in for
InfluxDB's rule that a point written again overwrites itself. Reads (Flux) are InfluxDB's alone: see
``test_readings_influx_flux.py``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from bench.services import VictoriaMetrics
from gateway.errors import PointsRejected, StoreUnavailable
from gateway.stores.readings.base import DailySummary, Point
from gateway.stores.readings.influx import InfluxReadingStore

T = 1_700_000_000_123


@pytest.fixture
def store(victoria: VictoriaMetrics) -> Iterator[InfluxReadingStore]:
    s = InfluxReadingStore(victoria.url, "token", "org", "bucket", timeout_s=5.0)
    try:
        yield s
    finally:
        s.close()


def series(vm: VictoriaMetrics, match: str) -> dict[str, tuple[dict[str, str], list[float], list[int]]]:
    """name -> (labels without __name__, values, timestamps), for the series matching ``match``."""
    out = {}
    for s in vm.export(match):
        labels = dict(s["metric"])
        out[labels.pop("__name__")] = (labels, s["values"], s["timestamps"])
    return out


def test_points_arrive_one_series_per_field_labelled_by_tags(
    store: InfluxReadingStore, victoria: VictoriaMetrics
) -> None:
    tags = {"home": "h1", "device": "0x00158d0001a2b3c4", "kind": "motion", "room": "hall", "role": ""}
    store.write([
        Point("reading", tags, {"occupancy": True, "illuminance": 21, "temperature": 21.5, "action": "x"}, T),
        Point("reading", tags, {"occupancy": False, "illuminance": 0.1}, T + 1000),
    ])
    got = series(victoria, '{__name__=~"reading_.*"}')
    labels = {"home": "h1", "device": "0x00158d0001a2b3c4", "kind": "motion", "room": "hall"}  # no empty role
    assert got == {
        "reading_occupancy": (labels, [1, 0], [T, T + 1000]),  # booleans become 1 and 0
        "reading_illuminance": (labels, [21, 0.1], [T, T + 1000]),  # 21 then 0.1: no type conflict
        "reading_temperature": (labels, [21.5], [T]),
        "reading_action": (labels, [0], [T]),  # VictoriaMetrics keeps a text as 0
    }


def test_availability_and_hub_points(store: InfluxReadingStore, victoria: VictoriaMetrics) -> None:
    store.write([
        Point("availability", {"home": "h1", "device": "d1"}, {"online": False}, T),
        Point("hub", {"home": "h1"}, {"online": True}, T + 5),
    ])
    assert series(victoria, "availability_online") == {
        "availability_online": ({"home": "h1", "device": "d1"}, [0], [T])}
    assert series(victoria, "hub_online") == {"hub_online": ({"home": "h1"}, [1], [T + 5])}


def test_the_same_point_written_twice_counts_once(
    store: InfluxReadingStore, victoria: VictoriaMetrics
) -> None:
    point = Point("reading", {"home": "h1", "device": "d1"}, {"contact": True, "battery": 90}, T)
    store.write([point])
    store.write([point])  # a redelivery after a crash
    store.write([point, point])  # and twice in one batch
    assert victoria.count("reading_contact") == 1
    assert victoria.count("reading_battery") == 1
    store.write([Point("reading", {"home": "h1", "device": "d2"}, {"contact": True}, T)])  # another device
    assert victoria.count("reading_contact") == 2


def test_escaped_tags_are_read_back_as_written(store: InfluxReadingStore, victoria: VictoriaMetrics) -> None:
    tags = {"home": "h 1", "device": "Kitchen, left=1", "room": "living room", "role": "a\\b"}
    store.write([Point("reading", tags, {"with space": 1.5, "comma,equals=": True}, T)])
    got = series(victoria, '{__name__=~"reading_.*"}')
    assert got == {"reading_with space": (tags, [1.5], [T]), "reading_comma,equals=": (tags, [1], [T])}


def test_a_large_batch_arrives_whole(store: InfluxReadingStore, victoria: VictoriaMetrics) -> None:
    points = [Point("reading", {"home": f"h{i % 10}", "device": f"d{i % 7}"}, {"power": i * 0.5}, T + i)
              for i in range(10_000)]
    store.write(points)
    assert victoria.count("reading_power") == 10_000


def test_daily_summaries_are_points_at_midnight_utc(
    store: InfluxReadingStore, victoria: VictoriaMetrics
) -> None:
    store.write_daily_summaries([
        DailySummary("h1", date(2023, 11, 14), {"meals": 3, "bed_minutes": 481.5}),
        DailySummary("h1", date(2023, 11, 15), {"meals": 2}),
    ])
    midnight = 1_699_920_000_000  # 2023-11-14T00:00:00Z
    assert series(victoria, '{__name__=~"daily_summary_.*"}') == {
        "daily_summary_meals": ({"home": "h1"}, [3, 2], [midnight, midnight + 86_400_000]),
        "daily_summary_bed_minutes": ({"home": "h1"}, [481.5], [midnight]),
    }


def test_nothing_to_write_sends_nothing(store: InfluxReadingStore, victoria: VictoriaMetrics) -> None:
    victoria.stop()  # a request would fail
    store.write([])
    store.write([Point("reading", {"home": "h", "device": "d"}, {}, T)])
    store.write_daily_summaries([])


# --- failures ----------------------------------------------------------------------------------------
def test_a_stopped_server_is_unavailable_at_once(
    store: InfluxReadingStore, victoria: VictoriaMetrics
) -> None:
    victoria.stop()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        store.write([Point("reading", {"home": "h", "device": "d"}, {"v": 1.0}, T)])
    assert time.monotonic() - started < 2.0
    assert caught.value.retry_after is None
    victoria.start()  # and it works again when the server is back
    store.write([Point("reading", {"home": "h", "device": "d"}, {"v": 1.0}, T)])
    assert victoria.count("reading_v") == 1


def test_a_server_that_does_not_answer_times_out(victoria: VictoriaMetrics) -> None:
    store = InfluxReadingStore(victoria.url, "token", "org", "bucket", timeout_s=1.0)
    assert victoria.process is not None
    os.kill(victoria.process.pid, signal.SIGSTOP)  # listening socket stays open; nothing answers
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.write([Point("reading", {"home": "h", "device": "d"}, {"v": 1.0}, T)])
        elapsed = time.monotonic() - started
        assert 0.9 < elapsed < 3.0, elapsed
    finally:
        os.kill(victoria.process.pid, signal.SIGCONT)
        store.close()


def test_a_line_the_server_cannot_take_is_rejected(
    store: InfluxReadingStore, victoria: VictoriaMetrics
) -> None:
    # VictoriaMetrics refuses a line over 256 KiB with HTTP 400 (InfluxDB refuses texts over 64 KiB).
    huge = Point("reading", {"home": "h", "device": "d"}, {"text": "x" * 300_000}, T)
    with pytest.raises(PointsRejected, match="400"):
        store.write([huge])
    store.write([Point("reading", {"home": "h", "device": "d"}, {"v": 1.0}, T)])  # the next batch is fine
    assert victoria.count("reading_v") == 1


def test_a_delete_is_reported_unavailable_where_the_server_has_no_delete_api(
        store: InfluxReadingStore, victoria: VictoriaMetrics) -> None:
    """VictoriaMetrics does not implement /api/v2/delete: a purge or an erasure must hear that the points are still
    there (and try again, or tell the operator), never take it for done."""
    store.write([Point("reading", {"home": "h-del", "device": "d"}, {"v": 1.0}, T)])
    victoria.flush()
    with pytest.raises(StoreUnavailable, match="delete"):
        store.delete_range("h-del", T - 1000, T + 1000)
    assert victoria.count("reading_v") == 1


class ReadOnlyVictoriaMetrics(VictoriaMetrics):
    """A VictoriaMetrics that believes its disk is full: it answers every write with HTTP 503."""

    def _command(self) -> list[str]:
        return [*super()._command(), "-storage.minFreeDiskSpaceBytes=1000000000000000"]


def test_a_server_error_is_unavailable_not_rejected(tmp_path: Path) -> None:
    vm = ReadOnlyVictoriaMetrics(tmp_path / "vm-full")
    vm.start()
    store = InfluxReadingStore(vm.url, "token", "org", "bucket", timeout_s=5.0)
    try:
        with pytest.raises(StoreUnavailable, match="503"):
            store.write([Point("reading", {"home": "h", "device": "d"}, {"v": 1.0}, T)])
    finally:
        store.close()
        vm.stop()
