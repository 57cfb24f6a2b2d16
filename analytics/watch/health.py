"""The devices' health: the hub offline (``hub_offline``), the home unseen (``cant_see``), one device silent
(``sensor_silent``), a battery running down (``low_battery``), the hub past a per-home quota (``hub_misbehaving``).

Device-health alerts are one per device (or the hub) and kind. "Can't see" needs evidence (DESIGN.md:
uncertainty escalates, it never suppresses): the hub says offline (that is ``hub_offline``), the hub says every
activity device of the home is unavailable, or every device *learned* to report periodically has gone silent
(:mod:`analytics.silence`). Many sensors report only on change, so silence alone proves nothing. ``cant_see``
clears as soon as any device of the home reports again. None of it holds a person-safety alert back: what this
watcher knows of the home's visibility is published in the shared state (``blind_since_ms``, ``blind_reason``,
``silent``) so that those alerts say what is and is not known.
"""

from __future__ import annotations

from typing import Any, ClassVar

from analytics.alerts import HUB_SUBJECT, AlertKind, Severity
from analytics.devices import KINDS_BY_KEY
from analytics.localtime import MINUTE_MS, duration
from analytics.silence import SilenceWatch
from analytics.watch.base import Day, DetectorConfig, HomeState, Reading, describe

# hub_misbehaving clears once the hub has kept within its quotas for an hour. The ingest reports a home's refusals
# at most once an hour while they go on, so two hours without a report prove an hour without one.
QUOTA_CLEAR_MS = 2 * 60 * MINUTE_MS


