"""The home's warmth: ``cold_home`` when a temperature sensor stays below the limit for an hour."""

from __future__ import annotations

from typing import ClassVar

from analytics.alerts import AlertKind, Severity
from analytics.localtime import MINUTE_MS
from analytics.watch.base import Day, DetectorConfig, HomeState, Reading, first_due, place


class Environment:
    name: ClassVar[str] = "environment"
    version: ClassVar[int] = 1

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.cold_since: dict[str, int] = {}
        self.temperatures: dict[str, float] = {}

    def observe(self, home: HomeState, reading: Reading) -> None:
        celsius = reading.temperature
        if celsius is None:
            return
        c, t, device = self.config, reading.time_ms, reading.device
        self.temperatures[device] = celsius
        if celsius < c.cold_below_c:
            self.cold_since.setdefault(device, t)
        elif celsius >= c.cold_clear_c:
            self.cold_since.pop(device, None)
        if not self.cold_since and home.is_open(AlertKind.COLD_HOME):
            home.clear(AlertKind.COLD_HOME, t, f"Warm again at {home.clock(t)}: {place(reading.info.room, device)} "
                       f"{celsius:.1f} °C.")

    def next_wake_ms(self, home: HomeState) -> int | None:
        return first_due(since + round(self.config.cold_for_min * MINUTE_MS) for since in self.cold_since.values())

    def advance(self, home: HomeState, t: int) -> None:
        c = self.config
        due = [(since, d) for d, since in self.cold_since.items()
               if since + round(c.cold_for_min * MINUTE_MS) <= t]
        if not due or home.is_open(AlertKind.COLD_HOME):
            return
        since, device = min(due)
        info = home.devices.get(device)
        at = since + round(c.cold_for_min * MINUTE_MS)
        home.raise_(AlertKind.COLD_HOME, at, Severity.WARNING,
                    f"{place(info.room if info else None, device).capitalize()} at "
                    f"{self.temperatures[device]:.1f} °C, below {c.cold_below_c:g} °C since {home.clock(since, at)}.",
                    device=device, celsius=self.temperatures[device])

    def day_closed(self, home: HomeState, day: Day, closed_at: int) -> None:
        """Nothing learned by the day."""
