"""Hub messages to journal entries: what ingest (one machine) and a cluster worker's partitions both decide.

A batch of messages (topic, payload, receipt time) is parsed against the MQTT contract (``gateway.contract``),
judged by the per-home quotas (``gateway.quotas``), each state's device kind and activity decided
(``gateway.reading_facts``); a malformed message becomes a dead letter (it never holds up its neighbours), and a hub
whose clock cost readings their time is reported to its detectors (``gateway.hub_clocks``). Nothing is decided for
good until the caller says the batch is committed (:meth:`Admission.committed`); a batch that failed is
:meth:`Admission.rolled_back` and decided again, the same way, when it comes again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.contract import (
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
from gateway.journal import NewEntry
from gateway.logs import about
from gateway.metrics import IngestMetrics
from gateway.quotas import HomeQuotas, QuotaGate
from gateway.reading_facts import ReadingFacts

log = logging.getLogger(__name__)

Incoming = tuple[str, bytes, int]  # (topic, payload, received_ms)


@dataclass(slots=True)
class Admitted:
    """A batch's entries in order. ``sources[i]``: the index of the message entry ``i`` came from (a quota report
    counts for the message refused; a clock report for its home's last message of the batch). ``urgent``: indexes
    of button presses. ``skews``: the messages that tell of a hub's clock. ``now_ms``: the clock as the batch left
    it (a simulator's tick moves it)."""

    entries: list[NewEntry] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)
    urgent: list[int] = field(default_factory=list)
    skews: list[Message] = field(default_factory=list)
    now_ms: int = 0


class Admission:
    def __init__(self, metrics: IngestMetrics, facts: ReadingFacts, *, root: str = "telecare",
                 limits: Limits = DEFAULT_LIMITS, quotas: HomeQuotas | None = None, clock_check_s: float = 60.0,
                 logger: logging.Logger = log) -> None:
        self.metrics = metrics
        self.facts = facts
        self.root = root
        self.limits = limits
        self.clock_watch = ClockWatch(HubClocks(limits.max_future_ms), metrics, check_every_s=clock_check_s)
        self.quotas = QuotaGate(quotas or HomeQuotas(), metrics.quota_dropped)  # per-home bounds, before storing
        self._dead_log = _RateLimitedLog(logger, per_minute=60)  # the caller's logger: ingest's lines stay its own

    def admit(self, messages: Sequence[Incoming], now_ms: int) -> Admitted:
        """The entries to commit for ``messages`` (see :class:`Admitted`)."""
        out = Admitted(now_ms=now_ms)
        entries = out.entries
        last_of_home: dict[str, int] = {}
        for index, (topic, payload, received_ms) in enumerate(messages):
            try:
                parsed = parse(topic, payload, received_ms, out.now_ms, self.root, self.limits)
            except Exception as e:  # a bug in the parser must not stop the stream
                log.exception("parser failed on %s", clip_utf8(topic, DEAD_LETTER_TOPIC_BYTES))
                parsed = Rejected(Reason.PARSER_ERROR, f"{type(e).__name__}: {e}", topic, payload, received_ms)
            judged = self.quotas.judge(parsed, entries)
            if judged is not None:  # else refused by a per-home quota: counted, acknowledged, not stored
                self._take(judged, out)
            if type(judged) is Message and judged.home is not None:
                last_of_home[judged.home] = index
            out.sources += [index] * (len(entries) - len(out.sources))
        for report in self.clock_watch.reports(out.skews):  # a hub whose clock cost readings their time
            entries.append(report)
            out.sources.append(last_of_home[report[1]] if report[1] in last_of_home else len(messages) - 1)
        return out

    def committed(self, admitted: Admitted) -> None:
        """The batch's entries are durably handed off: its decisions stand."""
        self.facts.committed()
        self.clock_watch.take(admitted.skews, admitted.now_ms)
        self.quotas.committed()  # the quotas' reports are committed: not to be given again

    def rolled_back(self) -> None:
        """The batch was not committed: it will be decided again from the state before it."""
        self.facts.rolled_back()

    def _take(self, parsed: Message | Rejected | Ignored, out: Admitted) -> None:
        entries = out.entries
        if type(parsed) is Message:
            if parsed.kind is Kind.CLOCK:
                out.now_ms = max(out.now_ms, parsed.time_ms)
            elif parsed.clock_skew_ms is not None or parsed.retimed is not None:
                out.skews.append(parsed)
            if parsed.kind is Kind.STATE:
                entries.append(self._judged(parsed))
                if "action" in parsed.body:
                    out.urgent.append(len(entries) - 1)
                return
            entries.append((parsed.kind, parsed.home, parsed.device, parsed.time_ms, parsed.received_ms,
                            parsed.timed_by_device, parsed.body))
        elif type(parsed) is Rejected:
            entries.append(self._dead_letter(parsed))
        else:
            assert isinstance(parsed, Ignored)
            self.metrics.ignored.inc()

    def _judged(self, state: Message) -> NewEntry:
        assert state.home is not None and state.device is not None  # a state always has both (gateway.contract)
        kind, change = self.facts.judge(state.home, state.device, state.body)
        return (state.kind, state.home, state.device, state.time_ms, state.received_ms, state.timed_by_device,
                state.body, kind, change)

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

    def __init__(self, logger: logging.Logger, per_minute: int) -> None:
        self.log = logger
        self.per_minute = per_minute
        self.window_start = 0.0
        self.count = 0
        self.suppressed = 0

    def warning(self, fmt: str, *args: object, extra: dict[str, object] | None = None) -> None:
        now = time.monotonic()
        if now - self.window_start >= 60:
            if self.suppressed:
                self.log.warning("%d more rejected messages in the last minute (see the dead-letter table)",
                            self.suppressed)
            self.window_start, self.count, self.suppressed = now, 0, 0
        self.count += 1
        if self.count <= self.per_minute:
            self.log.warning(fmt, *args, extra=extra)
        else:
            self.suppressed += 1
