"""The retention purge (issue 12): what each organisation keeps, and for how long, deleted once past it.

Per organisation (``organisations`` holds its settings; docs/production.md, "Retention and privacy"):

* **Care records**, ``care_record_retention_days`` (default 8 years) after care ended. Care ends when the
  organisation's claim on the home is released (a ``home_claims`` row's ``released_at``), or when the resident is
  removed while the organisation keeps the home (an ``ended_care`` row, :func:`record_care_end`); an erased
  resident's records go at once (``api/routers/privacy.py``). Past retention, the period's alerts of that
  organisation go (their notifications and timeline lines with them: ``ON DELETE CASCADE``), then the home's
  readings and daily summaries of the period (:meth:`ReadingStore.delete_range`), then the claim (or ended-care)
  row itself, which ends the old organisation's read access. An alert still open is never purged: uncertainty is
  not erased silently; it stays until someone resolves it. When the readings store cannot delete (away, or
  VictoriaMetrics, which has no delete API) the period's row stays and it is tried again at the next purge
  (``telecare_retention_readings_pending``).
* **The audit trail**, ``audit_retention_days`` (default 8 years) after each entry.
* **Dead letters** of the organisation's homes, ``dead_letter_retention_days`` when set (None: the gateway's global
  ``dead_letter_max_age_days``, applied by :class:`gateway.retention.DeadLetterRetention` to every home anyway).

And for everyone: login tokens past their expiry, and login-throttle counts past their window, at once.

Beside it, every ``FORGET_EVERY_S`` (:func:`forget_past_care`): the device states ingest keeps in the journal (each
device's last activity value, the resident's as much as their readings are) of every home whose person cared for
has changed since (``Home.care_epoch``: a claim, a release, a resident added, removed or erased). The worker cannot
write them (ingest holds them, in memory too): it asks ingest through the journal, which forgets them in its next
transaction. Homes are never deleted and devices never removed (the registry only renames), so the care epoch is
the one trace of a person gone.

In cluster mode the device states are rows in PostgreSQL (``cluster_device_states``), each with the care epoch it was
learned under; the worker holding the housekeeping role deletes those of another epoch, and runs this purge too
(:mod:`gateway.cluster.housekeeping`).

Deletes run in short batches (:func:`gateway.retention.delete_in_batches`), as the dead-letter retention does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from gateway.alerting.states import AlertState
from gateway.claims import current_claim_start
from gateway.clock import Clock
from gateway.db.models import (
    Alert,
    AuditEntry,
    AuthToken,
    DeadLetter,
    EndedCare,
    Home,
    HomeClaim,
    LoginThrottleEntry,
    Organisation,
    Resident,
)
from gateway.errors import StoreUnavailable
from gateway.journal import Journal
from gateway.logs import about
from gateway.metrics import WorkerMetrics
from gateway.registry import to_datetime
from gateway.retention import delete_in_batches, run_periodically
from gateway.stores.readings.base import ReadingStore

if TYPE_CHECKING:
    from gateway.worker import Worker

__all__ = ["KINDS", "OrganisationPurged", "Purged", "RetentionPurge", "care_start", "forget_past_care",
           "record_care_end", "run_purge"]

log = logging.getLogger(__name__)

KINDS = ("alerts", "reading_periods", "claims", "audit", "dead_letters", "tokens", "login_throttle")
PURGE_EVERY_S = 3600.0  # retention counts in days: once an hour is plenty, and cheap
FORGET_EVERY_S = 30.0  # an erasure is at once: the device states follow within seconds (two small reads)


@dataclass(slots=True)
class OrganisationPurged:
    """What one organisation's retention removed (or, in a dry run, would remove)."""

    organisation_id: int
    name: str
    alerts: int = 0
    reading_periods: int = 0  # ended care periods whose readings and daily summaries were deleted
    claims: int = 0  # ended care periods (claims, residents' care) closed for good: read access to them ends
    audit: int = 0
    dead_letters: int = 0
    readings_pending: int = 0  # periods past retention whose readings the store could not delete

    def summary(self) -> str:
        line = (f"organisation {self.organisation_id} ({self.name}): {self.alerts} alerts, {self.reading_periods} "
                f"care periods' readings, {self.claims} ended care periods, {self.audit} audit entries, "
                f"{self.dead_letters} dead letters")
        if self.readings_pending:
            line += (f"; {self.readings_pending} care periods' readings could not be deleted (the readings store "
                     "is away or has no delete API): tried again at the next purge")
        return line


@dataclass(slots=True)
class Purged:
    """One purge: per organisation, and the tokens and throttle counts of everyone."""

    organisations: list[OrganisationPurged] = field(default_factory=list)
    tokens: int = 0
    login_throttle: int = 0

    def total(self, kind: str) -> int:
        if kind in ("tokens", "login_throttle"):
            return int(getattr(self, kind))
        return sum(int(getattr(o, kind)) for o in self.organisations)


