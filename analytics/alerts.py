"""What the detectors decide: alert kinds, severities and the events that raise, update and clear alerts.

The kinds are stable names (``docs/alerts.md``): the gateway stores them, the API filters on them and
``telecare analyse`` writes them. Person-safety alerts are one open alert per resident (home) and kind, so their
``subject`` is empty; device-health alerts are one open alert per device (or the hub) and kind, the device's
friendly name (or ``hub``) being the subject.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any


class AlertKind(StrEnum):
    # The person's safety
    INACTIVITY = "inactivity"
    NOT_UP = "not_up"
    NIGHT_EXIT = "night_exit"
    LONG_ABSENCE = "long_absence"
    NO_MEALS = "no_meals"
    ACTIVITY_DECLINE = "activity_decline"
    COLD_HOME = "cold_home"
    PENDANT = "pendant"
    # The devices' health
    HUB_OFFLINE = "hub_offline"
    CANT_SEE = "cant_see"
    SENSOR_SILENT = "sensor_silent"
    LOW_BATTERY = "low_battery"
    HUB_MISBEHAVING = "hub_misbehaving"  # the hub went past a per-home quota (gateway.quotas): its excess refused
    # Not an alert: a notice told to whoever follows the resident (back from a planned absence)
    RETURNED = "returned"


DEVICE_HEALTH = frozenset({AlertKind.HUB_OFFLINE, AlertKind.CANT_SEE, AlertKind.SENSOR_SILENT,
                           AlertKind.LOW_BATTERY, AlertKind.HUB_MISBEHAVING})
HUB_SUBJECT = "hub"


class Severity(IntEnum):
    """How urgently a person must look; the notifier maps it to a Pushover priority."""

    INFO = 0  # a notice: nobody needs to act
    LOW = 1  # device health: fix within days
    WARNING = 2  # a break from routine: look today
    URGENT = 3  # someone may need help now: escalated until acknowledged
    EMERGENCY = 4  # the pendant: highest priority, escalated until acknowledged


class Outcome(StrEnum):
    """What the person who dealt with an alert found: one vocabulary for the detectors, the API, the dashboard and
    the CLI (DESIGN.md "Outcomes"). Detectors may learn from ``FALSE_ALARM`` (within bounds), never from the
    others: a confirmed incident must never widen a limit."""

    FALSE_ALARM = "false_alarm"  # the resident was fine
    FALL = "fall"  # found on the floor, or had fallen
    UNWELL = "unwell"
    OUT = "out"  # was out of the home
    SENSOR_PROBLEM = "sensor_problem"
    OTHER = "other"


class Action(StrEnum):
    RAISE = "raise"  # a new alert (or a repeat of an open one, which updates it)
    CLEAR = "clear"  # the condition is over (activity resumed, hub back ...)
    NOTICE = "notice"  # a one-off message, not an open alert


@dataclass(frozen=True, slots=True)
class AlertEvent:
    action: Action
    kind: AlertKind
    home: str
    at_ms: int  # when the condition began or ended, in event time: when a threshold was crossed
    severity: Severity
    message: str  # for a carer: what, where, since when, and what is usual
    subject: str = ""  # "" for the resident; a device's friendly name or "hub" for device health
    details: dict[str, Any] = field(default_factory=dict)  # JSON-friendly figures behind the message

    @property
    def key(self) -> tuple[str, AlertKind, str]:
        """What makes an alert one: at most one open alert per key."""
        return (self.home, self.kind, self.subject)
