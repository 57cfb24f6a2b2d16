"""The MQTT contract: zigbee2mqtt topics and payloads under ``telecare/<home_id>/``, parsed into messages.

Pure: bytes and times in, a :class:`Message` or a :class:`Rejected` out. No I/O, no clock (``now_ms`` is
passed in). See ``docs/mqtt-contract.md`` for the contract this implements.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson

from analytics.devices import FIELDS, META_FIELDS, ValueType, infer_kind

CLOCK_TOPIC = "telecare-sim/clock"  # outside every home's namespace; only the simulator may write it
HOME_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
EPOCH_2000_MS = 946_684_800_000
YEAR_10000_MS = 253_402_300_800_000  # as far as ISO 8601 (and Python's datetime) goes
# What a dead letter keeps of a message: a flood of huge topics or payloads must not be stored whole.
DEAD_LETTER_TOPIC_BYTES = 256
DEAD_LETTER_PAYLOAD_BYTES = 512
DEAD_LETTER_DETAIL_CHARS = 512
ONLINE_WORDS = {"online": True, "offline": False}
# Bridge topics zigbee2mqtt publishes that carry nothing the monitor needs (requests, responses, logs ...).
IGNORED_BRIDGE_TOPICS = frozenset(
    {"info", "logging", "log", "event", "extensions", "groups", "definitions", "config", "options", "health",
     "converters", "request", "response", "networkmap", "coordinator_check", "backup",
     "group_bind_enforcement"}
)
COMMAND_SUFFIXES = frozenset({"set", "get"})


class Kind(StrEnum):
    """What a message is. Stored in the journal; stable names."""

    STATE = "state"  # a device's readings
    AVAILABILITY = "availability"  # a device's online/offline, from the hub
    BRIDGE_STATE = "bridge_state"  # the hub itself online/offline (including its last will)
    BRIDGE_DEVICES = "bridge_devices"  # the hub's device list
    DEAD = "dead"  # rejected: kept as a dead letter
    CLOCK = "clock"  # the simulator's clock moved on (only when the gateway follows simulated time)
    QUOTA = "quota"  # a home's hub went past a quota (gateway.quotas): journaled at most once per home per hour


class Reason(StrEnum):
    """Why a message was rejected. Stable names: used as the metrics label and in the dead-letter table."""

    TOO_LARGE = "too_large"
    BAD_TOPIC = "bad_topic"
    BAD_ENCODING = "bad_encoding"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    BAD_TIMESTAMP = "bad_timestamp"
    # No longer a rejection: a reading whose last_seen is too far ahead is stored at receipt time (see Message.
    # retimed). The name stays as the reason label of the readings that were re-timed so.
    FUTURE_TIMESTAMP = "future_timestamp"
    PARSER_ERROR = "parser_error"  # a bug on our side; the message is kept so it can be replayed once fixed


@dataclass(slots=True)
class Message:
    """A valid message. ``body`` is normalised: readings are plain numbers, booleans and short texts."""

    kind: Kind
    home: str | None  # None only for the simulator's clock
    device: str | None
    time_ms: int  # event time: the payload's last_seen, else the receipt time
    received_ms: int
    body: Any
    timed_by_device: bool = False  # True when time_ms came from the payload's last_seen
    # last_seen minus the receipt time, whenever the payload carried a readable last_seen: positive when the hub
    # reported a time ahead of the gateway's clock. Feeds the per-hub clock estimate.
    clock_skew_ms: int | None = None
    # Why the payload's last_seen was not used and the reading was timed at receipt instead (FUTURE_TIMESTAMP,
    # or BAD_TIMESTAMP for a button action, which is never dropped for its time); None when it was not re-timed.
    retimed: Reason | None = None


@dataclass(slots=True)
class Rejected:
    """A message that breaks the contract, with the reason a person can act on.

    Kept as a dead letter, so what it holds is clipped on construction: the topic to 256 bytes (its whole length
    in ``topic_bytes``), the payload to 512 bytes, the detail to 512 characters. A hub can send 64 kB topics.
    """

    reason: Reason
    detail: str
    topic: str
    payload: bytes
    received_ms: int
    home: str | None = None
    device: str | None = None
    topic_bytes: int = 0  # the topic's whole length in UTF-8 bytes, before clipping

    def __post_init__(self) -> None:
        self.topic_bytes = self.topic_bytes or _utf8_len(self.topic)
        self.topic = clip_utf8(self.topic, DEAD_LETTER_TOPIC_BYTES)
        self.payload = self.payload[:DEAD_LETTER_PAYLOAD_BYTES]
        self.detail = self.detail[:DEAD_LETTER_DETAIL_CHARS]
        if self.device is not None:
            self.device = clip_utf8(self.device, DEAD_LETTER_TOPIC_BYTES)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def clip_utf8(text: str, max_bytes: int) -> str:
    """``text`` if it fits in ``max_bytes`` of UTF-8, else its longest prefix that does (never half a character)."""
    if len(text) * 4 <= max_bytes:
        return text
    encoded = text.encode("utf-8", "surrogateescape")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", "ignore")


@dataclass(slots=True)
class Ignored:
    """A message inside the contract that the monitor has no use for (commands, bridge logs, retained clears)."""

    topic: str
    why: str = field(default="")


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = 64 * 1024
    max_bridge_payload_bytes: int = 4 * 1024 * 1024
    # How far ahead of the gateway's clock an event time may be; further ahead, the reading is timed at receipt.
    max_future_ms: int = 5 * 60 * 1000
    # A longer topic is a dead letter (bad_topic): zigbee2mqtt's friendly names are short, and a device name ends
    # up in the journal, the registry and the readings store's tags.
    max_topic_bytes: int = DEAD_LETTER_TOPIC_BYTES


DEFAULT_LIMITS = Limits()
Parsed = Message | Rejected | Ignored


class _Reject(Exception):
    def __init__(self, reason: Reason, detail: str, skew_ms: int | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.skew_ms = skew_ms  # a refused last_seen minus the receipt time, when it could be read at all


def parse(topic: str, payload: bytes, received_ms: int, now_ms: int, root: str = "telecare",
          limits: Limits = DEFAULT_LIMITS) -> Parsed:
    """Parse one MQTT message of the contract."""
    if topic == CLOCK_TOPIC:
        return _parse_clock(topic, payload, received_ms)
    parts = topic.split("/")
    # A UTF-8 character is at most 4 bytes: most topics are judged without encoding them.
    if len(topic) * 4 > limits.max_topic_bytes and (size := _utf8_len(topic)) > limits.max_topic_bytes:
        # Charged to the home it names when that home id is valid, so a flood counts against its own home.
        home = parts[1] if len(parts) > 2 and parts[0] == root and HOME_ID.match(parts[1]) else None
        return Rejected(Reason.BAD_TOPIC, f"topic of {size} bytes exceeds the limit of {limits.max_topic_bytes} "
                        "(kept clipped)", topic, payload, received_ms, home)
    if len(parts) < 3 or parts[0] != root or not HOME_ID.match(parts[1]) or "" in parts:
        return Rejected(Reason.BAD_TOPIC, f"expected {root}/<home_id>/<device>", topic, payload, received_ms)
    home = parts[1]
    try:
        if parts[2] == "bridge":
            return _parse_bridge(parts, topic, payload, home, received_ms, now_ms, limits)
        return _parse_device(parts, topic, payload, home, received_ms, now_ms, limits)
    except _Reject as e:
        device = "/".join(parts[2:]) if parts[2] != "bridge" else None
        return Rejected(e.reason, e.detail, topic, payload, received_ms, home, device)


def _parse_bridge(parts: list[str], topic: str, payload: bytes, home: str, received_ms: int, now_ms: int,
                  limits: Limits) -> Parsed:
    what = parts[3] if len(parts) > 3 else ""
    if what == "state" and len(parts) == 4:
        _check_size(payload, limits.max_payload_bytes)
        return Message(Kind.BRIDGE_STATE, home, None, received_ms, received_ms, {"online": _online(payload)})
    if what == "devices" and len(parts) == 4:
        _check_size(payload, limits.max_bridge_payload_bytes)
        if not payload:
            return Ignored(topic, "empty bridge/devices")
        name_bytes = limits.max_topic_bytes - _utf8_len(f"{parts[0]}/{home}/")  # what a device's topic leaves
        return Message(Kind.BRIDGE_DEVICES, home, None, received_ms, received_ms, _devices(_json(payload), name_bytes))
    if what in IGNORED_BRIDGE_TOPICS:
        return Ignored(topic, "bridge topic the monitor does not use")
    raise _Reject(Reason.BAD_TOPIC, f"unknown bridge topic '{'/'.join(parts[3:])}'")


def _parse_device(parts: list[str], topic: str, payload: bytes, home: str, received_ms: int, now_ms: int,
                  limits: Limits) -> Parsed:
    _check_size(payload, limits.max_payload_bytes)
    last = parts[-1]
    if last in COMMAND_SUFFIXES or (len(parts) > 4 and parts[-2] in COMMAND_SUFFIXES):
        return Ignored(topic, "command to a device")
    if last == "availability" and len(parts) > 3:
        if not payload:
            return Ignored(topic, "empty payload clears a retained message (device renamed)")
        device = "/".join(parts[2:-1])
        return Message(Kind.AVAILABILITY, home, device, received_ms, received_ms, {"online": _online(payload)})
    if not payload:
        return Ignored(topic, "empty payload clears a retained message")
    value = _json_or_text(payload)
    if isinstance(value, dict):
        # output: json (zigbee2mqtt's default): the whole topic after the home is the friendly name.
        device = "/".join(parts[2:])
        return _timed_state(home, device, value, received_ms, now_ms, limits)
    # output: attribute: one value per topic, <device>/<attribute>.
    if len(parts) < 4:
        raise _Reject(Reason.NOT_AN_OBJECT, "a device state must be a JSON object")
    device, name = "/".join(parts[2:-1]), last
    if name in META_FIELDS:
        return Ignored(topic, f"attribute {name} is bookkeeping")
    fields = state_fields({name: value})
    if not fields:
        return Ignored(topic, f"attribute {name} is not a reading")
    return Message(Kind.STATE, home, device, received_ms, received_ms, fields)


def _parse_clock(topic: str, payload: bytes, received_ms: int) -> Parsed:
    """``{"time": <ISO 8601 or epoch ms>, "speed": <simulated seconds per second, 0 = as fast as possible>}``."""
    try:
        value = _json(payload)
        if not isinstance(value, dict):
            raise _Reject(Reason.NOT_AN_OBJECT, "a clock tick must be a JSON object")
        time_ms = _last_seen_ms(value.get("time")) if value.get("time") is not None else -1
        if 0 <= time_ms < EPOCH_2000_MS:
            raise _Reject(Reason.BAD_TIMESTAMP, "a clock tick's time is before the year 2000")
        speed = value.get("speed", 1)
        if time_ms < 0 or isinstance(speed, bool) or not isinstance(speed, int | float) or speed < 0:
            raise _Reject(Reason.WRONG_TYPE, "a clock tick needs a time and a speed >= 0")
    except _Reject as e:
        return Rejected(e.reason, e.detail, topic, payload, received_ms)
    return Message(Kind.CLOCK, None, None, time_ms, received_ms, {"speed": float(speed)}, True)


def _check_size(payload: bytes, limit: int) -> None:
    if len(payload) > limit:
        raise _Reject(Reason.TOO_LARGE, f"payload of {len(payload)} bytes exceeds the limit of {limit}")


def _json(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise _Reject(Reason.INVALID_JSON, f"invalid JSON: {e}") from None


def _json_or_text(payload: bytes) -> Any:
    """zigbee2mqtt's attribute output sends bare text (``single``), which is not JSON."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise _Reject(Reason.BAD_ENCODING, "payload is not UTF-8") from None
    if text[:1] in "{[\"" or not text.isprintable():
        raise _Reject(Reason.INVALID_JSON, "invalid JSON object")
    return text


