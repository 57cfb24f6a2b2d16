"""Activity is a change, not a field being present.

zigbee2mqtt re-publishes a device's whole cached state whenever anything arrives from it (a battery report, a
ping answer), so ``occupancy: true`` may appear again without anyone moving. What counts as a person's
activity: occupancy going true, a contact opening or closing, a pad being sat on or left, an appliance's power
rising through a threshold, a button's action, a vibration. Temperatures never count.

Both the gateway (zigbee2mqtt payloads) and the offline analysis (the neutral CSV's one value a row) feed the
same tracker: :func:`activity_value` picks the one value from a payload, by the kind's ``activity_field``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum, StrEnum

from analytics.devices import KINDS_BY_KEY

Value = bool | float | str
POWER_ON_W = 20.0  # an appliance drawing this much or more is in use (a kettle boils at 2 kW, stands at 0-2 W)


class Change(StrEnum):
    MOTION = "motion"
    OPENED = "opened"
    CLOSED = "closed"
    OCCUPIED = "occupied"
    VACATED = "vacated"
    POWER_ON = "power_on"
    PRESSED = "pressed"
    VIBRATION = "vibration"


def activity_value(kind: str, fields: Mapping[str, object]) -> Value | None:
    """The value of a payload that says whether someone is active, or None when it has none (a battery report)."""
    spec = KINDS_BY_KEY.get(kind)
    if spec is None or spec.activity_field is None:
        return None
    value = fields.get(spec.activity_field)
    return value if isinstance(value, bool | int | float | str) else None


class NotJudged(Enum):
    """Marks a reading whose activity the caller has not decided: the detector's own tracker decides it."""

    NOT_JUDGED = "not judged"


NOT_JUDGED = NotJudged.NOT_JUDGED
Judged = Change | None | NotJudged  # what a caller may hand the detectors: a decision (even "none"), or NOT_JUDGED


def activity_change(kind: str, before: Value | None, value: Value, power_on_w: float = POWER_ON_W) -> Change | None:
    """What a device's new ``value`` changed, given its last one (``before``, None when none was seen yet).

    The one definition of activity: the gateway decides it once at ingest (gateway.reading_facts), the offline
    analysis through :class:`ActivityTracker`. The first state seen of a contact or pad is only learned."""
    if kind == "motion":
        return Change.MOTION if value is True and before is not True else None
    if kind == "contact":
        if before is None or before == value:
            return None
        return Change.CLOSED if value is True else Change.OPENED  # zigbee2mqtt: contact true = closed
    if kind == "presence":
        if before is None or before == value:
            return Change.OCCUPIED if before is None and value is True else None
        return Change.OCCUPIED if value is True else Change.VACATED
    if kind == "plug":
        watts = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
        was = float(before) if isinstance(before, int | float) and not isinstance(before, bool) else 0.0
        return Change.POWER_ON if watts >= power_on_w > was else None
    if kind == "button":
        return Change.PRESSED if isinstance(value, str) and value else None
    if kind == "vibration":
        return Change.VIBRATION if value is True else None
    return None


class ActivityTracker:
    """Remembers each device's last state and says what changed. Pure and picklable (detector state)."""

    def __init__(self, power_on_w: float = POWER_ON_W) -> None:
        self.power_on_w = power_on_w
        self._last: dict[str, Value] = {}

    def update(self, device: str, kind: str, value: Value) -> Change | None:
        """What this reading changed, or None (see :func:`activity_change`)."""
        before = self._last.get(device)
        self._last[device] = value
        return activity_change(kind, before, value, self.power_on_w)

    def remember(self, device: str, value: Value) -> None:
        """A reading whose change was decided elsewhere: only its state is kept."""
        self._last[device] = value
