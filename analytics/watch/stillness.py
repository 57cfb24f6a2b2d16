"""Stillness past the resident's usual limit: the ``inactivity`` alert, the one that finds a fall.

The watcher owns the model of how long stillness usually lasts (today :class:`analytics.elapsed.ElapsedModel`,
by half-hour of the local day and context) behind four questions: :meth:`Stillness.learn_gap` (a stillness has
ended), :meth:`Stillness.deadline` (when stillness since a moment becomes unusual), :meth:`Stillness.limit` and
:meth:`Stillness.usual` (what a carer is told). Whatever answers them, the rest stays as it is.

Uncertainty escalates, it never suppresses: whatever the devices' health (hub offline, devices unavailable,
"can't see"), stillness past the limit is alerted, counted from the last activity seen, and the message says
what is and is not known.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from analytics.alerts import AlertKind, Severity
from analytics.elapsed import BED, CHAIR, CONTEXTS, SLOTS, ElapsedModel
from analytics.localtime import duration
from analytics.watch.base import STILLNESS, Day, DetectorConfig, HomeState, Reading

_BLIND_CAUSE = {"hub_offline": " (the home hub is offline)",
                "unavailable": " (the hub reports the sensors unavailable)"}


def default_limits(has_bed_pad: bool) -> np.ndarray:
    """Stillness limits before anything is learned: generous, so a new home does not cry wolf in week one."""
    hours = (np.arange(SLOTS) + 0.5) / 2
    night = (hours >= 22) | (hours < 8)
    up = np.where(night, 90.0 if has_bed_pad else 10 * 60.0, 3 * 60.0)  # out of bed at night: up briefly
    bed = np.where(night, 12 * 60.0, 4 * 60.0)
    chair = np.where(night, 8 * 60.0, 4 * 60.0)
    return np.stack([up, bed, chair])


class Stillness:
    name: ClassVar[str] = "stillness"
    version: ClassVar[int] = 1

    def __init__(self, config: DetectorConfig) -> None:
        self.has_bed_pad = False
        self.model = ElapsedModel(default_limits(False), quantile=config.inactivity_quantile,
                                  margin=config.inactivity_margin, prior_days=config.inactivity_prior_days,
                                  floor_min=config.inactivity_floor_min, ceiling_min=config.inactivity_ceiling_min)
        self._deadline: tuple[tuple[int, int, int, bool], int] | None = None  # (what it rests on, the deadline)

    # --- The model's seam ---------------------------------------------------------------------------------------

    def learn_gap(self, home: HomeState, context: int, start_ms: int, end_ms: int) -> None:
        """A stillness from ``start_ms`` to ``end_ms`` (event time) in ``context`` has ended with activity."""
        self.model.learn_gap(context, home.local.local_ms(start_ms), home.local.local_ms(end_ms))

    def deadline(self, home: HomeState, context: int, since_ms: int) -> int:
        """The moment stillness since ``since_ms`` becomes unusual."""
        return home.local.utc_ms(self.model.deadline_local(context, home.local.local_ms(since_ms)))

    def limit(self, home: HomeState, context: int, at_ms: int) -> float:
        """The stillness (minutes) past which an alert is raised, at this moment."""
        return self.model.limit_min(context, home.local.local_ms(at_ms))

    def usual(self, home: HomeState, context: int, at_ms: int) -> float | None:
        """What a carer is told is usual at this moment (minutes), or None before anything is learned."""
        return self.model.usual(context, home.local.local_ms(at_ms))

    @property
    def days_learned(self) -> int:
        return self.model.days_learned

    def baseline(self) -> dict[str, Any]:
        model = self.model
        return {
            "days_learned": int(model.days_learned),
            "half_hours": [f"{h // 2:02d}:{30 * (h % 2):02d}" for h in range(SLOTS)],
            "stillness": {
                name: {"limit_min": [round(float(v), 1) for v in model.limits_min[i]],
                       "usual_min": [None if np.isnan(v) else round(float(v), 1) for v in model.usual_min[i]]}
                for i, name in enumerate(CONTEXTS)},
        }

    # --- The watcher --------------------------------------------------------------------------------------------

    def observe(self, home: HomeState, reading: Reading) -> None:
        if home.has_bed_pad and not self.has_bed_pad:
            self.has_bed_pad = True
            self.model.set_defaults(default_limits(True))
        if reading.change is None:
            return
        t, before = reading.time_ms, reading.before
        if before.activity_ms is not None and not before.away and before.out_since_ms is None:
            start = max(before.activity_ms, home.visible_since_ms)  # what could not be seen is not learned
            if t > start:
                self.learn_gap(home, before.context, start, t)
        where = f" in the {reading.info.room}" if reading.info.room else ""
        home.clear(AlertKind.INACTIVITY, t, f"Activity again at {home.clock(t)}{where}.")

    def next_wake_ms(self, home: HomeState) -> int | None:
        if home.last_activity_ms is None or home.out_since_ms is not None or home.is_open(*STILLNESS):
            return None  # the devices' health holds nothing back: stillness counts from the last activity seen
        key = (home.last_activity_ms, home.context, self.model.days_learned, self.has_bed_pad)
        if self._deadline is None or self._deadline[0] != key:
            self._deadline = (key, self.deadline(home, home.context, home.last_activity_ms))
        return self._deadline[1]

    def advance(self, home: HomeState, t: int) -> None:
        due = self.next_wake_ms(home)
        if due is None or due > t or home.last_activity_ms is None or home.away(t):
            return
        since, context = home.last_activity_ms, home.context
        usual = self.usual(home, context, due)
        where = {BED: " The bed pad says in bed.", CHAIR: " The chair pad says in the chair."}.get(context, "")
        usual_text = (f" Usually there is activity within {duration(usual)} at this time of day."
                      if usual is not None else " No usual pattern learned yet at this time of day.")
        details: dict[str, Any] = {"since": since, "limit_min": round(self.limit(home, context, due)),
                                   "usual_min": usual, "context": CONTEXTS[context], "room": home.last_room}
        still = f"No activity since {home.clock(since, due)}{home.room_text()}.{where}"
        if home.blind_since_ms is not None:  # escalated all the same, saying what is not known
            heard = home.last_report_ms if home.last_report_ms is not None else since
            cause = _BLIND_CAUSE.get(home.blind_reason or "", "")
            still = (f"No sensor has reported since {home.clock(heard, due)}{cause}: the resident may be still, or "
                     f"the sensors have stopped. {still}")
            details |= {"blind": True, "blind_reason": home.blind_reason, "last_report": heard}
        home.raise_(AlertKind.INACTIVITY, due, Severity.URGENT, f"{still}{usual_text}{home.silent_note()}",
                    **details)

    def day_closed(self, home: HomeState, day: Day, closed_at: int) -> None:
        """Stillness is learned as it ends, not by the day."""
