"""Stillness past the resident's usual limit: the ``inactivity`` alert, the one that finds a fall.

The watcher owns the models of how long stillness usually lasts behind four questions: :meth:`Stillness.learn_gap`
(a stillness has ended), :meth:`Stillness.deadline` (when stillness since a moment becomes unusual),
:meth:`Stillness.limit` and :meth:`Stillness.usual` (what a carer is told). Two models answer them together: the
home's, by half-hour of the local day and context (:class:`analytics.elapsed.ElapsedModel`), and the same kept
apart by the place the stillness began (:class:`analytics.place_elapsed.PlaceElapsed`): after the kitchen at 15:00
stillness is short, after the armchair long, and a place's limit is the home's until the place has shown enough
days of its own. Carers' false alarms widen the limit of that place around that time of day, within bounds
(:meth:`Stillness.learn_outcome`); what they changed is kept for the baseline page.

Uncertainty escalates, it never suppresses: whatever the devices' health (hub offline, devices unavailable,
"can't see"), stillness past the limit is alerted, counted from the last activity seen, and the message says
what is and is not known.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from analytics.alerts import AlertKind, Outcome, Severity
from analytics.elapsed import BED, CHAIR, CONTEXTS, SLOT_MS, SLOTS, ElapsedModel
from analytics.localtime import MINUTE_MS, duration, iso
from analytics.place_elapsed import PlaceElapsed
from analytics.watch.base import STILLNESS, Day, DetectorConfig, HomeState, Reading

_BLIND_CAUSE = {"hub_offline": " (the home hub is offline)",
                "unavailable": " (the hub reports the sensors unavailable)"}


def default_limits(has_bed_pad: bool) -> npt.NDArray[np.float64]:
    """Stillness limits before anything is learned: generous, so a new home does not cry wolf in week one."""
    hours = (np.arange(SLOTS) + 0.5) / 2
    night = (hours >= 22) | (hours < 8)
    up = np.where(night, 90.0 if has_bed_pad else 10 * 60.0, 3 * 60.0)  # out of bed at night: up briefly
    bed = np.where(night, 12 * 60.0, 4 * 60.0)
    chair = np.where(night, 8 * 60.0, 4 * 60.0)
    return np.stack([up, bed, chair])


def _half_hour(slot: int) -> str:
    return f"{slot // 2:02d}:{30 * (slot % 2):02d}"


class Stillness:
    name: ClassVar[str] = "stillness"
    version: ClassVar[int] = 2
    feedback_kept: ClassVar[int] = 20  # what carers' feedback changed, for the baseline page: the latest

    def __init__(self, config: DetectorConfig) -> None:
        self.has_bed_pad = False
        self.ceiling_min = config.inactivity_ceiling_min
        self.model = ElapsedModel(default_limits(False), quantile=config.inactivity_quantile,
                                  margin=config.inactivity_margin, prior_days=config.inactivity_prior_days,
                                  floor_min=config.inactivity_floor_min, ceiling_min=config.inactivity_ceiling_min)
        self.places = PlaceElapsed(quantile=config.inactivity_quantile, margin=config.place_margin,
                                   prior_days=config.place_prior_days)
        self.feedback: list[dict[str, Any]] = []
        self._deadline: tuple[tuple[Any, ...], int] | None = None  # (what it rests on, the deadline)

    # --- The models' seam ---------------------------------------------------------------------------------------

    def learn_gap(self, home: HomeState, context: int, start_ms: int, end_ms: int, place: str | None = None) -> None:
        """A stillness from ``start_ms`` to ``end_ms`` (event time) in ``context``, begun at ``place``, has ended."""
        start, end = home.local.local_ms(start_ms), home.local.local_ms(end_ms)
        self.model.learn_gap(context, start, end)
        self.places.learn_gap(context, place, start, end)

    def deadline(self, home: HomeState, context: int, since_ms: int, place: str | None = None) -> int:
        """The moment stillness since ``since_ms``, begun at ``place``, becomes unusual."""
        return home.local.utc_ms(self.places.deadline_local(context, place, home.local.local_ms(since_ms),
                                                            self.model.limits_min[context], self.ceiling_min))

    def limit(self, home: HomeState, context: int, at_ms: int, place: str | None = None) -> float:
        """The stillness (minutes) past which an alert is raised, at this moment, for stillness begun at ``place``."""
        local = home.local.local_ms(at_ms)
        return min(self.places.limit_min(context, place, local, self.model.limit_min(context, local)),
                   self.ceiling_min)

    def learn_outcome(self, home: HomeState, kind: AlertKind, outcome: Outcome, details: dict[str, Any],
                      raised_at_ms: int, alert_id: int | None = None, retract: bool = False) -> None:
        """A carer said what an alert was. A false alarm widens the limit of stillness begun at that place around
        that time of day (within bounds); anything else (a fall, unwell ...) changes nothing. ``retract``: a carer
        corrected a false alarm, and the widening is taken back."""
        if kind is not AlertKind.INACTIVITY or outcome is not Outcome.FALSE_ALARM:
            return
        context = CONTEXTS.index(details["context"]) if details.get("context") in CONTEXTS else home.context
        place = details.get("place") or details.get("room")
        before = self.limit(home, context, raised_at_ms, place)
        self.places.widen(context, place, home.local.local_ms(raised_at_ms), narrow=retract)
        after = self.limit(home, context, raised_at_ms, place)
        slot = (home.local.local_ms(raised_at_ms) // SLOT_MS) % SLOTS
        around = [(slot + k) % SLOTS for k in range(-self.places.widen_slots, self.places.widen_slots + 1)]
        self.feedback = [*self.feedback, {
            "at": iso(raised_at_ms), "alert_id": alert_id, "kind": str(kind), "context": CONTEXTS[context],
            "room": place, "half_hours": [_half_hour(h) for h in around],
            "limit_before_min": round(before, 1), "limit_after_min": round(after, 1)}][-self.feedback_kept:]
        self._deadline = None

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
            "feedback": list(self.feedback),
            "half_hours": [_half_hour(h) for h in range(SLOTS)],
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
                self.learn_gap(home, before.context, start, t, before.room or before.device)
        where = f" in the {reading.info.room}" if reading.info.room else ""
        home.clear(AlertKind.INACTIVITY, t, f"Activity again at {home.clock(t)}{where}.")

    def next_wake_ms(self, home: HomeState) -> int | None:
        if home.last_activity_ms is None or home.out_since_ms is not None or home.is_open(*STILLNESS):
            return None  # the devices' health holds nothing back: stillness counts from the last activity seen
        place = home.last_room or home.last_device
        key = (home.last_activity_ms, home.context, self.model.days_learned, self.has_bed_pad, place)
        if self._deadline is None or self._deadline[0] != key:
            self._deadline = (key, self.deadline(home, home.context, home.last_activity_ms, place))
        return self._deadline[1]

    def advance(self, home: HomeState, t: int) -> None:
        due = self.next_wake_ms(home)
        if due is None or due > t or home.last_activity_ms is None or home.away(t):
            return
        since, context, place = home.last_activity_ms, home.context, home.last_room or home.last_device
        usual = self.usual(home, context, due)
        where = {BED: " The bed pad says in bed.", CHAIR: " The chair pad says in the chair."}.get(context, "")
        usual_text = (f" Usually there is activity within {duration(usual)} at this time of day."
                      if usual is not None else " No usual pattern learned yet at this time of day.")
        details: dict[str, Any] = {"since": since, "limit_min": round((due - since) / MINUTE_MS),
                                   "usual_min": usual, "context": CONTEXTS[context], "room": home.last_room,
                                   "place": place}
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
