"""The watchdog: operators are told out of band when the safety path falls behind or the disk fills.

Carers are told about residents through the outbox; nobody is told when the gateway itself cannot tell them: a
journal that grows because the detectors are behind, a dispatcher that has not sent for minutes, a disk that is
about to fill (after which nothing is journaled at all). The watchdog runs small checks (:data:`Check`) every
minute in the worker and tells operators through channels that do not depend on what they watch:

* :class:`PushoverOperators`: a message to an operators' user or group key, with the application's token, at high
  priority when something is wrong, repeated every ``repeat_s`` while it lasts, and once when it is over;
* :class:`HealthcheckPing`: a dead man's switch in the style of healthchecks.io (``GET url`` when all is well,
  ``GET url/fail`` when not): if the worker dies, the pings stop and the service raises the alarm itself.

A check that fails to run is a problem too: uncertainty is told, never hidden. Channels never raise; what they
could not send is logged.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerting.states import NotificationState
from gateway.clock import Clock
from gateway.config import Settings
from gateway.db.models import Notification
from gateway.journal import Journal
from gateway.notify.errors import GiveUp, Retry
from gateway.notify.pushover import PushoverClient

log = logging.getLogger(__name__)

GIB = 1024**3


@dataclass(frozen=True, slots=True)
class Problem:
    name: str  # stable: what the operators' channel keys repeats and the all-clear on (``disk:/var/lib/...``)
    message: str  # for an operator: what, how far past its bound, and what it risks


Check = Callable[[], Problem | None]


class OperatorChannel(Protocol):
    every_run: bool  # told at every run (a dead man's switch), or only when something is new, over or repeated

    def tell(self, problems: Sequence[Problem], cleared: Sequence[str]) -> None:
        """``problems``: what is wrong now (empty: all is well); ``cleared``: what was wrong and is over."""


@dataclass(frozen=True)
class WatchdogBounds:
    min_free_bytes: int = 2 * GIB  # well before the journal (5 million entries) or the database fills a disk
    min_free_share: float = 0.05
    journal_lag_entries: int = 200_000  # about a minute of a large gateway's readings at full rate
    journal_lag_s: float = 300.0  # the oldest entry a consumer has still to take
    dispatcher_lag_s: float = 300.0  # the oldest notification due and not sent


class Watchdog:
    def __init__(self, checks: Sequence[Check], channels: Sequence[OperatorChannel], *, repeat_s: float = 3600.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.checks = list(checks)
        self.channels = list(channels)
        self.repeat_s = repeat_s
        self._monotonic = monotonic  # about the machine's work, not the data: wall time
        self._open: set[str] = set()
        self._told_at: float | None = None

    def run_once(self) -> list[Problem]:
        """Run every check; tell the channels when something is new, over, or still wrong after ``repeat_s``."""
        problems = [p for p in (self._run(check) for check in self.checks) if p is not None]
        names = {p.name for p in problems}
        new = names - self._open
        cleared = sorted(self._open - names)
        now = self._monotonic()
        repeat = bool(problems) and (self._told_at is None or now - self._told_at >= self.repeat_s)
        for p in problems:
            if p.name in new:
                log.error("watchdog: %s", p.message)
        self._open = names
        if new or cleared or repeat:
            self._told_at = now if problems else None
        for channel in self.channels:
            try:
                if channel.every_run or new or cleared or repeat:
                    channel.tell(problems, cleared)
            except Exception:  # a channel down must not stop the checks or the other channels
                log.exception("watchdog: %s could not be told", type(channel).__name__)
        return problems

    def run(self, stop: threading.Event, every_s: float = 60.0) -> None:
        """Check every ``every_s`` seconds until ``stop`` (the worker's thread)."""
        while not stop.wait(every_s):
            self.run_once()

    @staticmethod
    def _run(check: Check) -> Problem | None:
        try:
            return check()
        except Exception as e:
            name = getattr(check, "__name__", type(check).__name__)
            return Problem(f"check:{name}", f"the watchdog's check {name} failed ({e}): its state is unknown")


# --- Checks ---------------------------------------------------------------------------------------------------


def disk_check(path: Path, what: str, bounds: WatchdogBounds) -> Check:
    """Free space where ``what`` (the journal, the database) lives."""

    def disk() -> Problem | None:
        usage = shutil.disk_usage(path)
        free_share = usage.free / usage.total if usage.total else 0.0
        if usage.free >= bounds.min_free_bytes and free_share >= bounds.min_free_share:
            return None
        return Problem(f"disk:{path}", f"disk nearly full where the {what} lives ({path}): {usage.free / GIB:.1f} "
                       f"GiB free ({free_share:.0%}); when it fills, readings stop being journaled")

    return disk


def journal_lag_check(journal: Journal, consumer: str, what: str, bounds: WatchdogBounds,
                      now_ms: Callable[[], int] | None) -> Check:
    """A journal consumer (the detectors, the store writer) that has fallen behind, by entries and by age.

    ``now_ms`` None: by entries only (a simulated clock racing ahead makes every age look like minutes)."""

    def journal_lag() -> Problem | None:
        lag = journal.lag(consumer)
        oldest = journal.read(consumer, 1) if lag and now_ms is not None else []
        age_s = (now_ms() - oldest[0].received_ms) / 1000 if oldest and now_ms is not None else 0.0
        return backlog_problem(f"lag:{consumer}", lag, age_s, bounds, f"readings wait for the {what}",
                               "alerts may come late")

    return journal_lag


def backlog_problem(name: str, waiting: int, age_s: float, bounds: WatchdogBounds, what: str,
                    risk: str) -> Problem | None:
    """A backlog (a journal consumer's, a stream's in cluster mode) past its bounds, by count or by the age of its
    oldest item: ``waiting`` of ``what``, and what that risks (``risk``)."""
    if waiting < bounds.journal_lag_entries and age_s < bounds.journal_lag_s:
        return None
    return Problem(name, f"{waiting:,} {what}, the oldest received {age_s / 60:.0f} min ago: {risk}")


def dispatcher_lag_check(sessions: sessionmaker[Session], bounds: WatchdogBounds,
                         now: Callable[[], datetime]) -> Check:
    """Notifications due and not sent: the dispatcher is stuck, or every send fails."""

    def dispatcher_lag() -> Problem | None:
        at = now()
        with sessions() as session:
            oldest = session.scalar(select(func.min(Notification.created_at)).where(
                Notification.state.in_((NotificationState.PENDING, NotificationState.SENDING)),
                (Notification.next_attempt_at.is_(None)) | (Notification.next_attempt_at <= at)))
        if oldest is None:
            return None
        age_s = (at - (oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC))).total_seconds()
        if age_s < bounds.dispatcher_lag_s:
            return None
        return Problem("lag:dispatcher", f"a carers' notification has waited {age_s / 60:.0f} min to be sent: "
                       "alerts are not reaching carers")

    return dispatcher_lag


