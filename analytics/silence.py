"""Devices that stopped reporting: device health, kept apart from the person's safety.

Every report counts here, heartbeats and temperatures included (they say the device is alive, not that anyone
moved). Each device learns the gaps between its own reports; it is silent once the current gap is longer than
its usual longest, with a margin (a PIR re-sends its state about every 50 minutes, a plug every few seconds).
Time comes with the reports and with :meth:`SilenceWatch.advance`; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from analytics.gaps import GapModel

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Silence:
    device: str
    last_report_ms: int
    silent_at_ms: int  # the moment the gap crossed the device's limit, not when someone looked
    limit_min: float


class SilenceWatch:
    def __init__(self, *, default_min: float = 180.0, margin: float = 2.0, floor_min: float = 60.0,
                 ceiling_min: float = 26 * 60.0) -> None:
        self._settings = {"default_min": default_min, "margin": margin, "floor_min": floor_min,
                          "ceiling_min": ceiling_min}
        self._models: dict[str, GapModel] = {}
        self._last: dict[str, int] = {}
        self._silent: set[str] = set()

    def report(self, device: str, time_ms: int) -> Silence | None:
        """A report from ``device``; returns the silence it ends, if it was silent."""
        model = self._models.get(device)
        if model is None:
            model = self._models[device] = GapModel(slots=1, quantile=0.99, prior_weight=20, **self._settings)
        last = self._last.get(device)
        ended = None
        if last is not None and time_ms > last:
            if device in self._silent:
                ended = self._silence(device, last)
                self._silent.discard(device)
            else:
                model.learn_one(0, (time_ms - last) / MINUTE_MS)  # a silence is not a usual gap: not learned
        if last is None or time_ms > last:
            self._last[device] = time_ms
        return ended

    def advance(self, now_ms: int) -> list[Silence]:
        """Devices that have become silent by ``now_ms`` (each once, until it reports again)."""
        found = []
        for device, last in self._last.items():
            if device not in self._silent and now_ms >= self._deadline(device, last):
                self._silent.add(device)
                found.append(self._silence(device, last))
        return sorted(found, key=lambda s: s.silent_at_ms)

    def next_wake_ms(self) -> int | None:
        """The earliest moment a device still reporting could become silent."""
        pending = [self._deadline(d, last) for d, last in self._last.items() if d not in self._silent]
        return min(pending) if pending else None

    def _deadline(self, device: str, last_ms: int) -> int:
        return last_ms + round(self._models[device].threshold_min(0) * MINUTE_MS)

    def _silence(self, device: str, last_ms: int) -> Silence:
        limit = self._models[device].threshold_min(0)
        return Silence(device, last_ms, last_ms + round(limit * MINUTE_MS), limit)