def _online(payload: bytes) -> bool:
    """Both availability formats: legacy bare ``online``/``offline`` and ``{"state": "online"}``."""
    value = _json_or_text(payload)
    if isinstance(value, dict):
        value = value.get("state")
    if isinstance(value, str) and value.lower() in ONLINE_WORDS:
        return ONLINE_WORDS[value.lower()]
    raise _Reject(Reason.WRONG_TYPE, "availability must be 'online'/'offline' or {\"state\": ...}")


def _timed_state(home: str, device: str, value: dict[str, Any], received_ms: int, now_ms: int,
                 limits: Limits) -> Message:
    """A device's state at its event time; a clock that is wrong costs the event time, never the reading.

    A last_seen too far ahead of the gateway's clock (a hub clock running fast, or the gateway's slow) is replaced
    by the receipt time, the skew recorded in the body as ``clock_skew_ms``. A button's ``action`` is kept at
    receipt time whatever its last_seen says: a pendant press must never be lost to a hub's clock.
    """
    last_seen = value.get("last_seen")
    if last_seen is None:
        return Message(Kind.STATE, home, device, received_ms, received_ms, state_fields(value))
    try:
        ms = _last_seen_ms(last_seen)
        if ms < EPOCH_2000_MS:
            raise _Reject(Reason.BAD_TIMESTAMP, f"last_seen {last_seen!r} is before the year 2000", ms - received_ms)
    except _Reject as e:
        action = value.get("action")
        if not (isinstance(action, str) and action):
            raise
        return _retimed(home, device, state_fields(value), received_ms, e.skew_ms, Reason.BAD_TIMESTAMP)
    skew_ms = ms - received_ms
    if ms > now_ms + limits.max_future_ms:
        return _retimed(home, device, state_fields(value), received_ms, skew_ms, Reason.FUTURE_TIMESTAMP)
    return Message(Kind.STATE, home, device, ms, received_ms, state_fields(value), True, skew_ms)


