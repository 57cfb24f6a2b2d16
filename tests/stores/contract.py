"""The behaviour every readings store must show, written once and run against each adapter.

A test module subclasses :class:`ReadingStoreContract` (its name starting with ``Test``) and provides the
fixture ``store_factory``: a callable returning a new store connected to the database under test. The
contract closes what it opens.

The tests are safe against a shared, non-empty database (a real InfluxDB bucket): each test writes to homes
of its own (random names) and reads only those, and the times are recent (within any sane retention period).
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.stores.readings.base import ACTIVITY_FIELD, DailySummary, Point, ReadingStore, stored_activity

StoreFactory = Callable[[], ReadingStore]

MINUTE = 60_000
HOUR = 60 * MINUTE
# A recent whole hour, so that the points fit any retention period of a real InfluxDB bucket.
T0 = (int(time.time() * 1000) - 2 * 24 * HOUR) // HOUR * HOUR
TODAY = datetime.fromtimestamp(T0 / 1000, UTC).date()  # the calendar day of T0


def new_home() -> str:
    return f"contract-{secrets.token_hex(6)}"


def reading(home: str, device: str, time_ms: int, **fields: bool | int | float | str) -> Point:
    return Point("reading", {"home": home, "device": device}, dict(fields), time_ms)


def by_key(points: list[Point]) -> list[tuple[int, str, dict[str, str], dict[str, object]]]:
    return [(p.time_ms, p.tags.get("device", ""), p.tags, p.fields) for p in points]


class ReadingStoreContract:
    """Behavioural tests of :class:`gateway.stores.readings.base.ReadingStore`."""

    @pytest.fixture
    def store(self, store_factory: StoreFactory) -> Iterator[ReadingStore]:
        store = store_factory()
        try:
            yield store
        finally:
            store.close()

    # --- round trip ---------------------------------------------------------------------------
    def test_round_trip_keeps_types_and_tags(self, store: ReadingStore) -> None:
        home = new_home()
        motion = {"home": home, "device": "motion-hall", "kind": "motion", "room": "hall", "role": "door"}
        pendant = {"home": home, "device": "pendant", "kind": "pendant"}
        kettle = {"home": home, "device": "plug-kettle", "kind": "plug", "room": "kitchen", "role": "kettle"}
        store.write([
            Point("reading", motion, {"occupancy": True, "illuminance": 120.5, "battery": 87}, T0),
            Point("reading", pendant, {"action": "single", "battery": 55.0, "tamper": False}, T0 + MINUTE),
            Point("reading", kettle, {"power": 2200, "state": True, "energy": 0.25}, T0 + 2 * MINUTE),
        ])
        got = store.timeline(home, T0, T0 + HOUR)
        assert got == [
            Point("reading", motion, {"occupancy": True, "illuminance": 120.5, "battery": 87.0}, T0),
            Point("reading", pendant, {"action": "single", "battery": 55.0, "tamper": False}, T0 + MINUTE),
            Point("reading", kettle, {"power": 2200.0, "state": True, "energy": 0.25}, T0 + 2 * MINUTE),
        ]
        for point in got:  # exact types: a bool is not a float, an int comes back as a float
            for name, value in point.fields.items():
                if name in ("occupancy", "state", "tamper"):
                    assert type(value) is bool, name
                elif name == "action":
                    assert type(value) is str
                else:
                    assert type(value) is float, name

    def test_numbers_are_floats_so_int_then_float_is_no_conflict(self, store: ReadingStore) -> None:
        home = new_home()
        store.write([reading(home, "climate", T0, temperature=21)])
        store.write([reading(home, "climate", T0 + MINUTE, temperature=21.5)])
        got = store.timeline(home, T0, T0 + HOUR)
        assert [(p.time_ms, p.fields) for p in got] == [(T0, {"temperature": 21.0}),
                                                        (T0 + MINUTE, {"temperature": 21.5})]

    def test_texts_and_tags_with_special_characters_round_trip(self, store: ReadingStore) -> None:
        home = new_home()
        tags = {"home": home, "device": "Kitchen sensor, left=1", "room": "living room", "role": "a=b,c d"}
        fields = {"action": 'say "hi" \\o/ ,= ', "with space": 1.5, "comma,equals=": True}
        store.write([Point("reading", tags, fields, T0)])
        assert store.timeline(home, T0, T0 + 1) == [Point("reading", tags, fields, T0)]

    def test_only_readings_of_that_home_are_in_its_timeline(self, store: ReadingStore) -> None:
        home, other = new_home(), new_home()
        store.write([
            reading(home, "motion", T0, occupancy=True),
            reading(other, "motion", T0, occupancy=False),
            Point("availability", {"home": home, "device": "motion"}, {"online": False}, T0 + 1),
            Point("hub", {"home": home}, {"online": True}, T0 + 2),
        ])
        got = store.timeline(home, T0, T0 + HOUR)
        assert by_key(got) == [(T0, "motion", {"home": home, "device": "motion"}, {"occupancy": True})]

    def test_activity_only_leaves_out_the_readings_without_a_stored_change(self, store: ReadingStore) -> None:
        home = new_home()
        store.write([
            reading(home, "pir", T0, occupancy=True, **{ACTIVITY_FIELD: "motion"}),
            reading(home, "pir", T0 + 1, occupancy=True, battery=80.0),  # re-sent state: no change
            reading(home, "door", T0 + 2, contact=False, **{ACTIVITY_FIELD: "opened"}),
        ])
        got = store.timeline(home, T0, T0 + HOUR, activity_only=True)
        assert [(p.time_ms, stored_activity(p)) for p in got] == [(T0, "motion"), (T0 + 2, "opened")]
        assert len(store.timeline(home, T0, T0 + HOUR)) == 3

    def test_empty_tags_are_dropped_and_points_without_fields_skipped(self, store: ReadingStore) -> None:
        home = new_home()
        store.write([
            Point("reading", {"home": home, "device": "d1", "room": "", "role": ""}, {"battery": 80}, T0),
            Point("reading", {"home": home, "device": "d2"}, {}, T0),
            Point("reading", {"home": home, "device": "d3"}, {"bad": math.nan, "worse": math.inf}, T0),
        ])
        got = store.timeline(home, T0, T0 + HOUR)
        assert by_key(got) == [(T0, "d1", {"home": home, "device": "d1"}, {"battery": 80.0})]

    def test_non_finite_numbers_are_left_out_and_the_rest_kept(self, store: ReadingStore) -> None:
        home = new_home()
        store.write([reading(home, "d", T0, temperature=math.nan, humidity=-math.inf, battery=90)])
        assert [p.fields for p in store.timeline(home, T0, T0 + 1)] == [{"battery": 90.0}]

    # --- order, bounds, filters --------------------------------------------------------------
    def test_ordered_by_time_then_device(self, store: ReadingStore) -> None:
        home = new_home()
        store.write([
            reading(home, "b", T0 + 2 * MINUTE, v=1),
            reading(home, "c", T0, v=2),
            reading(home, "a", T0 + 2 * MINUTE, v=3),
            reading(home, "a", T0, v=4),
            reading(home, "b", T0 + MINUTE, v=5),
        ])
        got = store.timeline(home, T0, T0 + HOUR)
        assert [(p.time_ms - T0, p.tags["device"], p.fields["v"]) for p in got] == [
            (0, "a", 4.0), (0, "c", 2.0), (MINUTE, "b", 5.0), (2 * MINUTE, "a", 3.0), (2 * MINUTE, "b", 1.0)]

    def test_range_is_start_inclusive_end_exclusive(self, store: ReadingStore) -> None:
        home = new_home()
        store.write([reading(home, "d", T0 + offset, n=offset) for offset in (-1, 0, 1, 999, 1000, 1001)])
        got = store.timeline(home, T0, T0 + 1000)
        assert [p.time_ms - T0 for p in got] == [0, 1, 999]
        assert store.timeline(home, T0 + 1000, T0 + 1000) == []

    def test_millisecond_times_are_kept_exactly(self, store: ReadingStore) -> None:
        home = new_home()
        times = [T0 + 1, T0 + 123, T0 + 59_999, T0 + 86_399_999]
        store.write([reading(home, "d", t, n=1) for t in times])
        assert [p.time_ms for p in store.timeline(home, T0, T0 + 24 * HOUR)] == times

    def test_device_filter(self, store: ReadingStore) -> None:
        home = new_home()
        devices = ["a", "b", "a", "c", "a"]
        store.write([reading(home, device, T0 + i, n=i) for i, device in enumerate(devices)])
        got = store.timeline(home, T0, T0 + HOUR, device="a")
        assert [(p.time_ms - T0, p.tags["device"]) for p in got] == [(0, "a"), (2, "a"), (4, "a")]
        assert store.timeline(home, T0, T0 + HOUR, device="nobody") == []

    def test_limit_keeps_the_first_points_in_order(self, store: ReadingStore) -> None:
        home = new_home()
        store.write([reading(home, device, T0 + t, n=t) for t in range(5) for device in ("x", "y")])
        got = store.timeline(home, T0, T0 + HOUR, limit=5)
        assert [(p.time_ms - T0, p.tags["device"]) for p in got] == [(0, "x"), (0, "y"), (1, "x"), (1, "y"),
                                                                     (2, "x")]
        assert len(store.timeline(home, T0, T0 + HOUR, device="y", limit=3)) == 3
        assert store.timeline(home, T0, T0 + HOUR, limit=0) == []

    def test_values_are_parameters_not_query_text(self, store: ReadingStore) -> None:
        home = new_home()
        store.write([reading(home, "d", T0, n=1)])
        for hostile in ['" or r.home != "', "' OR 1=1 --", f'{home}" or true or "']:
            assert store.timeline(hostile, T0, T0 + HOUR) == []
            assert store.timeline(home, T0, T0 + HOUR, device=hostile) == []

    # --- rewriting -----------------------------------------------------------------------------
    def test_rewriting_a_point_replaces_it(self, store: ReadingStore) -> None:
        home = new_home()
        tags = {"home": home, "device": "plug", "kind": "plug"}
        first = Point("reading", tags, {"power": 10, "state": True}, T0)
        again = Point("reading", tags, {"power": 12.5, "state": False}, T0)
        store.write([first])
        store.write([first])  # a redelivery: still one point
        assert store.timeline(home, T0, T0 + HOUR) == [
            Point("reading", first.tags, {"power": 10.0, "state": True}, T0)]
        store.write([again])
        assert store.timeline(home, T0, T0 + HOUR) == [Point("reading", again.tags, again.fields, T0)]

    def test_rewriting_merges_fields_as_influxdb_does(self, store: ReadingStore) -> None:
        home = new_home()
        store.write([reading(home, "d", T0, battery=80, temperature=20.5)])
        store.write([reading(home, "d", T0, temperature=21, humidity=40)])
        assert [p.fields for p in store.timeline(home, T0, T0 + HOUR)] == [
            {"battery": 80.0, "temperature": 21.0, "humidity": 40.0}]

    def test_same_time_other_device_is_another_point(self, store: ReadingStore) -> None:
        home = new_home()
        store.write([reading(home, "a", T0, n=1), reading(home, "b", T0, n=2)])
        assert len(store.timeline(home, T0, T0 + HOUR)) == 2

    def test_a_batch_with_the_same_point_twice_keeps_the_last(self, store: ReadingStore) -> None:
        home = new_home()
        store.write([reading(home, "d", T0, n=1), reading(home, "d", T0, n=2)])
        assert [p.fields for p in store.timeline(home, T0, T0 + HOUR)] == [{"n": 2.0}]

    # --- daily summaries -------------------------------------------------------------------------
    def test_daily_summaries_round_trip_and_day_range(self, store: ReadingStore) -> None:
        home, other = new_home(), new_home()
        today = TODAY
        days = [today - timedelta(days=n) for n in range(5, 0, -1)]
        store.write_daily_summaries([
            DailySummary(home, day, {"first_activity_min": 400 + i, "bed_minutes": 480.5, "meals": 3})
            for i, day in enumerate(days)
        ])
        store.write_daily_summaries([DailySummary(other, days[2], {"meals": 1})])

        got = store.daily_summaries(home, days[1], days[3])  # both ends included
        assert got == [
            DailySummary(home, days[i], {"first_activity_min": 400.0 + i, "bed_minutes": 480.5, "meals": 3.0})
            for i in (1, 2, 3)
        ]
        assert all(type(v) is float for s in got for v in s.values.values())
        assert [s.day for s in store.daily_summaries(home, days[0], days[-1])] == days
        assert store.daily_summaries(home, days[3], days[1]) == []
        assert store.daily_summaries(other, days[0], days[-1]) == [
            DailySummary(other, days[2], {"meals": 1.0})]
        assert store.daily_summaries(new_home(), days[0], days[-1]) == []

    def test_daily_summary_written_again_is_overwritten(self, store: ReadingStore) -> None:
        home = new_home()
        day = TODAY - timedelta(days=1)
        store.write_daily_summaries([DailySummary(home, day, {"meals": 2, "out_minutes": 30})])
        store.write_daily_summaries([DailySummary(home, day, {"meals": 3, "out_minutes": 45.5})])
        assert store.daily_summaries(home, day, day) == [
            DailySummary(home, day, {"meals": 3.0, "out_minutes": 45.5})]

    def test_daily_summaries_are_not_readings(self, store: ReadingStore) -> None:
        home = new_home()
        day = TODAY
        store.write_daily_summaries([DailySummary(home, day, {"meals": 2})])
        start = (day - date(1970, 1, 1)).days * 24 * HOUR
        assert store.timeline(home, start - HOUR, start + 24 * HOUR) == []

    # --- deletes (retention, erasure) ----------------------------------------------------------
    def test_delete_range_removes_that_homes_period_only(self, store: ReadingStore) -> None:
        home, other = new_home(), new_home()
        store.write([reading(home, "d", T0 + i * MINUTE, n=i) for i in range(6)]
                    + [Point("availability", {"home": home, "device": "d"}, {"online": True}, T0 + 2 * MINUTE),
                       reading(other, "d", T0 + 2 * MINUTE, n=9)])
        store.delete_range(home, T0 + 2 * MINUTE, T0 + 4 * MINUTE)  # start included, end excluded
        assert [p.fields["n"] for p in store.timeline(home, T0, T0 + HOUR)] == [0.0, 1.0, 4.0, 5.0]
        assert [p.fields["n"] for p in store.timeline(other, T0, T0 + HOUR)] == [9.0]

    def test_delete_range_keeps_the_millisecond_either_side(self, store: ReadingStore) -> None:
        home = new_home()
        start, end = T0 + 10 * MINUTE, T0 + 20 * MINUTE
        store.write([reading(home, "d", t, n=t - T0) for t in (start - 1, start, end - 1, end)])
        store.delete_range(home, start, end)
        assert [p.time_ms for p in store.timeline(home, T0, T0 + HOUR)] == [start - 1, end]

    def test_delete_range_removes_the_days_whose_midnight_is_in_it(self, store: ReadingStore) -> None:
        home, other = new_home(), new_home()
        days = [TODAY - timedelta(days=n) for n in range(4, 0, -1)]
        store.write_daily_summaries([DailySummary(home, day, {"meals": i}) for i, day in enumerate(days)]
                                    + [DailySummary(other, days[1], {"meals": 7})])
        midnight = (days[1] - date(1970, 1, 1)).days * 24 * HOUR
        store.delete_range(home, midnight, midnight + 2 * 24 * HOUR)  # days[1] and days[2]
        assert [s.day for s in store.daily_summaries(home, days[0], days[-1])] == [days[0], days[3]]
        assert [s.day for s in store.daily_summaries(other, days[0], days[-1])] == [days[1]]

    def test_deleting_an_empty_period_is_no_error(self, store: ReadingStore) -> None:
        home = new_home()
        store.delete_range(home, T0, T0 + HOUR)
        store.delete_range(home, T0 + HOUR, T0)  # an empty range deletes nothing
        assert store.timeline(home, T0, T0 + HOUR) == []

    # --- threads -------------------------------------------------------------------------------
    def test_reads_from_other_threads_while_writing(self, store: ReadingStore) -> None:
        home = new_home()
        errors: list[BaseException] = []
        seen: list[int] = []

        def read() -> None:
            try:
                for _ in range(20):
                    seen.append(len(store.timeline(home, T0, T0 + HOUR)))
            except BaseException as e:  # reported below, in the test's thread
                errors.append(e)

        readers = [threading.Thread(target=read) for _ in range(3)]
        for r in readers:
            r.start()
        for batch in range(20):
            store.write([reading(home, "d", T0 + batch * 10 + i, n=i) for i in range(10)])
        for r in readers:
            r.join()
        assert errors == []
        assert len(store.timeline(home, T0, T0 + HOUR)) == 200
        assert all(0 <= n <= 200 for n in seen)