@dataclass(frozen=True, slots=True)
class _Period:
    """An ended care period: a released claim (``model`` HomeClaim) or a removed resident's care (EndedCare)."""

    model: type[HomeClaim] | type[EndedCare]
    id: int
    home_id: str
    start: datetime
    end: datetime


def care_start(session: Session, resident: Resident, organisation_id: int) -> datetime:
    """When the resident's care by the organisation began: the later of their creation and the organisation's
    current claim on the home (before it, the home's data are another person's, or another organisation's)."""
    claimed = current_claim_start(session, resident.home_id, organisation_id)
    return max(resident.created_at, claimed) if claimed is not None else resident.created_at


def record_care_end(session: Session, resident: Resident, organisation_id: int, at: datetime) -> EndedCare:
    """The resident is removed while the organisation keeps the home: their care, from the later of their creation
    and the organisation's claim, ends ``at``; its records are purged the organisation's care-record retention
    after that. Called in the removal's transaction."""
    start = care_start(session, resident, organisation_id)
    ended = EndedCare(organisation_id=organisation_id, home_id=resident.home_id, resident_id=resident.id,
                      started_at=min(start, at), ended_at=at)
    session.add(ended)
    return ended


class RetentionPurge:
    """Applies every organisation's retention; ``run`` repeats it in the worker, ``telecare db purge`` once."""

    def __init__(self, sessions: sessionmaker[Session] | Callable[[], Session], clock: Clock,
                 store: ReadingStore | None, *, dead_letter_max_age_days: float, metrics: WorkerMetrics | None = None,
                 batch_rows: int = 1_000, pause_s: float = 0.01,
                 api_now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._sessions = sessions
        self.clock = clock
        # Tokens and throttle counts expire on the API's clock (wall time), not on the gateway's, which follows a
        # simulator in accelerated runs and may be days ahead: a demo's logins must not be purged while live.
        self.api_now = api_now
        self.store = store
        self.dead_letter_max_age_days = dead_letter_max_age_days
        self.metrics = metrics
        self.batch_rows = batch_rows
        self.pause_s = pause_s

    def run(self, stop: threading.Event, every_s: float = PURGE_EVERY_S) -> None:
        """Purge now, then every ``every_s`` wall seconds until ``stop``; a failure is retried next time."""
        run_periodically(self.purge, "retention purge", stop, every_s)

    def purge(self, *, dry_run: bool = False) -> Purged:
        """One pass over every organisation's retention; ``dry_run`` counts what would go and deletes nothing."""
        now = to_datetime(self.clock.now_ms())
        purged = Purged()
        with self._sessions() as session:
            organisations = session.execute(
                select(Organisation.id, Organisation.name, Organisation.care_record_retention_days,
                       Organisation.audit_retention_days, Organisation.dead_letter_retention_days)
                .order_by(Organisation.id)).all()
        for org_id, name, care_days, audit_days, dead_letter_days in organisations:
            report = OrganisationPurged(org_id, name)
            self._care_records(report, now - timedelta(days=care_days), dry_run)
            report.audit = self._delete(AuditEntry, AuditEntry.id, dry_run,
                                        (AuditEntry.organisation_id == org_id)
                                        & (AuditEntry.at < now - timedelta(days=audit_days)))
            if dead_letter_days is not None and dead_letter_days < self.dead_letter_max_age_days:
                homes = select(Home.id).where(Home.organisation_id == org_id).scalar_subquery()
                report.dead_letters = self._delete(
                    DeadLetter, DeadLetter.id, dry_run,
                    DeadLetter.home_id.in_(homes) & (DeadLetter.received_at < now - timedelta(days=dead_letter_days)))
            purged.organisations.append(report)
        api_now = self.api_now()
        purged.tokens = self._delete(AuthToken, AuthToken.id, dry_run, AuthToken.expires_at <= api_now)
        purged.login_throttle = self._delete(LoginThrottleEntry, LoginThrottleEntry.key, dry_run,
                                             LoginThrottleEntry.expires_at <= api_now)
        if not dry_run:
            self._report(purged)
        return purged

    def _care_records(self, report: OrganisationPurged, cutoff: datetime, dry_run: bool) -> None:
        """The organisation's care periods that ended before ``cutoff``: their alerts, readings, then the period."""
        org = report.organisation_id
        with self._sessions() as session:
            periods = [_Period(HomeClaim, claim_id, home_id, claimed_at, released_at or cutoff)
                       for claim_id, home_id, claimed_at, released_at in session.execute(
                           select(HomeClaim.id, HomeClaim.home_id, HomeClaim.claimed_at, HomeClaim.released_at)
                           .where(HomeClaim.organisation_id == org, HomeClaim.released_at.is_not(None),
                                  HomeClaim.released_at < cutoff)
                           .order_by(HomeClaim.released_at, HomeClaim.id))]
            periods += [_Period(EndedCare, *row) for row in session.execute(
                select(EndedCare.id, EndedCare.home_id, EndedCare.started_at, EndedCare.ended_at)
                .where(EndedCare.organisation_id == org, EndedCare.ended_at < cutoff)
                .order_by(EndedCare.ended_at, EndedCare.id))]
        for period in periods:
            # A released claim: every alert the organisation raised in that home up to its end (this claim's, or
            # an earlier claim's of the same organisation, which ended earlier still). A removed resident's care:
            # the alerts of their time in the home.
            raised = Alert.raised_at <= period.end
            if period.model is EndedCare:
                raised &= Alert.raised_at >= period.start
            report.alerts += self._delete(
                Alert, Alert.id, dry_run,
                (Alert.organisation_id == org) & (Alert.home_id == period.home_id) & raised
                & (Alert.state == AlertState.RESOLVED))
            if dry_run:
                report.reading_periods += 1
                report.claims += 1
                continue
            if not self._delete_readings(period):
                report.readings_pending += 1
                continue
            report.reading_periods += 1
            report.claims += self._delete(period.model, period.model.id, False, period.model.id == period.id)

    def _delete_readings(self, period: _Period) -> bool:
        if self.store is None:
            return False
        try:
            self.store.delete_range(period.home_id, _ms(period.start), _ms(period.end) + 1)
        except StoreUnavailable as e:
            log.warning("home %s: the readings of its care period %s to %s are past retention but could not be "
                        "deleted (%s); trying again at the next purge", period.home_id, period.start.isoformat(),
                        period.end.isoformat(), e, extra=about(home=period.home_id))
            return False
        return True

    def _delete(self, model: type[Any], key: InstrumentedAttribute[Any], dry_run: bool,
                where: ColumnElement[bool]) -> int:
        if dry_run:
            with self._sessions() as session:
                return session.scalar(select(func.count()).select_from(model).where(where)) or 0
        return delete_in_batches(self._sessions, model, key, where, batch_rows=self.batch_rows,
                                 pause_s=self.pause_s)

    def _report(self, purged: Purged) -> None:
        if self.metrics is not None:
            for kind in KINDS:
                self.metrics.retention_purged.labels(kind).inc(purged.total(kind))
            self.metrics.retention_readings_pending.set(purged.total("readings_pending"))
        for org in purged.organisations:
            if org.alerts or org.reading_periods or org.claims or org.audit or org.dead_letters \
                    or org.readings_pending:
                log.info("retention purge: %s", org.summary())
        if purged.tokens or purged.login_throttle:
            log.info("retention purge: %d expired login tokens, %d login-throttle counts past their window",
                     purged.tokens, purged.login_throttle)


def forget_past_care(journal: Journal, sessions: sessionmaker[Session] | Callable[[], Session]) -> list[str]:
    """Ask ingest to forget the device states of the homes whose care epoch changed since they were last seen here
    (:mod:`gateway.journal`, ``forget``); returns those homes. A home the database does not know yet (discovered,
    not registered) is left alone: its states are a new home's. States first seen under an epoch other than a new
    home's (0) are forgotten too: whose they are cannot be told, and forgetting costs no more than each device's
    next report being judged as a new home's first reports are."""
    kept = journal.state_epochs()
    if not kept:
        return []
    with sessions() as session:
        epochs = {home: epoch for home, epoch in session.execute(select(Home.id, Home.care_epoch))}
    changed = {home: epochs[home] for home, epoch in kept.items() if home in epochs and epochs[home] != epoch}
    if changed:
        journal.request_forget(changed)
        for home in sorted(changed):
            log.info("home %s: its device states predate its care epoch %d (the person cared for changed, or was "
                     "erased); ingest is asked to forget them", home, changed[home], extra=about(home=home))
    return sorted(changed)


def run_purge(worker: Worker, stop: threading.Event, every_s: float = PURGE_EVERY_S,
              forget_every_s: float = FORGET_EVERY_S) -> None:
    """The worker's purge thread: on the worker's database, clock, readings store and metrics. Device states are
    forgotten in a thread of their own, so an hour's long purge never holds an erasure's up."""
    forgetting = threading.Thread(
        target=run_periodically, name="forget", daemon=True,
        args=(lambda: forget_past_care(worker.journal, worker.sessions), "forgetting device states", stop,
              forget_every_s))
    forgetting.start()
    RetentionPurge(worker.sessions, worker.clock, worker.store, metrics=worker.metrics,
                   dead_letter_max_age_days=worker.settings.dead_letter_max_age_days).run(stop, every_s)
    forgetting.join(timeout=30)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
