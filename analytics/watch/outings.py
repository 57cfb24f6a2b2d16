"""Out of the home: too long out (``long_absence``) and the front door at night (``night_exit``).

Out means a door to outside, then nothing inside; the door again after a while is the return. How long the
resident usually stays out is learned by time of day (:mod:`analytics.gaps`); whether the door at night is usual
for them is learned night by night.
"""

from __future__ import annotations

from typing import ClassVar

from analytics.alerts import AlertKind, Severity
from analytics.gaps import GapModel
from analytics.localtime import MINUTE_MS, duration
from analytics.watch.base import OUTSIDE_DOORS, Day, DetectorConfig, HomeState, Reading, first_due


class Outings:
    name: ClassVar[str] = "outings"
    version: ClassVar[int] = 1

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.absence = GapModel(slots=24, quantile=0.97, margin=1.5, default_min=config.long_absence_default_min,
                                floor_min=2 * 60, ceiling_min=24 * 60, prior_weight=5)
        self.nights_learned = 0
        self.nights_with_exit = 0
        self.last_door_ms: int | None = None
        self.return_doors_until_ms = 0
        self.night_exit_ms: int | None = None

    def observe(self, home: HomeState, reading: Reading) -> None:
        if reading.change is None:
            return
        if reading.info.role in OUTSIDE_DOORS:
            self._door(home, reading)
        elif home.out_since_ms is not None:
            self._back_inside(home, reading.time_ms, learn=reading.before.activity_ms is not None
                              and not reading.before.away)

    def next_wake_ms(self, home: HomeState) -> int | None:
        grace = None
        if self.night_exit_ms is not None and home.is_open(AlertKind.NIGHT_EXIT) \
                and home.open[(AlertKind.NIGHT_EXIT, "")].severity < Severity.URGENT:
            grace = self.night_exit_ms + round(self.config.night_exit_grace_min * MINUTE_MS)
        return first_due([self._absence_due(home), grace])

    def advance(self, home: HomeState, t: int) -> None:
        if home.away(t):
            return
        self._check_absence(home, t)
        self._check_night_exit(home, t)

    def day_closed(self, home: HomeState, day: Day, closed_at: int) -> None:
        if day.away or day.partial:
            return
        self.nights_learned += 1
        self.nights_with_exit += day.night_door

    def _door(self, home: HomeState, reading: Reading) -> None:
        c, t = self.config, reading.time_ms
        if home.out_since_ms is not None and self.last_door_ms is not None \
                and t - self.last_door_ms >= c.out_return_min * MINUTE_MS:
            self._back_inside(home, t, learn=True)  # the door again after a while out: the return
            self.return_doors_until_ms = t + round(c.out_return_min * MINUTE_MS)
        elif t >= self.return_doors_until_ms and home.out_since_ms is None:
            home.out_since_ms = t
            if home.is_night(t) and home.day is not None and not home.away(t):
                self._night_exit(home, reading)
        self.last_door_ms = t

    def _back_inside(self, home: HomeState, t: int, *, learn: bool) -> None:
        since = home.out_since_ms
        assert since is not None
        home.out_since_ms = None
        if home.day is not None:
            home.day.went_out = True
        if learn and not home.is_open(AlertKind.LONG_ABSENCE):
            self.absence.learn_one(home.local.minute_of_day(since), (t - since) / MINUTE_MS)
        away_text = f"Back at {home.clock(t)} after {duration((t - since) / MINUTE_MS)} out."
        home.clear(AlertKind.LONG_ABSENCE, t, away_text)
        if self.night_exit_ms is not None:
            self.night_exit_ms = None
            home.clear(AlertKind.NIGHT_EXIT, t, away_text)

    def _night_exit(self, home: HomeState, reading: Reading) -> None:
        c, t = self.config, reading.time_ms
        if home.day is not None:
            home.day.night_door = True
        if self.nights_learned >= 7 and self.nights_with_exit / self.nights_learned > c.night_exit_usual_share:
            return
        self.night_exit_ms = t
        before = reading.before
        home.raise_(AlertKind.NIGHT_EXIT, t, Severity.WARNING,
                    f"Front door opened at {home.clock(t)}, at night"
                    f"{home.last_seen_text(t, before.activity_ms, before.room)}.", opened_at=t)
        if home.day is not None:
            home.day.went_out = True

    def _absence_due(self, home: HomeState) -> int | None:
        since = home.out_since_ms
        if since is None or home.is_open(AlertKind.LONG_ABSENCE):
            return None
        return since + round(self.absence.threshold_min(home.local.minute_of_day(since)) * MINUTE_MS)

    def _check_absence(self, home: HomeState, t: int) -> None:
        due = self._absence_due(home)
        since = home.out_since_ms
        if due is None or due > t or since is None:
            return
        usual = self.absence.usual_min(home.local.minute_of_day(since))
        usual_text = (f" When going out at this time of day, usually back within {duration(usual)}."
                      if usual is not None else "")
        home.raise_(AlertKind.LONG_ABSENCE, due, Severity.WARNING,
                    f"Out since {home.clock(since, due)} (front door), {duration((due - since) / MINUTE_MS)} ago, "
                    f"and no activity inside since.{usual_text}", since=since, usual_min=usual)

    def _check_night_exit(self, home: HomeState, t: int) -> None:
        opened = self.night_exit_ms
        key = (AlertKind.NIGHT_EXIT, "")
        if opened is None or key not in home.open or home.open[key].severity >= Severity.URGENT:
            return
        due = opened + round(self.config.night_exit_grace_min * MINUTE_MS)
        if due <= t and home.out_since_ms is not None:
            home.raise_(AlertKind.NIGHT_EXIT, due, Severity.URGENT,
                        f"Front door opened at {home.clock(opened)}, at night, and nobody has been seen inside "
                        f"since ({duration((due - opened) / MINUTE_MS)}).", opened_at=opened)
