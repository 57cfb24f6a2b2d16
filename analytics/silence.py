"""Devices that stopped reporting: device health, kept apart from the person's safety.

Every report counts here, heartbeats and temperatures included (they say the device is alive, not that anyone
moved). Each device learns the gaps between its own reports; it is silent once the current gap is longer than
its usual longest, with a margin (a PIR re-sends its state about every 50 minutes, a plug every few seconds).
With ``min_gaps``, only devices that have shown a regular rhythm are watched: at least ``min_gaps`` gaps learned
and no gap longer than ``regular_max_min``, over two days and nights at least. Real zigbee devices re-send
their state at least hourly; a sensor in a recording without heartbeats (used when someone is about, not at
night) is not "silent" at night.
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
                 ceiling_min: float = 26 * 60.0, min_gaps: int = 0,
                 regular_max_min: float = 3 * 60.0, regular_after_min: float = 48 * 60.0) -> None:
        self.margin = margin
        self.min_gaps = min_gaps
        self.regular_max_min = regular_max_min
        self.regular_after_ms = round(regular_after_min * MINUTE_MS)  # a rhythm shows over days and nights
        self._first: dict[str, int] = {}
        self.latest_watched_ms = 0  # the last report from a device known to report regularly
        self._deadlines: dict[str, int] = {}  # watched devices still reporting -> when they would fall silent
        self._settings = {"default_min": default_min, "margin": margin, "floor_min": floor_min,
                          "ceiling_min": ceiling_min}
        self._models: dict[str, GapModel] = {}
        self._last: dict[str, int] = {}
        self._silent: set[str] = set()
        self._limits: dict[str, float] = {}
        self._watched: dict[str, bool] = {}

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
        if last is None:
            self._first[device] = time_ms
        if last is None or time_ms > last:
            self._last[device] = time_ms
            learned = model.known(0)
            if device not in self._limits or learned % 16 == 0:  # the limit moves slowly: refresh now and then
                self._limits[device] = model.threshold_min(0)
                self._watched[device] = self._is_regular(model, learned, time_ms - self._first[device])
            if self._watched[device]:
                self._deadlines[device] = time_ms + round(self._limits[device] * MINUTE_MS)
                self.latest_watched_ms = max(self.latest_watched_ms, time_ms)
            else:
                self._deadlines.pop(device, None)
        return ended

    def advance(self, now_ms: int) -> list[Silence]:
        """Devices that have become silent by ``now_ms`` (each once, until it reports again)."""
        due = [d for d, deadline in self._deadlines.items() if deadline <= now_ms]
        found = []
        for device in due:
            del self._deadlines[device]
            self._silent.add(device)
            found.append(self._silence(device, self._last[device]))
        return sorted(found, key=lambda s: s.silent_at_ms)

    def next_wake_ms(self) -> int | None:
        """The earliest moment a device still reporting could become silent."""
        return min(self._deadlines.values()) if self._deadlines else None

    def any_watched(self) -> bool:
        return any(self._watched.values())

    def watched(self, device: str) -> bool:
        """Whether a silence of this device would be noticed: it reports regularly enough to tell."""
        return self._watched.get(device, False)

    def silent(self) -> frozenset[str]:
        return frozenset(self._silent)

    def all_silent(self) -> bool:
        """Every watched device is silent (and there is at least one): nothing in the home can be seen."""
        return not self._deadlines and any(self._watched.get(d, False) for d in self._silent)

    def last_reports(self) -> dict[str, int]:
        return {d: t for d, t in self._last.items() if self.watched(d)}

    def silent_since_ms(self) -> int:
        """When the last watched device fell silent."""
        return max(self._silence(d, self._last[d]).silent_at_ms for d in self._silent if self.watched(d))

    def _is_regular(self, model: GapModel, learned: int, span_ms: int) -> bool:
        if self.min_gaps == 0:
            return True
        if learned < self.min_gaps or span_ms < self.regular_after_ms:
            return False
        longest = model.quantile_min(0, 1.0)  # a heartbeat bounds every gap; activity-only reports leave nights
        return longest is not None and longest <= self.regular_max_min

    def _silence(self, device: str, last_ms: int) -> Silence:
        limit = self._limits[device]
        return Silence(device, last_ms, last_ms + round(limit * MINUTE_MS), limit)
