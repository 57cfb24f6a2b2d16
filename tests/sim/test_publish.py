"""Pacing and the clock topic, without a broker (the broker tests are in tests/e2e/test_sim.py)."""

import orjson

from gateway import contract
from sensors_sim.publish import CLOCK_TOPIC, Outgoing, play, with_clock

T = 1_767_571_200_000  # 2026-01-05T00:00Z


def messages(*offsets_s: float) -> list[Outgoing]:
    return [Outgoing(T + int(s * 1000), f"telecare/h{i % 2}/pir", b"{}") for i, s in enumerate(offsets_s)]


def test_clock_ticks_come_first_then_every_simulated_minute_quiet_hours_included() -> None:
    out = list(with_clock(messages(0, 30, 200), speed=600))
    ticks = [(o.time_ms - T) // 1000 for o in out if o.topic == CLOCK_TOPIC]
    assert ticks == [0, 60, 120, 180, 200]
    assert [o.topic == CLOCK_TOPIC for o in out] == [True, False, False, True, True, True, False, True]
    first = orjson.loads(out[0].payload)
    assert first == {"time": "2026-01-05T00:00:00.000Z", "speed": 600} and out[0].retain


def test_no_message_is_more_than_a_minute_ahead_of_the_last_tick() -> None:
    clock = None
    for o in with_clock(messages(*range(0, 3600, 7)), speed=None):
        if o.topic == CLOCK_TOPIC:
            clock = o.time_ms
        else:
            assert clock is not None and 0 <= o.time_ms - clock < 60_000


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


def test_play_paces_each_message_at_its_simulated_time_divided_by_speed() -> None:
    fake, sent = FakeTime(), []
    stats = play(messages(0, 60, 600), sent.append, speed=600, sleep=fake.sleep, monotonic=fake.monotonic)
    assert fake.slept == [0.1, 0.9] and len(sent) == 3
    assert stats.messages == 3 and stats.per_home == {"h0": 2, "h1": 1} and stats.wall_s == 1.0


def test_as_fast_as_possible_never_sleeps() -> None:
    fake, sent = FakeTime(), []
    play(with_clock(messages(0, 3600), speed=None), sent.append, speed=None, sleep=fake.sleep,
         monotonic=fake.monotonic)
    assert fake.slept == [] and len(sent) == 2 + 62


def test_the_simulator_publishes_its_clock_where_the_gateway_reads_it() -> None:
    assert CLOCK_TOPIC == contract.CLOCK_TOPIC