def _retimed(home: str, device: str, fields: dict[str, bool | float | int | str], received_ms: int,
             skew_ms: int | None, why: Reason) -> Message:
    if skew_ms is not None:
        fields["clock_skew_ms"] = skew_ms
    return Message(Kind.STATE, home, device, received_ms, received_ms, fields, False, skew_ms, why)


def _last_seen_ms(last_seen: Any) -> int:
    """zigbee2mqtt's last_seen (epoch milliseconds, or ISO 8601 with Z or an offset) in epoch milliseconds."""
    if isinstance(last_seen, bool):
        raise _Reject(Reason.BAD_TIMESTAMP, "last_seen must be a time, not a boolean")
    if isinstance(last_seen, int | float):
        if not (0 <= last_seen < YEAR_10000_MS):  # NaN too. A skew is journaled: it must fit in 64 bits
            raise _Reject(Reason.BAD_TIMESTAMP, "last_seen is not a time between 1970 and 9999")
        ms = int(last_seen)
    elif isinstance(last_seen, str):
        try:
            when = datetime.fromisoformat(last_seen)
        except ValueError:
            raise _Reject(Reason.BAD_TIMESTAMP, f"last_seen '{last_seen[:40]}' is not ISO 8601") from None
        if when.tzinfo is None:
            raise _Reject(Reason.BAD_TIMESTAMP, f"last_seen '{last_seen[:40]}' has no UTC offset")
        ms = round(when.timestamp() * 1000)
    else:
        raise _Reject(Reason.BAD_TIMESTAMP, "last_seen must be epoch milliseconds or ISO 8601")
    return ms


