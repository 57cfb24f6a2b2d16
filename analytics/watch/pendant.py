"""The pendant: pressed is an emergency at once, ended only by a person (never by a detector).

A button nobody has set up yet may be the pendant. The gateway discovers devices by itself, and importing a home's
description (which gives the pendant its role) is optional, so a pendant can be pressed before anyone has said
what it is. Such a press is raised as the pendant, at the same severity, worded as unconfirmed: a possible call
for help that reaches nobody would be the worst failure, a doorbell that pages a carer a small one.
:func:`setting_up_needed` says which devices still need setting up, for the API, the dashboard and the CLI.
"""

from __future__ import annotations

from typing import ClassVar

from analytics.activity import Change
from analytics.alerts import AlertKind, Severity
from analytics.watch.base import Day, DetectorConfig, HomeState, Reading, device_name

PENDANT_ROLE = "pendant"
# Roles that say a button is deliberately not a call for help (a doorbell, say). None of today's roles is one:
# `pendant` is the only role a button is given, so a button with any other role (a slip in a description) is
# still taken for a possible call for help.
NOT_CALLS_FOR_HELP: frozenset[str] = frozenset()


def unconfirmed_button(kind: str | None, role: str | None) -> bool:
    """A button whose presses may be a call for help that nobody has confirmed: no role, or one that is not a
    button's."""
    return kind == "button" and role != PENDANT_ROLE and role not in NOT_CALLS_FOR_HELP


def setting_up_needed(kind: str | None, room: str | None, role: str | None) -> str | None:
    """Why a device needs setting up (a room or a role from a coordinator), or None when it does not.

    A button not set up comes first: its presses raise unconfirmed pendant alerts. Any other device with neither
    a room nor a role is one nobody has described: the detectors count it as activity but cannot tell what it is
    for (a door to outside, the fridge, the bed). A device with a room but no role (a temperature sensor, a
    motion sensor) is described as far as it needs to be."""
    if unconfirmed_button(kind, role):
        return ("a button that is not set up: each press is raised as a possible pendant press (an emergency) "
                "until it is given the role pendant")
    if role is None and room is None:
        return "no room or role: the detectors cannot tell what it is for"
    return None


def setting_up_urgency(kind: str | None, role: str | None) -> int:
    """For sorting what needs setting up: 0 for a button not set up (the most urgent), 1 for anything else."""
    return 0 if unconfirmed_button(kind, role) else 1


class Pendant:
    name: ClassVar[str] = "pendant"
    version: ClassVar[int] = 1  # no state of its own: the unconfirmed button changed nothing to checkpoint

    def __init__(self, config: DetectorConfig) -> None:
        """Nothing to learn or configure."""

    def observe(self, home: HomeState, reading: Reading) -> None:
        if reading.change is not Change.PRESSED:
            return
        info = reading.info
        t, before = reading.time_ms, reading.before
        last_seen = home.last_seen_text(t, before.activity_ms, before.room)
        if info.role == PENDANT_ROLE:
            home.raise_(AlertKind.PENDANT, t, Severity.EMERGENCY, f"Pendant pressed at {home.clock(t)}{last_seen}.",
                        pressed_at=t)
        elif unconfirmed_button(info.kind, info.role):
            # One alert key with the pendant's: the same chain, priority and escalation, and a real pendant press
            # while this is open is the same situation rather than a second emergency.
            where = f", in the {info.room}" if info.room else ""
            why = ("It is not yet set up" if info.role is None
                   else f"It is set up as '{device_name(info.role)}', which is not a button's role")
            home.raise_(AlertKind.PENDANT, t, Severity.EMERGENCY,
                        f"A button ({reading.device}{where}) was pressed at {home.clock(t)}{last_seen}. {why}, "
                        f"so it may be the pendant: please check on the resident.",
                        pressed_at=t, unconfirmed=True, device=reading.device)

    def next_wake_ms(self, home: HomeState) -> int | None:
        return None

    def advance(self, home: HomeState, t: int) -> None:
        """Nothing falls due."""

    def day_closed(self, home: HomeState, day: Day, closed_at: int) -> None:
        """Nothing learned."""
