"""How far each hub's clock is from the gateway's, learned from the ``last_seen`` of the messages it sends.

zigbee2mqtt's ``last_seen`` is the hub's time of the device's last Zigbee message, so ``last_seen`` minus the
receipt time is the hub's clock offset minus however long the message took to arrive. Delays only ever make that
difference smaller (a backlog drained after an outage, the ``occupancy: false`` zigbee2mqtt makes up 90 s after a
motion report), so a home's estimate is the largest difference seen over the last one to two windows: the
freshest message shows the clock.

:class:`HubClocks` is pure: times are passed in (the gateway's one clock), so it works the same on simulated
time. :class:`ClockWatch` puts it to use for ingest: metrics, and log lines an operator can act on.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.contract import Kind, Message, Reason
from gateway.journal import NewEntry
from gateway.logs import about
from gateway.metrics import IngestMetrics

log = logging.getLogger(__name__)

SKEW_LOG_EVERY_S = 600.0  # a clock that is off is logged once per home (or for the gateway) per 10 minutes
# A hub whose clock costs readings their time is reported to its detectors at most once an hour while it lasts, as
# a per-home quota is: the hub_misbehaving alert they raise clears after two hours without a report.
REPORT_EVERY_MS = 3_600_000


@dataclass(slots=True)
class _HubSkew:
    window_start_ms: int
    current_max_ms: int  # the largest last_seen - receipt in the window that started at window_start_ms
    previous_max_ms: int | None  # the same over the window before, if it ended less than a window ago
    last_heard_ms: int


class HubClocks:
    """Per home, an estimate of its hub's clock minus the gateway's; across homes, whether the gateway is off.

    ``max_homes`` bounds the memory whatever topics arrive: homes not heard for ``recent_ms`` are forgotten first,
    and once it is full of recently heard homes a new one is not tracked.
    """

    def __init__(self, tolerance_ms: int, *, window_ms: int = 10 * 60_000, recent_ms: int = 30 * 60_000,
                 min_hubs: int = 3, max_homes: int = 20_000) -> None:
        self.tolerance_ms = tolerance_ms
        self.window_ms = window_ms
        self.recent_ms = recent_ms
        self.min_hubs = min_hubs
        self.max_homes = max_homes
        self._hubs: dict[str, _HubSkew] = {}

    def observe(self, home: str, received_ms: int, skew_ms: int) -> list[str]:
        """One message's ``last_seen - received``. Returns the homes forgotten to make room (their gauges go)."""
        hub = self._hubs.get(home)
        if hub is None:
            forgotten = self._make_room(received_ms)
            if len(self._hubs) < self.max_homes:
                self._hubs[home] = _HubSkew(received_ms, skew_ms, None, received_ms)
            return forgotten
        if received_ms - hub.window_start_ms >= self.window_ms:
            ended_recently = received_ms - hub.window_start_ms < 2 * self.window_ms
            hub.previous_max_ms = hub.current_max_ms if ended_recently else None
            hub.window_start_ms, hub.current_max_ms = received_ms, skew_ms
        elif skew_ms > hub.current_max_ms:
            hub.current_max_ms = skew_ms
        hub.last_heard_ms = max(hub.last_heard_ms, received_ms)
        return []

    def estimate_ms(self, home: str) -> int | None:
        """The home's hub clock minus the gateway's (positive: the hub is ahead); None if never heard."""
        hub = self._hubs.get(home)
        if hub is None:
            return None
        if hub.previous_max_ms is None:
            return hub.current_max_ms
        return max(hub.current_max_ms, hub.previous_max_ms)

    def recent(self, now_ms: int) -> dict[str, int]:
        """The estimates of the hubs heard within ``recent_ms``."""
        return {home: self.estimate_ms(home) or 0 for home, hub in self._hubs.items()
                if now_ms - hub.last_heard_ms < self.recent_ms}

    def median_ms(self, now_ms: int) -> int | None:
        """The median estimate over recently heard hubs; None with fewer than ``min_hubs`` (one fast hub is that
        hub's problem, not the gateway's)."""
        estimates = list(self.recent(now_ms).values())
        if len(estimates) < self.min_hubs:
            return None
        return round(statistics.median(estimates))

    def _make_room(self, now_ms: int) -> list[str]:
        if len(self._hubs) < self.max_homes:
            return []
        stale = [home for home, hub in self._hubs.items() if now_ms - hub.last_heard_ms >= self.recent_ms]
        for home in stale:
            del self._hubs[home]
        return stale