def state_fields(payload: dict[str, Any]) -> dict[str, bool | float | int | str]:
    """Keep the readings: known fields checked against their type, unknown ones only if numeric or boolean."""
    out: dict[str, bool | float | int | str] = {}
    for name, value in payload.items():
        if value is None or name in META_FIELDS:
            continue
        spec = FIELDS.get(name)
        if spec is None:
            if isinstance(value, bool) or (isinstance(value, int | float) and math.isfinite(value)):
                out[name] = value
            continue
        if spec.type is ValueType.BOOL:
            if name == "state" and isinstance(value, str):
                if value.upper() not in ("ON", "OFF"):
                    continue  # covers, locks ... use other words; not a reading we keep
                value = value.upper() == "ON"
            if not isinstance(value, bool):
                raise _Reject(Reason.WRONG_TYPE, f"'{name}' must be true or false, got {_show(value)}")
        elif spec.type is ValueType.NUMBER:
            if name == "pressure" and isinstance(value, bool):
                out["presence"] = value  # a pressure pad (e.g. Tuya C3007): someone is on it, not hPa
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise _Reject(Reason.WRONG_TYPE, f"'{name}' must be a number, got {_show(value)}")
            if (spec.minimum is not None and value < spec.minimum) or (
                    spec.maximum is not None and value > spec.maximum):
                raise _Reject(Reason.OUT_OF_RANGE, f"'{name}' = {value} is outside [{spec.minimum}, "
                                                   f"{spec.maximum}] {spec.unit}".rstrip())
        else:
            if not isinstance(value, str):
                raise _Reject(Reason.WRONG_TYPE, f"'{name}' must be text, got {_show(value)}")
            if not value:
                continue  # zigbee2mqtt clears an action with ""
            value = value[:64]
        out[name] = value
    return out


def _devices(value: Any, max_name_bytes: int) -> list[dict[str, Any]]:
    """The hub's device list, cut down to identity: friendly name, IEEE address, model and inferred kind.

    A device whose name is too long for a topic is left out: each of its messages would be a dead letter, and the
    list is kept in the journal and the registry (a hub can name 60 kB devices).
    """
    if not isinstance(value, list):
        raise _Reject(Reason.NOT_AN_OBJECT, "bridge/devices must be a JSON list")
    devices = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("friendly_name"), str):
            raise _Reject(Reason.WRONG_TYPE, "each bridge/devices entry needs a friendly_name")
        if item.get("type") == "Coordinator" or _utf8_len(item["friendly_name"]) > max_name_bytes:
            continue
        definition = item.get("definition") or {}
        exposed = _exposed_properties(definition.get("exposes") or [])
        devices.append({
            "friendly_name": item["friendly_name"],
            "ieee_address": str(item.get("ieee_address") or ""),
            "model": str(definition.get("model") or item.get("model_id") or ""),
            "vendor": str(definition.get("vendor") or item.get("manufacturer") or ""),
            "description": str(definition.get("description") or ""),
            "power_source": str(item.get("power_source") or ""),
            "kind": infer_kind(exposed),
        })
    return devices


def _exposed_properties(exposes: list[Any]) -> set[str]:
    names: set[str] = set()
    for expose in exposes:
        if isinstance(expose, dict):
            prop = expose.get("property")
            if isinstance(prop, str):
                names.add("presence" if prop == "pressure" and expose.get("type") == "binary" else prop)
            names |= _exposed_properties(expose.get("features") or [])
    return names


def _show(value: Any) -> str:
    return repr(value)[:40]
