"""Unit tests of ``gateway.contract.parse``: golden zigbee2mqtt payloads, every rejection reason, ignored
messages, friendly names with ``/``, the ``last_seen`` formats and the home id rules.

The golden payloads and their format are described in ``tests/gateway/payloads/README.md``.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.contract import Ignored, Kind, Limits, Message, Reason, Rejected, parse

PAYLOADS = Path(__file__).parent / "payloads"
HOME = "home-a"
NOW_MS = 1_736_935_200_000  # 2025-01-15T10:00:00Z: receipt time and gateway clock for the golden payloads
FIVE_MIN_MS = 5 * 60 * 1000

GOLDEN = sorted(PAYLOADS.rglob("*.json"))


def ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


def wire(payload: Any) -> bytes:
    """A golden ``payload`` as bytes on the wire: text as it is, anything else as compact JSON."""
    return payload.encode() if isinstance(payload, str) else orjson.dumps(payload)


def p(suffix: str, payload: Any, received_ms: int = NOW_MS, now_ms: int = NOW_MS, **kw: Any):
    """Parse a message on ``telecare/home-a/<suffix>``."""
    raw = payload if isinstance(payload, bytes) else wire(payload)
    return parse(f"telecare/{HOME}/{suffix}", raw, received_ms, now_ms, **kw)


def assert_same(actual: Any, expected: Any, where: str = "body") -> None:
    """Equal AND of the same type all the way down (``1 == 1.0 == True`` in Python; not here)."""
    assert type(actual) is type(expected), \
        f"{where}: {actual!r} is {type(actual).__name__}, expected {expected!r}"
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected), f"{where}: keys {sorted(actual)} != {sorted(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{where}: {len(actual)} items, expected {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def state(result: Any) -> Message:
    assert isinstance(result, Message), result
    assert result.kind is Kind.STATE, result
    return result


def rejected(result: Any, reason: Reason) -> Rejected:
    assert isinstance(result, Rejected), result
    assert result.reason is reason, result
    return result


# --- golden payloads ----------------------------------------------------------------------------------------

def _golden_params() -> list[Any]:
    params = []
    for path in GOLDEN:
        rel = path.relative_to(PAYLOADS).as_posix()
        params.append(pytest.param(path, id=rel))
    return params


def test_golden_set_covers_the_devices_and_formats() -> None:
    folders = {p.parent.name for p in GOLDEN}
    assert {"RTCGQ11LM", "MCCGQ11LM", "SNZB-04", "SNZB-02", "TS011F_plug_1", "WXKG11LM",
            "TS0601_bed_presence_sensor", "bridge"} <= folders
    docs = [json.loads(p.read_text()) for p in GOLDEN]
    last_seens = [d["payload"].get("last_seen") for d in docs if isinstance(d["payload"], dict)]
    assert any(isinstance(v, str) and v.endswith("Z") for v in last_seens)  # ISO_8601
    assert any(isinstance(v, str) and v[-6] in "+-" for v in last_seens)  # ISO_8601_local
    assert any(isinstance(v, int) for v in last_seens)  # epoch
    assert any(d["expect"]["kind"] == "state" and d["expect"]["time"] is None
               and isinstance(d["payload"], dict) for d in docs)  # no last_seen
    online = {str(d["payload"]) for d in docs
              if d["topic_suffix"].endswith("availability") or d["topic_suffix"] == "bridge/state"}
    assert {"online", "offline", "{'state': 'online'}", "{'state': 'offline'}"} <= online


@pytest.mark.parametrize("path", _golden_params())
def test_golden_payload(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert set(doc) <= {"topic_suffix", "payload", "source", "captured", "notes", "expect"}, sorted(doc)
    assert doc["source"].strip()
    expect = doc["expect"]
    result = p(doc["topic_suffix"], doc["payload"], received_ms=NOW_MS - 250)

    if expect["kind"] == "ignored":
        assert isinstance(result, Ignored), result
        return
    if expect["kind"] == "rejected":
        assert rejected(result, Reason(expect["reason"]))
        return
    assert isinstance(result, Message), result
    assert result.kind is Kind(expect["kind"])
    assert result.home == HOME
    assert result.device == expect.get("device")
    assert result.received_ms == NOW_MS - 250
    assert_same(result.body, expect["body"])
    if expect["time"] is None:
        assert (result.time_ms, result.timed_by_device) == (NOW_MS - 250, False)
    else:
        assert (result.time_ms, result.timed_by_device) == (ms(expect["time"]), True)


# --- normalisation of known fields --------------------------------------------------------------------------

@pytest.mark.parametrize(("sent", "stored"), [("ON", True), ("OFF", False), ("on", True), ("off", False)])
def test_state_on_off_becomes_a_boolean(sent: str, stored: bool) -> None:
    assert_same(state(p("kettle_plug", {"state": sent, "power": 0})).body, {"state": stored, "power": 0})


def test_state_words_other_than_on_off_are_not_readings() -> None:
    # Covers and locks use state too ("OPEN", "LOCK"): not a switch, so not kept.
    assert_same(state(p("blind", {"state": "OPEN", "position": 40})).body, {"position": 40})


def test_numbers_stay_numbers_of_the_type_sent() -> None:
    body = state(p("climate", {"temperature": 20, "humidity": 48.9, "battery": 100, "pressure": 1013.25,
                               "voltage": 2900})).body
    assert_same(body, {"temperature": 20, "humidity": 48.9, "battery": 100, "pressure": 1013.25,
                       "voltage": 2900})


def test_contact_true_means_closed_and_is_stored_as_sent() -> None:
    # zigbee2mqtt exposes contact with value_on=false, value_off=true: true is the CLOSED (no alarm) state.
    assert_same(state(p("front_door", {"contact": True})).body, {"contact": True})
    assert_same(state(p("front_door", {"contact": False})).body, {"contact": False})


def test_unknown_fields_kept_only_when_numeric_or_boolean() -> None:
    body = state(p("thing", {"co2": 612, "smoke": False, "mode": "eco", "nested": {"x": 1}, "list": [1, 2],
                             "nan_text": "NaN"})).body
    assert_same(body, {"co2": 612, "smoke": False})


def test_bookkeeping_and_null_fields_are_dropped() -> None:
    body = state(p("remote", {"action": "single", "elapsed": 1234, "update_available": None,
                              "linkquality": None, "update": {"state": "idle"}, "device": {"ieeeAddr": "0x1"},
                              "last_seen": "2025-01-15T09:00:00Z"})).body
    assert_same(body, {"action": "single"})


def test_empty_action_is_not_a_press() -> None:
    assert_same(state(p("pendant", {"action": "", "battery": 100})).body, {"battery": 100})


def test_long_action_text_is_cut_to_64_characters() -> None:
    assert_same(state(p("pendant", {"action": "x" * 100})).body, {"action": "x" * 64})


def test_no_motion_timer_message_shares_the_motion_event_time() -> None:
    """RTCGQ11LM: zigbee2mqtt publishes occupancy:false itself after occupancy_timeout, with the device's
    unchanged last_seen, so both messages have the same event time (see docs/mqtt-contract.md)."""
    seen = "2025-01-15T09:41:07.318Z"
    motion = state(p("hallway_pir", {"occupancy": True, "last_seen": seen}, received_ms=ms(seen) + 40))
    quiet = state(p("hallway_pir", {"occupancy": False, "last_seen": seen}, received_ms=ms(seen) + 90_040))
    assert motion.time_ms == quiet.time_ms == ms(seen)
    assert quiet.received_ms - motion.received_ms == 90_000


# --- one test per rejection reason --------------------------------------------------------------------------

def test_too_large_device_payload() -> None:
    limit = Limits().max_payload_bytes
    assert limit == 64 * 1024
    head, tail = b'{"occupancy":true,"pad":"', b'"}'
    at_limit = head + b"a" * (limit - len(head) - len(tail)) + tail
    assert len(at_limit) == limit
    assert_same(state(p("pir", at_limit)).body, {"occupancy": True})
    over = head + b"a" * (limit + 1 - len(head) - len(tail)) + tail
    r = rejected(p("pir", over), Reason.TOO_LARGE)
    assert (r.home, r.device, r.topic) == (HOME, "pir", f"telecare/{HOME}/pir")
    assert r.payload == over[:512] and r.received_ms == NOW_MS
    assert r.detail == f"payload of {limit + 1} bytes exceeds the limit of {limit}"


def test_too_large_bridge_devices_has_its_own_4_mib_limit() -> None:
    assert Limits().max_bridge_payload_bytes == 4 * 1024 * 1024
    entry = {"friendly_name": "x", "type": "EndDevice", "ieee_address": "0x1", "pad": "a" * 1000}
    big = orjson.dumps([entry] * 200)  # ~200 KB: over the device limit, under the bridge limit
    assert len(big) > 64 * 1024
    result = p("bridge/devices", big)
    assert isinstance(result, Message) and result.kind is Kind.BRIDGE_DEVICES and len(result.body) == 200
    huge = b"[" + b" " * (4 * 1024 * 1024) + b"]"
    r = rejected(p("bridge/devices", huge), Reason.TOO_LARGE)
    assert (r.home, r.device) == (HOME, None)
    # bridge/state is not a device list: the device limit applies.
    rejected(p("bridge/state", b'"' + b"o" * (64 * 1024) + b'"'), Reason.TOO_LARGE)


def test_limits_can_be_changed() -> None:
    result = p("pir", {"occupancy": True, "pad": "a" * 100}, limits=Limits(max_payload_bytes=64))
    rejected(result, Reason.TOO_LARGE)


@pytest.mark.parametrize("topic", [
    "zigbee2mqtt/home-a/pir",  # another root
    "telecare/home-a",  # no device
    "telecare",
    "telecare/home-a/",  # empty level
    "telecare//pir",
    "telecare/home-a//pir",
    "telecare/-home/pir",  # home id rules, see below
])
def test_bad_topic(topic: str) -> None:
    r = rejected(parse(topic, b'{"occupancy":true}', NOW_MS, NOW_MS), Reason.BAD_TOPIC)
    assert (r.home, r.device, r.topic, r.payload) == (None, None, topic, b'{"occupancy":true}')
    assert r.detail == "expected telecare/<home_id>/<device>"


def test_bad_topic_unknown_bridge_topic_keeps_the_home() -> None:
    r = rejected(p("bridge/frobnicate", {"x": 1}), Reason.BAD_TOPIC)
    assert (r.home, r.device, r.detail) == (HOME, None, "unknown bridge topic 'frobnicate'")


def test_bad_encoding() -> None:
    # An attribute payload that is neither JSON nor UTF-8 text.
    r = rejected(p("hallway_pir/illuminance", b"\xff\xfe\x00"), Reason.BAD_ENCODING)
    assert (r.home, r.detail) == (HOME, "payload is not UTF-8")
    # Invalid UTF-8 inside a JSON object.
    rejected(p("hallway_pir", b'{"action":"\xff"}'), Reason.BAD_ENCODING)


@pytest.mark.parametrize(("suffix", "payload"), [
    ("hallway_pir", b'{"occupancy": tru'),  # truncated object
    ("hallway_pir", b'{"occupancy": NaN}'),  # not JSON
    ("hallway_pir/occupancy", b'"unterminated'),
    ("bridge/devices", b'[{"friendly_name": '),
    ("hallway_pir/availability", b'{"state": '),
])
def test_invalid_json(suffix: str, payload: bytes) -> None:
    r = rejected(p(suffix, payload), Reason.INVALID_JSON)
    assert r.home == HOME


@pytest.mark.parametrize("payload", [b"[1, 2]", b'"occupied"', b"12", b"true", b"null", b"occupied"])
def test_not_an_object(payload: bytes) -> None:
    # JSON output: the whole topic after the home is the device, so the payload must be an object.
    r = rejected(p("hallway_pir", payload), Reason.NOT_AN_OBJECT)
    assert (r.home, r.device, r.detail) == (HOME, "hallway_pir", "a device state must be a JSON object")


def test_not_an_object_bridge_devices_must_be_a_list() -> None:
    r = rejected(p("bridge/devices", {"friendly_name": "x"}), Reason.NOT_AN_OBJECT)
    assert r.detail == "bridge/devices must be a JSON list"


@pytest.mark.parametrize(("field", "value", "detail"), [
    ("occupancy", "true", "'occupancy' must be true or false, got 'true'"),
    ("contact", 1, "'contact' must be true or false, got 1"),
    ("state", 1, "'state' must be true or false, got 1"),
    ("temperature", "21.5", "'temperature' must be a number, got '21.5'"),
    ("battery", True, "'battery' must be a number, got True"),
    ("action", 1, "'action' must be text, got 1"),
])
def test_wrong_type(field: str, value: Any, detail: str) -> None:
    r = rejected(p("dev", {field: value}), Reason.WRONG_TYPE)
    assert (r.home, r.device, r.detail) == (HOME, "dev", detail)


@pytest.mark.parametrize(("suffix", "payload"), [
    ("hallway_pir/availability", "maybe"),
    ("hallway_pir/availability", {"state": "unknown"}),
    ("hallway_pir/availability", {"online": True}),
    ("bridge/state", "restarting"),
    ("bridge/devices", [{"ieee_address": "0x00158d0007a1b2c3"}]),  # no friendly_name
])
def test_wrong_type_availability_and_bridge(suffix: str, payload: Any) -> None:
    rejected(p(suffix, payload), Reason.WRONG_TYPE)


@pytest.mark.parametrize(("field", "bad", "good"), [
    ("humidity", 100.1, 100), ("humidity", -0.5, 0), ("battery", 101, 100), ("battery", -1, 0),
    ("temperature", -60.1, -60), ("temperature", 100.5, 100), ("linkquality", 256, 255), ("power", -1, 0),
    ("voltage", -3, 0), ("illuminance", -1, 0), ("energy", -0.01, 0),
])
def test_out_of_range(field: str, bad: float, good: float) -> None:
    r = rejected(p("dev", {field: bad}), Reason.OUT_OF_RANGE)
    assert r.detail.startswith(f"'{field}' = {bad} is outside [")
    assert_same(state(p("dev", {field: good})).body, {field: good})  # the bounds themselves are inside


@pytest.mark.parametrize("last_seen", [
    "yesterday",
    "2025-01-15T09:41:07",  # no offset: a time in no known zone
    "2025-01-15 09:41:07 +0100 CET",
    True,
    {"ts": 1},
    [1736934067318],
    946_684_799_999,  # 1999-12-31T23:59:59.999Z: before 2000
    1_736_934_067,  # epoch SECONDS: read as milliseconds it is January 1970
    "1999-12-31T23:59:59Z",
])
def test_bad_timestamp(last_seen: Any) -> None:
    r = rejected(p("hallway_pir", {"occupancy": True, "last_seen": last_seen}), Reason.BAD_TIMESTAMP)
    assert (r.home, r.device) == (HOME, "hallway_pir")


def test_a_last_seen_more_than_five_minutes_ahead_is_stored_at_receipt_time_with_its_skew() -> None:
    """Issue 11: these were dead letters (future_timestamp); a hub clock running fast lost readings that way."""
    assert Limits().max_future_ms == FIVE_MIN_MS
    ok = state(p("hallway_pir", {"occupancy": True, "last_seen": NOW_MS + FIVE_MIN_MS}))
    assert ok.time_ms == NOW_MS + FIVE_MIN_MS  # exactly five minutes ahead is still the event time
    assert (ok.retimed, ok.clock_skew_ms, ok.body) == (None, FIVE_MIN_MS, {"occupancy": True})
    ahead = state(p("hallway_pir", {"occupancy": True, "last_seen": NOW_MS + FIVE_MIN_MS + 1}))
    assert (ahead.time_ms, ahead.received_ms, ahead.timed_by_device) == (NOW_MS, NOW_MS, False)
    assert (ahead.retimed, ahead.clock_skew_ms) == (Reason.FUTURE_TIMESTAMP, FIVE_MIN_MS + 1)
    assert_same(ahead.body, {"occupancy": True, "clock_skew_ms": FIVE_MIN_MS + 1})
    # The check uses the gateway's clock (now_ms), not the receipt time: a backlog is judged against "now".
    late = state(p("hallway_pir", {"occupancy": True, "last_seen": NOW_MS + 10 * 60_000},
                   received_ms=NOW_MS + 20 * 60_000, now_ms=NOW_MS))
    assert (late.time_ms, late.retimed) == (NOW_MS + 20 * 60_000, Reason.FUTURE_TIMESTAMP)
    custom = state(p("hallway_pir", {"occupancy": True, "last_seen": NOW_MS + 1}, limits=Limits(max_future_ms=0)))
    assert (custom.time_ms, custom.retimed, custom.body["clock_skew_ms"]) == (NOW_MS, Reason.FUTURE_TIMESTAMP, 1)


def test_a_pendant_press_from_a_hub_six_minutes_fast_is_kept_at_receipt_time() -> None:
    """Issue 11, finding 4: this press was dead-lettered as future_timestamp and raised no alert."""
    six_min = 6 * 60_000
    m = state(p("pendant", {"action": "single", "battery": 90, "last_seen": NOW_MS + six_min}))
    assert (m.device, m.time_ms, m.timed_by_device, m.retimed) == ("pendant", NOW_MS, False, Reason.FUTURE_TIMESTAMP)
    assert_same(m.body, {"action": "single", "battery": 90, "clock_skew_ms": six_min})
    iso = state(p("pendant", {"action": "single", "last_seen": "2025-01-15T10:06:00.000Z"}))
    assert (iso.time_ms, iso.clock_skew_ms) == (NOW_MS, six_min)


def test_a_normal_reading_records_the_hubs_skew_without_changing_its_time() -> None:
    m = state(p("hallway_pir", {"occupancy": True, "last_seen": NOW_MS - 1_500}))
    assert (m.time_ms, m.timed_by_device, m.clock_skew_ms, m.retimed) == (NOW_MS - 1_500, True, -1_500, None)
    assert m.body == {"occupancy": True}  # the skew goes in the body only when it cost the event time
    assert state(p("hallway_pir", {"occupancy": True})).clock_skew_ms is None  # no last_seen, nothing to learn


@pytest.mark.parametrize(("last_seen", "readable"), [
    ("yesterday", False), ("2025-01-15T09:41:07", False), (True, False), ({"ts": 1}, False), (0, True),
    (946_684_799_999, True), (1_736_934_067, True), ("1999-12-31T23:59:59Z", True),
    (4_102_444_800_000, True), ("2100-01-01T00:00:00Z", True),  # 2100
    (1e300, False), (-1e300, False), (2**63 - 1, False), (-1, False),  # its skew would not fit the journal's 64 bits
])
def test_a_button_action_is_never_dropped_for_its_timestamp(last_seen: Any, readable: bool) -> None:
    m = state(p("pendant", {"action": "double", "last_seen": last_seen}))
    assert (m.time_ms, m.timed_by_device, m.body["action"]) == (NOW_MS, False, "double")
    assert m.retimed in (Reason.BAD_TIMESTAMP, Reason.FUTURE_TIMESTAMP)
    assert (m.clock_skew_ms is not None) == readable
    if readable:
        assert m.body["clock_skew_ms"] == m.clock_skew_ms
    # the same time on a reading without an action is still refused (or re-timed when it is merely ahead)
    other = p("hallway_pir", {"occupancy": True, "action": "", "last_seen": last_seen})
    assert isinstance(other, Rejected) or other.retimed is Reason.FUTURE_TIMESTAMP


def test_every_reason_has_a_test() -> None:
    covered = {"too_large", "bad_topic", "bad_encoding", "invalid_json", "not_an_object", "wrong_type",
               "out_of_range", "bad_timestamp", "future_timestamp"}
    # parser_error is raised by the gateway around parse(), never by parse() itself.
    assert {r.value for r in Reason} - covered <= {"parser_error"}


def test_a_60_kB_topic_is_a_dead_letter_holding_its_topic_clipped_and_its_length() -> None:
    """Issue 11, finding 3: 60 kB topics were stored whole (journal, dead letters)."""
    topic = f"telecare/{HOME}/" + "x" * 60_000
    r = parse(topic, b'{"occupancy": true}', NOW_MS, NOW_MS)
    assert isinstance(r, Rejected) and r.reason is Reason.BAD_TOPIC
    assert r.topic == topic[:256] and r.topic_bytes == len(topic)
    assert r.home == HOME  # charged to the home it names
    assert r.detail == f"topic of {len(topic)} bytes exceeds the limit of 256 (kept clipped)"
    wide = parse(f"telecare/{HOME}/x" + "é" * 200, b"{}", NOW_MS, NOW_MS)  # 2 bytes a character, from byte 17
    assert isinstance(wide, Rejected) and len(wide.topic.encode()) == 255 and wide.topic.endswith("é")
    elsewhere = parse("x" * 70_000, b"{}", NOW_MS, NOW_MS)
    assert isinstance(elsewhere, Rejected) and elsewhere.topic == "x" * 256 and elsewhere.home is None
    at_limit = f"telecare/{HOME}/" + "d" * (256 - len(f"telecare/{HOME}/"))
    assert state(parse(at_limit, b'{"occupancy": true}', NOW_MS, NOW_MS)).device == at_limit.split("/")[2]


def test_a_device_named_too_long_for_a_topic_is_left_out_of_the_hubs_device_list() -> None:
    room = 256 - len(f"telecare/{HOME}/")
    listed = p("bridge/devices", [{"friendly_name": "d" * room}, {"friendly_name": "x" * 60_000},
                                  {"friendly_name": "é" * (room // 2 + 1)}])
    assert isinstance(listed, Message) and listed.kind is Kind.BRIDGE_DEVICES
    assert [d["friendly_name"] for d in listed.body] == ["d" * room]


def test_a_long_bridge_topic_or_detail_is_clipped_in_its_dead_letter() -> None:
    r = Rejected(Reason.BAD_TOPIC, "d" * 5000, "t" * 1000, b"p" * 1000, NOW_MS, HOME, "v" * 1000)
    assert (len(r.topic), r.topic_bytes, len(r.payload), len(r.detail), len(r.device or "")) == (
        256, 1000, 512, 512, 256)


def test_dead_letter_payload_is_cut_to_512_bytes() -> None:
    payload = b'{"humidity": 140, "pad": "' + b"x" * 2000 + b'"}'
    r = rejected(p("climate", payload), Reason.OUT_OF_RANGE)
    assert r.payload == payload[:512]


# --- ignored messages ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("suffix", "payload"), [
    ("kettle_plug/set", {"state": "ON"}),
    ("kettle_plug/get", {"state": ""}),
    ("kettle_plug/set/state", "ON"),  # "without JSON" form of /set
    ("kitchen/kettle_plug/set", {"state": "OFF"}),
    ("kitchen/kettle_plug/get/state", ""),
    ("bridge/logging", {"level": "info", "message": "hello", "namespace": "z2m"}),
    ("bridge/log", {"type": "pairing", "message": "interview_started"}),  # 1.x legacy API
    ("bridge/info", {"version": "2.1.1"}),
    ("bridge/event", {"type": "device_announce", "data": {}}),
    ("bridge/request/permit_join", {"time": 254}),
    ("bridge/response/device/rename", {"status": "ok"}),
    ("bridge/config", {"permit_join": False}),  # 1.x legacy API
    ("bridge/groups", []),
    ("bridge/definitions", {"clusters": {}}),
    ("bridge/extensions", []),
    ("bridge/converters", []),
    ("bridge/health", {"healthy": True}),
    ("hallway_pir", b""),  # an empty payload clears a retained message
    ("bridge/devices", b""),
    ("hallway_pir/last_seen", "2025-01-15T09:41:07.318Z"),  # attribute output bookkeeping
    ("hallway_pir/elapsed", "1234"),
    ("kettle_plug/child_lock", "UNLOCK"),  # an attribute that is not a reading
])
def test_ignored(suffix: str, payload: Any) -> None:
    assert isinstance(p(suffix, payload), Ignored)


def test_empty_availability_clear_is_ignored() -> None:
    assert isinstance(p("hallway_pir/availability", b""), Ignored)


def test_newer_bridge_topics_are_ignored() -> None:
    assert isinstance(p("bridge/group_bind_enforcement", {"checked": 3}), Ignored)


# --- friendly names containing "/" --------------------------------------------------------------------------

def test_friendly_name_with_slashes_json_output() -> None:
    m = state(p("kitchen/fridge_door", {"contact": False}))
    assert (m.home, m.device) == (HOME, "kitchen/fridge_door")
    deep = state(p("ground_floor/kitchen/fridge_door", {"contact": True}))
    assert deep.device == "ground_floor/kitchen/fridge_door"


def test_friendly_name_with_slashes_availability() -> None:
    m = p("kitchen/fridge_door/availability", {"state": "offline"})
    assert isinstance(m, Message) and m.kind is Kind.AVAILABILITY
    assert (m.device, m.body, m.time_ms) == ("kitchen/fridge_door", {"online": False}, NOW_MS)


def test_friendly_name_with_slashes_attribute_output() -> None:
    m = state(p("kitchen/fridge_door/contact", "true"))
    assert (m.device, m.body) == ("kitchen/fridge_door", {"contact": True})


def test_default_friendly_name_is_the_ieee_address() -> None:
    m = state(p("0x00158d000288e3c5", {"contact": True}))
    assert m.device == "0x00158d000288e3c5"


# --- last_seen formats --------------------------------------------------------------------------------------

SEEN_MS = 1_736_934_067_318  # 2025-01-15T09:41:07.318Z


@pytest.mark.parametrize(("last_seen", "expected_ms"), [
    ("2025-01-15T09:41:07.318Z", SEEN_MS),  # ISO_8601 (Date.toISOString)
    ("2025-01-15T10:41:07+01:00", SEEN_MS - 318),  # ISO_8601_local as zigbee2mqtt writes it: no milliseconds
    ("2025-01-15T10:41:07.318+01:00", SEEN_MS),
    ("2025-01-15T10:41:07.318+0100", SEEN_MS),  # offset without a colon (as in zigbee2mqtt's source comments)
    ("2025-01-15T04:41:07.318-05:00", SEEN_MS),
    ("2025-01-15T13:11:07.318+03:30", SEEN_MS),
    ("2025-01-15T09:41:07.318+00:00", SEEN_MS),
    (SEEN_MS, SEEN_MS),  # epoch milliseconds
    (float(SEEN_MS), SEEN_MS),
    (SEEN_MS + 0.9, SEEN_MS),  # fractions of a millisecond are cut
])
def test_last_seen_formats(last_seen: Any, expected_ms: int) -> None:
    m = state(p("hallway_pir", {"occupancy": True, "last_seen": last_seen}))
    assert (m.time_ms, m.timed_by_device, m.received_ms) == (expected_ms, True, NOW_MS)
    assert_same(m.body, {"occupancy": True})


@pytest.mark.parametrize("payload", [{"occupancy": True}, {"occupancy": True, "last_seen": None}])
def test_missing_last_seen_falls_back_to_receipt_time(payload: dict[str, Any]) -> None:
    m = state(p("hallway_pir", payload, received_ms=NOW_MS - 7_000))
    assert (m.time_ms, m.received_ms, m.timed_by_device) == (NOW_MS - 7_000, NOW_MS - 7_000, False)


def test_old_backlog_keeps_its_event_time() -> None:
    """A message queued by the broker for three hours keeps the time its hub saw the device."""
    seen = NOW_MS - 3 * 3600_000
    m = state(p("hallway_pir", {"occupancy": True, "last_seen": seen}))
    assert (m.time_ms, m.received_ms) == (seen, NOW_MS)


def test_availability_and_bridge_state_are_timed_at_receipt() -> None:
    a = p("hallway_pir/availability", "offline", received_ms=NOW_MS - 5)
    b = p("bridge/state", {"state": "offline"}, received_ms=NOW_MS - 5)
    for m in (a, b):
        assert isinstance(m, Message)
        device = None if m is b else "hallway_pir"
        assert (m.time_ms, m.timed_by_device, m.device) == (NOW_MS - 5, False, device)


# --- home id rules ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("home", ["home-a", "h", "H1", "0", "care_home.17", "abc-DEF_1.2", "a" * 64,
                                  "0x00124b0029a1b2c3"])
def test_valid_home_ids(home: str) -> None:
    m = parse(f"telecare/{home}/pir", b'{"occupancy":true}', NOW_MS, NOW_MS)
    assert isinstance(m, Message) and (m.home, m.device) == (home, "pir")


@pytest.mark.parametrize("home", ["-home", "_home", ".home", "a" * 65, "home a", "hôme", "home+a", "home#",
                                  "home:a", "home@a", "home%u"])
def test_invalid_home_ids(home: str) -> None:
    r = rejected(parse(f"telecare/{home}/pir", b'{"occupancy":true}', NOW_MS, NOW_MS), Reason.BAD_TOPIC)
    assert r.home is None


def test_home_id_is_case_sensitive_and_kept_as_sent() -> None:
    a = parse("telecare/Home-A/pir", b"{}", NOW_MS, NOW_MS)
    assert isinstance(a, Message) and a.home == "Home-A"


def test_another_root() -> None:
    m = parse("telecare-test/home-a/pir", b'{"occupancy":true}', NOW_MS, NOW_MS, root="telecare-test")
    assert isinstance(m, Message) and m.home == "home-a"
    rejected(parse("telecare/home-a/pir", b'{"occupancy":true}', NOW_MS, NOW_MS, root="telecare-test"),
             Reason.BAD_TOPIC)


def test_simulator_clock_ticks_belong_to_no_home() -> None:
    tick = parse("telecare-sim/clock", b'{"time": "2025-01-15T10:00:00.000Z", "speed": 600}', NOW_MS, NOW_MS)
    assert isinstance(tick, Message) and tick.kind is Kind.CLOCK and tick.home is None
    assert tick.time_ms == NOW_MS and tick.body == {"speed": 600.0}
    far = parse("telecare-sim/clock", b'{"time": 4102444800000, "speed": 0}', NOW_MS, NOW_MS)
    assert isinstance(far, Message) and far.time_ms == 4102444800000, "simulated time may run ahead of ours"


@pytest.mark.parametrize("payload", [b'{"now_ms": 1}', b'{"time": "soon"}', b'{"time": 1736935200000, "speed": -1}',
                                     b"[1]", b"{"])
def test_a_bad_clock_tick_is_rejected(payload: bytes) -> None:
    result = parse("telecare-sim/clock", payload, NOW_MS, NOW_MS)
    assert isinstance(result, Rejected) and result.home is None


# --- bridge -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("payload", "online"), [
    ("online", True), ("offline", False), ({"state": "online"}, True), ({"state": "offline"}, False),
])
def test_bridge_state_both_formats(payload: Any, online: bool) -> None:
    m = p("bridge/state", payload)
    assert isinstance(m, Message) and m.kind is Kind.BRIDGE_STATE
    assert (m.home, m.device, m.body) == (HOME, None, {"online": online})


def test_bridge_devices_skips_the_coordinator_and_unsupported_definitions() -> None:
    devices = [
        {"friendly_name": "Coordinator", "type": "Coordinator", "ieee_address": "0x00124b0029a1b2c3"},
        {"friendly_name": "mystery", "type": "EndDevice", "ieee_address": "0x00169a00022256da",
         "supported": False, "definition": None, "model_id": None, "power_source": "Battery"},
    ]
    m = p("bridge/devices", devices)
    assert isinstance(m, Message) and m.kind is Kind.BRIDGE_DEVICES
    assert_same(m.body, [{"friendly_name": "mystery", "ieee_address": "0x00169a00022256da", "model": "",
                          "vendor": "", "description": "", "power_source": "Battery", "kind": None}])
    empty = p("bridge/devices", [])
    assert isinstance(empty, Message) and empty.body == []


def test_presence_sensor_with_region_actions_is_not_a_button() -> None:
    fp1 = {"friendly_name": "lounge/chair_fp1", "type": "Router", "ieee_address": "0x54ef441000123456",
           "definition": {"model": "RTCZCGQ11LM", "vendor": "Aqara", "description": "Presence sensor FP1",
                          "exposes": [
                              {"type": "binary", "name": "presence", "property": "presence", "access": 5},
                              {"type": "enum", "name": "action", "property": "action", "access": 1,
                               "values": ["region_*_enter", "region_*_leave"]}]}}
    m = p("bridge/devices", [fp1])
    assert isinstance(m, Message) and m.body[0]["kind"] == "presence"
