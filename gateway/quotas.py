"""Per-home quotas, judged before anything is stored (DESIGN.md, "What a hub can cost").

A hub is not trusted: every device name it reports becomes a device row, a detector entry and a readings-store tag,
and every malformed message a dead letter. So, per home:

* at most ``devices_per_home`` device names are kept: past it, a *new* name is refused (known devices keep
  working, so a resident's pendant still gets through a flood);
* at most ``new_devices_per_hour`` new names are taken in an hour;
* at most ``dead_letters_per_hour`` dead letters are kept in an hour.

A refused message is counted and dropped (still acknowledged to the broker: it is refused, not retried). The first
refusal of a home in an hour carries a ``report``: the ingest journals it once, and the home's detectors raise one
``hub_misbehaving`` device-health alert from it.

:class:`HomeQuotas` is pure logic: times are passed in (the gateway's clock, as the ingest stamps receipt), no I/O
but the optional ``load_known`` callback, which reads back the known devices of a home that was pushed out of its LRU
and returns. Its own state is bounded too: at most ``max_homes`` homes, each holding its cap of device-name hashes
(more only if the database already held more at start) and one hour's counts. :class:`QuotaGate` is the ingest's
hook; :func:`stored_quotas` builds the quotas from the settings and the devices already stored.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from sqlalchemy import select

from gateway.config import Settings
from gateway.contract import Kind, Message, Parsed, Rejected
from gateway.db.models import Device
from gateway.db.session import make_engine, make_session_factory
from gateway.journal import NewEntry
from gateway.logs import about

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
REPORT_EVERY_MS = HOUR_MS  # a home's refusals are reported (journaled) at most once an hour while they go on
LOAD_RETRY_MS = 60_000  # a home whose known devices could not be loaded: how long before trying again
NO_HOME = ""  # the bucket of dead letters whose topic names no valid home


class Quota(StrEnum):
    """Which bound refused a message. Stable names: the label of ``telecare_quota_dropped_total``."""

    DEVICES = "devices"  # the home's device cap
    NEW_DEVICES = "new_devices"  # new device names in an hour
    DEAD_LETTERS = "dead_letters"  # dead letters in an hour


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    devices_per_home: int = 200
    new_devices_per_hour: int = 50
    dead_letters_per_hour: int = 100


@dataclass(frozen=True, slots=True)
class Refused:
    """A message refused by a quota. ``report`` is set on the home's first refusal in an hour: what to tell
    (a sentence after "hub misbehaving: "), to be journaled once."""

    quota: Quota
    home: str
    report: str | None = None
    earlier: int = 0  # with a report: how many were refused since the home's last report


@dataclass(slots=True)
class _Home:
    # Hashes of the device names, not the names: a name can be 256 bytes, a hash is one machine word. A collision
    # (about 1 in 10^15 for 200 names) only lets a new name through as if known.
    known: set[int] = field(default_factory=set)
    loaded: bool = True  # False while its known devices could not be read (see HomeQuotas._home)
    load_retry_ms: int = 0
    hour: int = -1  # the hour (epoch ms // HOUR_MS) the counts below are for
    new_devices: int = 0
    dead_letters: int = 0
    reported_ms: int | None = None  # when a refusal was last reported
    refused: int = 0  # refused since the last report

    def roll(self, now_ms: int) -> None:
        hour = now_ms // HOUR_MS
        if hour != self.hour:
            self.hour, self.new_devices, self.dead_letters = hour, 0, 0


class HomeQuotas:
    """Per-home quotas. Not thread-safe: the ingest's one batching thread calls it."""

    def __init__(self, limits: QuotaLimits | None = None, *, max_homes: int = 10_000,
                 load_known: Callable[[str], Iterable[str]] | None = None) -> None:
        self.limits = limits or QuotaLimits()
        self.max_homes = max_homes
        self.load_known = load_known  # a home's device names as stored (the registry's rows); None: nothing stored
        self._homes: OrderedDict[str, _Home] = OrderedDict()
        # Homes pushed out of the LRU, whose known devices are read back (load_known) if they return. A home never
        # seen before is not looked up: nothing is stored for it, and a flood of new home ids must cost no queries.
        self._evicted: OrderedDict[str, None] = OrderedDict()
        # Homes reported in a batch not yet committed, with when they were reported before: a batch that fails to
        # commit is parsed again and must report again (retract). Its admissions stand: a device let in is let in
        # again, and a dead letter counted twice only shrinks that hour's allowance.
        self._unconfirmed: dict[str, int | None] = {}

    def seed(self, home: str, devices: Iterable[str]) -> None:
        """The devices already stored for ``home`` (at start): they are known, and count against its cap."""
        state = self._homes.get(home)
        if state is None:
            self._evicted.pop(home, None)
            state = self._homes[home] = _Home()
            self._evict()
        state.known.update(hash(d) for d in devices)

    def homes(self) -> int:
        return len(self._homes)

    def known_devices(self, home: str) -> int:
        state = self._homes.get(home)
        return 0 if state is None else len(state.known)

    def admit_device(self, home: str, device: str, now_ms: int) -> Refused | None:
        """A message naming ``device`` of ``home`` at ``now_ms``: None when it may be stored, else why not."""
        state = self._home(home, now_ms)
        key = hash(device)
        if key in state.known or not state.loaded:
            return None  # known; or what is known cannot be read just now: refusing could lose a pendant press
        state.roll(now_ms)
        limits = self.limits
        if len(state.known) >= limits.devices_per_home:
            return self._refuse(state, home, Quota.DEVICES, now_ms,
                                f"the hub reports more device names than the limit of {limits.devices_per_home} "
                                "for a home; new names are refused, the devices already known keep working")
        if state.new_devices >= limits.new_devices_per_hour:
            return self._refuse(state, home, Quota.NEW_DEVICES, now_ms,
                                f"the hub reported more than {limits.new_devices_per_hour} new device names within "
                                "an hour; more are refused until the hour is over, the devices already known keep "
                                "working")
        state.new_devices += 1
        state.known.add(key)
        return None

    def admit_dead_letter(self, home: str | None, now_ms: int) -> Refused | None:
        """A malformed message charged to ``home`` (None: its topic names no valid home, one shared bucket)."""
        key = NO_HOME if home is None else home
        state = self._home(key, now_ms, load=home is not None)
        state.roll(now_ms)
        if state.dead_letters < self.limits.dead_letters_per_hour:
            state.dead_letters += 1
            return None
        refused = self._refuse(state, key, Quota.DEAD_LETTERS, now_ms,
                               f"the hub sent more than {self.limits.dead_letters_per_hour} malformed messages "
                               "within an hour; the rest are dropped without being kept")
        if home is None and refused.report is not None:
            log.warning("messages naming no home: %s (%d more dropped since last said)", refused.report,
                        refused.earlier)
            return Refused(refused.quota, key)  # no home to tell: counted, and logged here
        return refused

    def confirm(self) -> None:
        """The reports given so far are committed (journaled)."""
        self._unconfirmed.clear()

    def retract(self) -> None:
        """The reports given since the last :meth:`confirm` were not committed: give them again."""
        for home, reported_ms in self._unconfirmed.items():
            state = self._homes.get(home)
            if state is not None:
                state.reported_ms = reported_ms
        self._unconfirmed.clear()

    # --- Inside -----------------------------------------------------------------------------------------------

    def _refuse(self, state: _Home, home: str, quota: Quota, now_ms: int, what: str) -> Refused:
        state.refused += 1
        if state.reported_ms is not None and now_ms - state.reported_ms < REPORT_EVERY_MS:
            return Refused(quota, home)
        earlier = state.refused - 1
        self._unconfirmed.setdefault(home, state.reported_ms)
        state.reported_ms, state.refused = now_ms, 0
        return Refused(quota, home, what, earlier)

    def _home(self, home: str, now_ms: int, *, load: bool = True) -> _Home:
        state = self._homes.get(home)
        if state is not None:
            self._homes.move_to_end(home)
            if not state.loaded and now_ms >= state.load_retry_ms:
                self._load(home, state, now_ms)
            return state
        was_evicted = home in self._evicted
        if was_evicted:
            del self._evicted[home]
        state = self._homes[home] = _Home()
        self._evict()
        if was_evicted and load:
            self._load(home, state, now_ms)
        return state

    def _load(self, home: str, state: _Home, now_ms: int) -> None:
        if self.load_known is None:
            return
        try:
            state.known.update(hash(d) for d in self.load_known(home))
            state.loaded = True
        except Exception:
            # Until it can be read, the home's device names are let through (the database is what is failing,
            # so the registry cannot grow either); its dead letters are still bounded.
            state.loaded, state.load_retry_ms = False, now_ms + LOAD_RETRY_MS
            log.exception("home %s: its known devices could not be read; its device quota waits until they can",
                          home, extra=about(home=home))

    def _evict(self) -> None:
        while len(self._homes) > self.max_homes:
            home, _ = self._homes.popitem(last=False)  # the home heard from least recently; read back if it returns
            self._evicted[home] = None
            if len(self._evicted) > self.max_homes:  # bounded too: one evicted that long ago re-learns its devices
                self._evicted.popitem(last=False)


