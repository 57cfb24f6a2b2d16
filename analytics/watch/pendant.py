"""The pendant: pressed is an emergency at once, ended only by a person (never by a detector)."""

from __future__ import annotations

from typing import ClassVar

from analytics.activity import Change
from analytics.alerts import AlertKind, Severity
from analytics.watch.base import Day, DetectorConfig, HomeState, Reading


class Pendant:
    name: ClassVar[str] = "pendant"
    version: ClassVar[int] = 1

    def __init__(self, config: DetectorConfig) -> None:
        """Nothing to learn or configure."""

    def observe(self, home: HomeState, reading: Reading) -> None:
        if reading.info.role != "pendant" or reading.change is not Change.PRESSED:
            return
        t, before = reading.time_ms, reading.before
        home.raise_(AlertKind.PENDANT, t, Severity.EMERGENCY,
                    f"Pendant pressed at {home.clock(t)}{home.last_seen_text(t, before.activity_ms, before.room)}.",
                    pressed_at=t)

    def next_wake_ms(self, home: HomeState) -> int | None:
        return None

    def advance(self, home: HomeState, t: int) -> None:
        """Nothing falls due."""

    def day_closed(self, home: HomeState, day: Day, closed_at: int) -> None:
        """Nothing learned."""
