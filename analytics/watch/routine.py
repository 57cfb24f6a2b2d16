"""The day's routine: not up by the usual time (``not_up``), no meal by the usual time (``no_meals``).

Both are learned from the days as they close (:mod:`analytics.firsts`): a day the resident was away, or the first
day seen after its routine began, is neither judged nor learned from. The devices' health holds neither back.
"""

from __future__ import annotations

from typing import Any, ClassVar

from analytics.alerts import AlertKind, Outcome, Severity
from analytics.firsts import FirstOfDay
from analytics.localtime import DAY_MS, MINUTE_MS
from analytics.watch.base import STILLNESS, Day, DetectorConfig, HomeState, Reading, device_name, first_due, hhmm

NOT_UP_STEP_MIN = 30.0
NOT_UP_LATER_MAX_MIN = 120.0


class Routine:
    name: ClassVar[str] = "routine"
    version: ClassVar[int] = 2

    def __init__(self, config: DetectorConfig) -> None:
        self.day_start_min = config.day_start_min
        self.up_time = FirstOfDay(default_min=config.not_up_default_min, quantile=0.97, margin_min=60)
        self.meal_time = FirstOfDay(default_min=config.first_meal_default_min, quantile=0.97, margin_min=90,
                                    ceiling_min=15 * 60)
        self.not_up_later_min = 0.0  # carers' false alarms on not_up: the deadline moves this much later

    def learn_outcome(self, home: HomeState, kind: AlertKind, outcome: Outcome, details: dict[str, Any],
                      raised_at_ms: int, alert_id: int | None = None, retract: bool = False) -> None:
        """A false ``not_up`` moves the getting-up deadline 30 minutes later, at most 2 hours in all (``retract``:
        a carer corrected a false alarm, and the move is taken back)."""
        if kind is AlertKind.NOT_UP and outcome is Outcome.FALSE_ALARM:
            step = -NOT_UP_STEP_MIN if retract else NOT_UP_STEP_MIN
            self.not_up_later_min = min(max(self.not_up_later_min + step, 0.0), NOT_UP_LATER_MAX_MIN)

    def _not_up_after_min(self) -> float:
        return self.up_time.deadline_min() + self.not_up_later_min

    def baseline(self, home: HomeState) -> dict[str, Any]:
        return {
            "up_by_min": self.up_time.usual_min() if self.up_time.days >= 5 else None,
            "not_up_after_min": float(self._not_up_after_min()),
            "not_up_later_min": self.not_up_later_min,
            "first_meal_by_min": self.meal_time.usual_min() if self.meal_time.days >= 5 else None,
            "no_meals_after_min": float(self.meal_time.deadline_min()) if home.has_meal_sensors else None,
        }

    def observe(self, home: HomeState, reading: Reading) -> None:
        if reading.change is None:
            return
        t, info = reading.time_ms, reading.info
        where = f" in the {info.room}" if info.room else ""
        home.clear(AlertKind.NOT_UP, t, f"Activity again at {home.clock(t)}{where}.")
        day = home.day
        if day is None or reading.before.away:
            return
        after_start = home.local.minute_of_day(t) >= self.day_start_min or home.local.day(t) > day.index
        if day.up_ms is None and after_start and info.room != "bedroom" and info.role != "bed":
            day.up_ms = t
        if day.meal_ms is None and after_start and home.is_meal(info):
            day.meal_ms = t
            home.clear(AlertKind.NO_MEALS, t, f"Kitchen activity at {home.clock(t)} ({device_name(reading.device)}).")

    def next_wake_ms(self, home: HomeState) -> int | None:
        return first_due([self._not_up_due(home), self._meal_due(home)])

    def advance(self, home: HomeState, t: int) -> None:
        if home.away(t):
            return
        self._check_not_up(home, t)
        self._check_meals(home, t)

    def day_closed(self, home: HomeState, day: Day, closed_at: int) -> None:
        if day.away or day.partial:
            return
        local = home.local
        if day.up_ms is not None:
            self.up_time.learn(local.minute_of_day(day.up_ms) + (local.day(day.up_ms) - day.index) * 1440)
        if day.meal_ms is not None and not day.went_out:
            self.meal_time.learn(local.minute_of_day(day.meal_ms))

    def _not_up_due(self, home: HomeState) -> int | None:
        day = home.day
        if day is None or day.up_ms is not None or day.away or day.partial or home.out_since_ms is not None \
                or home.is_open(*STILLNESS):
            return None
        return home.local.utc_ms(day.index * DAY_MS + round(self._not_up_after_min() * MINUTE_MS))

    def _check_not_up(self, home: HomeState, t: int) -> None:
        due = self._not_up_due(home)
        if due is None or due > t:
            return
        usual = self.up_time.usual_min()
        usual_text = f" Usually up by {hhmm(usual)}." if usual is not None and self.up_time.days >= 5 else ""
        last = home.last_activity_ms
        seen = f" Last activity {home.clock(last, due)}{home.room_text()}." if last is not None else ""
        blind: dict[str, Any] = {}
        if home.blind_since_ms is not None:
            blind = {"blind": True, "blind_reason": home.blind_reason}
        unseen = " The sensors may have stopped: the home cannot be seen." if blind else ""
        home.raise_(AlertKind.NOT_UP, due, Severity.URGENT,
                    f"Not up yet at {home.clock(due)}: no activity outside the bedroom this morning.{seen}"
                    f"{usual_text}{unseen}{home.silent_note()}", usual_min=usual, **blind)

    def _meal_due(self, home: HomeState) -> int | None:
        day = home.day
        if day is None or not home.has_meal_sensors or day.meal_ms is not None or day.up_ms is None \
                or day.went_out or day.away or day.partial or home.out_since_ms is not None:
            return None
        return home.local.utc_ms(day.index * DAY_MS + round(self.meal_time.deadline_min() * MINUTE_MS))

    def _check_meals(self, home: HomeState, t: int) -> None:
        due = self._meal_due(home)
        if due is None or due > t or home.is_open(AlertKind.NO_MEALS):
            return
        usual = self.meal_time.usual_min()
        usual_text = f" Usually by {hhmm(usual)}." if usual is not None and self.meal_time.days >= 5 else ""
        up = home.clock(home.day.up_ms) if home.day and home.day.up_ms else "?"
        home.raise_(AlertKind.NO_MEALS, due, Severity.WARNING,
                    f"No kitchen activity (fridge, kettle, cupboards) today by {home.clock(due)}, though up since "
                    f"{up}.{usual_text}", usual_min=usual)
