import pickle

from analytics.silence import MINUTE_MS, SilenceWatch

T = 1_767_571_200_000


def reports(watch: SilenceWatch, device: str, every_min: float, count: int, start: int = T) -> int:
    t = start
    for _ in range(count):
        watch.report(device, t)
        t += round(every_min * MINUTE_MS)
    return t - round(every_min * MINUTE_MS)


def test_a_device_is_silent_once_its_gap_passes_its_own_usual_longest() -> None:
    w = SilenceWatch(margin=2.0, floor_min=60)
    last = reports(w, "hall_pir", 50, 200)  # a PIR's heartbeat
    assert w.advance(last + 99 * MINUTE_MS) == []
    silent = w.advance(last + 120 * MINUTE_MS)
    assert [s.device for s in silent] == ["hall_pir"]
    assert 100 <= silent[0].limit_min <= 120 and silent[0].silent_at_ms == last + round(silent[0].limit_min * MINUTE_MS)
    assert w.advance(last + 500 * MINUTE_MS) == [], "told once"


def test_the_floor_keeps_chatty_devices_from_false_alarms_and_a_report_ends_the_silence() -> None:
    w = SilenceWatch(floor_min=60)
    last = reports(w, "kettle_plug", 0.5, 300)
    assert w.advance(last + 59 * MINUTE_MS) == []
    assert len(w.advance(last + 61 * MINUTE_MS)) == 1
    ended = w.report("kettle_plug", last + 90 * MINUTE_MS)
    assert ended is not None and ended.device == "kettle_plug" and ended.last_report_ms == last
    assert w.report("kettle_plug", last + 91 * MINUTE_MS) is None


def test_next_wake_is_the_earliest_deadline_and_defaults_hold_without_history() -> None:
    w = SilenceWatch(default_min=180)
    w.report("a", T)
    w.report("b", T + 10 * MINUTE_MS)
    assert w.next_wake_ms() == T + 180 * MINUTE_MS
    w.advance(T + 180 * MINUTE_MS)
    assert w.next_wake_ms() == T + 190 * MINUTE_MS


def test_a_silence_is_not_learned_as_a_usual_gap_and_state_checkpoints() -> None:
    w = SilenceWatch(floor_min=60, margin=2.0)
    last = reports(w, "pir", 50, 100)
    [first] = w.advance(last + 24 * 60 * MINUTE_MS)
    back = last + 24 * 60 * MINUTE_MS
    w.report("pir", back)  # back after a day away
    restored = pickle.loads(pickle.dumps(w))
    limit_ms = round(first.limit_min * MINUTE_MS)
    assert first.limit_min < 130, "the usual gap is the heartbeat's, not the day away"
    assert restored.advance(back + limit_ms - MINUTE_MS) == []
    assert [s.limit_min for s in restored.advance(back + limit_ms + MINUTE_MS)] == [first.limit_min]
