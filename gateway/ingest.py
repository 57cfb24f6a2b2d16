"""Ingest: MQTT messages in, journal entries committed, then acknowledged to the broker.

The MQTT callback only calls :meth:`Ingest.offer` (append to a deque). One thread parses batches, commits them
to the journal in one transaction and only then acknowledges each message. A malformed message becomes a dead
letter in the same batch: it is acknowledged too (redelivering it cannot help) and never holds up its neighbours.

A hub's clock never costs a reading (DESIGN.md, "Time"): a reading whose last_seen is too far ahead is journaled at
receipt time with its skew (see ``gateway.contract``); once a batch is committed its skews go to the clock watch
(``gateway.hub_clocks``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from gateway.clock import Clock
from gateway.contract import (
    CLOCK_TOPIC,
    DEAD_LETTER_TOPIC_BYTES,
    DEFAULT_LIMITS,
    Ignored,
    Kind,
    Limits,
    Message,
    Reason,
    Rejected,
    clip_utf8,
    parse,
)
from gateway.hub_clocks import ClockWatch, HubClocks
from gateway.journal import Journal, NewEntry
from gateway.logs import about
from gateway.metrics import IngestMetrics
from gateway.quotas import HomeQuotas, QuotaGate
from gateway.reading_facts import ReadingFacts

log = logging.getLogger(__name__)

Ack = Callable[[int, int], None]  # (mid, qos)


class Ingest:
    def __init__(self, journal: Journal, clock: Clock, metrics: IngestMetrics, *, root: str = "telecare",
                 limits: Limits = DEFAULT_LIMITS, batch_max: int = 5000, linger_s: float = 0.02,
                 clock_check_s: float = 60.0, quotas: HomeQuotas | None = None,
                 facts: ReadingFacts | None = None) -> None:
        self.journal = journal
        self.clock = clock
        self.metrics = metrics
        self.root = root
        self.limits = limits
        self.batch_max = batch_max
        self.linger_s = linger_s
        self.ack: Ack = lambda mid, qos: None
        self._pending: deque[tuple[int, int, str, bytes, int]] = deque()
        self._wake = threading.Event()
        self._dead_log = _RateLimitedLog(per_minute=60)
        self.clock_watch = ClockWatch(HubClocks(limits.max_future_ms), metrics, check_every_s=clock_check_s)
        self.quotas = QuotaGate(quotas or HomeQuotas(), metrics.quota_dropped)  # per-home bounds, before storing
        # Each reading's device kind and activity, decided once here and journaled with it (gateway.reading_facts).
        self.facts = facts or ReadingFacts(states=journal.device_states())

    def offer(self, mid: int, qos: int, topic: str, payload: bytes) -> None:
        """Called from the MQTT network thread: keep it thin."""
        if topic == CLOCK_TOPIC:  # moves simulated time before the messages behind it are stamped
            tick = parse(topic, payload, 0, 0)
            if type(tick) is Message:
                self._tick(tick.time_ms, tick.body["speed"])
        self._pending.append((mid, qos, topic, payload, self.clock.now_ms()))
        if not self._wake.is_set():
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self._pending:
                self._wake.wait(0.5)
                self._wake.clear()
                try:
                    self.forget_when_asked()  # a quiet gateway forgets too, not only at its next reading
                except Exception:
                    log.exception("forgetting device states failed; trying again")
                    stop.wait(1.0)
                continue
            if self.journal.is_full():
                self.metrics.journal_full.set(1)
                stop.wait(0.2)  # the broker holds what we do not acknowledge
                continue
            self.metrics.journal_full.set(0)
            if len(self._pending) < self.batch_max and self.linger_s:
                time.sleep(self.linger_s)  # wall time on purpose: batching is about the machine, not the data
            try:
                self.step()
            except Exception:
                log.exception("journal commit failed; nothing acknowledged, retrying")
                stop.wait(1.0)
        try:
            self.step()  # commit and acknowledge what already arrived
        except Exception:
            log.exception("journal commit failed at shutdown; the broker will send those messages again")

    def step(self) -> int:
        """Parse, commit and acknowledge up to one batch; returns how many messages it took."""
        pending = self._pending
        if not pending:
            return 0
        self.forget_when_asked()  # before judging the batch (and taking it: a failure here keeps it whole)
        taken = [pending.popleft() for _ in range(min(len(pending), self.batch_max))]
        now_ms = self.clock.now_ms()
        entries: list[NewEntry] = []
        urgent: list[int] = []  # button presses: the detectors take them ahead of their backlog
        skews: list[Message] = []  # messages that tell of a hub's clock, taken in once the batch is committed
        for _mid, _qos, topic, payload, received_ms in taken:
            try:
                parsed = parse(topic, payload, received_ms, now_ms, self.root, self.limits)
            except Exception as e:  # a bug in the parser must not stop the stream
                log.exception("parser failed on %s", clip_utf8(topic, DEAD_LETTER_TOPIC_BYTES))
                parsed = Rejected(Reason.PARSER_ERROR, f"{type(e).__name__}: {e}", topic, payload, received_ms)
            judged = self.quotas.judge(parsed, entries)
            if judged is None:
                continue  # refused by a per-home quota: counted, acknowledged with the batch, not stored
            parsed = judged
            if type(parsed) is Message:
                if parsed.kind is Kind.CLOCK:
                    now_ms = max(now_ms, parsed.time_ms)
                elif parsed.clock_skew_ms is not None or parsed.retimed is not None:
                    skews.append(parsed)
                if parsed.kind is Kind.STATE:
                    entries.append(self._judged(parsed))
                    if "action" in parsed.body:
                        urgent.append(len(entries) - 1)
                    continue
                entries.append((parsed.kind, parsed.home, parsed.device, parsed.time_ms, parsed.received_ms,
                                parsed.timed_by_device, parsed.body))
            elif type(parsed) is Rejected:
                entries.append(self._dead_letter(parsed))
            else:
                assert isinstance(parsed, Ignored)
                self.metrics.ignored.inc()
        entries += self.clock_watch.reports(skews)  # a hub whose clock cost readings their time: device health
        try:
            self.journal.append(entries, urgent, self.facts.pending())
        except BaseException:
            pending.extendleft(reversed(taken))  # not committed: keep them, in order, for the next try
            self.facts.rolled_back()
            raise
        self.facts.committed()
        ack = self.ack
        for mid, qos, *_ in taken:
            if qos:
                ack(mid, qos)
        self.metrics.received.inc(len(taken))
        self.metrics.journaled.inc(len(entries))
        self.metrics.journal_entries.set(self.journal.kept())
        self.clock_watch.take(skews, now_ms)
        self.quotas.committed()  # the quotas' reports are journaled: not to be given again
        return len(taken)

    def forget_when_asked(self) -> None:
        """Forget the device states the worker asked to (their home's person cared for changed, or was erased):
        from memory, then from the journal's file. Before each batch (its readings of those homes are judged
        afresh), and between batches (:meth:`run`), so a quiet gateway forgets too. A failed commit leaves the
        requests for the next call; memory forgetting twice is no harm."""
        forget = self.journal.forget_requests()
        if not forget:
            return
        homes = {home for _, home in forget}
        self.facts.forget(homes)
        self.journal.forget(forget)
        for home in sorted(homes):
            log.info("home %s: its device states are forgotten (the person cared for changed, or was erased)", home,
                     extra=about(home=home))

    def _judged(self, state: Message) -> NewEntry:
        assert state.home is not None and state.device is not None  # a state always has both (gateway.contract)
        kind, change = self.facts.judge(state.home, state.device, state.body)
        return (state.kind, state.home, state.device, state.time_ms, state.received_ms, state.timed_by_device,
                state.body, kind, change)

    def _tick(self, time_ms: int, speed: float) -> None:
        if not self.clock.tick(time_ms, speed):
            log.warning("a simulator clock tick arrived but this gateway follows the wall clock; ignored")

    def _dead_letter(self, r: Rejected) -> NewEntry:
        self.metrics.rejected.labels(str(r.reason)).inc()
        self._dead_log.warning("rejected message on %s: %s (%s)", r.topic, r.reason, r.detail,
                               extra=about(home=r.home, device=r.device))
        body: dict[str, str | int] = {"reason": str(r.reason), "detail": r.detail, "topic": r.topic,
                                      "payload": r.payload.decode("utf-8", "backslashreplace")}
        if r.topic_bytes > DEAD_LETTER_TOPIC_BYTES:
            body["topic_bytes"] = r.topic_bytes  # the topic is stored clipped (Rejected); its length is kept
        return (Kind.DEAD, r.home, r.device, r.received_ms, r.received_ms, False, body)


class _RateLimitedLog:
    """Each rejected message is logged once, but a flood of them must not drown the log."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.window_start = 0.0
        self.count = 0
        self.suppressed = 0

    def warning(self, fmt: str, *args: object, extra: dict[str, object] | None = None) -> None:
        now = time.monotonic()
        if now - self.window_start >= 60:
            if self.suppressed:
                log.warning("%d more rejected messages in the last minute (see the dead-letter table)",
                            self.suppressed)
            self.window_start, self.count, self.suppressed = now, 0, 0
        self.count += 1
        if self.count <= self.per_minute:
            log.warning(fmt, *args, extra=extra)
        else:
            self.suppressed += 1
