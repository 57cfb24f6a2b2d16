"""The gateway's one clock. Everything time-based in the gateway asks it; detectors never read a clock."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch, UTC."""
        ...

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Wait ``seconds`` of this clock's time, or until ``stop`` is set (then return True)."""
        ...

    def tick(self, time_ms: int, speed: float) -> bool:
        """The simulator's clock says it is ``time_ms``; returns whether this clock follows it."""
        ...


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def tick(self, time_ms: int, speed: float) -> bool:
        """The wall clock follows no simulator."""
        return False

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(max(0.0, seconds))


class SimulatedClock:
    """Follows the simulator's clock topic (``telecare-sim/clock``): time moves only when a tick says so.

    A gateway started with ``TELECARE_CLOCK=simulated`` takes every time from here: receipt times, the "too far
    in the future" check, waits and back-off. Until the first tick it reads the wall clock. Ticks never move it
    backwards. ``wait`` ends when simulated time has moved on by ``seconds``, however fast the simulator runs.
    """

    def __init__(self) -> None:
        self._now_ms: int | None = None
        self.speed = 1.0

    def tick(self, time_ms: int, speed: float) -> bool:
        if self._now_ms is None or time_ms > self._now_ms:
            self._now_ms = time_ms
        self.speed = speed
        return True

    def now_ms(self) -> int:
        return self._now_ms if self._now_ms is not None else time.time_ns() // 1_000_000

    def ticked(self) -> bool:
        """Whether a tick has come: before it, the time read is the wall clock's, not the simulation's."""
        return self._now_ms is not None

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        until = self.now_ms() + seconds * 1000
        while self.now_ms() < until:
            if stop.wait(0.01):  # wall time: how often to look, not how long to wait
                return True
        return stop.is_set()
