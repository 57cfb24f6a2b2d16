"""Devices that stopped reporting: device health, kept apart from the person's safety.

Every report counts here, heartbeats and temperatures included (they say the device is alive, not that anyone
moved). Each device learns the gaps between its own reports; it is silent once the current gap is longer than
its usual longest, with a margin (a PIR re-sends its state about every 50 minutes, a plug every few seconds).

With ``min_gaps``, only devices *learned* to report periodically are watched, since many sensors report only on
change, and their silence proves nothing. Periodic means the device keeps reporting while nothing in the home
moves: over ``regular_after_min`` at least, no gap between its reports longer than ``regular_max_min``, and
reports during at least ``quiet_proofs`` separate stretches of the home's stillness of ``quiet_proof_min`` or
more (nights, say). Reporting often while people are busy is not enough: a PIR in a busy home does that.
A longer gap starts the learning again, and a watched device silent for ``forget_after_min`` (removed, or dead)
stops being watched, so it no longer counts towards "every watched device is silent".
Time comes with the reports and with :meth:`SilenceWatch.advance`; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from analytics.gaps import GapModel

MINUTE_MS = 60_000


class _GapSettings(TypedDict):
    """What every device's gap model shares, passed to :class:`GapModel` by keyword."""

    default_min: float
    margin: float
    floor_min: float
    ceiling_min: float


@dataclass(frozen=True, slots=True)
class Silence:
    device: str
    last_report_ms: int
    silent_at_ms: int  # the moment the gap crossed the device's limit, not when someone looked
    limit_min: float


@dataclass(slots=True)
class _Rhythm:
    """Evidence that one device reports periodically, since its last gap longer than the bound."""

    since_ms: int
    quiet_stretches: int = 0
    last_stretch_ms: int | None = None  # the start of the last stillness it reported in (counted once)


class SilenceWatch:
    def __init__(self, *, default_min: float = 180.0, margin: float = 2.0, floor_min: float = 60.0,
                 ceiling_min: float = 26 * 60.0, min_gaps: int = 0, regular_max_min: float = 3 * 60.0,
                 regular_after_min: float = 48 * 60.0, quiet_proof_min: float = 120.0, quiet_proofs: int = 2,
                 forget_after_min: float = 48 * 60.0) -> None:
        self.margin = margin
        self.min_gaps = min_gaps
        self.regular_max_ms = round(regular_max_min * MINUTE_MS)
        self.regular_after_ms = round(regular_after_min * MINUTE_MS)  # a rhythm shows over days and nights
        self.quiet_proof_ms = round(quiet_proof_min * MINUTE_MS)
        self.quiet_proofs = quiet_proofs
        self.forget_after_ms = round(forget_after_min * MINUTE_MS)
        self._deadlines: dict[str, int] = {}  # watched devices still reporting -> when they would fall silent
        self._settings: _GapSettings = {"default_min": default_min, "margin": margin, "floor_min": floor_min,
                          "ceiling_min": ceiling_min}
        self._models: dict[str, GapModel] = {}
        self._rhythms: dict[str, _Rhythm] = {}
        self._last: dict[str, int] = {}
        self._silent: set[str] = set()
        self._limits: dict[str, float] = {}
        self._watched: dict[str, bool] = {}

    def report(self, device: str, time_ms: int, still_since_ms: int | None = None) -> Silence | None:
        """A report from ``device``; ``still_since_ms``: nothing in the home has moved since then (None when
        something just did, or it is not known). Returns the silence it ends, if it was silent."""
        model = self._models.get(device)
        if model is None:
            model = self._models[device] = GapModel(slots=1, quantile=0.99, prior_weight=20, **self._settings)
        last = self._last.get(device)
        if last is not None and time_ms <= last:
            return None
        ended = None
        if last is not None and device in self._silent:
            ended = self._silence(device, last)
            self._silent.discard(device)
        elif last is not None:
            model.learn_one(0, (time_ms - last) / MINUTE_MS)  # a silence is not a usual gap: not learned
        self._last[device] = time_ms
        rhythm = self._rhythm(device, time_ms, last, still_since_ms)
        learned = model.known(0)
        if device not in self._limits or learned % 16 == 0:  # the limit moves slowly: refresh now and then
            self._limits[device] = model.threshold_min(0)
        self._watched[device] = self.min_gaps == 0 or (
            learned >= self.min_gaps and time_ms - rhythm.since_ms >= self.regular_after_ms
            and rhythm.quiet_stretches >= self.quiet_proofs)
        if self._watched[device]:
            self._deadlines[device] = time_ms + round(self._limits[device] * MINUTE_MS)
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
        for device in self._silent:
            if self._watched[device] and now_ms - self._last[device] >= self.forget_after_ms:
                self._watched[device] = False  # removed or dead: no longer one of the home's regular reporters
        return sorted(found, key=lambda s: s.silent_at_ms)

    def next_wake_ms(self) -> int | None:
        """The earliest moment a device still reporting could become silent."""
        return min(self._deadlines.values()) if self._deadlines else None

    def any_watched(self) -> bool:
        return any(self._watched.values())

    def watched(self, device: str) -> bool:
        """Whether a silence of this device would be noticed: it reports periodically enough to tell."""
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

    def _rhythm(self, device: str, time_ms: int, last: int | None, still_since_ms: int | None) -> _Rhythm:
        rhythm = self._rhythms.get(device)
        if rhythm is None or last is None or time_ms - last > self.regular_max_ms:
            rhythm = self._rhythms[device] = _Rhythm(time_ms)  # a long gap: the rhythm is learned again
        if still_since_ms is not None and time_ms - still_since_ms >= self.quiet_proof_ms \
                and still_since_ms != rhythm.last_stretch_ms:
            rhythm.quiet_stretches += 1  # it reported while nothing in the home moved
            rhythm.last_stretch_ms = still_since_ms
        return rhythm

    def _silence(self, device: str, last_ms: int) -> Silence:
        limit = self._limits[device]
        return Silence(device, last_ms, last_ms + round(limit * MINUTE_MS), limit)
