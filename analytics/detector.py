"""One home's detectors: everything that turns its sensors' readings into alerts, learned one event at a time.

The gateway and ``telecare analyse`` feed the same object: :meth:`HomeDetector.observe` for each reading (in
event time), :meth:`HomeDetector.hub` and :meth:`HomeDetector.availability` for the hub or a device going off or
on line, and :meth:`HomeDetector.advance` to tell it the time when nothing arrives; :meth:`HomeDetector.next_wake_ms`
says when it next needs to be told. Every alert is stamped with the moment its condition arose (a threshold
crossed), not when someone looked. It never reads a clock.

``HomeDetector`` is a thin front: it keeps the home's shared state (:class:`analytics.watch.base.HomeState`) and
hands every reading and every moment to the watchers of :mod:`analytics.watch`, one concern each: the devices'
health, the home's warmth, outings, stillness, the daily routine, the pendant, the day's figures and the weeks'
trends. :meth:`HomeDetector.dump` checkpoints each watcher with its own version, so changing one watcher does
not throw away what every home has learned in the others.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from datetime import tzinfo
from typing import Any

from analytics.activity import NOT_JUDGED, ActivityTracker, Change, Judged, NotJudged, Value
from analytics.alerts import AlertEvent, AlertKind, Outcome
from analytics.elapsed import BED, CHAIR, UP
from analytics.localtime import DAY_MS, LocalTime
from analytics.summary import DaySummary
from analytics.watch.base import OUTSIDE_DOORS, Before, Day, DetectorConfig, Device, HomeState, Reading, Watcher
from analytics.watch.days import Days
from analytics.watch.environment import Environment
from analytics.watch.health import Health
from analytics.watch.outings import Outings
from analytics.watch.pendant import Pendant
from analytics.watch.routine import Routine
from analytics.watch.stillness import Stillness
from analytics.watch.trends import Trends

__all__ = ["DetectorConfig", "HomeDetector"]

SHARED_VERSION = 1  # the shape of HomeState and the activity tracker; bump when it changes
CHECKPOINT_FORMAT = 1  # the shape of what dump() writes around the watchers


class HomeDetector:
    def __init__(self, home: str, tz: tzinfo, config: DetectorConfig | None = None, *,
                 quiet_until_ms: int = 0) -> None:
        self.home = home
        self.tz = tz
        self.config = config or DetectorConfig()
        self.local = LocalTime(tz)
        self.state = HomeState(home, self.local, self.config, quiet_until_ms=quiet_until_ms)
        self.tracker = ActivityTracker()
        # Order matters within one moment: the devices' health first (what the others say depends on it),
        # stillness before the routine (the first of inactivity and not_up raised holds the other back).
        self.health = Health(self.config)
        self.environment = Environment(self.config)
        self.outings = Outings(self.config)
        self.stillness = Stillness(self.config)
        self.routine = Routine(self.config)
        self.pendant = Pendant(self.config)
        self.days = Days(self.config)
        self.trends = Trends(self.config)
        self.restarted: tuple[str, ...] = ()  # watchers a checkpoint could not restore (their version changed)

    @property
    def watchers(self) -> tuple[Watcher, ...]:
        return (self.health, self.environment, self.outings, self.stillness, self.routine, self.pendant, self.days,
                self.trends)

    # --- The shared state, as callers have always read it -----------------------------------------------------------

    @property
    def now_ms(self) -> int | None:
        return self.state.now_ms

    @property
    def quiet_until_ms(self) -> int:
        return self.state.quiet_until_ms

    @property
    def open(self) -> dict[Any, Any]:
        return self.state.open

    @property
    def devices(self) -> dict[str, Device]:
        return self.state.devices

    @property
    def summaries(self) -> list[DaySummary]:
        """Closed days not yet taken by the caller (checkpointed with the detector)."""
        return self.state.summaries

    @summaries.setter
    def summaries(self, value: list[DaySummary]) -> None:
        self.state.summaries = value

    # --- What the caller tells it -------------------------------------------------------------------------------

    def observe(self, time_ms: int, device: str, kind: str, value: Value | None = None, *, room: str | None = None,
                role: str | None = None, temperature: float | None = None, battery: float | None = None,
                battery_low: bool | None = None, illuminance: float | None = None,
                change: Judged = NOT_JUDGED) -> list[AlertEvent]:
        """One reading from ``device``: its activity value (None for a report without one), and what else it said.

        ``change``: the activity as the caller decided it (the gateway does, once, at ingest), or NOT_JUDGED for
        this detector's tracker to decide it from ``value``."""
        self._advance(time_ms)
        home = self.state
        t = max(time_ms, home.now_ms or time_ms)
        info = self._device(device, kind, room, role)
        if isinstance(change, NotJudged):
            change = self.tracker.update(device, kind, value) if value is not None else None
        elif value is not None:
            self.tracker.remember(device, value)
        if illuminance is not None:
            home.lights[device] = illuminance
        away = home.away(t)
        if change is not None and away is not None and home.returned(t, away):
            away = None
        before = Before(home.last_activity_ms, home.last_room, home.last_device, home.context, home.out_since_ms,
                        away is not None)
        if change is not None:
            self._moved(t, device, info, change)
        reading = Reading(t, device, info, change, before, temperature, battery, battery_low, illuminance)
        for watcher in self.watchers:
            watcher.observe(home, reading)
        home.last_report_ms = t
        return home.take()

    def forget_alerts(self) -> None:
        """Drop every alert held open, and any not yet taken, without a word: for a history fed only to learn from
        (``telecare baseline warm``), whose alerts reached nobody. Left open, a pendant pressed in the history would
        hold back every live press (only a person ends a pendant alert); a condition still true is raised again,
        live."""
        self.state.open.clear()
        self.state.out.clear()

    def hub(self, time_ms: int, online: bool) -> list[AlertEvent]:
        """The home's hub (zigbee2mqtt bridge state) went on or off line."""
        self._advance(time_ms)
        self.health.hub(self.state, max(time_ms, self.state.now_ms or time_ms), online)
        return self.state.take()

    def availability(self, time_ms: int, device: str, online: bool) -> list[AlertEvent]:
        """zigbee2mqtt says a device is available (online) or not (its per-device availability)."""
        self._advance(time_ms)
        self.health.availability(self.state, max(time_ms, self.state.now_ms or time_ms), device, online)
        return self.state.take()

    def hub_misbehaving(self, time_ms: int, message: str) -> list[AlertEvent]:
        """The gateway refused some of the hub's messages past a per-home quota; ``message`` says which."""
        self._advance(time_ms)
        self.health.quota(self.state, max(time_ms, self.state.now_ms or time_ms), message)
        return self.state.take()

    def set_absences(self, absences: Iterable[tuple[int, int | None]]) -> None:
        """Planned absences (holiday, hospital) as (start, end or None) epoch milliseconds."""
        self.state.absences = sorted(absences)

    def learn_outcome(self, kind: AlertKind | str, outcome: Outcome | str, raised_at_ms: int,
                      details: dict[str, Any] | None = None, *, alert_id: int | None = None,
                      retract: bool = False) -> None:
        """What a carer found when they dealt with an alert raised at ``raised_at_ms`` (its ``details`` as the
        detectors gave them). Only ``false_alarm`` teaches anything: the stillness and routine watchers widen their
        limits there, within bounds. A real incident never widens a limit; ``retract`` takes back what an earlier
        ``false_alarm`` on the same alert taught (a carer corrected it)."""
        kind, outcome = AlertKind(kind), Outcome(outcome)
        for watcher in (self.stillness, self.routine):
            watcher.learn_outcome(self.state, kind, outcome, details or {}, raised_at_ms, alert_id, retract)

    def advance(self, now_ms: int) -> list[AlertEvent]:
        """Time has moved on to ``now_ms`` with nothing else heard."""
        self._advance(now_ms)
        return self.state.take()

    def next_wake_ms(self) -> int | None:
        """The earliest moment an alert could arise with nothing more heard (the caller wakes us then)."""
        home = self.state
        due = [w for watcher in self.watchers if (w := watcher.next_wake_ms(home)) is not None]
        if home.now_ms is not None:  # the day closing
            due.append(self.local.utc_ms((self.local.day(home.now_ms) + 1) * DAY_MS))
        return min(due) if due else None

    def baseline(self) -> dict[str, Any]:
        """What this resident's alerts are compared with, for people to read (the API's baseline view), as plain
        JSON-able data.

        Per half-hour of the local day and context: the usual stillness and the limit past which stillness is
        an alert (minutes); the usual times of getting up and the first meal; the usual day's activity."""
        return {**self.stillness.baseline(), **self.routine.baseline(self.state),
                "activities_per_day": self.trends.activities_per_day()}

    # --- Checkpoints --------------------------------------------------------------------------------------------

    def dump(self) -> bytes:
        """The detector's state: the shared state and each watcher, each with its version."""
        return pickle.dumps({
            "format": CHECKPOINT_FORMAT, "home": self.home, "tz": self.tz,
            "shared": (SHARED_VERSION, pickle.dumps((self.state, self.tracker), protocol=5)),
            "watchers": {w.name: (w.version, pickle.dumps(w, protocol=5)) for w in self.watchers},
        }, protocol=5)

    @classmethod
    def load(cls, blob: bytes, home: str | None = None, tz: tzinfo | None = None,
             config: DetectorConfig | None = None) -> HomeDetector:
        """A detector from :meth:`dump`'s bytes (our own checkpoint). Each watcher whose version is not the one saved
        starts afresh (named in ``restarted``); the others go on from where they were. Home and zone default to
        the saved ones."""
        saved = pickle.loads(blob)
        if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a HomeDetector checkpoint of this format")
        detector = cls(home or saved["home"], tz or saved["tz"], config)
        version, shared = saved["shared"]
        if version == SHARED_VERSION:
            state, tracker = pickle.loads(shared)
            state.home, state.local, state.config = detector.home, detector.local, detector.config
            detector.state, detector.tracker = state, tracker
        restarted = []
        for watcher in detector.watchers:
            version, blob_part = saved["watchers"].get(watcher.name, (None, b""))
            if version == watcher.version:
                setattr(detector, watcher.name, pickle.loads(blob_part))
            else:
                restarted.append(watcher.name)
        detector.restarted = tuple(restarted)
        return detector

    # --- Inside -----------------------------------------------------------------------------------------------

    def _device(self, device: str, kind: str, room: str | None, role: str | None) -> Device:
        home = self.state
        info = home.devices.get(device)
        if info is None or (info.kind, info.room, info.role) != (kind, room, role):
            info = home.devices[device] = Device(kind, room, role)
            home.has_meal_sensors = any(home.is_meal(d) for d in home.devices.values())
            home.has_bed_pad = home.has_bed_pad or role == "bed"
        return info

    def _moved(self, t: int, device: str, info: Device, change: Change) -> None:
        """What an activity says of the resident: where they were last seen, and whether in bed or the chair."""
        home = self.state
        home.last_activity_ms, home.last_room, home.last_device = t, info.room, device
        if info.role == "bed" and change in (Change.OCCUPIED, Change.VACATED):
            home.context = BED if change is Change.OCCUPIED else UP
        elif info.role == "chair" and change in (Change.OCCUPIED, Change.VACATED):
            home.context = CHAIR if change is Change.OCCUPIED else UP
        elif info.role not in OUTSIDE_DOORS and info.room != "bedroom" and home.context == BED \
                and info.kind != "presence":
            home.context = UP  # moving about elsewhere: the bed pad is behind (or someone else is in bed)

    def _advance(self, now_ms: int) -> None:
        home = self.state
        if home.now_ms is not None and now_ms <= home.now_ms:
            return
        # Walk through whatever falls due before now, in order, so each alert is stamped when it arose.
        while True:
            due = self.next_wake_ms()
            if due is None or due > now_ms:
                break
            before = (due, len(home.open))
            self._at(max(due, home.now_ms or due))
            if (self.next_wake_ms(), len(home.open)) == before:  # nothing moved: go no further than now
                break
        self._at(now_ms)

    def _at(self, t: int) -> None:
        home = self.state
        if home.now_ms is None or t > home.now_ms:
            home.now_ms = t
        self._roll_day(t)
        for watcher in self.watchers:
            watcher.advance(home, t)

    def _roll_day(self, t: int) -> None:
        home, index = self.state, self.local.day(t)
        day = home.day
        if day is not None and day.index == index:
            return
        if day is not None:
            end = self.local.utc_ms((day.index + 1) * DAY_MS)
            for watcher in self.watchers:
                watcher.day_closed(home, day, end)
        joined_late = (day is None or day.index < index - 1) and \
            self.local.minute_of_day(t) > self.config.day_start_min
        home.day = Day(index=index, away=home.away(self.local.utc_ms(index * DAY_MS)) is not None,
                       partial=joined_late)
