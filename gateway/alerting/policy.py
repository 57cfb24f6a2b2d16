"""How each alert is told: Pushover priority, whether it escalates, how fast. Pure; see docs/alerting.md."""

from __future__ import annotations

from dataclasses import dataclass

from analytics.alerts import DEVICE_HEALTH, AlertKind, Severity

QUIET = -1  # no sound or vibration
NORMAL = 0
HIGH = 1  # bypasses the recipient's quiet hours
EMERGENCY = 2  # repeated by Pushover until acknowledged or expired; has a receipt

# Once an urgent chain is exhausted, everyone in it is alerted again at this interval at least.
MIN_REPEAT_MIN = 5


@dataclass(frozen=True, slots=True)
class Policy:
    priority: int
    escalate: bool  # move down the chain when nobody acknowledges within a step's wait
    wait_factor: int = 1  # each step's wait_min is multiplied by this
    repeat: bool = False  # when the chain is exhausted, alert everyone again and again (never go silent)


def policy_for(kind: str, severity: int) -> Policy:
    if kind in DEVICE_HEALTH:
        # A broken sensor needs fixing within days: the first reachable recipient, never escalated.
        return Policy(QUIET if severity <= Severity.INFO else NORMAL, escalate=False)
    if severity <= Severity.INFO:
        return Policy(QUIET, escalate=False)
    if severity == Severity.LOW:
        return Policy(NORMAL, escalate=False)
    if severity == Severity.WARNING:
        # "Look today": nobody is woken, but somebody must see it; the chain moves four times slower, once.
        return Policy(NORMAL, escalate=True, wait_factor=4)
    return Policy(EMERGENCY, escalate=True, repeat=True)


def follow_up_priority(kind: str, severity: int) -> int:
    """Priority of the "acknowledged by" and "resolved" messages: information, never an alarm."""
    return QUIET if kind in DEVICE_HEALTH or severity <= Severity.LOW else NORMAL


def sendable_priority(priority: int, emergency_allowed: bool) -> int:
    """Emergency priority's retry/expire run on Pushover's wall clock: accelerated runs send it as high."""
    return min(priority, HIGH) if not emergency_allowed else priority


def label(kind: str) -> str:
    try:
        return AlertKind(kind).value.replace("_", " ")
    except ValueError:
        return kind.replace("_", " ")


def severity_name(severity: int) -> str:
    try:
        return Severity(severity).name
    except ValueError:
        return str(severity)