# --- Channels -------------------------------------------------------------------------------------------------


class PushoverOperators:
    """The operators' Pushover user or group key, through the gateway's own Pushover client."""

    every_run = False

    def __init__(self, client: PushoverClient, user_key: str, gateway_name: str = "telecare gateway") -> None:
        self.client = client
        self.user_key = user_key
        self.gateway_name = gateway_name

    def tell(self, problems: Sequence[Problem], cleared: Sequence[str]) -> None:
        try:
            if problems:
                self.client.send(self.user_key, "\n".join(f"• {p.message}" for p in problems),
                                 title=f"{self.gateway_name}: {len(problems)} problem(s)", priority=1)
            elif cleared:
                self.client.send(self.user_key, "All checks pass again.", title=f"{self.gateway_name}: all clear",
                                 priority=0)
        except (Retry, GiveUp) as e:  # the next run tells again: problems repeat until they are over
            log.error("watchdog: the operators' Pushover message was not sent: %s", e)


class HealthcheckPing:
    """A dead man's switch: ``GET url`` while all is well, ``GET url/fail`` while not (healthchecks.io's API).
    Pinged at every run: its silence is the alarm when the worker itself is down."""

    every_run = True

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the health-check URL must be http(s)://..., not {url!r}")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def tell(self, problems: Sequence[Problem], cleared: Sequence[str]) -> None:
        url = f"{self.url}/fail" if problems else self.url
        body = "\n".join(p.message for p in problems).encode()
        request = urllib.request.Request(url, data=body or None, method="POST" if body else "GET")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # http(s) only: checked above
                response.read()
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            log.warning("watchdog: health-check ping to %s failed: %s", self.url, e)


def build_watchdog(settings: Settings, journal: Journal, sessions: sessionmaker[Session], clock: Clock,
                   consumers: Sequence[tuple[str, str]]) -> Watchdog:
    """The worker's watchdog from settings: disk where the journal and the data live, each journal consumer
    (name, what it is for people), the dispatcher; told to the operators' Pushover key and the health-check URL.
    Cluster mode has its own checks, on the same bounds and channels (``gateway.cluster.housekeeping``)."""
    bounds = watchdog_bounds(settings)
    places = {journal.path.parent: "journal", settings.data_dir: "database and readings"}
    checks: list[Check] = [disk_check(path, what, bounds) for path, what in places.items() if path.exists()]
    # On a simulated clock (the demo, accelerated runs) ages are simulated minutes, not an operator's: lag is
    # judged by entries alone there, and the dispatcher's lag not at all.
    wall = settings.clock != "simulated"
    checks += [journal_lag_check(journal, name, what, bounds, clock.now_ms if wall else None)
               for name, what in consumers]
    if wall:
        checks.append(dispatcher_lag_check(sessions, bounds, wall_now(clock)))
    return Watchdog(checks, operator_channels(settings))


def watchdog_bounds(settings: Settings) -> WatchdogBounds:
    return WatchdogBounds(min_free_bytes=round(settings.watchdog_min_free_gib * GIB),
                          journal_lag_s=settings.watchdog_lag_s, dispatcher_lag_s=settings.watchdog_lag_s)


def wall_now(clock: Clock) -> Callable[[], datetime]:
    """The clock's now as an aware datetime, as the dispatcher's lag check compares the outbox's times with."""
    return lambda: datetime.fromtimestamp(clock.now_ms() / 1000, UTC)


def operator_channels(settings: Settings) -> list[OperatorChannel]:
    """The operators' channels the settings name: their Pushover key (with the application's token) and the
    health-check URL; none is a warning, as problems are then only logged."""
    channels: list[OperatorChannel] = []
    if settings.operator_pushover_user and settings.pushover_token:
        client = PushoverClient(settings.pushover_url, settings.pushover_token.get_secret_value(),
                                settings.pushover_timeout_s)
        channels.append(PushoverOperators(client, settings.operator_pushover_user))
    if settings.healthcheck_url:
        channels.append(HealthcheckPing(settings.healthcheck_url))
    if not channels:
        log.warning("watchdog: no operators' channel (TELECARE_OPERATOR_PUSHOVER_USER with a Pushover token, or "
                    "TELECARE_HEALTHCHECK_URL): problems are only logged")
    return channels