class _Counter(Protocol):
    def labels(self, *values: str) -> _Inc: ...


class _Inc(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class QuotaGate:
    """The ingest's hook: a parsed message in; the message to journal out, or None when a quota refuses it.

    A refusal is counted on ``dropped`` (labelled by quota only: a label per home would let hostile homes grow the
    metrics without bound; the home is in the log). The first refusal of a home in an hour also appends a ``quota``
    journal entry to ``entries`` (once per home per hour): the detectors raise ``hub_misbehaving`` from it.
    """

    def __init__(self, quotas: HomeQuotas, dropped: _Counter) -> None:
        self.quotas = quotas
        self.dropped = dropped
        self._batch: list[NewEntry] | None = None  # the batch being judged, until committed

    def committed(self) -> None:
        """The batch judged since the last call is in the journal, its reports with it."""
        self._batch = None
        self.quotas.confirm()

    def judge(self, parsed: Parsed, entries: list[NewEntry]) -> Parsed | None:
        if entries is not self._batch:  # a new batch: if the last one was not committed, its reports are lost
            if self._batch is not None:
                self.quotas.retract()
            self._batch = entries
        if type(parsed) is Rejected:
            return self._judged(self.quotas.admit_dead_letter(parsed.home, parsed.received_ms), parsed, entries)
        if type(parsed) is not Message or parsed.home is None:
            return parsed
        if parsed.kind is Kind.STATE or parsed.kind is Kind.AVAILABILITY:
            assert parsed.device is not None
            refused = self.quotas.admit_device(parsed.home, parsed.device, parsed.received_ms)
            return self._judged(refused, parsed, entries)
        if parsed.kind is Kind.BRIDGE_DEVICES:  # the hub's device list names devices too: each is judged
            kept = []
            for item in parsed.body:
                refused = self.quotas.admit_device(parsed.home, item["friendly_name"], parsed.received_ms)
                if self._judged(refused, parsed, entries) is not None:
                    kept.append(item)
            parsed.body = kept
        return parsed

    def _judged(self, refused: Refused | None, parsed: Message | Rejected, entries: list[NewEntry]) -> Parsed | None:
        if refused is None:
            return parsed
        self.dropped.labels(str(refused.quota)).inc()
        if refused.report is not None and refused.home != NO_HOME:
            log.warning("home %s: hub misbehaving: %s (%d more refused since the last report)", refused.home,
                        refused.report, refused.earlier, extra=about(home=refused.home))
            entries.append((Kind.QUOTA, refused.home, None, parsed.received_ms, parsed.received_ms, False,
                            {"quota": str(refused.quota), "what": refused.report}))
        return None


def stored_quotas(settings: Settings, *, max_homes: int = 10_000) -> HomeQuotas:
    """The quotas of the settings, every home's known devices seeded from the database (one query, at start), so
    that a restart gives no hub a fresh allowance and a home's known devices never count as new."""
    sessions = make_session_factory(make_engine(settings.database_url))

    def load_known(home: str) -> list[str]:  # only for a home pushed out of the LRU that returns: rare
        with sessions() as session:
            return list(session.scalars(select(Device.name).where(Device.home_id == home)))

    quotas = HomeQuotas(QuotaLimits(settings.quota_devices_per_home, settings.quota_new_devices_per_hour,
                                    settings.quota_dead_letters_per_hour), max_homes=max_homes, load_known=load_known)
    stored: dict[str, list[str]] = {}
    with sessions() as session:
        for home, name in session.execute(select(Device.home_id, Device.name)):
            stored.setdefault(home, []).append(name)
    for home, names in stored.items():
        quotas.seed(home, names)
    return quotas