class ClockWatch:
    """Ingest's view of clocks: each committed batch's skews go into the per-hub estimates and the metrics; a hub
    whose clock cost a reading its event time is logged with its home; the gateway's own clock is judged against
    the hubs' every ``check_every_s`` of wall time.

    The hub is flagged in device health through the journal: :meth:`reports` gives the batch a ``quota`` entry
    (the kind the per-home quotas use, ``gateway.quotas``) once per home per hour while its readings are re-timed,
    and the home's detectors raise one ``hub_misbehaving`` alert from it.
    """

    def __init__(self, hubs: HubClocks, metrics: IngestMetrics, *, check_every_s: float = 60.0) -> None:
        self.hubs = hubs
        self.metrics = metrics
        self.check_every_s = check_every_s
        self._checked_at = time.monotonic()
        self._behind_logged_at: float | None = None  # while the gateway's clock looks behind: when last said
        self._hub_logged_at: dict[str, float] = {}  # home -> when its hub's clock was last logged
        self._reported_ms: dict[str, int] = {}  # home -> receipt time of its last report to the detectors

    def reports(self, messages: Iterable[Message]) -> list[NewEntry]:
        """The device-health reports to journal with a batch: one per home whose readings were re-timed and that
        was not reported in the last hour. Nothing is recorded here: :meth:`take` does, once the batch is committed
        (a batch that fails to commit is parsed again, and must report again)."""
        out: dict[str, NewEntry] = {}
        for m in messages:
            if m.retimed is None or m.home is None or m.home in out or not self._due(m.home, m.received_ms):
                continue
            out[m.home] = (Kind.QUOTA, m.home, None, m.received_ms, m.received_ms, False,
                           {"quota": "clock", "what": _clock_report(m.retimed, m.clock_skew_ms)})
        return list(out.values())

    def _due(self, home: str, received_ms: int) -> bool:
        last = self._reported_ms.get(home)
        return last is None or received_ms - last >= REPORT_EVERY_MS

    def take(self, messages: Iterable[Message], now_ms: int) -> None:
        """Messages of a committed batch that carried a last_seen (``clock_skew_ms``) or were re-timed."""
        # One observation per home per batch (its largest skew, its latest receipt): the estimate is a maximum, so
        # this loses nothing, and a batch of thousands costs a dict update per message.
        largest: dict[str, tuple[int, int]] = {}
        for m in messages:
            home, skew_ms = m.home, m.clock_skew_ms
            if home is None:
                continue
            if skew_ms is not None:
                seen = largest.get(home)
                largest[home] = (skew_ms, m.received_ms) if seen is None else (
                    max(skew_ms, seen[0]), max(m.received_ms, seen[1]))
            if m.retimed is not None:
                self.metrics.readings_retimed.labels(str(m.retimed)).inc()
                self._log_retimed(home, m.device, m.retimed, skew_ms)
                if self._due(home, m.received_ms):  # reports() gave this batch its report: it is committed now
                    if len(self._reported_ms) >= self.hubs.max_homes:  # bounded whatever homes the topics name
                        self._reported_ms = {h: t for h, t in self._reported_ms.items()
                                             if m.received_ms - t < REPORT_EVERY_MS}
                    self._reported_ms[home] = m.received_ms
        for home, (skew_ms, received_ms) in largest.items():
            for forgotten in self.hubs.observe(home, received_ms, skew_ms):
                with contextlib.suppress(KeyError):  # forgotten before its gauge was ever set
                    self.metrics.hub_clock_skew.remove(forgotten)
                self._hub_logged_at.pop(forgotten, None)
        for home in largest:
            estimate = self.hubs.estimate_ms(home)
            if estimate is not None:
                self.metrics.hub_clock_skew.labels(home).set(estimate / 1000)
        if time.monotonic() - self._checked_at >= self.check_every_s:
            self.check_gateway_clock(now_ms)

    def check_gateway_clock(self, now_ms: int) -> bool:
        """Judge the gateway's own clock against the hubs recently heard; returns whether it looks behind.

        Behind: the median hub runs ahead of it by more than the tolerance, so most hubs do. Only this direction is
        judged: hubs that look behind cannot be told from messages that were delayed (a backlog, retained states).
        """
        self._checked_at = now = time.monotonic()
        median = self.hubs.median_ms(now_ms)
        self.metrics.hubs_median_clock_skew.set(float("nan") if median is None else median / 1000)
        behind = median is not None and median > self.hubs.tolerance_ms
        self.metrics.gateway_clock_behind.set(1 if behind else 0)
        if behind:
            assert median is not None
            if self._behind_logged_at is None or now - self._behind_logged_at >= SKEW_LOG_EVERY_S:
                self._behind_logged_at = now
                log.warning("the gateway's clock looks %.0f s behind: most hubs heard recently run ahead of it by "
                            "more than the tolerance (%.0f s); check the gateway's clock (NTP)", median / 1000,
                            self.hubs.tolerance_ms / 1000)
        elif self._behind_logged_at is not None:
            self._behind_logged_at = None
            log.info("the gateway's clock agrees with the hubs' again")
        return behind

    def _log_retimed(self, home: str, device: str | None, why: Reason, skew_ms: int | None) -> None:
        """A hub's clock is off: say so with its home, once per home per 10 minutes (a fast hub sends a lot)."""
        now = time.monotonic()
        last = self._hub_logged_at.get(home)
        if last is not None and now - last < SKEW_LOG_EVERY_S:
            return
        if len(self._hub_logged_at) >= self.hubs.max_homes:  # bounded whatever homes the topics name
            self._hub_logged_at = {h: t for h, t in self._hub_logged_at.items() if now - t < SKEW_LOG_EVERY_S}
        self._hub_logged_at[home] = now
        if why is Reason.FUTURE_TIMESTAMP and skew_ms is not None:
            what = f"last_seen {skew_ms / 1000:.0f} s ahead of the gateway's clock"
        elif skew_ms is not None:
            what = f"last_seen unusable ({skew_ms / 1000:+.0f} s from the gateway's clock)"
        else:
            what = "last_seen unusable (not a time)"
        log.warning("home %s: hub clock wrong: %s; %s's reading stored at receipt time, skew recorded (set the "
                    "hub's clock, NTP)", home, what, device, extra=about(home=home, device=device))


def _clock_report(why: Reason, skew_ms: int | None) -> str:
    """What the hub_misbehaving alert says (after "Hub misbehaving: ")."""
    if why is Reason.FUTURE_TIMESTAMP and skew_ms is not None:
        return (f"its clock runs {_span(skew_ms)} ahead of the gateway's, so its readings are stored at the time "
                "they arrive, not the time they happened (set the hub's clock: NTP)")
    if skew_ms is not None:
        side = "ahead of" if skew_ms > 0 else "behind"
        return (f"its clock reads {_span(skew_ms)} {side} the gateway's: button presses are stored at the time they "
                "arrive and its other readings are refused (set the hub's clock: NTP)")
    return ("its last_seen is not a time: button presses are stored at the time they arrive and its other readings "
            "are refused (set zigbee2mqtt's advanced.last_seen to ISO_8601)")


def _span(ms: int) -> str:
    seconds = abs(ms) / 1000
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86_400:.0f} days"