class Health:
    name: ClassVar[str] = "health"
    version: ClassVar[int] = 2
    # A class default rather than set in __init__: checkpoints pickled before it existed load without relearning.
    misbehaving_ms: int | None = None  # the last report of the hub going past a per-home quota, while it is open

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.silence = SilenceWatch(min_gaps=config.silence_min_gaps)
        self.low_battery: set[str] = set()
        self.hub_offline_ms: int | None = None
        self.unavailable: dict[str, int] = {}  # device -> since when the hub says it is unavailable
        self.cant_see_ms: int | None = None
        self.cant_see_reason: str | None = None  # "silent" or "unavailable"

    # --- What the hub says ----------------------------------------------------------------------------------------

    def hub(self, home: HomeState, t: int, online: bool) -> None:
        if not online and self.hub_offline_ms is None:
            self.hub_offline_ms = t
            home.raise_(AlertKind.HUB_OFFLINE, t, Severity.WARNING,
                        f"The home hub went offline at {home.clock(t)}: nothing in the home can be heard until it "
                        "is back. Stillness is still watched: past the resident's usual limit, an inactivity alert "
                        "follows.", subject=HUB_SUBJECT)
        elif online and self.hub_offline_ms is not None:
            since = self.hub_offline_ms
            self.hub_offline_ms = None
            home.visible_since_ms = t
            home.clear(AlertKind.HUB_OFFLINE, t, f"The home hub is back online at {home.clock(t)}, after "
                       f"{duration((t - since) / MINUTE_MS)}.", subject=HUB_SUBJECT)
        self._publish(home)

    def availability(self, home: HomeState, t: int, device: str, online: bool) -> None:
        """zigbee2mqtt's per-device availability: every activity device unavailable is "can't see"."""
        if online:
            self.unavailable.pop(device, None)
            self._seen_again(home, t, device)
        else:
            self.unavailable.setdefault(device, t)
            activity = [d for d, info in home.devices.items()
                        if (kind := KINDS_BY_KEY.get(info.kind)) is not None and kind.activity_field is not None]
            if activity and all(d in self.unavailable for d in activity) and self.cant_see_ms is None \
                    and self.hub_offline_ms is None:
                self._cant_see(home, t, "unavailable",
                               f"Can't see the home: the hub reports every sensor unavailable since {home.clock(t)}. "
                               "The resident may be still, or the sensors have stopped: stillness is still "
                               "watched, and an inactivity alert follows at the resident's usual limit.")
        self._publish(home)

    def quota(self, home: HomeState, t: int, what: str) -> None:
        """The gateway refused some of the hub's messages past a per-home quota (``what``: which, and what that
        means); one alert while it goes on."""
        first = self.misbehaving_ms is None
        self.misbehaving_ms = t
        if first:
            home.raise_(AlertKind.HUB_MISBEHAVING, t, Severity.WARNING,
                        f"Hub misbehaving: {what}. Since {home.clock(t)}; have the hub checked (a broken or "
                        "tampered zigbee2mqtt). Other homes are not affected.", subject=HUB_SUBJECT)

    # --- The watcher ----------------------------------------------------------------------------------------------

    def observe(self, home: HomeState, reading: Reading) -> None:
        t, device = reading.time_ms, reading.device
        still_since = reading.before.activity_ms if reading.change is None else None
        ended = self.silence.report(device, t, still_since)
        self.unavailable.pop(device, None)  # it reports: it is there
        if ended is not None or self.cant_see_ms is not None:
            self._seen_again(home, t, device)
        if reading.battery is not None or reading.battery_low is not None:
            self._battery(home, reading)
        self._publish(home)

    def next_wake_ms(self, home: HomeState) -> int | None:
        wake = self.silence.next_wake_ms()
        if self.misbehaving_ms is not None:
            clear_at = self.misbehaving_ms + QUOTA_CLEAR_MS
            wake = clear_at if wake is None else min(wake, clear_at)
        return wake

    def advance(self, home: HomeState, t: int) -> None:
        if self.misbehaving_ms is not None and t >= self.misbehaving_ms + QUOTA_CLEAR_MS:
            last, self.misbehaving_ms = self.misbehaving_ms, None
            home.clear(AlertKind.HUB_MISBEHAVING, last + QUOTA_CLEAR_MS, "The hub has behaved for over an hour: "
                       f"nothing refused or re-timed since {home.clock(last, t)}.", subject=HUB_SUBJECT)
        newly = self.silence.advance(t)
        for s in newly:
            if self.hub_offline_ms is None and self.cant_see_ms is None:
                self._raise_silent(home, s.device, s.silent_at_ms, s.last_report_ms, s.limit_min)
        # Raised as the last periodic reporter falls silent: once cleared by another device reporting, not again
        # until a periodic reporter has reported and fallen silent anew.
        if newly and self.cant_see_ms is None and self.hub_offline_ms is None and self.silence.all_silent():
            last = max(self.silence.last_reports().values())
            if home.last_report_ms is not None and home.last_report_ms > last:
                self._publish(home)
                return  # other devices are heard: the home can be seen, and those silent are faulty
            at = max(self.silence.silent_since_ms(), home.now_ms or t)
            for device in list(self.silence.silent()):  # one home-wide alert rather than one per device
                home.clear(AlertKind.SENSOR_SILENT, at, "Covered by the home-wide alert.", subject=device,
                           quietly=True)
            self._cant_see(home, at, "silent",
                           f"Can't see the home: no device has reported since {home.clock(last, at)}, though some "
                           "usually report around the clock. The resident may be still, or the sensors have "
                           "stopped: stillness is still watched, and an inactivity alert follows at the resident's "
                           "usual limit.", last_report=last)
        self._publish(home)

    def day_closed(self, home: HomeState, day: Day, closed_at: int) -> None:
        """Nothing learned by the day."""

    # --- Inside -----------------------------------------------------------------------------------------------

    def _cant_see(self, home: HomeState, at: int, reason: str, message: str, **details: Any) -> None:
        self.cant_see_ms, self.cant_see_reason = at, reason
        home.raise_(AlertKind.CANT_SEE, at, Severity.WARNING, message, subject=HUB_SUBJECT, reason=reason, **details)

    def _raise_silent(self, home: HomeState, device: str, at: int, last: int, limit_min: float) -> None:
        home.raise_(AlertKind.SENSOR_SILENT, at, Severity.LOW,
                    f"{describe(device, home.devices.get(device))} has not reported since {home.clock(last, at)}; "
                    f"it usually reports at least every {duration(limit_min / self.silence.margin)}.",
                    subject=device, last_report=last)

    def _seen_again(self, home: HomeState, t: int, device: str) -> None:
        """A device reported (or is available again): the home can be seen, whichever device it is."""
        if self.cant_see_ms is None:
            home.clear(AlertKind.SENSOR_SILENT, t, f"{describe(device, home.devices.get(device))} reporting again "
                       f"at {home.clock(t)}.", subject=device)
            return
        since = self.cant_see_ms
        self.cant_see_ms = self.cant_see_reason = None
        home.visible_since_ms = t
        home.clear(AlertKind.CANT_SEE, t, f"Devices reporting again from {home.clock(t)} after "
                   f"{duration((t - since) / MINUTE_MS)} unseen.", subject=HUB_SUBJECT)
        for silent in self.silence.silent():  # still quiet once the rest are back: those are faulty
            if silent != device:
                home.raise_(AlertKind.SENSOR_SILENT, t, Severity.LOW,
                            f"{describe(silent, home.devices.get(silent))} has not reported since the home "
                            "came back into view.", subject=silent)

    def _battery(self, home: HomeState, reading: Reading) -> None:
        c, t, device, percent, low = self.config, reading.time_ms, reading.device, reading.battery, reading.battery_low
        is_low = (percent is not None and percent <= c.low_battery_pct) or (percent is None and low is True)
        is_ok = (percent is not None and percent >= c.battery_ok_pct) or (percent is None and low is False)
        name = describe(device, home.devices.get(device))
        if is_low and device not in self.low_battery:
            self.low_battery.add(device)
            level = f" ({percent:.0f} %)" if percent is not None else ""
            home.raise_(AlertKind.LOW_BATTERY, t, Severity.LOW,
                        f"{name} battery is low{level}: replace it within days.", subject=device, battery=percent)
        elif is_ok and device in self.low_battery:
            self.low_battery.discard(device)
            home.clear(AlertKind.LOW_BATTERY, t, f"{name} battery replaced.", subject=device)

    def _publish(self, home: HomeState) -> None:
        """What the person-safety watchers are told of the home's visibility."""
        home.silent = self.silence.silent()
        if self.hub_offline_ms is not None:
            home.blind_since_ms, home.blind_reason = self.hub_offline_ms, "hub_offline"
        elif self.cant_see_ms is not None:
            home.blind_since_ms = self.cant_see_ms
            home.blind_reason = "unavailable" if self.cant_see_reason == "unavailable" else "cant_see"
        else:
            home.blind_since_ms, home.blind_reason = None, None
